#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Usage errors: exit 2, one line naming what is wrong, nothing written.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 64K
check() {
	# check PATTERN args...
	local pat=$1
	shift
	expect_status 2 ringcopy "$@" 2> "$tmp/err"
	grep -q -- "$pat" "$tmp/err" || fail "'$*': no '$pat' in: $(cat "$tmp/err")"
	[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "'$*': more than one line"
	[ ! -e "$tmp/t.img" ] || fail "'$*' created its target"
}
check "missing SOURCE"
check "missing TARGET" "$tmp/src.img"
check "block-size '3K'" -b 3K "$tmp/src.img" "$tmp/t.img"
check "block-size '128M'" -b 128M "$tmp/src.img" "$tmp/t.img"
check "block-size '2K'" --block-size 2K "$tmp/src.img" "$tmp/t.img"
check "block-size 'lots'" -b lots "$tmp/src.img" "$tmp/t.img"
check "buffer 'x'" --buffer x "$tmp/src.img" "$tmp/t.img"
check "smaller than one block" --buffer 4K "$tmp/src.img" "$tmp/t.img"
check "rate '0'" --rate 0 "$tmp/src.img" "$tmp/t.img"
check "rate '99999999999999999999'" --rate 99999999999999999999 "$tmp/src.img" "$tmp/t.img"
check "unknown option '--frobnicate'" --frobnicate "$tmp/src.img" "$tmp/t.img"
check "needs a value" "$tmp/src.img" "$tmp/t.img" --rate
check "stall-timeout '-1'" --stall-timeout -1 "$tmp/src.img" "$tmp/t.img"
check "stall-timeout '99999'" --stall-timeout 99999 "$tmp/src.img" "$tmp/t.img"
check "compress-level '0'" --compress-level 0 "$tmp/src.img" "$tmp/t.img"
check "compress-level '20'" --compress-level 20 "$tmp/src.img" "$tmp/t.img"
check "linger '1x'" --linger 1x "$tmp/src.img" "$tmp/t.img"
check "linger ' 5'" --linger " 5" "$tmp/src.img" "$tmp/t.img"
check "size 'lots'" --size lots "$tmp/src.img" "$tmp/t.img"
check "progress='xml'" --progress=xml "$tmp/src.img" "$tmp/t.img"

expect_status 0 ringcopy --help > "$tmp/help"
grep -q "Usage:" "$tmp/help" || fail "help"
expect_status 0 ringcopy --version > "$tmp/ver"
grep -q "^ringcopy [0-9]" "$tmp/ver" || fail "version"

# Descriptors and memory for what was asked, checked before anything is
# written (40 targets under `ulimit -n 64' used to be truncated first).
mkimage "$tmp/fd.img" 64K
targets=()
for i in $(seq 40); do targets+=("$tmp/fd$i.img"); done
( ulimit -n 64; "$RINGCOPY" "$tmp/fd.img" "${targets[@]}" ) 2> "$tmp/err"
[ $? -eq 2 ] || fail "40 targets under ulimit -n 64: $(cat "$tmp/err")"
grep -q "40 targets need about [0-9]* open files, the limit is 64" "$tmp/err" || fail "$(cat "$tmp/err")"
[ ! -e "$tmp/fd1.img" ] || fail "a target was created"
avail=$(( $(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) * 1024 ))
truncate -s $(( avail * 2 )) "$tmp/huge.img"
expect_status 2 ringcopy --buffer $(( avail * 2 )) -b 64M "$tmp/huge.img" null: 2> "$tmp/err"
grep -q "would not fit in the [0-9]* bytes of memory available" "$tmp/err" || fail "$(cat "$tmp/err")"
