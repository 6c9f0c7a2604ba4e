#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Producer skip (issue 25, item 3): with --expect and --skip-equal, every
# target is compared with the manifest before its consumer registers, and
# the producer does not read a block that every registered consumer holds.
# The source's reads are counted by the source itself (an nbdkit origin
# with its stats filter) and by the producer (source_bytes_read):
#  1. 64 blocks, 3 changed, two targets holding the old image: the
#     producer reads the 3 changed blocks and nothing else; both targets
#     are the new image, verified;
#  2. one target old, one blank: every block is read;
#  3. a late joiner with a blank target (with and without --skip-equal)
#     joining a copy that skips: it gets every block, verified, and so do
#     the first copy's targets.
source "$top_srcdir/tests/func/functions.sh"
requires nbdkit --version
requires nbdkit --dump-plugin file
nbdkit --filter=stats null --version > /dev/null 2>&1 ||
	skip "nbdkit has no stats filter"

bs=65536
mkimage "$tmp/old.img" $((64 * bs)) 1
cp "$tmp/old.img" "$tmp/new.img"
for b in 5 17 40; do
	mkimage "$tmp/blk" $bs $((100 + b))
	dd if="$tmp/blk" of="$tmp/new.img" bs=$bs seek=$b conv=notrunc status=none
done
expect_status 0 ringcopy -q -b 64K --manifest "$tmp/new.mf" "$tmp/new.img" null:

# origin: nbdkit serving new.img on a socket, its reads counted.
origin() {
	rm -f "$tmp/o.stats" "$tmp/o.sock"
	nbdkit -r -U "$tmp/o.sock" -P "$tmp/o.pid" --filter=stats \
		file "$tmp/new.img" statsfile="$tmp/o.stats" || fail "nbdkit"
	on_exit "kill \$(cat $tmp/o.pid) 2>/dev/null"
}
src="nbd+unix:///?socket=$tmp/o.sock"
# run N T1 T2: a copy of the origin to T1 and T2 that skips what they
# hold, its JSON in N.json, its messages in N.err; the origin's reads
# ("OPS BYTES") in $reads; both targets then hold the new image.
run() {
	origin
	expect_status 0 ringcopy --expect "$tmp/new.mf" --skip-equal --json "$src" \
		"$2" "$3" > "$tmp/$1.json" 2> "$tmp/$1.err"
	reads=$(nbdkit_reads "$tmp/o.pid" "$tmp/o.stats")
	same "$tmp/new.img" "$2"
	same "$tmp/new.img" "$3"
}

# 1. Both targets hold the old image: 3 blocks read.
cp "$tmp/old.img" "$tmp/a1"; cp "$tmp/old.img" "$tmp/a2"
run 1 "$tmp/a1" "$tmp/a2"
read -r ops1 sent1 <<< "$reads"
python3 - "$tmp/1.json" $bs <<'PY' || fail "two old targets: $(cat "$tmp/1.json" "$tmp/1.err")"
import json, sys
j, bs = json.load(open(sys.argv[1])), int(sys.argv[2])
assert j["source_bytes_read"] == 3 * bs, j
for t in j["targets"]:
    assert t["status"] == "ok" and t["verified"] is True, t
    assert t["bytes_skipped_equal"] == 61 * bs, t
PY
grep -q "holds 61 of the 64 blocks" "$tmp/1.err" || fail "no scan said: $(cat "$tmp/1.err")"

# 2. One old, one blank: the blank one needs every block.
cp "$tmp/old.img" "$tmp/b1"; : > "$tmp/b2"
run 2 "$tmp/b1" "$tmp/b2"
read -r ops2 sent2 <<< "$reads"
# Besides the producer's reads (one request per block) the invocation
# probes the source (what it holds: a few KiB at its start), the same in
# both runs.
probe=$((ops2 - 64))
[ "$probe" -ge 0 ] && [ "$probe" -le 2 ] && [ "$sent2" -ge $((64 * bs)) ] ||
	fail "old and blank: the origin had '$ops2' reads, '$sent2' bytes, want 64 blocks and a probe: $(cat "$tmp/o.stats")"
[ "$ops1" = $((3 + probe)) ] && [ "$sent1" -ge $((3 * bs)) ] && [ "$sent1" -lt $((4 * bs)) ] ||
	fail "two old targets: the origin had '$ops1' reads, '$sent1' bytes, want 3 blocks ($((3 * bs)) bytes) and the probe ($probe reads): $(cat "$tmp/1.err")"
echo "two old targets: the origin had $ops1 reads, $sent1 bytes; old and blank: $ops2 reads, $sent2 bytes (image $((64 * bs)))"
[ "$(json_get "$tmp/2.json" 'j["source_bytes_read"] == 64 * 65536 and all(t["status"] == "ok" and t["verified"] for t in j["targets"])')" = True ] ||
	fail "old and blank: $(cat "$tmp/2.json")"

# 3. Late joiners with blank targets meet a copy that skips.  The first
# copy's targets hold only the odd blocks (the even ones are another
# image's), so that it reads, slowly (--rate), half the blocks.
mkimage "$tmp/other.img" $((64 * bs)) 7
for late in plain skip; do
	cp "$tmp/new.img" "$tmp/c1"
	for (( b = 0; b < 64; b += 2 )); do
		dd if="$tmp/other.img" of="$tmp/c1" bs=$bs skip=$b seek=$b count=1 conv=notrunc status=none
	done
	cp "$tmp/c1" "$tmp/c2"
	: > "$tmp/late"
	opts=()
	[ "$late" = skip ] && opts=(--expect "$tmp/new.mf" --skip-equal)
	ringcopy --expect "$tmp/new.mf" --skip-equal --json --rate "$(vrate 1M 256K)" \
		"$tmp/new.img" "$tmp/c1" "$tmp/c2" > "$tmp/3a.json" 2> "$tmp/3a.err" &
	bg_pids+=($!)
	st=0
	held_join c2 8 "$tmp/3b.err" ringcopy "${opts[@]}" --json "$tmp/new.img" "$tmp/late" > "$tmp/3b.json" || st=$?
	[ "$st" = 0 ] || fail "late joiner ($late): exit $st: $(cat "$tmp/3b.err")"
	st=0
	wait "${bg_pids[0]}" || st=$?
	bg_pids=()
	[ "$st" = 0 ] || fail "first copy ($late joiner): exit $st: $(cat "$tmp/3a.err")"
	grep -q "joined the running copy" "$tmp/3b.err" || fail "did not join ($late): $(cat "$tmp/3b.err")"
	same "$tmp/new.img" "$tmp/late"
	same "$tmp/new.img" "$tmp/c1"
	same "$tmp/new.img" "$tmp/c2"
	[ "$(json_get "$tmp/3b.json" 'j["targets"][0]["status"] == "ok" and j["targets"][0]["verified"] and j["targets"][0]["start_block"] > 0')" = True ] ||
		fail "late joiner ($late): $(cat "$tmp/3b.json" "$tmp/3b.err")"
	[ "$(json_get "$tmp/3a.json" 'all(t["status"] == "ok" and t["verified"] for t in j["targets"])')" = True ] ||
		fail "first copy ($late joiner): $(cat "$tmp/3a.json")"
	wait_rings_gone
done
