#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# chaos.sh - a chaos test of the built ringcopy binary.
#
#   RINGCOPY=path/to/ringcopy chaos.sh [--rounds N] [--seed S] [--start K]
#                                      [--max-mib M] [--max-secs T] [-v]
#
# (RINGCOPY defaults to ../../ringcopy from here; -v prints each round's
# timeline, which is also in the round's log.)
#
# Each round makes a random source (tiny, odd-sized, block-aligned, sparse,
# half zeros; up to M MiB, default 40), starts a first invocation with 2-4
# targets and a --rate that makes the copy last 1-T seconds (default 4),
# starts 1-3 late joiners of random kinds (file, .zst, standard output,
# NBD) at random moments, and sends ONE random signal (KILL, TERM, INT, or
# STOP then CONT 0.5-3 s later) to a random victim: an invocation, a
# consumer, the producer, or nobody (a control round).
#
# Invariants, checked every round:
#   (a) every target reported ok is byte-identical to the source, and an
#       invocation that exits 0 reported every one of its targets ok;
#   (b) within 10 s of the last invocation's exit no ringcopy process of
#       ours, no SysV object and no rendezvous file is left;
#   (c) no invocation lives longer than 60 s;
#   (d) an invocation whose consumer was sent KILL, TERM or INT exits
#       non-zero; the consumers of an invocation sent KILL are gone within
#       2 s (they must not go on copying for nobody);
#   (e) every invocation that was not hit (neither it nor one of its
#       consumers got KILL/TERM/INT) exits 0, unless the producer was
#       killed: a stopped and continued process, or TERM/INT to the
#       producer (which ignores INT and only ends a linger on TERM), must
#       not fail anyone.
#
# The test runs in its own IPC namespace (it re-executes itself under
# `unshare --ipc'; exit 77 when that is not allowed), with its own temporary
# directory, RINGCOPY_RUNDIR and a copy of the binary (so a rebuild during
# the run changes nothing; and every process running that copy in our
# namespace is ours).  Every round reseeds $RANDOM from the seed and the
# round number: `--seed S --start K --rounds 1' replays the choices of
# round K (the timing differs, of course).  A round with a violation keeps
# its directory.  The last line is
#   chaos: N rounds, V violations (seed S)
# and the exit status is 1 when V > 0 (77: cannot run here, 2: usage,
# 99: the test could not set itself up).
# CHAOS_VICTIM=none|inv|consumer|producer and CHAOS_SIGNAL=KILL|TERM|INT|STOP
# force the victim or the signal of every round (to chase one case).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"	# `$(SHELL) chaos.sh' with sh
set -u
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	echo "usage: RINGCOPY=BINARY ${0##*/} [--rounds N] [--seed S] [--start K] [--max-mib M] [--max-secs T] [-v]"
}

rounds=20 seed= start=1 max_mib=40 max_secs=4 verbose=0
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	-h|--help) usage; exit 0 ;;
	-v|--verbose) verbose=1; shift; continue ;;
	--*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
	--*)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		val=$2
		shift 2
		;;
	*) echo "chaos.sh: unexpected argument '$opt'" >&2; usage >&2; exit 2 ;;
	esac
	[[ $val =~ ^[0-9]+$ ]] || { echo "chaos.sh: $opt wants a number, not '$val'" >&2; exit 2; }
	case $opt in
	--rounds) rounds=$val ;;
	--seed) seed=$val ;;
	--start) start=$val ;;
	--max-mib) max_mib=$val ;;
	--max-secs) max_secs=$val ;;
	*) echo "chaos.sh: unknown option '$opt'" >&2; usage >&2; exit 2 ;;
	esac
