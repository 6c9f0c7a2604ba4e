#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Image sizes at every edge of the block and the ring, to two targets.
source "$top_srcdir/tests/func/functions.sh"

bs=65536
for size in 0 1 4095 4096 $((bs - 1)) $bs $((bs + 1)) $((3 * 1048576 + 12345)); do
	mkimage "$tmp/src.img" "$size" "$size"
	# Ring of 4 slots: every image above 256K wraps the ring many times.
	expect_status 0 ringcopy -q -b 64K --buffer 256K "$tmp/src.img" \
		"$tmp/a.img" "$tmp/b.img"
	same "$tmp/src.img" "$tmp/a.img"
	same "$tmp/src.img" "$tmp/b.img"
	[ "$(stat -c %s "$tmp/a.img")" -eq "$size" ] || fail "size $size"
	rm -f "$tmp/a.img" "$tmp/b.img"
done

# The default geometry, an image of a few MiB that is not a multiple of
# the block size and larger than a small ring.
mkimage "$tmp/src.img" $((5 * 1048576 + 777)) 99
expect_status 0 ringcopy -q --buffer 2M "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/a.img"
