#!/bin/sh
# bench/run.sh - giambiod beside the two reference echo servers (issue 6).
#
#   sh bench/run.sh BUILDDIR        (make bench-servers runs it)
#
# BUILDDIR holds src/giambiod, bench/loadgen, bench/echo_libevent and
# bench/echo_epoll (a reference server that was not built is skipped).
# Every server runs pinned to CPU 0 and bench/loadgen to CPU 1, over
# loopback only, one server after the other, a fresh server per run.
#
# Environment:
#   BENCH_SECONDS    measured seconds per echo run (5; 2 for a short run)
#   BENCH_WARMUP     loadgen warmup seconds before each measured run (1)
#   BENCH_ROUNDS     runs of each echo and chat workload, the servers
#                    taking turns; each figure is the median of its runs
#                    (1; 5 or more on a noisy machine)
#   BENCH_PORT       first TCP port tried on 127.0.0.1 (25700)
#   BENCH_MEM_CONNS  idle connections for the memory figure (10000)
#   BENCH_MEM_HOLD   seconds loadgen holds them (10)
#   BENCH_WORKLOADS  echo workloads to run (all: "c1 c100 c1000 big10 pipe100";
#                    empty: none)
#   BENCH_CHAT       0 skips the chat fan-out runs
#   BENCH_MEM        0 skips the idle-connection memory figure
#   BENCH_STRACE     0 skips the system-call count (on if strace exists)
#   BENCH_CALLGRIND  0 skips instructions per message (on if valgrind
#                    and callgrind_control exist)
#
# Echo workloads: 1 connection ping-pong 64 B; 100 and 1000 connections
# ping-pong 64 B; 10 connections 16 KiB messages; 100 connections with 16
# lines of 64 B in flight each (pipelined). For each server: msgs/s
# and p99 from loadgen's RESULT line, and messages per second of server
# CPU time.
#
# Server CPU: utime+stime of the server process (all its threads) from
# /proc/PID/stat, in clock ticks (getconf CLK_TCK). The script samples it
# INSIDE loadgen's measured window: loadgen runs with -w WARMUP -t SECONDS,
# the first sample is taken WARMUP+0.2 s after loadgen starts and the
# second 0.4 s before the measured window ends, so neither connection set-up
# nor teardown is counted. That gives the server's CPU utilisation during
# steady state, and msgs per CPU-second = msgs/s / utilisation.
#
# Then, for giambiod: resident memory per idle connection (loadgen
# --storm), system calls per echoed message at 100 connections (strace -c
# -f; the references too, for comparison) and instructions per message
# (callgrind, giambiod and the references).
#
# Chat fan-out: one sender and 100 or 1000 receivers in one room
# (bench/chatgen), giambiod beside ncat --chat when it is installed:
# deliveries per second, delivery latency, deliveries per server CPU-s.

set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: sh bench/run.sh BUILDDIR" >&2
	exit 2
fi
B=$(cd "$1" && pwd)
GIAMBIOD=$B/src/giambiod
LOADGEN=$B/bench/loadgen
D=${BENCH_SECONDS:-5}
W=${BENCH_WARMUP:-1}
PORT=${BENCH_PORT:-25700}
MEM_N=${BENCH_MEM_CONNS:-10000}
MEM_HOLD=${BENCH_MEM_HOLD:-10}
HZ=$(getconf CLK_TCK)

for f in "$GIAMBIOD" "$LOADGEN"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f is missing (make bench-servers builds it)" >&2
		exit 1
	fi
done
for t in taskset timeout awk; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "run.sh: $t is needed" >&2
		exit 1
	fi
done
case $D in ''|*[!0-9]*) echo "run.sh: BENCH_SECONDS must be whole seconds" >&2; exit 2;; esac
case $W in ''|*[!0-9]*) echo "run.sh: BENCH_WARMUP must be whole seconds" >&2; exit 2;; esac
ROUNDS=${BENCH_ROUNDS:-1}
case $ROUNDS in ''|0|*[!0-9]*) echo "run.sh: BENCH_ROUNDS must be a positive whole number" >&2; exit 2;; esac
[ "$D" -ge 1 ] || { echo "run.sh: BENCH_SECONDS must be >= 1" >&2; exit 2; }