done
[ "$max_secs" -ge 1 ] || max_secs=1
[ -n "$seed" ] || seed=$(( $(date +%s%N) / 1000 % 1000000000 ))
seed=$(( 10#$seed ))

: "${RINGCOPY:=$here/../../ringcopy}"
if [ ! -x "$RINGCOPY" ] || [ -d "$RINGCOPY" ]; then
	echo "chaos.sh: RINGCOPY=$RINGCOPY is not an executable (build it, or set RINGCOPY)" >&2
	exit 2
fi
RINGCOPY=$(cd "$(dirname "$RINGCOPY")" && pwd)/$(basename "$RINGCOPY")
export RINGCOPY

# Our own IPC namespace, so that ipcs sees only our objects and nothing
# here can touch anybody else's.
myns=$(readlink /proc/self/ns/ipc)
if [ "${RC_CHAOS_PARENT_NS:-}" = "" ] || [ "${RC_CHAOS_PARENT_NS}" = "$myns" ]; then
	if [ -n "${RC_CHAOS_PARENT_NS:-}" ] || ! unshare --ipc true 2>/dev/null; then
		echo "SKIP: chaos: cannot create an IPC namespace (unshare --ipc)"
		exit 77
	fi
	RC_CHAOS_PARENT_NS=$myns exec unshare --ipc "${BASH:-bash}" "$0" \
		--rounds "$rounds" --seed "$seed" --start "$start" \
		--max-mib "$max_mib" --max-secs "$max_secs" $([ "$verbose" = 0 ] || echo -v)
fi

for tool in cmp ipcs ipcrm pgrep ps truncate dd du; do
	command -v "$tool" >/dev/null || { echo "SKIP: chaos: needs $tool"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rcchaos.XXXXXX") || exit 99
export RINGCOPY_RUNDIR=$tmp/run
mkdir "$tmp/bin"
cp "$RINGCOPY" "$tmp/bin/ringcopy" || exit 99
RC=$tmp/bin/ringcopy
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

have_openssl=0
command -v openssl >/dev/null && have_openssl=1
have_jq=0
command -v jq >/dev/null && have_jq=1
have_zstd=0
command -v zstd >/dev/null && have_zstd=1
have_nbd=0
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null &&
	! "$RC" nbd+unix:///?socket=/nonexistent "$tmp/probe" 2>&1 | grep -q "built without libnbd"; then
	have_nbd=1
fi
rm -f "$tmp/probe"
if { [ "$have_openssl" = 0 ] || [ "$have_jq" = 0 ]; } && ! command -v python3 >/dev/null; then
	echo "SKIP: chaos: needs python3 (or openssl and jq)"
	exit 77
fi

violations=0
kept_rounds=()
nbd_pids=()
inv_pid=() inv_wrap=()
cont_pid= cont_start=

# ---------------------------------------------------------------------------
# Small helpers.  Random draws happen only in the main shell: a subshell
# reseeds $RANDOM, so a draw inside $(...) would not be reproducible.

rand() { R=$(( ((RANDOM << 15) | RANDOM) % $1 )); }	# 0 <= R < $1
pick() { rand $#; local i=$(( R + 1 )); P=${!i}; }	# P = one argument
now_ms() { local t=${EPOCHREALTIME/./}; NOW=$(( t / 1000 )); }

# pstat PID: PSTATE and PSTART (start time in ticks) of a live process, or
# empty ones.
pstat() {
	PSTATE= PSTART=
	local line rest f
	read -r line 2>/dev/null < "/proc/$1/stat" || return 1
	rest=${line##*) }
	read -ra f <<< "$rest"
	PSTATE=${f[0]} PSTART=${f[19]}
}
# alive PID START: the same process (not a reused pid), not a zombie.
alive() {
	pstat "$1" || return 1
	[ "$PSTART" = "$2" ] && [ "$PSTATE" != Z ]
}
# Age of a process in ms.
age_ms() {
	local up
	pstat "$1" || { AGE=0; return 1; }
	read -r up _ < /proc/uptime
	up=${up/./}	# hundredths of a second
	AGE=$(( up * 10 - PSTART * 1000 / clk_tck ))
}
# Is PID a process of ours: our copy of the binary, in our IPC namespace?
ours() {
	[ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$RC" ] &&
		[ "$(readlink "/proc/$1/ns/ipc" 2>/dev/null)" = "$myns" ]
}
our_procs() {	# (a zombie is not running: init reaps it when it will)
	local p
	for p in $(pgrep -x ringcopy); do
		pstat "$p" && [ "$PSTATE" != Z ] && ours "$p" && echo "$p"
	done
}
describe_procs() {
	local p
	for p in "$@"; do
		ps -o pid=,ppid=,stat=,etimes=,args= -p "$p" 2>/dev/null | sed 's/^ */    /'
	done
}
ipc_objects() {
	ipcs -m | awk '$2 ~ /^[0-9]+$/ { print "shm " $2 }'
	ipcs -s | awk '$2 ~ /^[0-9]+$/ { print "sem " $2 }'
}
rdv_files() { ls -A "$RINGCOPY_RUNDIR" 2>/dev/null; }

# Stop a process and everything under it (continued first: a stopped
# process does not die of TERM).
kill_tree() {
	local c
	for c in $(pgrep -P "$1"); do kill_tree "$c"; done
	kill -CONT "$1" 2>/dev/null
	kill -KILL "$1" 2>/dev/null
}

log() {
	echo "$*" >> "$rd/log"
	[ "$verbose" = 0 ] || echo "  $*"
}
violation() {
	violations=$(( violations + 1 ))
	round_bad=$(( round_bad + 1 ))
	local m="VIOLATION round $round (seed $seed): $*"
	echo "$m"
	echo "$m" >> "$rd/log"
}

fmt_size() {
	local n=$1
	if [ "$n" -ge 1048576 ] && [ $(( n % 1048576 )) -eq 0 ]; then echo "$(( n / 1048576 ))M"
	elif [ "$n" -ge 1024 ] && [ $(( n % 1024 )) -eq 0 ]; then echo "$(( n / 1024 ))K"
	else echo "$n"; fi
}

# Everything we started, at exit, whatever happened.
cleanup() {
	local status=$? p
	set +e
	trap - EXIT INT TERM
	[ -n "$cont_pid" ] && alive "$cont_pid" "$cont_start" && kill -CONT "$cont_pid" 2>/dev/null
	for p in "${inv_wrap[@]}"; do
		[ -n "$p" ] && kill_tree "$p" 2>/dev/null
	done
	for p in $(our_procs); do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
	for p in "${nbd_pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	# The namespace is ours alone: whatever is left in it is ours.
	ipcrm -a 2>/dev/null
	if [ "$status" -eq 0 ] || [ "$status" -eq 77 ]; then
		rm -rf "$tmp"
	else
		echo "chaos: test directory kept: $tmp" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# The source.  mkdata FILE SIZE SEED: reproducible incompressible bytes
# (AES-CTR of zeros keyed by the seed; fixtures/mkimage.sh without openssl).
mkdata() {
	if [ "$have_openssl" = 1 ]; then
		openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$3")" \
			-iv 00000000000000000000000000000000 < /dev/zero 2>/dev/null |
			head -c "$2" > "$1"
		return
	fi
	bash "$here/../../fixtures/mkimage.sh" "$1" "$2" "$3"
}

make_source() {
	local kind size pieces i off len max=$(( max_mib * 1048576 ))
	[ "$max" -gt 0 ] || max=1
	pick tiny tiny odd odd odd aligned sparse sparse zeros
	kind=$P
	case $kind in
	tiny)
		pick 0 1 511 4095 4096 4097 65535 65537 100001
		size=$P
		;;
	odd)
		rand "$max"; size=$(( R + 1 ))
		if [ $(( size % 4096 )) -eq 0 ]; then rand 4095; size=$(( size + R + 1 )); fi
		;;
	aligned)
		rand $(( max / 1048576 + 1 )); size=$(( (R + 1) * 1048576 ))
		;;
	sparse|zeros)
		rand "$max"; size=$(( R + 65536 ))
		rand 2; [ "$R" -eq 0 ] && size=$(( size / 4096 * 4096 + 4096 ))
		;;
	esac
	src_kind=$kind src_size=$size
	case $kind in
	sparse)
		# truncate + a few pieces of data, one of them maybe at the very end
		truncate -s "$size" "$src"
		rand 5; pieces=$R
		for (( i = 0; i < pieces; i++ )); do
			rand $(( 2 * 1048576 )); len=$(( R + 1 ))
			[ "$len" -le "$size" ] || len=$size
			rand $(( size - len + 1 )); off=$R
			if [ "$i" -eq 0 ]; then rand 2; [ "$R" -eq 0 ] && off=$(( size - len )); fi
			mkdata "$rd/piece" "$len" $(( seed + round * 31 + i ))
			dd if="$rd/piece" of="$src" bs=64K seek="$off" oflag=seek_bytes conv=notrunc status=none
		done
		rm -f "$rd/piece"
		src_kind="sparse($pieces pieces)"
		;;
	zeros)
		# data with runs of zeros: holes are not read, zeros are flagged
		mkdata "$src" "$size" $(( seed + round ))
		rand 4; pieces=$(( R + 1 ))
		for (( i = 0; i < pieces; i++ )); do
			rand $(( size / 2 + 1 )); len=$R
			rand $(( size - len + 1 )); off=$R
			dd if=/dev/zero of="$src" bs=64K seek="$off" count="$len" \
				oflag=seek_bytes iflag=count_bytes conv=notrunc status=none
		done
		;;
	*)
		mkdata "$src" "$size" $(( seed + round ))
		;;
	esac
}

