#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# zstd images: raw -> .zst -> raw round trips, multi-frame sources, a .zst
# target joining a running raw copy, corrupt and truncated sources, and a
# .zst that does not say its size.
source "$top_srcdir/tests/func/functions.sh"
requires zstd --version

mb=1048576
# Two frames of zstd's own (4 MiB and the rest) and a stretch of zeros;
# under valgrind, where zstd compresses some 50 times slower, 5 MiB.
isize=$(vrate $((9 * mb + 4321)) $((5 * mb + 4321)))
mkimage "$tmp/src.img" "$isize"
# Make it compressible too: half zeros.
dd if=/dev/zero of="$tmp/src.img" bs=1M seek=2 count=3 conv=notrunc 2>/dev/null

expect_status 0 ringcopy --json "$tmp/src.img" "$tmp/out.zst" "zstd:$tmp/plain" \
	> "$tmp/1.json" 2>/dev/null
zstd -q -d -c "$tmp/out.zst" | cmp - "$tmp/src.img" || fail "zstd -d of our .zst"
zstd -q -d -c "$tmp/plain" | cmp - "$tmp/src.img" || fail "zstd: prefix"
json_get "$tmp/1.json" '[t["verify_method"] for t in j["targets"]]' |
	grep -qx "\['decompress', 'decompress'\]" || fail "not verified by decompression"
# The size is pledged in the frame header.
zstd -l "$tmp/out.zst" 2>/dev/null | grep -q "$((isize / mb)).0[0-9]* MiB" ||
	zstd -lv "$tmp/out.zst" 2>/dev/null | grep -q "Decompressed Size: .*($isize B)" ||
	fail "no content size: $(zstd -lv "$tmp/out.zst" 2>&1 | head)"

# .zst -> raw, from ours and from zstd's multi-frame output.
expect_status 0 ringcopy -q "$tmp/out.zst" "$tmp/back.img"
same "$tmp/src.img" "$tmp/back.img"
# (from files: zstd writes the content size only when it knows it)
head -c $((4 * mb)) "$tmp/src.img" > "$tmp/part1"
tail -c +$((4 * mb + 1)) "$tmp/src.img" > "$tmp/part2"
zstd -q -c "$tmp/part1" > "$tmp/multi.zst"
zstd -q -c "$tmp/part2" >> "$tmp/multi.zst"
expect_status 0 ringcopy --json "$tmp/multi.zst" "$tmp/m1.img" "$tmp/m2.img" > "$tmp/m.json" 2>/dev/null
same "$tmp/src.img" "$tmp/m1.img"
same "$tmp/src.img" "$tmp/m2.img"
[ "$(json_get "$tmp/m.json" 'j["image_bytes"]')" -eq $isize ] || fail "multi-frame size"

# A .zst target joining a running raw copy starts at the next pass's block
# 0; the producer reads on for it.
ringcopy --rate "$(vrate 3M 1M)" "$tmp/src.img" "$tmp/first.img" 2>/dev/null &
bg_pids+=($!)
expect_status 0 held_join first.img 1 "$tmp/late.err" ringcopy --json "$tmp/src.img" "$tmp/late.zst" "$tmp/late.img" \
	> "$tmp/late.json"
wait "${bg_pids[0]}" || fail "the first copy"
grep -q "late.zst takes blocks in order only: it starts with the next pass, at block 0" "$tmp/late.err" ||
	fail "$(cat "$tmp/late.err")"
zstd -q -d -c "$tmp/late.zst" | cmp - "$tmp/src.img" || fail "late .zst"
same "$tmp/src.img" "$tmp/late.img"
python3 - "$tmp/late.json" <<'PY' || fail "$(cat "$tmp/late.json")"
import json, sys
j = json.load(open(sys.argv[1]))
z, raw = j["targets"]
assert z["start_block"] == 0 and raw["start_block"] > 0, j
PY

# Corrupt and truncated sources fail with offsets and zstd's error name.
cp "$tmp/out.zst" "$tmp/bad.zst"
size=$(stat -c %s "$tmp/bad.zst")
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$tmp/bad.zst" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect_status 1 ringcopy "$tmp/bad.zst" "$tmp/c1.img" "$tmp/c2.img" 2> "$tmp/err"
grep -q "^FAILED .*source .*bad.zst: read .*zstd data corrupt.* at compressed offset [0-9]* (uncompressed [0-9]*)" "$tmp/err" ||
	fail "corrupt: $(cat "$tmp/err")"
grep -q "^ok" "$tmp/err" && fail "a target reported success"
head -c $((size - 100)) "$tmp/out.zst" > "$tmp/trunc.zst"
expect_status 2 ringcopy "$tmp/trunc.zst" "$tmp/t.img" 2> "$tmp/err"
grep -q "source .*trunc.zst refused: zstd data truncated: the frame at compressed offset 0 is cut short by the end of the file at $((size - 100))" "$tmp/err" ||
	fail "truncated: $(cat "$tmp/err")"
# Truncated in its last frame, after a complete first frame whose size is
# known: a frame that does not say its size makes the file a stream (the
# decode layer's), and the end of the input inside it fails the copy.
zstd -q -c "$tmp/part1" > "$tmp/t2.zst"
zstd -q -c --no-content-size < "$tmp/part2" > "$tmp/p2.zst"
head -c $(( $(stat -c %s "$tmp/p2.zst") - 1000 )) "$tmp/p2.zst" >> "$tmp/t2.zst"
expect_status 1 ringcopy --size $isize "$tmp/t2.zst" "$tmp/t2.img" 2> "$tmp/err"
grep -q "^FAILED .*t2.zst: read .*zstd data truncated at compressed offset [0-9]* (uncompressed [0-9]*)" "$tmp/err" ||
	fail "truncated frame: $(cat "$tmp/err")"

# --no-content-size: read as a stream, to its end, as a pipe of it is.
zstd -q -c --no-content-size < "$tmp/src.img" > "$tmp/nocs.zst"
expect_status 0 ringcopy -q "$tmp/nocs.zst" "$tmp/n0.img"
same "$tmp/src.img" "$tmp/n0.img"
# Through the zstd: prefix (the zstd backend itself), --size is needed,
# and says so.
expect_status 2 ringcopy "zstd:$tmp/nocs.zst" "$tmp/n.img" 2> "$tmp/err"
grep -q "its zstd frames do not say how large the image is .*give its size with --size" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
[ ! -e "$tmp/n.img" ] || fail "wrote the target"
expect_status 0 ringcopy -q --size $isize "zstd:$tmp/nocs.zst" "$tmp/n.img"
same "$tmp/src.img" "$tmp/n.img"
