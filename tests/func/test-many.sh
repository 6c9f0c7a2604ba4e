#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Twenty invocations started at once on one source: one producer, every
# target complete and verified, the source read once per pass.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 6M
pids=()
for i in $(seq 1 20); do
	ringcopy --json --rate 3M --buffer 1M "$tmp/src.img" "$tmp/t$i.img" \
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
# What the latest joiner found read before it, plus its image, plus one
# ring: the producer reads no further.
python3 - "$tmp"/*.json <<'PY' || fail "the source was read more than the protocol allows"
import json, sys
js = [json.load(open(f)) for f in sys.argv[1:]]
read = max(j["source_bytes_read"] for j in js)
late = max(j["source_bytes_before_join"] for j in js)
limit = late + 6 * 2**20 + 2**20
assert read <= limit, (read, late, limit)
PY
