#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ringcopy station: disks that appear while it runs and match get the
# image.  The disks are loop devices of this test's own: created with
# numbers nobody else uses (loop-control's LOOP_CTL_ADD), bound at once to
# empty files (so no other test's `losetup -f' can be handed one), and
# matched by exactly those names.  A disk of size 0 is a reader slot
# without a card; growing its file and re-reading its size (`losetup -c')
# gives the kernel's "change" event with media, as a card put in does.
#  - three disks attached one after another each get a verified copy;
#  - one holding ext4 is refused without --force and keeps its bytes;
#  - one whose media go away mid-copy fails, and only it;
#  - status names the station of its copies;
#  - SIGTERM reports the copy in flight as interrupted and ends the
#    station: no process, IPC object, rendezvous file or loop device left.
source "$top_srcdir/tests/func/functions.sh"
requires_loop
requires mkfs.ext4 -V
requires python3 -c 'import fcntl, socket; socket.AF_NETLINK'

# loopctl create N: make N loop devices loopB0..loopB(N-1) (B a free base,
# a multiple of 10, printed), each bound to $tmp/dK.img at once, while
# listening to the kernel's uevents; exit 3 if no uevent arrives for them
# (uevents unavailable here).
# loopctl remove B N: remove them (once detached and closed).
loopctl() {
	python3 - "$@" <<'PY'
import errno, fcntl, os, select, socket, subprocess, sys, time
ADD, REMOVE = 0x4C80, 0x4C81
ctl = os.open("/dev/loop-control", os.O_RDWR)
if sys.argv[1] == "remove":
    base, n = int(sys.argv[2]), int(sys.argv[3])
    for k in range(n):
        for _ in range(100):
            try:
                fcntl.ioctl(ctl, REMOVE, base + k)
                break
            except OSError as e:
                if e.errno == errno.ENODEV or e.errno == errno.ENXIO:
                    break
                time.sleep(0.05)
    sys.exit(0)
n = int(sys.argv[2])
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
    s.bind((0, 1))
except OSError:
    sys.exit(3)
for tries in range(200):
    base = 10 * (1000 + (os.getpid() * 7 + tries * 13) % 50000)
    if any(os.path.exists("/sys/class/block/loop%d" % (base + k)) for k in range(n)):
        continue
    made = []
    try:
        for k in range(n):
            fcntl.ioctl(ctl, ADD, base + k)
            made.append(base + k)
            dev = os.open("/dev/loop%d" % (base + k), os.O_RDWR)
            f = os.open("%s/d%d.img" % (os.environ["tmp"], k), os.O_RDWR)
            fcntl.ioctl(dev, 0x4C00, f)  # LOOP_SET_FD
            os.close(f)
            os.close(dev)
        break
    except OSError:
        for m in made:
            subprocess.run(["losetup", "-d", "/dev/loop%d" % m])
            try:
                fcntl.ioctl(ctl, REMOVE, m)
            except OSError:
                pass
else:
    sys.exit(4)
print(base, flush=True)
want = ("add@/devices/virtual/block/loop%d" % base).encode()
end = time.time() + 5
while time.time() < end:
    r, _, _ = select.select([s], [], [], end - time.time())
    if r and s.recv(65536).startswith(want):
        sys.exit(0)
sys.exit(3)
PY
}

ndev=7
for (( k = 0; k < ndev; k++ )); do : > "$tmp/d$k.img"; done
base=$(loopctl create $ndev)
case $? in
0) ;;
3) [ -n "$base" ] && loopctl remove "$base" $ndev; skip "no kernel uevents here" ;;
*) skip "cannot create loop devices through /dev/loop-control" ;;
esac
detach_ours() {
	local k
	for (( k = 0; k < ndev; k++ )); do
		losetup -d "/dev/loop$((base + k))" 2>/dev/null
	done
	loopctl remove "$base" $ndev
}
on_exit detach_ours
name() { echo "loop$((base + $1))"; }
dev() { echo "/dev/loop$((base + $1))"; }

mb=1048576
mkimage "$tmp/src.img" 4M 7
bash "$top_srcdir/fixtures/mkfs-image.sh" "$tmp/d3.kept" 8M 8M data

