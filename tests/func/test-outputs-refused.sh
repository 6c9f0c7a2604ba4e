#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every path an invocation writes is refused like a target, before
# anything is written, and what it named is left byte for byte as it was:
# --rescue or --manifest naming the source, a target or a device; one new
# target named two ways; a new target file on the mounted filesystem of the
# source device; a target in a read-only directory next to an existing
# target; a joiner's --rescue map (the running copy's) is not emptied; a
# --manifest that cannot be written is not exit 0.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 2M
mkimage "$tmp/old.img" 2M 7
cp "$tmp/old.img" "$tmp/a.img"
keep "$tmp/src.img" "$tmp/a.img"

refused() { expect_refused "$@"; }

refused "--rescue map .*src.img refused: it is the source" --rescue "$tmp/src.img" "$tmp/src.img" "$tmp/a.img"
refused "--rescue map .*a.img refused: it is the target" --rescue "$tmp/a.img" "$tmp/src.img" "$tmp/a.img"
refused "--manifest .*src.img refused: it is the source" --manifest "$tmp/src.img" "$tmp/src.img" "$tmp/a.img"
refused "--manifest .*a.img refused: it is the target" --manifest "$tmp/a.img" "$tmp/src.img" "$tmp/a.img"
refused "--manifest .*refused: it is the target" --manifest "$tmp/./n.img" "$tmp/src.img" "$tmp/a.img" "$tmp/n.img"
refused "named for two outputs" --manifest "$tmp/m" --rescue "$tmp/m" "$tmp/src.img" "$tmp/a.img"
mkfifo "$tmp/fifo"
refused "--manifest .*fifo refused: it exists and is not a regular file" --manifest "$tmp/fifo" "$tmp/src.img" "$tmp/a.img"
ln -s "$tmp/src.img" "$tmp/link"
refused "--manifest .*link refused: it is a symlink" --manifest "$tmp/link" "$tmp/src.img" "$tmp/a.img"
[ ! -e "$tmp/n.img" ] && [ ! -e "$tmp/m" ] || fail "a refusal created a file"
# Standard output is the manifest's file.
cp "$tmp/old.img" "$tmp/out"
expect_status 2 ringcopy --manifest "$tmp/out" "$tmp/src.img" - 2> "$tmp/err" >> "$tmp/out"
grep -q "manifest .*out refused: it is standard output, a target" "$tmp/err" || fail "$(cat "$tmp/err")"
same "$tmp/old.img" "$tmp/out"
# One new file named two ways.
(cd "$tmp" && refused "same target as" "$tmp/src.img" "$tmp/a.img" n.img "$tmp/n.img")
[ ! -e "$tmp/n.img" ] || fail "created n.img"

# A --manifest that cannot be written (its directory went away) fails.
mkdir "$tmp/gone"
ringcopy --rate "$(vrate 1M 256K)" --manifest "$tmp/gone/m" "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block b.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
rmdir "$tmp/gone"
kill -CONT "$producer"
wait "$inv"
[ $? -eq 1 ] || fail "an unwritten manifest exited $?: $(cat "$tmp/err")"
grep -q "manifest .*gone/m" "$tmp/err" || fail "$(cat "$tmp/err")"

# A joiner's --rescue map is the running copy's: left as it is.
echo "0 512" > "$tmp/map"
ringcopy --rate "$(vrate 512K 128K)" "$tmp/src.img" "$tmp/c.img" 2> /dev/null &
first=$!
bg_pids+=("$first")
# Joined while the first copy's producer is held (held_join), not after
# wait_consumers: a loaded machine could end the copy first (issue 27).
expect_status 0 held_join c.img 1 "$tmp/err" ringcopy --rescue "$tmp/map" "$tmp/src.img" "$tmp/d.img"
grep -q "belong to the copy that started it" "$tmp/err" || fail "$(cat "$tmp/err")"
[ "$(cat "$tmp/map")" = "0 512" ] || fail "the joiner emptied the map"
wait "$first" || fail "the first copy failed"

# A target that is the source of a running copy.
cp "$tmp/src.img" "$tmp/busy.img"
ringcopy --rate "$(vrate 512K 128K)" "$tmp/busy.img" "$tmp/e.img" 2> /dev/null &
busy=$!
bg_pids+=("$busy")
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block e.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 2 ringcopy "$tmp/old.img" "$tmp/busy.img" 2> "$tmp/err"
kill -CONT "$producer"
grep -q "busy.img refused: it is the source of a running copy" "$tmp/err" || fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/busy.img"
wait "$busy" || fail "the copy of busy.img failed"

# Root-only: a read-only directory (a read-only bind mount: root writes
# through modes), and the source device's filesystem.
[ "$(id -u)" -eq 0 ] || exit 0
mkdir "$tmp/ro"
if mount --bind "$tmp/ro" "$tmp/ro" 2>/dev/null; then
	on_exit "umount '$tmp/ro' 2>/dev/null"
	mount -o remount,ro,bind "$tmp/ro" || fail "remount ro"
	mkdir -p "$tmp/ro/sub" 2>/dev/null
	refused "ro/new.img refused" "$tmp/src.img" "$tmp/a.img" "$tmp/ro/new.img"
	umount "$tmp/ro"
fi
requires_loop
command -v mkfs.ext4 >/dev/null || exit 0
truncate -s 32M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img" || fail "mkfs"
dev=$(loop_attach "$tmp/fs.img")
mkdir "$tmp/mnt"
mount "$dev" "$tmp/mnt" || skip "cannot mount ext4 here"
on_exit "umount '$tmp/mnt' 2>/dev/null"
expect_status 2 ringcopy --size device "$dev" "$tmp/mnt/new.img" 2> "$tmp/err"
grep -q "new.img refused: a new file there would be written into the source's device" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
[ ! -e "$tmp/mnt/new.img" ] || fail "created a file on the source's filesystem"
expect_status 2 ringcopy --size device --manifest "$tmp/mnt/m" "$dev" "$tmp/e.img" 2> "$tmp/err"
grep -q "manifest .*mnt/m refused" "$tmp/err" || fail "$(cat "$tmp/err")"
# A manifest naming a target device is never replaced by a file.
truncate -s 4M "$tmp/disk.img"
tdev=$(loop_attach "$tmp/disk.img")
expect_status 2 ringcopy --manifest "$tdev" "$tmp/src.img" "$tdev" 2> "$tmp/err"
grep -q "manifest $tdev refused: it exists and is not a regular file" "$tmp/err" || fail "$(cat "$tmp/err")"
[ -b "$tdev" ] || fail "$tdev is no longer a device node"
umount "$tmp/mnt"
