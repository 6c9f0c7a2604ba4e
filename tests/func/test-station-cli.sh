#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ringcopy station refuses a command line that would write the wrong disks
# (or none), with exit 2, a line naming the problem, and nothing started:
# no --match (there is no "every disk" default), a pattern that is not a
# kernel name glob or a sysfs attribute test, no SOURCE or a TARGET.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 1M
st_refused() {
	# st_refused PATTERN args...
	local pat=$1
	shift
	expect_status 2 ringcopy station "$@" > "$tmp/out" 2> "$tmp/err"
	grep -qF -- "$pat" "$tmp/err" || fail "'station $*': no '$pat' in: $(cat "$tmp/err")"
	[ ! -s "$tmp/out" ] || fail "'station $*' printed: $(cat "$tmp/out")"
	[ -z "$(ls -A "$RINGCOPY_RUNDIR" 2>/dev/null)" ] || fail "'station $*' started a ring"
}
st_refused "station: at least one --match is needed: there is no default that writes every disk" "$tmp/src.img"
st_refused "station: missing SOURCE" --match 'sd[b-z]'
st_refused "station: one SOURCE and no TARGET" --match 'sd[b-z]' "$tmp/src.img" "$tmp/t.img"
st_refused "--match '': an empty pattern" --match '' "$tmp/src.img"
st_refused "--match '/dev/sdb': want a kernel name or a glob of one" --match /dev/sdb "$tmp/src.img"
st_refused "--match 'size>=lots': want a size in bytes" --match 'size>=lots' "$tmp/src.img"
st_refused "--match '=1': want an attribute test" --match '=1' "$tmp/src.img"
st_refused "--match 'removable=': want one operator" --match 'removable=' "$tmp/src.img"
st_refused "--match 'size=>8G': want one operator" --match 'size=>8G' "$tmp/src.img"
st_refused "--match '../x=1': want a file of /sys/class/block/NAME" --match '../x=1' "$tmp/src.img"
st_refused "--match 'queue/rotational<x': want a number" --match 'queue/rotational<x' "$tmp/src.img"
st_refused "station: unknown option '--manifest'" --match sdb --manifest m "$tmp/src.img"
# A copy option is checked as a copy checks it, before any disk is seen.
st_refused "--block-size '3K': want a power of two" --match sdb -b 3K "$tmp/src.img"
st_refused "source $tmp/none.img refused" --match sdb "$tmp/none.img"
expect_status 0 ringcopy station --help > "$tmp/help"
grep -q "^Usage: ringcopy station --match PATTERN" "$tmp/help" || fail "help: $(cat "$tmp/help")"