# ---------------------------------------------------------------------------
# Targets.  new_target INV KIND: appends a target to invocation INV.
#   t_kind[j]  file | zst | stdout | nbd
#   t_spec[j]  what ringcopy is given
#   t_path[j]  where its bytes are (file, .zst, captured stdout, NBD URI)
new_target() {
	local i=$1 kind=$2 j=${#t_kind[@]} sock size
	case $kind in
	file)
		t_spec[j]=$rd/t$j.img t_path[j]=$rd/t$j.img
		;;
	zst)
		t_spec[j]=$rd/t$j.img.zst t_path[j]=$rd/t$j.img.zst
		;;
	stdout)
		t_spec[j]=- t_path[j]=$rd/inv$i.out
		;;
	nbd)
		sock=$rd/nbd$j.sock
		size=$(( (src_size + 65535) / 65536 * 65536 ))
		[ "$size" -gt 0 ] || size=65536
		nbdkit -f --exit-with-parent -U "$sock" memory "$size" \
			> /dev/null 2> "$rd/nbdkit$j.log" &
		nbd_pids+=($!)
		t_spec[j]="nbd+unix:///?socket=$sock" t_path[j]=${t_spec[j]}
		t_sock[j]=$sock
		;;
	esac
	t_kind[j]=$kind t_inv[j]=$i
	inv_targets[i]="${inv_targets[i]:-} $j"
}