SERVERS=giambiod
for s in libevent epoll; do
	if [ -x "$B/bench/echo_$s" ]; then
		SERVERS="$SERVERS $s"
	else
		echo "run.sh: $B/bench/echo_$s not built: skipped" >&2
	fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/giambio-bench.XXXXXX") || exit 1
SRV_PID=
TRACEE=
LG_PID=

# Stops the running server: SIGTERM, then SIGKILL after 3 s.
stop_server() {
	[ -n "$SRV_PID" ] || return 0
	if [ -n "$TRACEE" ]; then
		kill -TERM "$TRACEE" 2>/dev/null
	else
		kill -TERM "$SRV_PID" 2>/dev/null
	fi
	i=0
	while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then
		echo "run.sh: server $SRV_PID did not stop on SIGTERM: killed" >&2
		[ -n "$TRACEE" ] && kill -KILL "$TRACEE" 2>/dev/null
		kill -KILL "$SRV_PID" 2>/dev/null
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
	TRACEE=
}

cleanup() {
	[ -n "$LG_PID" ] && kill -TERM "$LG_PID" 2>/dev/null
	stop_server
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The configuration the benchmark runs giambiod with: nothing limited, no
# log but errors, a long enough line for 16 KiB messages, a quick stop.
CONF=$TMP/giambio.conf
printf '[log]\nlevel = error\n[limits]\nmax_clients = 0\nmax_clients_per_ip = 0\nmax_line = 64KiB\nshutdown_timeout = 0\n' >"$CONF"
# For the memory figure: the default line length (4 KiB).
MEMCONF=$TMP/giambio-mem.conf
printf '[log]\nlevel = error\n[limits]\nmax_clients = 0\nmax_clients_per_ip = 0\nshutdown_timeout = 0\n' >"$MEMCONF"

now() { date +%s.%N; }
ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# field NAME "RESULT ..." -> value
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
calc() { awk "BEGIN { $1 }"; }

# Is anything on this machine using TCP port $1 (any state, IPv4 or 6)?
port_used() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}
port_listening() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" 'substr($2, length($2) - 4) == p && $4 == "0A" { f = 1 } END { exit !f }'
}
# Sets PORT to a port nothing uses, from PORT + 1 on.
next_port() {
	PORT=$((PORT + 1))
	while port_used "$PORT"; do
		PORT=$((PORT + 1))
	done
}

# start_server NAME plain|strace|callgrind: starts NAME pinned to CPU 0 on
# a fresh port and waits until it listens. Sets SRV_PID (and TRACEE, the
# server under strace) and SRV (the pid whose CPU and memory are read).
start_server() {
	next_port
	how=$2
	case $how in
	plain) pre="taskset -c 0" ;;
	strace) pre="taskset -c 0 strace -c -f -o $TMP/strace.$1" ;;
	callgrind)
		rm -f "$TMP/cg.$1"*
		pre="taskset -c 0 valgrind -q --tool=callgrind --callgrind-out-file=$TMP/cg.$1" ;;
	esac
	conf=${SRV_CONF:-$CONF}
	[ "${3:-}" = mem ] && conf=$MEMCONF
	case $1 in
	giambiod) set -- "$GIAMBIOD" -c "$conf" --listen "127.0.0.1:$PORT" -l error ;;
	ncat) set -- ncat -l 127.0.0.1 "$PORT" --chat -m 5000 ;;
	*) set -- "$B/bench/echo_$1" -p "$PORT" ;;
	esac
	$pre "$@" >"$TMP/server.out" 2>"$TMP/server.err" &
	SRV_PID=$!
	SRV=$SRV_PID
	i=0
	limit=100 # 10 s; valgrind starts slowly
	[ "$how" = callgrind ] && limit=600
	while ! port_listening "$PORT"; do
		if ! kill -0 "$SRV_PID" 2>/dev/null || [ $i -ge $limit ]; then
			echo "run.sh: server '$*' did not start listening on $PORT:" >&2
			sed 's/^/  /' "$TMP/server.err" >&2
			stop_server
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	if [ "$how" = strace ]; then
		TRACEE=$(cat "/proc/$SRV_PID/task/$SRV_PID/children" 2>/dev/null | awk '{ print $1 }')
		SRV=$TRACEE
	fi
	return 0
}

