#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A relay chain (ringcopy relay, issue 25) in the fleet's test network
# (tests/fleet/net.sh: network namespaces, 192.0.2.0/24, no route out,
# every link shaped): an origin (nbdkit's file plugin, counted by its stats
# filter) and four nodes, node K relaying node K-1's export through QEMU's
# copy-on-read block layer and writing two disks proved with --expect.
#  - The chain: every node exits 0 with both disks equal to the image; the
#    origin sends one copy of the image; a node's --json line is its
#    copy's summary; SIGTERM ends a lingering relay with its copy's status,
#    its QEMU gone and its private directory removed.
#  - A machine dies: every process of node 2 is killed at about 30% of its
#    copy; nodes 1, 3 and 4 still exit 0 with both disks proved (node 3
#    re-points to node 1, node 4 rides through).
#  - An image whose size is not a multiple of 512 (QEMU exports whole
#    sectors): a chain of two on Unix sockets copies exactly the image,
#    both disks proved, the second node reading the first one's export.
#  - Refusals (exit 2, nothing started): no --expect, --start-at random,
#    a malformed --upstream, upstreams naming different exports.
source "$top_srcdir/tests/func/functions.sh"
source "$top_srcdir/tests/fleet/net.sh"

relay_fleet_up rcr$$x

mb=1048576
size=$((24 * mb))
mkimage "$tmp/golden.img" "$size"
expect_status 0 ringcopy -q --manifest "$tmp/golden.mf" "$tmp/golden.img" null:
mkdir -m 700 "$tmp/priv"
export TMPDIR=$tmp/priv

# Refusals, before anything is started or written.
up=nbd://192.0.2.1/
refused() {
	local want=$1 out
	shift
	out=$("$RINGCOPY" relay "$@" 2>&1 > /dev/null)
	st=$?
	[ "$st" -eq 2 ] || fail "relay $* exited $st, expected 2: $out"
	echo "$out" | grep -q -- "$want" || fail "relay $*: said '$out', not '$want'"
	[ ! -e "$tmp/r.a" ] || fail "relay $* wrote its target"
	[ -z "$(ls -A "$tmp/priv")" ] || fail "relay $* left $(ls "$tmp/priv")"
}
refused "--expect MANIFEST is needed" --listen 127.0.0.1:0 --upstream "$up" "$tmp/r.a"
refused "--start-at random refused" --listen 127.0.0.1:0 --upstream "$up" \
	--expect "$tmp/golden.mf" --start-at random "$tmp/r.a"
refused "--upstream 'http://x/'" --listen 127.0.0.1:0 --upstream http://x/ \
	--expect "$tmp/golden.mf" "$tmp/r.a"
refused "every upstream must serve the same export" --listen 127.0.0.1:0 \
	--upstream nbd://192.0.2.11/a,nbd://192.0.2.1/b --expect "$tmp/golden.mf" "$tmp/r.a"
refused "missing TARGET" --listen 127.0.0.1:0 --upstream "$up" --expect "$tmp/golden.mf"

# The origin: nbdkit serving $tmp/golden.img, counted by its stats filter
# (relay_origin, origin_sent: tests/fleet/net.sh).
origin() { relay_origin "$tmp/golden.img"; }
# relay K [options]: node K relays node K-1 (then K-2 ... the origin).
relay() {
	local k=$1 ups="" j
	shift
	for (( j = k - 1; j >= 1; j-- )); do ups+="nbd://192.0.2.$((10 + j))/,"; done
	ups+=nbd://192.0.2.1/
	rm -f "$tmp/n$k.a" "$tmp/n$k.b"
	# A machine of its own: its network, its IPC objects and its run
	# directory (a killed node's objects go with its namespace).  ip
	# and unshare exec the relay: $! is the relay itself.
	mkdir -p -m 700 "$tmp/run$k"
	ip netns exec "$(fleet_ns "n$k")" env RINGCOPY_RUNDIR="$tmp/run$k" \
		unshare --ipc "$RINGCOPY" relay --listen "192.0.2.$((10 + k))" --upstream "$ups" \
		--expect "$tmp/golden.mf" --connect-timeout 5 "$@" \
		"$tmp/n$k.a" "$tmp/n$k.b" > "$tmp/n$k.out" 2> "$tmp/n$k.err" &
	pids[k]=$!
}
proved() {
	local k=$1
	[ "${st[k]}" -eq 0 ] || fail "node $k exited ${st[k]}: $(cat "$tmp/n$k.err")"
	same "$tmp/golden.img" "$tmp/n$k.a"
	same "$tmp/golden.img" "$tmp/n$k.b"
	grep -q "^ok .*n$k.a .* verified" "$tmp/n$k.err" || fail "node $k: $(cat "$tmp/n$k.err")"
	[ -z "$(ls -A "$tmp/run$k")" ] || fail "node $k left $(ls "$tmp/run$k")"
}

# 1. The chain.
fleet_up 4 40mbit || fail "cannot build the test network"
origin
for k in 1 2 3; do relay $k --linger 2; done
relay 4 --linger 600 --json
for k in 1 2 3; do wait "${pids[k]}"; st[k]=$?; done
for (( i = 0; i < 600; i++ )); do [ -s "$tmp/n4.out" ] && break; sleep 0.1; done
json_get "$tmp/n4.out" '[t["status"] for t in j["targets"]]' | grep -qx "\['ok', 'ok'\]" ||
	fail "node 4: $(cat "$tmp/n4.out" "$tmp/n4.err")"
