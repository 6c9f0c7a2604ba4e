#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The resume hint works on a disk, at every phase (issue 27): a copy of a
# GPT image to a loop device is interrupted while copying, while flushing
# (block 0 is being written) and while reading back; each time the command
# it hints ("the same command with --skip-equal") is run verbatim and
# finishes the copy.  The disk then holds the image's own partition table,
# which --skip-equal recognises by its block 0; a disk holding any other
# partition table is still refused without --force.
#
# The phases are held open by cgroup v1 blkio throttles on the loop device
# (writes for the flush, reads for the read-back), and the copy phase by a
# stopped producer: nothing depends on the machine's speed.  Once the
# copy says it flushes (or reads back), the throttle is cut to a trickle,
# so its write of block 0 (or its read) stays in flight however long the
# signal takes to reach the consumer; the throttle is lifted once the
# SIGTERM the invocation passes on is pending in that consumer (issue 27:
# a 2 s window lost on a loaded machine).
source "$top_srcdir/tests/func/functions.sh"

requires_loop
requires sfdisk --version
blkio_cgroup resume

mb=1048576
# Random bytes around the table: no zero block (no BLKZEROOUT).
mkimage "$tmp/gpt.img" 4M 9
sfdisk -q "$tmp/gpt.img" > /dev/null <<'PT' || fail "sfdisk"
label: gpt
start=2048, size=4096
PT

# Run ringcopy ARGS... in the cgroup, in the background; its output in
# $tmp/$name.{out,err}.
run_bg() {
	local name=$1
	shift
	( echo "$BASHPID" > "$cg/cgroup.procs"; ringcopy "$@" ) \
		> "$tmp/$name.out" 2> "$tmp/$name.err" &
	bg_pids+=($!)
}
# Wait until the progress lines of $1 say state $2.
wait_state() {
	local i
	for (( i = 0; i < $(slow 60) * 10; i++ )); do
		grep -q "\"state\": \"$2\"" "$tmp/$1.out" && return 0
		sleep 0.1
	done
	return 1
}
interrupt() {
	# The subshell's child that is not cat (the pipe's writer).
	inv=$(for p in $(pgrep -P "${bg_pids[0]}"); do
		[ "$(cat "/proc/$p/comm" 2> /dev/null)" = cat ] || echo "$p"
	done | head -n 1)
	# A shell running the function in a pipeline: its child.
	while [ -n "$inv" ] && [ "$(cat "/proc/$inv/comm" 2> /dev/null)" = bash ]; do
		inv=$(pgrep -P "$inv" | head -n 1)
	done
	[ -n "$inv" ] || fail "no invocation to interrupt"
	kill -INT "$inv"
}
# cut read|write: the throttle down to a trickle; block 0's write (or the
# read-back) in flight waits there.
cut() { echo "$majmin 4096" > "$cg/blkio.throttle.$1_bps_device"; }
# interrupt_held read|write: interrupt the invocation, wait until a
# consumer of it (blocked in the throttled I/O) has the SIGTERM it passes
# on pending, then lift the throttle: the consumer sees the signal in the
# phase it is in, however slowly the signal got there.
interrupt_held() {
	local i p v
	interrupt
	for (( i = 0; i < $(slow 30) * 10; i++ )); do
		for p in $(pgrep -P "$inv"); do
			v=$(sed -n 's/^ShdPnd:[[:space:]]*//p' "/proc/$p/status" 2> /dev/null)
			[ -n "$v" ] && (( 0x$v & 0x4000 )) && break 2
		done
		sleep 0.1
	done
	echo "$majmin 0" > "$cg/blkio.throttle.$1_bps_device"
}
finish() {
	local st=0
	wait "${bg_pids[0]}" || st=$?
	bg_pids=()
	echo "$majmin 0" > "$cg/blkio.throttle.read_bps_device"
	echo "$majmin 0" > "$cg/blkio.throttle.write_bps_device"
	[ "$st" = 1 ] || fail "$1: interrupted: exit $st, want 1: $(cat "$tmp/$1.err")"
	grep -q "interrupted: to finish, run the same command with --skip-equal" "$tmp/$1.err" ||
		fail "$1: no resume hint: $(cat "$tmp/$1.err")"
	# It says by which signal, in which phase, what was left (text and
	# JSON alike).
	grep -q "^FAILED .*interrupted by SIGINT (Ctrl-C) while $2" "$tmp/$1.err" ||
		fail "$1: $(cat "$tmp/$1.err")"
	tail -n 1 "$tmp/$1.out" > "$tmp/$1.json"
	json_get "$tmp/$1.json" 'j["targets"][0]["error"]' |
		grep -q "^interrupted by SIGINT (Ctrl-C) while $2" || fail "$1: $(cat "$tmp/$1.json")"
}
# The hinted command, verbatim: the same arguments plus --skip-equal.
resume() {
	local name=$1
	shift
	expect_status 0 ringcopy --skip-equal "$@" > "$tmp/$name.res.json" 2> "$tmp/$name.res.err" ||
		fail "$name: resume: $(cat "$tmp/$name.res.err")"
	cmp "$tmp/gpt.img" "$dev" || fail "$name: $dev differs after the resume"
	tail -n 1 "$tmp/$name.res.json" > "$tmp/$name.final.json"
	json_get "$tmp/$name.final.json" 'j["targets"][0]["status"] == "ok" and j["targets"][0]["verified"]' |
		grep -qx True || fail "$name: $(cat "$tmp/$name.res.json")"
}

truncate -s 4M "$tmp/disk"
dev=$(loop_attach "$tmp/disk")
majmin=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')

