#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Five targets in one invocation; existing targets larger than the image
# are truncated to it; the source is read exactly once.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 7M
mkimage "$tmp/t3.img" 9M 3   # an old, larger image in the way
expect_status 0 ringcopy --json "$tmp/src.img" "$tmp"/t{1,2,3,4,5}.img \
	> "$tmp/out.json"
for i in 1 2 3 4 5; do
	same "$tmp/src.img" "$tmp/t$i.img"
done
[ "$(json_get "$tmp/out.json" 'j["source_bytes_read"]')" -eq $((7 * 1048576)) ] ||
	fail "source read more than once: $(cat "$tmp/out.json")"
[ "$(json_get "$tmp/out.json" 'len(j["targets"])')" -eq 5 ] || fail "targets"
