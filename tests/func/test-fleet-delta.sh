#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A delta rollout on the relay chain (ringcopy relay --skip-equal, issue 25
# item 3) in the fleet's test network (tests/fleet/net.sh: network
# namespaces, 192.0.2.0/24, no route out, every link shaped): every node's
# disks hold last month's image; this month's differs in 5% of its 1 MiB
# blocks.  Each relay answers its QEMU's upstream reads of the blocks its
# disks already hold from those disks, so that upstream sends only the
# changed ones:
#  - the origin (nbdkit's stats filter) sends at most 10% of the image, and
#    each node's relay but node 3's receives at most 10% of it from its
#    upstream (its forwarder's count, "N bytes from upstream");
#  - every node exits 0 with both disks equal to the new image, proved
#    (--expect's read-back), whatever the disks held: node 1's first disk
#    is a loop device (read past the page cache); node 3 is a machine with
#    new, empty disks: it receives the whole image from node 2, whose
#    disks answer the 38 blocks they hold, so node 2 still receives only
#    the 2 changed blocks; node 4's first disk was left half written with
#    the new image by a failed rollout (one disk holding a block is
#    enough: it answers for the second) and its second has a block the
#    manifest does not know (rewritten).
#  - The disks' answers are a saving, never a condition (one node on Unix
#    sockets): with --no-seed the copy still reads from upstream only the
#    blocks its disk lacks (producer skip, issue 25 item 3); targets that
#    cannot be read yet fetch every block; exit 0, disks proved.
source "$top_srcdir/tests/func/functions.sh"
source "$top_srcdir/tests/fleet/net.sh"

relay_fleet_up rcd$$x

mb=1048576
nblocks=40
size=$((nblocks * mb))
mkimage "$tmp/old.img" "$size"
cp "$tmp/old.img" "$tmp/new.img"
# 5% of the blocks change: 2 of 40, one of them the last.
for b in 7 $((nblocks - 1)); do
	dd if=/dev/urandom of="$tmp/new.img" bs=1M seek=$b count=1 conv=notrunc status=none
done
cmp -s "$tmp/old.img" "$tmp/new.img" && fail "the new image is the old one"
expect_status 0 ringcopy -q --manifest "$tmp/new.mf" "$tmp/new.img" null:
mkdir -m 700 "$tmp/priv"
export TMPDIR=$tmp/priv

# The node's disks: the old image, but for the cases above.
for k in 1 2 3 4; do cp "$tmp/old.img" "$tmp/n$k.a"; cp "$tmp/old.img" "$tmp/n$k.b"; done
rm -f "$tmp/n3.a" "$tmp/n3.b"
dd if="$tmp/new.img" of="$tmp/n4.a" bs=1M count=$((nblocks / 2)) conv=notrunc status=none
dd if=/dev/urandom of="$tmp/n4.b" bs=1M seek=20 count=1 conv=notrunc status=none
disk1=$tmp/n1.a
if [ "$(id -u)" -eq 0 ] && command -v losetup > /dev/null && [ -e /dev/loop-control ]; then
	disk1=$(loop_attach "$tmp/n1.a") || disk1=$tmp/n1.a
fi

# The origin: nbdkit serving $tmp/new.img, counted by its stats filter
# (relay_origin, origin_sent: tests/fleet/net.sh).
origin() { relay_origin "$tmp/new.img"; }
relay() {
	local k=$1 a=$2 ups="" j
	shift 2
	for (( j = k - 1; j >= 1; j-- )); do ups+="nbd://192.0.2.$((10 + j))/,"; done
	ups+=nbd://192.0.2.1/
	mkdir -p -m 700 "$tmp/run$k"
	ip netns exec "$(fleet_ns "n$k")" env RINGCOPY_RUNDIR="$tmp/run$k" \
		unshare --ipc "$RINGCOPY" relay --listen "192.0.2.$((10 + k))" --upstream "$ups" \
		--expect "$tmp/new.mf" --skip-equal --connect-timeout 5 "$@" \
		"$a" "$tmp/n$k.b" > "$tmp/n$k.out" 2> "$tmp/n$k.err" &
	pids[k]=$!
}

