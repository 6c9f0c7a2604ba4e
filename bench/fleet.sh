#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A fleet rollout (issue 17): N nodes each write two disks from one golden
# image, every link shaped with a token bucket, in network namespaces
# (tests/fleet/net.sh: 192.0.2.0/24, a bridge in its own namespace, no
# route out).  Three ways to carry the image, each from a fresh network:
#   swarm-random  BitTorrent (opentracker, an aria2 seeder at the origin,
#                 nbdkit's torrent plugin on each node), ringcopy
#                 --start-at random --expect
#   swarm-order   the same swarm, every node reading in order (no
#                 --start-at)
#   origin        one NBD server at the origin (nbdkit's file plugin), the
#                 nodes pulling from it alone
#   swarm-nbdcopy the same swarm and servers, each node's export read by
#                 nbdcopy to /dev/null (no disks, no verification): the
#                 engine through NBD without ringcopy
#   swarm-engine  the swarm alone: each node downloads the image with
#                 aria2c (no NBD, no ringcopy, no disks): what the engine
#                 and the network give, for comparison
#   relay-chain   `ringcopy relay' on every node (issue 25): node K relays
#                 node K-1's export through QEMU's copy-on-read block layer
#                 (node 1 the origin's: nbdkit's file plugin, whose stats
#                 filter counts the copies of the image it sends); a node
#                 is done when its copy's JSON line is out
#   relay-delta   the same chain, a monthly update: each node's disks hold
#                 an old image that differs from the golden one in 5% of
#                 its 1 MiB blocks (written before the clock starts), and
#                 each relay runs with --skip-equal: its disks answer its
#                 QEMU's upstream reads of the blocks they hold (compare
#                 with relay-chain's full rollout at the same node counts)
#   relay-noseed  relay-delta with --no-seed: the disks answer nothing;
#                 each node's copy reads from its QEMU only the blocks its
#                 disks lack (producer skip), which QEMU fetches once
#   relay-kill    the same chain, every process of node 2 killed when its
#                 first disk holds 30% of the image (a machine that dies;
#                 3 nodes or more): the other nodes' times
# Measured: seconds from the start until every node's ringcopy has exited
# with both disks verified (nbdkit's torrent plugin may hang at its own
# shutdown: the servers are ended after the measurement).
#
#   bench/fleet.sh [--nodes "1 2 4 8"] [--size-mib 128] [--rate 80mbit]
#                  [--modes "swarm-random swarm-order origin"] [--runs 3]
#                  [--out FILE]
# With --runs N, each figure is the median of N runs (all of them listed).
#
# Results (and the machine) go to bench/RESULTS-fleet.md, and the table
# into bench/RESULTS.md between its fleet markers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
nodes="1 2 4 8" size_mib=128 rate=80mbit out=$here/RESULTS-fleet.md
modes="swarm-random swarm-order swarm-nbdcopy swarm-engine origin relay-chain"
runs=1
while [ $# -gt 0 ]; do
	case $1 in
	--nodes) nodes=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--nodes LIST] [--size-mib N] [--rate R] [--modes LIST] [--runs N] [--out FILE]" >&2; exit 2 ;;
	esac
done
rc=$top/ringcopy
[ -x "$rc" ] || { echo "bench: build ringcopy first" >&2; exit 1; }
for c in nbdkit opentracker mktorrent aria2c tc ip; do
	command -v "$c" > /dev/null || { echo "bench: needs $c" >&2; exit 77; }
done
case " $modes " in
*" relay-chain "*|*" relay-kill "*|*" relay-delta "*|*" relay-noseed "*)
	for c in qemu-img qemu-storage-daemon unshare; do
		command -v "$c" > /dev/null || { echo "bench: relay-chain needs $c" >&2; exit 77; }
	done ;;
esac
# shellcheck source=../tests/fleet/net.sh
source "$top/tests/fleet/net.sh"
fleet_prefix=rcb$$x
why=$(fleet_can) || { echo "bench: $why" >&2; exit 77; }
work=$(mktemp -d /dev/shm/rcfleet.XXXXXX)
chmod 755 "$work"
cleanup() {
	fleet_down
	rm -rf "$work"
}
trap cleanup EXIT
# Each node is a machine of its own: a run directory of its own, so that
# two nodes reading the same URI do not meet in one ring.
export RINGCOPY_RUNDIR=$work/run

