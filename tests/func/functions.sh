# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers for the functional tests (the nbdkit tests/functions.sh
# habit).  Source it first thing; it gives the test its own temporary
# directory, run directory and, where possible, its own IPC namespace, and
# a cleanup trap that asserts nothing was left behind.

set -u

: "${RINGCOPY:?RINGCOPY must name the built binary}"
: "${top_srcdir:?}"

# Run each test in a private IPC namespace when we may, so that `ipcs'
# sees only this test's objects and `make -j check' is safe.
if [ -z "${RC_IN_IPCNS:-}" ] && unshare --ipc true 2>/dev/null; then
	RC_IN_IPCNS=1 exec unshare --ipc "${BASH:-bash}" "$0" "$@"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rctest.XXXXXX")
export tmp
export RINGCOPY_RUNDIR="$tmp/run"
rc_cleanup_hooks=()
rc_failed=0
bg_pids=()

mkimage() { bash "$top_srcdir/fixtures/mkimage.sh" "$@"; }

# Messages of the test itself go to the log even where a command's stderr
# is redirected around the call that fails.
exec 3>&2

fail() {
	echo "FAIL: $*" >&3
	rc_failed=1
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

requires() {
	"$@" >/dev/null 2>&1 || skip "requires: $*"
}

on_exit() { rc_cleanup_hooks+=("$1"); }

# The consumer processes of an invocation started in the background as
# `ringcopy ... &' (the shell function runs in a subshell: its child is
# the tool, and the tool's children are the consumers and, for a moment,
# the intermediate that forks the producer).  wait_consumers INV N waits
# until N children have lived through two polls and prints their pids.
consumer_pids() {
	local main
	main=$(pgrep -P "$1" | head -n 1)
	[ -n "$main" ] && pgrep -P "$main" | sort
}
wait_consumers() {
	local i a b
	for (( i = 0; i < $(slow 10) * 10; i++ )); do
		a=$(consumer_pids "$1")
		sleep 0.2
		b=$(consumer_pids "$1")
		if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$(wc -l <<< "$a")" -ge "$2" ]; then
			echo "$a"
			return 0
		fi
	done
	return 1
}

# Loop devices: root and a working losetup, or skip.  loop_attach FILE
# [losetup options] prints the device and detaches it at exit, whatever
# happens (recorded in a file: it runs in a command substitution).
requires_loop() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for loop devices"
	command -v losetup >/dev/null || skip "no losetup"
	[ -e /dev/loop-control ] || skip "no loop device support"
	truncate -s 1M "$tmp/.probe"
	local d
	d=$(losetup -f --show "$tmp/.probe" 2>/dev/null) || skip "losetup does not work here"
	losetup -d "$d"
	rm -f "$tmp/.probe"
}
loop_attach() {
	local f=$1 d
	shift
	d=$(losetup -f --show "$@" "$f") || fail "losetup $f"
	echo "$d" >> "$tmp/.loops"
	echo "$d"
}

# The tool, under valgrind in `make check-valgrind'.  Every process it
# forks (consumers, the producer) writes its own log; cleanup reads them.
ringcopy() {
	if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then
		"${VALGRIND:-valgrind}" --quiet --trace-children=yes \
			--error-exitcode=99 --leak-check=full \
			--errors-for-leak-kinds=definite \
			--show-leak-kinds=definite \
			--suppressions="$top_srcdir/tests/valgrind.supp" \
			--log-file="$tmp/vg.%p.log" "$RINGCOPY" "$@"
	else
		"$RINGCOPY" "$@"
	fi
}

# Wait until a ring of this test exists (a copy started in the background
# has registered), or fail.
wait_ring() {
	local i
	for (( i = 0; i < $(slow 10) * 20; i++ )); do
		[ -n "$(ls -A "$RINGCOPY_RUNDIR" 2>/dev/null)" ] && return 0
		sleep 0.05
	done
	fail "no ring appeared"
}

# How long a run may take: valgrind is ~20 times slower.
slow() {
	if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then echo $(( $1 * 20 )); else echo "$1"; fi
}