# loadgen LIMIT ARGS...: runs $TOOL (loadgen unless set) pinned to CPU 1
# against PORT in the background, output in $TMP/lg.out; LG_PID.
loadgen_bg() {
	lim=$1
	shift
	timeout -k 5 "$lim" taskset -c 1 "${TOOL:-$LOADGEN}" -H 127.0.0.1 -p "$PORT" "$@" >"$TMP/lg.out" 2>&1 &
	LG_PID=$!
}
# Waits for it; sets RES to its RESULT line (empty on failure).
loadgen_wait() {
	wait "$LG_PID"
	rc=$?
	LG_PID=
	RES=$(grep '^RESULT' "$TMP/lg.out" | tail -n 1)
	if [ $rc -ne 0 ] || [ -z "$RES" ]; then
		echo "run.sh: loadgen failed (exit $rc):" >&2
		tail -n 5 "$TMP/lg.out" | sed 's/^/  /' >&2
		RES=
		return 1
	fi
	return 0
}

echo "giambiod benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, Linux $(uname -r)"
echo "build: $B"
echo "servers on CPU 0, loadgen on CPU 1, 127.0.0.1; ${D} s measured after ${W} s warmup per run"
[ "$ROUNDS" -gt 1 ] && echo "each figure: the median of $ROUNDS runs, the servers taking turns"
echo "msgs/CPU-s: msgs/s divided by the server's CPU utilisation (utime+stime"
echo "  from /proc/PID/stat) sampled inside the measured window"
echo "gen_cpu%: the load generator's CPU use in the same window (near 100:"
echo "  it, not the server, set the pace)"

# ------------------------------------------------------------- echo runs
RESULTS=$TMP/results # workload server msgs_per_s p99 util msgs_per_cpu errors gen_util
RUNS=$TMP/runs       # the same, one line per run
: >"$RESULTS"
: >"$RUNS"

# measured_run WORKLOAD SERVER RATE ARGS...: starts SERVER, runs $TOOL
# (loadgen unless set) with ARGS, and records the RATE field of its
# RESULT line, p99, the server's CPU use, RATE per CPU-second and the load
# generator's own CPU use (near 100 %: it, not the server, set the pace). A tool
# that prints "WARMUP" (chatgen) starts its warmup there, after its
# set-up; loadgen starts it at once.
measured_run() {
	wl=$1 srv=$2 rate=$3
	shift 3
	if ! start_server "$srv" plain; then
		echo "$wl $srv - - - - - -" >>"$RUNS"
		return
	fi
	loadgen_bg $((W + D + 120)) "$@" -t "$D" -w "$W"
	if [ "${TOOL:-$LOADGEN}" != "$LOADGEN" ]; then
		i=0
		while ! grep -q '^WARMUP' "$TMP/lg.out" && kill -0 "$LG_PID" 2>/dev/null &&
			[ $i -lt 1200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	# The CPU window: from WARMUP+0.2 s to WARMUP+SECONDS-0.4 s. The
	# tool is the child of timeout(1) (taskset execs it).
	sleep "$W"
	sleep 0.2
	gen=$(awk '{ print $1 }' "/proc/$LG_PID/task/$LG_PID/children" 2>/dev/null)
	t0=$(now)
	c0=$(ticks "$SRV")
	g0=$(ticks "${gen:-0}")
	sleep "$(calc "print $D - 0.6")"
	t1=$(now)
	c1=$(ticks "$SRV")
	g1=$(ticks "${gen:-0}")
	early=
	kill -0 "$LG_PID" 2>/dev/null || early=1
	if loadgen_wait; then
		[ -n "$early" ] && echo "run.sh: $wl/$srv: load ended before the CPU window closed" >&2
		mps=$(field "$rate" "$RES")
		p99=$(field p99_us "$RES")
		lost=$(field lost "$RES")
		err=$(($(field errors "$RES") + ${lost:-0}))
		util=$(calc "u = ($c1 - $c0) / $HZ / ($t1 - $t0); printf \"%.3f\", u")
		mpc=$(calc "u = $util; if (u > 0) printf \"%.0f\", $mps / u; else print \"-\"")
		gutil=-
		[ -n "$g0" ] && [ -n "$g1" ] &&
			gutil=$(calc "printf \"%.3f\", ($g1 - $g0) / $HZ / ($t1 - $t0)")
		echo "$wl $srv $mps $p99 $util $mpc $err $gutil" >>"$RUNS"
	else
		echo "$wl $srv - - - - - -" >>"$RUNS"
	fi
	stop_server
}

# rounds WORKLOAD SERVERS ARGS...: measured_run for each server in turn,
# ROUNDS times, then one line per server in RESULTS: the median of each
# figure over the runs that produced one, and the errors of all runs.
rounds() {
	rw=$1 rs=$2
	shift 2
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		for s in $rs; do
			measured_run "$rw" "$s" "$@"
		done
		r=$((r + 1))
	done
	for s in $rs; do
		awk -v w="$rw" -v s="$s" '
			function median(col,   n, i, j, t, v) {
				n = 0
				for (i = 1; i <= rows; i++)
					if (cell[i, col] != "-")
						v[++n] = cell[i, col] + 0
				if (n == 0)
					return "-"
				for (i = 2; i <= n; i++)      # insertion sort: few runs
					for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
						t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
					}
				return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			}
			$1 == w && $2 == s {
				rows++
				for (c = 3; c <= 8; c++)
					cell[rows, c] = $c
				if ($7 != "-")
					err += $7
			}
			END {
				if (!rows)
					exit
				printf "%s %s", w, s
				for (c = 3; c <= 6; c++) {
					m = median(c)
					printf (m == "-" ? " %s" : (c == 5 ? " %.3f" : " %.0f")), m
				}
				m = median(8)
				printf " %d %s\n", err, (m == "-" ? m : sprintf("%.3f", m))
			}' "$RUNS" >>"$RESULTS"
	done
}

