#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The run directory is held by its descriptor, not by its path: another
# user who may rename entries in a parent of it cannot make root create
# files in a directory of their choosing.
#  - under a parent that user may write (not sticky), the run directory is
#    refused (exit 2, naming it and the parent) while that user swaps it
#    for a symlink to a victim directory as fast as they can; nothing is
#    ever created in the victim (watched with inotify, not looked at after);
#  - under a sticky parent (as /tmp), that user's symlink planted where the
#    run directory is to be made is refused, and a run directory of root's
#    own there is used; the victim stays empty all the same;
#  - a parent another user owns is refused.
source "$top_srcdir/tests/func/functions.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root (to be the user attacked)"
requires setpriv --version
requires python3 -c 'import ctypes; ctypes.CDLL(None).inotify_init1'
id nobody > /dev/null 2>&1 || skip "no user nobody"
# A python3 the other user may run (not one under root's home).
pyn=$(command -v /usr/bin/python3 || command -v python3)
nobody=$(id -u nobody)
as_nobody() { setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups "$@"; }
# The other user must reach the directories below.
chmod 0711 "$tmp"
as_nobody "$pyn" -c "import os, sys; sys.exit(not os.access(\"$tmp\", os.X_OK))" || skip "nobody cannot run $pyn or reach $tmp"

mkimage "$tmp/src.img" 64K 3
mkdir -m 0755 "$tmp/victim"

# watch DIR LOG: record every name created in or moved into DIR until
# killed; prints nothing until it watches.
python3 - "$tmp/victim" "$tmp/victim.log" <<'PY' &
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
IN_CREATE, IN_MOVED_TO = 0x100, 0x80
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_CREATE | IN_MOVED_TO) < 0:
    sys.exit(3)
log = open(sys.argv[2], "a", buffering=1)
log.write("watching\n")
while True:
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        wd, mask, cookie, n = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace")
        log.write("created %s\n" % name)
        i += 16 + n
PY
watcher=$!
bg_pids+=($watcher)
for (( i = 0; i < 100; i++ )); do
	grep -q watching "$tmp/victim.log" 2>/dev/null && break
	sleep 0.05
done
grep -q watching "$tmp/victim.log" || skip "inotify does not work here"

# attacker DIR: as nobody, swap DIR/run for a symlink to the victim and
# back, as fast as possible, until killed.
attacker() {
	as_nobody "$pyn" - "$1" "$tmp/victim" <<'PY'
import os, sys
d, victim = sys.argv[1], sys.argv[2]
run, old = os.path.join(d, "run"), os.path.join(d, "run.old")
while True:
    for f in (lambda: os.rename(run, old),
              lambda: os.symlink(victim, run),
              lambda: os.unlink(run),
              lambda: os.rename(old, run)):
        try:
            f()
        except OSError:
            pass
PY
}

# copies N DIR: N copies with DIR/run as the run directory; their exit
# statuses, one a line, in $tmp/status.
copies() {
	local k
	: > "$tmp/status"
	for (( k = 0; k < $1; k++ )); do
		RINGCOPY_RUNDIR="$2/run" ringcopy "$tmp/src.img" "$tmp/out.img" \
			2>> "$tmp/copies.err"
		echo $? >> "$tmp/status"
	done
}

# A parent nobody may write, not sticky: the run directory in it was made
# by root, and nobody swaps it for a symlink while root copies.
mkdir -m 0777 "$tmp/shared"
chmod 0777 "$tmp/shared"
mkdir -m 0700 "$tmp/shared/run"
attacker "$tmp/shared" &
bg_pids+=($!)
copies 40 "$tmp/shared"
kill_tree "${bg_pids[-1]}"
grep -v '^2$' "$tmp/status" && fail "a copy under a parent nobody may write was not refused: $(cat "$tmp/copies.err")"
grep -q "run directory $tmp/shared/run refused: its parent $tmp/shared (mode 0777) is writable by other users, who could swap the run directory for a symlink" "$tmp/copies.err" ||
	fail "no refusal naming the parent: $(cat "$tmp/copies.err")"
[ ! -e "$tmp/out.img" ] || fail "a refused copy wrote its target"

# A sticky parent: nobody plants a symlink where root's run directory is
# to be made, and removes it, over and over.
mkdir -m 1777 "$tmp/sticky"
chmod 1777 "$tmp/sticky"
: > "$tmp/copies.err"
as_nobody "$pyn" - "$tmp/sticky/run" "$tmp/victim" <<'PY' &
import os, sys
run, victim = sys.argv[1], sys.argv[2]
while True:
    for f in (lambda: os.symlink(victim, run), lambda: os.unlink(run)):
        try:
            f()
        except OSError:
            pass
PY
bg_pids+=($!)
copies 40 "$tmp/sticky"
kill_tree "${bg_pids[-1]}"
grep -v '^[02]$' "$tmp/status" && fail "a copy under a sticky parent failed: $(cat "$tmp/copies.err")"
grep -v "refused: it is not a directory (a symlink?)" "$tmp/copies.err" | grep "run directory" &&
	fail "an unexpected run directory message: $(cat "$tmp/copies.err")"
# Once root's own run directory is there, nobody cannot move it.
[ -L "$tmp/sticky/run" ] && as_nobody rm "$tmp/sticky/run"
RINGCOPY_RUNDIR="$tmp/sticky/run" expect_status 0 ringcopy "$tmp/src.img" "$tmp/out.img" 2> /dev/null
as_nobody mv "$tmp/sticky/run" "$tmp/sticky/moved" 2> /dev/null &&
	fail "nobody moved root's run directory out of a sticky parent"

# A parent another user owns: refused, whatever its mode.
mkdir -m 0755 "$tmp/theirs"
chown nobody "$tmp/theirs"
mkdir -m 0700 "$tmp/theirs/run"
RINGCOPY_RUNDIR="$tmp/theirs/run" expect_status 2 ringcopy "$tmp/src.img" "$tmp/other.img" 2> "$tmp/err"
grep -q "run directory $tmp/theirs/run refused: its parent $tmp/theirs is owned by uid $nobody, another user" "$tmp/err" ||
	fail "a parent of another user's: $(cat "$tmp/err")"
[ ! -e "$tmp/other.img" ] || fail "a refused copy wrote its target"

# A symlink of theirs in a directory of theirs, naming a directory of
# root's: the path as given is checked before it is resolved (found in
# review: resolving first made root create its run directory in the
# victim).
mkdir -m 0755 "$tmp/bobhome"
ln -s "$tmp/victim" "$tmp/bobhome/link"
chown -h nobody "$tmp/bobhome" "$tmp/bobhome/link"
RINGCOPY_RUNDIR="$tmp/bobhome/link/run" expect_status 2 ringcopy "$tmp/src.img" "$tmp/link.img" 2> "$tmp/err"
grep -q "run directory $tmp/bobhome/link/run refused: its parent $tmp/bobhome is owned by uid $nobody, another user" "$tmp/err" ||
	fail "a symlink of another user's in the path: $(cat "$tmp/err")"

# Nothing was ever created in the victim.  (A pause on purpose, for the
# watcher's last events: a loaded machine can only make this check miss a
# file, never fail a right run.)
sleep 0.2
kill "$watcher"
grep created "$tmp/victim.log" && fail "files were created in the victim directory: $(cat "$tmp/victim.log")"
[ -z "$(ls -A "$tmp/victim")" ] || fail "the victim directory is not empty"
exit 0
