#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Which ring a source meets other copies in is its backend's to say: a
# regular file on standard input is streamed once and never meets the
# ring of the file named as a source (which reads it again at the wrap);
# a .zst named as itself (decoded) and as file:x.zst (its raw bytes) are
# two images and two rings; status SOURCE finds the ring as a copy would.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((6 * mb + 512))
rate=$(vrate 2M 256K)

# 1. Standard input first, the file joins: the old build joined the
# stdin ring and failed at the wrap with "Illegal seek".
mkimage "$tmp/other.img" $mb 3
cp "$tmp/src.img" "$tmp/src.keep"
ringcopy --rate "$rate" - "$tmp/a.img" < "$tmp/src.img" 2> "$tmp/a.err" &
bg_pids+=($!)
# Held (its producer stopped) from block 1 on: on a loaded machine the
# 3 s copy ended before the refusal below was tried (issue 27).
producer=$(stop_at_block a.img 1) || fail "the standard-input copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
# The file being streamed on standard input is the source of a running
# copy: it is never a target meanwhile.
expect_status 2 ringcopy "$tmp/other.img" "$tmp/src.img" 2> "$tmp/t.err"
grep -q "refused: it is the source of a running copy" "$tmp/t.err" || fail "$(cat "$tmp/t.err")"
same "$tmp/src.keep" "$tmp/src.img"
# Held while the file's copy runs: it could have joined, and must not.
expect_status 0 ringcopy "$tmp/src.img" "$tmp/b.img" 2> "$tmp/b.err"
kill -CONT "$producer"
grep -q "joined the running copy" "$tmp/b.err" &&
	fail "the file joined the standard-input ring: $(cat "$tmp/b.err")"
wait "${bg_pids[0]}" || fail "the standard-input copy: $(cat "$tmp/a.err")"
same "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/b.img"
bg_pids=()

# 2. The file first, standard input second: its own ring, the whole image.
rm -f "$tmp/a.img" "$tmp/b.img"
ringcopy --rate "$rate" "$tmp/src.img" "$tmp/a.img" 2> "$tmp/a.err" &
bg_pids+=($!)
producer=$(stop_at_block a.img 1) || fail "the file copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 0 ringcopy - "$tmp/b.img" < "$tmp/src.img" 2> "$tmp/b.err"
kill -CONT "$producer"
grep -q "joined the running copy" "$tmp/b.err" &&
	fail "standard input joined the file's ring: $(cat "$tmp/b.err")"
same "$tmp/src.img" "$tmp/b.img"
# Standard input whose offset is not 0: the rest of the file is the image.
{ head -c $mb > /dev/null; ringcopy - "$tmp/c.img" 2> "$tmp/c.err"; } < "$tmp/src.img" ||
	fail "stdin at an offset: $(cat "$tmp/c.err")"
tail -c +$((mb + 1)) "$tmp/src.img" | cmp - "$tmp/c.img" || fail "stdin at an offset: wrong image"
wait "${bg_pids[0]}" || fail "the file copy: $(cat "$tmp/a.err")"
same "$tmp/src.img" "$tmp/a.img"
bg_pids=()

# 3. x.zst and file:x.zst: the old build put both in one ring and refused
# the second as "source changed".
if zstd --version > /dev/null 2>&1; then
	zstd -q -c "$tmp/src.img" > "$tmp/x.zst"
	ringcopy --rate "$(vrate 1M 256K)" "$tmp/x.zst" "$tmp/d.img" 2> "$tmp/d.err" &
	bg_pids+=($!)
	# Held (its producer stopped) until the second copy has joined.
	producer=$(stop_at_block d.img 1) || fail "the .zst copy did not reach block 1"
	on_exit "kill -CONT $producer 2>/dev/null"
	expect_status 0 ringcopy status "$tmp/x.zst" > "$tmp/status"
	grep -q "x.zst" "$tmp/status" || fail "status x.zst does not find its ring: $(cat "$tmp/status")"
	expect_status 0 ringcopy "file:$tmp/x.zst" "$tmp/raw.zst.copy" 2> "$tmp/e.err" ||
		fail "$(cat "$tmp/e.err")"
	same "$tmp/x.zst" "$tmp/raw.zst.copy"
	# A second copy of the decoded image joins.
	ringcopy "$tmp/x.zst" "$tmp/e.img" 2> "$tmp/e.err" &
	e=$!
	wait_said "$tmp/e.err" "joined the running copy"
	kill -CONT "$producer"
	expect_status 0 wait "$e"
	grep -q "joined the running copy" "$tmp/e.err" || fail "x.zst did not join x.zst: $(cat "$tmp/e.err")"
	same "$tmp/src.img" "$tmp/e.img"
	wait "${bg_pids[0]}" || fail "the .zst copy: $(cat "$tmp/d.err")"
	same "$tmp/src.img" "$tmp/d.img"
fi
