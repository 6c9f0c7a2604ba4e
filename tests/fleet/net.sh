# SPDX-License-Identifier: GPL-2.0-or-later
# The test network of a fleet (sourced by tests/func/test-fleet.sh and
# bench/fleet.sh): an origin (a tracker and a seeder) and nodes, each in a
# network namespace of its own, joined by a bridge in a namespace of its
# own.  Addresses come from 192.0.2.0/24 (documentation only); there is no
# route out, and nothing is bound to this machine's own interfaces.
# fleet_down removes everything, whatever state it is in.
#
# Needs: fleet_prefix (short: interface names hold 15 bytes; ending with a
# letter, so that no other run's prefix starts with it) and fleet_dir.

fleet_ns() { echo "${fleet_prefix}$1"; }  # fleet_ns br|o|nN
fleet_in() { local ns; ns=$(fleet_ns "$1"); shift; ip netns exec "$ns" "$@"; }

# fleet_can: 0 when this machine can build the network (root, iproute2,
# network namespaces, veth, bridges), else why on stdout.
fleet_can() {
	local p=${fleet_prefix}probe
	[ "$(id -u)" -eq 0 ] || { echo "needs root"; return 1; }
	command -v ip > /dev/null || { echo "needs ip (iproute2)"; return 1; }
	ip netns add "$p" 2> /dev/null || { echo "cannot create a network namespace"; return 1; }
	# Short names: the namespace is new, nothing else is in it.
	if ! ip -n "$p" link add b0 type bridge 2> /dev/null ||
	   ! ip -n "$p" link add x0 type veth peer name y0 2> /dev/null; then
		ip netns del "$p"
		echo "cannot create a bridge or veth pair"
		return 1
	fi
	ip netns del "$p"
	return 0
}

# fleet_up NNODES [RATE]: the bridge, the origin (192.0.2.1) and nodes
# n1..nN (192.0.2.11...); with RATE (tc's form, such as 80mbit) every link
# is shaped both ways with a token bucket.
fleet_up() {
	local n=$1 rate=${2:-} br i name addr
	br=$(fleet_ns br)
	ip netns add "$br" || return 1
	ip -n "$br" link add br0 type bridge || return 1
	ip -n "$br" link set br0 up
	ip -n "$br" link set lo up
	for (( i = 0; i <= n; i++ )); do
		if [ "$i" -eq 0 ]; then name=o addr=192.0.2.1; else name=n$i addr=192.0.2.$((10 + i)); fi
		ip netns add "$(fleet_ns "$name")" || return 1
		ip link add "${fleet_prefix}h$i" netns "$(fleet_ns "$name")" type veth \
			peer name "${fleet_prefix}p$i" netns "$br" || return 1
		ip -n "$br" link set "${fleet_prefix}p$i" master br0 up
		ip -n "$(fleet_ns "$name")" link set lo up
		ip -n "$(fleet_ns "$name")" link set "${fleet_prefix}h$i" name eth0
		ip -n "$(fleet_ns "$name")" addr add "$addr/24" dev eth0
		ip -n "$(fleet_ns "$name")" link set eth0 up
		if [ -n "$rate" ]; then
			# Out of the host, and into it (the bridge port's out).
			ip netns exec "$(fleet_ns "$name")" tc qdisc add dev eth0 root tbf \
				rate "$rate" burst 64kb latency 100ms || return 1
			ip netns exec "$br" tc qdisc add dev "${fleet_prefix}p$i" root tbf \
				rate "$rate" burst 64kb latency 100ms || return 1
		fi
	done
}

# fleet_down: every process in the namespaces, then the namespaces (their
# veth pairs and the bridge go with them).
fleet_down() {
	local ns
	for ns in $(ip netns list 2> /dev/null | awk '{print $1}' | grep "^${fleet_prefix}"); do
		ip netns pids "$ns" 2> /dev/null | xargs -r kill -9 2> /dev/null
	done
	for ns in $(ip netns list 2> /dev/null | awk '{print $1}' | grep "^${fleet_prefix}"); do
		ip netns del "$ns" 2> /dev/null
	done
}

