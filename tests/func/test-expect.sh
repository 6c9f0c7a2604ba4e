#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The fleet options on one machine: --start-at (a new ring's first pass
# starts at a block and wraps to block 0), --expect (every block is checked
# against a golden manifest, in the producer and for the invocation's own
# targets), and NBD sources read ahead through a server with latency.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/g.img" $((8 * mb))
expect_status 0 ringcopy -q --manifest "$tmp/g.mf" "$tmp/g.img" null:
# Another image of the same size: one block differs (block 5).
cp "$tmp/g.img" "$tmp/bad.img"
printf 'rogue' | dd of="$tmp/bad.img" bs=1 seek=$((5 * mb + 100)) conv=notrunc status=none

# 1. --start-at 3: the targets start at block 3 and are complete.
expect_status 0 ringcopy --json --start-at 3 "$tmp/g.img" "$tmp/a1" "$tmp/a2" > "$tmp/1.json" 2> "$tmp/1.err"
same "$tmp/g.img" "$tmp/a1"
same "$tmp/g.img" "$tmp/a2"
json_get "$tmp/1.json" '[t["start_block"] for t in j["targets"]]' | grep -qx '\[3, 3\]' ||
	fail "--start-at 3: $(cat "$tmp/1.json")"
json_get "$tmp/1.json" 'j["source_bytes_read"]' | grep -qx $((8 * mb)) ||
	fail "--start-at 3 read the source more than once: $(cat "$tmp/1.json")"
grep -q "first pass starts at block 3 of 8" "$tmp/1.err" || fail "$(cat "$tmp/1.err")"

# 2. --start-at random: somewhere in the image (128 blocks of 64K: two
# starts at 0 by chance are 1 in 16384), complete all the same.
starts=
for k in 1 2; do
	expect_status 0 ringcopy --json -b 64K --start-at random "$tmp/g.img" "$tmp/b$k" > "$tmp/2.json" 2> /dev/null
	same "$tmp/g.img" "$tmp/b$k"
	s=$(json_get "$tmp/2.json" 'j["targets"][0]["start_block"]')
	[ "$s" -ge 0 ] && [ "$s" -lt 128 ] || fail "--start-at random: $(cat "$tmp/2.json")"
	starts+=" $s"
done
[ "$starts" != " 0 0" ] || fail "--start-at random started at 0 twice"
# A target written in order only: the copy starts at block 0 (the blocks
# before the start would be read twice), and says so.
expect_status 0 ringcopy --start-at 3 "$tmp/g.img" "$tmp/b3" - > "$tmp/b3.out" 2> "$tmp/2.err" < /dev/null
grep -q "target - takes blocks in order only: the copy starts at block 0" "$tmp/2.err" || fail "$(cat "$tmp/2.err")"
same "$tmp/g.img" "$tmp/b3"
same "$tmp/g.img" "$tmp/b3.out"

# 3. Refused, with nothing written: past the end, a source read in order,
# not a number.
expect_refused "--start-at 8 refused: the image has 8 blocks" --start-at 8 "$tmp/g.img" "$tmp/r1"
[ ! -e "$tmp/r1" ] || fail "--start-at 8 created its target"
expect_status 2 ringcopy --start-at 2 - "$tmp/r2" < <(cat "$tmp/g.img") 2> "$tmp/err"
grep -q "start-at refused: the source - is read only in order" "$tmp/err" || fail "$(cat "$tmp/err")"
[ ! -e "$tmp/r2" ] || fail "--start-at on a pipe created its target"
expect_refused "--start-at 'x1': want a block number or random" --start-at x1 "$tmp/g.img" "$tmp/r3"

# 4. --expect with the golden image: ok, every block proved.
expect_status 0 ringcopy --expect "$tmp/g.mf" --start-at 5 "$tmp/g.img" "$tmp/c1" "$tmp/c2" 2> /dev/null
same "$tmp/g.img" "$tmp/c1"
same "$tmp/g.img" "$tmp/c2"

# 5. --expect with another image of the same size: the producer stops the
# ring at block 5, names the offset and both hashes; nothing is ok.
expect_status 1 ringcopy --json --expect "$tmp/g.mf" "$tmp/bad.img" "$tmp/d1" "$tmp/d2" > "$tmp/5.json" 2> /dev/null
python3 - "$tmp/5.json" "$tmp/bad.img" "$tmp/g.mf" <<'PY' || fail "a rogue image: $(cat "$tmp/5.json")"
import json, re, sys
j = json.load(open(sys.argv[1]))
for t in j["targets"]:
    assert t["status"] == "failed", t
    m = re.search(r"^the block at offset (\d+) hashes ([0-9a-f]{16}), the manifest expects ([0-9a-f]{16}): not the golden image \(source ", t["error"])
    assert m and int(m.group(1)) == 5 * 1048576, t
    assert m.group(2) != m.group(3), t
PY

# 6. Refused before anything is written: a source of another size, a
# block size the manifest does not have, a malformed manifest.
head -c $((4 * mb)) "$tmp/g.img" > "$tmp/short.img"
expect_refused "source $tmp/short.img refused: it holds 4194304 bytes, the manifest $tmp/g.mf describes an image of 8388608 bytes" \
	--expect "$tmp/g.mf" "$tmp/short.img" "$tmp/e1"
