#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The systemd units, started for real: boot systemd as PID 1 of a container
# (systemd-nspawn --boot) over a minimal Debian root made with debootstrap
# from the archive apt uses, install the package in it, and run
#   ringcopy-serve@golden    (/etc/ringcopy/golden.conf): it serves (its
#                            status, ringcopy status), a copy inside the
#                            container joins its ring and is verified; a
#                            stop while a copy is in flight waits for that
#                            copy; a producer killed is restarted;
#   ringcopy-serve@missing   a refused source: systemctl start fails, and
#                            the unit is not restarted;
#   ringcopy-serve@noconf    no configuration: it gives up after 5 starts;
#   ringcopy-station@slot    (/etc/ringcopy/slot.conf): a loop device of
#                            this script's own gets media and the station
#                            writes and verifies it;
# then stop them and check that nothing is left (no ringcopy process, no
# SysV IPC object, no rendezvous file; on the host, no loop device, mount
# or cgroup of ours).
#
#   scripts/check-units.sh [--deb FILE] [--root-only]
#
# --root-only makes (or finds) the cached root and stops there: CI
# (scripts/check-all.sh) runs it in the background while the tests run,
# so that debootstrap's minute is not added to the suite's time.
#
# Without --deb the package is built the way scripts/check-deb.sh builds it
# (make dist, dpkg-buildpackage in a temporary directory; needs a
# configured tree).  The root is kept under $RINGCOPY_UNITS_CACHE (default
# /var/cache/ringcopy-units), keyed by the release, the mirror and the
# package's dependencies, so a second run only boots it (through an overlay:
# the cached root is never written).  $RINGCOPY_UNITS_MIRROR overrides the
# mirror.  Exit 0 all checks passed, 1 one failed, 77 the machine does not
# allow it (no root, no systemd-nspawn or debootstrap, not Debian, no
# archive reachable to make the root, no cgroup to put the container in).
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "check-units: FAIL: $*" >&2
	exit 1
}
say() { echo "check-units: $*"; }

deb= root_only=
while [ $# -gt 0 ]; do
	case $1 in
	--deb) deb=$(realpath "${2:?--deb needs a file}"); shift 2 ;;
	--root-only) root_only=1; shift ;;
	*) echo "usage: $0 [--deb FILE] [--root-only]" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || skip "the unit check boots a container and installs a package in it: it needs root"
for c in systemd-nspawn debootstrap nsenter python3 losetup dpkg-deb wget flock mount; do
	command -v "$c" > /dev/null ||
		skip "$c is missing (scripts/bootstrap.sh installs systemd-container, debootstrap, wget)"
done
# shellcheck disable=SC1091
. /etc/os-release
[ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ] ||
	skip "the container is a Debian root of the host's release, and this host is ${PRETTY_NAME:-not Debian}"
suite=$VERSION_CODENAME

tmp=$(mktemp -d /tmp/ringcopy-units.XXXXXX)
chmod 755 "$tmp"
nspawn_pid='' leader='' mounted='' loopnum='' cgdirs=()
# Power the container off (SIGRTMIN+4 to its systemd), kill it after 30
# s, and undo what this script made on the host; each step once.
teardown() {
	local d i
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		[ -n "$leader" ] && kill -RTMIN+4 "$leader" 2>/dev/null
		for (( i = 0; i < 300; i++ )); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$nspawn_pid" 2>/dev/null
		wait "$nspawn_pid" 2>/dev/null
	fi
	nspawn_pid=''
	if [ -n "$loopnum" ]; then
		losetup -d "/dev/loop$loopnum" 2>/dev/null
		loopctl remove "$loopnum"
	fi
	[ -n "$mounted" ] && umount "$tmp/root"
	mounted=''
	for d in "${cgdirs[@]}"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}
cleanup() {
	set +e
	teardown
	rm -rf "$tmp"
}
trap cleanup EXIT