head -c $((size_mib * 1048576)) /dev/urandom > "$work/golden.img"
printf '#!/bin/sh\ntouch "$DONE"\n' > "$work/done.sh"
chmod 755 "$work/done.sh"
"$rc" -q --manifest "$work/golden.mf" "$work/golden.img" null:
# relay-delta's old image: every 20th 1 MiB block of the golden one
# differs (5%).
case " $modes " in
*" relay-delta "*|*" relay-noseed "*)
	cp "$work/golden.img" "$work/old.img"
	for (( b = 0; b < size_mib; b += 20 )); do
		dd if=/dev/urandom of="$work/old.img" bs=1M seek=$b count=1 conv=notrunc status=none
	done ;;
esac

# run MODE N: prints the seconds until the last node is done, then each
# node's own seconds.
run() {
	local mode=$1 n=$2 i j t0 t1 pid uri ups copies bad=0 times=()
	local -a pids starts
	fleet_dir=$work/net
	rm -rf "$fleet_dir"
	mkdir -p "$fleet_dir"
	chmod 755 "$fleet_dir"
	fleet_up "$n" "$rate"
	# The old image on every disk, before the clock starts.
	if [ "$mode" = relay-delta ] || [ "$mode" = relay-noseed ]; then
		for (( i = 1; i <= n; i++ )); do
			cp "$work/old.img" "$work/d$i.a"
			cp "$work/old.img" "$work/d$i.b"
		done
	fi
	# The origin is up before the clock starts; the nodes' servers are
	# timed (the torrent plugin downloads from its start, before any
	# read).
	if [ "$mode" = origin ] || [ "${mode%-*}" = relay ]; then
		fleet_in o nbdkit -r -i 192.0.2.1 -P "$fleet_dir/o.pid" --filter=stats \
			file "$work/golden.img" statsfile="$fleet_dir/o.stats"
		for (( i = 0; i < 50; i++ )); do
			fleet_in o bash -c 'exec 3<>/dev/tcp/192.0.2.1/10809' 2> /dev/null && break
			sleep 0.1
		done
	elif [ "$mode" = swarm-engine ]; then
		fleet_origin "$work/golden.img"
		sleep 1
		t0=$(date +%s.%N)
	else
		fleet_origin "$work/golden.img"
		sleep 1 # the seeder's integrity check of the image
		t0=$(date +%s.%N)
		for (( i = 1; i <= n; i++ )); do fleet_serve "$i"; done
	fi
	# Every node's command waits at a gate, opened once all are launched:
	# the nodes start together, as machines started at once do, not one
	# launch of this loop apart (about 50 ms each on this machine, which
	# a chain's last node would pay in full).  The swarm's clock started
	# before its servers, the others' as the gate opens.
	rm -f "$work/go"
	gate=(bash -c 'while [ ! -e "$0" ]; do sleep 0.005; done; exec "$@"' "$work/go")
	for (( i = 1; i <= n; i++ )); do
		[ "$mode" = relay-delta ] || [ "$mode" = relay-noseed ] ||
			rm -f "$work/d$i.a" "$work/d$i.b"
		if [ "$mode" = swarm-engine ]; then
			# It goes on seeding once done, as nbdkit does: the
			# hook marks the moment its download completed.
			mkdir -p "$fleet_dir/e$i"
			rm -f "$work/done$i"
			fleet_in "n$i" env DONE="$work/done$i" "${gate[@]}" aria2c --dir="$fleet_dir/e$i" \
				--seed-ratio=0.0 --enable-dht=false --enable-dht6=false \
				--bt-enable-lpd=false --bt-tracker-interval=2 \
				--console-log-level=warn --summary-interval=0 --quiet=true \
				--on-bt-download-complete="$work/done.sh" \
				"$fleet_dir/golden.torrent" > "$work/n$i.err" 2>&1 &
		elif [ "$mode" = origin ]; then
			uri=nbd://192.0.2.1/
			# The node's own namespace: its link is the shaped one.
			fleet_in "n$i" env RINGCOPY_RUNDIR="$work/run$i" "${gate[@]}" "$rc" -q --expect "$work/golden.mf" "$uri" \
				"$work/d$i.a" "$work/d$i.b" 2> "$work/n$i.err" &
		elif [ "${mode%-*}" = relay ]; then
			ups=
			for (( j = i - 1; j >= 1; j-- )); do ups+="nbd://192.0.2.$((10 + j))/,"; done
			ups+=nbd://192.0.2.1/
			rm -f "$work/n$i.out"
			delta=()
			[ "$mode" = relay-delta ] && delta=(--skip-equal)
			[ "$mode" = relay-noseed ] && delta=(--skip-equal --no-seed)
			mkdir -p -m 700 "$work/run$i"
			# Each node a machine: its network, IPC and run
			# directory; its overlay in the work directory.
			ip netns exec "$(fleet_ns "n$i")" env RINGCOPY_RUNDIR="$work/run$i" TMPDIR="$work" \
				unshare --ipc "${gate[@]}" "$rc" relay --json --linger 5 --listen "192.0.2.$((10 + i))" \
				--upstream "$ups" --expect "$work/golden.mf" "${delta[@]}" \
				"$work/d$i.a" "$work/d$i.b" > "$work/n$i.out" 2> "$work/n$i.err" &
		elif [ "$mode" = swarm-nbdcopy ]; then
			"${gate[@]}" nbdcopy "$(fleet_uri "$i")" null: 2> "$work/n$i.err" &
		else
			uri=$(fleet_uri "$i")
			start=()
			[ "$mode" = swarm-random ] && start=(--start-at random)
			RINGCOPY_RUNDIR=$work/run$i "${gate[@]}" "$rc" -q "${start[@]}" --expect "$work/golden.mf" --connect-timeout 120 \
				"$uri" "$work/d$i.a" "$work/d$i.b" 2> "$work/n$i.err" &
		fi
		pids[i]=$!
	done
	[ -n "${t0:-}" ] || t0=$(date +%s.%N)
	cpu0=$(cpu_ticks)
	: > "$work/go"
	if [ "$mode" = relay-kill ]; then
		# Node 2 dies at 30% of its copy (its disk's allocated bytes).
		while [ "$(( $(stat -c %b "$work/d2.a" 2> /dev/null || echo 0) * 512 ))" -lt $((size_mib * 1048576 * 3 / 10)) ] &&
			kill -0 "${pids[2]}" 2> /dev/null; do sleep 0.05; done
		ip netns pids "$(fleet_ns n2)" | xargs -r kill -9 2> /dev/null || true
	fi
	for (( i = 1; i <= n; i++ )); do
		if [ "$mode" = relay-kill ] && [ "$i" -eq 2 ]; then
			times+=(killed)
			continue
		elif [ "$mode" = swarm-engine ]; then
			while [ ! -e "$work/done$i" ]; do sleep 0.1; done
		elif [ "${mode%-*}" = relay ]; then
			# Its copy is done when its JSON line is out; the
			# relay goes on serving the nodes after it.
			while [ ! -s "$work/n$i.out" ] && kill -0 "${pids[i]}" 2> /dev/null; do sleep 0.1; done
			if ! grep -q '"status": "ok".*"status": "ok"' "$work/n$i.out"; then
				bad=1
				echo "bench: $mode, $n nodes: node $i failed: $(cat "$work/n$i.out" "$work/n$i.err")" >&2
			fi
		elif ! wait "${pids[i]}"; then
			bad=1
			echo "bench: $mode, $n nodes: node $i failed: $(cat "$work/n$i.err")" >&2
		fi
		t1=$(date +%s.%N)
		times+=("$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")")
	done
	t1=$(date +%s.%N)
	cpu1=$(cpu_ticks)
	copies=
	if [ "${mode%-*}" = relay ]; then
		for (( i = 1; i <= n; i++ )); do
			[ "$mode" = relay-kill ] && [ "$i" -eq 2 ] && { wait "${pids[i]}" || true; continue; }
			if ! wait "${pids[i]}"; then
				bad=1
				echo "bench: $mode, $n nodes: relay $i failed: $(cat "$work/n$i.err")" >&2
			fi
		done
	fi
	if [ -s "$fleet_dir/o.pid" ]; then
		# The origin's stats, written as it ends: the image copies it sent.
		kill "$(cat "$fleet_dir/o.pid")"
		for (( i = 0; i < 50; i++ )); do [ -s "$fleet_dir/o.stats" ] && break; sleep 0.1; done
		copies=$(awk -v size=$((size_mib * 1048576)) '$1 == "read:" { u = $7; sub(/,$/, "", u)
			m = u == "B" ? 1 : u == "KiB" ? 1024 : u == "MiB" ? 1048576 : u == "GiB" ? 1073741824 : -1
			if (m > 0) printf ", origin sent %.2f copies", $6 * m / size }' "$fleet_dir/o.stats")
	fi
	if [ "${mode%-*}" = relay ]; then
		# What the node that received most took from its upstream
		# (the relay's own count).
		copies+=$(for (( i = 1; i <= n; i++ )); do cat "$work/n$i.err"; done 2> /dev/null | sed -n 's/.*: \([0-9]*\) bytes from upstream.*/\1/p' |
			sort -n | tail -n 1 | awk -v size=$((size_mib * 1048576)) '{ printf ", a node received at most %.2f copies", $1 / size }')
	fi
	fleet_down
	[ "$bad" -eq 0 ] || return 1
	printf '%.1f %s, CPU %d%%%s\n' "$(echo "$t1 - $t0" | bc)" "${times[*]}" \
		"$(( (${cpu1% *} - ${cpu0% *}) * 100 / ( (${cpu1#* } - ${cpu0#* }) > 0 ? (${cpu1#* } - ${cpu0#* }) : 1 ) ))" \
		"$copies"
}

