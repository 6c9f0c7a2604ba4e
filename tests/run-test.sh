#!/bin/sh
# Test driver wrapper (LOG_COMPILER): runs a unit-test binary, under
# valgrind when RINGCOPY_VALGRIND=1; shell tests wrap the tool themselves.
case "$1" in
*.sh)
	exec "${BASH:-bash}" "$@"
	;;
esac
if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
	exec "${VALGRIND:-valgrind}" --quiet --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --trace-children=yes \
		--suppressions="$top_srcdir/tests/valgrind.supp" "$@"
fi
exec "$@"
