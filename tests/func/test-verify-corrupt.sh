#!/bin/bash
# Corruption between the write and the read-back is caught by the built-in
# verification: exit 3, the offset named, the other targets fine.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((5 * mb))
expect_status 3 ringcopy --json "$tmp/src.img" "$tmp/good.img" \
	"fault:corrupt-at=$((3 * mb + 5)):$tmp/bad.img" > "$tmp/out.json" 2> "$tmp/err"
grep -q "^MISMATCH .*bad.img .*verification failed: 1 bad block at offset $((3 * mb))" "$tmp/err" ||
	fail "no mismatch line: $(cat "$tmp/err")"
python3 - "$tmp/out.json" <<'PY' || fail "json: $(cat "$tmp/out.json")"
import json, sys
good, bad = json.load(open(sys.argv[1]))["targets"]
assert good["status"] == "ok" and good["verified"] is True, good
assert bad["status"] == "mismatch" and bad["verified"] is False, bad
assert str(3 * 1048576) in bad["error"], bad
assert bad["digest"] != good["digest"], (good, bad)
PY
same "$tmp/src.img" "$tmp/good.img"

# --no-verify: the copy is not read back, and says so.
expect_status 0 ringcopy --json --no-verify "$tmp/src.img" \
	"fault:corrupt-at=0:$tmp/nv.img" > "$tmp/nv.json" 2>/dev/null
json_get "$tmp/nv.json" 'j["targets"][0]["verified"]' | grep -qx False || fail "verified?"

# A short write and a failing fsync fail their own target only.
expect_status 1 ringcopy --json "$tmp/src.img" "fault:short:$tmp/s.img" \
	"fault:flush-fail:$tmp/f.img" "fault:write-at=$((2 * mb)),errno=ENOSPC:$tmp/w.img" \
	> "$tmp/x.json" 2> "$tmp/x.err"
same "$tmp/src.img" "$tmp/s.img"
grep -q "^FAILED .*f.img.*fsync: Input/output error" "$tmp/x.err" || fail "fsync: $(cat "$tmp/x.err")"
grep -q "^FAILED .*w.img.*write of 1048576 bytes at offset $((2 * mb)): No space left on device" "$tmp/x.err" ||
	fail "ENOSPC: $(cat "$tmp/x.err")"
