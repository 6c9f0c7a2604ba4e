#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# SIGINT or SIGTERM to an invocation unregisters its consumers (targets
# reported failed, exit 1) and never stops the producer that serves
# another invocation, even when the interrupted one started it.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 12M
for sig in INT TERM; do
	rm -f "$tmp"/*.dst
	ringcopy --rate 3M "$tmp/src.img" "$tmp/a.dst" 2> "$tmp/a.err" &
	a=$!
	bg_pids+=("$a")
	# a is interrupted mid-copy and after b joined: its producer is
	# held meanwhile, so neither can be beaten by a loaded machine.
	producer=$(stop_at_block a.dst 1) || fail "a did not reach block 1"
	on_exit "kill -CONT $producer 2>/dev/null"
	ringcopy --json "$tmp/src.img" "$tmp/b.dst" > "$tmp/b.json" 2> "$tmp/b.err" &
	b=$!
	bg_pids+=("$b")
	wait_said "$tmp/b.err" "joined the running copy"
	kill -$sig "$(pgrep -P "$a" | head -n 1)"
	kill -CONT "$producer"
	wait "$a"
	[ $? -eq 1 ] || fail "SIG$sig: the interrupted invocation should exit 1"
	grep -q "^FAILED .*a.dst.*interrupted" "$tmp/a.err" || fail "SIG$sig: $(cat "$tmp/a.err")"
	wait "$b" || fail "SIG$sig: the other invocation failed: $(cat "$tmp/b.err")"
	same "$tmp/src.img" "$tmp/b.dst"
	wait_rings_gone || fail "ring left"
done
