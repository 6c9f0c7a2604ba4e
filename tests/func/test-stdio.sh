#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Standard input as the source, standard output as a target; a pipe is
# read once, so a late joiner on it is refused.
source "$top_srcdir/tests/func/functions.sh"

mb=1048576
mkimage "$tmp/src.img" $((5 * mb + 7))
cat "$tmp/src.img" | ringcopy --size $((5 * mb + 7)) - "$tmp/a.img" "$tmp/b.img" 2> "$tmp/err" ||
	fail "stdin: $(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/b.img"
# Without --size a pipe is read to its end (test-stream has the rest).
cat "$tmp/src.img" | ringcopy - "$tmp/c.img" 2> "$tmp/err"
[ "${PIPESTATUS[1]}" -eq 0 ] || fail "pipe without --size: $(cat "$tmp/err")"
grep -q "it is a pipe, whose size nobody knows in advance: read to its end" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/c.img"
# A regular file on standard input knows its size.
expect_status 0 ringcopy -q - "$tmp/d.img" < "$tmp/src.img"
same "$tmp/src.img" "$tmp/d.img"

# Standard output, with human output on standard error.
ringcopy "$tmp/src.img" - "$tmp/e.img" > "$tmp/stdout.img" 2> "$tmp/err" ||
	fail "stdout: $(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/stdout.img"
grep -q "^ok .* -  " "$tmp/err" || fail "no status line for -: $(cat "$tmp/err")"
expect_status 2 ringcopy --json "$tmp/src.img" - 2> "$tmp/err" > /dev/null
grep -q "both want standard output" "$tmp/err" || fail "$(cat "$tmp/err")"

# A late joiner on a FIFO is refused: its earlier blocks are gone.
mkfifo "$tmp/fifo"
ringcopy --rate 2M --size $((5 * mb + 7)) "$tmp/fifo" "$tmp/f1.img" 2> "$tmp/f1.err" &
bg_pids+=($!)
cat "$tmp/src.img" > "$tmp/fifo" &
bg_pids+=($!)
# Held at block 1 meanwhile (stop_at_block), not found by wait_consumers:
# a loaded machine could end the copy first (issue 27).
producer=$(stop_at_block f1.img 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
expect_status 2 ringcopy --size $((5 * mb + 7)) "$tmp/fifo" "$tmp/f2.img" 2> "$tmp/err"
kill -CONT "$producer"
grep -q "the source is read once (a pipe, or standard input) and another copy is reading it" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
[ ! -e "$tmp/f2.img" ] || fail "the refused joiner wrote its target"
wait "${bg_pids[0]}" || fail "the FIFO copy: $(cat "$tmp/f1.err")"
same "$tmp/src.img" "$tmp/f1.img"

# Standard output on a terminal is refused as a target, as zstd refuses
# it: exit 2, one line saying why, and not a byte of the image on it.
python3 - "$RINGCOPY" "$tmp/src.img" "$tmp/tty-other.img" > "$tmp/tty.out" <<'PY' || fail "pty: $(cat "$tmp/tty.out")"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], sys.argv[3], "-"])
out = b""
while True:
    try:
        b = os.read(fd, 65536)
    except OSError:
        break
    if not b:
        break
    out += b
_, st = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(st), "bytes", len(out))
sys.stdout.write(out.decode(errors="replace"))
PY
grep -q "^exit 2 bytes [0-9][0-9]\?[0-9]\? *$" "$tmp/tty.out" || fail "terminal: $(head -c 300 "$tmp/tty.out")"
grep -q "target - refused: standard output is a terminal, and the image is binary: redirect it to a file or a pipe" "$tmp/tty.out" ||
	fail "terminal: $(head -c 300 "$tmp/tty.out")"
[ ! -e "$tmp/tty-other.img" ] || fail "a refused copy created its other target"
