#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Kernel limits too small for the ring: a message naming the sysctl to
# raise and exit 2 (nothing was written), never a hang.  The limits are those of the test's own
# IPC namespace, so lowering them touches nothing else.
source "$top_srcdir/tests/func/functions.sh"
[ -n "${RC_IN_IPCNS:-}" ] || skip "needs a private IPC namespace to lower the limits"
[ -w /proc/sys/kernel/shmmax ] || skip "cannot set IPC sysctls here"

mkimage "$tmp/src.img" 8M
limited() {
	local pat=$1
	shift
	timeout "$(slow 10)" "$BASH" -c "$(declare -f ringcopy); ringcopy \"\$@\"" _ "$@" 2> "$tmp/err"
	local s=$?
	[ "$s" -eq 2 ] || fail "'$*' exited $s: $(cat "$tmp/err")"
	grep -q -- "$pat" "$tmp/err" || fail "no '$pat' in: $(cat "$tmp/err")"
	[ ! -e "$tmp/t.img" ] || fail "the target was written"
}
saved_shm=$(cat /proc/sys/kernel/shmmax)
echo 1048576 > /proc/sys/kernel/shmmax
limited "kernel.shmmax allows 1048576: raise kernel.shmmax or use a smaller --buffer" \
	"$tmp/src.img" "$tmp/t.img"
echo "$saved_shm" > /proc/sys/kernel/shmmax

saved_all=$(cat /proc/sys/kernel/shmall)
echo 16 > /proc/sys/kernel/shmall
limited "kernel.shmall allows 16 in all" "$tmp/src.img" "$tmp/t.img"
echo "$saved_all" > /proc/sys/kernel/shmall

saved_sem=$(cat /proc/sys/kernel/sem)
read -r msl mns opm mni <<< "$saved_sem"
echo "$msl $mns 4 $mni" > /proc/sys/kernel/sem
limited "kernel.sem allows 3 consumers per ring (SEMOPM 4" \
	"$tmp/src.img" "$tmp/t.img" "$tmp/u.img" "$tmp/v.img" "$tmp/w.img"
# A full consumer table: 3 entries, all taken by a running copy (its
# producer stopped: it cannot end meanwhile); a joiner is refused, and
# --dry-run predicts it with the same words.
ringcopy --rate 1M "$tmp/src.img" "$tmp/f1" "$tmp/f2" "$tmp/f3" 2> /dev/null &
bg_pids+=($!)
producer=$(stop_at_block f1 1) || fail "the copy to three targets did not start"
on_exit "kill -CONT $producer 2>/dev/null"
limited "it has room for 0 more consumers, 1 asked (capacity 3)" --dry-run "$tmp/src.img" "$tmp/t.img"
cp "$tmp/err" "$tmp/err.dry"
limited "it has room for 0 more consumers, 1 asked (capacity 3)" "$tmp/src.img" "$tmp/t.img"
diff "$tmp/err.dry" "$tmp/err" || fail "the dry run and the run say different things"
kill -CONT "$producer"
wait "${bg_pids[-1]}" || fail "the copy to three targets"
echo "$msl $mns $opm 0" > /proc/sys/kernel/sem
limited "raise kernel.sem: SEMMNI or SEMMNS" "$tmp/src.img" "$tmp/t.img"
echo "$saved_sem" > /proc/sys/kernel/sem

echo 0 > /proc/sys/kernel/shmmni
limited "raise kernel.shmmni" "$tmp/src.img" "$tmp/t.img"
