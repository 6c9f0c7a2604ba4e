#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A malformed manifest is refused with exit 2 and its line number.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 300K
expect_status 0 ringcopy -q -b 64K --manifest "$tmp/m.txt" "$tmp/src.img" "$tmp/t.img"
bad() {
	# bad LINE PATTERN: the edited manifest in $tmp/b.txt is refused.
	expect_status 2 ringcopy verify "$tmp/b.txt" "$tmp/t.img" 2> "$tmp/err"
	grep -q "b.txt:$1: .*$2" "$tmp/err" || fail "line $1 '$2': $(cat "$tmp/err")"
}
sed 's/^ringcopy-manifest 1$/ringcopy-manifest 9/' "$tmp/m.txt" > "$tmp/b.txt"
bad 1 "unsupported manifest version '9'"
sed '7,$d' "$tmp/m.txt" > "$tmp/b.txt"
bad 7 "truncated"
sed '$d' "$tmp/m.txt" > "$tmp/b.txt"
bad "$(wc -l < "$tmp/m.txt")" "no 'end' line"
sed 's/^image-size .*/image-size 999999999/' "$tmp/m.txt" > "$tmp/b.txt"
bad 4 "does not match image-size"
sed 's/^image-size .*/image-size lots/' "$tmp/m.txt" > "$tmp/b.txt"
bad 2 "want 'image-size BYTES'"
sed '6s/.*/block 0 zzzz/' "$tmp/m.txt" > "$tmp/b.txt"
bad 6 "want 16 hex digits"
sed '7s/^block 1 /block 3 /' "$tmp/m.txt" > "$tmp/b.txt"
bad 7 "out of order"
{ head -n 6 "$tmp/m.txt"; echo "garbage here"; tail -n +7 "$tmp/m.txt"; } > "$tmp/b.txt"
bad 7 "unknown line 'garbage here'"
head -c 100 /dev/urandom > "$tmp/b.txt"
bad 1 ""
# A block hash edited: the digest line no longer matches.
sed '6s/ \(.\)/ f/' "$tmp/m.txt" | sed '6s/ f\(.*\)/ 0\1/' > "$tmp/b.txt"
cmp -s "$tmp/m.txt" "$tmp/b.txt" || {
	expect_status 2 ringcopy verify "$tmp/b.txt" "$tmp/t.img" 2> "$tmp/err"
	grep -q "does not match its block hashes" "$tmp/err" || fail "digest check: $(cat "$tmp/err")"
}
expect_status 2 ringcopy verify "$tmp/missing.txt" "$tmp/t.img" 2> "$tmp/err"
grep -q "No such file" "$tmp/err" || fail "missing manifest"
expect_status 2 ringcopy verify "$tmp/m.txt"

# Memory follows what is verified: a 130-byte manifest that describes 256
# GiB as one run of zeros (67108864 blocks: 512 MiB of hashes) is not
# expanded to check an 8 MiB target; the target is a mismatch, exit 3, in
# well under 100 MiB.  The same manifest is refused by --expect against a
# source of 8 MiB before its blocks are read.
mkimage "$tmp/small.img" $((8 * 1048576))
printf 'ringcopy-manifest 1\nimage-size 274877906944\nblock-size 4096\nblocks 67108864\ndigest %032d\nzeros 0 67108863\nend\n' 0 \
	> "$tmp/huge.mf"
python3 - "$RINGCOPY" "$tmp/huge.mf" "$tmp/small.img" "$tmp/err" <<'PY' || fail "verify of a huge manifest: $(cat "$tmp/err")"
import resource, subprocess, sys
exe, mf, target, err = sys.argv[1:]
with open(err, "w") as e:
    r = subprocess.run([exe, "verify", mf, target], stderr=e)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB
assert r.returncode == 3, f"exit {r.returncode}"
assert peak < 100 * 1024, f"peak {peak} KiB"
print(f"verify of a 256 GiB manifest against 8 MiB: peak {peak} KiB")
PY
grep -q "^MISMATCH .*small.img  it ends at offset 8388608, the image has 274877906944 bytes" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
python3 - "$RINGCOPY" "$tmp/huge.mf" "$tmp/small.img" "$tmp/err" <<'PY' || fail "--expect with a huge manifest: $(cat "$tmp/err")"
import resource, subprocess, sys
exe, mf, src, err = sys.argv[1:]
with open(err, "w") as e:
    r = subprocess.run([exe, "--expect", mf, src, "null:"], stderr=e)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
assert r.returncode == 2, f"exit {r.returncode}"
assert peak < 100 * 1024, f"peak {peak} KiB"
PY
grep -q "source .*small.img refused: it holds 8388608 bytes, the manifest .* describes an image of 274877906944 bytes" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
