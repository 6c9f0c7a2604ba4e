#!/bin/bash
# --dry-run says what would happen and leaves every target and the run
# directory untouched.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 6M
mkimage "$tmp/old.img" 1M 4
cp "$tmp/old.img" "$tmp/old.orig"
expect_status 0 ringcopy --dry-run "$tmp/src.img" "$tmp/new.img" "$tmp/old.img" null: > "$tmp/out"
grep -q "^would start a new copy" "$tmp/out" || fail "$(cat "$tmp/out")"
grep -q "^target $tmp/new.img: file backend, a new file" "$tmp/out" || fail "$(cat "$tmp/out")"
grep -q "^target null:: null backend" "$tmp/out" || fail "$(cat "$tmp/out")"
[ ! -e "$tmp/new.img" ] || fail "created a target"
same "$tmp/old.orig" "$tmp/old.img"
[ ! -e "$RINGCOPY_RUNDIR" ] || fail "created the run directory"
expect_status 0 ringcopy --dry-run --rescue "$tmp/map" "$tmp/src.img" "$tmp/new.img" > /dev/null
[ ! -e "$tmp/map" ] || fail "created the rescue map"
# A refusal is still a refusal.
expect_status 2 ringcopy --dry-run "$tmp/src.img" "$tmp/src.img" 2> /dev/null

# With a copy running: where it would join.
ringcopy --rate 1M "$tmp/src.img" "$tmp/a.img" 2>/dev/null &
bg_pids+=($!)
wait_consumers "${bg_pids[0]}" 1 > /dev/null || fail "no consumer"
sleep 1
ls -A "$RINGCOPY_RUNDIR" > "$tmp/rundir.before"
expect_status 0 ringcopy --dry-run "$tmp/src.img" "$tmp/b.img" > "$tmp/out"
grep -q "^would join the running copy (producer pid [0-9]*) at block [1-5] of 6" "$tmp/out" ||
	fail "$(cat "$tmp/out")"
ls -A "$RINGCOPY_RUNDIR" | diff - "$tmp/rundir.before" || fail "the run directory changed"
[ ! -e "$tmp/b.img" ] || fail "created b.img"
wait "${bg_pids[0]}" || fail "the copy"
