#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A target is checked by its name, then opened by its name: what is
# opened must be what was checked.  A directory on the target's path is
# renamed and a symlink to the source's directory put in its place while
# the open is held back (strace delays it): the copy is refused, exit 2,
# and the source is unchanged (found in review: the previous build wrote
# the source onto itself and said "ok").  And descriptors 0, 1 and 2
# closed at start: a source opened into one of them was read as empty by
# the producer, whose 0-2 point at /dev/null, and zeros were "ok".
source "$top_srcdir/tests/func/functions.sh"

mkimage "$tmp/src.img" $((2 * 1048576))
for fd in 0 1 2; do
	rm -f "$tmp/c$fd.img"
	case $fd in
	0) ringcopy -q "$tmp/src.img" "$tmp/c0.img" <&- ;;
	1) ringcopy -q "$tmp/src.img" "$tmp/c1.img" >&- ;;
	2) ringcopy -q "$tmp/src.img" "$tmp/c2.img" 2>&- ;;
	esac
	[ $? -eq 0 ] || fail "descriptor $fd closed: the copy failed"
	same "$tmp/src.img" "$tmp/c$fd.img"
done
# With standard output closed, a report to it is lost: exit 1, said.
expect_status 1 ringcopy --json "$tmp/src.img" "$tmp/c3.img" >&- 2> "$tmp/err"
grep -q "write error on standard output: it is closed" "$tmp/err" || fail "$(cat "$tmp/err")"

requires strace -V
mkdir -p "$tmp/evil/d" "$tmp/srcd"
cp "$tmp/src.img" "$tmp/srcd/a.img"
truncate -s 2M "$tmp/evil/d/a.img"
cp "$tmp/srcd/a.img" "$tmp/src.kept"
strace -f -o /dev/null -e inject=openat:delay_enter=$(slow 2)000000 -P "$tmp/evil/d/a.img" \
	"$RINGCOPY" "$tmp/srcd/a.img" "$tmp/evil/d/a.img" > "$tmp/out" 2>&1 &
pid=$!
bg_pids+=($pid)
# Swap once the name has been checked: the delayed open is under way
# when strace has stopped the process in openat of that name.
for (( i = 0; i < $(slow 10) * 20; i++ )); do
	grep -q . /proc/$pid/task/*/syscall 2> /dev/null || true
	for t in $(pgrep -P "$pid") ; do
		[ "$(awk '{print $1}' /proc/$t/syscall 2> /dev/null)" = 257 ] && break 2
	done
	sleep 0.05
done
mv "$tmp/evil/d" "$tmp/evil/d.old"
ln -s "$tmp/srcd" "$tmp/evil/d"
wait "$pid"
rc=$?
bg_pids=()
[ "$rc" -eq 2 ] || fail "exit $rc: $(cat "$tmp/out")"
grep -q "target $tmp/evil/d/a.img refused: it was replaced while it was checked" "$tmp/out" ||
	fail "$(cat "$tmp/out")"
same "$tmp/src.kept" "$tmp/srcd/a.img"
exit 0
