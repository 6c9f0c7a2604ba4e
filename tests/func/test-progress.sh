#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Progress: JSON lines that parse and only grow, plain lines off a
# terminal with --progress, redrawn lines on a terminal, nothing with -q.
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" 6M
ringcopy --progress=json --rate 2M "$tmp/src.img" "$tmp/a.img" "$tmp/b.img" \
	> "$tmp/p.jsonl" 2> "$tmp/err" || fail "copy: $(cat "$tmp/err")"
python3 - "$tmp/p.jsonl" "$tmp/a.img" "$tmp/b.img" <<'PY' || fail "JSON lines: $(head "$tmp/p.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = set(sys.argv[2:])
assert {r["target"] for r in rows} == names, rows
for t in names:
    mine = [r for r in rows if r["target"] == t]
    assert len(mine) >= 3, mine          # about one a second for 3 s
    for a, b in zip(mine, mine[1:]):
        assert b["time"] >= a["time"] and b["bytes_written"] >= a["bytes_written"], (a, b)
        assert b["bytes_verified"] >= a["bytes_verified"], (a, b)
        # The percentage is of the phase shown: the copy's, then the
        # read-back's (a loaded machine draws a frame while reading back).
        if a["state"] == b["state"]:
            assert b["percent"] >= a["percent"], (a, b)
    last = mine[-1]
    assert last["bytes_written"] == last["image_bytes"] == 6 * 2**20, last
    assert last["bytes_verified"] == 6 * 2**20, last
    assert last["percent"] == 100.0 and last["state"] == "done", last
    for r in mine:
        assert set(r) >= {"time", "state", "bytes_written", "bytes_verified",
                          "image_bytes", "percent", "rate", "eta", "pass",
                          "lag_blocks"}, r
        # The ETA is the rest of the image (written, or read back) at the
        # rate shown; no rate and no ETA once a target neither copies nor
        # reads back.
        done = {"copying": r["bytes_written"],
                "verifying": r["bytes_verified"]}.get(r["state"])
        if done is not None and r["rate"] > 0:
            want = (r["image_bytes"] - done) / r["rate"]
            assert abs(r["eta"] - want) <= 0.1 + want * 0.01, r
        else:
            assert r["eta"] == -1, r
        if done is None:
            assert r["rate"] == 0, r
    # A copy capped at 2 MiB/s never shows more than the cap lets land
    # in a second (three 1 MiB blocks, counting the first one at once).
    # (--rate caps the copy, not the read-back.)
    assert all(r["rate"] <= 3 * 2**20 for r in mine
               if r["state"] == "copying"), mine
    assert any(r["rate"] > 0 for r in mine if r["state"] == "copying"), mine
PY

# Plain lines every two seconds off a terminal.
ringcopy --progress --rate 2M "$tmp/src.img" "$tmp/c.img" 2> "$tmp/err" > /dev/null ||
	fail "plain: $(cat "$tmp/err")"
[ "$(grep -c "^copying .*%.*/c.img$\|^done .*/c.img$" "$tmp/err")" -ge 2 ] ||
	fail "plain progress lines: $(cat "$tmp/err")"

# -q: nothing at all.
expect_status 0 ringcopy -q --progress "$tmp/src.img" "$tmp/d.img" 2> "$tmp/err"
[ ! -s "$tmp/err" ] || fail "-q printed: $(cat "$tmp/err")"

# On a terminal: redrawn in place (cursor up, erase line).
if command -v script >/dev/null; then
	script -qec "$RINGCOPY --rate 4M $tmp/src.img $tmp/e.img" "$tmp/tty.log" > /dev/null 2>&1 ||
		fail "under a terminal"
	grep -q $'\033\\[K' "$tmp/tty.log" || fail "no in-place redraw"
	grep -q "copying" "$tmp/tty.log" || fail "no progress on the terminal"
	grep -q "ok  *.*e.img  6291456 bytes" "$tmp/tty.log" || fail "no summary on the terminal"
	same "$tmp/src.img" "$tmp/e.img"
fi
