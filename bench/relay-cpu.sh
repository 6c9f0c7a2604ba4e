#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# CPU seconds of a relay chain, per node and per process (issue 25): the
# relay's forwarder, its qemu-storage-daemon, its copy (user and system
# each), the origin's nbdkit, and the machine's softirq time meanwhile
# (veth, bridge and tbf run there; machine-wide, so other load counts in
# it).  CPU seconds, unlike seconds of wall time, hardly depend on what
# else runs on the machine.
#
#   bench/relay-cpu.sh [--nodes 8] [--size-mib 128] [--rate 80mbit|none]
#                      [--delta] [-- RELAY-OPTIONS...]
# Same network and nodes as bench/fleet.sh's relay-chain (tests/fleet/
# net.sh), one run.  --delta: relay-delta's old disks and --skip-equal.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
n=8 size_mib=128 rate=80mbit delta=0
while [ $# -gt 0 ]; do
	case $1 in
	--nodes) n=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--delta) delta=1; shift ;;
	--) shift; break ;;
	*) echo "usage: $0 [--nodes N] [--size-mib N] [--rate R|none] [--delta] [-- RELAY-OPTIONS]" >&2; exit 2 ;;
	esac
done
rc=$top/ringcopy
[ -x "$rc" ] || { echo "bench: build ringcopy first" >&2; exit 1; }
# shellcheck source=../tests/fleet/net.sh
source "$top/tests/fleet/net.sh"
fleet_prefix=rcc$$x
why=$(fleet_can) || { echo "bench: $why" >&2; exit 77; }
work=$(mktemp -d /dev/shm/rccpu.XXXXXX)
chmod 755 "$work"
cleanup() { fleet_down; rm -rf "$work"; }
trap cleanup EXIT
export RINGCOPY_RUNDIR=$work/run
head -c $((size_mib * 1048576)) /dev/urandom > "$work/golden.img"
"$rc" -q --manifest "$work/golden.mf" "$work/golden.img" null:
if [ "$delta" = 1 ]; then
	cp "$work/golden.img" "$work/old.img"
	for (( b = 0; b < size_mib; b += 20 )); do
		dd if=/dev/urandom of="$work/old.img" bs=1M seek=$b count=1 conv=notrunc status=none
	done
fi
fleet_dir=$work/net
mkdir -p "$fleet_dir"
chmod 755 "$fleet_dir"
[ "$rate" = none ] && rate=
fleet_up "$n" "$rate"
fleet_in o nbdkit -r -i 192.0.2.1 -P "$fleet_dir/o.pid" file "$work/golden.img"
for (( i = 0; i < 50; i++ )); do
	fleet_in o bash -c 'exec 3<>/dev/tcp/192.0.2.1/10809' 2> /dev/null && break
	sleep 0.1
done
for (( i = 1; i <= n; i++ )); do
	if [ "$delta" = 1 ]; then
		cp "$work/old.img" "$work/d$i.a"; cp "$work/old.img" "$work/d$i.b"
	fi
done
softirq() { awk '/^cpu / {print $8}' /proc/stat; }
s0=$(softirq)
t0=$(date +%s.%N)
pids=()
for (( i = 1; i <= n; i++ )); do
	ups=
	for (( j = i - 1; j >= 1; j-- )); do ups+="nbd://192.0.2.$((10 + j))/,"; done
	ups+=nbd://192.0.2.1/
	opts=()
	[ "$delta" = 1 ] && opts=(--skip-equal)
	mkdir -p -m 700 "$work/run$i"
	ip netns exec "$(fleet_ns "n$i")" env RINGCOPY_RUNDIR="$work/run$i" TMPDIR="$work" \
		unshare --ipc "$rc" relay -q --json --linger 2 --listen "192.0.2.$((10 + i))" \
		--upstream "$ups" --expect "$work/golden.mf" "${opts[@]}" "$@" \
		"$work/d$i.a" "$work/d$i.b" > "$work/n$i.out" 2> "$work/n$i.err" &
	pids+=($!)
done
python3 "$top/tests/fleet/cpu.py" "$work/cpu" "${pids[@]}" &
sampler=$!
bad=0
for (( i = 1; i <= n; i++ )); do
	if ! wait "${pids[i - 1]}" || ! grep -q '"status": "ok".*"status": "ok"' "$work/n$i.out"; then
		bad=1
		echo "node $i failed: $(cat "$work/n$i.out" "$work/n$i.err")" >&2
	fi
done
wait "$sampler"
t1=$(date +%s.%N)
s1=$(softirq)
o=$(awk '{print ($14 + $15) / 100}' "/proc/$(cat "$fleet_dir/o.pid")/stat")
echo "nodes $n, ${size_mib} MiB, rate ${rate:-none}, delta $delta, options: $*"
awk '{u[$3] += $4; s[$3] += $5; t[$2] += $4 + $5; nn[$2] = 1}
	END {
		for (r in u) printf "  %-6s user %6.2f sys %6.2f  per node %.2f\n", r, u[r], s[r], (u[r] + s[r]) / length(nn)
		printf "  nodes:"; for (k = 1; k in t; k++) printf " %.2f", t[k]; printf "\n"
	}' "$work/cpu"
sed "s/^/    /" "$work/cpu"
echo "  origin nbdkit $o s; softirq (machine-wide) $(( s1 - s0 )) ticks; wall $(echo "$t1 - $t0" | bc) s"
exit $bad