ratio() { # a b -> a/b with 2 decimals, or -
	case "$1$2" in *-*|'') echo "-"; return ;; esac
	calc "if ($2 > 0) printf \"%.2fx\", $1 / $2; else print \"-\""
}

table() { # WORKLOAD TITLE [UNIT [REFERENCES]]
	tw=$1
	unit=${3:-msgs}
	echo
	echo "== $2"
	printf '%-10s %12s %8s %9s %12s %7s %9s\n' server "$unit/s" p99_us srv_cpu% "$unit/CPU-s" errors gen_cpu%
	awk -v w="$tw" '$1 == w {
		cpu = ($5 == "-") ? "-" : sprintf("%.1f", $5 * 100)
		gen = ($8 == "-") ? "-" : sprintf("%.1f", $8 * 100)
		printf "%-10s %12s %8s %9s %12s %7s %9s\n", $2, $3, $4, cpu, $6, $7, gen }' "$RESULTS"
	g=$(awk -v w="$tw" '$1 == w && $2 == "giambiod"' "$RESULTS")
	for ref in ${4:-libevent epoll}; do
		r=$(awk -v w="$tw" -v s=$ref '$1 == w && $2 == s' "$RESULTS")
		[ -n "$r" ] || continue
		set -- $g
		gm=$3 gp=$4 gc=$6
		set -- $r
		printf 'giambiod/%-8s %s/s %s  %s/CPU-s %s  p99 %s\n' "$ref" \
			"$unit" "$(ratio "$gm" "$3")" "$unit" "$(ratio "$gc" "$6")" "$(ratio "$gp" "$4")"
	done
}

WORKLOADS=
for wl in c1:1:64:1 c100:100:64:1 c1000:1000:64:1 big10:10:16384:1 \
	pipe100:100:64:16; do
	case " ${BENCH_WORKLOADS-c1 c100 c1000 big10 pipe100} " in
	*" ${wl%%:*} "*) WORKLOADS="$WORKLOADS $wl" ;;
	esac
done
for wl in $WORKLOADS; do
	IFS=: read -r name conns size depth <<EOF
$wl
EOF
	rounds "$name" "$SERVERS" msgs_per_s -c "$conns" -s "$size" -d "$depth"
	case $name in
	c1) title="1 connection, ping-pong, 64 B" ;;
	big10) title="10 connections, ping-pong, 16 KiB messages" ;;
	pipe100) title="100 connections, 16 lines in flight each, 64 B" ;;
	*) title="$conns connections, ping-pong, 64 B" ;;
	esac
	table "$name" "$title"
