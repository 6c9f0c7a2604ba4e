#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Read-back verification, digests and manifests: every complete copy of an
# image has the same digest, in every target, joiner and run; `ringcopy
# verify' finds a flipped bit by its offset.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((6 * mb + 100))
expect_status 0 ringcopy --json --manifest "$tmp/m.txt" "$tmp/src.img" \
	"$tmp/a.img" "$tmp/b.img" > "$tmp/1.json" 2> "$tmp/1.err"
same "$tmp/src.img" "$tmp/a.img"
d1=$(json_get "$tmp/1.json" 'j["targets"][0]["digest"]')
[ "${#d1}" -eq 32 ] || fail "digest '$d1'"
json_get "$tmp/1.json" 'all(t["verified"] and t["digest"] == "'$d1'" and t["verify_method"] in ("direct", "fadvise") for t in j["targets"])' |
	grep -qx True || fail "targets not verified alike: $(cat "$tmp/1.json")"
grep -q "verified $d1" "$tmp/1.err" || fail "digest not on the status line"
grep -qx "digest $d1" "$tmp/m.txt" || fail "manifest digest differs"
head -n 1 "$tmp/m.txt" | grep -qx "ringcopy-manifest 1" || fail "manifest tag"

# The same digest on another run, at another block size it differs.
expect_status 0 ringcopy --json "$tmp/src.img" "$tmp/c.img" > "$tmp/2.json" 2>/dev/null
[ "$(json_get "$tmp/2.json" 'j["targets"][0]["digest"]')" = "$d1" ] || fail "run 2 digest"

# A late joiner (other start block) ends with the same digest.
mkimage "$tmp/big.img" 16M 3
ringcopy --json --rate 4M "$tmp/big.img" "$tmp/e.img" > "$tmp/e.json" 2>/dev/null &
bg_pids+=($!)
expect_status 0 held_join e.img 1 "$tmp/f.err" ringcopy --json "$tmp/big.img" "$tmp/f.img" > "$tmp/f.json"
wait "${bg_pids[0]}" || fail "first copy of big.img"
[ "$(json_get "$tmp/f.json" 'j["targets"][0]["start_block"]')" -gt 0 ] || fail "no join"
[ "$(json_get "$tmp/e.json" 'j["targets"][0]["digest"]')" = \
  "$(json_get "$tmp/f.json" 'j["targets"][0]["digest"]')" ] || fail "joiner digest"

# verify: clean targets pass, a flipped bit is found at its block.
expect_status 0 ringcopy verify "$tmp/m.txt" "$tmp/a.img" "$tmp/b.img" 2> "$tmp/v.err"
[ "$(grep -c "^ok .*digest $d1" "$tmp/v.err")" -eq 2 ] || fail "verify: $(cat "$tmp/v.err")"
printf '\x5a' | dd of="$tmp/b.img" bs=1 seek=$((4 * mb + 17)) conv=notrunc 2>/dev/null
expect_status 3 ringcopy verify "$tmp/m.txt" "$tmp/a.img" "$tmp/b.img" 2> "$tmp/v.err"
grep -q "^MISMATCH $tmp/b.img  1 bad block at offset $((4 * mb))$" "$tmp/v.err" ||
	fail "verify mismatch: $(cat "$tmp/v.err")"
grep -q "^ok .*a.img" "$tmp/v.err" || fail "a.img should still pass"
# The tail block too.
truncate -s $((6 * mb)) "$tmp/a.img"
expect_status 3 ringcopy verify "$tmp/m.txt" "$tmp/a.img" 2> "$tmp/v.err"
grep -q "offset $((6 * mb))" "$tmp/v.err" || fail "short target: $(cat "$tmp/v.err")"

# Zero runs are compressed and still verify.
head -c $((3 * mb)) /dev/zero > "$tmp/z.img"
mkimage "$tmp/part.img" $mb 5
cat "$tmp/part.img" >> "$tmp/z.img"
expect_status 0 ringcopy -q --manifest "$tmp/z.txt" "$tmp/z.img" "$tmp/z2.img"
grep -qx "zeros 0 2" "$tmp/z.txt" || fail "no zero run: $(cat "$tmp/z.txt")"
expect_status 0 ringcopy verify -q "$tmp/z.txt" "$tmp/z2.img"
