#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Differential fuzzing of the five decoders against the formats' own tools
# (tests/fuzz/decoders.py): damaged xz, gzip, bzip2, lz4 (frames and
# legacy) and zstd (with skippable frames) inputs, as files and pipes; an
# "ok" whose target differs from `xz -dc'/`gzip -dc'/`bzip2 -dc'/`lz4 -dc'/
# `zstd -dc' fails.  RINGCOPY_FUZZ_DECODE_SECONDS (default 20) bounds it;
# `make fuzz-decoders FUZZ_SECONDS=N FUZZ_SEED=K' runs it longer or replays a seed.
source "$top_srcdir/tests/func/functions.sh"
[ "${RINGCOPY_VALGRIND:-0}" = 1 ] && skip "not under valgrind: test-decode-framing runs the decoders' paths there"
requires python3 -c 1
for t in xz gzip bzip2 lz4 zstd; do
	requires command -v "$t"
done
python3 "$top_srcdir/tests/fuzz/decoders.py" --ringcopy "$RINGCOPY" \
	--work "$tmp/fuzz" --seconds "${RINGCOPY_FUZZ_DECODE_SECONDS:-20}" \
	${RINGCOPY_FUZZ_DECODE_SEED:+--seed "$RINGCOPY_FUZZ_DECODE_SEED"} ||
	fail "a decoder said ok where the format's tool disagrees (inputs in $tmp/fuzz/failures)"
