#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Sparse images: holes are not read and stay holes; zero blocks on a
# device target go through the zero-out path and read back as zeros.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
# 1 GiB with 3 MiB of data at three places.
truncate -s 1G "$tmp/sparse.img"
mkimage "$tmp/d.bin" 1M 9
for at in 0 500 1023; do
	dd if="$tmp/d.bin" of="$tmp/sparse.img" bs=1M seek=$at conv=notrunc 2>/dev/null
done
expect_status 0 ringcopy --json "$tmp/sparse.img" "$tmp/copy.img" > "$tmp/s.json" 2>/dev/null
same "$tmp/sparse.img" "$tmp/copy.img"
read_bytes=$(json_get "$tmp/s.json" 'j["source_bytes_read"]')
[ "$read_bytes" -eq $((3 * mb)) ] || fail "read $read_bytes bytes of a 3 MiB sparse image"
alloc=$(( $(stat -c '%b * %B' "$tmp/copy.img") ))
[ "$alloc" -le $((4 * mb)) ] || fail "the copy is not sparse: $alloc bytes allocated"
# --rate counts the bytes read, not the holes: the note says what the
# (much higher) rates shown count (issue 27).
expect_status 0 ringcopy --rate 4M "$tmp/sparse.img" "$tmp/rate.img" 2> "$tmp/rate.err"
grep -q -- "--rate limits the bytes read from $tmp/sparse.img; its holes are not read, so the rates shown (bytes of the image per second, holes included) may be far above it" "$tmp/rate.err" ||
	fail "$(cat "$tmp/rate.err")"
same "$tmp/sparse.img" "$tmp/rate.img"
rm -f "$tmp/rate.img"

# Zero blocks that are data in the source also become holes.
mkimage "$tmp/z.img" 4M 2
dd if=/dev/zero of="$tmp/z.img" bs=1M seek=1 count=2 conv=notrunc 2>/dev/null
expect_status 0 ringcopy -q "$tmp/z.img" "$tmp/z-copy.img"
same "$tmp/z.img" "$tmp/z-copy.img"
alloc=$(( $(stat -c '%b * %B' "$tmp/z-copy.img") ))
[ "$alloc" -le $((2 * mb + 65536)) ] || fail "zero blocks were written: $alloc"
# --sparse never writes them.
expect_status 0 ringcopy -q --sparse never "$tmp/z.img" "$tmp/z-full.img"
same "$tmp/z.img" "$tmp/z-full.img"
alloc=$(( $(stat -c '%b * %B' "$tmp/z-full.img") ))
[ "$alloc" -ge $((4 * mb)) ] || fail "--sparse never left holes: $alloc"

# A device target full of old data: the zero blocks are zeroed out
# (BLKZEROOUT with --sparse always) and read back as zeros.
if [ "$(id -u)" -eq 0 ] && [ -e /dev/loop-control ] && command -v strace >/dev/null; then
	requires_loop
	mkimage "$tmp/old.img" 8M 77
	dev=$(loop_attach "$tmp/old.img")
	strace -f -qq -e trace=ioctl -o "$tmp/strace.log" \
		"$RINGCOPY" -q --sparse always "$tmp/z.img" "$dev" || fail "copy to device"
	cmp -n $((4 * mb)) "$tmp/z.img" "$dev" || fail "zero blocks did not read back as zeros"
	grep -q "BLKZEROOUT" "$tmp/strace.log" || fail "no BLKZEROOUT: $(grep -c ioctl "$tmp/strace.log") ioctls"
fi

# A sparse source that shrinks mid-copy: past its new end SEEK_DATA finds
# no data, which used to read as a hole, so the target was padded with
# zeros and reported verified.  It is the source shrinking.
truncate -s 64M "$tmp/shrink.img"
mkimage "$tmp/d8.bin" 8M 5
dd if="$tmp/d8.bin" of="$tmp/shrink.img" conv=notrunc 2>/dev/null
ringcopy --rate "$(vrate 2M 1M)" "$tmp/shrink.img" "$tmp/sh.img" 2> "$tmp/sh.err" &
inv=$!
bg_pids+=("$inv")
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block sh.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
truncate -s 32M "$tmp/shrink.img"
kill -CONT "$producer"
wait "$inv"
[ $? -eq 1 ] || fail "a shrunk sparse source: $(cat "$tmp/sh.err")"
grep -q "^FAILED .*it shrank to 33554432 bytes" "$tmp/sh.err" || fail "$(cat "$tmp/sh.err")"