done

# Targets of issue 6 that these tables decide.
echo
echo "== targets"
for wl in $WORKLOADS; do
	name=${wl%%:*}
	awk -v w="$name" '
		$1 == w { m[$2] = $3; p[$2] = $4; c[$2] = $6 }
		END {
			if (!("giambiod" in m) || m["giambiod"] == "-") exit
			if ("libevent" in m && m["libevent"] != "-") {
				r = m["giambiod"] / m["libevent"]
				printf "%-6s msgs/s >= 1.0x libevent: %.2fx %s\n", w, r, (r >= 1.0 ? "ok" : "MISSED")
				ok = (p["giambiod"] + 0 <= p["libevent"] + 0) ? "ok" : "MISSED"
				printf "%-6s p99 <= libevent: %s vs %s us %s\n", w, p["giambiod"], p["libevent"], ok
			}
			if ((w == "c100" || w == "c1000") && ("epoll" in c) && c["epoll"] != "-" && c["giambiod"] != "-") {
				r = c["giambiod"] / c["epoll"]
				printf "%-6s msgs/CPU-s >= 0.9x epoll: %.2fx %s\n", w, r, (r >= 0.9 ? "ok" : "MISSED")
			}
		}' "$RESULTS"
done

# --------------------------------------------------------- chat fan-out
# One sender, N receivers in one room (bench/chatgen), giambiod in chat
# mode beside ncat --chat (at 100 receivers: ncat's select() cannot go
# past 1024 descriptors); then 100 receivers with 10 more that never read.
CHATGEN=$B/bench/chatgen
CHATCONF=$TMP/giambio-chat.conf
printf '[log]\nlevel = error\n[server]\nmode = chat\n[limits]\nmax_clients = 0\nmax_clients_per_ip = 0\nshutdown_timeout = 0\n' >"$CHATCONF"
if [ "${BENCH_CHAT:-1}" != 0 ] && [ -x "$CHATGEN" ]; then
	CHATREFS=
	if command -v ncat >/dev/null 2>&1; then
		CHATREFS=ncat
	else
		echo "run.sh: ncat is not installed: chat runs without it" >&2
	fi
	TOOL=$CHATGEN
	for wl in chat100:100:0 chat1000:1000:0 slow100:100:10; do
		IFS=: read -r name nr ns <<EOF
$wl
EOF
		# Only giambiod reads SRV_CONF; ncat cannot go past 1024
		# descriptors.
		chat_servers="giambiod"
		[ "$nr" -le 100 ] && chat_servers="giambiod $CHATREFS"
		SRV_CONF=$CHATCONF
		rounds "$name" "$chat_servers" deliveries_per_s -r "$nr" -S "$ns"
		SRV_CONF=
		title="chat: 1 sender, $nr receivers"
		[ "$ns" -gt 0 ] && title="$title and $ns that never read"
		table "$name" "$title" dlv "$CHATREFS"
	done
	TOOL=
fi

# ---------------------------------------------------------------- memory
if [ "${BENCH_MEM:-1}" != 0 ]; then
echo
echo "== memory: giambiod holding $MEM_N idle connections"
hard=$(ulimit -H -n)
if [ "$hard" = unlimited ]; then
	ulimit -n 1048576 2>/dev/null
else
	ulimit -n "$hard" 2>/dev/null
fi
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((MEM_N + 64)) ]; then
	MEM_N=$((nofile - 64))
	echo "(open files limited to $nofile: $MEM_N connections)"
