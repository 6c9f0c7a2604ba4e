#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Test driver wrapper (LOG_COMPILER): runs a unit-test binary in a private
# IPC namespace where possible (so a failed assertion cannot leak SysV
# objects past the test), under valgrind when RINGCOPY_VALGRIND=1.  Shell
# tests set up their own namespace and wrap the tool themselves.
# distcheck (scripts/check-all.sh sets RINGCOPY_DISTCHECK_QUICK=1) proves
# the tarball is complete: it builds every program and runs the unit tests
# and the functional tests below from it; the whole suite ran before it.
if [ "${RINGCOPY_DISTCHECK_QUICK:-0}" = 1 ]; then
	case "$1" in
	*/tests/unit/*|*/test-copy-basic.sh|*/test-zstd.sh|*/test-man.sh) ;;
	*) echo "SKIP: distcheck runs a sample (RINGCOPY_DISTCHECK_QUICK)"; exit 77 ;;
	esac
fi
# Under valgrind (make check-valgrind), the tests whose code paths other
# tests already run under valgrind, and which would only add minutes:
# refusals made in the invocation before any fork (test-refuse runs that
# machinery under valgrind), the identity of rings (every join test runs
# it), more join patterns (test-join-late and test-join-tail run the
# protocol's verbs; test-copy-many the fork and hand-off of many targets
# that test-many repeats; test-linger's serve runs in test-station), the fleet
# network (its NBD source path runs in test-expect and test-nbd), and the
# tests that do not run ringcopy's code (the man page, the SPIN model, the
# license lines, the structure check, the bash completion); the run
# directory raced by another user (every test opens the run directory
# under valgrind), the station's aliases
# (test-station and test-loop-alias run both halves under valgrind) and a
# target swapped under strace (strace and valgrind do not stack); and,
# for the suite's time, status (test-status-killed runs it under
# valgrind), the protocol at small geometries
# (make check-protocol runs it; the join tests run its verbs under
# valgrind) and the resumed disk (its interruptions run under valgrind in
# test-signals; its block-0 check does not run under valgrind elsewhere:
# the price of keeping the suite under 15 minutes).
if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
	case "$1" in
	*/test-cli-errors.sh|*/test-outputs-refused.sh|*/test-blockdev-refuse.sh|\
	*/test-dry-run.sh|*/test-identity.sh|*/test-join-staggered.sh|\
	*/test-join-teardown.sh|*/test-many.sh|*/test-linger.sh|\
	*/test-fleet.sh|*/test-man.sh|*/test-model.sh|*/test-license.sh|\
	*/test-structure.sh|*/test-completion.sh|\
	*/test-rundir-race.sh|*/test-station-alias.sh|*/test-target-swapped.sh|\
	*/test-status.sh|*/test-protocol-small.sh|*/test-resume-disk.sh)
		echo "SKIP: not under valgrind: its code paths run under valgrind in other tests (tests/run-test.sh)"
		exit 77
		;;
	esac
fi
case "$1" in
*.sh)
	# Its wall time, last in its log: scripts/check-all.sh lists the
	# slowest, so that the suite's time has names.
	start=$(date +%s)
	"${BASH:-bash}" "$@"
	rc=$?
	echo "# wall time: $(( $(date +%s) - start )) s"
	exit $rc
	;;
esac
ns=
if unshare --ipc true 2>/dev/null; then
	ns="unshare --ipc"
fi
if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
	exec $ns "${VALGRIND:-valgrind}" --quiet --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --trace-children=yes \
		--suppressions="$top_srcdir/tests/valgrind.supp" "$@"
fi
exec $ns "$@"
