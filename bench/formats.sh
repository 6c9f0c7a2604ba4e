#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Compressed streams to 4 targets (issue 16): ringcopy reading a
# compressed image from a pipe (decompressed by content) against
# `Xcat img | tee t1 t2 t3 > t4`, and bmaptool copy to one target, on the
# same image; seconds and CPU seconds per GiB of image (cpuacct: the
# detached producer counts).  Targets on tmpfs.
#
#   bench/formats.sh [--size-mib N] [--out FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
size_mib=512 out=$here/RESULTS-formats.md
while [ $# -gt 0 ]; do
	case $1 in
	--size-mib) size_mib=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--size-mib N] [--out FILE]" >&2; exit 2 ;;
	esac
done
rc=$top/ringcopy
[ -x "$rc" ] || { echo "bench: build ringcopy first" >&2; exit 1; }
CPU=/sys/fs/cgroup/cpuacct/rcformats
mkdir -p "$CPU" 2>/dev/null || { echo "bench: needs cgroup v1 cpuacct" >&2; exit 77; }
work=$(mktemp -d /dev/shm/rcformats.XXXXXX)
trap 'rm -rf "$work"; rmdir "$CPU" 2>/dev/null' EXIT
export RINGCOPY_RUNDIR=$work/run

# An image like a disk: a third random, a third text-like, a third zeros.
third=$((size_mib / 3))
{
	head -c $((third * 1048576)) /dev/urandom
	{ yes 'ringcopy benchmark: a line of text that compresses well enough' || :; } |
		head -c $((third * 1048576))
	head -c $(((size_mib - 2 * third) * 1048576)) /dev/zero
} > "$work/img"
xz -T0 -3 -c "$work/img" > "$work/img.xz"
zstd -q -T0 -3 -c "$work/img" > "$work/img.zst"
gzip -3 -c "$work/img" > "$work/img.gz"

rows=()
# measure NAME COMMAND: wall and CPU seconds per GiB, all 4 (or 1) targets
# checked against the image.
measure() {
	local name=$1 t0 t1 c0 c1 gib r best_t= best_c=
	shift
	# The better of two runs: the first of a kind pays for warming up.
	for r in 1 2; do
		rm -f "$work"/t*
		c0=$(cat "$CPU/cpuacct.usage")
		t0=$(date +%s.%N)
		bash -c 'echo $$ > '"$CPU"'/cgroup.procs; eval "$1"' _ "$*" > /dev/null 2>&1 ||
			{ echo "bench: $name failed" >&2; exit 1; }
		t1=$(date +%s.%N)
		c1=$(cat "$CPU/cpuacct.usage")
		for t in "$work"/t*; do cmp -s "$work/img" "$t" || { echo "bench: $name: $t differs" >&2; exit 1; }; done
		t1=$(echo "$t1 - $t0" | bc -l)
		c1=$(echo "($c1 - $c0) / 1000000000" | bc -l)
		if [ -z "$best_t" ] || [ "$(echo "$t1 < $best_t" | bc)" = 1 ]; then
			best_t=$t1 best_c=$c1
		fi
	done
	gib=$(echo "$size_mib / 1024" | bc -l)
	rows+=("$(printf '| %s | %.2f | %.2f |' "$name" "$(echo "$best_t / $gib" | bc -l)" \
		"$(echo "$best_c / $gib" | bc -l)")")
	echo "${rows[-1]}"
}
for f in xz zst gz; do
	case $f in xz) cat=xzcat ;; zst) cat=zstdcat ;; gz) cat=zcat ;; esac
	measure "$f: ringcopy - t1..t4 (pipe)" "cat $work/img.$f | $rc -q - $work/t1 $work/t2 $work/t3 $work/t4"
	measure "$f: ringcopy --no-verify - t1..t4" "cat $work/img.$f | $rc -q --no-verify - $work/t1 $work/t2 $work/t3 $work/t4"
	measure "$f: $cat | tee t1 t2 t3 > t4" "$cat $work/img.$f | tee $work/t1 $work/t2 $work/t3 > $work/t4"
	if command -v bmaptool > /dev/null; then
		measure "$f: bmaptool copy --nobmap (1 target)" "bmaptool -q copy --nobmap $work/img.$f $work/t1"
	fi
done
{
	echo "# Compressed streams to 4 targets (issue 16): $(date -u +%Y-%m-%d), ringcopy $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)."
	echo "Image: $size_mib MiB (a third random, a third text, a third zeros), compressed"
	echo "with xz -T0 -3, zstd -T0 -3 and gzip -3; sizes: $(stat -c %s "$work/img.xz") / $(stat -c %s "$work/img.zst") / $(stat -c %s "$work/img.gz") bytes."
	echo "Targets on tmpfs; the better of two runs each; every target compared with the image."
	echo "Seconds and CPU seconds (cpuacct: every process, the detached producer"
	echo "included) per GiB of image. ringcopy verifies every target unless"
	echo "--no-verify; tee and bmaptool --nobmap do not."
	echo
	echo "| case | s/GiB | CPU s/GiB |"
	echo "|---|---|---|"
	printf '%s\n' "${rows[@]}"
} > "$out"
echo "bench: wrote $out"
