#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for
# a bounded time: run.sh SECONDS WORKDIR.  Exit 77 when clang or libFuzzer
# is missing.  A crash leaves its input in WORKDIR and fails.
set -uo pipefail
secs=${1:-10}
work=${2:-$(mktemp -d)}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${top_builddir:-$top}
command -v clang >/dev/null || { echo "SKIP: no clang"; exit 77; }
echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' > "$work/probe.c"
clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" 2>/dev/null ||
	{ echo "SKIP: clang has no libFuzzer (libclang-rt-dev)"; exit 77; }
nbd=
pkg-config --exists libnbd && nbd="libnbd"
cflags="$(pkg-config --cflags libxxhash libzstd blkid liblzma zlib liblz4 $nbd) ${nbd:+-DHAVE_LIBNBD}"
libs="$(pkg-config --libs libxxhash libzstd blkid liblzma zlib liblz4 $nbd) -lbz2"
pkg-config --exists libudev && libs="$libs $(pkg-config --libs libudev)"
# The library's sources as the build lists them (libringcopy_a_SOURCES):
# a file added there is fuzzed with no edit here.  The configured
# Makefile's value (its conditionals resolved), else Makefile.am's list.
# Built into an archive, as libringcopy.a is, so each target links only
# what it calls.
lib_sources() {
	[ -f "$build/Makefile" ] &&
		printf 'rc-fuzz-sources:\n\t@echo $(libringcopy_a_SOURCES)\n' |
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
			make -s --no-print-directory -C "$build" -f Makefile \
			-f - rc-fuzz-sources 2>/dev/null && return
	sed -n '/^libringcopy_a_SOURCES[[:space:]]*=/,/[^\\]$/p' \
		"$top/Makefile.am"
}
mapfile -t srcs < <(lib_sources | tr -s ' \t\\' '\n' | grep '\.c$')
[ "${#srcs[@]}" -gt 0 ] || { echo "FAIL: no library sources in the build"; exit 1; }
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$work/obj"
objs=()
for s in "${srcs[@]}"; do
	o="$work/obj/$(echo "$s" | tr / _).o"
	clang -g -O1 $san -I"$top/include" -I"$build" $cflags \
		-c "$top/$s" -o "$o" || { echo "FAIL: building $s"; exit 1; }
	objs+=("$o")
done
rm -f "$work/libringcopy-fuzz.a"
ar cr "$work/libringcopy-fuzz.a" "${objs[@]}" ||
	{ echo "FAIL: archiving the sources"; exit 1; }
status=0
for t in header manifest; do
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I"$top/include" -I"$build" $cflags \
		"$top/tests/fuzz/fuzz-$t.c" "$work/libringcopy-fuzz.a" $libs \
		-o "$work/fuzz-$t" ||
		{ echo "FAIL: building fuzz-$t"; exit 1; }
	mkdir -p "$work/corpus-$t"
	RC_FUZZ_SEED_DIR="$work/corpus-$t" "$work/fuzz-$t" -runs=0 "$work/corpus-$t" >/dev/null 2>&1
	echo "fuzz-$t: ${secs}s"
	if ! (cd "$work" && "$work/fuzz-$t" -max_total_time="$secs" -max_len=4096 \
		-print_final_stats=1 "$work/corpus-$t" > "$work/fuzz-$t.log" 2>&1); then
		echo "FAIL: fuzz-$t found a crash:"
		tail -n 40 "$work/fuzz-$t.log"
		status=1
	else
		grep -E "stat::number_of_executed_units|Done" "$work/fuzz-$t.log" | head -n 2
	fi
done
exit "$status"