# plain_only: false under make check-valgrind.  For a part of a test that
# runs no code that another part, or another test, does not already run
# under valgrind (each use says which): the suite must stay well under 15
# minutes, and valgrind is what its time goes to.
plain_only() { [ "${RINGCOPY_VALGRIND:-0}" != 1 ]; }

# A --rate for a copy that must still run when another starts: the second
# under valgrind is slow to start.  vrate NORMAL VALGRIND
vrate() {
	if [ "${RINGCOPY_VALGRIND:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi
}

# Wait until every ring of this test has been torn down: no rendezvous
# file left (producers remove theirs after the IPC objects).
wait_rings_gone() {
	local i limit
	limit=$(( $(slow 10) * 10 ))
	for (( i = 0; i < limit; i++ )); do
		if [ -z "$(ls -A "$RINGCOPY_RUNDIR" 2>/dev/null)" ]; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

ipc_objects() {
	# Our own objects only: the namespace is private when we have one.
	ipcs -m | awk -v u="$(id -un)" '$3 == u { print "shm " $2 }'
	ipcs -s | awk -v u="$(id -un)" '$3 == u { print "sem " $2 }'
}

kill_tree() {
	local c
	for c in $(pgrep -P "$1"); do kill_tree "$c"; done
	kill -CONT "$1" 2>/dev/null
	kill -TERM "$1" 2>/dev/null
}

rc_exit_trap() {
	local status=$? h pid log leftover
	set +e
	for h in "${rc_cleanup_hooks[@]}"; do eval "$h"; done
	# Background invocations and everything they forked, stopped or not.
	for pid in "${bg_pids[@]}"; do kill_tree "$pid"; done
	wait_rings_gone
	if [ -f "$tmp/.loops" ]; then
		for dev in $(tac "$tmp/.loops"); do
			umount "$dev" 2>/dev/null
			grep -q "^$dev" /proc/mounts && umount -l "$dev" 2>/dev/null
			losetup -d "$dev" 2>/dev/null
		done
		for dev in $(cat "$tmp/.loops"); do
			if losetup "$dev" 2>/dev/null | grep -q "$tmp"; then
				echo "FAIL: loop device $dev left attached" >&2
				status=1
			fi
		done
	fi
	if ! wait_rings_gone; then
		echo "FAIL: rendezvous files left behind:" >&2
		ls -l "$RINGCOPY_RUNDIR" >&2
		status=1
	fi
	if [ -n "${RC_IN_IPCNS:-}" ]; then
		# A removed segment lives on while a process still exits
		# (slowly, under valgrind) with it mapped.
		for (( i = 0; i < $(slow 5) * 10; i++ )); do
			[ -z "$(ipc_objects)" ] && break
			sleep 0.1
		done
		leftover=$(ipc_objects)
		if [ -n "$leftover" ]; then
			echo "FAIL: IPC objects left behind: $leftover" >&2
			ipcs >&2
			status=1
			# Remove them so nothing leaks past the test.
			ipcrm -a 2>/dev/null
		fi
	fi
	# Valgrind logs: wait for each traced process of ours (the pid may
	# have been reused by then) to finish writing.  With --quiet, any
	# output at all is an error report.
	for log in "$tmp"/vg.*.log; do
		[ -e "$log" ] || continue
		pid=${log##*/vg.}; pid=${pid%.log}
		for (( i = 0; i < 300; i++ )); do
			grep -qa -- "$tmp" "/proc/$pid/cmdline" 2>/dev/null || break
			sleep 0.1
		done
		# libblkid's CD-ROM ioctls draw a warning, not an error, and
		# so does LOOP_GET_STATUS64 (its buffer is zeroed first).
		if grep -v -e 'unhandled ioctl 0x5395' -e 'unhandled ioctl 0x4c05' \
			-e 'could cause spurious value errors' \
			-e 'README_MISSING_SYSCALL_OR_IOCTL' "$log" | grep -q .; then
			echo "FAIL: valgrind found errors in process $pid:" >&2
			cat "$log" >&2
			status=1
		fi
	done
	if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
		echo "test directory kept: $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap rc_exit_trap EXIT
trap 'exit 130' INT TERM

# Assertions.
expect_status() {
	# expect_status N cmd...: run cmd, require exit status N.
	local want=$1 got
	shift
	"$@"
	got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}

same() { cmp "$1" "$2" || fail "$2 differs from $1"; }

# ring_of SUFFIX: from one `status --json', the ring whose consumers
# include the target named ...SUFFIX (literally: dots and slashes are
# plain characters): sets ring_pid (its producer) and ring_done (that
# consumer's blocks_done); false where there is none.  Bash only, no
# process but the status itself: a loaded machine forks slowly.
ring_of() {
	local all line
	ring_pid= ring_done=
	all=$("$RINGCOPY" status --json 2> /dev/null) || return 1
	all=${all//\"source\": /$'\n'}
	while IFS= read -r line; do
		[[ $line =~ \"target\":\ \"[^\"]*"$1"\",\ [^}]*\"blocks_done\":\ ([0-9]+) ]] ||
			continue
		ring_done=${BASH_REMATCH[1]}
		[[ $line =~ \"producer_pid\":\ ([0-9]+) ]] || continue
		ring_pid=${BASH_REMATCH[1]}
		return 0
	done <<< "$all"
	return 1
}

# stop_at_block SUFFIX N: wait until the consumer of the target whose name
# ends with SUFFIX has done N blocks, then stop its ring's producer
# (SIGSTOP: the copy cannot end meanwhile) and print the producer's pid
# (the caller continues it, and registers that with on_exit: this runs in
# a command substitution).
# Made, not hoped for (issue 27): once the ring has been seen, its
# producer is stopped while each poll looks and runs only between polls,
# so a poll slowed by a loaded machine slows the copy with it and can
# never miss block N, however short the copy.  The budget counts the
# producer's running time (the sleeps): 20 s, as before.
# Cheap on purpose (no python in the loop): tests run side by side.
# Nor is it left stopped holding a ring's LOCK (a joiner would wait 10 s
# for it and fail; under valgrind the producer holds it long enough to be
# caught): where the test has its own IPC namespace, a LOCK at 0 means
# "continue it and look again".
rings_unlocked() {
	local id v
	[ -n "${RC_IN_IPCNS:-}" ] || return 0
	for id in $(ipcs -s 2> /dev/null | awk '$2 ~ /^[0-9]+$/ { print $2 }'); do
		v=$(ipcs -s -i "$id" 2> /dev/null | awk '$1 == "0" && NF == 5 { print $2; exit }')
		[ "${v:-1}" != 0 ] || return 1
	done
}
# The consumer is not stopped: it takes what the producer published
# before the stop, and on a loaded machine a producer whose rate was due
# while it was stopped publishes several blocks at once.  So while the
# consumer's count still rises the producer stays stopped and the next
# poll comes at once: it runs again only once the consumer has taken all
# it was given.  A copy whose remaining blocks all fit in the ring can
# still end meanwhile: give such a test more blocks than ring slots.
stop_at_block() {
	local i pid= last=
	for (( i = 0; i < $(slow 20) * 5; i++ )); do
		if [ -n "$pid" ]; then
			kill -STOP "$pid" 2> /dev/null || return 1
			if ring_of "$1" && [ "$ring_pid" = "$pid" ]; then
				if [ "$ring_done" -ge "$2" ] && rings_unlocked; then
					echo "$pid"
					return 0
				fi
				if [ "$ring_done" != "$last" ]; then
					last=$ring_done
					sleep 0.05
					continue
				fi
			fi
			kill -CONT "$pid"
		elif ring_of "$1"; then
			# Seen: from now on it is stopped while we look.
			pid=$ring_pid
			continue
		fi
		sleep 0.2
	done
	[ -n "$pid" ] && kill -CONT "$pid" 2> /dev/null
	return 1
}

# nbdkit_reads PIDFILE STATSFILE: end an nbdkit started with --filter=stats
# and print "OPS BYTES" of its reads, from the stats it writes as it ends
# ("read: 25 ops, 0.04 s, 24.00 MiB, ...": bytes to 0.01 of the unit).
nbdkit_reads() {
	local i
	kill "$(cat "$1")"
	for (( i = 0; i < 50; i++ )); do [ -s "$2" ] && break; sleep 0.1; done
	awk '$1 == "read:" { u = $7; sub(/,$/, "", u)
		m = u == "B" ? 1 : u == "KiB" ? 1024 : u == "MiB" ? 1048576 : u == "GiB" ? 1073741824 : -1
		if (m > 0) printf "%d %d\n", $2, $6 * m }' "$2"
}

# wait_said FILE PATTERN: until FILE holds PATTERN (a message of a
# command in the background), or fail.
wait_said() {
	local i
	for (( i = 0; i < $(slow 10) * 20; i++ )); do
		grep -q -- "$2" "$1" 2> /dev/null && return 0
		sleep 0.05
	done
	fail "never said '$2': $(cat "$1" 2> /dev/null)"
}

# held_join SUFFIX N ERR CMD...: a late joiner at a join point made, not
# waited for (issue 27): once the consumer of the target named ...SUFFIX
# has N blocks its producer is stopped, CMD (a ringcopy that joins) starts
# with its standard error in ERR, and the producer goes on once CMD has
# said where it joins (or ended).  A loaded machine can neither let the
# first copy end first nor make the joiner join at block 0.  Returns
# CMD's status; its standard output is the caller's.
held_join() {
	local suffix=$1 n=$2 err=$3 producer pid i st=0
	shift 3
	producer=$(stop_at_block "$suffix" "$n") ||
		fail "the copy to ...$suffix did not reach block $n"
	on_exit "kill -CONT $producer 2>/dev/null"
	"$@" 2> "$err" &
	pid=$!
	for (( i = 0; i < $(slow 10) * 20; i++ )); do
		grep -q "joined\|starts with the next pass\|refused" "$err" 2> /dev/null && break
		kill -0 "$pid" 2> /dev/null || break
		sleep 0.05
	done
	kill -CONT "$producer"
	wait "$pid" || st=$?
	return "$st"
}

# Refusal tests: keep FILE... records a copy of each file; expect_refused
# PATTERN ARGS... runs ringcopy ARGS, wants exit 2 with PATTERN on standard
# error, and every kept file byte for byte as it was.
kept=()
keep() {
	local f
	for f; do
		cp "$f" "$f.kept"
		kept+=("$f")
	done
}
expect_refused() {
	local pat=$1 f
	shift
	expect_status 2 ringcopy "$@" 2> "$tmp/err"
	grep -q -- "$pat" "$tmp/err" || fail "'$*': no '$pat' in: $(cat "$tmp/err")"
	for f in "${kept[@]}"; do
		same "$f.kept" "$f"
	done
}

json_get() {
	# json_get FILE EXPR: a python expression over the parsed object `j'.
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# mount_private DEV DIR: mount DEV on DIR in a mount namespace of its own,
# held by a background process ($holder): a namespace someone else makes
# meanwhile (`ip netns exec' makes one) gets no copy of the mount, so the
# loop device is free again once the holder has exited.  in_mount runs a
# command in that namespace; unmount_private ends it.
mount_private() {
	rm -f "$tmp/.mounted"
	unshare -m --propagation private bash -c \
		'mount -o noinit_itable "$1" "$2" && : > "$3" && exec sleep 600' _ "$1" "$2" "$tmp/.mounted" &
	holder=$!
	bg_pids+=($holder)
	local i
	for (( i = 0; i < 100; i++ )); do
		[ -e "$tmp/.mounted" ] && return 0
		kill -0 "$holder" 2> /dev/null || return 1
		sleep 0.05
	done
	return 1
}
in_mount() { nsenter -t "$holder" -m "$@"; }
unmount_private() { kill "$holder"; wait "$holder" 2> /dev/null; }

# blkio_cgroup NAME: a cgroup v1 blkio group of the test's own ($cg, under
# $cgroot; skip where there is none), emptied and removed at exit.
blkio_cgroup() {
	cgroot=/sys/fs/cgroup/blkio
	[ -w "$cgroot" ] || skip "needs cgroup v1 blkio (/sys/fs/cgroup/blkio)"
	cg=$cgroot/rctest-$1.$$
	mkdir "$cg" || skip "cannot make a blkio cgroup"
	on_exit "for p in \$(cat $cg/cgroup.procs 2>/dev/null); do echo \$p > $cgroot/cgroup.procs; done; rmdir $cg"
}
