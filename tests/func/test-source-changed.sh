#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The source rewritten while a late joiner waits for the wrap: the producer
# sees block 0 hash differently on the second pass and fails the ring; no
# target completes holding a mix of two versions.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" 16M
cp "$tmp/src.img" "$tmp/orig.img"
ringcopy --json --rate 4M --buffer 2M "$tmp/src.img" "$tmp/first.img" \
	> "$tmp/first.json" 2> "$tmp/first.err" &
first=$!
bg_pids+=("$first")
# The producer is held once the first copy has a block, while the joiner
# joins and the source changes: nothing here waits on the clock.
producer=$(stop_at_block first.img 1) || fail "the first copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
ringcopy --json "$tmp/src.img" "$tmp/late.img" > "$tmp/late.json" 2> "$tmp/late.err" &
late=$!
bg_pids+=("$late")
wait_said "$tmp/late.err" "joined the running copy"
# Block 0 was read for the first copy; the joiner needs it after the wrap.
printf 'CHANGED' | dd of="$tmp/src.img" bs=1 seek=100 conv=notrunc 2>/dev/null
kill -CONT "$producer"
wait "$first"; s1=$?
wait "$late"; s2=$?
[ "$s1" -eq 0 ] || fail "first copy (read before the change): $(cat "$tmp/first.err")"
same "$tmp/orig.img" "$tmp/first.img"
[ "$s2" -eq 1 ] || fail "joiner exited $s2: $(cat "$tmp/late.err")"
grep -q "source .*src.img changed at offset 0" "$tmp/late.err" ||
	fail "no 'changed' message: $(cat "$tmp/late.err")"
json_get "$tmp/late.json" 'j["targets"][0]["status"]' | grep -qx failed || fail "status"