# loopctl add FILE: a loop device at a number nobody uses, made with
# LOOP_CTL_ADD and bound to FILE at once (so no `losetup -f' elsewhere is
# handed it), its number printed; exit 3 if the kernel's uevent for it is
# not seen (no uevents here).  loopctl remove N: remove it again.
loopctl() {
	python3 - "$@" <<'PY'
import errno, fcntl, os, select, socket, sys, time
ADD, REMOVE, SET_FD = 0x4C80, 0x4C81, 0x4C00
ctl = os.open("/dev/loop-control", os.O_RDWR)
if sys.argv[1] == "remove":
    for _ in range(100):
        try:
            fcntl.ioctl(ctl, REMOVE, int(sys.argv[2]))
            break
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENXIO):
                break
            time.sleep(0.05)
    sys.exit(0)
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
    s.bind((0, 1))
except OSError:
    s = None
for tries in range(200):
    n = 10 * (1000 + (os.getpid() * 7 + tries * 13) % 50000) + 9
    if os.path.exists("/sys/class/block/loop%d" % n):
        continue
    try:
        fcntl.ioctl(ctl, ADD, n)
    except OSError:
        continue
    try:
        dev = os.open("/dev/loop%d" % n, os.O_RDWR)
        f = os.open(sys.argv[2], os.O_RDWR)
        fcntl.ioctl(dev, SET_FD, f)
        os.close(f)
        os.close(dev)
        break
    except OSError:
        fcntl.ioctl(ctl, REMOVE, n)
else:
    sys.exit(4)
print(n, flush=True)
if s is None:
    sys.exit(3)
want = ("add@/devices/virtual/block/loop%d" % n).encode()
end = time.time() + 5
while time.time() < end:
    r, _, _ = select.select([s], [], [], end - time.time())
    if r and s.recv(65536).startswith(want):
        sys.exit(0)
sys.exit(3)
PY
}

# --- the package ------------------------------------------------------------
version=$(sed -n 's/^AC_INIT(\[ringcopy\], \[\([^]]*\)\].*/\1/p' configure.ac)
if [ -z "$deb" ]; then
	command -v dpkg-buildpackage > /dev/null ||
		skip "dpkg-buildpackage is missing (scripts/bootstrap.sh installs it), and no --deb was given"
	[ -f Makefile ] || fail "no Makefile: configure the tree first (scripts/bootstrap.sh), or give --deb"
	say "building the package (make dist, dpkg-buildpackage -b, its unit tests skipped)"
	s=$SECONDS
	make dist-gzip > "$tmp/dist.log" 2>&1 || { cat "$tmp/dist.log"; fail "make dist failed"; }
	mkdir "$tmp/build"
	tar -C "$tmp/build" -xzf "ringcopy-$version.tar.gz"
	( cd "$tmp/build/ringcopy-$version" &&
		DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -us -uc -b ) \
		> "$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }
	deb=$(ls "$tmp"/build/ringcopy_"$version"_*.deb)
	say "package built in $((SECONDS - s)) s"
fi
[ -f "$deb" ] || fail "no package at ${deb:-(none)}"
[ "$(dpkg-deb -f "$deb" Package)" = ringcopy ] || fail "$deb is not a ringcopy package"
debversion=$(dpkg-deb -f "$deb" Version)
say "package $deb (ringcopy $debversion)"

# --- the root -----------------------------------------------------------------
# The archive apt uses for the host's release: a deb822 stanza or a
# one-line entry whose suite is exactly $suite.
mirror=${RINGCOPY_UNITS_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(awk -v suite="$suite" '
		FNR == 1 { uris = ""; ok = 0 }
		/^[[:space:]]*$/ { if (ok && uris != "") { print uris; exit } uris = ""; ok = 0; next }
		/^URIs:/ { uris = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
		END { if (ok && uris != "") print uris }
		' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
fi
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]]\+'"$suite"'[[:space:]].*/\2/p' |
		head -n 1)
fi
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

