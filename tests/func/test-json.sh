#!/bin/bash
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
assert set(j) == {"image_bytes", "block_size", "source_bytes_read",
                  "source_bytes_before_join", "targets"}
PY
# Only the JSON object on standard output.
[ "$(wc -l < "$tmp/out.json")" -eq 1 ] || fail "stdout has more than JSON"
