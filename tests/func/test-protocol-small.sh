#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The ring protocol at a small geometry (-b 4K --buffer 64K: 16 slots), no
# rate limit, three and more targets: joins, a stall eviction and a killed
# consumer in one ring, held still deterministically by a target that
# cannot be written (standard output into a pipe whose reader is stopped).
#
# Copy 1: a, b and standard output (--stall-timeout 3).  The pipe fills,
# its consumer blocks, and the producer waits for its credits.  Copy 2
# joins the held ring with e, f and g; g's consumer is killed.  After 3 s
# without progress the stdout consumer is evicted and the ring runs on:
# a, b, e and f are complete, standard output failed (evicted), g failed
# (signal 9); both invocations exit 1; the ring is removed.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 12M   # 3072 blocks of 4K
mkfifo "$tmp/pipe"
# The reader opens the pipe and stops before it reads a byte.
sh -c 'kill -STOP $$; exec cat' < "$tmp/pipe" > "$tmp/out.img" &
reader=$!
on_exit "kill -CONT $reader 2>/dev/null"
ringcopy -b 4K --buffer 64K --stall-timeout "$(slow 3)" \
	"$tmp/src.img" "$tmp/a.img" "$tmp/b.img" - > "$tmp/pipe" 2> "$tmp/err1" &
inv1=$!
bg_pids+=("$inv1")
wait_consumers "$inv1" 3 > /dev/null || fail "no consumers"
ringcopy -b 4K --buffer 64K "$tmp/src.img" "$tmp/e.img" "$tmp/f.img" \
	"$tmp/g.img" 2> "$tmp/err2" &
inv2=$!
bg_pids+=("$inv2")
victim=$(wait_consumers "$inv2" 3 | tail -n 1) || fail "no joiners"
grep -q "joined the running copy" "$tmp/err2" ||
	fail "copy 2 did not join: $(cat "$tmp/err2")"
kill -KILL "$victim"
wait "$inv2"
status=$?
[ "$status" -eq 1 ] || fail "copy 2 exit $status: $(cat "$tmp/err2")"
[ "$(grep -c '^ok' "$tmp/err2")" -eq 2 ] || fail "copy 2: $(cat "$tmp/err2")"
grep -q "^FAILED .*signal 9" "$tmp/err2" || fail "copy 2: $(cat "$tmp/err2")"
kill -CONT "$reader"
wait "$inv1"
status=$?
[ "$status" -eq 1 ] || fail "copy 1 exit $status: $(cat "$tmp/err1")"
[ "$(grep -c '^ok' "$tmp/err1")" -eq 2 ] || fail "copy 1: $(cat "$tmp/err1")"
grep -q "^FAILED .*evicted from the ring: it made no progress" "$tmp/err1" ||
	fail "no eviction: $(cat "$tmp/err1")"
for t in a b e f; do
	same "$tmp/src.img" "$tmp/$t.img"
done
wait "$reader"
wait_rings_gone || fail "ring left"
