#!/bin/sh
# Builds giambiod's Debian package (Debian 12) from this tree:
#
#   sh packaging/build-deb.sh [--check] [OUTDIR]
#
# The tree (the files git tracks, plus new files it does not ignore;
# without git, the tree minus .git and build*/) is copied to a temporary
# directory, packaging/debian becomes its debian/, and
# "dpkg-buildpackage -us -uc -b" builds it. The result must pass lintian
# without errors, contain the daemon, its conffile, the units and the man
# pages, and run ("giambiod -V", "giambiod -t" on the packaged
# giambio.conf). The .deb files (giambiod and its -dbgsym) are then copied
# to OUTDIR (default: build/deb at the top of the tree).
#
# The test suite is skipped (DEB_BUILD_OPTIONS=nocheck): tests/run-all.sh
# runs it in CI, more strictly (warnings as errors, valgrind, sanitizers),
# and running it again here would double the build time. --check runs
# "make check" inside the package build as well.
#
# As root, missing build dependencies are installed (apt-get build-dep);
# otherwise they are listed. KEEP=1 keeps the temporary directory.
set -eu

usage() {
	sed -n '2,21s/^# \{0,1\}//p' "$0"
}
die() {
	echo "build-deb: $*" >&2
	exit 1
}

check=no
out=
for arg; do
	case $arg in
	--check) check=yes ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $arg (see --help)" ;;
	*) [ -z "$out" ] || die "one OUTDIR only"; out=$arg ;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
out=${out:-$top/build/deb}
case $out in /*) ;; *) out=$PWD/$out ;; esac

# ------------------------------------------------------------ the tools
need=
command -v dpkg-buildpackage >/dev/null 2>&1 || need="$need dpkg-dev"
command -v dh >/dev/null 2>&1 || need="$need debhelper"
command -v lintian >/dev/null 2>&1 || need="$need lintian"
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || die "missing Debian packages:$need (run as root to install them)"
	echo "build-deb: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# ------------------------------------------------------------ version
version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
upstream=$(sed -n 's/^AC_INIT(\[giambiod\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
case $version in
"$upstream" | "$upstream"[-+~]*) ;;
*) die "packaging/debian/changelog is at $version but configure.ac at $upstream: add a changelog entry (dch -c packaging/debian/changelog -v $upstream)" ;;
esac

# --------------------------------------------------------- the copy
work=$(mktemp -d "${TMPDIR:-/tmp}/giambiod-deb.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "build-deb: keeping $work"
else
	trap 'rm -rf "$work"' EXIT
	trap 'exit 130' INT TERM
fi
src=$work/giambiod-$version
mkdir "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files that still exist, and new files git does not ignore;
	# build products that sit in the tree unignored (a unit generated
	# from X.in, a man page from packaging/X.scd) stay behind.
	(cd "$top" && git ls-files --cached --others --exclude-standard) |
		LC_ALL=C sort -u >"$work/all"
	sed -n 's/\.in$//p; s|^packaging/\(.*\)\.scd$|\1|p' "$work/all" |
		LC_ALL=C sort -u >"$work/generated"
	LC_ALL=C comm -23 "$work/all" "$work/generated" |
		while IFS= read -r f; do
			if [ -e "$top/$f" ] || [ -L "$top/$f" ]; then
				printf '%s\n' "$f"
			fi
		done >"$work/files"
	tar -C "$top" --no-recursion -T "$work/files" -cf - | tar -C "$src" -xf -
else
	tar -C "$top" --exclude=./.git --exclude='./build*' --exclude=./debian \
		-cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$top/packaging/debian" "$src/debian"

# ------------------------------------------------------------ the build
if [ "$check" = no ]; then
	DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}"
	DEB_BUILD_PROFILES="nocheck${DEB_BUILD_PROFILES:+ $DEB_BUILD_PROFILES}"
	export DEB_BUILD_OPTIONS DEB_BUILD_PROFILES
fi
cd "$src"
if ! dpkg-checkbuilddeps; then
	[ "$(id -u)" = 0 ] || die "missing build dependencies, listed above (run as root to install them)"
	echo "build-deb: installing the build dependencies"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get build-dep -y -qq --no-install-recommends \
		${DEB_BUILD_PROFILES:+-P "$(echo "$DEB_BUILD_PROFILES" | tr ' ' ,)"} \
		"$src" >/dev/null
fi

start=$(date +%s)
dpkg-buildpackage -us -uc -b -jauto || die "dpkg-buildpackage failed (exit status $?)"
end=$(date +%s)
cd "$work"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$work/giambiod_${version}_$arch.deb
changes=$work/giambiod_${version}_$arch.changes
[ -f "$deb" ] || die "dpkg-buildpackage made no $deb"

# ------------------------------------------------------------- lintian
echo "build-deb: lintian $(basename "$changes")"
lintian_rc=0
lintian --display-info --pedantic --fail-on error "$changes" >"$work/lintian.out" 2>&1 || lintian_rc=$?
cat "$work/lintian.out"
if grep -q '^E:' "$work/lintian.out" || [ "$lintian_rc" != 0 ]; then
	die "lintian found errors (exit status $lintian_rc)"
fi

# ------------------------------------------------------ the contents
echo "build-deb: $(basename "$deb")"
dpkg-deb -I "$deb"
dpkg-deb -c "$deb"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||' >"$work/contents"
missing=
for f in \
	usr/sbin/giambiod \
	etc/giambio/giambio.conf \
	lib/systemd/system/giambiod.service \
	lib/systemd/system/giambiod.socket \
	lib/systemd/system/giambiod-socket.service \
	usr/share/man/man8/giambiod.8.gz \
	usr/share/man/man5/giambio.conf.5.gz; do
	grep -qx "$f" "$work/contents" || missing="$missing $f"
done
[ -z "$missing" ] || die "$(basename "$deb") lacks:$missing"

dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles >"$work/conffiles" 2>/dev/null || :
echo "build-deb: conffiles:"
cat "$work/conffiles"
grep -qx /etc/giambio/giambio.conf "$work/conffiles" ||
	die "/etc/giambio/giambio.conf is not a conffile"

# The packaged daemon runs, and accepts the packaged configuration.
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/sbin/giambiod" -V
"$work/root/usr/sbin/giambiod" -t -c "$work/root/etc/giambio/giambio.conf"

mkdir -p "$out"
cp "$work"/*.deb "$out"/
echo "build-deb: built in $((end - start)) s; in $out:"
for f in "$work"/*.deb; do
	echo "  $(basename "$f")"
done
