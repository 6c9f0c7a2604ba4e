#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Set everything up and run the whole test suite: the unit and functional
# tests, the same suite under valgrind, distcheck, the Debian package and a
# benchmark smoke run.  This is what CI runs (.ci/run) and what the
# README's test command is.
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
	local t0=$SECONDS
	echo "== $*"
	"$@" || { status=1; failed_logs; }
	echo "== $* took $((SECONDS - t0)) s; its slowest tests:"
	slowest
}
# The end of each failed test's log, so that a CI log says why.
failed_logs() {
	local trs
	for trs in $(grep -l '^:test-result: \(FAIL\|ERROR\|XPASS\)' tests/*/*.trs 2>/dev/null); do
		echo "== ${trs%.trs}.log, its last 30 lines:"
		tail -n 30 "${trs%.trs}.log" | sed 's/^/   /'
	done
}
# The five slowest tests of the run that just ended (tests/run-test.sh
# ends each log with its wall time).
slowest() {
	grep -H '^# wall time: ' tests/*/*.log 2>/dev/null |
		sed 's/^\(.*\)\.log:# wall time: \([0-9]*\) s$/\2 \1/' |
		sort -rn | head -n 5 | sed 's/^/   /'
}
# The Debian package: built from the dist tarball in a temporary directory,
# installed with apt-get, the installed binary run once, then purged
# (scripts/check-deb.sh).  Needs root; exit 77 means it could not run here.
echo "== debian package: dpkg-buildpackage, apt-get install, a copy, apt-get purge"
# First, so that the container root for the units below (debootstrap,
# mostly waiting on the archive) is made in the background meanwhile.
# The unit tests run three times below: the package build skips them.
rm -rf deb-out
RINGCOPY_DEB_NOCHECK=1 RINGCOPY_DEB_OUT=deb-out bash scripts/check-deb.sh > deb.log 2>&1
case $? in
0) pass=$((pass + 1)); grep -E '^package built in' deb.log ;;
77) skip=$((skip + 1)); cat deb.log ;;
*) fail=$((fail + 1)); status=1; cat deb.log ;;
esac
units_deb=()
for d in deb-out/ringcopy_*.deb; do [ -f "$d" ] && units_deb=(--deb "$d"); done
if [ ${#units_deb[@]} -gt 0 ]; then
	bash scripts/check-units.sh "${units_deb[@]}" --root-only > units-root.log 2>&1 &
	units_root=$!
fi

# -j4 on two cores: most tests wait on rate-limited copies, timeouts and
# signals rather than compute.
run make -j4 check
count
# Valgrind takes the CPU; three at a time keep both cores busy (two left
# a third of them idle: 553 s against 429 s, quiet), and the tests hold
# their copies at the points they need (issue 27), so starving is slower,
# not wrong.
run make -j3 check-valgrind
count
# distcheck proves the tarball is complete: it builds every program and
# runs the unit tests and a few functional ones from it (the whole suite
# ran twice above).
echo "== make -j4 distcheck (unit tests and a sample of the functional ones)"
RINGCOPY_DISTCHECK_QUICK=1 RINGPROTO_SCHEDULES=20000 \
	make -j4 distcheck DISTCHECK_CONFIGURE_FLAGS=-q \
	> distcheck.log 2>&1 ||
	{ status=1; tail -n 40 distcheck.log; }
# The systemd units started for real: systemd booted in a container
# (systemd-nspawn over a debootstrap root cached in /var/cache/ringcopy-units),
# that package installed in it, both units started, a copy joining the
# served ring, a disk written by the station, both stopped, nothing left
# (scripts/check-units.sh).  It builds the package itself if the stage
# above kept none.  Needs root; exit 77 means it could not run here.
echo "== systemd units: booted in a container, started, a copy joins, stopped"
# Its root was being made in the background since the package was built.
[ -z "${units_root:-}" ] || wait "$units_root"
bash scripts/check-units.sh "${units_deb[@]}" > units.log 2>&1
case $? in
0) pass=$((pass + 1)); grep -E 'all checks passed|not exercised' units.log ;;
77) skip=$((skip + 1)); cat units.log ;;
*) fail=$((fail + 1)); status=1; cat units.log ;;
esac
# A smoke run of the benchmark (the sparse case, small): it checks that the
# scripts and the peers still work, not how fast anything is.  Needs root
# and cgroup v1; exit 77 means it could not run here.
echo "== bench smoke: bench/run.sh --runs 1 --cases d --size-scale 0.05"
bench/run.sh --runs 1 --cases d --size-scale 0.05 --out bench-smoke.md > bench-smoke.log 2>&1
case $? in
0) pass=$((pass + 1)) ;;
77) skip=$((skip + 1)); cat bench-smoke.log ;;
*) fail=$((fail + 1)); status=1; cat bench-smoke.log bench-smoke.md 2>/dev/null ;;
esac
[ "$status" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "$pass passed, $fail failed, $skip skipped in $SECONDS s"
exit "$status"
