#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Block 0 is written last: a consumer killed mid-copy leaves block 0 of
# its target unwritten, so the target never carries the partition table or
# superblock of a half-written image.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" 12M
ringcopy --rate 4M "$tmp/src.img" "$tmp/t.img" 2> /dev/null &
inv=$!
bg_pids+=("$inv")
# Killed with blocks 1 and 2 written, the copy held meanwhile (its
# producer stopped): a loaded machine cannot let it end first, nor while
# the consumer is looked for.
producer=$(stop_at_block t.img 3) || fail "the copy did not reach block 3"
on_exit "kill -CONT $producer 2>/dev/null"
victim=$(wait_consumers "$inv" 1 | head -n 1)
[ -n "$victim" ] || fail "no consumer"
kill -KILL "$victim"
kill -CONT "$producer"
wait "$inv"
[ $? -eq 1 ] || fail "expected exit 1"
# Blocks after 0 were written, block 0 was not.
cmp -s -n $mb "$tmp/t.img" /dev/zero || fail "block 0 was written"
cmp -s -i $mb:$mb -n $mb "$tmp/src.img" "$tmp/t.img" || fail "block 1 missing"
