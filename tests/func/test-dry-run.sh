#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --dry-run says what would happen and leaves every target and the run
# directory untouched.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 6M
mkimage "$tmp/old.img" 1M 4
cp "$tmp/old.img" "$tmp/old.orig"
expect_status 0 ringcopy --dry-run "$tmp/src.img" "$tmp/new.img" "$tmp/old.img" null: > "$tmp/out"
grep -q "^would start a new copy" "$tmp/out" || fail "$(cat "$tmp/out")"
grep -q "^target $tmp/new.img (file backend): a new file" "$tmp/out" || fail "$(cat "$tmp/out")"
grep -q "^target $tmp/old.img (file backend): an existing file, truncated to the image" "$tmp/out" || fail "$(cat "$tmp/out")"
grep -q "^target null: (null backend): writes nowhere (a sink)" "$tmp/out" || fail "$(cat "$tmp/out")"
[ ! -e "$tmp/new.img" ] || fail "created a target"
same "$tmp/old.orig" "$tmp/old.img"
[ ! -e "$RINGCOPY_RUNDIR" ] || fail "created the run directory"
expect_status 0 ringcopy --dry-run --rescue "$tmp/map" "$tmp/src.img" "$tmp/new.img" > /dev/null
[ ! -e "$tmp/map" ] || fail "created the rescue map"
# A refusal is still a refusal.
expect_status 2 ringcopy --dry-run "$tmp/src.img" "$tmp/src.img" 2> /dev/null
# --skip-equal keeps an existing file: not "truncated".
expect_status 0 ringcopy --dry-run --skip-equal "$tmp/src.img" "$tmp/old.img" > "$tmp/out"
grep -q "^target $tmp/old.img (file backend): an existing file, sized to the image and kept: only the blocks that differ would be written (--skip-equal)" "$tmp/out" ||
	fail "$(cat "$tmp/out")"
grep -q truncated "$tmp/out" && fail "--skip-equal --dry-run: $(cat "$tmp/out")"

# Every refusal of the run is predicted, with the same words (issue 27):
# dry_same PATTERN ARGS...: the dry run and the run both exit 2 saying it.
dry_same() {
	local pat=$1
	shift
	expect_status 2 ringcopy --dry-run "$@" 2> "$tmp/dry.err"
	expect_status 2 ringcopy "$@" 2> "$tmp/run.err"
	grep -q -- "$pat" "$tmp/dry.err" || fail "dry run of '$*': $(cat "$tmp/dry.err")"
	diff "$tmp/dry.err" "$tmp/run.err" || fail "the dry run and the run of '$*' say different things"
	[ ! -e "$tmp/n.img" ] || fail "'$*' wrote its target"
}
# A RINGCOPY_RUNDIR whose parent is missing.
RINGCOPY_RUNDIR=$tmp/no/run dry_same "run directory $tmp/no/run: mkdir: No such file or directory" \
	"$tmp/src.img" "$tmp/n.img"
# A run directory made by a plain mkdir (0755): says the chmod.
mkdir -m 755 "$tmp/run755"
RINGCOPY_RUNDIR=$tmp/run755 dry_same "run directory $tmp/run755 refused: owned by uid $(id -u) with mode 755, want uid $(id -u) and 0700: chmod 700 $tmp/run755" \
	"$tmp/src.img" "$tmp/n.img"
# An existing --rescue map that cannot be written (immutable for root).
echo "# a map" > "$tmp/ro.map"
if [ "$(id -u)" != 0 ]; then
	chmod 444 "$tmp/ro.map"
elif chattr +i "$tmp/ro.map" 2> /dev/null; then
	on_exit "chattr -i $tmp/ro.map"
else
	rm -f "$tmp/ro.map"
fi
if [ -e "$tmp/ro.map" ]; then
	dry_same "\-\-rescue map file $tmp/ro.map refused: " --rescue "$tmp/ro.map" "$tmp/src.img" "$tmp/n.img"
	grep -qx "# a map" "$tmp/ro.map" || fail "the map was written"
fi

# With a copy running: where it would join.
ringcopy --rate "$(vrate 1M 256K)" "$tmp/src.img" "$tmp/a.img" 2>/dev/null &
bg_pids+=($!)
# Held (its producer stopped) while the dry runs look: it cannot end first.
producer=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
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
kill -CONT "$producer"
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
