#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Check the SPIN model of the ring protocol (src/ringproto.pml).
#
#   run-model.sh [small|stall-reuse|live|big|bug|--expect-bug] [-DNAME=VALUE ...]
#
# small  the default: 2 slots, 3 blocks, 2 consumers that may be abandoned,
#        leave or die, then 3 (with a sequential joiner); seconds.
# stall-reuse  stall eviction with two consumers on one table entry
#        (the entry reused); seconds.
# live   the progress property (every consumer ends, the producer leaves
#        or idles) with SPIN's liveness search (pan -a -f); seconds.
# big    larger geometries, everyone leaving early or dying, more consumers
#        than table entries, source failure, stall eviction, and the old
#        jump on a larger ring; minutes and up to ~2.5 GB of memory.
# bug    (also --expect-bug) the old producer (-DOLD_JUMP): the model must
#        find the overwrite, or it proves nothing; and a producer skipping
#        reads on the needed bitmap alone (-DHOLD_NOFLAG): it must find a
#        late joiner taking a HELD slot for a block it lacks.  The first error stops
#        pan, so this is cheap.
#
# Extra -D arguments go to every spin run.  Each run is a safety search
# (assertions and invalid end states) with pan: it must end with
# "errors: 0" and a complete search (no depth or memory limit hit), or, for
# the old jump, with the overwrite assertion.  Exit 0, 1 on a failure, 77
# when spin or a C compiler is missing.  RINGCOPY_MODEL_KEEP=1 keeps the
# work directory (trails, pan sources); PAN_DEPTH (-m, default 1000000)
# and PAN_HASH (-w, default 24, 26 for big) tune pan.
set -u

mode=small
case ${1:-} in
small | stall-reuse | live | big | bug) mode=$1; shift ;;
--expect-bug) mode=bug; shift ;;
-D*) ;;
"") ;;
*) echo "usage: $0 [small|stall-reuse|live|big|bug|--expect-bug] [-DNAME=VALUE ...]" >&2; exit 2 ;;
esac
extra=("$@")

case $0 in
*/*) here=$(cd "${0%/*}" && pwd) ;;
*) here=$(pwd) ;;
esac
model=${top_srcdir:-$here/../..}/src/ringproto.pml
[ -f "$model" ] || model=$here/../../src/ringproto.pml
if ! command -v spin >/dev/null 2>&1; then
	echo "SKIP: spin is not installed (Debian: apt-get install spin)"
	exit 77
fi
CC=${CC:-gcc}
if ! command -v "${CC%% *}" >/dev/null 2>&1; then
	echo "SKIP: no C compiler ($CC) for pan"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rcmodel.XXXXXX") || exit 1
if [ "${RINGCOPY_MODEL_KEEP:-0}" = 1 ]; then
	echo "work directory: $work"
else
	trap 'rm -rf "$work"' EXIT
fi
cp "$model" "$work/ringproto.pml" || exit 1
# The window predicates the model shares with the C.
cp "${model%/src/ringproto.pml}/include/ringcopy/ringwin.h" "$work/" || exit 1

status=0

# check NAME EXPECT [-D...]: EXPECT is ok (no error, complete search) or
# overwrite (the overwrite assertion is found).
check() {
	local name=$1 expect=$2 dir t0 t1 errs
	shift 2
	dir=$work/$name
	mkdir -p "$dir" && cp "$work/ringproto.pml" "$work/ringwin.h" "$dir/" ||
		return 1
	echo "== $name: spin -a $* ${extra[*]}"
	t0=$(date +%s%N)
	if ! (cd "$dir" && spin -a "$@" "${extra[@]}" ringproto.pml > spin.out 2>&1); then
		cat "$dir/spin.out"
		echo "FAIL: $name: spin -a failed"
		status=1
		return
	fi
	# -DSAFETY: assertions and invalid end states, no cycle search
	# (a liveness run searches for acceptance cycles: pan -a -f).
	# -DCOLLAPSE: compressed state vectors, for the big runs' memory.
	safety=-DSAFETY panflags=
	[ "$expect" = live ] && safety= panflags="-a -f"
	if ! (cd "$dir" && $CC -O2 -w $safety -DCOLLAPSE -o pan pan.c 2> cc.out); then
		cat "$dir/cc.out"
		echo "FAIL: $name: pan did not compile"
		status=1
		return
	fi
	(cd "$dir" && ./pan $panflags -m${PAN_DEPTH:-1000000} -w${PAN_HASH:-24} > pan.out 2>&1)
	t1=$(date +%s%N)
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.out" | head -n 1)
	grep -E 'State-vector|states, stored|transitions|total actual memory' \
		"$dir/pan.out" | sed 's/^ */   /'
	t1=$(((t1 - t0) / 1000000))
	printf '   %d.%03d s (spin, cc and pan)\n' $((t1 / 1000)) $((t1 % 1000))
	if [ -z "$errs" ]; then
		tail -n 20 "$dir/pan.out"
		echo "FAIL: $name: pan did not finish (no error count)"
		status=1
		return
	fi
	if grep -qE 'max search depth too small|out of memory|reached -DMEMLIM' \
		"$dir/pan.out"; then
		grep -E 'max search depth too small|out of memory|MEMLIM' "$dir/pan.out"
		echo "FAIL: $name: incomplete search (raise PAN_DEPTH or memory)"
		status=1
		return
	fi
	case $expect in
	ok | live)
		if [ "$errs" != 0 ]; then
			grep '^pan:' "$dir/pan.out"
			echo "-- the counterexample (spin -t):"
			(cd "$dir" && spin -t "$@" "${extra[@]}" ringproto.pml 2>&1 |
				sed -n '1,/^#processes/p' | head -n 80)
			echo "FAIL: $name: errors: $errs"
			status=1
			return
		fi
		echo "ok: $name: errors: 0"
		;;
	held)
		# Property 5's assertion names slot_held.
		if [ "$errs" = 0 ] || ! grep -q 'assertion violated.*slot_held' "$dir/pan.out"; then
			grep '^pan:' "$dir/pan.out"
			echo "FAIL: $name: a HELD slot taken for a block the consumer lacks was not found: the model proves nothing"
			status=1
			return
		fi
		echo "ok: $name: the HELD slot of a block the late joiner lacks is found"
		;;
	overwrite)
		# The assertion of check_overwrite names g_rel; any other
		# error would be the model's, not the bug it must show.
		if [ "$errs" = 0 ]; then
			echo "FAIL: $name: the old jump was not caught: the model proves nothing"
			status=1
			return
		fi
		if ! grep -q 'assertion violated.*g_rel' "$dir/pan.out"; then
			grep '^pan:' "$dir/pan.out"
			echo "FAIL: $name: an error, but not the overwrite"
			status=1
			return
		fi
		echo "-- the counterexample (spin -t):"
		(cd "$dir" && spin -t "$@" "${extra[@]}" ringproto.pml 2>&1 |
			sed -n '1,/^spin: trail ends/p' | grep -v '^spin: text of')
		echo "ok: $name: the overwrite is found"
		;;
	esac
}

