#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Debian package, end to end: build it with dpkg-buildpackage from the
# `make dist' tarball unpacked in a temporary directory (never in this
# tree: dh_autoreconf and dh_clean would clobber its build), install it with
# apt-get, run the installed /usr/bin/ringcopy once (a 4 MiB image to two
# files, compared), check where dpkg put the man page, the completion and
# the units, and purge it again so the machine is left as it was.
# Needs root and a configured tree (scripts/bootstrap.sh); exit 77 when it
# cannot run here, 1 when something is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: the package check installs a package: it needs root"
	exit 77
fi
for t in dpkg-buildpackage dh apt-get dpkg-parsechangelog; do
	if ! command -v "$t" > /dev/null; then
		echo "SKIP: $t is missing (scripts/bootstrap.sh installs it)"
		exit 77
	fi
done
if dpkg-query -W -f='${Status}' ringcopy 2>/dev/null | grep -q 'ok installed'; then
	echo "check-deb: a ringcopy package is installed already; this check installs" >&2
	echo "check-deb: and purges its own build, so purge that one first" >&2
	exit 1
fi

version=$(sed -n 's/^AC_INIT(\[ringcopy\], \[\([^]]*\)\].*/\1/p' configure.ac)
debversion=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ -z "$version" ] || [ "$debversion" != "$version" ]; then
	echo "check-deb: debian/changelog says $debversion, configure.ac says ${version:-nothing}" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/ringcopy-deb.XXXXXX)
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then
		apt-get purge -y -q -o DPkg::Lock::Timeout=300 ringcopy > "$tmp/purge.log" 2>&1 ||
			{ cat "$tmp/purge.log" >&2; echo "check-deb: apt-get purge ringcopy failed" >&2; }
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "check-deb: $*" >&2
	exit 1
}

# The tarball distcheck proves complete, so debian/ is in EXTRA_DIST too.
make dist-gzip > "$tmp/dist.log" 2>&1 || { cat "$tmp/dist.log"; fail "make dist failed"; }
tar -C "$tmp" -xzf "ringcopy-$version.tar.gz"

echo "dpkg-buildpackage -us -uc -b in $tmp/ringcopy-$version"
start=$(date +%s)
(
	cd "$tmp/ringcopy-$version"
	DEB_BUILD_OPTIONS="parallel=$(nproc)${RINGCOPY_DEB_NOCHECK:+ nocheck}" dpkg-buildpackage -us -uc -b
) > "$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }
echo "package built in $(($(date +%s) - start)) s"
if [ -n "${RINGCOPY_DEB_NOCHECK:-}" ]; then
	echo "the package build skipped its unit tests (RINGCOPY_DEB_NOCHECK)"
else
	grep -E '^(PASS|FAIL|ERROR|# TOTAL)' "$tmp/build.log" || fail "the package build ran no unit tests"
fi

deb=$(ls "$tmp"/ringcopy_"$version"_*.deb)
# scripts/check-all.sh keeps it for scripts/check-units.sh.
if [ -n "${RINGCOPY_DEB_OUT:-}" ]; then
	mkdir -p "$RINGCOPY_DEB_OUT"
	cp "$deb" "$RINGCOPY_DEB_OUT/"
fi
echo "apt-get install $deb"
installed=1
apt-get install -y -q -o DPkg::Lock::Timeout=300 "$deb" > "$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "apt-get install $deb failed"; }
dpkg-query -W -f='${Status} ${Version}\n' ringcopy | grep -qx "install ok installed $version" ||
	fail "ringcopy $version is not installed after apt-get install"

# Where dpkg says the files are, and that they are there.
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || :)
unitdir=${unitdir:-/usr/lib/systemd/system}
dpkg -L ringcopy > "$tmp/files"
for f in /usr/bin/ringcopy \
	/usr/share/man/man1/ringcopy.1.gz \
	/usr/share/bash-completion/completions/ringcopy \
	"$unitdir/ringcopy-serve@.service" \
	"$unitdir/ringcopy-station@.service" \
	/usr/share/doc/ringcopy/examples/example.conf \
	/usr/share/doc/ringcopy/copyright; do
	grep -qxF "$f" "$tmp/files" || fail "dpkg -L ringcopy does not list $f"
	[ -f "$f" ] || fail "$f is listed but not there"
done
grep -qx "ExecStart=/usr/bin/ringcopy serve --foreground \$RINGCOPY_ARGS \${SOURCE}" \
	"$unitdir/ringcopy-serve@.service" || fail "ringcopy-serve@.service does not run /usr/bin/ringcopy serve --foreground"
grep -qx "ExecStart=/usr/bin/ringcopy station \$RINGCOPY_ARGS \${SOURCE}" \
	"$unitdir/ringcopy-station@.service" || fail "ringcopy-station@.service does not run /usr/bin/ringcopy station"
for u in serve station; do
	grep -qx 'EnvironmentFile=/etc/ringcopy/%i.conf' "$unitdir/ringcopy-$u@.service" ||
		fail "ringcopy-$u@.service does not read /etc/ringcopy/%i.conf"
	# Unit syntax, the binary and the man page the unit names.
	if command -v systemd-analyze > /dev/null; then
		systemd-analyze verify "$unitdir/ringcopy-$u@.service" ||
			fail "systemd-analyze verify ringcopy-$u@.service"
	fi
done
[ "$(man -w ringcopy)" = /usr/share/man/man1/ringcopy.1.gz ] || fail "man -w ringcopy does not find the page"
bash -c '. /usr/share/bash-completion/completions/ringcopy && complete -p ringcopy' > /dev/null ||
	fail "the installed bash completion does not register for ringcopy"
# Templates: nothing enabled, nothing started.
if find /etc/systemd/system -name 'ringcopy-*' 2>/dev/null | grep -q .; then
	fail "installing the package enabled a unit: $(find /etc/systemd/system -name 'ringcopy-*')"
fi

# The installed binary: its version, and one copy of a 4 MiB image to two
# files, in a private run directory (and IPC namespace where it may).
[ "$(/usr/bin/ringcopy --version)" = "ringcopy $version" ] || fail "/usr/bin/ringcopy --version: $(/usr/bin/ringcopy --version)"
head -c 4M /dev/urandom > "$tmp/golden.img"
mkdir -m 700 "$tmp/run"
ns=
if unshare --ipc true 2> /dev/null; then
	ns="unshare --ipc"
fi
RINGCOPY_RUNDIR="$tmp/run" $ns /usr/bin/ringcopy "$tmp/golden.img" "$tmp/a.img" "$tmp/b.img" ||
	fail "/usr/bin/ringcopy golden.img a.img b.img exited $?"
cmp "$tmp/golden.img" "$tmp/a.img" || fail "a.img differs from the image"
cmp "$tmp/golden.img" "$tmp/b.img" || fail "b.img differs from the image"
echo "/usr/bin/ringcopy $version copied a 4 MiB image to two files"

installed=0
apt-get purge -y -q -o DPkg::Lock::Timeout=300 ringcopy > "$tmp/purge.log" 2>&1 ||
	{ cat "$tmp/purge.log"; fail "apt-get purge ringcopy failed"; }
if dpkg-query -W -f='${Status}' ringcopy 2>/dev/null | grep -q 'ok installed' || [ -e /usr/bin/ringcopy ]; then
	fail "ringcopy is still installed after apt-get purge"
fi
echo "ringcopy purged"