# insert K: media in slot K (disk 3 holds an ext4 filesystem, disk 6 is
# too small for the station's size>=4M).
insert() {
	if [ "$1" = 3 ]; then
		cat "$tmp/d3.kept" > "$tmp/d3.img"
	elif [ "$1" = 6 ]; then
		truncate -s 2M "$tmp/d6.img"
	else
		truncate -s 8M "$tmp/d$1.img"
	fi
	losetup -c "$(dev "$1")" || fail "losetup -c $(dev "$1")"
}

# wait_event NAME STATUS: the station's JSON line for that disk and status.
wait_event() {
	local i
	for (( i = 0; i < $(slow 30) * 10; i++ )); do
		grep -q "\"name\": \"$1\", .*\"status\": \"$2\"" "$tmp/st.json" && return 0
		sleep 0.1
	done
	fail "no '$2' event for $1: $(cat "$tmp/st.err" "$tmp/st.json")"
}

# The station matches this test's seven names and nothing else.
ringcopy station --json --rate "$(vrate 2M 1M)" \
	--match "loop${base%0}[0-6]" --match 'size>=4M' \
	"$tmp/src.img" > "$tmp/st.json" 2> "$tmp/st.err" &
bg_pids+=($!)
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q '"event": "serving"' "$tmp/st.json" && break
	sleep 0.1
done
grep -q '"event": "serving"' "$tmp/st.json" || fail "no station: $(cat "$tmp/st.err")"
station=$(sed -n 's/.*"station_pid": \([0-9]*\).*/\1/p' "$tmp/st.json")
producer=$(sed -n 's/.*"producer_pid": \([0-9]*\),.*/\1/p' "$tmp/st.json")

# Three disks, one after another: the second joins the first's copy.
insert 0
wait_event "$(name 0)" copying
insert 1
wait_event "$(name 0)" ok
wait_event "$(name 1)" ok

# A disk whose name matches and whose size does not: every --match must
# hold, so it is left alone (and has no event).
insert 6
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q "$(dev 6) (2097152 bytes) appeared; it does not match 'size>=4M': left alone" "$tmp/st.err" && break
	sleep 0.1
done
grep -q "$(dev 6) (2097152 bytes) appeared; it does not match 'size>=4M': left alone" "$tmp/st.err" ||
	fail "a disk of 2M: $(cat "$tmp/st.err")"

# A disk holding ext4: refused, its bytes untouched, the station goes on.
insert 3
wait_event "$(name 3)" refused
grep -q "target $(dev 3) refused: it holds an ext4 filesystem labelled 'data'; give --force to overwrite it (left untouched)" "$tmp/st.err" ||
	fail "refusal: $(cat "$tmp/st.err")"
# ... and is never said to be copied (issue 27): checked, then refused.
grep -q "station: $(dev 3): a new disk of [0-9]* bytes that matches: checking it (pid [0-9]*)" "$tmp/st.err" ||
	fail "no check said: $(cat "$tmp/st.err")"
grep -q "station: $(dev 3): its copy starts" "$tmp/st.err" && fail "a refused disk was said to start: $(cat "$tmp/st.err")"
grep -q "\"event\": \"start\", \"name\": \"$(name 3)\"" "$tmp/st.json" &&
	fail "a start event for a refused disk: $(cat "$tmp/st.json")"
grep -q "station: $(dev 0): its copy starts (pid [0-9]*)" "$tmp/st.err" || fail "no start said: $(cat "$tmp/st.err")"

# Two at once; the media of one go away mid-copy: its producer is held
# (SIGSTOP) once that disk has a block, the loop device's file is cut to
# nothing and its size re-read (a loop device still open is detached only
# at its last close; a card pulled from a reader leaves a disk of size 0
# the same way), and the producer goes on.
insert 2
insert 4
wait_event "$(name 2)" copying
wait_event "$(name 4)" copying
stopped=$(stop_at_block "$(name 4)" 1) || fail "the copy to $(dev 4) did not start"
on_exit "kill -CONT $stopped 2>/dev/null"
"$RINGCOPY" status --json > "$tmp/status.json"
python3 - "$tmp/status.json" "$(dev 4)" "$station" <<'PY' || fail "status: $(cat "$tmp/status.json")"
import json, sys
j = json.load(open(sys.argv[1]))
c = [c for r in j["rings"] for c in r["consumers"] if c["target"] == sys.argv[2]]
assert len(c) == 1 and c[0]["station_pid"] == int(sys.argv[3]), c
PY
"$RINGCOPY" status > "$tmp/status.txt"
grep -q "^  copying  $(dev 4)  start block .*  pid [0-9]*  station pid $station$" "$tmp/status.txt" ||
	fail "status: $(cat "$tmp/status.txt")"
