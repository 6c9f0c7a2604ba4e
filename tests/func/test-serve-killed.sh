#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# serve --foreground whose producer is killed (the OOM killer, a stray
# kill -9) exits 1 and says so: a service manager restarts a server that
# failed (ringcopy-serve@.service has Restart=on-failure), not one that
# ended.  The killed producer's ring is left; the next copy of the source
# removes it and copies (the exit trap checks nothing is left).
# scripts/check-units.sh checks the restart itself under systemd.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 4M
ringcopy serve --foreground --json "$tmp/src.img" > "$tmp/fg.json" 2> "$tmp/fg.err" &
bg_pids+=($!)
wait_ring
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	[ -s "$tmp/fg.json" ] && break
	sleep 0.1
done
pid=$(json_get "$tmp/fg.json" 'j["producer_pid"]') || fail "no producer pid: $(cat "$tmp/fg.err")"
kill -KILL "$pid"
expect_status 1 wait "${bg_pids[-1]}"
grep -q "producer pid $pid of .*src.img was killed: it left its ring (shm [0-9]*, sem [0-9]*), which the next ringcopy of .*src.img removes" "$tmp/fg.err" ||
	fail "serve --foreground did not say its producer was killed: $(cat "$tmp/fg.err")"
grep -q "has left" "$tmp/fg.err" && fail "serve --foreground said its killed producer left: $(cat "$tmp/fg.err")"
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "no ring was left: this test kills nothing"

expect_status 0 ringcopy -q "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/a.img"
