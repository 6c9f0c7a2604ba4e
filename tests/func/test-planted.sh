#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Targets another user planted: in a sticky world-writable directory (a
# /tmp), a file or FIFO owned by someone else is refused, and left as it
# was; a FIFO nobody reads is refused at once instead of hanging in
# open().  (Root's ringcopy used to overwrite another user's file there,
# and to stream the image into another user's FIFO.)
source "$top_srcdir/tests/func/functions.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root to make files of another user"
id nobody > /dev/null 2>&1 || skip "no user nobody"

mkimage "$tmp/src.img" 1M
mkdir -m 1777 "$tmp/sticky"
mkimage "$tmp/sticky/theirs.img" 1M 9
cp "$tmp/sticky/theirs.img" "$tmp/theirs.keep"
chown nobody "$tmp/sticky/theirs.img"
chmod 0666 "$tmp/sticky/theirs.img"
expect_status 2 ringcopy "$tmp/src.img" "$tmp/sticky/theirs.img" 2> "$tmp/err"
grep -q "theirs.img refused: owned by uid $(id -u nobody) in a sticky world-writable directory" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
same "$tmp/theirs.keep" "$tmp/sticky/theirs.img"

mkfifo -m 0666 "$tmp/sticky/fifo"
chown nobody "$tmp/sticky/fifo"
expect_status 2 timeout "$(slow 10)" "$RINGCOPY" "$tmp/src.img" "$tmp/sticky/fifo" 2> "$tmp/err"
grep -q "fifo refused: owned by uid" "$tmp/err" || fail "$(cat "$tmp/err")"

# Our own FIFO with no reader: refused at once, not a hang.
mkfifo "$tmp/mine"
expect_status 2 timeout "$(slow 10)" "$RINGCOPY" "$tmp/src.img" "$tmp/mine" 2> "$tmp/err"
grep -q "mine refused: a FIFO with no reader" "$tmp/err" || fail "$(cat "$tmp/err")"
# With a reader it is a target like standard output.
cat "$tmp/mine" > "$tmp/out" &
reader=$!
# Until its open() waits for a writer: it counts as a reader from then
# (a sleep here was a guess a loaded machine could beat).
for (( i = 0; i < $(slow 10) * 20; i++ )); do
	[ "$(cat "/proc/$reader/wchan" 2> /dev/null)" = wait_for_partner ] && break
	sleep 0.05
done
expect_status 0 ringcopy "$tmp/src.img" "$tmp/mine" 2> "$tmp/err"
wait "$reader"
same "$tmp/src.img" "$tmp/out"