truncate -s 0 "$tmp/d4.img"
losetup -c "$(dev 4)"
losetup -d "$(dev 4)"
kill -CONT "$stopped"
wait_event "$(name 4)" failed
wait_event "$(name 2)" ok

# A disk in flight when SIGTERM comes: reported interrupted.
insert 5
wait_event "$(name 5)" copying
stopped=$(stop_at_block "$(name 5)" 1) || fail "the copy to $(dev 5) did not start"
on_exit "kill -CONT $stopped 2>/dev/null"
kill -TERM "$station"
wait_event "$(name 5)" interrupted
kill -CONT "$stopped"
expect_status 1 wait "${bg_pids[0]}"

python3 - "$tmp/st.json" "$base" <<'PY' || fail "events: $(cat "$tmp/st.json")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
base = int(sys.argv[2])
done = {e["name"]: e for e in ev if e["event"] == "done"}
assert set(done) == {"loop%d" % (base + k) for k in range(6)}, done
digest = {done["loop%d" % (base + k)]["digest"] for k in (0, 1, 2)}
assert len(digest) == 1 and None not in digest, done
for k in (0, 1, 2):
    d = done["loop%d" % (base + k)]
    assert d["status"] == "ok" and d["verified"] and d["bytes_written"] == 4 << 20, d
assert done["loop%d" % (base + 3)]["status"] == "refused", done
assert done["loop%d" % (base + 3)]["bytes_written"] == 0, done
d = done["loop%d" % (base + 4)]
assert d["status"] == "failed" and "media went away" in d["error"], d
assert done["loop%d" % (base + 5)]["status"] == "interrupted", done
assert ev[-1]["event"] == "stop" and ev[-1]["why"] == "SIGTERM", ev[-1]
assert (ev[-1]["ok"], ev[-1]["refused"], ev[-1]["failed"], ev[-1]["interrupted"]) == (3, 1, 1, 1), ev[-1]
PY
for k in 0 1 2; do
	cmp -n $((4 * mb)) "$tmp/src.img" "$tmp/d$k.img" || fail "disk $k differs from the image"
done
same "$tmp/d3.kept" "$tmp/d3.img"
cmp -n $((2 * mb)) "$tmp/d6.img" /dev/zero || fail "the disk that did not match was written"

# Nothing left behind: the producer and every copy are gone (the exit
# trap checks IPC objects and rendezvous files), and so are our loop
# devices.
# (The producer is nobody's child: it may be a zombie for a moment until
# init reaps it.)
for (( i = 0; i < $(slow 5) * 10; i++ )); do
	st=$(ps -o stat= -p "$producer") || break
	[[ $st == Z* ]] && break
	sleep 0.1
done
st=$(ps -o stat= -p "$producer") && [[ $st != Z* ]] && fail "producer $producer still runs"
[ -z "$(pgrep -P "$station")" ] || fail "station children left: $(pgrep -P "$station")"
wait_rings_gone || fail "ring left"
detach_ours
for (( k = 0; k < ndev; k++ )); do
	[ ! -e "/sys/class/block/$(name $k)" ] || fail "$(name $k) left behind"
done

# SIGINT ends a station as SIGTERM does; with nothing written, nothing
# refused and nothing failed, it exits 0.
ringcopy station --json --match "loop${base%0}[0-6]" "$tmp/src.img" > "$tmp/st2.json" 2> "$tmp/st2.err" &
bg_pids+=($!)
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q '"event": "serving"' "$tmp/st2.json" && break
	sleep 0.1
done
station=$(sed -n 's/.*"station_pid": \([0-9]*\).*/\1/p' "$tmp/st2.json")
[ -n "$station" ] || fail "no second station: $(cat "$tmp/st2.err")"
kill -INT "$station"
expect_status 0 wait "${bg_pids[-1]}"
tail -n 1 "$tmp/st2.json" | grep -q '"event": "stop", "why": "SIGINT", "ok": 0, "failed": 0, "interrupted": 0, "refused": 0' ||
	fail "SIGINT: $(cat "$tmp/st2.json")"
wait_rings_gone || fail "ring left after SIGINT"
