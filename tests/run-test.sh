#!/bin/sh
# Test driver wrapper (LOG_COMPILER): runs a unit-test binary in a private
# IPC namespace where possible (so a failed assertion cannot leak SysV
# objects past the test), under valgrind when RINGCOPY_VALGRIND=1.  Shell
# tests set up their own namespace and wrap the tool themselves.
# distcheck (scripts/check-all.sh sets RINGCOPY_DISTCHECK_QUICK=1) proves
# the tarball is complete: it builds every program and runs the unit tests
# and the functional tests below from it; the whole suite ran before it.
if [ "${RINGCOPY_DISTCHECK_QUICK:-0}" = 1 ]; then
	case "$1" in
	*/tests/unit/*|*/test-copy-basic.sh|*/test-join-late.sh|*/test-zstd.sh|*/test-man.sh|*/test-model.sh|*/test-tamper.sh) ;;
	*) echo "SKIP: distcheck runs a sample (RINGCOPY_DISTCHECK_QUICK)"; exit 77 ;;
	esac
fi
case "$1" in
*.sh)
	exec "${BASH:-bash}" "$@"
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
