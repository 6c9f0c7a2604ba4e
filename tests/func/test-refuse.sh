#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Refusals before anything is written: exit 2, a line naming the thing and
# the reason, every target byte-for-byte unchanged or never created.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 256K
mkimage "$tmp/keep.img" 100K 7
keep "$tmp/keep.img" "$tmp/src.img"

refused() {
	expect_refused "$@"
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
# A symlink planted by another user is not followed; ours is.
ln -s "$tmp/keep.img" "$tmp/link.img"
if [ "$(id -u)" -eq 0 ]; then
	chown -h nobody "$tmp/link.img"
	refused "a symlink owned by uid $(id -u nobody), another user" \
		"$tmp/src.img" "$tmp/new.img" "$tmp/link.img"
	chown -h root "$tmp/link.img"
fi
ln -s "$tmp/nothing.img" "$tmp/dangling.img"
refused "a symlink to nothing" "$tmp/src.img" "$tmp/new.img" "$tmp/dangling.img"
# A read-only target file.
chmod 0444 "$tmp/keep.img"
refused "read-only (mode 0444)" "$tmp/src.img" "$tmp/new.img" "$tmp/keep.img"
chmod 0644 "$tmp/keep.img"
# A symlink of ours to a target is followed.
expect_status 0 ringcopy -q "$tmp/src.img" "$tmp/link.img"
same "$tmp/src.img" "$tmp/keep.img"
cp "$tmp/keep.img" "$tmp/keep.img.kept"
refused "it is the source" "$tmp/src.img" "$tmp/new.img" "file:$tmp/src.img"
refused "--size 999999999 refused: the source .* holds only 262144 bytes" --size 999999999 "$tmp/src.img" "$tmp/new.img"
refused "--sparse 'sometimes'" --sparse sometimes "$tmp/src.img" "$tmp/new.img"
refused "source null: refused: .*cannot be read" null: "$tmp/new.img"
