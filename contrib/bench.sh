#!/bin/sh
# contrib/bench.sh PGJOBD [SPAWNRATE] -- `make bench`.  POSIX sh.
#
# Measures pgjobd against limits measured on the same machine in the same
# run, and prints one table: metric | value | limit/reference | verdict.
# Runs under tests/with-pg.sh (re-executes itself under it if needed).
# SPAWNRATE is contrib/spawnrate.c built (default: next to PGJOBD).
#
#   throughput   BENCH_JOBS (5000) jobs of /bin/true enqueued in one
#                transaction, drained by one daemon at BENCH_CONCURRENCY
#                (4), and at 1 too when that differs (BENCH_JOBS_C1 jobs,
#                default min(BENCH_JOBS, 1000)); jobs/s from the first
#                started_at to the last finished_at (database clock), beside
#                spawnrate's posix_spawn+waitpid rate of /bin/true at the same
#                concurrency: the ceiling for one process per job.
#   latency      pgbench enqueues one job per transaction at BENCH_RATE/s
#                (200) for BENCH_SECONDS (10); the handler /bin/date +%s.%N
#                prints its start time, so pickup latency = result -
#                created_at (enqueue time; one machine, one clock).  The
#                floor: NOTIFY round trip (enqueue -> LISTEN receipt) + one
#                query round trip (the lease) + one spawn, all measured here.
#   memory       VmRSS/VmHWM of the daemon idle after start and after all
#                jobs; limit: idle VmRSS + 4 MiB.
#   CPU          the daemon's own utime+stime per job over the throughput
#                run, beside spawnrate's own CPU per spawn (getrusage);
#                limit: 5 x that (one spawn, three pipes, a share of two
#                SQL statements and a log line per job).
#
#   storage      the issue's drain, twice: BENCH_SCALE_JOBS (20000) jobs of
#                /bin/true at BENCH_SCALE_CONCURRENCY (16), first on an
#                empty database, then beside SCALE=10M (default; or 1M)
#                finished jobs with an attempt each (in pgjobd.history,
#                spread over nine purge days from tomorrow) and a tenth as
#                many jobs scheduled a day ahead, half of them at a higher
#                priority than the backlog; BENCH_DRAINS (5) of each,
#                alternating, each after a CHECKPOINT.  Reports both rates
#                (each the best of its runs, all runs listed) and their
#                ratio (limit: >= 0.9), table and index sizes before and
#                after the drains, the slowest query of
#                contrib/monitoring.sql at that size (limit: < 50 ms), one
#                retention step (a day of a ninth as many jobs again, due
#                today, dropped by pgjobd.maintain(); limit: < 1 s), and
#                what the opt-in payload GIN index costs enqueue.
#
# The cluster keeps PostgreSQL's default durability (fsync and
# synchronous_commit on: PGTEST_DURABLE=1 of tests/with-pg.sh) and the
# daemon connects over TCP to 127.0.0.1 on a port picked at random.
#
# The thresholds below are judgments, stated in the table; the machine's
# numbers they scale are measured in the same run.
#
# Verdicts are "ok" or "over"; the script exits 0 either way (benchmarks
# never fail CI), but non-zero if the benchmark itself cannot run (daemon
# dies, jobs not drained in time, unclean stop).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=contrib/daemon.sh
. "$here/daemon.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: contrib/bench.sh PATH/TO/pgjobd [PATH/TO/spawnrate]" >&2
	exit 2
fi
abs() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd)" "$1" ;;
	esac
}
pgjobd=$(abs "$1")
spawnrate=$(abs "${2:-$(dirname "$1")/spawnrate}")
for f in "$pgjobd" "$spawnrate"; do
	[ -x "$f" ] || { echo "bench: $f: not an executable (make bench builds both)" >&2; exit 1; }
done

if [ -z "${PGTEST_DIR:-}" ]; then
	# A port nobody listens on (other clusters may run on this machine).
	while :; do
		PGTEST_PORT=$((54400 + $(od -An -N2 -tu2 /dev/urandom) % 500))
		ss -ltn 2>/dev/null | grep -q ":$PGTEST_PORT " || break
	done
	PGTEST_DURABLE=1
	export PGTEST_DURABLE PGTEST_PORT
	exec "$top/tests/with-pg.sh" "$here/bench.sh" "$pgjobd" "$spawnrate"
fi

N=${BENCH_JOBS:-5000}
C=${BENCH_CONCURRENCY:-4}
N1=${BENCH_JOBS_C1:-$((N < 1000 ? N : 1000))}   # the C=1 run: fewer, it is slower
RATE=${BENCH_RATE:-200}
SECS=${BENCH_SECONDS:-10}
RSS_SLACK_KIB=4096       # memory limit: idle VmRSS + 4 MiB
THROUGHPUT_MIN=0.5       # ok when jobs/s >= this fraction of the spawn ceiling
LATENCY_FACTOR=2         # ok when latency <= this times the floor
CPU_FACTOR=5             # ok when CPU per job <= this times CPU per bare spawn
DEADLINE=60              # seconds for one batch to drain, else the bench fails