# Wait for the round's NBD servers to listen.
wait_nbd() {
	local j k
	for j in "${!t_kind[@]}"; do
		[ "${t_kind[j]}" = nbd ] || continue
		for (( k = 0; k < 200; k++ )); do
			[ -S "${t_sock[j]}" ] && break
			sleep 0.025
		done
		[ -S "${t_sock[j]}" ] || { echo "chaos: nbdkit did not start: $(cat "$rd/nbdkit$j.log")" >&2; exit 99; }
	done
}

# Compare a target's bytes with the source: "" when identical, else why not.
compare_target() {
	local j=$1 out
	case ${t_kind[j]} in
	file|stdout)
		out=$(cmp "$src" "${t_path[j]}" 2>&1) ;;
	zst)
		out=$(zstd -q -d -c "${t_path[j]}" 2>&1 >"$rd/unzst" && cmp "$src" "$rd/unzst" 2>&1) ||
			out=${out:-differs}
		rm -f "$rd/unzst"
		;;
	nbd)
		out=$( { nbdcopy "${t_path[j]}" - 2>"$rd/nbdcopy.err" | head -c "$src_size" | cmp "$src" - ; } 2>&1)
		;;
	esac
	CMP=$out
	[ -z "$out" ]
}

# ---------------------------------------------------------------------------
# Invocations.
#   inv_pid inv_start inv_t0 inv_end inv_rc inv_json inv_hit inv_targets
start_inv() {
	local i=$1 j k args=()
	[ "${inv_json[i]}" = 1 ] && args+=(--json)
	args+=("${common[@]}" "$src")
	for j in ${inv_targets[i]}; do args+=("${t_spec[j]}"); done
	# A subshell waits for the invocation and writes its exit status: bash
	# reports no "Killed" of its own then, and nothing depends on its job
	# table.
	(
		"$RC" "${args[@]}" < /dev/null > "$rd/inv$i.out" 2> "$rd/inv$i.err" &
		echo "$!" > "$rd/inv$i.pid"
		wait "$!"
		echo "$?" > "$rd/inv$i.rc"
	) 2> /dev/null &
	inv_wrap[i]=$!
	for (( k = 0; k < 2000; k++ )); do
		[ -s "$rd/inv$i.pid" ] && break
		sleep 0.005
	done
	read -r inv_pid[i] < "$rd/inv$i.pid" || { echo "chaos: could not start ringcopy" >&2; exit 99; }
	pstat "${inv_pid[i]}"
	inv_start[i]=$PSTART
	now_ms
	inv_t0[i]=$NOW
	inv_rc[i]=
	inv_end[i]=
	inv_cmd[i]="${args[*]}"
	log "$(( NOW - t0 )) ms: inv$i pid ${inv_pid[i]}: ringcopy ${args[*]}"
}

