#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Type=notify: `serve --foreground' and `station' tell the service manager
# they are ready (READY=1 and a STATUS= line, one datagram to the socket
# NOTIFY_SOCKET names: a path, or an abstract name after '@') once their
# producer serves, so that `systemctl start' fails for a source they
# refuse; a refused source sends nothing.  scripts/check-units.sh checks
# the same under systemd.
source "$top_srcdir/tests/func/functions.sh"
requires python3 -c 'import socket; socket.AF_UNIX'

# listen SOCKET OUT: collect the datagrams sent to SOCKET in OUT until
# OUT.stop exists (then what is queued is read too); OUT.bound once bound.
listen() {
	python3 - "$1" "$2" <<'PY' &
import os, socket, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(out + ".bound", "w").close()
s.settimeout(0.1)
with open(out, "ab") as f:
    while True:
        stop = os.path.exists(out + ".stop")
        try:
            while True:
                f.write(s.recv(4096) + b"\n--\n")
                f.flush()
        except (socket.timeout, BlockingIOError):
            pass
        if stop:
            break
PY
	bg_pids+=($!)
	for (( i = 0; i < $(slow 20) * 20; i++ )); do
		[ -e "$2.bound" ] && return 0
		sleep 0.05
	done
	fail "the test's notify socket $1 was not bound"
}
# got OUT PATTERN: wait for a datagram matching PATTERN in OUT.
got() {
	for (( i = 0; i < $(slow 10) * 10; i++ )); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "no notification '$2': $(cat "$1" 2>/dev/null)"
}

mkimage "$tmp/src.img" 4M

# serve --foreground: READY=1 with its producer's pid, once.
listen "$tmp/notify.sock" "$tmp/n1"
NOTIFY_SOCKET="$tmp/notify.sock" ringcopy serve --foreground --json "$tmp/src.img" > "$tmp/fg.json" 2> "$tmp/fg.err" &
bg_pids+=($!)
serve=${bg_pids[-1]}
got "$tmp/n1" "^READY=1$"
pid=$(json_get "$tmp/fg.json" 'j["producer_pid"]')
grep -qx "STATUS=serving $tmp/src.img: producer pid $pid" "$tmp/n1" || fail "status: $(cat "$tmp/n1")"
# A copy joins (the serve's producer was ready when it said so).
expect_status 0 ringcopy -q "$tmp/src.img" "$tmp/a.img"
same "$tmp/src.img" "$tmp/a.img"
kill -TERM "$(pgrep -P "$serve")"
expect_status 0 wait "$serve"
touch "$tmp/n1.stop"
wait "${bg_pids[-2]}"
[ "$(grep -c '^READY=1$' "$tmp/n1")" = 1 ] || fail "READY=1 not sent once: $(cat "$tmp/n1")"

# A refused source: exit 2, and no READY=1 (systemctl start fails).
listen "$tmp/notify2.sock" "$tmp/n2"
NOTIFY_SOCKET="$tmp/notify2.sock" expect_status 2 ringcopy serve --foreground "$tmp/missing.img" 2> "$tmp/missing.err"
touch "$tmp/n2.stop"
wait "${bg_pids[-1]}"
[ ! -s "$tmp/n2" ] || fail "a refused serve notified: $(cat "$tmp/n2")"

# The station, through an abstract socket.
listen "@ringcopy-test-$$-notify" "$tmp/n3"
NOTIFY_SOCKET="@ringcopy-test-$$-notify" ringcopy station --match "nothing-$$" "$tmp/src.img" 2> "$tmp/st.err" &
bg_pids+=($!)
station=${bg_pids[-1]}
for (( i = 0; i < $(slow 10) * 10; i++ )); do
	grep -q 'station: serving\|refused\|netlink' "$tmp/st.err" && break
	sleep 0.1
done
if grep -q 'station: serving' "$tmp/st.err"; then
	got "$tmp/n3" "^READY=1$"
	grep -q "^STATUS=station: serving $tmp/src.img (producer pid [0-9]*)$" "$tmp/n3" || fail "status: $(cat "$tmp/n3")"
	kill -TERM "$(pgrep -P "$station")"
	expect_status 0 wait "$station"
else
	wait "$station"
	echo "the station could not start here (no netlink?): its notification is not checked: $(cat "$tmp/st.err")"
fi
touch "$tmp/n3.stop"
