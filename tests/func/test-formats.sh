#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Compressed sources are recognised by their content, on files and pipes
# alike: xz, gzip, bzip2, lz4 and zstd, each to two targets, identical to
# the image and verified; a truncated or corrupt stream fails every target
# with the compressed offset and nothing is reported ok; --raw and an
# explicit file: prefix copy the compressed bytes.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
# Smaller under valgrind, where decompression is some 30 times slower.
isize=$(vrate $((3 * mb + 777)) $((2 * mb + 777)))
mkimage "$tmp/src.img" "$isize"
# Half zeros: compressible, so corruption lands in compressed data.
dd if=/dev/zero of="$tmp/src.img" bs=1M seek=1 count=1 conv=notrunc status=none

declare -A tool=([xz]="xz -T1 -1 -c" [gz]="gzip -1 -c" [bz2]="bzip2 -1 -c"
		 [lz4]="lz4 -q -c" [zst]="zstd -q -c")
declare -A name=([xz]=xz [gz]=gzip [bz2]=bzip2 [lz4]=lz4 [zst]=zstd)
for ext in xz gz bz2 lz4 zst; do
	set -- ${tool[$ext]}
	command -v "$1" > /dev/null || { echo "no $1: $ext skipped"; continue; }
	${tool[$ext]} "$tmp/src.img" > "$tmp/img.$ext"

	# As a file, and through a pipe: two targets each, same digest.
	expect_status 0 ringcopy --json "$tmp/img.$ext" "$tmp/$ext.a" "$tmp/$ext.b" \
		> "$tmp/$ext.file.json" 2> "$tmp/$ext.err"
	[ "$ext" = zst ] || grep -q "${name[$ext]}-compressed: decompressed as it is read" "$tmp/$ext.err" ||
		fail "$ext: $(cat "$tmp/$ext.err")"
	same "$tmp/src.img" "$tmp/$ext.a"
	same "$tmp/src.img" "$tmp/$ext.b"
	# A gzip, bzip2 or lz4 file is decoded as the stream a pipe of it is
	# (its size is known only at its end): under valgrind the pipe is
	# copied for xz and zstd, whose files are decoded by their index.
	jsons=("$tmp/$ext.file.json")
	if [ "$ext" = xz ] || [ "$ext" = zst ] || plain_only; then
		cat "$tmp/img.$ext" | ringcopy --json - "$tmp/$ext.c" "$tmp/$ext.d" \
			> "$tmp/$ext.pipe.json" 2> "$tmp/$ext.err" || fail "$ext pipe: $(cat "$tmp/$ext.err")"
		same "$tmp/src.img" "$tmp/$ext.c"
		same "$tmp/src.img" "$tmp/$ext.d"
		jsons+=("$tmp/$ext.pipe.json")
	fi
	python3 - "$isize" "${jsons[@]}" <<'PY' || fail "$ext: json"
import json, sys
js = [json.load(open(f)) for f in sys.argv[2:]]
for j in js:
    assert j["image_bytes"] == int(sys.argv[1]), j
    assert all(t["status"] == "ok" and t["verified"] for t in j["targets"]), j
