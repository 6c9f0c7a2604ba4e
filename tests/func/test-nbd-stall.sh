#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# An NBD target whose server stops (SIGSTOP) is evicted after
# --stall-timeout and reported as evicted, while the server is still
# stopped: its consumer does not wait for the server's answer to notice,
# and the other target finishes.  (It used to report "ring slot N was
# overwritten ..." and return only once the server resumed.)
source "$top_srcdir/tests/func/functions.sh"
requires nbdkit --version
"$RINGCOPY" nbd+unix:///?socket=/nonexistent "$tmp/x" 2>&1 | grep -q "built without libnbd" &&
	skip "ringcopy was built without libnbd"

mkimage "$tmp/src.img" 8M
nbdkit -U "$tmp/m.sock" -P "$tmp/m.pid" memory 16M || fail "nbdkit"
for (( i = 0; i < $(slow 20) * 20; i++ )); do [ -S "$tmp/m.sock" ] && break; sleep 0.05; done
srv=$(cat "$tmp/m.pid")
on_exit "kill -CONT $srv 2>/dev/null; kill $srv 2>/dev/null"

ringcopy --stall-timeout 2 --rate "$(vrate 4M 2M)" --buffer 1M "$tmp/src.img" "$tmp/a.img" \
	"nbd+unix:///?socket=$tmp/m.sock" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# The server stops mid-copy, made and not hoped for (issue 27): the
# producer is held once the NBD target has a block, so a loaded machine
# cannot let the copy end before the server stops.
producer=$(stop_at_block m.sock 1) || fail "the NBD target did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
kill -STOP "$srv"
kill -CONT "$producer"
for (( i = 0; i < $(slow 15) * 10; i++ )); do
	kill -0 "$inv" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$inv" 2>/dev/null && fail "the invocation waits for the stopped server ($(slow 15) s)"
wait "$inv"
[ $? -eq 1 ] || fail "exit status"
grep -q "^FAILED .*nbd+unix.*evicted from the ring: it made no progress for more than 2 s" "$tmp/err" ||
	fail "not reported as evicted: $(cat "$tmp/err")"
grep -q "^ok .*a.img" "$tmp/err" || fail "the other target: $(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/a.img"
kill -CONT "$srv"
