#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A lingering producer accepts a joiner after its last consumer left, reads
# nothing while idle, and exits on time when nobody comes; `ringcopy serve'
# starts only a producer, which SIGTERM ends.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" 4M
# The linger must outlast, on a loaded machine, the first invocation's
# return and the second's start (6 s: 3 s and a 0.5 s pause were
# outrun, issue 27), and end within wait_rings_gone's 10 s.  Neither
# copy reads its target back: the linger runs from a consumer's leave,
# and a read-back after it was most of the 3 s on a loaded machine.
expect_status 0 ringcopy --no-verify --linger "$(vrate 6 15)" --json "$tmp/src.img" "$tmp/a.img" > "$tmp/a.json" 2>/dev/null
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "the producer did not linger"
expect_status 0 ringcopy --no-verify --json "$tmp/src.img" "$tmp/b.img" > "$tmp/b.json" 2> "$tmp/b.err"
# Nobody comes: still there when the last copy has reported (its linger
# runs from its consumer's leave, which on a loaded machine may be a good
# part of it before the invocation returns; looked at first, before any
# python), then gone.
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "the producer did not linger after the last copy"
grep -q "joined the running copy" "$tmp/b.err" || fail "no join: $(cat "$tmp/b.err")"
same "$tmp/src.img" "$tmp/b.img"
# Idle, it read nothing: exactly two passes for two copies.
[ "$(json_get "$tmp/b.json" 'j["source_bytes_read"]')" -eq $((8 * mb)) ] ||
	fail "read $(json_get "$tmp/b.json" 'j["source_bytes_read"]')"
wait_rings_gone || fail "the lingering producer never left"

# serve: only a producer, until SIGTERM.
expect_status 0 ringcopy serve "$tmp/src.img" 2> "$tmp/serve.err"
grep -q "serving .*src.img" "$tmp/serve.err" || fail "$(cat "$tmp/serve.err")"
expect_status 0 ringcopy serve "$tmp/src.img" 2> "$tmp/serve2.err"
grep -q "already being served" "$tmp/serve2.err" || fail "$(cat "$tmp/serve2.err")"
expect_status 0 ringcopy status --json > "$tmp/st.json"
prod=$(json_get "$tmp/st.json" 'j["rings"][0]["producer_pid"]')
# serve said where its producer is, and so does the second serve.
grep -q "serving .*src.img: producer pid $prod, .*until SIGTERM (kill $prod)" "$tmp/serve.err" ||
	fail "serve did not say its producer's pid $prod: $(cat "$tmp/serve.err")"
grep -q "already being served (producer pid $prod)" "$tmp/serve2.err" || fail "$(cat "$tmp/serve2.err")"
# --foreground is serve's, and follows only a producer it starts.
expect_status 2 ringcopy serve --foreground "$tmp/src.img" 2> "$tmp/fg0.err"
grep -q "already being served by producer pid $prod, which this command did not start" "$tmp/fg0.err" ||
	fail "$(cat "$tmp/fg0.err")"
expect_status 2 ringcopy --foreground "$tmp/src.img" "$tmp/x.img" 2> "$tmp/fg1.err"
grep -q "\-\-foreground is an option of serve" "$tmp/fg1.err" || fail "$(cat "$tmp/fg1.err")"
[ ! -e "$tmp/x.img" ] || fail "a refused copy wrote its target"
# Idle means no CPU: its CPU time does not move.  (A measured second on
# purpose: a loaded machine only makes an idle producer's ticks fewer.)
c0=$(awk '{print $14 + $15}' "/proc/$prod/stat")
sleep 1
c1=$(awk '{print $14 + $15}' "/proc/$prod/stat")
[ $((c1 - c0)) -le 1 ] || fail "an idle producer used $((c1 - c0)) ticks"
expect_status 0 ringcopy -q "$tmp/src.img" "$tmp/c.img"
same "$tmp/src.img" "$tmp/c.img"
kill -TERM "$prod"
wait_rings_gone || fail "serve did not end on SIGTERM"

# serve --foreground: returns when its producer leaves (here its linger
# ends), not before; with --json it says the pid on standard output.
expect_status 0 ringcopy serve --foreground --linger 1 --json "$tmp/src.img" > "$tmp/fg.json" 2> "$tmp/fg.err"
[ -z "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "serve --foreground returned before its producer left"
pid=$(json_get "$tmp/fg.json" 'j["producer_pid"]')
json_get "$tmp/fg.json" 'j["started"]' | grep -qx True || fail "$(cat "$tmp/fg.json")"
grep -q "producer pid $pid of .*src.img has left" "$tmp/fg.err" || fail "$(cat "$tmp/fg.err")"
# ... and SIGTERM to it is passed on to the producer, which leaves.
ringcopy serve --foreground --json "$tmp/src.img" > "$tmp/fg2.json" 2> "$tmp/fg2.err" &
bg_pids+=($!)
wait_ring
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	[ -s "$tmp/fg2.json" ] && break
	sleep 0.1
done
pid=$(json_get "$tmp/fg2.json" 'j["producer_pid"]')
serve=$(pgrep -P "${bg_pids[-1]}")
[ -n "$serve" ] || fail "serve --foreground did not stay"
# A pause on purpose: it must not leave by itself meanwhile (a loaded
# machine cannot make a wrong serve look right, only slower to fail).
sleep 0.5
kill -0 "$serve" 2>/dev/null || fail "serve --foreground left with its producer still there"
kill -TERM "$serve"
expect_status 0 wait "${bg_pids[-1]}"
[ -z "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "the producer outlived serve --foreground"
st=$(ps -o stat= -p "$pid") && [[ $st != Z* ]] && fail "producer $pid still runs"

# serve where a plain copy's producer reads the source (it does not
# linger: once the copy ends nothing would serve it): refused, exit 2,
# naming the producer.  The producer is stopped meanwhile, so the copy
# cannot end first.
ringcopy --rate 1M "$tmp/src.img" "$tmp/d.img" 2> "$tmp/d.err" &
bg_pids+=($!)
producer=$(stop_at_block d.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 2 ringcopy serve "$tmp/src.img" 2> "$tmp/serve3.err"
grep -q "serve $tmp/src.img refused: it is being read by producer pid $producer, which does not linger (a plain copy's)" "$tmp/serve3.err" ||
	fail "$(cat "$tmp/serve3.err")"
expect_status 2 ringcopy serve --json "$tmp/src.img" > "$tmp/serve3.json" 2> /dev/null
[ -s "$tmp/serve3.json" ] && fail "a refused serve printed $(cat "$tmp/serve3.json")"
# A --linger as long as the producer's is served already.
kill -CONT "$producer"
expect_status 0 wait "${bg_pids[-1]}"
wait_rings_gone || fail "the copy's producer did not leave"
ringcopy --linger 30 --rate 1M "$tmp/src.img" "$tmp/e.img" 2> "$tmp/e.err" &
bg_pids+=($!)
producer=$(stop_at_block e.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 2 ringcopy serve "$tmp/src.img" 2> "$tmp/serve4.err"
grep -q "producer pid $producer, which lingers only 30 s" "$tmp/serve4.err" || fail "$(cat "$tmp/serve4.err")"
expect_status 0 ringcopy serve --linger 30 "$tmp/src.img" 2> "$tmp/serve5.err"
grep -q "already being served (producer pid $producer): nothing to do" "$tmp/serve5.err" ||
	fail "$(cat "$tmp/serve5.err")"
kill -CONT "$producer"
expect_status 0 wait "${bg_pids[-1]}"
kill -TERM "$producer"
wait_rings_gone || fail "the lingering producer did not end on SIGTERM"
true