# Collect the invocations that have exited.
reap() {
	local i rc
	for i in "${!inv_pid[@]}"; do
		[ -z "${inv_rc[i]}" ] || continue
		[ -s "$rd/inv$i.rc" ] || continue
		read -r rc < "$rd/inv$i.rc" || continue
		wait "${inv_wrap[i]}" 2>/dev/null
		now_ms
		inv_rc[i]=$rc inv_end[i]=$NOW
		log "$(( NOW - t0 )) ms: inv$i exited $rc after $(( NOW - inv_t0[i] )) ms"
	done
}

running_invs() {
	local i
	RUNNING=()
	for i in "${!inv_pid[@]}"; do
		[ -z "${inv_rc[i]}" ] && alive "${inv_pid[i]}" "${inv_start[i]}" && RUNNING+=("$i")
	done
}

# Invariant (c), the continuation of a stopped victim, and the check that
# the consumers of a SIGKILLed invocation are gone 2 s later.
service() {
	local i p left
	reap
	now_ms
	for i in "${!inv_pid[@]}"; do
		if [ -z "${inv_rc[i]}" ] && [ $(( NOW - inv_t0[i] )) -gt 60000 ]; then
			violation "(c) invocation inv$i (pid ${inv_pid[i]}) still running after 60 s, killed: ringcopy ${inv_cmd[i]}"$'\n'"$(describe_procs "${inv_pid[i]}" $(pgrep -P "${inv_pid[i]}"))"
			inv_watchdog[i]=1
			kill_tree "${inv_pid[i]}"
		fi
	done
	if [ -n "$cont_pid" ] && [ "$NOW" -ge "$cont_due" ]; then
		alive "$cont_pid" "$cont_start" && kill -CONT "$cont_pid" 2>/dev/null
		log "$(( NOW - t0 )) ms: CONT to pid $cont_pid"
		cont_pid=
	fi
	if [ -n "$orphan_due" ] && [ "$NOW" -ge "$orphan_due" ]; then
		left=()
		for p in $orphans; do
			alive "${p%:*}" "${p#*:}" && left+=("${p%:*}")
		done
		if [ ${#left[@]} -gt 0 ]; then
			violation "(d) consumers of SIGKILLed invocation inv$orphan_inv still running 2 s after the kill (pids ${left[*]}; targets:$(for j in ${inv_targets[orphan_inv]}; do printf ' %s' "${t_spec[j]}"; done))"$'\n'"$(describe_procs "${left[@]}")"
		fi
		orphan_due=
	fi
}

# Sleep until t0 + MS, servicing meanwhile.
sleep_until() {
	while :; do
		service
		now_ms
		[ "$NOW" -lt $(( t0 + $1 )) ] || return 0
		sleep 0.02
	done
}

# The signal: victim kind sig_victim (none|inv|consumer|producer), signal
# sig_name, the draw sig_pick choosing among the candidates at that moment.
do_signal() {
	local cands=() owner=() i c p n target=
	running_invs
	case $sig_victim in
	inv)
		cands=("${RUNNING[@]}")
		;;
	consumer)
		for i in "${RUNNING[@]}"; do
			for c in $(pgrep -P "${inv_pid[i]}"); do
				# A consumer, not the intermediate that forks the
				# producer and exits at once.
				age_ms "$c" || continue
				[ "$PSTATE" != Z ] && [ "$AGE" -ge 150 ] || continue
				cands+=("$c")
				owner+=("$i")
			done
		done
		;;
	producer)
		for p in $("$RC" status --json 2>/dev/null | grep -o '"producer_pid": [0-9]*' | grep -o '[0-9]*$'); do
			ours "$p" && cands+=("$p")
		done
		;;
	esac
	now_ms
	if [ "$sig_victim" = none ] || [ ${#cands[@]} -eq 0 ]; then
		sig_desc="no signal ($sig_victim: nobody to signal)"
		[ "$sig_victim" = none ] && sig_desc="no signal (control round)"
		log "$(( NOW - t0 )) ms: $sig_desc"
		return
	fi
	n=$(( sig_pick % ${#cands[@]} ))
	case $sig_victim in
	inv)
		i=${cands[n]} p=${inv_pid[i]}
		if [ "$sig_name" = KILL ]; then
			# remember its consumers: they must be gone 2 s later
			orphans=
			for c in $(pgrep -P "$p"); do
				pstat "$c" && orphans+=" $c:$PSTART"
			done
			orphan_inv=$i orphan_due=$(( NOW + 2000 ))
		fi
		inv_hit[i]="invocation:$sig_name"
		sig_desc="SIG$sig_name to invocation inv$i (pid $p)"
		;;
	consumer)
		p=${cands[n]} i=${owner[n]}
		# its target, if it is copying (not starting, not verifying)
		target=$("$RC" status --json 2>/dev/null | grep -o "\"target\": \"[^\"]*\", \"state\": \"copying\", \"pid\": $p\b" | sed 's/^"target": "\([^"]*\)".*/\1/')
		sig_in_ring=0
		[ -n "$target" ] && sig_in_ring=1
		inv_hit[i]="consumer:$sig_name"
		sig_desc="SIG$sig_name to consumer pid $p of inv$i"
		if [ -n "$target" ]; then
			sig_desc+=" (copying target $target)"
		else
			sig_desc+=" (not copying in the ring: starting or finishing)"
		fi
		;;
	producer)
		p=${cands[n]}
		prod_hit=$sig_name
		sig_desc="SIG$sig_name to producer pid $p"
		;;
	esac
	# A victim that has exited (maybe a zombie waiting for its parent)
	# gets nothing: the round is a control round then.
	if ! pstat "$p" || [ "$PSTATE" = Z ] || ! kill -"$sig_name" "$p" 2>/dev/null; then
		sig_desc+=" -- not sent, it had exited"
		inv_hit=() prod_hit= orphans= orphan_due=
		log "$sig_desc"
		return
	fi
	local pst=$PSTART
	if [ "$sig_name" = STOP ]; then
		cont_pid=$p cont_start=$pst cont_due=$(( NOW + cont_after ))
		sig_desc+=", CONT after $cont_after ms"
	fi
	sig_time=$NOW
	sig_desc+=" at $(( NOW - t0 )) ms"
	log "$sig_desc"
}

# Per-target statuses of invocation I from its --json output or its status
# lines: sets st[j] for each of its targets (ok|failed|mismatch|none).
read_statuses() {
	local i=$1 j spec word
	local -A got=()
	if [ "${inv_json[i]}" = 1 ]; then
		while IFS=$'\t' read -r word spec; do
			got[$spec]=$word
		done < <(if [ "$have_jq" = 1 ]; then
			jq -r '.targets[] | "\(.status)\t\(.target)"' "$rd/inv$i.out" 2>/dev/null
		else python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for t in j.get("targets", []):
    print("%s\t%s" % (t.get("status"), t.get("target")))' "$rd/inv$i.out"
		fi)
	else
		while read -r word spec _; do
			case $word in
			ok) got[$spec]=ok ;;
			FAILED) got[$spec]=failed ;;
			MISMATCH) got[$spec]=mismatch ;;
			esac
		done < "$rd/inv$i.err"
	fi
	for j in ${inv_targets[i]}; do
		st[j]=${got[${t_spec[j]}]:-none}
	done
}

