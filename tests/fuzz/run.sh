#!/bin/sh
# Builds the libFuzzer harnesses (if needed) and runs each one for a
# bounded time over its seed corpus (tests/fuzz/corpus/NAME) and
# dictionary (tests/fuzz/dict/NAME.dict), then prints, per harness, the
# executions per second and the total executions, from libFuzzer's final
# statistics. Exits non-zero if any harness crashes, leaks, times out on an
# input or breaks one of its invariants; the input is kept in
# build/fuzz/artifacts/ (add it to the seed corpus and to a unit test).
#
#   sh tests/fuzz/run.sh [SECONDS [NAME...]]
#
# SECONDS: how long each harness runs (default 45). NAME: conf, framer,
# chatcmd, log or recv_line (default: all). The build is build/fuzz (FUZZ_BUILD), made
# with clang (FUZZ_CC, default clang-14); inputs found by a run are kept in
# build/fuzz/corpus/ and reused by the next one, never written to the tree.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-45}
[ $# -gt 0 ] && shift
names=${*:-conf framer chatcmd log recv_line}
build=${FUZZ_BUILD:-$top/build/fuzz}
cc=${FUZZ_CC:-clang-14}

case $seconds in
'' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number" >&2; exit 64 ;;
esac
for name in $names; do
	[ -f "$top/tests/fuzz/fuzz_$name.c" ] ||
		{ echo "run.sh: no harness $name (conf, framer, chatcmd, log, recv_line)" >&2; exit 64; }
done

# Build.
if [ ! -f "$build/Makefile" ]; then
	[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
	mkdir -p "$build"
	(cd "$build" && CC=$cc "$top/configure" --enable-fuzzing --enable-werror \
		--disable-tests >configure.log 2>&1) ||
		{ tail -n 20 "$build/configure.log" >&2; exit 1; }
fi
targets=
for name in $names; do
	targets="$targets tests/fuzz/fuzz_$name"
done
# shellcheck disable=SC2086
make -C "$build" -j2 $targets >"$build/make.log" 2>&1 ||
	{ tail -n 40 "$build/make.log" >&2; exit 1; }

# Run.
mkdir -p "$build/artifacts" "$build/logs"
failed=
report=
for name in $names; do
	bin=$build/tests/fuzz/fuzz_$name
	seeds=$top/tests/fuzz/corpus/$name
	work=$build/corpus/$name
	log=$build/logs/$name.log
	dict=$top/tests/fuzz/dict/$name.dict
	mkdir -p "$work"
	set -- -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
		-artifact_prefix="$build/artifacts/$name-"
	[ -f "$dict" ] && set -- "$@" -dict="$dict"
	echo "== fuzz $name (${seconds}s)"
	# The first corpus directory gets the new inputs: the seeds stay as
	# they are. timeout(1) is a backstop should libFuzzer not stop itself.
	if timeout $((seconds + 120)) "$bin" "$@" "$work" "$seeds" >"$log" 2>&1; then
		status=ok
	else
		status=FAILED
		failed="$failed $name"
		grep -E 'invariant broken|ERROR:|SUMMARY:|Test unit written|Timeout' \
			"$log" >&2 || tail -n 30 "$log" >&2
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	report="$report$(printf '%-10s %10s %12s  %s' "$name" "${rate:-?}" \
		"${execs:-?}" "$status")
"
done

echo "== fuzzing results (${seconds}s each)"
printf '%-10s %10s %12s  %s\n' harness 'execs/s' 'total execs' status
printf '%s' "$report"
if [ -n "$failed" ]; then
	echo "fuzzing failed:$failed (logs in $build/logs, inputs in $build/artifacts)" >&2
	exit 1
fi