fi
if start_server giambiod plain mem; then
	sleep 0.5
	rss0=$(rss_kib "$SRV")
	fd0=$(nfds "$SRV")
	loadgen_bg $((MEM_HOLD + 120)) --storm "$MEM_N" --hold "$MEM_HOLD"
	# Poll until every connection is open (or loadgen is done); keep the
	# sample with the most connections.
	best=0
	rss1=$rss0
	i=0
	while kill -0 "$LG_PID" 2>/dev/null && [ $i -lt $(((MEM_HOLD + 60) * 5)) ]; do
		n=$(($(nfds "$SRV") - fd0))
		if [ "$n" -ge "$best" ] && [ "$n" -gt 0 ]; then
			r=$(rss_kib "$SRV")
			best=$n
			rss1=$r
		fi
		if [ "$n" -ge "$MEM_N" ]; then
			sleep 1 # let every welcome line go out, then sample again
			n=$(($(nfds "$SRV") - fd0))
			r=$(rss_kib "$SRV")
			[ "$n" -ge "$best" ] && { best=$n; rss1=$r; }
			break
		fi
		sleep 0.2
		i=$((i + 1))
	done
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SRV/status" 2>/dev/null)
	loadgen_wait
	echo "loadgen: ${RES:-no result}"
	echo "VmRSS idle: $rss0 KiB; with $best connections: $rss1 KiB (VmHWM $hwm KiB)"
	if [ "$best" -gt 0 ]; then
		calc "printf \"resident per connection: %.2f KiB (target <= 16 KiB)\n\", ($rss1 - $rss0) / $best"
	fi
	stop_server
fi
fi

# --------------------------------------------------- system calls / message
if [ "${BENCH_STRACE:-1}" != 0 ] && command -v strace >/dev/null 2>&1; then
	echo
	echo "== system calls per echoed message: 100 connections, 64 B, 3 s under strace -c -f"
	echo "(whole run: loadgen -w 0, so connection set-up is included; strace slows the server)"
	for s in $SERVERS; do
		start_server "$s" strace || continue
		loadgen_bg 60 -c 100 -s 64 -d 1 -t 3 -w 0
		loadgen_wait
		stop_server
		msgs=$(field msgs "$RES")
		f=$TMP/strace.$s
		if [ -z "$msgs" ] || [ "$msgs" -eq 0 ] || [ ! -s "$f" ]; then
			echo "$s: no figure (msgs=${msgs:-none})"
			continue
		fi
		awk -v s="$s" -v m="$msgs" '
			$NF == "total" { t = $4 }
			$1 ~ /^[0-9.]+$/ && $NF != "total" { n[$NF] = $4; e[$NF] = (NF == 6) ? $5 : 0 }
			END {
				printf "%-9s %8d msgs %9d calls  %.3f calls/msg  (", s, m, t, t / m
				k = 0
				while (k < 4) {
					best = ""; bv = -1
					for (c in n) if (n[c] > bv) { bv = n[c]; best = c }
					if (best == "") break
					printf "%s%s %.3f", (k ? ", " : ""), best, bv / m
					if (e[best] / m >= 0.0005)
						printf " (%.3f failed)", e[best] / m
					delete n[best]; k++
				}
				print ")"
			}' "$f"
	done
	echo "(target for giambiod: <= 2.1 calls per message)"
fi

# ------------------------------------------------ instructions / message
if [ "${BENCH_CALLGRIND:-1}" != 0 ] && command -v valgrind >/dev/null 2>&1 &&
	command -v callgrind_control >/dev/null 2>&1; then
	echo
	echo "== instructions per echoed message: 100 connections, 64 B, 3 s under callgrind"
	echo "(user-space instructions of the server only; counters zeroed just before loadgen starts)"
	for s in $SERVERS; do
		start_server "$s" callgrind || continue
		callgrind_control -z "$SRV" >/dev/null 2>&1
		loadgen_bg 120 -c 100 -s 64 -d 1 -t 3 -w 0
		loadgen_wait
		rm -f "$TMP/cg.$s".*
		callgrind_control -d "$SRV" >/dev/null 2>&1
		stop_server
		msgs=$(field msgs "$RES")
		dump=$(ls "$TMP/cg.$s".* 2>/dev/null | head -n 1)
		ir=
		[ -n "$dump" ] && ir=$(awk '/^totals:/ { t = $2 } /^summary:/ { m = $2 }
			END { print (t != "") ? t : m }' "$dump")
		if [ -z "$msgs" ] || [ "$msgs" -eq 0 ] || [ -z "$ir" ]; then
			echo "$s: no figure (msgs=${msgs:-none}, Ir=${ir:-none})"
			continue
		fi
		calc "printf \"%-9s %8d msgs %12d Ir  %.0f Ir/msg\n\", \"$s\", $msgs, $ir, $ir / $msgs"
	done
fi
