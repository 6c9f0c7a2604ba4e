#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A second invocation started while the first copies joins its ring: it
# starts at the block being read, wraps to block 0, and the source is read
# only as far as the wrap requires.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" 16M
ringcopy --json --rate "$(vrate 4M 2M)" --buffer 4M "$tmp/src.img" "$tmp/first.img" \
	> "$tmp/first.json" 2> "$tmp/first.err" &
first=$!
bg_pids+=("$first")
# Join once the first copy has two blocks, its producer held meanwhile.
expect_status 0 held_join first.img 2 "$tmp/late.err" ringcopy --json "$tmp/src.img" "$tmp/late.img" \
	> "$tmp/late.json"
wait "$first" || fail "first invocation failed: $(cat "$tmp/first.err")"

same "$tmp/src.img" "$tmp/first.img"
same "$tmp/src.img" "$tmp/late.img"
grep -q "joined the running copy" "$tmp/late.err" || fail "did not join"

start=$(json_get "$tmp/late.json" 'j["targets"][0]["start_block"]')
read_bytes=$(json_get "$tmp/late.json" 'j["source_bytes_read"]')
first_start=$(json_get "$tmp/first.json" 'j["targets"][0]["start_block"]')
[ "$first_start" -eq 0 ] || fail "first started at $first_start"
[ "$start" -gt 0 ] || fail "joiner started at block $start"
[ "$start" -lt 16 ] || fail "joiner start block $start out of range"
# image + the joiner's lateness + one ring (4 MiB).
limit=$(( 16 * mb + start * mb + 4 * mb ))
[ "$read_bytes" -le "$limit" ] ||
	fail "source read $read_bytes bytes, limit $limit"
[ "$read_bytes" -ge $(( 16 * mb + start * mb )) ] ||
	fail "source read $read_bytes bytes: the wrap is missing"