# 1. While copying: block 0 is held back, the disk holds no table yet.
run_bg copy --json --rate 1M "$tmp/gpt.img" "$dev"
producer=$(stop_at_block "${dev##*/}" 1) || fail "the copy did not reach block 1"
on_exit "kill -CONT $producer 2>/dev/null"
interrupt
# The stopped producer holds the copy until the consumer has left (it
# took the signal), however long the signal takes to land.
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	[ -z "$(pgrep -P "$inv")" ] && break
	sleep 0.1
done
kill -CONT "$producer"
finish copy "copying: [0-9]* of 4194304 bytes written; the rest, and block 0 (written last), are not"
resume copy --json --rate 1M "$tmp/gpt.img" "$dev"

# 2. While flushing: block 0, written between two flushes, takes 2 s at
# the throttled 1 MB/s (2 MiB blocks); the progress line says "flushing".
dd if=/dev/zero of="$dev" bs=1M count=4 oflag=direct status=none
echo "$majmin 1048576" > "$cg/blkio.throttle.write_bps_device"
run_bg flush --json --progress=json --block-size 2M "$tmp/gpt.img" "$dev"
wait_state flush flushing || fail "never seen flushing: $(cat "$tmp/flush.out" "$tmp/flush.err")"
cut write
interrupt_held write
finish flush "flushing"
# The disk now holds the image's partition table: the refusal a disk
# holding a table meets is not this one.
resume flush --json --progress=json --block-size 2M "$tmp/gpt.img" "$dev"

# 3. While reading back: reads throttled to 512 KB/s.
dd if=/dev/zero of="$dev" bs=1M count=4 oflag=direct status=none
echo "$majmin 524288" > "$cg/blkio.throttle.read_bps_device"
run_bg verify --json --progress=json "$tmp/gpt.img" "$dev"
wait_state verify verifying || fail "never seen verifying: $(cat "$tmp/verify.out" "$tmp/verify.err")"
cut read
interrupt_held read
finish verify "reading back: every block was written and flushed, but not all read back: not verified"
resume verify --json --progress=json "$tmp/gpt.img" "$dev"

# 3b. A stream cannot show its block 0 again: the hint then names --force
# too, and the hinted command works.
dd if=/dev/zero of="$dev" bs=1M count=4 oflag=direct status=none
echo "$majmin 524288" > "$cg/blkio.throttle.read_bps_device"
( echo "$BASHPID" > "$cg/cgroup.procs"; cat "$tmp/gpt.img" | ringcopy --json --progress=json - "$dev" ) \
	> "$tmp/pipe.out" 2> "$tmp/pipe.err" &
bg_pids+=($!)
wait_state pipe verifying || fail "never seen verifying: $(cat "$tmp/pipe.out" "$tmp/pipe.err")"
cut read
interrupt_held read
st=0
wait "${bg_pids[0]}" || st=$?
bg_pids=()
echo "$majmin 0" > "$cg/blkio.throttle.read_bps_device"
[ "$st" = 1 ] || fail "pipe: interrupted: exit $st: $(cat "$tmp/pipe.err")"
grep -q "interrupted: to finish, run the same command with --skip-equal --force (a disk now holds the image's own partition table" "$tmp/pipe.err" ||
	fail "pipe: hint: $(cat "$tmp/pipe.err")"
cat "$tmp/gpt.img" | ringcopy --skip-equal --force --json - "$dev" > "$tmp/pipe.res.json" 2> "$tmp/pipe.res.err" ||
	fail "pipe: resume: $(cat "$tmp/pipe.res.err")"
cmp "$tmp/gpt.img" "$dev" || fail "pipe: $dev differs after the resume"

# 5. The GPT note on a larger disk, for sources of unknown size too (a
# .gz file, a pipe): the image's size is known at its end.
if command -v gzip > /dev/null; then
	gzip -1 -c "$tmp/gpt.img" > "$tmp/gpt.img.gz"
	truncate -s 8M "$tmp/big"
	big=$(loop_attach "$tmp/big")
	expect_status 0 ringcopy --force "$tmp/gpt.img.gz" "$big" 2> "$tmp/gz.err"
	grep -q "target $big holds a GPT whose backup header is at byte $((4 * mb - 512)), not at the end of the disk ($((8 * mb)) bytes): move it there with 'sgdisk -e $big'" "$tmp/gz.err" ||
		fail "no GPT note for a .gz source: $(cat "$tmp/gz.err")"
	gzip -dc "$tmp/gpt.img.gz" | ringcopy --force - "$big" 2> "$tmp/pipe.err" ||
		fail "pipe: $(cat "$tmp/pipe.err")"
	grep -q "target $big holds a GPT whose backup header is at byte $((4 * mb - 512))" "$tmp/pipe.err" ||
		fail "no GPT note for a pipe: $(cat "$tmp/pipe.err")"
fi

# 4. Not weakened: a disk holding another image's table is refused with
# --skip-equal as without it, and --dry-run says the same.
mkimage "$tmp/other.img" 4M 10
sfdisk -q "$tmp/other.img" > /dev/null <<'PT' || fail "sfdisk"
label: gpt
start=2048, size=2048
PT
keep "$tmp/disk"
expect_refused "target $dev refused: it holds a gpt partition table with 1 partition; give --force" \
	--skip-equal "$tmp/other.img" "$dev"
expect_refused "target $dev refused: it holds a gpt partition table" \
	--skip-equal --dry-run "$tmp/other.img" "$dev"
# Without --skip-equal, this image's own table is refused too (a plain
# copy would empty what the disk holds).
expect_refused "target $dev refused: it holds a gpt partition table" \
	"$tmp/gpt.img" "$dev"
exit 0
