#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A source of unknown size (a pipe, a FIFO) is read to its end without
# --size: every target gets the image, verified, with the same digest as a
# copy of the file; a file target is cut to the stream's size (also when
# it ends in zeros or on a block boundary); an empty stream gives empty
# targets; a device target the stream outgrows fails alone, naming its
# size; a stream that ends before a given --size says so.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((5 * mb + 4321))
expect_status 0 ringcopy --json "$tmp/src.img" null: > "$tmp/file.json" 2> /dev/null
digest=$(json_get "$tmp/file.json" 'j["targets"][0]["digest"]')

# 1. A pipe to two files and null:.
cat "$tmp/src.img" | ringcopy --json - "$tmp/a.img" "$tmp/b.img" null: > "$tmp/1.json" 2> "$tmp/1.err" ||
	fail "pipe: $(cat "$tmp/1.err")"
grep -q "read to its end" "$tmp/1.err" || fail "$(cat "$tmp/1.err")"
same "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/b.img"
python3 - "$tmp/1.json" "$digest" <<'PY' || fail "pipe: $(cat "$tmp/1.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["image_bytes"] == 5 * 1048576 + 4321, j
for t in j["targets"]:
    assert t["status"] == "ok" and t["digest"] == sys.argv[2], t
assert [t["verified"] for t in j["targets"]] == [True, True, False], j
PY

# 2. Ending on a block boundary, and ending in zeros (holes in the file).
head -c $((4 * mb)) "$tmp/src.img" > "$tmp/exact.img"
head -c $((3 * mb)) /dev/zero >> "$tmp/exact.img"
ringcopy -q - "$tmp/c.img" < <(cat "$tmp/exact.img") || fail "block boundary"
same "$tmp/exact.img" "$tmp/c.img"
[ "$(stat -c %s "$tmp/c.img")" = $((7 * mb)) ] || fail "c.img has the wrong size"

# 3. An empty stream: an empty target.
: | ringcopy -q - "$tmp/e.img" || fail "empty stream"
[ -f "$tmp/e.img" ] && [ ! -s "$tmp/e.img" ] || fail "e.img is not an empty file"

# 4. A FIFO, and a .zst target (its frame does not say the size).
mkfifo "$tmp/fifo"
cat "$tmp/src.img" > "$tmp/fifo" &
bg_pids+=($!)
expect_status 0 ringcopy "$tmp/fifo" "$tmp/f.img" "$tmp/f.img.zst" 2> "$tmp/4.err"
same "$tmp/src.img" "$tmp/f.img"
if command -v zstd > /dev/null; then
	zstd -q -d -c "$tmp/f.img.zst" | cmp - "$tmp/src.img" || fail "the .zst of a stream"
fi
wait "${bg_pids[0]}"
bg_pids=()

# 5. A stream that ends before --size: said in those words, exit 1.
st=0
head -c $((2 * mb)) "$tmp/src.img" | ringcopy --size 3M - "$tmp/g.img" 2> "$tmp/5.err" || st=$?
[ "$st" = 1 ] || fail "short stream: exit $st, want 1"
grep -q "standard input ended at $((2 * mb)) bytes; --size was $((3 * mb))" "$tmp/5.err" ||
	fail "$(cat "$tmp/5.err")"

# 6. A device the stream outgrows fails alone; the file target completes.
if [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ] && command -v losetup > /dev/null; then
	truncate -s $((4 * mb)) "$tmp/small.disk"
	dev=$(loop_attach "$tmp/small.disk")
	st=0
	cat "$tmp/src.img" | ringcopy --json - "$dev" "$tmp/h.img" > "$tmp/6.json" 2> "$tmp/6.err" || st=$?
	[ "$st" = 1 ] || fail "outgrown device: exit $st, want 1: $(cat "$tmp/6.err")"
	grep -q "^FAILED *$dev .*the stream outgrew it: it holds $((4 * mb)) bytes, the block at offset $((4 * mb)) ends at $((5 * mb))" "$tmp/6.err" ||
		fail "$(cat "$tmp/6.err")"
	same "$tmp/src.img" "$tmp/h.img"
	json_get "$tmp/6.json" '[t["status"] for t in j["targets"]]' | grep -qx "\['failed', 'ok'\]" ||
		fail "$(cat "$tmp/6.json")"
fi
