#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The read-back shows progress (issue 27): a loop device target whose
# reads are throttled (cgroup v1 blkio, 1 MB/s) is read back for seconds;
# meanwhile the JSON progress lines carry a growing bytes_verified, the
# plain lines say "verifying" with a percentage and a rate, and the final
# JSON has bytes_verified equal to the image.
source "$top_srcdir/tests/func/functions.sh"

requires_loop
blkio_cgroup verify

mb=1048576
mkimage "$tmp/src.img" 6M
truncate -s 6M "$tmp/disk"
dev=$(loop_attach "$tmp/disk")
majmin=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')
echo "$majmin 1048576" > "$cg/blkio.throttle.read_bps_device"

# JSON progress lines on standard output, the final object last.
( echo "$BASHPID" > "$cg/cgroup.procs"; ringcopy --json --progress=json "$tmp/src.img" "$dev" ) \
	> "$tmp/out" 2> "$tmp/err" || fail "the copy: $(cat "$tmp/err")"
cmp "$tmp/src.img" "$dev" || fail "$dev differs"
python3 - "$tmp/out" <<'PY' || fail "JSON progress: $(cat "$tmp/out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
final, progress = lines[-1], lines[:-1]
image = 6 * 1048576
t = final["targets"][0]
assert t["status"] == "ok" and t["verified"] is True, t
assert t["bytes_verified"] == image, t
seen = [p["bytes_verified"] for p in progress if p["state"] == "verifying"]
# Growing, seen part way through (not only 0 and the end).
assert any(0 < v < image for v in seen), seen
assert seen == sorted(seen), seen
assert len(set(seen)) >= 2, seen
for p in progress:
    if p["state"] == "verifying" and 0 < p["bytes_verified"] < image:
        assert abs(p["percent"] - 100.0 * p["bytes_verified"] / image) < 0.1, p
PY

# Plain progress lines: "verifying", a percentage below 100 and a rate.
( echo "$BASHPID" > "$cg/cgroup.procs"; ringcopy --progress "$tmp/src.img" "$dev" ) \
	2> "$tmp/lines" || fail "the copy: $(cat "$tmp/lines")"
grep -E "^verifying +[0-9]+\.[0-9]% +[0-9.]+ [KM]iB +[0-9.]+ [KM]iB/s" "$tmp/lines" |
	grep -qv "100\.0%" || fail "no verifying line with its progress: $(cat "$tmp/lines")"
exit 0
