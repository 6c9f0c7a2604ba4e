#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --skip-equal against a full copy and its peers (issue 16), on a target
# that writes slower than it reads: a loop device whose O_DIRECT writes are
# throttled to 50 MB/s (cgroup v1 blkio; reads are not throttled).
#
#   bench/skip-equal.sh [--size-mib N] [--differ-pct P] [--out FILE]
#
# Cases, each on a freshly prepared target:
#   refresh  the target holds the image with P% of its 1 MiB blocks changed:
#            ringcopy (full copy), ringcopy --skip-equal, dd oflag=direct,
#            dcfldd diffwr=on
#   empty    the target holds zeros (every block differs): ringcopy full vs
#            ringcopy --skip-equal (the price of --skip-equal when it cannot
#            help)
# Wall seconds and the bytes written to the device (blkio counters).
# Results (and the machine) go to bench/RESULTS-skip-equal.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
size_mib=1024 pct=5 out=$here/RESULTS-skip-equal.md
while [ $# -gt 0 ]; do
	case $1 in
	--size-mib) size_mib=$2; shift 2 ;;
	--differ-pct) pct=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--size-mib N] [--differ-pct P] [--out FILE]" >&2; exit 2 ;;
	esac
done
rc=$top/ringcopy
[ -x "$rc" ] || { echo "bench: build ringcopy first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root (loop devices, cgroups)" >&2; exit 77; }
BLK=/sys/fs/cgroup/blkio/rcskip
mkdir -p "$BLK" 2>/dev/null || { echo "bench: needs cgroup v1 blkio" >&2; exit 77; }
work=$(mktemp -d /dev/shm/rcskip.XXXXXX)
dev=
cleanup() {
	[ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
	rmdir "$BLK" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
export RINGCOPY_RUNDIR=$work/run

img=$work/img
head -c $((size_mib * 1048576)) /dev/urandom > "$img"
truncate -s $((size_mib * 1048576)) "$work/disk"
dev=$(losetup -f --show "$work/disk")
majmin=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')
echo "$majmin 52428800" > "$BLK/blkio.throttle.write_bps_device"
nchanged=$((size_mib * pct / 100))

# The target's state before a run, written to the backing file directly
# (not through the throttled device).
prepare() {
	if [ "$1" = refresh ]; then
		cp "$img" "$work/disk"
		python3 - "$work/disk" "$size_mib" "$nchanged" <<'PY'
import os, random, sys
path, blocks, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(16)
with open(path, "r+b") as f:
    for b in random.sample(range(blocks), n):
        f.seek(b * 1048576 + 512)
        f.write(os.urandom(4096))
PY
	else
		dd if=/dev/zero of="$work/disk" bs=1M count="$size_mib" conv=notrunc status=none
	fi
	sync
	blockdev --flushbufs "$dev"
	echo 3 > /proc/sys/vm/drop_caches
}
written() {
	awk -v d="$majmin" '$1 == d && $2 == "Write" { print $3; f = 1 } END { if (!f) print 0 }' \
		"$BLK/blkio.throttle.io_service_bytes"
}
# run CASE TOOL COMMAND...: in the cgroup; prints a table row.
rows=()
run() {
	local case=$1 tool=$2 w0 w1 t0 t1
	shift 2
	prepare "$case"
	w0=$(written)
	t0=$(date +%s.%N)
	bash -c 'echo $$ > '"$BLK"'/cgroup.procs; exec "$@"' _ "$@" > /dev/null 2>&1 ||
		{ echo "bench: $tool failed" >&2; exit 1; }
	t1=$(date +%s.%N)
	w1=$(written)
	cmp -s "$img" "$dev" || { echo "bench: $tool: the device differs from the image" >&2; exit 1; }
	rows+=("$(printf '| %s | %s | %.2f | %.1f |' "$case" "$tool" \
		"$(echo "$t1 - $t0" | bc)" "$(echo "($w1 - $w0) / 1048576" | bc -l)")")
	echo "${rows[-1]}"
}

run refresh "ringcopy (full copy)" "$rc" -q "$img" "$dev"
run refresh "ringcopy --skip-equal" "$rc" -q --skip-equal "$img" "$dev"
run refresh "dd bs=1M oflag=direct" dd if="$img" of="$dev" bs=1M oflag=direct
run refresh "dcfldd bs=1M diffwr=on" dcfldd if="$img" of="$dev" bs=1M diffwr=on
run empty "ringcopy (full copy)" "$rc" -q "$img" "$dev"
run empty "ringcopy --skip-equal" "$rc" -q --skip-equal "$img" "$dev"

{
	echo "# --skip-equal (issue 16): $(date -u +%Y-%m-%d), ringcopy $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)."
	echo "Image: $size_mib MiB of random data on tmpfs. Target: a loop device over a"
	echo "tmpfs file, O_DIRECT writes throttled to 50 MB/s (cgroup v1 blkio), reads"
	echo "not throttled. refresh: the target holds the image with $nchanged of its"
	echo "$size_mib 1 MiB blocks changed ($pct %); empty: it holds zeros. Page cache dropped"
	echo "before each run; every run ends with the device identical to the image."
	echo "ringcopy verifies (reads the device back) in every run; dd and dcfldd do not."
	echo
	echo "| case | tool | seconds | MiB written to the device |"
	echo "|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
} > "$out"
echo "bench: wrote $out"