case $mode in
small)
	# Consumer 0 (first 0) may be abandoned or leave early, 1 (late
	# joiner) may die.
	check small ok -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=2 -DLEAVERS=1 -DDIERS=2
	# And 2, a sequential joiner; everyone runs to the end.
	check small-seq ok -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 -DLEAVERS=0 \
		-DDIERS=0
	# Producer skip: consumer 0 holds all blocks but one, the late
	# joiner 1 needs every one; either may be abandoned, leave or die.
	check small-hold ok -DHOLD -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=2 -DLEAVERS=1 \
		-DDIERS=2
	;;
stall-reuse)
	# Stall eviction with entries reused: two consumers on one entry, so
	# that an evicted or departed entry is registered again while the
	# producer still remembers its last occupant.
	check stall-reuse ok -DSTALL -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=2 -DNENT=1 \
		-DLEAVERS=1 -DDIERS=2
	;;
live)
	# Progress (ltl progress: every consumer ends, the producer leaves or
	# idles), a liveness search with weak fairness (pan -a -f).
	check live live -DLIVE -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=2 -DLEAVERS=1 \
		-DDIERS=2
	;;
bug)
	# Nobody leaves early or dies: the victim is alive and reading.
	check old-jump overwrite -DOLD_JUMP -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 \
		-DLEAVERS=0 -DDIERS=0
	# A producer that trusts the needed bitmap alone publishes HELD to
	# a late joiner that scanned nothing.
	check hold-noflag held -DHOLD -DHOLD_NOFLAG -DNSLOTS=2 -DNBLOCKS=3 \
		-DNCONS=2 -DLEAVERS=0 -DDIERS=0
	;;
big)
	: "${PAN_HASH:=26}" # 2^26 hash slots: up to ~40M states
	# Everyone may leave early or die.
	check big-2x3-all ok -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3
	# More slots than blocks minus one, more blocks than slots.
	check big-3x3 ok -DNSLOTS=3 -DNBLOCKS=3 -DNCONS=3 -DLEAVERS=5 -DDIERS=2
	check big-2x4 ok -DNSLOTS=2 -DNBLOCKS=4 -DNCONS=3 -DLEAVERS=5 -DDIERS=2
	check big-4x2 ok -DNSLOTS=4 -DNBLOCKS=2 -DNCONS=3 -DLEAVERS=5 -DDIERS=2
	# Fewer entries than consumers: entries are reused, or the table is
	# full and a joiner goes.
	check big-ent2 ok -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 -DNENT=2
	check big-4on2 ok -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=4 -DNENT=2 \
		-DLEAVERS=1 -DDIERS=2
	# The source fails.
	check big-fail ok -DFAIL -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 \
		-DLEAVERS=1 -DDIERS=2
	# Stall eviction (costly: an evicted consumer keeps running).
	check big-stall ok -DSTALL -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=2 \
		-DLEAVERS=1 -DDIERS=2
	check big-stall3 ok -DSTALL -DNSLOTS=2 -DNBLOCKS=2 -DNCONS=3 \
		-DLEAVERS=0 -DDIERS=0
	# Producer skip with a sequential joiner holding all but block 0,
	# and with 4 consumers (one skips holding nothing) on 3 entries.
	check big-hold3 ok -DHOLD -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 -DLEAVERS=1 \
		-DDIERS=2
	check big-hold4 ok -DHOLD -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=4 -DNENT=3 \
		-DLEAVERS=0 -DDIERS=0
	check big-old-jump overwrite -DOLD_JUMP -DNSLOTS=3 -DNBLOCKS=4 \
		-DNCONS=3 -DLEAVERS=0 -DDIERS=0
	;;
esac

[ $status = 0 ] && echo "PASS: model $mode" || echo "FAIL: model $mode"
exit $status
