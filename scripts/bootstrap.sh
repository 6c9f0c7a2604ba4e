#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Set up a fresh Debian machine for ringcopy and build it: install the
# packages the build, the tests, the Debian package (debhelper, and systemd
# for systemd.pc), the unit check (debootstrap and systemd-nspawn, for
# scripts/check-units.sh) and the benchmarks need (as root, through
# apt-get), then autoreconf, configure and make.  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	build-essential autoconf automake pkg-config
	libblkid-dev libzstd-dev libxxhash-dev libcmocka-dev libudev-dev
	valgrind python3 util-linux procps zstd xxhash
	e2fsprogs fdisk groff-base man-db clang libclang-rt-14-dev strace
	universal-ctags
	bash-completion
	libnbd-dev nbdkit libnbd-bin
	liblzma-dev zlib1g-dev libbz2-dev liblz4-dev xz-utils gzip bzip2 lz4
	dcfldd dc3dd bmap-tools
	spin
	iproute2 opentracker mktorrent aria2 bc busybox
	qemu-utils qemu-system-common
	debhelper dpkg-dev systemd
	debootstrap systemd-container wget
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bootstrap: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
	./configure -q
fi
make -j"$(nproc)" >/dev/null
echo "bootstrap: built $(pwd)/ringcopy"