pgrep -f "qemu-storage-daemon.*$tmp/priv" > /dev/null || fail "node 4's QEMU is not relaying"
kill -TERM "${pids[4]}"
wait "${pids[4]}"
st[4]=$?
for k in 1 2 3 4; do proved $k; done
pgrep -f "qemu-storage-daemon.*$tmp/priv" && fail "a QEMU is left after its relay"
[ -z "$(ls -A "$tmp/priv")" ] || fail "private directories left: $(ls "$tmp/priv")"
sent=$(origin_sent)
[ -n "$sent" ] || fail "no statistics from the origin: $(cat "$tmp/o.stats")"
# One copy of the image, and QEMU's reads rounded to its clusters.
[ "$sent" -le $((size * 11 / 10)) ] || fail "the origin sent $sent bytes for 4 nodes (image $size)"
echo "chain of 4: the origin sent $sent bytes (image $size)"
fleet_down

# 2. A machine dies: every process of node 2, at about 30% of its copy.
fleet_up 4 40mbit || fail "cannot build the test network"
origin
for k in 1 2 3 4; do relay $k --linger 3; done
for (( i = 0; i < 600; i++ )); do
	[ "$(( $(stat -c %b "$tmp/n2.a" 2> /dev/null || echo 0) * 512 ))" -ge $((size * 3 / 10)) ] && break
	sleep 0.05
done
[ "$i" -lt 600 ] || fail "node 2 did not reach 30% in 30 s: $(cat "$tmp/n2.err")"
ip netns pids "$(fleet_ns n2)" | xargs -r kill -9 2> /dev/null
for k in 1 2 3 4; do wait "${pids[k]}"; st[k]=$?; done
[ "${st[2]}" -ne 0 ] || fail "node 2 was killed and exited 0"
for k in 1 3 4; do proved $k; done
grep -q "upstream nbd://192.0.2.12/ closed the connection; QEMU reconnects through nbd://192.0.2.11/" "$tmp/n3.err" ||
	fail "node 3 did not re-point to node 1: $(cat "$tmp/n3.err")"
# At once: not after waiting --connect-timeout on the dead node.
grep -q "did not answer" "$tmp/n3.err" && fail "node 3 waited for the dead node: $(cat "$tmp/n3.err")"
# The dead machine's run and private directories.
rm -rf "$tmp/run2" "$tmp/priv"/ringcopy-relay.*
sent=$(origin_sent)
echo "node 2 killed: the origin sent $sent bytes (image $size)"
fleet_down

# 3. An image that ends inside a sector: 3 MiB and 1000 bytes, a chain of
# two on Unix sockets (no network needed).
odd=$((3 * mb + 1000))
head -c "$odd" "$tmp/golden.img" > "$tmp/odd.img"
expect_status 0 ringcopy -q --manifest "$tmp/odd.mf" "$tmp/odd.img" null:
nbdkit -r -U "$tmp/odd.sock" -P "$tmp/odd.pid" file "$tmp/odd.img" || fail "nbdkit"
on_exit 'kill "$(cat "$tmp/odd.pid")"'
mkdir -p -m 700 "$tmp/run2"
RINGCOPY_RUNDIR=$tmp/run1 "$RINGCOPY" relay --listen "$tmp/r1.sock" --linger 3 \
	--upstream "nbd+unix:///?socket=$tmp/odd.sock" --expect "$tmp/odd.mf" \
	"$tmp/o1.a" "$tmp/o1.b" 2> "$tmp/o1.err" &
p1=$!
for (( i = 0; i < $(slow 20) * 20; i++ )); do [ -S "$tmp/r1.sock" ] && break; sleep 0.05; done
RINGCOPY_RUNDIR=$tmp/run2 "$RINGCOPY" relay --listen "$tmp/r2.sock" --linger 0 \
	--upstream "nbd+unix:///?socket=$tmp/r1.sock,nbd+unix:///?socket=$tmp/odd.sock" \
	--expect "$tmp/odd.mf" "$tmp/o2.a" "$tmp/o2.b" 2> "$tmp/o2.err"
st2=$?
wait "$p1"
st1=$?
for k in 1 2; do
	eval "s=\$st$k"
	[ "$s" -eq 0 ] || fail "odd size, node $k exited $s: $(cat "$tmp/o$k.err")"
	same "$tmp/odd.img" "$tmp/o$k.a"
	same "$tmp/odd.img" "$tmp/o$k.b"
	[ "$(grep -c "^ok .* $odd bytes .* verified" "$tmp/o$k.err")" -eq 2 ] ||
		fail "odd size, node $k: $(cat "$tmp/o$k.err")"
done
# Node 2 read node 1's export (the size said through node 1's relay).
down=$(sed -n 's/.*upstream, \([0-9]*\) bytes to downstream.*/\1/p' "$tmp/o1.err")
[ "${down:-0}" -ge "$odd" ] || fail "odd size: node 1 sent ${down:-no} bytes downstream: $(cat "$tmp/o1.err" "$tmp/o2.err")"
[ -z "$(ls -A "$tmp/priv")" ] || fail "private directories left: $(ls "$tmp/priv")"
echo "an image of $odd bytes: a chain of two, both nodes exact"
exit 0