# systemd as PID 1, and what the package depends on (the first of any
# alternatives, without versions): dpkg -i then needs no archive.
pkgs=$( (echo systemd; dpkg-deb -f "$deb" Depends | tr ',' '\n' |
	sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g') | grep . | sort -u | paste -sd, -)
cache=${RINGCOPY_UNITS_CACHE:-/var/cache/ringcopy-units}
# The key has the versions the package needs: a package built against
# newer libraries than a cached root holds gets a root of its own.
key=$(printf '1 %s %s %s' "$suite" "$mirror" "$(dpkg-deb -f "$deb" Depends)" | sha256sum | cut -c1-12)
base="$cache/$suite-$key"
mkdir -p "$cache"
# A root left half made (a run killed during debootstrap): what
# debootstrap mounted in it first (/proc, /sys), then the tree.
unmake_new() {
	awk -v d="$base.new/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$base.new"
}
exec 9> "$cache/.lock"
flock 9
if [ ! -f "$base/.ringcopy-units-ready" ]; then
	wget -q -T 20 -t 2 -O /dev/null "$mirror/dists/$suite/Release" ||
		skip "the archive $mirror (dists/$suite/Release) is not reachable, and no root is cached in $base"
	say "making the root: debootstrap --variant=minbase --include=$pkgs $suite $mirror (cached in $base)"
	s=$SECONDS
	unmake_new
	debootstrap --variant=minbase --include="$pkgs" "$suite" "$base.new" "$mirror" \
		> "$tmp/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$tmp/debootstrap.log"; unmake_new; fail "debootstrap failed"; }
	chroot "$base.new" apt-get clean
	rm -rf "$base.new"/var/lib/apt/lists/*
	echo ringcopy-units > "$base.new/etc/hostname"
	# Nothing that could run meanwhile and change timing or the journal.
	for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
		e2scrub_all.timer systemd-tmpfiles-clean.timer console-getty.service; do
		ln -sf /dev/null "$base.new/etc/systemd/system/$u"
	done
	date -u > "$base.new/.ringcopy-units-ready"
	rm -rf "$base"
	mv "$base.new" "$base"
	say "root made in $((SECONDS - s)) s ($(du -sh "$base" | cut -f1))"
else
	say "root cached in $base (made $(cat "$base/.ringcopy-units-ready"))"
fi
flock -u 9
exec 9>&-
[ -z "$root_only" ] || exit 0

# This run's root: an overlay over the cached one (a copy where overlayfs
# cannot be mounted), so the cache stays as debootstrap left it.
mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
if mount -t overlay overlay -o "lowerdir=$base,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root" 2>/dev/null; then
	mounted=1
else
	say "no overlayfs here: copying the root"
	cp -a "$base/." "$tmp/root/"
fi
cp "$deb" "$tmp/root/root/ringcopy.deb"
mkdir -p "$tmp/root/srv/images"
image="/srv/images/golden image.img" # a space: SOURCE is one argument
head -c 8M /dev/urandom > "$tmp/root$image"
imgsize=$(stat -c %s "$tmp/root$image")

# --- boot ---------------------------------------------------------------------
# Without systemd on the host there is no machined to register with and no
# manager to make a scope: --register=no --keep-unit, in a cgroup of our
# own in every hierarchy systemd uses (nspawn puts "payload" and
# "supervisor" under the cgroup it runs in).  With systemd as PID 1, a
# transient scope that delegates its subtree.
name=ringcopy-units-$$
wrap=()
if [ -d /run/systemd/system ] && command -v systemd-run > /dev/null; then
	wrap=(systemd-run --quiet --scope --unit="$name" -p Delegate=yes)
else
	for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
		case $(stat -f -c %T "$h" 2>/dev/null) in
		cgroup2fs) ;;
		cgroupfs) grep -q " $h cgroup .*name=systemd" /proc/mounts || continue ;;
		*) continue ;;
		esac
		mkdir "$h/$name" 2>/dev/null ||
			skip "cannot make a cgroup in $h for the container (read-only cgroup file system?)"
		cgdirs+=("$h/$name")
	done
	[ "${#cgdirs[@]}" -gt 0 ] || skip "no cgroup hierarchy for systemd (name=systemd or cgroup2) is mounted"
fi
say "booting systemd in $tmp/root (systemd-nspawn --boot)"
boot0=$SECONDS
(
	for d in "${cgdirs[@]}"; do echo "$BASHPID" > "$d/cgroup.procs"; done
	exec "${wrap[@]}" systemd-nspawn --quiet -D "$tmp/root" --boot --register=no \
		--keep-unit --machine="$name" --private-network --console=read-only
) < /dev/null > "$tmp/boot.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1: a child of nspawn (or, under systemd-run, of its
# child) whose pid in its own namespace is 1.
for (( i = 0; i < 300; i++ )); do
	for p in $(pgrep -P "$nspawn_pid"; for c in $(pgrep -P "$nspawn_pid"); do pgrep -P "$c"; done); do
		if awk '/^NSpid:/ { exit !(NF == 3 && $3 == 1) }' "/proc/$p/status" 2>/dev/null; then
			leader=$p
			break 2
		fi
	done
	kill -0 "$nspawn_pid" 2>/dev/null || { cat "$tmp/boot.log"; fail "systemd-nspawn --boot ended"; }
	sleep 0.1
done
[ -n "$leader" ] || { cat "$tmp/boot.log"; fail "no container PID 1 after 30 s"; }

# wait_for SECONDS CMD...: until CMD succeeds (once more at the end).
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || { "$@"; return; }
		sleep 0.1
	done
}
# ce CMD...: run CMD in the container (its namespaces and root).
ce() {
	nsenter -t "$leader" -m -u -i -n -p -r -w -- \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C "$@"
}
# Its manager's socket first (before it, systemctl has no bus to ask).
wait_for 60 ce test -S /run/systemd/private ||
	{ tail -n 30 "$tmp/boot.log"; fail "no /run/systemd/private in the container after 60 s"; }
state=$(ce timeout 120 systemctl is-system-running --wait 2>&1) || :
case $state in
running) ;;
degraded) say "the container booted degraded: $(ce systemctl --failed --no-legend --plain | cut -d' ' -f1 | paste -sd' ' -)" ;;
*) tail -n 30 "$tmp/boot.log"; fail "the container did not boot: systemctl is-system-running says '$state'" ;;
esac
[ "$(ce readlink /proc/1/exe)" = /usr/lib/systemd/systemd ] || fail "PID 1 of the container is $(ce readlink /proc/1/exe), not systemd"
say "systemd $(ce systemctl --version | head -n 1 | cut -d' ' -f2) booted as the container's PID 1 in $((SECONDS - boot0)) s"

# --- helpers in the container ---------------------------------------------------
prop() { ce systemctl show -P "$2" "$1"; }
journal_has() { ce journalctl -q -o cat -u "$1" | grep -q -- "$2"; }
journal() { ce journalctl -q -o short-monotonic -u "$1" | tail -n 20; }
is_state() { [ "$(prop "$1" ActiveState)/$(prop "$1" SubState)" = "$2" ]; }
# Nothing of ringcopy left in the container: no process running the
# binary, no SysV object, no rendezvous file.
nothing_left() {
	local procs ipc files
	procs=$(ce sh -c 'for p in /proc/[0-9]*; do [ "$(readlink $p/exe)" = /usr/bin/ringcopy ] && echo "${p#/proc/}: $(tr "\0" " " < $p/cmdline)"; done; true')
	[ -z "$procs" ] || fail "$1: ringcopy processes left: $procs"
	ipc=$(ce ipcs -m -s -q | grep '^0x' || :)
	[ -z "$ipc" ] || fail "$1: SysV IPC objects left: $ipc"
	files=$(ce sh -c 'ls -A /run/ringcopy 2>/dev/null; true')
	[ -z "$files" ] || fail "$1: rendezvous files left in /run/ringcopy: $files"
}
producer_of() { # the pid serve or the station logged for its producer
	ce journalctl -q -o cat -u "$1" | sed -n 's/.*producer pid \([0-9]*\)[,)].*/\1/p' | tail -n 1
}
# new_producer UNIT PID: UNIT logged a producer other than PID.
new_producer() {
	local p
	p=$(producer_of "$1")
	[ -n "$p" ] && [ "$p" != "$2" ]
}
main_status_is() { [ "$(prop "$1" ExecMainStatus)" = "$2" ]; }
status_has() { ce ringcopy status | grep -qF -- "$1"; }

