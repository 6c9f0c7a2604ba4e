#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# --skip-equal: each block is read from the target first and written only
# where it differs; verification then runs as usual.  A target holding an
# older image gets only the changed blocks; an interrupted copy resumes
# writing only what is missing (plus block 0, which is written last); a
# late joiner does the same; a target that cannot be read is written whole.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((8 * mb))

# 1. Three blocks changed (and a zero block where the image has data).
cp "$tmp/src.img" "$tmp/t.img"
for b in 1 5 7; do
	printf 'changed' | dd of="$tmp/t.img" bs=1 seek=$((b * mb + 4096)) conv=notrunc status=none
done
expect_status 0 ringcopy --skip-equal --json "$tmp/src.img" "$tmp/t.img" > "$tmp/1.json" 2> "$tmp/1.err"
same "$tmp/src.img" "$tmp/t.img"
python3 - "$tmp/1.json" <<'PY' || fail "3 changed blocks: $(cat "$tmp/1.json")"
import json, sys
t = json.load(open(sys.argv[1]))["targets"][0]
mb = 1048576
assert t["status"] == "ok" and t["verified"] is True, t
assert t["bytes_skipped_equal"] >= 8 * mb - 3 * mb, t
assert t["bytes_written"] <= 3 * mb, t
assert t["bytes_written"] + t["bytes_skipped_equal"] == 8 * mb, t
PY
grep -q "bytes equal, not written" "$tmp/1.err" || fail "$(cat "$tmp/1.err")"

# 2. Interrupted at about half, then resumed: the hint says how, and the
# second run writes no more than what was missing plus block 0.
rate=$(vrate 2M 512K)
ringcopy --json --rate "$rate" "$tmp/src.img" "$tmp/r.img" > "$tmp/2a.json" 2> "$tmp/2a.err" &
bg_pids+=($!)
# At block 4, the producer is stopped (so the copy cannot end first), the
# invocation interrupted, and the producer continued.
producer=$(stop_at_block r.img 4) || fail "the copy did not reach block 4"
on_exit "kill -CONT $producer 2>/dev/null"
inv=$(pgrep -P "${bg_pids[0]}" | head -n 1)
[ -n "$inv" ] || fail "no invocation to interrupt"
kill -INT "$inv"
sleep 0.5
kill -CONT "$producer"
st=0
wait "${bg_pids[0]}" || st=$?
bg_pids=()
[ "$st" = 1 ] || fail "interrupted: exit $st, want 1: $(cat "$tmp/2a.err")"
grep -q "run the same command with --skip-equal" "$tmp/2a.err" || fail "no resume hint: $(cat "$tmp/2a.err")"
expect_status 0 ringcopy --skip-equal --json "$tmp/src.img" "$tmp/r.img" > "$tmp/2b.json" 2> /dev/null
same "$tmp/src.img" "$tmp/r.img"
python3 - "$tmp/2a.json" "$tmp/2b.json" <<'PY' || fail "resume: $(cat "$tmp/2a.json" "$tmp/2b.json")"
import json, sys
a = json.load(open(sys.argv[1]))["targets"][0]
b = json.load(open(sys.argv[2]))["targets"][0]
mb = 1048576
image = 8 * mb
assert a["status"] == "failed", a
# What the first run wrote before the interruption (block 0 is held back
# to the end, so it is missing too).
missing = image - a["bytes_written"] + mb
assert b["bytes_written"] <= missing, (a, b)
assert b["bytes_skipped_equal"] >= image - missing, (a, b)
assert b["verified"] is True, b
PY

# 3. A late joiner with --skip-equal onto an older copy: it starts in the
# middle, wraps, and writes only the two blocks that differ.
cp "$tmp/src.img" "$tmp/j.img"
for b in 2 6; do
	printf 'older' | dd of="$tmp/j.img" bs=1 seek=$((b * mb)) conv=notrunc status=none
done
ringcopy --rate "$(vrate 1M 512K)" "$tmp/src.img" "$tmp/a.img" 2> "$tmp/3a.err" &
bg_pids+=($!)
expect_status 0 held_join a.img 1 "$tmp/3.err" ringcopy --skip-equal --json "$tmp/src.img" "$tmp/j.img" > "$tmp/3.json"
grep -q "joined the running copy" "$tmp/3.err" || fail "did not join: $(cat "$tmp/3.err")"
same "$tmp/src.img" "$tmp/j.img"
json_get "$tmp/3.json" 'j["targets"][0]["bytes_written"] <= 2 * 1048576 and j["targets"][0]["start_block"] > 0' |
	grep -qx True || fail "joiner: $(cat "$tmp/3.json")"
wait "${bg_pids[0]}" || fail "the first copy: $(cat "$tmp/3a.err")"
same "$tmp/src.img" "$tmp/a.img"
bg_pids=()

# 4. A target that cannot be read first is written whole, with a note.
expect_status 0 ringcopy --skip-equal "$tmp/src.img" null: 2> "$tmp/4.err"
grep -q "target null: cannot be read before it is written: --skip-equal writes every block" "$tmp/4.err" ||
	fail "$(cat "$tmp/4.err")"

# 5. A disk (read O_DIRECT before writing), when loop devices work.
if [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ] && command -v losetup > /dev/null; then
	cp "$tmp/src.img" "$tmp/disk"
	printf 'x' | dd of="$tmp/disk" bs=1 seek=$((3 * mb)) conv=notrunc status=none
	dev=$(loop_attach "$tmp/disk")
	expect_status 0 ringcopy --skip-equal --json "$tmp/src.img" "$dev" > "$tmp/5.json" 2> "$tmp/5.err"
	cmp "$tmp/src.img" "$dev" || fail "$dev differs"
	json_get "$tmp/5.json" 'j["targets"][0]["bytes_written"]' | grep -qx $mb ||
		fail "disk: $(cat "$tmp/5.json")"
fi