# fleet_origin IMAGE: a torrent of IMAGE ($fleet_dir/golden.torrent, 256
# KiB pieces), a tracker that serves only its info hash, and a seeder.
fleet_origin() {
	local img=$1 hash i
	mkdir -p "$fleet_dir/origin" "$fleet_dir/tracker"
	ln -f "$img" "$fleet_dir/origin/golden.img" 2> /dev/null ||
		cp "$img" "$fleet_dir/origin/golden.img"
	rm -f "$fleet_dir/golden.torrent"
	mktorrent -a http://192.0.2.1:6969/announce -l 18 -o "$fleet_dir/golden.torrent" \
		"$fleet_dir/origin/golden.img" > /dev/null || return 1
	hash=$(aria2c -S "$fleet_dir/golden.torrent" | sed -n 's/^Info Hash: //p')
	[ -n "$hash" ] || return 1
	echo "$hash" > "$fleet_dir/tracker/whitelist"
	chmod 755 "$fleet_dir/tracker"
	chmod 644 "$fleet_dir/tracker/whitelist"
	# The tracker chroots to its directory and drops to nobody.
	fleet_in o opentracker -i 192.0.2.1 -p 6969 -P 6969 -d "$fleet_dir/tracker" \
		-u nobody -w whitelist > "$fleet_dir/tracker.log" 2>&1 &
	fleet_in o aria2c --dir="$fleet_dir/origin" --seed-ratio=0.0 --check-integrity=true \
		--bt-seed-unverified=false --enable-dht=false --enable-dht6=false \
		--bt-enable-lpd=false --enable-peer-exchange=true --listen-port=6881 \
		--bt-tracker-connect-timeout=5 --bt-tracker-interval=2 \
		--console-log-level=warn --summary-interval=0 --quiet=true \
		"$fleet_dir/golden.torrent" > "$fleet_dir/seeder.log" 2>&1 &
	# Ready when the tracker answers.
	for (( i = 0; i < 100; i++ )); do
		fleet_in o bash -c 'exec 3<>/dev/tcp/192.0.2.1/6969' 2> /dev/null && return 0
		sleep 0.1
	done
	return 1
}

# fleet_serve N: node N's swarm client, nbdkit's torrent plugin, on the
# Unix socket $fleet_dir/nN.sock (its pid in nN.pid).
fleet_serve() {
	local i
	mkdir -p "$fleet_dir/n$1.cache"
	fleet_in "n$1" nbdkit -U "$fleet_dir/n$1.sock" -P "$fleet_dir/n$1.pid" \
		torrent "$fleet_dir/golden.torrent" cache="$fleet_dir/n$1.cache" || return 1
	for (( i = 0; i < 100; i++ )); do [ -S "$fleet_dir/n$1.sock" ] && return 0; sleep 0.05; done
	return 1
}
fleet_uri() { echo "nbd+unix:///?socket=$fleet_dir/n$1.sock"; }

# relay_fleet_up PREFIX: the relay tests' needs (skipping with the reason
# where one is missing: valgrind, nbdkit, QEMU's tools, tc, an IPC
# namespace, libnbd) and a fleet named PREFIX in the test's directory,
# torn down at exit.  For tests that source tests/func/functions.sh.
relay_fleet_up() {
	[ "${RINGCOPY_VALGRIND:-0}" = 1 ] && skip "the relay chain is not run under valgrind (its copy is rc_cmd_run, checked elsewhere)"
	requires nbdkit --version
	requires qemu-img --version
	requires qemu-storage-daemon --version
	requires tc -V
	requires unshare --ipc true
	"$RINGCOPY" nbd+unix:///?socket=/nonexistent "$tmp/x" 2>&1 | grep -q "built without libnbd" &&
		skip "ringcopy was built without libnbd"
	fleet_prefix=$1
	fleet_dir=$tmp
	why=$(fleet_can) || skip "$why"
	on_exit fleet_down
}

# relay_origin IMAGE: node o serves IMAGE read-only on 192.0.2.1 with
# nbdkit, whose stats filter counts what it sends; returns once it
# answers.  origin_sent: end it and print the bytes its reads returned
# (its stats, written as it ends).
relay_origin() {
	local i
	rm -f "$tmp/o.stats"
	fleet_in o nbdkit -r -i 192.0.2.1 -P "$tmp/o.pid" --filter=stats \
		file "$1" statsfile="$tmp/o.stats" || fail "the origin did not start"
	for (( i = 0; i < 50; i++ )); do
		fleet_in o bash -c 'exec 3<>/dev/tcp/192.0.2.1/10809' 2> /dev/null && return
		sleep 0.1
	done
	fail "the origin does not answer"
}
origin_sent() {
	nbdkit_reads "$tmp/o.pid" "$tmp/o.stats" | cut -d' ' -f2
}
