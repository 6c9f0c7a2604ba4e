#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The station writes no other name of a disk it must not write: a second
# loop device that appears over the file its source (a loop device) reads,
# or over the file of a filesystem mounted through another loop device, is
# refused (with --force too) and keeps its bytes; a loop device over a file of its own
# appearing beside them is written, so the station did see them.  The
# loop devices are this test's own: numbers nobody else uses, created
# through /dev/loop-control and bound to their files at once while the
# station runs.
source "$top_srcdir/tests/func/functions.sh"
requires_loop
requires mkfs.ext4 -V
requires nsenter --version
requires python3 -c 'import fcntl, socket; socket.AF_NETLINK'

# loops free: print a free base B (a multiple of 10: loopB..loopB+9 do
# not exist).  loops bind B FILE...: create loopB+k bound to the k-th
# FILE.  loops remove B N: detach and remove them.
loops() {
	python3 - "$@" <<'PY'
import errno, fcntl, os, subprocess, sys, time
ADD, REMOVE, SET_FD = 0x4C80, 0x4C81, 0x4C00
ctl = os.open("/dev/loop-control", os.O_RDWR)
cmd = sys.argv[1]
if cmd == "free":
    for tries in range(200):
        base = 10 * (1000 + (os.getpid() * 7 + tries * 13) % 50000)
        if not any(os.path.exists("/sys/class/block/loop%d" % (base + k))
                   for k in range(10)):
            print(base)
            sys.exit(0)
    sys.exit(4)
base = int(sys.argv[2])
if cmd == "remove":
    for k in range(int(sys.argv[3])):
        subprocess.run(["losetup", "-d", "/dev/loop%d" % (base + k)],
                       stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                fcntl.ioctl(ctl, REMOVE, base + k)
                break
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.ENXIO):
                    break
                time.sleep(0.05)
    sys.exit(0)
for k, name in enumerate(sys.argv[3:]):
    fcntl.ioctl(ctl, ADD, base + k)
    for _ in range(100):
        if os.path.exists("/dev/loop%d" % (base + k)):
            break
        time.sleep(0.01)
    dev = os.open("/dev/loop%d" % (base + k), os.O_RDWR)
    f = os.open(name, os.O_RDWR)
    fcntl.ioctl(dev, SET_FD, f)
    os.close(f)
    os.close(dev)
PY
}


mb=1048576
mkimage "$tmp/src.img" 4M 7
srcdev=$(loop_attach "$tmp/src.img")
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/fs.img" 8M 8M mounted
loopa=$(loop_attach "$tmp/fs.img")
mkdir "$tmp/mnt"
mount_private "$loopa" "$tmp/mnt" || skip "cannot mount ext4 in a mount namespace here"
truncate -s 8M "$tmp/blank.img"
src_sum=$(cksum < "$tmp/src.img")
fs_sum=$(cksum < "$tmp/fs.img")

base=$(loops free) || skip "no free loop device numbers"
on_exit "loops remove $base 3"
name() { echo "loop$((base + $1))"; }
dev() { echo "/dev/loop$((base + $1))"; }

# wait_event NAME STATUS: the station's JSON line for that disk and status.
wait_event() {
	local i
	for (( i = 0; i < $(slow 30) * 10; i++ )); do
		grep -q "\"name\": \"$1\", .*\"status\": \"$2\"" "$tmp/st.json" && return 0
		sleep 0.1
	done
	fail "no '$2' event for $1: $(cat "$tmp/st.err" "$tmp/st.json")"
}

ringcopy station --json --force --match "loop${base%0}[0-2]" \
	"$srcdev" > "$tmp/st.json" 2> "$tmp/st.err" &
station_job=$!
bg_pids+=($station_job)
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q '"event": "serving"' "$tmp/st.json" && break
	sleep 0.1
done
grep -q '"event": "serving"' "$tmp/st.json" || fail "no station: $(cat "$tmp/st.err")"
station=$(sed -n 's/.*"station_pid": \([0-9]*\).*/\1/p' "$tmp/st.json")

# Attached while the station runs: its source's file, the mounted
# filesystem's file, and a blank file.
loops bind "$base" "$tmp/src.img" "$tmp/fs.img" "$tmp/blank.img" ||
	fail "cannot create loop devices through /dev/loop-control"
wait_event "$(name 2)" ok
wait_event "$(name 0)" refused
wait_event "$(name 1)" refused
grep -q "target $(dev 0) refused: it is another name of the source's storage: both reach $tmp/src.img" "$tmp/st.err" ||
	fail "the source's alias: $(cat "$tmp/st.err")"
grep -q "target $(dev 1) refused: in use: $loopa, another name of the same storage ($tmp/fs.img), is mounted or held" "$tmp/st.err" ||
	fail "the mounted alias: $(cat "$tmp/st.err")"
kill -TERM "$station"
expect_status 1 wait "$station_job"

python3 - "$tmp/st.json" "$base" <<'PY' || fail "events: $(cat "$tmp/st.json")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
base = int(sys.argv[2])
done = {e["name"]: e for e in ev if e["event"] == "done"}
assert set(done) == {"loop%d" % (base + k) for k in range(3)}, done
for k in (0, 1):
    d = done["loop%d" % (base + k)]
    assert d["status"] == "refused" and d["bytes_written"] == 0, d
assert done["loop%d" % (base + 2)]["status"] == "ok", done
assert ev[-1]["event"] == "stop" and ev[-1]["refused"] == 2 and ev[-1]["ok"] == 1, ev[-1]
PY
[ "$(cksum < "$tmp/src.img")" = "$src_sum" ] || fail "the source's file changed"
[ "$(cksum < "$tmp/fs.img")" = "$fs_sum" ] || fail "the mounted filesystem's file changed"
in_mount ls "$tmp/mnt/hello.txt" > /dev/null || fail "the mounted filesystem lost a file"
cmp -n $((4 * mb)) "$tmp/src.img" "$tmp/blank.img" || fail "the blank disk was not written"
wait_rings_gone || fail "ring left"
# Unmounted here (the holder's namespace ends), not by the exit trap, so
# that the kernel has let the loop device go by the time the trap
# detaches it.
unmount_private
exit 0
