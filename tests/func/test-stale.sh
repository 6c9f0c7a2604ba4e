#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A ring left by a creator that died before starting its producer is
# detected, removed and reported by the next invocation.
source "$top_srcdir/tests/func/functions.sh"
[ -n "${RC_IN_IPCNS:-}" ] || skip "needs a private IPC namespace to count IPC objects"

mkimage "$tmp/src.img" 2M
# The tool built to die after creating the ring, before forking its
# producer (tests/tools/creator-dies.c).
RINGCOPY="$top_builddir/tests/tools/ringcopy-creator-dies" \
	ringcopy "$tmp/src.img" "$tmp/a.img" 2>/dev/null
[ "$(ipc_objects | wc -l)" -eq 2 ] || fail "the dead creator left $(ipc_objects)"
[ -n "$(ls -A "$RINGCOPY_RUNDIR")" ] || fail "no rendezvous file left"
expect_status 0 ringcopy "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err"
grep -q "removed the stale ring of a dead producer" "$tmp/err" || fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/b.img"
