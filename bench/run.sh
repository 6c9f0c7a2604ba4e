#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ringcopy benchmarks against its peers, in one run on one machine.
#
#   bench/run.sh [--runs N] [--cases LETTERS] [--size-scale F] [--out FILE]
#
# Cases (issue 8, and the zstd case of issue 5):
#   a  slow source: a loop device throttled to 100 MB/s (cgroup v1 blkio),
#      1/2/4/8 file targets on tmpfs: ringcopy vs N concurrent dd vs
#      dcfldd and dc3dd with N outputs; wall time and the bytes read from
#      the device as blkio.throttle.io_service_bytes counts them
#   b  page-cache source, 4 tmpfs targets: ringcopy (with and without
#      verification) vs 4 parallel dd, dcfldd, dc3dd, tee; and the
#      machine's floors: 4 dd from /dev/zero (writing alone), 4 dd of the
#      written targets to /dev/null (reading back alone)
#   c  late join at 25/50/75% of a throttled copy: bytes read from the
#      device vs the image
#   d  sparse 4 GiB image with 5% data: ringcopy vs dd conv=sparse vs
#      bmaptool copy (with a bmap made beforehand, not timed)
#   e  scaling: 1/2/4/16/64 null: targets, throughput and CPU s per GiB
#      (cpuacct, so the detached producer counts)
#   f  geometry sweep: block size x ring size
#   z  zstd: a 1 GiB image compressed by ringcopy vs zstd -T0 -3, and a
#      .zst source to 4 raw targets vs 4 x zstd -d
#   n  NBD: 1/4/16 nbdkit memory exports over Unix sockets, and over
#      loopback TCP with 1 ms delay, vs as many tmpfs files, vs nbdcopy
#      once per target (issue 9)
#
# Each case alternates the tools inside every run (case b also rotates
# their order from run to run) and reports medians.
# Needs root (loop devices, cgroups, drop_caches).  Writes bench/RESULTS.md.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RC=$root/ringcopy
runs=5
cases=abcdefzn
scale=1
out=$root/bench/RESULTS.md
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--size-scale) scale=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--cases LETTERS] [--size-scale F] [--out FILE]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 77; }
[ -x "$RC" ] || { echo "bench: build ringcopy first (scripts/bootstrap.sh)" >&2; exit 1; }
for t in dcfldd dc3dd bmaptool zstd; do
	command -v $t >/dev/null || missing="${missing:-} $t"
done
if [ -n "${missing:-}" ]; then
	apt-get install -y -qq dcfldd dc3dd bmap-tools zstd >/dev/null ||
		{ echo "bench: cannot install:$missing" >&2; exit 1; }
fi

work=${BENCH_WORK:-/dev/shm/rc-bench}
rm -rf "$work"
mkdir -p "$work/t"
export RINGCOPY_RUNDIR=$work/run
tsv=$work/results.tsv
: > "$tsv"
mib=$((1024 * 1024))
sz() { python3 -c "print(int($1 * $scale))"; }

BLK=/sys/fs/cgroup/blkio/rcbench
CPU=/sys/fs/cgroup/cpuacct/rcbench
mkdir -p "$BLK" "$CPU" 2>/dev/null ||
	{ echo "bench: needs cgroup v1 blkio and cpuacct hierarchies (/sys/fs/cgroup/blkio, /sys/fs/cgroup/cpuacct)" >&2; exit 77; }
