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
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
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
# Far below the 60 s stall timeout, so the death was seen as a death (2.5 s
# was beaten by a loaded machine, issue 27).
[ $(( (t1 - t0) / 1000000 )) -lt $(( $(slow 10) * 1000 )) ] ||
	fail "took $(( (t1 - t0) / 1000000 )) ms"
