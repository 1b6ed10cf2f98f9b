#!/bin/sh
# Static analysis of src/: cppcheck, then clang-tidy (configuration in
# .clang-tidy) over every .c file, both with findings as errors.
#
#   sh tests/analyse.sh [BUILDDIR]
#
# BUILDDIR (default build/analyse) is configured if it is not already; the
# library and daemon objects are compiled there under bear to record the
# compile commands clang-tidy needs. Exits non-zero when either analyser
# finds anything (clang-tidy does not run after a cppcheck finding).
# cppcheck checks every preprocessor configuration of each file; clang-tidy
# sees each file as this build compiles it (with libsystemd and the fault
# injection hooks, so src/gb/fault.c is seen too; the code for builds
# without libsystemd is cppcheck's alone), plus ctx_ucontext.c (built only
# by --with-context=ucontext) with GB_CTX_UCONTEXT defined.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/analyse}
jobs=${JOBS:-2}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
cd "$top"

if [ ! -f "$build/Makefile" ]; then
	[ -x configure ] || autoreconf -fi
	mkdir -p "$build"
	(cd "$build" && "$top/configure" --enable-werror --enable-fault-injection >/dev/null)
fi
files=$(find src -name '*.c' | sort)
nfiles=$(echo "$files" | wc -l)

echo "== cppcheck ($(cppcheck --version)) over $nfiles files"
cppcheck --quiet --error-exitcode=1 --inline-suppr --std=c11 \
	--enable=warning,style,performance,portability --library=posix \
	--suppressions-list=tests/analyse/cppcheck.supp \
	--template='{file}:{line}: {severity} {id}: {message}' \
	-I src/gb -I src/daemon -I "$build" $files

echo "== compile commands"
(cd "$build" && bear --output compile_commands.json -- \
	make -B -j"$jobs" src/gb/libgb.a src/daemon/libgiambiod.a \
	src/giambiod >/dev/null)
python3 tests/analyse/compdb.py "$build/compile_commands.json" $files

nchecks=$("$CLANG_TIDY" --list-checks | grep -c '^    ')
echo "== $CLANG_TIDY: $nchecks checks over $nfiles files"
# One process per file; a finding makes clang-tidy exit non-zero
# (WarningsAsErrors), and then xargs. The per-file "N warnings generated"
# counts on stderr are noise.
log=$build/clang-tidy.log
if echo "$files" | xargs -P "$jobs" -n 1 "$CLANG_TIDY" -p "$build" \
	--quiet >"$log" 2>&1; then
	status=0
else
	status=1
fi
grep -v '^[0-9]* warnings\? \(and [0-9]* errors\? \)\?generated\.$' "$log" ||
	true
if [ "$status" != 0 ]; then
	echo "analyse: clang-tidy findings above" >&2
	exit 1
fi
echo "== analysers clean: cppcheck and $nchecks clang-tidy checks, $nfiles files"
