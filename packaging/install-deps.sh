#!/bin/sh
# Installs the Debian packages giambiod needs, when one is missing.
# Debian 12, as root. "build" (the default): what building and running
# needs; "test": also what the whole test suite and packaging need.
set -eu

PKGS="build-essential autoconf automake pkgconf libevent-dev libinih-dev
libsystemd-dev scdoc"
if [ "${1:-build}" = test ]; then
	PKGS="$PKGS check valgrind python3 netcat-openbsd socat telnet systemd
debhelper dpkg-dev fakeroot lintian"
	# the static analysers (tests/analyse.sh)
	PKGS="$PKGS cppcheck clang-tidy-14 bear"
	# The fuzzing stage: clang with libFuzzer and its sanitizer runtimes
	# (clang-14 only recommends the latter).
	PKGS="$PKGS clang-14 libclang-rt-14-dev libfuzzer-14-dev"
fi

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