psql="$PGTEST_BINDIR/psql"
pgbench="$PGTEST_BINDIR/pgbench"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgjobd-bench.XXXXXX")
rows=$tmp/rows
: >"$rows"
pid=""
hz=$(getconf CLK_TCK)

say() {
	echo "bench: $*" >&2
}

cleanup() {
	st=$?
	trap - EXIT INT TERM HUP
	kill_daemon
	if [ "$st" -ne 0 ]; then
		for l in "$tmp"/pgjobd-*.log; do
			[ -s "$l" ] || continue
			echo "bench: FAILED (status $st); last lines of $(basename "$l"):" >&2
			tail -n 20 "$l" >&2
		done
	fi
	rm -rf "$tmp"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
	echo "bench: FAILED: $*" >&2
	exit 1
}

sql() {
	"$psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}

# calc EXPR: awk arithmetic on numbers this script produced.
calc() {
	awk "BEGIN { print $1 }"
}

# kv LINE KEY: the value of KEY=... in a spawnrate output line.
kv() {
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# row METRIC VALUE LIMIT VERDICT: one line of the final table.
row() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$rows"
}

# ok_if CONDITION: "ok" or "over".
ok_if() {
	if [ "$(calc "($1) ? 1 : 0")" -eq 1 ]; then echo ok; else echo over; fi
}

write_ini() { # FILE CONCURRENCY [DATABASE]
	cat >"$1" <<INI
; written by contrib/bench.sh
[pgjobd]
database = ${3:+dbname=$3}
queues = default
concurrency = $2
lease = 60s
heartbeat = 20s
poll_interval = 1s
output_limit = 4KiB

[handler.true]
command = /bin/true
max_attempts = 1

[handler.date]
command = /bin/date +%s.%N
max_attempts = 1
INI
	"$pgjobd" -c "$1" -t >/dev/null
}

start_daemon() { # INI LOG
	: >"$2"
	"$pgjobd" -c "$1" </dev/null >>"$2" 2>&1 &
	pid=$!
	i=0
	until grep -q ' ready: ' "$2"; do
		alive || fail "pgjobd exited before it was ready"
		[ "$i" -lt 150 ] || fail "pgjobd not ready after 15s"
		sleep 0.1
		i=$((i + 1))
	done
}

stop_daemon() { # sets stop_rc to its exit status (not in a subshell: it must reap)
	kill -TERM "$pid"
	wait_gone 350 || fail "pgjobd still running 35s after SIGTERM"
	stop_rc=0
	wait "$pid" || stop_rc=$?
	pid=""
}

cpu_ticks() { # the daemon's own utime + stime (children excluded)
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
}

vm_kib() { # FIELD: VmRSS or VmHWM of the daemon, in KiB
	awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"
}

mib() {
	calc "sprintf(\"%.1f MiB\", $1 / 1024)"
}

# wait_drained TYPE AFTER_ID COUNT: until COUNT jobs of TYPE with id >
# AFTER_ID are done or dead.
wait_drained() {
	t0=$(date +%s)
	while :; do
		n=$(sql "SELECT count(*) FROM pgjobd.jobs WHERE type = '$1' AND id > $2
		           AND state IN ('done', 'dead')")
		[ "$n" -ge "$3" ] && return 0
		alive || fail "pgjobd died ($n of $3 $1 jobs finished)"
		[ "$(($(date +%s) - t0))" -lt "$DEADLINE" ] ||
		    fail "only $n of $3 $1 jobs finished after ${DEADLINE}s"
		sleep 0.25
	done
}

# throughput CONCURRENCY COUNT CEILING_LINE: enqueue COUNT true jobs to the
# running daemon, wait, add the row.  Sets cpu_us_job.
throughput() {
	n_jobs=$2
	before=$(sql "SELECT coalesce(max(id), 0) FROM pgjobd.jobs")
	ticks0=$(cpu_ticks)
	sql "SELECT count(pgjobd.enqueue('true')) FROM generate_series(1, $n_jobs)" >/dev/null
	wait_drained true "$before" "$n_jobs"
	ticks1=$(cpu_ticks)
	res=$(sql "SELECT count(*) FILTER (WHERE state = 'done') || ' ' ||
	             extract(epoch FROM max(finished_at) - min(started_at))
	             FROM pgjobd.jobs WHERE type = 'true' AND id > $before")
	done_n=${res%% *}
	secs=${res#* }
	[ "$done_n" -eq "$n_jobs" ] || fail "only $done_n of $n_jobs /bin/true jobs done (others dead)"
	jps=$(calc "$n_jobs / $secs")
	ceil=$(kv "$3" spawns_per_s)
	ratio=$(calc "$jps / $ceil")
	row "throughput, C=$1 ($n_jobs x /bin/true)" \
	    "$(calc "sprintf(\"%.0f jobs/s (%.2fs)\", $jps, $secs)")" \
	    "$(calc "sprintf(\"spawn ceiling %.0f/s at C=$1; ratio %.2f, limit >= $THROUGHPUT_MIN\", $ceil, $ratio)")" \
	    "$(ok_if "$ratio >= $THROUGHPUT_MIN")"
	cpu_us_job=$(calc "($ticks1 - $ticks0) * 1000000 / $hz / $n_jobs")
	say "C=$1: $n_jobs jobs in ${secs}s"
}

write_ini "$tmp/migrate.ini" 1
"$pgjobd" -c "$tmp/migrate.ini" --migrate >/dev/null

# ---- the machine's limits, measured first on a quiet machine ----
say "spawnrate: $N x /bin/true at C=$C"
spawn_c=$("$spawnrate" -n "$N" -c "$C" /bin/true)
if [ "$C" -ne 1 ]; then
	say "spawnrate: $N1 x /bin/true at C=1"
	spawn_1=$("$spawnrate" -n "$N1" -c 1 /bin/true)
else
	spawn_1=$spawn_c
fi

# ---- throughput at C=1 (its own daemon) ----
if [ "$C" -ne 1 ]; then
	write_ini "$tmp/c1.ini" 1
	start_daemon "$tmp/c1.ini" "$tmp/pgjobd-c1.log"
	say "throughput at C=1"
	throughput 1 "$N1" "$spawn_1"
	stop_daemon
	[ "$stop_rc" -eq 0 ] || fail "pgjobd (C=1) exited $stop_rc on SIGTERM"
fi

# ---- the main daemon: memory, throughput, latency ----
write_ini "$tmp/c.ini" "$C"
start_daemon "$tmp/c.ini" "$tmp/pgjobd-c$C.log"
sleep 1
rss0=$(vm_kib VmRSS)
hwm0=$(vm_kib VmHWM)

say "NOTIFY round trip (200 probes)"
probe=$("$spawnrate" -L 200)
sql "DELETE FROM pgjobd.jobs WHERE queue = 'bench-probe'" >/dev/null

say "throughput at C=$C"
throughput "$C" "$N" "$spawn_c"
cpu_job=$cpu_us_job

say "pickup latency: $RATE jobs/s for ${SECS}s (pgbench)"
before=$(sql "SELECT coalesce(max(id), 0) FROM pgjobd.jobs")
printf '%s\n' "SELECT pgjobd.enqueue('date');" >"$tmp/enqueue.sql"
"$pgbench" -n -f "$tmp/enqueue.sql" -R "$RATE" -T "$SECS" -c 1 -j 1 >"$tmp/pgbench.out" 2>&1 ||
    { cat "$tmp/pgbench.out" >&2; fail "pgbench failed"; }
sent=$(sql "SELECT count(*) FROM pgjobd.jobs WHERE type = 'date' AND id > $before")
wait_drained date "$before" "$sent"
lat=$(sql "SELECT count(*) || ' ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3)
             || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3)
             || ' ' || round(max(ms)::numeric, 3)
             FROM (SELECT (split_part(result, E'\n', 1)::numeric
                           - extract(epoch FROM created_at)) * 1000 AS ms
                     FROM pgjobd.jobs WHERE type = 'date' AND id > $before
                      AND state = 'done') s")
# shellcheck disable=SC2086 # four numbers, split on purpose
set -- $lat
lat_n=$1 lat_p50=$2 lat_p99=$3 lat_max=$4
[ "$lat_n" -eq "$sent" ] || fail "only $lat_n of $sent date jobs done"

sleep 1
rss1=$(vm_kib VmRSS)
hwm1=$(vm_kib VmHWM)
total_jobs=$(sql "SELECT count(*) FROM pgjobd.jobs WHERE type IN ('true', 'date')")
log_bad=$(grep -c -E ' (warning|error): ' "$tmp/pgjobd-c$C.log" || true)
if [ "$log_bad" -gt 0 ]; then
	say "the daemon logged $log_bad warning/error line(s):"
	grep -E ' (warning|error): ' "$tmp/pgjobd-c$C.log" | head -n 10 >&2
fi
stop_daemon

# ---- storage at scale (its own database and daemon) ----
# shellcheck source=contrib/bench_storage.sh
. "$here/bench_storage.sh"

# ---- the table ----
n_p50=$(kv "$probe" notify_p50_ms)
n_p99=$(kv "$probe" notify_p99_ms)
q_p50=$(kv "$probe" query_p50_ms)
sp_ms=$(kv "$spawn_1" spawn_ms)
floor50=$(calc "$n_p50 + $q_p50 + $sp_ms")
floor99=$(calc "$n_p99 + $q_p50 + $sp_ms")
row "pickup latency p50 ($lat_n jobs, $RATE/s)" "$lat_p50 ms" \
    "$(calc "sprintf(\"<= ${LATENCY_FACTOR} x floor %.2f ms (NOTIFY p50 %.2f + query %.2f + spawn %.2f)\", $floor50, $n_p50, $q_p50, $sp_ms)")" \
    "$(ok_if "$lat_p50 <= $LATENCY_FACTOR * $floor50")"
row "pickup latency p99 (max $lat_max ms)" "$lat_p99 ms" \
    "$(calc "sprintf(\"<= ${LATENCY_FACTOR} x floor %.2f ms (NOTIFY p99 %.2f + query %.2f + spawn %.2f)\", $floor99, $n_p99, $q_p50, $sp_ms)")" \
    "$(ok_if "$lat_p99 <= $LATENCY_FACTOR * $floor99")"
row "daemon RSS idle after start" "VmRSS $(mib "$rss0"), VmHWM $(mib "$hwm0")" \
    "reference for the rows below" "-"
row "daemon VmRSS after $total_jobs jobs" "$(mib "$rss1") (+$(calc "sprintf(\"%.1f\", ($rss1 - $rss0) / 1024)") MiB)" \
    "<= idle VmRSS + $((RSS_SLACK_KIB / 1024)) MiB = $(mib "$((rss0 + RSS_SLACK_KIB))")" \
    "$(ok_if "$rss1 <= $rss0 + $RSS_SLACK_KIB")"
row "daemon VmHWM (peak) after $total_jobs jobs" "$(mib "$hwm1") (+$(calc "sprintf(\"%.1f\", ($hwm1 - $rss0) / 1024)") MiB)" \
    "<= idle VmRSS + $((RSS_SLACK_KIB / 1024)) MiB = $(mib "$((rss0 + RSS_SLACK_KIB))")" \
    "$(ok_if "$hwm1 <= $rss0 + $RSS_SLACK_KIB")"
sp_cpu=$(kv "$spawn_c" cpu_us_per_spawn)
row "daemon CPU per job, C=$C (utime+stime)" "$(calc "sprintf(\"%.0f us\", $cpu_job)")" \
    "<= $CPU_FACTOR x bare posix_spawn+waitpid $sp_cpu us (spawnrate); tick $(calc "sprintf(\"%.0f\", 1000000 / $hz / $N)") us/job" \
    "$(ok_if "$cpu_job <= $CPU_FACTOR * $sp_cpu")"
row "clean stop on SIGTERM" "exit $stop_rc" "exit 0" "$(ok_if "$stop_rc == 0")"

echo
echo "pgjobd bench: $(nproc) CPU(s), BENCH_JOBS=$N BENCH_CONCURRENCY=$C BENCH_RATE=$RATE BENCH_SECONDS=$SECS SCALE=${SCALE:-10M}"
echo "PostgreSQL $("$psql" -X -At -c 'SHOW server_version'): fsync=$("$psql" -X -At -c 'SHOW fsync'), synchronous_commit=$("$psql" -X -At -c 'SHOW synchronous_commit'), daemon over TCP $PGHOST:$PGPORT"
awk -F '\t' '
	{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
	END {
		h[1] = "metric"; h[2] = "value"; h[3] = "limit / reference"; h[4] = "verdict"
		for (i = 1; i <= 4; i++) if (length(h[i]) > w[i]) w[i] = length(h[i])
		line = sprintf("%-" w[1] "s | %-" w[2] "s | %-" w[3] "s | %s", h[1], h[2], h[3], h[4])
		print line
		sep = ""
		for (i = 1; i <= 4; i++) { s = ""; for (k = 0; k < w[i] + (i > 1) + (i < 4); k++) s = s "-"; sep = sep s (i < 4 ? "+" : "") }
		print sep
		for (r = 1; r <= NR; r++)
			printf "%-" w[1] "s | %-" w[2] "s | %-" w[3] "s | %s\n", cell[r, 1], cell[r, 2], cell[r, 3], cell[r, 4]
	}' "$rows"
over=$(awk -F '\t' '$4 == "over"' "$rows" | wc -l)
if [ "$over" -gt 0 ]; then
	echo "bench: $over metric(s) OVER their limit (reported only; exit 0)"
else
	echo "bench: every metric within its limit"
fi
