#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The ring removed with ipcrm mid-copy: a clear failure, exit 1, no hang.
source "$top_srcdir/tests/func/functions.sh"
[ -n "${RC_IN_IPCNS:-}" ] || skip "needs a private IPC namespace (ipcrm -a)"

mkimage "$tmp/src.img" 8M
ringcopy --rate "$(vrate 2M 512K)" "$tmp/src.img" "$tmp/a.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
wait_consumers "$inv" 1 > /dev/null || fail "no consumer"
ipcrm -a
timeout "$(slow 10)" bash -c "while kill -0 $inv 2>/dev/null; do sleep 0.1; done" ||
	fail "hung after ipcrm"
wait "$inv"
[ $? -eq 1 ] || fail "exit status"
grep -q "^FAILED .*the ring was removed" "$tmp/err" || fail "$(cat "$tmp/err")"