# --- the package in the booted container ----------------------------------------
ce dpkg -i /root/ringcopy.deb > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i ringcopy.deb in the container"; }
[ "$(ce dpkg-query -W -f='${Status} ${Version}' ringcopy)" = "install ok installed $debversion" ] ||
	fail "ringcopy $debversion is not installed in the container"
for u in serve station; do
	[ "$(ce systemctl is-enabled "ringcopy-$u@golden.service" 2>&1)" = disabled ] ||
		fail "ringcopy-$u@golden.service is $(ce systemctl is-enabled "ringcopy-$u@golden.service" 2>&1) after installation, not disabled"
done
say "package installed with dpkg -i; neither template enabled"

# --- ringcopy-serve@golden -----------------------------------------------------
mkdir -p "$tmp/root/etc/ringcopy"
printf 'SOURCE=%s\nRINGCOPY_ARGS=--json\n' "$image" > "$tmp/root/etc/ringcopy/golden.conf"
u=ringcopy-serve@golden.service
ce systemctl start "$u" || { journal "$u"; fail "systemctl start $u"; }
wait_for 10 journal_has "$u" "serving $image: producer pid" || { journal "$u"; fail "$u did not say it serves $image"; }
is_state "$u" active/running || { journal "$u"; fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState), not active/running"; }
journal_has "$u" '"producer_pid": ' || { journal "$u"; fail "$u: RINGCOPY_ARGS=--json did not reach ringcopy"; }
prod=$(producer_of "$u")
[ "$(prop "$u" StatusText)" = "serving $image: producer pid $prod" ] ||
	fail "$u: its status (Type=notify) is '$(prop "$u" StatusText)'"
