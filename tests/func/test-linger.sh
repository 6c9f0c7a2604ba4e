#!/bin/bash
# A lingering producer accepts a joiner after its last consumer left, reads
# nothing while idle, and exits on time when nobody comes; `ringcopy serve'
# starts only a producer, which SIGTERM ends.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" 4M
expect_status 0 ringcopy --linger "$(vrate 3 15)" --json "$tmp/src.img" "$tmp/a.img" > "$tmp/a.json" 2>/dev/null
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "the producer did not linger"
sleep 0.5
expect_status 0 ringcopy --json "$tmp/src.img" "$tmp/b.img" > "$tmp/b.json" 2> "$tmp/b.err"
grep -q "joined the running copy" "$tmp/b.err" || fail "no join: $(cat "$tmp/b.err")"
same "$tmp/src.img" "$tmp/b.img"
# Idle, it read nothing: exactly two passes for two copies.
[ "$(json_get "$tmp/b.json" 'j["source_bytes_read"]')" -eq $((8 * mb)) ] ||
	fail "read $(json_get "$tmp/b.json" 'j["source_bytes_read"]')"
# Nobody comes: still there when the last copy has reported (its linger
# runs from its consumer's leave, which on a loaded machine may be most of
# the 3 s before the invocation returns), then gone.
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "the producer did not linger after the last copy"
wait_rings_gone || fail "the lingering producer never left"

# serve: only a producer, until SIGTERM.
expect_status 0 ringcopy serve "$tmp/src.img" 2> "$tmp/serve.err"
grep -q "serving .*src.img" "$tmp/serve.err" || fail "$(cat "$tmp/serve.err")"
expect_status 0 ringcopy serve "$tmp/src.img" 2> "$tmp/serve2.err"
grep -q "already being served" "$tmp/serve2.err" || fail "$(cat "$tmp/serve2.err")"
expect_status 0 ringcopy status --json > "$tmp/st.json"
prod=$(json_get "$tmp/st.json" 'j["rings"][0]["producer_pid"]')
# Idle means no CPU: its CPU time does not move.
c0=$(awk '{print $14 + $15}' "/proc/$prod/stat")
sleep 1
c1=$(awk '{print $14 + $15}' "/proc/$prod/stat")
[ $((c1 - c0)) -le 1 ] || fail "an idle producer used $((c1 - c0)) ticks"
expect_status 0 ringcopy -q "$tmp/src.img" "$tmp/c.img"
same "$tmp/src.img" "$tmp/c.img"
kill -TERM "$prod"
wait_rings_gone || fail "serve did not end on SIGTERM"