expect_refused "--block-size 65536 refused: the manifest $tmp/g.mf has blocks of 1048576 bytes" \
	--expect "$tmp/g.mf" -b 64K "$tmp/g.img" "$tmp/e2"
echo "not a manifest" > "$tmp/junk.mf"
expect_refused "--expect refused: manifest $tmp/junk.mf:1: not a ringcopy manifest" \
	--expect "$tmp/junk.mf" "$tmp/g.img" "$tmp/e3"
for f in e1 e2 e3; do [ ! -e "$tmp/$f" ] || fail "a refused --expect created $f"; done

# 7. A pipe has no size: the manifest gives it, and a stream that ends
# early fails.
expect_status 0 ringcopy --expect "$tmp/g.mf" - "$tmp/f1" < <(cat "$tmp/g.img") 2> /dev/null
same "$tmp/g.img" "$tmp/f1"
expect_status 1 ringcopy --expect "$tmp/g.mf" - "$tmp/f2" < <(head -c $((3 * mb)) "$tmp/g.img") 2> "$tmp/err"
grep -q "standard input ended at 3145728 bytes" "$tmp/err" || fail "$(cat "$tmp/err")"

# 8. A copy that joins a ring started without --expect proves its own
# targets: the rogue block fails them, not the other copy's.
rate=$(vrate 2M 512K)
ringcopy -q --rate "$rate" "$tmp/bad.img" "$tmp/h1" 2> /dev/null &
first=$!
bg_pids+=($first)
wait_ring
expect_status 1 ringcopy --json --expect "$tmp/g.mf" "$tmp/bad.img" "$tmp/h2" > "$tmp/8.json" 2> "$tmp/8.err"
grep -q "joined the running copy" "$tmp/8.err" || fail "the second copy did not join: $(cat "$tmp/8.err")"
json_get "$tmp/8.json" 'j["targets"][0]["status"]' | grep -qx failed || fail "joiner: $(cat "$tmp/8.json")"
json_get "$tmp/8.json" 'j["targets"][0]["error"]' | grep -q "^the block at offset 5242880 hashes .* not the golden image" ||
	fail "joiner: $(cat "$tmp/8.json")"
wait "$first" || fail "the copy without --expect failed"
same "$tmp/bad.img" "$tmp/h1"

# 9. An NBD source through a server with latency: read ahead, from a
# random start, checked against the manifest; the server survives the end
# of the copy (its reads ahead are answered before the connection closes).
if nbdkit --version > /dev/null 2>&1 && ! "$RINGCOPY" nbd+unix:///?socket=/nonexistent "$tmp/x" 2>&1 | grep -q "built without libnbd"; then
	# nbdkit's log filter (outermost) sees each read asked and answered.
	# 32 blocks of 256K (the manifest's): from block 3, up to 28 are asked
	# for at once, so even a loaded machine sees several in flight.
	mkimage "$tmp/n.img" $((8 * mb))
	expect_status 0 ringcopy -q -b 256K --manifest "$tmp/n.mf" "$tmp/n.img" null:
	nbdkit -U "$tmp/s.sock" -P "$tmp/s.pid" --filter=log --filter=delay \
		file "$tmp/n.img" rdelay=20ms logfile="$tmp/nbd.log" || fail "nbdkit"
	on_exit "kill \$(cat '$tmp/s.pid') 2>/dev/null"
	for (( i = 0; i < $(slow 20) * 20; i++ )); do [ -S "$tmp/s.sock" ] && break; sleep 0.05; done
	expect_status 0 ringcopy --start-at 3 --expect "$tmp/n.mf" \
		"nbd+unix:///?socket=$tmp/s.sock" "$tmp/n1" "$tmp/n2" 2> "$tmp/err"
	same "$tmp/n.img" "$tmp/n1"
	same "$tmp/n.img" "$tmp/n2"
	# Once the producer is gone (its connection closed), the server is
	# still there, several reads were in flight at once, and the image
	# was read once (the reading ahead stops at what is still needed:
	# not past the image, not again after the wrap).
	wait_rings_gone || fail "the producer did not leave"
	kill -0 "$(cat "$tmp/s.pid")" || fail "nbdkit died at the end of the copy"
	python3 - "$tmp/nbd.log" $((8 * mb)) <<'PY' || fail "read-ahead: $(grep -c Read "$tmp/nbd.log") reads"
import re, sys
inflight, most, data = set(), 0, 0
for line in open(sys.argv[1]):
    m = re.search(r"Read id=(\d+) (offset=0x[0-9a-f]+ count=(0x[0-9a-f]+))?", line)
    if not m:
        continue
    if "return=" in line:
        inflight.discard(m.group(1))
    elif m.group(3):
        inflight.add(m.group(1))
        most = max(most, len(inflight))
        data += int(m.group(3), 16)
image = int(sys.argv[2])
assert most >= 4, "at most %d reads in flight" % most
assert image <= data <= image + 4096, "%d bytes read for an image of %d" % (data, image)
PY
	expect_status 0 ringcopy "nbd+unix:///?socket=$tmp/s.sock" "$tmp/n3" 2> "$tmp/err"
	same "$tmp/n.img" "$tmp/n3"
fi
exit 0