ce grep -q "/$u\$" "/proc/$prod/cgroup" || fail "the producer (pid $prod) is not in $u's cgroup: $(ce cat "/proc/$prod/cgroup")"
ce ringcopy status > "$tmp/status.txt" || fail "ringcopy status exited $?: $(cat "$tmp/status.txt")"
grep -qxF "$image  $imgsize bytes" "$tmp/status.txt" && grep -q "^  producer pid $prod, running" "$tmp/status.txt" ||
	fail "ringcopy status does not show $image served by pid $prod: $(cat "$tmp/status.txt")"
say "$u: active, producer pid $prod in its cgroup, ringcopy status shows it"

# A copy in the container joins the served ring.
ce ringcopy --json "$image" /srv/copy.img > "$tmp/copy.json" 2> "$tmp/copy.err" ||
	fail "a copy of $image exited $?: $(cat "$tmp/copy.err")"
grep -q "joined the running copy of $image at block" "$tmp/copy.err" || fail "the copy did not join the served ring: $(cat "$tmp/copy.err")"
grep -q '"status": "ok", .*"verified": true' "$tmp/copy.json" || fail "the copy was not verified: $(cat "$tmp/copy.json")"
cmp "$tmp/root$image" "$tmp/root/srv/copy.img" || fail "/srv/copy.img differs from the image"
[ "$(producer_of "$u")" = "$prod" ] && ce sh -c "[ -d /proc/$prod ]" || fail "the producer $prod did not stay"
say "a copy joined the served ring, verified, identical"

# Stopped while a copy is in flight: the producer (held with SIGSTOP
# before the copy joins, so the copy cannot end first) gets SIGTERM
# through serve, finishes serving that copy, and the unit then ends.
ce sh -c "kill -STOP $prod"
ce ringcopy --json "$image" /srv/copy2.img > "$tmp/copy2.json" 2> "$tmp/copy2.err" &
copy2=$!
wait_for 10 status_has /srv/copy2.img ||
	{ ce sh -c "kill -CONT $prod"; fail "the second copy did not join"; }
ce systemctl stop --no-block "$u"
wait_for 10 is_state "$u" deactivating/stop-sigterm || { ce sh -c "kill -CONT $prod"; fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState) after stop, not deactivating"; }
ce sh -c "kill -CONT $prod"
wait "$copy2" || fail "the copy in flight when $u was stopped exited $?: $(cat "$tmp/copy2.err")"
grep -q '"status": "ok", .*"verified": true' "$tmp/copy2.json" || fail "the copy in flight was not verified: $(cat "$tmp/copy2.json")"
cmp "$tmp/root$image" "$tmp/root/srv/copy2.img" || fail "/srv/copy2.img differs from the image"
wait_for 20 is_state "$u" inactive/dead || { journal "$u"; fail "$u did not stop: $(prop "$u" ActiveState)/$(prop "$u" SubState)"; }
[ "$(prop "$u" Result)" = success ] && [ "$(prop "$u" ExecMainStatus)" = 0 ] ||
	{ journal "$u"; fail "$u stopped with result $(prop "$u" Result), status $(prop "$u" ExecMainStatus)"; }
