#!/bin/bash
# Refusals before anything is written: exit 2, a line naming the thing and
# the reason, every target byte-for-byte unchanged or never created.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 256K
mkimage "$tmp/keep.img" 100K 7
cp "$tmp/keep.img" "$tmp/keep.orig"
cp "$tmp/src.img" "$tmp/src.orig"

refused() {
	local pat=$1
	shift
	expect_status 2 ringcopy "$@" 2> "$tmp/err"
	grep -q -- "$pat" "$tmp/err" || fail "'$*': no '$pat' in: $(cat "$tmp/err")"
	same "$tmp/keep.orig" "$tmp/keep.img"
	same "$tmp/src.orig" "$tmp/src.img"
	[ ! -e "$tmp/new.img" ] || fail "'$*' created a target"
}

refused "it is the source" "$tmp/src.img" "$tmp/keep.img" "$tmp/src.img"
ln "$tmp/src.img" "$tmp/hardlink.img"
refused "it is the source" "$tmp/src.img" "$tmp/new.img" "$tmp/hardlink.img"
refused "the same target as" "$tmp/src.img" "$tmp/keep.img" "$tmp/keep.img"
refused "the same target as" "$tmp/src.img" "$tmp/keep.img" "$tmp/./keep.img"
refused "source $tmp/missing.img refused: No such file" "$tmp/missing.img" "$tmp/new.img"
refused "Is a directory" "$tmp" "$tmp/new.img"
refused "target $tmp/nodir/x.img refused" "$tmp/src.img" "$tmp/keep.img" "$tmp/nodir/x.img"
refused "refused: Is a directory" "$tmp/src.img" "$tmp/new.img" "$tmp"
ln -s "$tmp/keep.img" "$tmp/link.img"
refused "a symlink" "$tmp/src.img" "$tmp/new.img" "$tmp/link.img"
refused "it is the source" "$tmp/src.img" "$tmp/new.img" "file:$tmp/src.img"
refused "source null: refused: .*cannot be read" null: "$tmp/new.img"
