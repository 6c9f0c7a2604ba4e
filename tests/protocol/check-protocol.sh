#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make check-protocol: every test that protects the ring protocol, in a
# few minutes (at most 240 s on a quiet two-core machine):
#   - the protocol's unit tests (test-ringproto, test-ring, test-consumer),
#     the schedule test of the verbs (test-ringproto-sched) and the one of
#     the producer's and consumers' own steps (test-ringsteps);
#   - the SPIN model's small configurations (tests/model/run-model.sh:
#     small, stall with reused entries, and the old jump it must catch);
#   - the functional tests of joins, tails, stalls and killed processes,
#     one of them at -b 4K --buffer 64K with three and more targets and
#     no rate limit (test-protocol-small.sh).
#
#   check-protocol.sh [--fail-fast] [--no-model] [--list]
#
# --fail-fast stops at the first failure (make check-mutants: a mutant is
# killed by the first test that fails); --no-model leaves the model out
# (check-mutants: a mutant of the C cannot change the model's verdict,
# and its minutes would only slow each mutant down); --list prints the
# tests' names.
# Needs top_srcdir and top_builddir (a built tree with its test programs)
# and RINGCOPY (default: the tree's ringcopy).  Each test runs through
# tests/run-test.sh, as make check runs it, under `timeout'
# (PROTOCOL_TIMEOUT, default 180 s), so that a mutant that hangs the
# protocol fails instead of hanging.  Prints "FAIL: NAME" for each failure
# and "killed by: NAME" for the first; exit 0 when all passed, 1 if not.
set -u

failfast=0
list=0
model=1
for a; do
	case $a in
	--fail-fast) failfast=1 ;;
	--no-model) model=0 ;;
	--list) list=1 ;;
	*) echo "usage: $0 [--fail-fast] [--no-model] [--list]" >&2; exit 2 ;;
	esac
done
: "${top_srcdir:?}" "${top_builddir:?}"
RINGCOPY=${RINGCOPY:-$top_builddir/ringcopy}
export top_srcdir top_builddir RINGCOPY
# The schedule test's default is 100,000 schedules; here fewer, so that
# the whole set stays within its minutes (a random schedule finds what it
# finds in the first thousands, the regression case is always run).
export RINGPROTO_SCHEDULES=${RINGPROTO_SCHEDULES:-30000}

unit=(test-ringproto test-ring test-consumer test-ringproto-sched test-ringsteps)
func=(test-protocol-small test-join-tail test-producer-killed
      test-consumer-killed test-stall test-status-killed test-join-late
      test-join-staggered test-join-teardown test-invocation-killed)

tests=()
for t in "${unit[@]}"; do tests+=("unit:$t"); done
[ $model = 1 ] && tests+=("model:verbs" "model:small" "model:stall-reuse" "model:live" "model:bug")
for t in "${func[@]}"; do tests+=("func:$t"); done
if [ $list = 1 ]; then
	printf '%s\n' "${tests[@]}"
	exit 0
fi

run() {
	local kind=${1%%:*} name=${1#*:}
	case $kind in
	unit) sh "$top_srcdir/tests/run-test.sh" \
		"$top_builddir/tests/unit/$name" ;;
	model)
		if [ "$name" = verbs ]; then
			bash "$top_srcdir/tests/model/check-verbs.sh"
		else
			bash "$top_srcdir/tests/model/run-model.sh" "$name"
		fi
		;;
	func) sh "$top_srcdir/tests/run-test.sh" \
		"$top_srcdir/tests/func/$name.sh" ;;
	esac
}

status=0
first=
t0=$(date +%s)
for t in "${tests[@]}"; do
	s=$(date +%s)
	log=$(mktemp "${TMPDIR:-/tmp}/rcproto.XXXXXX")
	timeout -k 10 "${PROTOCOL_TIMEOUT:-180}" bash -c "$(declare -f run); run '$t'" \
		> "$log" 2>&1
	rc=$?
	d=$(( $(date +%s) - s ))
	case $rc in
	0) echo "PASS: $t (${d} s)" ;;
	77) echo "SKIP: $t (${d} s): $(grep -m1 SKIP "$log")" ;;
	*)
		[ $rc = 124 ] && echo "   timed out after ${PROTOCOL_TIMEOUT:-180} s"
		tail -n 15 "$log" | sed 's/^/   | /'
		echo "FAIL: $t (${d} s, exit $rc)"
		status=1
		[ -n "$first" ] || first=$t
		;;
	esac
	rm -f "$log"
	[ $status = 1 ] && [ $failfast = 1 ] && break
done
echo "check-protocol: $(( $(date +%s) - t0 )) s"
if [ -n "$first" ]; then
	echo "killed by: $first"
	exit 1
fi
exit 0
