#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A consumer stopped longer than --stall-timeout is evicted with an error
# for its target only; the other target finishes.  A consumer that dies
# while its invocation is stopped stays an unreaped zombie: it is evicted
# all the same, and the joiner finishes.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 8M
# 4 s at 2M/s: on a loaded machine (load average 16) a 2 s copy ended
# before two polls had seen its consumers.
ringcopy --stall-timeout 1 --rate "$(vrate 2M 1M)" --buffer 1M "$tmp/src.img" "$tmp/a.img" "$tmp/b.img" \
	2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# Its producer held at block 1 while the consumers are found and one is
# stopped: the copy cannot end first, however loaded the machine is.
producer=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
victim=$(wait_consumers "$inv" 2) || fail "no consumers"
victim=$(tail -n 1 <<< "$victim")
kill -STOP "$victim"
kill -CONT "$producer"
# The other target completes despite the stopped one.
for (( i = 0; i < $(slow 20) * 10; i++ )); do
	cmp -s "$tmp/src.img" "$tmp/a.img" && break
	cmp -s "$tmp/src.img" "$tmp/b.img" && break
	sleep 0.1
done
kill -CONT "$victim"
wait "$inv"
[ $? -eq 1 ] || fail "exit status"
grep -q "^FAILED .*evicted from the ring: it made no progress for more than 1 s" "$tmp/err" ||
	fail "no eviction: $(cat "$tmp/err")"
[ "$(grep -c '^ok' "$tmp/err")" -eq 1 ] || fail "the other target: $(cat "$tmp/err")"

# The zombie.
ringcopy --rate 2M "$tmp/src.img" "$tmp/z1.img" 2> "$tmp/z1.err" &
z=$!
bg_pids+=("$z")
# The producer held at block 1 until the joiner has joined and the
# first consumer is a zombie (not a 0.5 s pause a loaded machine outran).
producer=$(stop_at_block z1.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
zc=$(wait_consumers "$z" 1 | head -n 1) || fail "no consumer"
ringcopy "$tmp/src.img" "$tmp/z2.img" 2> "$tmp/z2.err" &
j=$!
bg_pids+=("$j")
wait_said "$tmp/z2.err" "joined the running copy"
main=$(pgrep -P "$z" | head -n 1)
kill -STOP "$main"
kill -KILL "$zc"
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q '^State:.*Z' "/proc/$zc/status" 2>/dev/null && break
	sleep 0.1
done
grep -q '^State:.*Z' "/proc/$zc/status" 2>/dev/null || fail "the consumer is not a zombie"
kill -CONT "$producer"
wait "$j" || fail "the joiner did not finish: $(cat "$tmp/z2.err")"
same "$tmp/src.img" "$tmp/z2.img"
kill -CONT "$main"
wait "$z"
[ $? -eq 1 ] || fail "the stopped invocation should exit 1"
grep -q "killed by signal 9" "$tmp/z1.err" || fail "$(cat "$tmp/z1.err")"