assert len({t["digest"] for j in js for t in j["targets"]}) == 1, js
PY

	# Under valgrind the error paths of xz are enough here: gzip's, lz4's
	# and zstd's run under valgrind in test-decode-framing.
	[ "$ext" = xz ] || plain_only || continue
	# Truncated: every target fails, with the compressed offset.
	size=$(stat -c %s "$tmp/img.$ext")
	head -c $((size - 20)) "$tmp/img.$ext" > "$tmp/trunc.$ext"
	st=0
	ringcopy "$tmp/trunc.$ext" "$tmp/t1" null: 2> "$tmp/$ext.terr" || st=$?
	grep -q "^ok" "$tmp/$ext.terr" && fail "$ext truncated: a target reported ok: $(cat "$tmp/$ext.terr")"
	if [ "$ext" = zst ]; then
		# A .zst file's frames are read before anything is written.
		[ "$st" = 2 ] || fail "$ext truncated: exit $st: $(cat "$tmp/$ext.terr")"
		grep -q "compressed offset" "$tmp/$ext.terr" || fail "$ext truncated: $(cat "$tmp/$ext.terr")"
	else
		[ "$st" = 1 ] || fail "$ext truncated: exit $st: $(cat "$tmp/$ext.terr")"
		[ "$(grep -c "^FAILED .*${name[$ext]} data truncated at compressed offset [0-9]*" "$tmp/$ext.terr")" = 2 ] ||
			fail "$ext truncated: $(cat "$tmp/$ext.terr")"
	fi
	# Through a pipe, every format is found truncated while it is read.
	st=0
	cat "$tmp/trunc.$ext" | ringcopy - "$tmp/t4" null: 2> "$tmp/$ext.perr" || st=$?
	[ "$st" = 1 ] || fail "$ext truncated pipe: exit $st: $(cat "$tmp/$ext.perr")"
	grep -q "^ok" "$tmp/$ext.perr" && fail "$ext truncated pipe: a target reported ok"
	[ "$(grep -c "^FAILED .*${name[$ext]} data truncated at compressed offset [0-9]*" "$tmp/$ext.perr")" = 2 ] ||
		fail "$ext truncated pipe: $(cat "$tmp/$ext.perr")"

	# Corrupt in its middle: the same, through a pipe.
	cp "$tmp/img.$ext" "$tmp/bad.$ext"
	printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of="$tmp/bad.$ext" bs=1 seek=$((size / 2)) conv=notrunc status=none
	st=0
	cat "$tmp/bad.$ext" | ringcopy - "$tmp/t2" "$tmp/t3" 2> "$tmp/$ext.cerr" || st=$?
	[ "$st" = 1 ] || fail "$ext corrupt: exit $st: $(cat "$tmp/$ext.cerr")"
	grep -q "^ok" "$tmp/$ext.cerr" && fail "$ext corrupt: a target reported ok: $(cat "$tmp/$ext.cerr")"
	grep -q "compressed offset [0-9]*" "$tmp/$ext.cerr" || fail "$ext corrupt: $(cat "$tmp/$ext.cerr")"
done

# --raw and file: copy the compressed bytes.
command -v xz > /dev/null || exit 0
expect_status 0 ringcopy -q --raw "$tmp/img.xz" "$tmp/raw1"
same "$tmp/img.xz" "$tmp/raw1"
expect_status 0 ringcopy -q "file:$tmp/img.xz" "$tmp/raw2"
same "$tmp/img.xz" "$tmp/raw2"

# An xz file says its size in its index: a later copy joins it, and gets
# its first blocks when decoding restarts from the start at the wrap.  The
# join point is made, not waited for: the producer is stopped once the
# first copy has a block, so the joiner finds it past block 0 however
# loaded the machine is, and continued once the joiner is in.  Small
# blocks in a ring of two: the first copy cannot take every block while
# its producer is stopped (the whole image fits in a default ring, and
# under valgrind at load 20 the copy ended between two polls).
ring_small=(-b 64K --buffer 128K)
ringcopy "${ring_small[@]}" --rate "$(vrate 1M 256K)" "$tmp/img.xz" "$tmp/j1" 2> "$tmp/j1.err" &
bg_pids+=($!)
producer=$(stop_at_block j1 1) || fail "the first xz copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
ringcopy "$tmp/img.xz" "$tmp/j2" 2> "$tmp/j2.err" &
j2=$!
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q "joined the running copy" "$tmp/j2.err" && break
	sleep 0.1
done
kill -CONT "$producer"
expect_status 0 wait "$j2"
grep -q "joined the running copy of .* at block [1-9]" "$tmp/j2.err" || fail "xz joiner: $(cat "$tmp/j2.err")"
same "$tmp/src.img" "$tmp/j2"
wait "${bg_pids[0]}" || fail "$(cat "$tmp/j1.err")"
same "$tmp/src.img" "$tmp/j1"
bg_pids=()

# A gzip file does not say its size reliably: read once to its end, so a
# later copy is refused rather than given a ring it could not complete.
command -v gzip > /dev/null || exit 0
ringcopy "${ring_small[@]}" --rate "$(vrate 1M 256K)" "$tmp/img.gz" "$tmp/g1" 2> "$tmp/g1.err" &
bg_pids+=($!)
producer=$(stop_at_block g1 1) || fail "the gzip copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 2 ringcopy "$tmp/img.gz" "$tmp/g2" 2> "$tmp/g2.err"
kill -CONT "$producer"
grep -q "the source is a compressed file that does not say its image's size, so it is decompressed in one pass" "$tmp/g2.err" ||
	fail "$(cat "$tmp/g2.err")"
[ ! -e "$tmp/g2" ] || fail "the refused joiner wrote its target"
wait "${bg_pids[0]}" || fail "$(cat "$tmp/g1.err")"
same "$tmp/src.img" "$tmp/g1"
