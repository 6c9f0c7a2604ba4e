#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A target changed while it is copied, after the blocks concerned were
# written (and, on the previous build, read back behind the copy), is not
# reported verified: 16 bytes overwritten in place, or the file truncated.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((8 * mb))
rate=$(vrate 1M 512K)

resume() { kill -CONT "$producer"; }

# 1. 16 bytes of block 1 overwritten once it is written.
ringcopy --json --rate "$rate" "$tmp/src.img" "$tmp/t1.img" > "$tmp/1.json" 2> "$tmp/1.err" &
bg_pids+=($!)
producer=$(stop_at_block t1.img 2) || fail "the copy to t1.img did not reach block 2"
on_exit "kill -CONT $producer 2>/dev/null"
printf 'SIXTEEN BYTES!!!' | dd of="$tmp/t1.img" bs=1 seek=$((mb + 100)) conv=notrunc status=none
resume
st=0
wait "${bg_pids[0]}" || st=$?
[ "$st" = 3 ] || fail "overwritten in place: exit $st, want 3: $(cat "$tmp/1.err")"
grep -q "^MISMATCH .*t1.img.*1 bad block at offset $mb" "$tmp/1.err" || fail "$(cat "$tmp/1.err")"
json_get "$tmp/1.json" 'j["targets"][0]["verified"]' | grep -qx False || fail "reported verified"
bg_pids=()

# 2. Truncated to one block once block 1 is written: the later writes extend
# it again, over a hole where block 1 was.
ringcopy --rate "$rate" "$tmp/src.img" "$tmp/t2.img" 2> "$tmp/2.err" &
bg_pids+=($!)
producer=$(stop_at_block t2.img 2) || fail "the copy to t2.img did not reach block 2"
on_exit "kill -CONT $producer 2>/dev/null"
truncate -s $mb "$tmp/t2.img"
resume
st=0
wait "${bg_pids[0]}" || st=$?
[ "$st" = 3 ] || fail "truncated: exit $st, want 3: $(cat "$tmp/2.err")"
grep -q "^MISMATCH .*t2.img" "$tmp/2.err" || fail "$(cat "$tmp/2.err")"
