#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A disk reached through another name is the same disk: two loop devices
# over one file (or a loop device over another) are one storage for every
# rule.  With an ext4 file mounted through one loop device and attached
# again as another:
#  - the alias is refused as a target, with --force too (exit 2, naming
#    the mounted device), and the file keeps its bytes;
#  - so is the file itself;
#  - a disk whose partition is mounted, and another loop device over its
#    file, are in use too;
#  - a loop device over the source file, or over a loop device over it,
#    is refused as a target, and the other way round;
#  - two targets that reach one file are refused;
#  - a target that is a loop device over the file a running copy reads is
#    refused;
#  - an output file (--manifest) that is a target's file is refused.
source "$top_srcdir/tests/func/functions.sh"
requires_loop
requires mkfs.ext4 -V
requires nsenter --version


mb=1048576
mkimage "$tmp/src.img" 4M 1

# refused FILE PATTERN args...: exit 2, PATTERN said, FILE's bytes kept.
refused() {
	local f=$1 pat=$2 before
	shift 2
	before=$(cksum < "$f")
	expect_status 2 ringcopy "$@" 2> "$tmp/err"
	grep -q -- "$pat" "$tmp/err" || fail "'$*': no '$pat' in: $(cat "$tmp/err")"
	[ "$(cksum < "$f")" = "$before" ] || fail "'$*' changed $f"
}

# A mounted ext4 file, attached again as a second loop device.
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/fs.img" 8M 8M mounted
loopa=$(loop_attach "$tmp/fs.img")
mkdir "$tmp/mnt"
mount_private "$loopa" "$tmp/mnt" || skip "cannot mount ext4 in a mount namespace here"
loopb=$(loop_attach "$tmp/fs.img")
sum=$(cksum < "$tmp/fs.img")

refused "$tmp/fs.img" "target $loopb refused: in use: $loopa, another name of the same storage ($tmp/fs.img), is mounted or held" \
	--force "$tmp/src.img" "$loopb"
refused "$tmp/fs.img" "target $loopb refused: in use" "$tmp/src.img" "$loopb"
# The file under the mounted loop device: in use as well.
refused "$tmp/fs.img" "target $tmp/fs.img refused: in use: $loopa" \
	--force "$tmp/src.img" "$tmp/fs.img"
# A loop device over the alias (loop over loop): in use too.
loopc=$(loop_attach "$loopb")
refused "$tmp/fs.img" "target $loopc refused: in use: $loopa" \
	--force "$tmp/src.img" "$loopc"
[ "$(cksum < "$tmp/fs.img")" = "$sum" ] || fail "the mounted filesystem's file changed"
in_mount ls "$tmp/mnt/hello.txt" > /dev/null || fail "the mounted filesystem lost a file"

# The source file and loop devices over it.
s1=$(loop_attach "$tmp/src.img")
s2=$(loop_attach "$tmp/src.img")
s3=$(loop_attach "$s1")
refused "$tmp/src.img" "target $s1 refused: it is a loop device backed by the source file" \
	--force "$tmp/src.img" "$tmp/t.img" "$s1"
[ ! -e "$tmp/t.img" ] || fail "a target was created before the refusal"
refused "$tmp/src.img" "target $s3 refused: it is another name of the source's storage" \
	--force "$tmp/src.img" "$s3"
# Source through one loop device, target another over the same file.
refused "$tmp/src.img" "target $s2 refused: it is another name of the source's storage" \
	--force "$s1" "$s2"
refused "$tmp/src.img" "target $s1 refused: it is another name of the source's storage" \
	--force "$s3" "$s1"
refused "$tmp/src.img" "target $tmp/src.img refused: the source is a loop device backed by this file" \
	--force "$s3" "$tmp/src.img"

# Two targets that are one file.
truncate -s 4M "$tmp/d.img"
d1=$(loop_attach "$tmp/d.img")
d2=$(loop_attach "$tmp/d.img")
refused "$tmp/d.img" "target $d2 refused: the same target as $d1" \
	--force "$tmp/src.img" "$d1" "$d2"
refused "$tmp/d.img" "target $d1 refused: the same target as $tmp/d.img" \
	--force "$tmp/src.img" "$tmp/d.img" "$d1"
# An output that is a target's file, through a loop device.
refused "$tmp/d.img" "--manifest $tmp/d.img refused: it is the target $d1" \
	--force --manifest "$tmp/d.img" "$tmp/src.img" "$d1"

# A running copy reads a file: a loop device over that file is its source
# by another name.
mkimage "$tmp/run.img" 8M 3
r1=$(loop_attach "$tmp/run.img")
ringcopy --rate "$(vrate 2M 512K)" "$tmp/run.img" "$tmp/out.img" 2>/dev/null &
running=$!
bg_pids+=($running)
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block out.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
refused "$tmp/run.img" "target $r1 refused: it is the source of a running copy (producer pid" \
	--force "$tmp/src.img" "$r1"
kill -CONT "$producer"
kill_tree "$running"
wait "$running" 2>/dev/null

# Unrelated loop devices still work, --force where they hold data.
truncate -s 4M "$tmp/ok.img"
ok=$(loop_attach "$tmp/ok.img")
expect_status 0 ringcopy "$tmp/src.img" "$ok" 2> "$tmp/err"
cmp "$tmp/src.img" "$tmp/ok.img" || fail "the copy to an unrelated loop device"
# A filesystem mounted from a partition of a loop device: the whole
# disk, and another loop device over its file, are in use (claiming a
# whole disk does not look at its partitions' claims).
bash "$top_srcdir/fixtures/mbr-image.sh" "$tmp/mbr.img" 16M > /dev/null
pdisk=$(loop_attach "$tmp/mbr.img" -P)
for (( i = 0; i < 200; i++ )); do [ -b "${pdisk}p1" ] && break; sleep 0.1; done
if [ -b "${pdisk}p1" ] && mkfs.ext4 -q "${pdisk}p1" 2> /dev/null; then
	unmount_private
	mkdir -p "$tmp/pmnt"
	mount_private "${pdisk}p1" "$tmp/pmnt" || fail "cannot mount ${pdisk}p1"
	palias=$(loop_attach "$tmp/mbr.img")
	refused "$tmp/mbr.img" "target $pdisk refused: in use: its partition ${pdisk}p1 is mounted or held" \
		--force "$tmp/src.img" "$pdisk"
	refused "$tmp/mbr.img" "target $palias refused: in use: ${pdisk}p1, another name of the same storage ($tmp/mbr.img), is mounted or held" \
		--force "$tmp/src.img" "$palias"
fi

# Unmounted here (the holder's namespace ends), not by the exit trap, so
# that the kernel has let the loop device go by the time the trap
# detaches it.
unmount_private
exit 0
