#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The chaos test (tests/chaos/chaos.sh) in `make check': 12 rounds
# of random sources, late joiners and one random signal each, small and
# short enough to take about a minute here; `make chaos' runs 300 larger
# ones.  CHAOS_SEED replays a run, CHAOS_ROUNDS changes its length.  Under
# `make check-valgrind' it is skipped: the chaos test does not run the tool
# under valgrind (its timing is the point), so it would only repeat
# `make check'.
set -u
: "${RINGCOPY:?RINGCOPY must name the built binary}"
: "${top_srcdir:?}"

rounds=${CHAOS_ROUNDS:-12}
if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
	echo "SKIP: the chaos test does not run the tool under valgrind: make check runs it"
	exit 77
fi
seed=${CHAOS_SEED:-$(( $(date +%s) % 1000000 ))}
# The seed first, so that even a run that hangs can be replayed.
echo "chaos: seed $seed; replay: make chaos SEED=$seed ROUNDS=$rounds CHAOS_FLAGS='--max-mib 24 --max-secs 3'"
exec "${BASH:-bash}" "$top_srcdir/tests/chaos/chaos.sh" --rounds "$rounds" \
	--seed "$seed" --max-mib 24 --max-secs 3