# ---------------------------------------------------------------------------
one_round() {
	local i j k n kind bs buf dur_ms rate njoin label t_start
	rd=$tmp/round-$round
	mkdir -p "$rd"
	src=$rd/src.img
	round_bad=0
	RANDOM=$(( seed * 1000003 + round ))
	now_ms
	t_start=$NOW

	t_kind=() t_spec=() t_path=() t_inv=() t_sock=() st=()
	inv_pid=() inv_wrap=() inv_start=() inv_t0=() inv_end=() inv_rc=() inv_json=()
	inv_hit=() inv_targets=() inv_delay=() inv_cmd=() inv_watchdog=()
	nbd_pids=()
	prod_hit= cont_pid= cont_start= cont_due= orphans= orphan_due= orphan_inv=
	sig_in_ring=0 sig_time=0

	make_source
	now_ms
	log "source made in $(( NOW - t_start )) ms"

	# Geometry and pace, the same for every invocation of the round (a
	# joiner with another --block-size is refused, rightly).
	pick 64K 256K 1M
	bs=$P
	common=()
	if [ "$bs" != 1M ] || { rand 2; [ "$R" -eq 0 ]; }; then common+=(-b "$bs"); fi
	case $bs in 64K) k=65536 ;; 256K) k=262144 ;; 1M) k=1048576 ;; esac
	pick "" 2 4 16 64
	if [ -n "$P" ]; then buf=$(( k * P )); common+=(--buffer "$(fmt_size "$buf")"); fi
	rand $(( (max_secs - 1) * 1000 + 1 ))
	dur_ms=$(( 1000 + R ))
	# (holes are not read: pace the data)
	rate=$(( $(du -B1 "$src" | cut -f1) * 1000 / dur_ms ))
	[ "$rate" -le $(( src_size * 1000 / dur_ms )) ] || rate=$(( src_size * 1000 / dur_ms ))
	[ "$rate" -ge 65536 ] || rate=65536
	common+=(--rate "$rate")

	local kinds_first=(file file file file file)
	local kinds_join=(file)
	[ "$have_zstd" = 1 ] && kinds_first+=(zst) kinds_join+=(zst)
	[ "$have_nbd" = 1 ] && kinds_first+=(nbd) kinds_join+=(nbd)
	kinds_first+=(stdout)
	kinds_join+=(stdout)

	# The first invocation: 2-4 targets, at most one of them stdout.
	rand 3; n=$(( R + 2 ))
	local has_stdout=0
	for (( k = 0; k < n; k++ )); do
		pick "${kinds_first[@]}"
		kind=$P
		if [ "$kind" = stdout ]; then
			[ "$has_stdout" = 0 ] || kind=file
			has_stdout=1
		fi
		new_target 1 "$kind"
	done
	rand 2; inv_json[1]=$R
	[ "$has_stdout" = 1 ] && inv_json[1]=0
	inv_delay[1]=0

	# 1-3 late joiners, one target each (sometimes a file beside it).
	rand 3; njoin=$(( R + 1 ))
	for (( i = 2; i <= njoin + 1; i++ )); do
		pick "${kinds_join[@]}"
		kind=$P
		new_target "$i" "$kind"
		rand 5
		[ "$R" -eq 0 ] && new_target "$i" file
		rand 2; inv_json[i]=$R
		[ "$kind" = stdout ] && inv_json[i]=0
		rand $(( dur_ms + 1 )); inv_delay[i]=$(( 100 + R ))
	done

	# The signal.
	pick none inv inv consumer consumer producer producer
	sig_victim=$P
	pick KILL TERM INT STOP
	sig_name=$P
	rand 3000; sig_at=$(( 200 + R * (dur_ms + 800) / 3000 ))
	rand 2501; cont_after=$(( 500 + R ))
	rand 1000000; sig_pick=$R
	# (debugging aids: force the victim or the signal; the draws above
	# still happen, so the rest of the round is the same)
	sig_victim=${CHAOS_VICTIM:-$sig_victim}
	sig_name=${CHAOS_SIGNAL:-$sig_name}
	sig_desc="(not sent)"

	wait_nbd

	# Go: the first invocation, then joiners and the signal in time order.
	now_ms
	t0=$NOW
	local events=() ev
	for (( i = 2; i <= njoin + 1; i++ )); do events+=("${inv_delay[i]} J$i"); done
	events+=("$sig_at S")
	start_inv 1
	while read -r k ev; do
		sleep_until "$k"
		case $ev in
		J*) start_inv "${ev#J}" ;;
		S) do_signal ;;
		esac
	done < <(printf '%s\n' "${events[@]}" | sort -n)

	# Wait for every invocation (the watchdog of (c) runs meanwhile) and
	# for the pending CONT and orphan check.
	while :; do
		service
		local pending=0
		for i in "${!inv_pid[@]}"; do [ -z "${inv_rc[i]}" ] && pending=1; done
		[ "$pending" = 0 ] && [ -z "$cont_pid" ] && [ -z "$orphan_due" ] && break
		sleep 0.05
	done

	local last=0
	for i in "${!inv_end[@]}"; do [ "${inv_end[i]}" -gt "$last" ] && last=${inv_end[i]}; done

	# (b) nothing left within 10 s of the last exit.
	local procs objs files
	while :; do
		procs=$(our_procs) objs=$(ipc_objects) files=$(rdv_files)
		[ -z "$procs$objs$files" ] && break
		now_ms
		[ "$NOW" -lt $(( last + 10000 )) ] || break
		sleep 0.1
	done
	now_ms
	log "$(( NOW - t0 )) ms: (b) checked: $(( NOW - last )) ms after the last exit"
	if [ -n "$procs" ]; then
		violation "(b) ringcopy processes left 10 s after the last exit:"$'\n'"$(describe_procs $procs)"
		for k in $procs; do kill -CONT "$k" 2>/dev/null; kill -KILL "$k" 2>/dev/null; done
	fi
	if [ -n "$objs" ]; then
		violation "(b) SysV objects left 10 s after the last exit: $(echo $objs)"
	fi
	if [ -n "$files" ]; then
		violation "(b) rendezvous files left 10 s after the last exit: $(echo $files)"
	fi
	if [ -n "$procs$objs$files" ]; then
		# Start the next round clean.
		sleep 0.5
		for k in $(our_procs); do kill -KILL "$k" 2>/dev/null; done
		ipcrm -a 2>/dev/null
		rm -f "$RINGCOPY_RUNDIR"/* 2>/dev/null
	fi

	# Per invocation: (a) identity, (d) non-zero exits, (e) success.
	local rc hit ok_all
	for i in "${!inv_pid[@]}"; do
		rc=${inv_rc[i]} hit=${inv_hit[i]:-}
		read_statuses "$i"
		if [ "${inv_watchdog[i]:-0}" = 1 ] || [ "$hit" = invocation:KILL ]; then
			continue	# killed by us: nothing of its own to check
		fi
		ok_all=1
		for j in ${inv_targets[i]}; do
			if [ "${t_kind[j]}" = stdout ] && [ "$rc" = 0 ]; then st[j]=ok; fi
			if [ "${st[j]}" = ok ]; then
				compare_target "$j" ||
					violation "(a) inv$i reported ${t_kind[j]} target ${t_spec[j]} ok but it differs from the source ($src_kind, $src_size bytes): $CMP"
			else
				ok_all=0
				[ "$rc" = 0 ] &&
					violation "(a) inv$i exited 0 but reported target ${t_spec[j]} as '${st[j]}'"
			fi
		done
		case $hit in
		consumer:KILL)
			[ "$rc" != 0 ] ||
				violation "(d) inv$i exited 0 although its consumer got SIGKILL ($sig_desc)"
			;;
		consumer:TERM|consumer:INT)
			# A consumer that catches the signal in its last moments,
			# its work done, cannot tell anybody: counted when it was
			# still copying, or when its invocation ran on for 1 s.
			if [ "$rc" = 0 ]; then
				if [ "$sig_in_ring" = 1 ] || [ $(( inv_end[i] - sig_time )) -ge 1000 ]; then
					violation "(d) inv$i exited 0 $(( inv_end[i] - sig_time )) ms after its consumer got SIG${hit#consumer:} ($sig_desc)"
				else
					log "not counted: inv$i exited 0 $(( inv_end[i] - sig_time )) ms after SIG${hit#consumer:} to a consumer that was not copying any more"
				fi
			fi
			;;
		""|*:STOP)
			if [ "$prod_hit" != KILL ] && [ "$rc" != 0 ]; then
				violation "(e) inv$i exited $rc although ${hit:+only SIGSTOP/CONT hit it; }${sig_desc}: ringcopy ${inv_cmd[i]}"$'\n'"$(sed 's/^/    /' "$rd/inv$i.err")"
			fi
			;;
		esac
	done

	now_ms
	log "$(( NOW - t0 )) ms: targets checked"
	for k in "${nbd_pids[@]}"; do kill "$k" 2>/dev/null; done
	for k in "${nbd_pids[@]}"; do wait "$k" 2>/dev/null; done
	nbd_pids=()

	# One line per round.
	now_ms
	label="round $round: $src_kind $src_size B, ${common[*]}"
	for i in "${!inv_pid[@]}"; do
		label+="; inv$i"
		[ "$i" = 1 ] || label+="@${inv_delay[i]}ms"
		label+="["
		k=
		for j in ${inv_targets[i]}; do label+="$k${t_kind[j]}"; k=,; done
		label+="]"
		[ "${inv_json[i]}" = 1 ] && label+="json"
		k=$(( (inv_end[i] - inv_t0[i]) / 100 ))
		label+="=${inv_rc[i]}/$(( k / 10 )).$(( k % 10 ))s"
	done
	k=$(( (NOW - t_start) / 100 ))
	label+="; $sig_desc; $(( k / 10 )).$(( k % 10 )) s"
	if [ "$round_bad" -gt 0 ]; then
		label+=" -- $round_bad VIOLATION(S); kept $rd; replay: RINGCOPY=$RINGCOPY $here/chaos.sh --seed $seed --start $round --rounds 1 --max-mib $max_mib --max-secs $max_secs"
		kept_rounds+=("$rd")
	fi
	echo "$label"
	echo "$label" >> "$rd/log"
	[ "$round_bad" -gt 0 ] || rm -rf "$rd"
}

echo "chaos: $rounds rounds from round $start, seed $seed, binary $RINGCOPY, zstd $have_zstd, nbd $have_nbd"
for (( round = start; round < start + rounds; round++ )); do
	one_round
done
echo "chaos: $rounds rounds, $violations violations (seed $seed)"
[ "$violations" -eq 0 ]
