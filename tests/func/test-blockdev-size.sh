#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --size auto copies the image on a disk: a bare filesystem's own size, an
# MBR disk up to its last partition; --size device the whole device.
source "$top_srcdir/tests/func/functions.sh"
requires_loop
requires mkfs.ext4 -V
requires sfdisk --version

mb=1048576
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/fs.img" 24M 16M golden
fs=$(loop_attach "$tmp/fs.img")
expect_status 0 ringcopy --json "$fs" "$tmp/fs-copy.img" > "$tmp/fs.json" 2> "$tmp/fs.err"
grep -q "ext4 filesystem labelled golden: its size, $((16 * mb)) bytes" "$tmp/fs.err" ||
	fail "not explained: $(cat "$tmp/fs.err")"
[ "$(stat -c %s "$tmp/fs-copy.img")" -eq $((16 * mb)) ] || fail "fs copy size"
cmp -n $((16 * mb)) "$tmp/fs.img" "$tmp/fs-copy.img" || fail "fs copy content"
e2fsck -fn "$tmp/fs-copy.img" >/dev/null 2>&1 || fail "the copy does not fsck clean"

# --size device: the whole 24 MiB.
expect_status 0 ringcopy -q --size device "$fs" "$tmp/whole.img"
same "$tmp/fs.img" "$tmp/whole.img"
# --size N: the first N bytes.
expect_status 0 ringcopy -q --size 5M "$fs" "$tmp/five.img"
[ "$(stat -c %s "$tmp/five.img")" -eq $((5 * mb)) ] || fail "--size 5M"

end=$(bash "$top_srcdir/fixtures/mbr-image.sh" "$tmp/mbr.img" 16M)
disk=$(loop_attach "$tmp/mbr.img")
expect_status 0 ringcopy "$disk" "$tmp/mbr-copy.img" 2> "$tmp/mbr.err"
grep -q "dos partition table (2 partitions): up to the end of the last partition, $end bytes" "$tmp/mbr.err" ||
	fail "not explained: $(cat "$tmp/mbr.err")"
[ "$(stat -c %s "$tmp/mbr-copy.img")" -eq "$end" ] || fail "mbr copy size"
cmp -n "$end" "$tmp/mbr.img" "$tmp/mbr-copy.img" || fail "mbr copy content"
sfdisk -d "$tmp/mbr-copy.img" | grep -q "start=       10240" || fail "table lost"
