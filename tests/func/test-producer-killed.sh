#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A killed producer makes every consumer fail within 2 s with "producer
# died", exit 1; the last one out removes the IPC objects and the
# rendezvous file (the exit trap checks both).
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 16M
ringcopy --rate 2M "$tmp/src.img" "$tmp/a.img" "$tmp/b.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
wait_consumers "$inv" 2 > /dev/null || fail "no consumers"
# The producer: a ringcopy process that leads its own session.
prod=$(ps -eo pid=,sid=,args= | awk -v t="$tmp/src.img" '$1 == $2 && index($0, t) { print $1 }')
[ -n "$prod" ] || fail "no producer found"
t0=$(date +%s%N)
kill -KILL $prod
wait "$inv"
status=$?
t1=$(date +%s%N)
[ "$status" -eq 1 ] || fail "exit $status"
[ "$(grep -c "^FAILED .*producer died (pid $prod)" "$tmp/err")" -eq 2 ] ||
	fail "messages: $(cat "$tmp/err")"
[ $(( (t1 - t0) / 1000000 )) -lt $(( $(slow 2) * 1000 + 500 )) ] ||
	fail "took $(( (t1 - t0) / 1000000 )) ms"
