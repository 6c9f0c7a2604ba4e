#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# One source, one target: identical, exit 0, a status line, nothing left.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 5M
expect_status 0 ringcopy "$tmp/src.img" "$tmp/dst.img" 2> "$tmp/err"
same "$tmp/src.img" "$tmp/dst.img"
grep -q "^ok .*dst.img  5242880 bytes  start block 0" "$tmp/err" ||
	fail "no status line: $(cat "$tmp/err")"

# A file: prefix names the file backend explicitly.
expect_status 0 ringcopy -q "$tmp/src.img" "file:$tmp/dst2.img"
same "$tmp/src.img" "$tmp/dst2.img"

# A new target's name is made durable too: its directory is fsynced before
# the target is reported ok (a file and a .zst; an existing file needs no
# directory sync).
if command -v strace > /dev/null && [ "${RINGCOPY_VALGRIND:-0}" != 1 ]; then
	mkdir "$tmp/d1" "$tmp/d2"
	# -ff: one file per process, so no call is split into "unfinished"
	# and "resumed" halves by another process's line.
	strace -ff -qq -e trace=openat,fsync -o "$tmp/strace" \
		"$RINGCOPY" -q "$tmp/src.img" "$tmp/d1/new.img" "$tmp/d2/new.img.zst" 2> /dev/null ||
		fail "copy to new files under strace"
	for d in d1 d2; do
		trace=$(grep -lF "openat(AT_FDCWD, \"$tmp/$d\", " "$tmp"/strace.* | head -n 1)
		[ -n "$trace" ] || fail "the directory $d of a new target was not opened to be synced"
		line=$(grep -F "openat(AT_FDCWD, \"$tmp/$d\", " "$trace" | grep DIRECTORY | head -n 1)
		[ -n "$line" ] || fail "the directory $d of a new target was not opened to be synced"
		fd=${line##*= }
		[[ $fd =~ ^[0-9]+$ ]] || fail "the directory $d's open returned no descriptor: $line"
		grep -Eq "^fsync\($fd[) ]" "$trace" || fail "the directory $d of a new target was not fsynced"
	done
fi
