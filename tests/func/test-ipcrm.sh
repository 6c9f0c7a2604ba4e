#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The ring removed with ipcrm mid-copy: a clear failure, exit 1, no hang.
source "$top_srcdir/tests/func/functions.sh"
[ -n "${RC_IN_IPCNS:-}" ] || skip "needs a private IPC namespace (ipcrm -a)"

mkimage "$tmp/src.img" 8M
ringcopy --rate "$(vrate 2M 512K)" "$tmp/src.img" "$tmp/a.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
ipcrm -a
kill -CONT "$producer"
timeout "$(slow 10)" bash -c "while kill -0 $inv 2>/dev/null; do sleep 0.1; done" ||
	fail "hung after ipcrm"
wait "$inv"
[ $? -eq 1 ] || fail "exit status"
grep -q "^FAILED .*the ring was removed" "$tmp/err" || fail "$(cat "$tmp/err")"
