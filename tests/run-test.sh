#!/bin/sh
# Test driver wrapper (LOG_COMPILER): runs a unit-test binary in a private
# IPC namespace where possible (so a failed assertion cannot leak SysV
# objects past the test), under valgrind when RINGCOPY_VALGRIND=1.  Shell
# tests set up their own namespace and wrap the tool themselves.
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
