#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The SPIN model of the ring protocol (src/ringproto.pml): the small
# configurations and stall eviction with an entry reused (two consumers on
# one entry) have no error, the progress property holds (a liveness
# search), and the old producer's jump (-DOLD_JUMP) is
# caught, or the model would prove nothing.  `make check-model' runs the
# big configurations.  Skips (77) without spin or a C compiler.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$here/../..}
export top_srcdir
run="$top_srcdir/tests/model/run-model.sh"
if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
	echo "SKIP: the model runs no code of ours: make check runs it"
	exit 77
fi

# Every verb of ringproto.h modelled or said left out (no spin needed).
bash "$top_srcdir/tests/model/check-verbs.sh" || exit 1
bash "$run" small
rc=$?
[ $rc = 0 ] || exit $rc
bash "$run" stall-reuse
rc=$?
[ $rc = 0 ] || exit $rc
bash "$run" live
rc=$?
[ $rc = 0 ] || exit $rc
bash "$run" bug
