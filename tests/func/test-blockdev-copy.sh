#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Block devices as sources and targets: device to device, file to device,
# device to file, and a late joiner on a device source.
source "$top_srcdir/tests/func/functions.sh"
requires_loop

mb=1048576
mkimage "$tmp/src.img" 8M 1
truncate -s 12M "$tmp/t1.img" "$tmp/t2.img"
src=$(loop_attach "$tmp/src.img")
t1=$(loop_attach "$tmp/t1.img")
t2=$(loop_attach "$tmp/t2.img")

# file -> device: the device is larger; only the image is written.
expect_status 0 ringcopy --json "$tmp/src.img" "$t1" > "$tmp/a.json" 2> "$tmp/a.err"
cmp -n $((8 * mb)) "$tmp/src.img" "$t1" || fail "file -> device"
json_get "$tmp/a.json" 'j["targets"][0]["verify_method"]' | grep -qx direct ||
	fail "device not read back with O_DIRECT: $(cat "$tmp/a.json")"

# device -> device and device -> file (random data: no signature, the
# whole device is the image).
expect_status 0 ringcopy "$src" "$t2" "$tmp/out.img" 2> "$tmp/b.err"
grep -q "no partition table or filesystem: the whole $((8 * mb)) bytes" "$tmp/b.err" ||
	fail "size not explained: $(cat "$tmp/b.err")"
cmp -n $((8 * mb)) "$src" "$t2" || fail "device -> device"
same "$tmp/src.img" "$tmp/out.img"

# An image whose size is not a multiple of the sector size, onto a device:
# the tail goes through the buffered descriptor.
mkimage "$tmp/odd.img" $((3 * mb + 1000)) 4
expect_status 0 ringcopy -q "$tmp/odd.img" "$t1"
cmp -n $((3 * mb + 1000)) "$tmp/odd.img" "$t1" || fail "odd tail"

# A late joiner on a device source.
ringcopy --rate 2M "$src" "$tmp/j1.img" 2>/dev/null &
bg_pids+=($!)
wait_ring
ls "$RINGCOPY_RUNDIR" | grep -q '^blk-7-' || fail "device ring not named from st_rdev"
# Joined past block 0 however loaded the machine (held_join), not after
# a 0.7 s pause the first copy could outrun (issue 27).
expect_status 0 held_join j1.img 1 "$tmp/j2.err" ringcopy --json "$src" "$tmp/j2.img" > "$tmp/j.json"
wait "${bg_pids[0]}" || fail "first device copy"
same "$tmp/src.img" "$tmp/j1.img"
same "$tmp/src.img" "$tmp/j2.img"
[ "$(json_get "$tmp/j.json" 'j["targets"][0]["start_block"]')" -gt 0 ] || fail "no join"

# A GPT image onto a larger disk: its backup header lands at the image's
# end, and the copy says so and how to move it; onto a disk of its own
# size, nothing to say.  The disk then holds "a gpt partition table with
# 1 partition", which a second copy refuses without --force.
if command -v sfdisk >/dev/null; then
	# Random bytes around the table: no zero block (BLKZEROOUT, which
	# valgrind does not know, is not called).
	mkimage "$tmp/gpt.img" 4M 9
	sfdisk -q "$tmp/gpt.img" > /dev/null <<'PT' || fail "sfdisk"
label: gpt
start=2048, size=4096
PT
	expect_status 0 ringcopy --json "$tmp/gpt.img" "$t2" > "$tmp/g.json" 2> "$tmp/g.err"
	grep -q "target $t2 holds a GPT whose backup header is at byte $((4 * mb - 512)), not at the end of the disk ($((12 * mb)) bytes): move it there with 'sgdisk -e $t2'" "$tmp/g.err" ||
		fail "no GPT note: $(cat "$tmp/g.err")"
	cmp -n $((4 * mb)) "$tmp/gpt.img" "$t2" || fail "GPT copy"
	truncate -s 4M "$tmp/t4.img"
	t4=$(loop_attach "$tmp/t4.img")
	expect_status 0 ringcopy "$tmp/gpt.img" "$t4" 2> "$tmp/g4.err"
	grep -q "GPT" "$tmp/g4.err" && fail "a GPT note for a disk of the image's size: $(cat "$tmp/g4.err")"
	expect_status 2 ringcopy "$tmp/src.img" "$t2" 2> "$tmp/g2.err"
	grep -q "target $t2 refused: it holds a gpt partition table with 1 partition; give --force" "$tmp/g2.err" ||
		fail "$(cat "$tmp/g2.err")"
fi
