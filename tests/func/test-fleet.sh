#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A fleet on one machine: an origin (opentracker, an aria2 seeder) and
# three nodes, each in its own network namespace behind a bridge in a
# namespace of its own (192.0.2.0/24, no route out).  Each node reads the
# image from the swarm through nbdkit's torrent plugin and writes two
# disks with one read, from a random start, proved against the golden
# manifest.  A third node is given a manifest of another image: it fails
# with the offset and both hashes, and reports nothing ok.  A fourth reads
# one HTTP origin (busybox httpd) through nbdkit's curl plugin and cache
# filter, the recipe's other variant.  Everything
# (namespaces, processes, IPC objects) is gone at exit.
source "$top_srcdir/tests/func/functions.sh"
source "$top_srcdir/tests/fleet/net.sh"

requires nbdkit --version
requires opentracker -h
requires mktorrent -h
requires aria2c --version
nbdkit torrent --dump-plugin > /dev/null 2>&1 || skip "nbdkit has no torrent plugin"
"$RINGCOPY" nbd+unix:///?socket=/nonexistent "$tmp/x" 2>&1 | grep -q "built without libnbd" &&
	skip "ringcopy was built without libnbd"
fleet_prefix=rcf$$x
fleet_dir=$tmp
why=$(fleet_can) || skip "$why"
on_exit fleet_down

mb=1048576
mkimage "$tmp/golden.img" $((16 * mb))
expect_status 0 ringcopy -q --manifest "$tmp/golden.mf" "$tmp/golden.img" null:
cp "$tmp/golden.img" "$tmp/other.img"
printf 'rogue' | dd of="$tmp/other.img" bs=1 seek=$((6 * mb + 9)) conv=notrunc status=none
expect_status 0 ringcopy -q --manifest "$tmp/other.mf" "$tmp/other.img" null:

fleet_up 4 || fail "cannot build the test network"
fleet_origin "$tmp/golden.img" || fail "the origin did not start: $(cat "$tmp/tracker.log" "$tmp/seeder.log" 2>/dev/null)"
for n in 1 2 3; do
	fleet_serve $n || fail "node $n: nbdkit torrent did not start"
done
# The swarm downloads before the copies read.  nbdkit 1.32's torrent
# plugin can lose the wakeup of a read that waits for a piece completing
# at that moment (it looks at the piece outside its lock), and once no
# piece is left to complete such a read waits forever: seen once here in
# about a dozen runs (ringcopy failed it after 60 s).  Reading while the
# swarm downloads is what bench/fleet.sh measures.
for n in 1 2 3; do
	for (( i = 0; i < 600; i++ )); do
		cmp -s "$tmp/n$n.cache/golden.img" "$tmp/golden.img" && break
		sleep 0.1
	done
	cmp -s "$tmp/n$n.cache/golden.img" "$tmp/golden.img" ||
		fail "node $n: the swarm did not deliver the image in 60 s"
done
# The nodes at once; a swarm can take a while to find its peers.
for n in 1 2 3; do
	mf=$tmp/golden.mf
	[ "$n" -eq 3 ] && mf=$tmp/other.mf
	ringcopy --json --start-at random --expect "$mf" --connect-timeout 60 \
		"$(fleet_uri $n)" "$tmp/n$n.a" "$tmp/n$n.b" > "$tmp/n$n.json" 2> "$tmp/n$n.err" &
	pids[n]=$!
	bg_pids+=($!)
done
for n in 1 2 3; do
	wait "${pids[n]}"
	st[n]=$?
done
for n in 1 2; do
	[ "${st[n]}" -eq 0 ] || fail "node $n exited ${st[n]}: $(cat "$tmp/n$n.err")"
	same "$tmp/golden.img" "$tmp/n$n.a"
	same "$tmp/golden.img" "$tmp/n$n.b"
	json_get "$tmp/n$n.json" '[t["status"] for t in j["targets"]]' | grep -qx "\['ok', 'ok'\]" ||
		fail "node $n: $(cat "$tmp/n$n.json")"
	json_get "$tmp/n$n.json" 'j["source_bytes_read"]' | grep -qx $((16 * mb)) ||
		fail "node $n read the swarm more than once: $(cat "$tmp/n$n.json")"
done
[ "${st[3]}" -eq 1 ] || fail "node 3 (another manifest) exited ${st[3]}: $(cat "$tmp/n3.err")"
python3 - "$tmp/n3.json" "$tmp/other.mf" <<'PY' || fail "node 3: $(cat "$tmp/n3.json")"
import json, sys
j = json.load(open(sys.argv[1]))
for t in j["targets"]:
    assert t["status"] == "failed", t
    assert t["error"].startswith("the block at offset %d hashes " % (6 * 1048576)), t
    assert "the manifest expects " in t["error"], t
    assert "not the golden image" in t["error"], t
PY

# The HTTP variant: one origin, read through nbdkit's curl plugin (which
# needs range requests: busybox httpd has them, python's http.server not).
if command -v busybox > /dev/null && nbdkit curl --dump-plugin > /dev/null 2>&1; then
	fleet_in o busybox httpd -f -p 192.0.2.1:8080 -h "$tmp/origin" &
	for (( i = 0; i < $(slow 20) * 10; i++ )); do
		fleet_in n4 bash -c 'exec 3<>/dev/tcp/192.0.2.1/8080' 2> /dev/null && break
		sleep 0.1
	done
	fleet_in n4 nbdkit -U "$tmp/h.sock" -P "$tmp/h.pid" --filter=cache \
		curl url=http://192.0.2.1:8080/golden.img || fail "node 4: nbdkit curl did not start"
	for (( i = 0; i < $(slow 20) * 20; i++ )); do [ -S "$tmp/h.sock" ] && break; sleep 0.05; done
	expect_status 0 ringcopy --start-at random --expect "$tmp/golden.mf" \
		"nbd+unix:///?socket=$tmp/h.sock" "$tmp/n4.a" "$tmp/n4.b" 2> "$tmp/n4.err"
	same "$tmp/golden.img" "$tmp/n4.a"
	same "$tmp/golden.img" "$tmp/n4.b"
else
	echo "no busybox or no nbdkit curl plugin: the HTTP variant is not tested here"
fi
# The servers end with the network.
fleet_down
exit 0