journal_has "$u" "producer pid $prod of $image has left" || { journal "$u"; fail "$u did not say its producer left"; }
nothing_left "$u stopped"
say "$u stopped while a copy was in flight: the copy finished verified, the unit ended with success, nothing left"

# The producer killed (as the OOM killer would): serve must fail, so
# that Restart=on-failure serves the image again.
ce systemctl start "$u" || fail "systemctl start $u (again)"
wait_for 10 new_producer "$u" "$prod" ||
	{ journal "$u"; fail "$u did not serve again"; }
prod2=$(producer_of "$u")
ce sh -c "kill -KILL $prod2"
wait_for 20 new_producer "$u" "$prod2" ||
	{ journal "$u"; fail "$u was not restarted after its producer (pid $prod2) was killed: $(prop "$u" ActiveState)/$(prop "$u" SubState), result $(prop "$u" Result)"; }
wait_for 10 is_state "$u" active/running || fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState) after its restart"
[ "$(prop "$u" NRestarts)" = 1 ] || fail "$u restarted $(prop "$u" NRestarts) times, not once"
ce ringcopy -q "$image" /srv/copy3.img 2> "$tmp/copy3.err" || fail "a copy after the restart: $(cat "$tmp/copy3.err")"
cmp "$tmp/root$image" "$tmp/root/srv/copy3.img" || fail "/srv/copy3.img differs from the image"
ce systemctl stop "$u"
[ "$(prop "$u" Result)" = success ] || fail "$u stopped with result $(prop "$u" Result) after its restart"
nothing_left "$u stopped after a restart"
say "$u: its producer killed, it failed and was restarted once, served a copy, stopped clean"

# A source that is refused (exit 2): no restart, the unit stays failed.
printf 'SOURCE=/srv/images/missing.img\n' > "$tmp/root/etc/ringcopy/missing.conf"
u=ringcopy-serve@missing.service
# Type=notify: systemctl start waits for READY=1, which never comes.
ce systemctl start "$u" 2>/dev/null && fail "systemctl start $u succeeded for a source that is refused"
wait_for 10 main_status_is "$u" 2 ||
	{ journal "$u"; fail "$u did not exit 2"; }
journal_has "$u" "source /srv/images/missing.img refused" || { journal "$u"; fail "$u did not say why"; }
wait_for 5 is_state "$u" failed/failed || { journal "$u"; fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState) after a refusal, not failed (a restart would be refused the same way)"; }
ce systemctl reset-failed "$u"
say "$u: systemctl start failed for the refused source (Type=notify), and the unit was not restarted"

# No configuration at all: every start fails; after 5 the unit gives up.
u=ringcopy-serve@noconf.service
ce systemctl start "$u" 2>/dev/null && fail "$u started without /etc/ringcopy/noconf.conf"
wait_for 60 is_state "$u" failed/failed || { journal "$u"; fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState) 60 s after failing starts, not failed"; }
journal_has "$u" "Failed to load environment files" || { journal "$u"; fail "$u: no word of its missing configuration"; }
journal_has "$u" "Start request repeated too quickly" || { journal "$u"; fail "$u failed, but not on its start limit"; }
ce systemctl reset-failed "$u"
say "$u: no configuration file, started 5 times, then left failed (start request repeated too quickly)"

