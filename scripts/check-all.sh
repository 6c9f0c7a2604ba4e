#!/bin/bash
# Set everything up and run the whole test suite: the unit and functional
# tests, the same suite under valgrind, and distcheck.  This is what CI runs
# (.ci/run) and what the README's test command is.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1

status=0 pass=0 fail=0 skip=0
# Add the automake harness's counts of the run that just ended.
count() {
	local key n
	while read -r key n; do
		case $key in
		PASS:) pass=$((pass + n)) ;;
		FAIL:|ERROR:|XPASS:) fail=$((fail + n)) ;;
		SKIP:) skip=$((skip + n)) ;;
		esac
	done < <(sed -n 's/^# \(PASS:\|FAIL:\|ERROR:\|XPASS:\|SKIP:\) *\([0-9]*\)$/\1 \2/p' test-suite.log 2>/dev/null)
}
run() {
	echo "== $*"
	"$@" || status=1
}
run make -j2 check
count
run make -j2 check-valgrind
count
run make -j2 distcheck DISTCHECK_CONFIGURE_FLAGS=-q >/dev/null
[ "$status" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "$pass passed, $fail failed, $skip skipped"
exit "$status"
