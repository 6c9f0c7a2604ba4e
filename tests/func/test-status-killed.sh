#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `ringcopy status' looks at the producer's liveness token: a producer
# killed with SIGKILL is "gone", not "running", and status exits 1 naming
# it.  (The consumers are stopped meanwhile, so that the ring outlives its
# producer while status looks; once continued they fail and the last one
# out removes it.)
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 8M
ringcopy -b 4K --buffer 64K --rate "$(vrate 1M 256K)" "$tmp/src.img" \
	"$tmp/a.img" "$tmp/b.img" "$tmp/c.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# The producer held at block 1 (stopped: alive, so "running") while the
# consumers are found: an 8 s copy could end first on a loaded machine.
held=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $held 2>/dev/null"
cons=$(wait_consumers "$inv" 3) || fail "no consumers"
prod=$(ps -eo pid=,sid=,args= | awk -v t="$tmp/src.img" '$1 == $2 && index($0, t) { print $1 }')
[ -n "$prod" ] || fail "no producer found"
[ "$prod" = "$held" ] || fail "status says producer $held, ps says $prod"
expect_status 0 ringcopy status > "$tmp/s0"
grep -q "producer pid $prod, running" "$tmp/s0" || fail "before: $(cat "$tmp/s0")"
kill -STOP $cons
kill -KILL "$prod"
while kill -0 "$prod" 2>/dev/null; do sleep 0.1; done
expect_status 1 ringcopy status > "$tmp/s1" 2> "$tmp/s1.err"
grep -q "producer pid $prod, gone" "$tmp/s1" || fail "text: $(cat "$tmp/s1")"
grep -q "status: .*/src.img: its producer (pid $prod) is gone" "$tmp/s1.err" ||
	fail "message: $(cat "$tmp/s1.err")"
expect_status 1 ringcopy status --json > "$tmp/s1.json" 2> /dev/null
json_get "$tmp/s1.json" 'j["rings"][0]["state"]' | grep -qx gone ||
	fail "json: $(cat "$tmp/s1.json")"
kill -CONT $cons
wait "$inv"
status=$?
[ "$status" -eq 1 ] || fail "exit $status"
[ "$(grep -c "^FAILED .*producer died (pid $prod)" "$tmp/err")" -eq 3 ] ||
	fail "messages: $(cat "$tmp/err")"
