#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --json: one object on standard output with the documented fields.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" $((2 * 1048576 + 5))
expect_status 0 ringcopy --json -b 256K "$tmp/src.img" "$tmp/a.img" null: \
	> "$tmp/out.json" 2> /dev/null
python3 - "$tmp/out.json" "$tmp/a.img" <<'PY' || fail "json: $(cat "$tmp/out.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["image_bytes"] == 2 * 1048576 + 5, j
assert j["block_size"] == 262144, j
assert j["source_bytes_read"] == j["image_bytes"], j
t = j["targets"]
assert [x["target"] for x in t] == [sys.argv[2], "null:"], t
for x in t:
    assert x["status"] == "ok" and x["error"] is None, x
    assert x["start_block"] == 0 and x["bytes_written"] == j["image_bytes"], x
    assert isinstance(x["seconds"], float) and x["seconds"] >= 0, x
assert j["source_bytes_before_join"] == 0, j
# A file is read back and verified; null: cannot be: written, not verified.
assert t[0]["verified"] is True and t[0]["verifiable"] is True, t[0]
assert t[1]["verified"] is False and t[1]["verifiable"] is False, t[1]
assert t[1]["verify_method"] == "none", t[1]
assert set(j) == {"image_bytes", "block_size", "source_bytes_read",
                  "source_bytes_before_join", "targets_rescued", "targets"}
assert j["targets_rescued"] == 0, j
# What was read back and compared: all of a file, nothing of null:.
assert t[0]["bytes_verified"] == j["image_bytes"], t[0]
assert t[1]["bytes_verified"] == 0, t[1]
PY
# Only the JSON object on standard output.
[ "$(wc -l < "$tmp/out.json")" -eq 1 ] || fail "stdout has more than JSON"

# The same in words: null: and standard output are written, not verified.
expect_status 0 ringcopy "$tmp/src.img" null: - > /dev/null 2> "$tmp/words"
[ "$(grep -c "written, cannot be read back: not verified" "$tmp/words")" = 2 ] ||
	fail "null: and - not reported as unverifiable: $(cat "$tmp/words")"
expect_status 0 ringcopy --no-verify "$tmp/src.img" "$tmp/nv.img" 2> "$tmp/words"
grep -q "not verified (--no-verify)" "$tmp/words" || fail "--no-verify: $(cat "$tmp/words")"
# A file name that is not UTF-8 still gives valid JSON.
name=$(printf '%s/caf\351.img' "$tmp")
expect_status 0 ringcopy --json "$tmp/src.img" "$name" > "$tmp/latin1.json" 2> /dev/null
python3 -c 'import json,sys; j=json.load(open(sys.argv[1], encoding="utf-8")); assert j["targets"][0]["target"].endswith("caf\ufffd.img"), j' \
	"$tmp/latin1.json" || fail "invalid JSON for a latin-1 name: $(cat -v "$tmp/latin1.json")"

# A report that cannot be written is an error, not an "ok": exit 1 and a
# message on standard error, for the copy, status and --help.
if [ -w /dev/full ]; then
	expect_status 1 ringcopy --json "$tmp/src.img" "$tmp/full.img" > /dev/full 2> "$tmp/err"
	grep -q "ringcopy: write error on standard output" "$tmp/err" || fail "copy: $(cat "$tmp/err")"
	same "$tmp/src.img" "$tmp/full.img"
	expect_status 1 ringcopy status --json > /dev/full 2> "$tmp/err"
	grep -q "write error on standard output" "$tmp/err" || fail "status: $(cat "$tmp/err")"
	expect_status 1 ringcopy --help > /dev/full 2> "$tmp/err"
	grep -q "write error on standard output" "$tmp/err" || fail "--help: $(cat "$tmp/err")"
	# A reader that goes away chose not to read: not an error.
	ringcopy --json "$tmp/src.img" "$tmp/pipe.img" 2> /dev/null | true
	[ "${PIPESTATUS[0]}" = 0 ] || fail "a closed pipe: exit ${PIPESTATUS[0]}"
fi
