#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The shared-memory header validation and the manifest parser under
# libFuzzer (ASan + UBSan) for a bounded time.
source "$top_srcdir/tests/func/functions.sh"
[ "${RINGCOPY_VALGRIND:-0}" = 1 ] && skip "fuzzing under valgrind makes no sense: make check runs it"
bash "$top_srcdir/tests/fuzz/run.sh" "${RINGCOPY_FUZZ_SECONDS:-10}" "$tmp"
status=$?
[ "$status" -eq 77 ] && skip "no libFuzzer"
[ "$status" -eq 0 ] || fail "the fuzzers failed"
