#!/bin/sh
# Builds and runs the whole test suite: the normal build with warnings as
# errors, valgrind memcheck over the unit tests and over the daemon tests,
# the static analysers (cppcheck, clang-tidy), the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer with fault injection, the
# soak with hostile clients against that build, the suite once more built
# the portable way (ucontext task switch, no libsystemd), make distcheck
# (the release tarball builds, passes its tests and installs), the
# libFuzzer harnesses for a bounded time, and the Debian package (lintian
# clean, its file list checked). Exits non-zero on the first failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh packaging/install-deps.sh test
autoreconf -fi
jobs=$(nproc)

passed=0
run_build() { # name, configure flags...
	name=$1
	shift
	echo "== $name build"
	rm -rf "build/$name"
	mkdir -p "build/$name"
	(cd "build/$name" && ../../configure --enable-werror "$@" >/dev/null &&
		make -j"$jobs" >/dev/null &&
		if ! make -j"$jobs" check; then
			cat test-suite.log >&2
			exit 1
		fi)
	n=$(sed -n 's/^# PASS: *//p' "build/$name/test-suite.log")
	passed=$((passed + n))
}

run_build normal
echo "== valgrind memcheck"
(cd build/normal && make check-valgrind)
echo "== valgrind memcheck over the daemon tests"
# One script at a time: the daemons are slow under valgrind, and timing
# tests (a reader keeping up with a flood) need the CPU.
(cd build/normal && make check-valgrind-daemon ||
	{ cat test-suite-valgrind.log >&2; exit 1; })
echo "== static analysis (cppcheck, clang-tidy)"
sh tests/analyse.sh build/analyse
# Also with fault injection (tests/daemon/test_faults.py), test builds
# only.
run_build sanitize --enable-sanitizers --enable-fault-injection
echo "== soak: hostile clients against the sanitizer build"
python3 tests/soak.py --giambiod build/sanitize/src/giambiod --seconds 45
run_build portable --with-context=ucontext --without-systemd
echo "== make distcheck"
(cd build/normal && make -j"$jobs" distcheck >distcheck.log 2>&1 ||
	{ tail -n 150 distcheck.log >&2; exit 1; })
# The libFuzzer harnesses, built afresh, each for a bounded time (five of
# them at 45 s: about four and a half minutes with the build).
echo "== fuzzing"
rm -rf build/fuzz
sh tests/fuzz/run.sh "${FUZZ_SECONDS:-45}"
echo "== Debian package"
sh packaging/build-deb.sh build/deb
echo "== all test suites passed"
echo "tests: $passed passed, 0 failed"
