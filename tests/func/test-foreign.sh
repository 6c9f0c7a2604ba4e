#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Foreign and hostile state is never attached to: objects of another user,
# objects of ours with a garbage header, a planted rendezvous symlink, a run
# directory that is a symlink or open to others.
source "$top_srcdir/tests/func/functions.sh"
[ -n "${RC_IN_IPCNS:-}" ] || skip "needs a private IPC namespace"
requires ipcmk --version

mkimage "$tmp/src.img" 2M
mkdir -m 0700 "$RINGCOPY_RUNDIR"
name=$(printf 'file-%x-%x' "$(stat -c %d "$tmp/src.img")" "$(stat -c %i "$tmp/src.img")")

# IPC objects pre-created by another user, named in our rendezvous file.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	shm=$(setpriv --reuid=nobody --regid=nogroup --clear-groups ipcmk -M 1048576 -p 0600 | awk '{print $NF}')
	sem=$(setpriv --reuid=nobody --regid=nogroup --clear-groups ipcmk -S 9 -p 0600 | awk '{print $NF}')
	[ -n "$shm" ] && [ -n "$sem" ] || fail "ipcmk as nobody"
	printf 'ringcopy-rendezvous 1 %s %s\n' "$shm" "$sem" > "$RINGCOPY_RUNDIR/$name"
	chmod 0600 "$RINGCOPY_RUNDIR/$name"
	expect_status 0 ringcopy "$tmp/src.img" "$tmp/a.img" 2> "$tmp/err"
	grep -q "not joining: shared memory $shm is not ours" "$tmp/err" || fail "$(cat "$tmp/err")"
	same "$tmp/src.img" "$tmp/a.img"
	ipcs -m -i "$shm" >/dev/null 2>&1 || fail "the foreign segment was removed"
	ipcrm -m "$shm" -s "$sem"
fi

# Objects of ours with a garbage header.
shm=$(ipcmk -M 1048576 -p 0600 | awk '{print $NF}')
sem=$(ipcmk -S 9 -p 0600 | awk '{print $NF}')
printf 'ringcopy-rendezvous 1 %s %s\n' "$shm" "$sem" > "$RINGCOPY_RUNDIR/$name"
# Open to others, it is refused outright...
chmod 0644 "$RINGCOPY_RUNDIR/$name"
expect_status 2 ringcopy "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err"
grep -q "rendezvous file .* refused: not a private regular file" "$tmp/err" || fail "$(cat "$tmp/err")"
[ ! -e "$tmp/b.img" ] || fail "wrote the target"
# ... and private, its objects are validated and found wanting.
chmod 0600 "$RINGCOPY_RUNDIR/$name"
expect_status 0 ringcopy "$tmp/src.img" "$tmp/b.img" 2> "$tmp/err"
grep -q "not joining: shared memory $shm is not a valid ring: bad magic" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/b.img"
ipcrm -m "$shm" -s "$sem"

# A planted rendezvous symlink.
echo "precious" > "$tmp/precious"
ln -s "$tmp/precious" "$RINGCOPY_RUNDIR/$name"
expect_status 2 ringcopy "$tmp/src.img" "$tmp/c.img" 2> "$tmp/err"
grep -q "rendezvous file .*$name: .*(a symlink: refused)" "$tmp/err" || fail "$(cat "$tmp/err")"
[ "$(cat "$tmp/precious")" = precious ] || fail "followed the symlink"
[ ! -e "$tmp/c.img" ] || fail "wrote the target"
rm "$RINGCOPY_RUNDIR/$name"

# A run directory that is a symlink, or open to others.
mkdir -m 0700 "$tmp/elsewhere"
RINGCOPY_RUNDIR_SAVED=$RINGCOPY_RUNDIR
ln -s "$tmp/elsewhere" "$tmp/linkdir"
RINGCOPY_RUNDIR="$tmp/linkdir" expect_status 2 ringcopy "$tmp/src.img" "$tmp/d.img" 2> "$tmp/err"
grep -q "run directory .* refused: it is not a directory (a symlink?)" "$tmp/err" || fail "$(cat "$tmp/err")"
mkdir -m 0755 "$tmp/open"
chmod 0755 "$tmp/open"
RINGCOPY_RUNDIR="$tmp/open" expect_status 2 ringcopy "$tmp/src.img" "$tmp/d.img" 2> "$tmp/err"
grep -q "run directory .* refused: owned by uid .* with mode 755" "$tmp/err" || fail "$(cat "$tmp/err")"
[ ! -e "$tmp/d.img" ] || fail "wrote the target"