loops=()
cleanup() {
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	rmdir "$BLK" "$CPU" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# Run a command inside the bench cgroups; print "seconds readbytes cpu_s".
measure() {
	local dev=${DEV:-} r0 r1 c0 c1 t0 t1
	r0=$(devread "$dev"); c0=$(cat "$CPU/cpuacct.usage")
	t0=$(date +%s%N)
	if ! bash -c 'echo $$ > '"$BLK"'/cgroup.procs; echo $$ > '"$CPU"'/cgroup.procs; exec "$@"' _ "$@" \
		> /dev/null 2> "$work/last.err"; then
		tail -n 3 "$work/last.err" >> "$work/errors.log"
		echo "FAILED: $*" >> "$work/errors.log"
		return 0 # no figure: a failed run is not a measurement
	fi
	# The detached producer may still be tearing down: wait for it.
	while [ -n "$(ls -A "$RINGCOPY_RUNDIR" 2>/dev/null)" ]; do sleep 0.01; done
	t1=$(date +%s%N)
	r1=$(devread "$dev"); c1=$(cat "$CPU/cpuacct.usage")
	echo "$(( (t1 - t0) / 1000 ))e-6 $((r1 - r0)) $(( (c1 - c0) / 1000 ))e-6"
}
devread() {
	[ -n "$1" ] || { echo 0; return; }
	awk -v d="$1" '$1 == d && $2 == "Read" { print $3; f = 1 } END { if (!f) print 0 }' \
		"$BLK/blkio.throttle.io_service_bytes"
}
# case tool param run "s bytes cpu"; a failed run (no figures) is dropped.
record() { [ -n "$5" ] && echo -e "$1\t$2\t$3\t$4\t$5" >> "$tsv"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
clean_targets() { rm -rf "$work/t"; mkdir -p "$work/t"; }

# A loop device over a file on tmpfs, throttled to 100 MB/s for reads.
slow_source() {
	local img=$1 dev majmin
	dev=$(losetup -f --show "$img")
	loops+=("$dev")
	majmin=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')
	echo "$majmin 104857600" > "$BLK/blkio.throttle.read_bps_device"
	SLOWDEV=$dev
	DEV=$majmin
}

echo "bench: $runs runs, cases $cases, work in $work"

if [[ $cases == *a* || $cases == *c* ]]; then
	S=$(sz 512)
	bash "$root/fixtures/mkimage.sh" "$work/slow.img" ${S}M 1
	slow_source "$work/slow.img"
fi

if [[ $cases == *a* ]]; then
	for n in 1 2 4 8; do
		for r in $(seq 1 "$runs"); do
			outs=(); dcf=(); for i in $(seq 1 $n); do outs+=("$work/t/$i.img"); dcf+=("of=$work/t/$i.img"); done
			clean_targets; drop
			record a ringcopy-noverify "$n" "$r" "$(measure "$RC" -q --no-verify "$SLOWDEV" "${outs[@]}")"
			clean_targets; drop
			record a ringcopy "$n" "$r" "$(measure "$RC" -q "$SLOWDEV" "${outs[@]}")"
			clean_targets; drop
			record a dd-parallel "$n" "$r" "$(measure bash -c 'for o in "$@"; do dd if='"$SLOWDEV"' of="$o" bs=1M status=none & done; wait' _ "${outs[@]}")"
			clean_targets; drop
			record a dcfldd "$n" "$r" "$(measure dcfldd if="$SLOWDEV" "${dcf[@]}" bs=1M status=off)"
			clean_targets; drop
			record a dc3dd "$n" "$r" "$(measure dc3dd if="$SLOWDEV" "${dcf[@]}" log=/dev/null)"
			if [ "$n" -eq 1 ]; then
				clean_targets; drop
				record a dd-single 1 "$r" "$(measure dd if="$SLOWDEV" of="$work/t/1.img" bs=1M status=none)"
			fi
		done
	done
	clean_targets
fi

if [[ $cases == *c* ]]; then
	# The first copy takes S MiB / 100 MB/s; the second starts at a
	# fraction of that.
	full=$(python3 -c "print($S * 1048576 / 104857600)")
	for frac in 25 50 75; do
		for r in $(seq 1 "$runs"); do
			clean_targets; drop
			delay=$(python3 -c "print($full * $frac / 100)")
			res=$(measure bash -c '"$1" -q --no-verify "$2" "$3" & sleep "$5"; "$1" -q --no-verify "$2" "$4"; wait' _ \
				"$RC" "$SLOWDEV" "$work/t/a.img" "$work/t/b.img" "$delay")
			record c ringcopy-late "$frac" "$r" "$res"
		done
	done
	clean_targets
fi
unset DEV

if [[ $cases == *b* ]]; then
	S=$(sz 1024)
	bash "$root/fixtures/mkimage.sh" "$work/cache.img" ${S}M 2
	cat "$work/cache.img" > /dev/null
	outs=("$work/t/1.img" "$work/t/2.img" "$work/t/3.img" "$work/t/4.img")
	dcf=(); for o in "${outs[@]}"; do dcf+=("of=$o"); done
	b_tools=(ringcopy-noverify ringcopy dd-parallel dcfldd dc3dd tee dd-single floor)
	b_run() {
		clean_targets
		case $1 in
		ringcopy-noverify)
			record b "$1" 4 "$r" "$(measure "$RC" -q --no-verify "$work/cache.img" "${outs[@]}")" ;;
		ringcopy)
			record b "$1" 4 "$r" "$(measure "$RC" -q "$work/cache.img" "${outs[@]}")" ;;
		dd-parallel)
			record b "$1" 4 "$r" "$(measure bash -c 'for o in "$@"; do dd if='"$work/cache.img"' of="$o" bs=1M status=none & done; wait' _ "${outs[@]}")" ;;
		dcfldd)
			record b "$1" 4 "$r" "$(measure dcfldd if="$work/cache.img" "${dcf[@]}" bs=1M status=off)" ;;
		dc3dd)
			record b "$1" 4 "$r" "$(measure dc3dd if="$work/cache.img" "${dcf[@]}" log=/dev/null)" ;;
		tee)
			record b "$1" 4 "$r" "$(measure bash -c 'tee "$2" "$3" "$4" < "$1" > "$5"' _ "$work/cache.img" "${outs[@]}")" ;;
		dd-single)
			record b "$1" 1 "$r" "$(measure dd if="$work/cache.img" of="${outs[0]}" bs=1M status=none)" ;;
		floor)
			# The machine's floors, for reading the goals: writing the
			# 4 targets with nothing read (dd from /dev/zero), and
			# reading them back (what any read-back verification costs).
			record b floor-write 4 "$r" "$(measure bash -c 'for o in "$@"; do dd if=/dev/zero of="$o" bs=1M count='"$S"' status=none & done; wait' _ "${outs[@]}")"
			record b floor-readback 4 "$r" "$(measure bash -c 'for o in "$@"; do dd if="$o" of=/dev/null bs=1M status=none & done; wait' _ "${outs[@]}")" ;;
		esac
	}
	# Every tool starts right after the previous one freed its targets:
	# on a VM that hands freed pages back to its host (free page
	# reporting waits about 2 s), pages freed just now are still the
	# guest's, pages freed long ago cost host faults to use again.  So
	# that the first tool finds memory as the others do, an untimed
	# write of the targets comes first.
	clean_targets
	for o in "${outs[@]}"; do dd if=/dev/zero of="$o" bs=1M count="$S" status=none & done
	wait
	# Each run starts one tool further down the list, so that no tool
	# always runs first, or always after the same one: on a VM that hands
	# freed pages back to its host, the order changes what a write costs.
	for r in $(seq 1 "$runs"); do
		k=$(( (r - 1) % ${#b_tools[@]} ))
		for t in "${b_tools[@]:k}" "${b_tools[@]:0:k}"; do
			b_run "$t"
		done
	done
	clean_targets
fi

if [[ $cases == *d* ]]; then
	S=$(sz 4096)
	truncate -s ${S}M "$work/sparse.img"
	bash "$root/fixtures/mkimage.sh" "$work/chunk" 1M 3
	# 5% data, in 1 MiB pieces spread over the image.
	for i in $(seq 0 20 $((S - 1))); do
		dd if="$work/chunk" of="$work/sparse.img" bs=1M seek=$i conv=notrunc status=none
	done
	bmaptool -q create -o "$work/sparse.bmap" "$work/sparse.img"
	for r in $(seq 1 "$runs"); do
		clean_targets
		record d ringcopy 1 "$r" "$(measure "$RC" -q "$work/sparse.img" "$work/t/s.img")"
		clean_targets
		record d ringcopy-noverify 1 "$r" "$(measure "$RC" -q --no-verify "$work/sparse.img" "$work/t/s.img")"
		clean_targets
		# The ring a dense source gets: what the 64 MiB default for a
		# source with holes gains.
		record d ringcopy-ring16M 1 "$r" "$(measure "$RC" -q --buffer 16M "$work/sparse.img" "$work/t/s.img")"
		clean_targets
		record d dd-sparse 1 "$r" "$(measure dd if="$work/sparse.img" of="$work/t/s.img" bs=1M conv=sparse status=none)"
		clean_targets
		record d bmaptool 1 "$r" "$(measure bmaptool -q copy --bmap "$work/sparse.bmap" "$work/sparse.img" "$work/t/s.img")"
	done
	clean_targets
fi

if [[ $cases == *e* ]]; then
	S=$(sz 2048)
	bash "$root/fixtures/mkimage.sh" "$work/scale.img" ${S}M 4
	cat "$work/scale.img" > /dev/null
	for n in 1 2 4 16 64; do
		nulls=(); for i in $(seq 1 $n); do nulls+=(null:); done
		for r in $(seq 1 "$runs"); do
			record e ringcopy-null "$n" "$r" "$(measure "$RC" -q --no-verify "$work/scale.img" "${nulls[@]}")"
		done
	done
fi

if [[ $cases == *f* ]]; then
	S=$(sz 1024)
	[ -f "$work/cache.img" ] || bash "$root/fixtures/mkimage.sh" "$work/cache.img" ${S}M 2
	cat "$work/cache.img" > /dev/null
	for bs in 64K 256K 1M 4M; do
		for buf in 16M 32M 64M 256M; do
			for r in $(seq 1 "$runs"); do
				clean_targets
				record f "ringcopy" "bs=$bs,ring=$buf" "$r" \
					"$(measure "$RC" -q --no-verify -b $bs --buffer $buf "$work/cache.img" "$work/t/1.img" "$work/t/2.img" "$work/t/3.img" "$work/t/4.img")"
			done
		done
	done
	clean_targets
fi

if [[ $cases == *z* ]]; then
	S=$(sz 1024)
	# A realistic image: half random, half zeros and text-like runs.
	bash "$root/fixtures/mkimage.sh" "$work/z.img" $((S / 2))M 5
	python3 -c "
import sys
with open('$work/z.img', 'ab') as f:
    line = b'ringcopy benchmark line of compressible text 0123456789\n'
    for i in range($S // 2):
        f.write((line * (1048576 // len(line) + 1))[:1048576] if i % 2 else bytes(1048576))
"
	cat "$work/z.img" > /dev/null
	zstd -q -T0 -3 -f -o "$work/z.img.zst" "$work/z.img"
	for r in $(seq 1 "$runs"); do
		clean_targets
		record z ringcopy-compress 1 "$r" "$(measure "$RC" -q --no-verify "$work/z.img" "$work/t/out.zst")"
		clean_targets
		record z zstd-T0-3 1 "$r" "$(measure zstd -q -T0 -3 -f -o "$work/t/out2.zst" "$work/z.img")"
		clean_targets
		record z ringcopy-zst-to-4 4 "$r" "$(measure "$RC" -q --no-verify "$work/z.img.zst" "$work/t/1.img" "$work/t/2.img" "$work/t/3.img" "$work/t/4.img")"
		clean_targets
		record z zstd-d-x4 4 "$r" "$(measure bash -c 'for i in 1 2 3 4; do zstd -q -d -f -o "$2/$i.img" "$1"; done' _ "$work/z.img.zst" "$work/t")"
	done
	clean_targets
fi

if [[ $cases == *n* ]] && command -v nbdkit >/dev/null; then
	S=$(sz 256)
	bash "$root/fixtures/mkimage.sh" "$work/n.img" ${S}M 6
	cat "$work/n.img" > /dev/null
	port=10809
	# Fresh servers for every tool and run: a memory export allocates
	# its pages on the first write, so a tool that followed another on
	# the same servers would find them warm.  The servers run outside
	# the measured cgroup: the CPU column is the client's alone.
	# nbd_servers KIND N: start N servers; URIs in $uris.
	nbd_servers() {
		local kind=$1 n=$2 i
		uris=(); npids=()
		rm -f "$work"/nbd-*.sock
		for i in $(seq 1 "$n"); do
			if [ "$kind" = unix ]; then
				nbdkit -U "$work/nbd-$i.sock" -P "$work/nbd-$i.pid" memory $((S * 2))M
				uris+=("nbd+unix:///?socket=$work/nbd-$i.sock")
			else
				port=$((port + 1)); [ $port -gt 60000 ] && port=10810
				nbdkit -i 127.0.0.1 -p $port -P "$work/nbd-$i.pid" --filter=delay \
					memory $((S * 2))M delay-write=1ms delay-read=1ms
				uris+=("nbd://127.0.0.1:$port/")
			fi
			npids+=("$work/nbd-$i.pid")
		done
		sleep 0.3
	}
	nbd_stop() {
		local f
		for f in "${npids[@]}"; do kill "$(cat "$f")" 2>/dev/null; done
		sleep 0.3
	}
	for n in 1 4 16; do
		for r in $(seq 1 "$runs"); do
			files=(); for i in $(seq 1 $n); do files+=("$work/t/$i.img"); done
			clean_targets
			record n ringcopy-tmpfs "$n" "$r" "$(measure "$RC" -q --no-verify "$work/n.img" "${files[@]}")"
			clean_targets
			nbd_servers unix "$n"
			record n ringcopy-nbd-unix "$n" "$r" "$(measure "$RC" -q --no-verify "$work/n.img" "${uris[@]}")"
			nbd_stop
			nbd_servers tcp "$n"
			record n ringcopy-nbd-tcp-1ms "$n" "$r" "$(measure "$RC" -q --no-verify "$work/n.img" "${uris[@]}")"
			nbd_stop
			nbd_servers unix "$n"
			record n nbdcopy-per-target "$n" "$r" "$(measure bash -c 'for u in "$@"; do nbdcopy '"$work/n.img"' "$u" || exit 1; done' _ "${uris[@]}")"
			nbd_stop
		done
	done
	clean_targets
fi

# Every run's figures, not only the medians: case, tool, param, run,
# "seconds bytes_read cpu_seconds".
cp "$tsv" "${out%.md}.tsv"
python3 "$root/bench/report.py" "$tsv" "$out" "$runs" "$scale" \
	"$( [ -s "$work/errors.log" ] && cat "$work/errors.log" | head -20 )"
echo "bench: wrote $out"
# A failed run leaves no figure: say so in the exit status too.
[ ! -s "$work/errors.log" ]