# Busy and total CPU ticks of the machine so far ("BUSY TOTAL").
cpu_ticks() {
	awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}

declare -A secs detail
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in $modes; do
	for n in $nodes; do
		all=() last=
		for (( r = 1; r <= runs; r++ )); do
			echo "bench: $mode, $n node(s), run $r/$runs (load $(cut -d' ' -f1-3 /proc/loadavg))..." >&2
			if out_r=$(run "$mode" "$n"); then
				all+=("${out_r%% *}")
				last=${out_r#* }
				echo "bench: $mode, $n node(s): ${out_r%% *} s" >&2
			else
				echo "bench: $mode, $n node(s): failed" >&2
			fi
		done
		if [ "${#all[@]}" -eq 0 ]; then
			secs[$mode,$n]=failed
			detail[$mode,$n]=
		elif [ "$runs" -eq 1 ]; then
			secs[$mode,$n]=${all[0]}
			detail[$mode,$n]=$last
		else
			# The median of the runs that completed; the last
			# run's details.
			secs[$mode,$n]=$(printf '%s\n' "${all[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
			short=
			[ "${#all[@]}" -eq "$runs" ] || short=" of $runs"
			detail[$mode,$n]="runs ${all[*]}$short; last: $last"
		fi
	done
done

{
	echo "# ringcopy fleet benchmark"
	echo
	echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/fleet.sh\`: a $size_mib MiB image, every link shaped to $rate both ways (tc tbf), each node writing two tmpfs files, verified and proved with \`--expect\`."
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores; every node, the origin and the bridge share them"
	echo "- Memory: $(awk '/MemTotal/ {printf "%d GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r)"
	echo "- ringcopy $("$rc" --version | awk '{print $2}'), nbdkit $(nbdkit --version | awk '{print $2}'), aria2 $(aria2c --version | awk 'NR == 1 {print $3}'), opentracker (Debian $(dpkg-query -W -f='${Version}' opentracker 2>/dev/null)), QEMU $(qemu-img --version 2>/dev/null | awk 'NR == 1 {print $3}')"
	echo "- Load average (1, 5, 15 min) as the bench started: $load0; as it ended: $(cut -d' ' -f1-3 /proc/loadavg); medians of $runs run(s)"
	echo
	echo "## Seconds until every node's disks are verified (in brackets: each node's own, in the order they finished waiting; and how busy the machine's CPUs were meanwhile)"
	echo
	printf '| carried by |'
	for n in $nodes; do printf ' %s node%s |' "$n" "$([ "$n" = 1 ] || echo s)"; done
	echo
	printf '|---|'
	for n in $nodes; do printf -- '---|'; done
	echo
	for mode in $modes; do
		printf '| %s |' "$mode"
		for n in $nodes; do printf ' %s (%s) |' "${secs[$mode,$n]}" "${detail[$mode,$n]}"; done
		echo
	done
	echo
	echo "Ratio to one node alone (the goals: 8 nodes within 1.3x for the swarm, issue 17; within 1.2x for the relay chain, issue 25):"
	echo
	for mode in $modes; do
		one=${secs[$mode,1]:-}
		printf -- '- %s:' "$mode"
		for n in $nodes; do
			if [[ $one =~ ^[0-9.]+$ ]] && [[ ${secs[$mode,$n]} =~ ^[0-9.]+$ ]]; then
				printf ' %s nodes %.2fx;' "$n" "$(echo "${secs[$mode,$n]} / $one" | bc -l)"
			fi
		done
		echo
	done
} > "$out"
cat "$out"
# The table in bench/RESULTS.md too, between its fleet markers (kept there
# by bench/report.py), for the default results file only.
results=$here/RESULTS.md
if [ "$out" = "$here/RESULTS-fleet.md" ] && [ -f "$results" ]; then
	python3 - "$results" "$out" <<'PY'
import sys
results, fleet = sys.argv[1], sys.argv[2]
text = open(results).read()
body = open(fleet).read().split("\n", 1)[1].strip()  # without its title
section = ("<!-- fleet:begin -->\n## Fleet rollout (bench/fleet.sh; details in RESULTS-fleet.md)\n\n"
           + body.replace("\n## ", "\n### ") + "\n<!-- fleet:end -->")
b, e = text.find("<!-- fleet:begin -->"), text.find("<!-- fleet:end -->")
if 0 <= b < e:
    text = text[:b] + section + text[e + len("<!-- fleet:end -->"):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(results, "w").write(text)
PY
fi
