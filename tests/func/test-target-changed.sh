#!/bin/bash
# A target changed while it is copied, after the blocks concerned were
# written (and, on the previous build, read back behind the copy), is not
# reported verified: 16 bytes overwritten in place, or the file truncated.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((8 * mb))
rate=$(vrate 1M 512K)

# Wait until the consumer of target $1 has done at least $2 blocks, then
# stop the producer (SIGSTOP) so that the copy cannot end before the
# target is changed; its pid goes to $tmp/producer.
wait_done() {
	local i n
	for i in $(seq 1 $(slow 300)); do
		n=$("$RINGCOPY" status --json 2> /dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
done = [(c["blocks_done"], r["producer_pid"]) for r in j["rings"]
        for c in r["consumers"] if c["target"].endswith(sys.argv[1])]
print("%d %d" % max(done) if done else "0 0")' "$1")
		if [ "${n%% *}" -ge "$2" ]; then
			kill -STOP "${n##* }" || fail "cannot stop the producer"
			echo "${n##* }" > "$tmp/producer"
			return 0
		fi
		sleep 0.1
	done
	fail "the copy to $1 did not reach block $2"
}
on_exit 'kill -CONT $(cat "$tmp/producer" 2>/dev/null) 2>/dev/null'
resume() { kill -CONT "$(cat "$tmp/producer")"; }

# 1. 16 bytes of block 1 overwritten once it is written.
ringcopy --json --rate "$rate" "$tmp/src.img" "$tmp/t1.img" > "$tmp/1.json" 2> "$tmp/1.err" &
bg_pids+=($!)
wait_done t1.img 2
printf 'SIXTEEN BYTES!!!' | dd of="$tmp/t1.img" bs=1 seek=$((mb + 100)) conv=notrunc status=none
resume
st=0
wait "${bg_pids[0]}" || st=$?
[ "$st" = 3 ] || fail "overwritten in place: exit $st, want 3: $(cat "$tmp/1.err")"
grep -q "^MISMATCH .*t1.img.*1 bad block at offset $mb" "$tmp/1.err" || fail "$(cat "$tmp/1.err")"
json_get "$tmp/1.json" 'j["targets"][0]["verified"]' | grep -qx False || fail "reported verified"
bg_pids=()

# 2. Truncated to one block once block 1 is written: the later writes extend
# it again, over a hole where block 1 was.
ringcopy --rate "$rate" "$tmp/src.img" "$tmp/t2.img" 2> "$tmp/2.err" &
bg_pids+=($!)
wait_done t2.img 2
truncate -s $mb "$tmp/t2.img"
resume
st=0
wait "${bg_pids[0]}" || st=$?
[ "$st" = 3 ] || fail "truncated: exit $st, want 3: $(cat "$tmp/2.err")"
grep -q "^MISMATCH .*t2.img" "$tmp/2.err" || fail "$(cat "$tmp/2.err")"
