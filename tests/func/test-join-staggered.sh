#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Three invocations at staggered times on one source: one producer, three
# identical targets, start blocks in the order of arrival.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 24M
ringcopy --json --rate "$(vrate 4M 2M)" --buffer 4M "$tmp/src.img" "$tmp/a.img" \
	> "$tmp/a.json" 2> "$tmp/a.err" &
pa=$!
bg_pids+=("$pa")
# The arrivals are staged, not timed: b joins while the producer is held
# at a's block 1, c while it is held at b's block 2 (so c starts after
# b), whatever the machine's load.
producer=$(stop_at_block a.img 1) || fail "a did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
ringcopy --json "$tmp/src.img" "$tmp/b.img" > "$tmp/b.json" 2> "$tmp/b.err" &
pb=$!
bg_pids+=("$pb")
wait_said "$tmp/b.err" "joined the running copy"
kill -CONT "$producer"
producer=$(stop_at_block b.img 2) || fail "b did not reach block 2"
on_exit "kill -CONT $producer 2>/dev/null"
ringcopy --json "$tmp/src.img" "$tmp/c1.img" "$tmp/c2.img" \
	> "$tmp/c.json" 2> "$tmp/c.err" &
pc=$!
bg_pids+=("$pc")
wait_said "$tmp/c.err" "joined the running copy"
kill -CONT "$producer"
wait "$pa" || fail "a: $(cat "$tmp/a.err")"
wait "$pb" || fail "b: $(cat "$tmp/b.err")"
wait "$pc" || fail "c: $(cat "$tmp/c.err")"
for t in a b c1 c2; do
	same "$tmp/src.img" "$tmp/$t.img"
done
sa=$(json_get "$tmp/a.json" 'j["targets"][0]["start_block"]')
sb=$(json_get "$tmp/b.json" 'j["targets"][0]["start_block"]')
sc=$(json_get "$tmp/c.json" 'j["targets"][0]["start_block"]')
sc2=$(json_get "$tmp/c.json" 'j["targets"][1]["start_block"]')
[ "$sa" -eq 0 ] && [ "$sb" -gt 0 ] && [ "$sc" -gt "$sb" ] ||
	fail "start blocks $sa $sb $sc"
[ "$sc" -eq "$sc2" ] || fail "one invocation, two start blocks: $sc $sc2"
# The last one out read the image once plus the wrap to c's start.
read_c=$(json_get "$tmp/c.json" 'j["source_bytes_read"]')
[ "$read_c" -le $(( (24 + sc + 4) * 1048576 )) ] || fail "read $read_c"
