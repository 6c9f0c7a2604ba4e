#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make check-mutants: each tests/mutants/*.patch is a single-line mutant of
# the ring's code (ringproto.c, ring.c, producer.c, consumer.c).  Each is
# applied alone, with patch, to a copy of the built tree (never to the
# working files), the copy rebuilt, and check-protocol run against it with
# --fail-fast: the mutant must be killed (some test fails).  A mutant that
# survives, or that does not apply or build, fails this check.
#
# Needs top_srcdir == top_builddir (an in-tree build: the copy is built
# with the tree's own Makefile) and patch.  MUTANTS='m01-... m02-...'
# (names without .patch) runs those alone.  Prints, per mutant, the test
# that killed it, and a table at the end; exit 0 when every one was
# killed.
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
src=$(cd "$top_srcdir" && pwd)
bld=$(cd "$top_builddir" && pwd)
if [ "$src" != "$bld" ]; then
	echo "check-mutants: needs an in-tree build (top_srcdir $src, top_builddir $bld)" >&2
	exit 1
fi
command -v patch > /dev/null || { echo "check-mutants: patch is not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rcmutants.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# The copy: sources, the configured Makefile and the objects, timestamps
# kept (nothing is regenerated); no .git.
tar -C "$src" --exclude=./.git --exclude='./autom4te.cache' -cf - . |
	tar -C "$work" -xf - || exit 1
tree=$work

patches=()
if [ -n "${MUTANTS:-}" ]; then
	for m in $MUTANTS; do patches+=("$src/tests/mutants/${m%.patch}.patch"); done
else
	patches=("$src"/tests/mutants/*.patch)
fi
# A mutant that hangs the protocol is killed by the timeout: a test
# that passes takes seconds.
export PROTOCOL_TIMEOUT=${PROTOCOL_TIMEOUT:-60}
progs="ringcopy tests/unit/test-ringproto tests/unit/test-ring tests/unit/test-consumer tests/unit/test-ringproto-sched tests/unit/test-ringsteps"

status=0
table=()
t0=$(date +%s)
for p in "${patches[@]}"; do
	name=$(basename "$p" .patch)
	echo "== $name: $(sed -n 's/^Subject: //p; s/^# //p' "$p" | head -n 1)"
	if ! patch -d "$tree" -p1 --forward --quiet --no-backup-if-mismatch < "$p"; then
		echo "FAIL: $name does not apply"
		table+=("$name: DOES NOT APPLY")
		status=1
		continue
	fi
	if ! make -C "$tree" -j2 $progs > "$work/build.log" 2>&1; then
		tail -n 20 "$work/build.log"
		echo "FAIL: $name does not build"
		table+=("$name: DOES NOT BUILD")
		status=1
	else
		out=$(top_srcdir=$tree top_builddir=$tree RINGCOPY=$tree/ringcopy \
			bash "$tree/tests/protocol/check-protocol.sh" --fail-fast \
			--no-model 2>&1)
		killer=$(sed -n 's/^killed by: //p' <<< "$out")
		grep -E '^(PASS|FAIL|SKIP):' <<< "$out" | sed 's/^/   /'
		if [ -n "$killer" ]; then
			echo "ok: $name killed by $killer"
			table+=("$name: killed by $killer")
		else
			echo "FAIL: $name survived check-protocol"
			table+=("$name: SURVIVED")
			status=1
		fi
	fi
	# Back to the pristine copy (and its objects rebuilt for the next).
	patch -d "$tree" -p1 -R --quiet --no-backup-if-mismatch < "$p" ||
		{ echo "FAIL: $name does not revert"; exit 1; }
done
echo "== check-mutants: ${#patches[@]} mutants, $(( $(date +%s) - t0 )) s"
printf '   %s\n' "${table[@]}"
[ $status = 0 ] && echo "PASS: every mutant killed" || echo "FAIL: not every mutant killed"
exit $status