# --- ringcopy-station@slot -----------------------------------------------------
# A loop device with no media (bound to an empty file), its node made in
# the container's /dev; the station matches exactly its name.
: > "$tmp/slot.img"
rc=0
loopnum=$(loopctl add "$tmp/slot.img") || rc=$?
exercised_disk=1
case $rc in
0) ;;
3) exercised_disk=0; why="the kernel's uevents are not seen here" ;;
*) loopnum=; exercised_disk=0; why="no loop device could be made through /dev/loop-control" ;;
esac
if [ -n "$loopnum" ]; then
	ce mknod -m 600 "/dev/loop$loopnum" b "$((16#$(stat -c %t "/dev/loop$loopnum")))" \
		"$((16#$(stat -c %T "/dev/loop$loopnum")))"
	match=loop$loopnum
else
	match=loop-none-$$
fi
printf 'SOURCE=%s\nRINGCOPY_ARGS=--match %s --json\n' "$image" "$match" > "$tmp/root/etc/ringcopy/slot.conf"
u=ringcopy-station@slot.service
ce systemctl start "$u" || { journal "$u"; fail "systemctl start $u"; }
wait_for 10 journal_has "$u" '"event": "serving"' || { journal "$u"; fail "$u did not say it serves"; }
journal_has "$u" "station: serving $image (its producer pid [0-9]*); writing every disk that appears and matches 1 pattern" ||
	{ journal "$u"; fail "$u: no listening line"; }
is_state "$u" active/running || { journal "$u"; fail "$u is $(prop "$u" ActiveState)/$(prop "$u" SubState)"; }
prod=$(producer_of "$u")
ce grep -q "/$u\$" "/proc/$prod/cgroup" || fail "the station's producer (pid $prod) is not in $u's cgroup"
[ "$(prop "$u" StatusText)" = "station: serving $image (producer pid $prod)" ] ||
	fail "$u: its status (Type=notify) is '$(prop "$u" StatusText)'"
if [ "$exercised_disk" = 1 ]; then
	# Media in the slot: the file grows, the size is read again, and the
	# kernel's "change" event reaches the station in the container.
	truncate -s 16M "$tmp/slot.img"
	losetup -c "/dev/loop$loopnum"
	wait_for 30 journal_has "$u" "\"event\": \"done\", \"name\": \"$match\", .*\"status\": \"ok\", .*\"verified\": true" ||
		{ journal "$u"; fail "$u did not write /dev/$match"; }
	cmp -n "$imgsize" "$tmp/root$image" "/dev/loop$loopnum" || fail "/dev/$match differs from the image"
	say "$u: /dev/$match appeared in the container (a kernel uevent) and was written and verified"
fi
ce systemctl stop "$u"
[ "$(prop "$u" Result)" = success ] && [ "$(prop "$u" ExecMainStatus)" = 0 ] ||
	{ journal "$u"; fail "$u stopped with result $(prop "$u" Result), status $(prop "$u" ExecMainStatus)"; }
journal_has "$u" '"event": "stop", "why": "SIGTERM", "ok": '"$exercised_disk"', "failed": 0' ||
	{ journal "$u"; fail "$u: no stop report with $exercised_disk disk written"; }
nothing_left "$u stopped"
say "$u: started, listening, stopped with success, nothing left"
[ "$exercised_disk" = 1 ] ||
	say "not exercised: a disk written by the station ($why); only its start, listening line and stop were checked"

# --- shut down -------------------------------------------------------------------
kill -RTMIN+4 "$leader" # systemd's poweroff
for (( i = 0; i < 600; i++ )); do
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not power off in 60 s"
wait "$nspawn_pid" || { tail -n 20 "$tmp/boot.log"; fail "systemd-nspawn exited $? after poweroff"; }
nspawn_pid=''
teardown
# Nothing of ours left on the host.
! grep -q " $tmp/root " /proc/mounts || fail "$tmp/root is still mounted"
[ -z "$loopnum" ] || [ ! -e "/sys/class/block/loop$loopnum" ] || fail "/dev/loop$loopnum is still there"
for d in "${cgdirs[@]}"; do
	[ ! -d "$d" ] || fail "the cgroup $d is still there"
done
procs=$(pgrep -f "$tmp/root" || :)
[ -z "$procs" ] || fail "systemd-nspawn is still running: $procs"
say "the container powered off; nothing left on the host; all checks passed in $((SECONDS - t0)) s ($((SECONDS - boot0)) s from the boot)"
