#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Invocations that arrive while a producer tears down either join or start
# a fresh ring: they never hang and never fail.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 192K
lim=$(slow 20)
for round in $(seq 1 10); do
	pids=()
	for k in 1 2 3; do
		timeout "$lim" "$BASH" -c "$(declare -f ringcopy); ringcopy -q -b 64K \"\$@\"" _ \
			"$tmp/src.img" "$tmp/r$round-$k.img" 2> "$tmp/r$round-$k.err" &
		pids+=($!)
		# Staggered on purpose, to land around the teardown; any
		# order is a right one (join or a fresh ring), so a loaded
		# machine only changes which.
		sleep 0.0$k
	done
	for p in "${pids[@]}"; do
		wait "$p" || fail "round $round: an invocation failed or hung ($?): $(cat "$tmp"/r$round-*.err)"
	done
	for k in 1 2 3; do
		same "$tmp/src.img" "$tmp/r$round-$k.img"
	done
done