echo "node 1's first disk: $disk1"
fleet_up 4 40mbit || fail "cannot build the test network"
origin
relay 1 "$disk1" --linger 3
for k in 2 3; do relay $k "$tmp/n$k.a" --linger 3; done
relay 4 "$tmp/n4.a" --linger 0
for k in 1 2 3 4; do wait "${pids[k]}"; st[k]=$?; done
limit=$((size / 10))
for k in 1 2 3 4; do
	[ "${st[k]}" -eq 0 ] || fail "node $k exited ${st[k]}: $(cat "$tmp/n$k.err")"
	[ "$k" -eq 1 ] && same "$tmp/new.img" "$disk1"
	same "$tmp/new.img" "$tmp/n$k.a"
	same "$tmp/new.img" "$tmp/n$k.b"
	[ "$(grep -c "^ok .* verified" "$tmp/n$k.err")" -eq 2 ] || fail "node $k: $(cat "$tmp/n$k.err")"
	up=$(sed -n 's/.*: \([0-9]*\) bytes from upstream.*/\1/p' "$tmp/n$k.err")
	[ -n "$up" ] || fail "node $k did not count its upstream bytes: $(cat "$tmp/n$k.err")"
	[ "$k" -eq 3 ] || [ "$up" -le "$limit" ] || fail "node $k received $up bytes from upstream (image $size): $(cat "$tmp/n$k.err")"
	local_bytes[k]=$(sed -n "s/.* \([0-9]*\) bytes from the node's disks.*/\1/p" "$tmp/n$k.err")
	[ "$k" -eq 3 ] || [ -n "${local_bytes[k]}" ] || fail "node $k did not count what its disks answered: $(cat "$tmp/n$k.err")"
	echo "node $k: $up bytes from upstream, ${local_bytes[k]} from its disks"
	[ -z "$(ls -A "$tmp/run$k")" ] || fail "node $k left $(ls "$tmp/run$k")"
done
# Node 3's empty disks were written whole from node 2, whose disks
# answered the 38 blocks they hold (node 2 received the 2 others).
grep -q "no TARGET can be read yet" "$tmp/n3.err" || fail "node 3's new disks: $(cat "$tmp/n3.err")"
[ "$(grep -c "^ok .*n3.[ab] .*41943040 bytes" "$tmp/n3.err")" -eq 2 ] || fail "node 3's new disks: $(cat "$tmp/n3.err")"
up3=$(sed -n 's/.*: \([0-9]*\) bytes from upstream.*/\1/p' "$tmp/n3.err")
[ "$up3" -ge "$size" ] || fail "node 3 received $up3 bytes from upstream (image $size)"
[ "${local_bytes[2]}" -ge $((38 * mb)) ] || fail "node 2's disks answered ${local_bytes[2]} bytes for node 3: $(cat "$tmp/n2.err")"
# Node 4's second disk had blocks 7 and 20 from its first.
[ "${local_bytes[4]}" -ge $((2 * mb)) ] || fail "node 4's disks answered ${local_bytes[4]} bytes: $(cat "$tmp/n4.err")"
pgrep -f "qemu-storage-daemon.*$tmp/priv" && fail "a QEMU is left after its relay"
[ -z "$(ls -A "$tmp/priv")" ] || fail "private directories left: $(ls "$tmp/priv")"
sent=$(origin_sent)
[ -n "$sent" ] || fail "no statistics from the origin: $(cat "$tmp/o.stats")"
[ "$sent" -le "$limit" ] || fail "the origin sent $sent bytes (image $size, limit $limit)"
echo "delta rollout of 4 nodes: the origin sent $sent bytes (image $size)"
fleet_down

# One node on Unix sockets.
nbdkit -r -U "$tmp/o.sock" -P "$tmp/o.pid" file "$tmp/new.img" || fail "nbdkit"
on_exit "kill \$(cat $tmp/o.pid) 2>/dev/null"
# --no-seed: the disks answer nothing; the copy's producer still reads
# only what the disk lacks.
cp "$tmp/old.img" "$tmp/l.b"
expect_status 0 "$RINGCOPY" relay --listen "$tmp/l.sock" \
	--upstream "nbd+unix:///?socket=$tmp/o.sock" --expect "$tmp/new.mf" --skip-equal \
	--no-seed --linger 0 "$tmp/l.b" 2> "$tmp/l.err"
same "$tmp/new.img" "$tmp/l.b"
grep -q "seed\|from the node's disks" "$tmp/l.err" && fail "--no-seed: the disks answered: $(cat "$tmp/l.err")"
grep -q "holds 38 of the 40 blocks" "$tmp/l.err" || fail "--no-seed: no scan: $(cat "$tmp/l.err")"
up=$(sed -n 's/.*: \([0-9]*\) bytes from upstream.*/\1/p' "$tmp/l.err")
[ -n "$up" ] && [ "$up" -le $((size / 10)) ] || fail "--no-seed: ${up:-no} bytes from upstream: $(cat "$tmp/l.err")"
echo "--no-seed: $up bytes from upstream (image $size)"
expect_status 0 "$RINGCOPY" relay --listen "$tmp/l.sock" \
	--upstream "nbd+unix:///?socket=$tmp/o.sock" --expect "$tmp/new.mf" --skip-equal \
	--linger 0 "$tmp/l.new" 2> "$tmp/l.err"
same "$tmp/new.img" "$tmp/l.new"
grep -q "no TARGET can be read yet" "$tmp/l.err" || fail "nothing to seed: $(cat "$tmp/l.err")"
kill "$(cat "$tmp/o.pid")"
[ -z "$(ls -A "$tmp/priv")" ] || fail "private directories left: $(ls "$tmp/priv")"
exit 0
