#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A consumer killed with SIGKILL: its target is reported failed, the other
# target finishes, the invocation exits 1, and the ring is cleaned up.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 12M
# 6 s at 2M/s: a loaded machine's status polls still find it mid-copy
# (at 4M/s, with a load average of 16, the copy ended before the first
# poll saw a block done, and the victim had finished).
ringcopy --json --rate "$(vrate 2M 1M)" --buffer 2M "$tmp/src.img" "$tmp/a.img" "$tmp/b.img" \
	> "$tmp/out.json" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
# Mid-copy for sure: the producer is held while the victim is found and
# killed.
producer=$(stop_at_block a.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
victim=$(wait_consumers "$inv" 2 | tail -n 1)
[ -n "$victim" ] || fail "no consumers found"
kill -KILL "$victim"
kill -CONT "$producer"
wait "$inv"
status=$?
[ "$status" -eq 1 ] || fail "exit $status, expected 1: $(cat "$tmp/err")"
python3 - "$tmp/out.json" <<'PY' || fail "json: $(cat "$tmp/out.json")"
import json, sys
t = json.load(open(sys.argv[1]))["targets"]
st = sorted(x["status"] for x in t)
assert st == ["failed", "ok"], t
bad = [x for x in t if x["status"] == "failed"][0]
assert "signal 9" in bad["error"], bad
PY
ok=$(json_get "$tmp/out.json" '[x["target"] for x in j["targets"] if x["status"] == "ok"][0]')
same "$tmp/src.img" "$ok"
grep -q "^FAILED" "$tmp/err" || fail "no FAILED line"
