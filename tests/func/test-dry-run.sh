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
ringcopy --rate "$(vrate 1M 256K)" "$tmp/src.img" "$tmp/a.img" 2>/dev/null &
bg_pids+=($!)
wait_consumers "${bg_pids[0]}" 1 > /dev/null || fail "no consumer"
sleep 1
ls -A "$RINGCOPY_RUNDIR" > "$tmp/rundir.before"
expect_status 0 ringcopy --dry-run "$tmp/src.img" "$tmp/b.img" > "$tmp/out"
grep -q "^would join the running copy (producer pid [0-9]*) at block [0-5] of 6" "$tmp/out" ||
	fail "$(cat "$tmp/out")"
ls -A "$RINGCOPY_RUNDIR" | diff - "$tmp/rundir.before" || fail "the run directory changed"
[ ! -e "$tmp/b.img" ] || fail "created b.img"
# What the election would refuse, the dry run refuses: a block size that
# conflicts with the running copy's.
expect_status 2 ringcopy --dry-run -b 64K "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err"
grep -q -- "--block-size 65536 conflicts with the running copy of this source (block size 1048576)" "$tmp/err" ||
	fail "dry run: $(cat "$tmp/err")"
expect_status 2 ringcopy -b 64K "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err2"
diff "$tmp/err" "$tmp/err2" || fail "the dry run and the run say different things"
[ ! -e "$tmp/b.img" ] || fail "created b.img"
wait "${bg_pids[0]}" || fail "the copy"

# No run directory (no RINGCOPY_RUNDIR, a user without XDG_RUNTIME_DIR):
# refused with exit 2, by the dry run as by the run; status says it cannot
# look rather than "no copies running".
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	chmod 755 "$tmp"
	mkdir -m 1777 "$tmp/pub"
	for dry in --dry-run ""; do
		st=0
		su nobody -s /bin/sh -c "env -u XDG_RUNTIME_DIR -u RINGCOPY_RUNDIR $RINGCOPY $dry $tmp/src.img $tmp/pub/n.img" \
			2> "$tmp/err" || st=$?
		[ "$st" = 2 ] || fail "no run directory ($dry): exit $st, want 2: $(cat "$tmp/err")"
		grep -q "no run directory: set XDG_RUNTIME_DIR or RINGCOPY_RUNDIR" "$tmp/err" ||
			fail "$(cat "$tmp/err")"
		[ ! -e "$tmp/pub/n.img" ] || fail "no run directory ($dry): the target was written"
	done
	st=0
	su nobody -s /bin/sh -c "env -u XDG_RUNTIME_DIR -u RINGCOPY_RUNDIR $RINGCOPY status" 2> "$tmp/err" || st=$?
	[ "$st" = 1 ] || fail "status without a run directory: exit $st, want 1"
	grep -q "cannot look for running copies" "$tmp/err" || fail "$(cat "$tmp/err")"
fi
