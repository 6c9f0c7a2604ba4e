#!/bin/bash
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
