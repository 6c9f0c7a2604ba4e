#!/bin/bash
# Twenty invocations started at once on one source: one producer, every
# target complete and verified, the source read once per pass.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 6M
pids=()
for i in $(seq 1 20); do
	ringcopy --json --rate 3M "$tmp/src.img" "$tmp/t$i.img" \
		> "$tmp/$i.json" 2> "$tmp/$i.err" &
	pids+=($!)
done
bg_pids+=("${pids[@]}")
for p in "${pids[@]}"; do
	wait "$p" || fail "an invocation failed: $(cat "$tmp"/*.err)"
done
for i in $(seq 1 20); do
	same "$tmp/src.img" "$tmp/t$i.img"
	json_get "$tmp/$i.json" 'j["targets"][0]["verified"]' | grep -qx True || fail "t$i"
done
joined=$(grep -l "joined the running copy" "$tmp"/*.err | wc -l)
[ "$joined" -eq 19 ] || fail "$joined of 20 joined: more than one producer"
max=$(python3 -c 'import json,sys; print(max(json.load(open(f))["source_bytes_read"] for f in sys.argv[1:]))' "$tmp"/*.json)
# One pass plus the wrap for the latest joiner: well under two passes.
[ "$max" -lt $((12 * 1048576)) ] || fail "source read $max bytes"
