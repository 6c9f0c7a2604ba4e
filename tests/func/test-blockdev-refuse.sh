#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Unsafe device targets are refused before anything is written, with exit
# 2 and a line naming the target and the reason; the target is unchanged.
source "$top_srcdir/tests/func/functions.sh"
requires_loop
requires mkfs.ext4 -V

mb=1048576
mkimage "$tmp/src.img" 4M 1
src=$(loop_attach "$tmp/src.img")

refused() {
	# refused DEV_OR_FILE PATTERN args...
	local t=$1 pat=$2 before
	shift 2
	before=$(cksum < "$t")
	expect_status 2 ringcopy "$@" 2> "$tmp/err"
	grep -q -- "$pat" "$tmp/err" || fail "'$*': no '$pat' in: $(cat "$tmp/err")"
	[ "$(cksum < "$t")" = "$before" ] || fail "'$*' changed $t"
}

# A target holding ext4: refused, then overwritten with --force.
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/fs.img" 8M 8M data
fsdev=$(loop_attach "$tmp/fs.img")
refused "$tmp/fs.img" "holds an ext4 filesystem labelled 'data'; give --force" \
	"$tmp/src.img" "$fsdev"
expect_status 0 ringcopy --force "$tmp/src.img" "$fsdev" 2> "$tmp/err"
grep -q "overwriting it (--force)" "$tmp/err" || fail "no --force note"
cmp -n $((4 * mb)) "$tmp/src.img" "$fsdev" || fail "--force copy"

# A mounted target: the kernel refuses O_EXCL.
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/m.img" 8M 8M mounted
mdev=$(loop_attach "$tmp/m.img")
mkdir "$tmp/mnt"
if mount "$mdev" "$tmp/mnt" 2>/dev/null; then
	echo "$mdev" >> "$tmp/.mounts"
	refused "$tmp/m.img" "target $mdev refused: Device or resource busy (in use: mounted" \
		--force "$tmp/src.img" "$mdev"
	# A file on the target device as source: refused too.
	cp "$tmp/src.img" "$tmp/mnt/inside.img"
	refused "$tmp/m.img" "the source file is stored on this device" \
		--force "$tmp/mnt/inside.img" "$mdev"
	umount "$tmp/mnt"
fi

# The target is a loop device backed by the source file.
refused "$tmp/src.img" "a loop device backed by the source file" \
	"$tmp/src.img" "$src"
# ... and the other way round.
refused "$tmp/src.img" "the source is a loop device backed by this file" \
	"$src" "$tmp/src.img"
# The source device itself.
refused "$tmp/src.img" "it is the source" "$src" "$tmp/other.img" "$src"

# A partition of the source's disk.
end=$(bash "$top_srcdir/fixtures/mbr-image.sh" "$tmp/mbr.img" 16M)
disk=$(loop_attach "$tmp/mbr.img" -P)
for (( i = 0; i < 200; i++ )); do [ -b "${disk}p2" ] && break; sleep 0.1; done
if [ -b "${disk}p2" ]; then
	refused "$tmp/mbr.img" "on the same disk as the source" --size 1M "$disk" "${disk}p2"
	refused "$tmp/mbr.img" "on the same disk as the source" "${disk}p1" "$disk"
fi

# Too small, read-only.
truncate -s 2M "$tmp/small.img"
small=$(loop_attach "$tmp/small.img")
refused "$tmp/small.img" "it holds $((2 * mb)) bytes, the image has $((4 * mb))" \
	"$tmp/src.img" "$small"
truncate -s 8M "$tmp/ro.img"
ro=$(loop_attach "$tmp/ro.img" -r)
refused "$tmp/ro.img" "read-only" "$tmp/src.img" "$ro"

# A target being written by another ringcopy: "in use".
# It must outlast the refused invocation's start.
ringcopy --rate "$(vrate 2M 512K)" "$tmp/src.img" "$tmp/busy.img" 2>/dev/null &
bg_pids+=($!)
# It holds the target (its consumer has a block) and its producer is
# held meanwhile, so it cannot end first on a loaded machine (issue 27).
producer=$(stop_at_block busy.img 1) || fail "the first copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
refused "$tmp/src.img" "target $tmp/busy.img refused: Device or resource busy (in use" \
	"$tmp/src.img" "$tmp/busy.img"
kill -CONT "$producer"
wait "${bg_pids[0]}" || fail "the first copy failed"
same "$tmp/src.img" "$tmp/busy.img"
