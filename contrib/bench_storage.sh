# contrib/bench_storage.sh -- the storage part of `make bench`, sourced by
# contrib/bench.sh (whose helpers it uses: sql, calc, row, ok_if, say,
# fail, write_ini, start_daemon, stop_daemon).  POSIX sh.  See the header
# of contrib/bench.sh for what it measures.

SN=${BENCH_SCALE_JOBS:-20000}
SC=${BENCH_SCALE_CONCURRENCY:-16}
case ${SCALE:-10M} in
10M) n_finished=10000000 ;;
1M) n_finished=1000000 ;;
*) fail "SCALE=$SCALE: use 10M or 1M" ;;
esac
n_scheduled=$((n_finished / 10))
SCALE_RATIO_MIN=0.9     # the scale run drains at >= 90% of the empty one
RETENTION_MAX_S=1       # one retention step of a day of a tenth of the rows
MONITOR_MAX_MS=50       # every monitoring query

ms_now() {
	date +%s%N | cut -c1-13
}

# drain LABEL DATABASE: enqueue SN jobs of /bin/true in one transaction to
# a daemon at SC, wait until all are done; sets jps (jobs/s, first start to
# last finish by the database clock).  Each drain starts after a
# checkpoint, so that none pays for the writes of what came before it (the
# fill's gigabytes above all).
drain() {
	PGDATABASE=$2
	sql "CHECKPOINT" >/dev/null
	since=$(sql "SELECT now()")
	before=$(sql "SELECT coalesce(max(id), 0) FROM pgjobd.jobs WHERE id < 1000000000")
	start_daemon "$tmp/$2.ini" "$tmp/pgjobd-$1.log"
	sql "SELECT count(pgjobd.enqueue('true')) FROM generate_series(1, $SN)" >/dev/null
	t0=$(date +%s)
	while :; do
		n=$(sql "SELECT count(*) FROM pgjobd.history WHERE type = 'true' AND id > $before
		           AND id < 1000000000")
		[ "$n" -ge "$SN" ] && break
		alive || fail "pgjobd died ($n of $SN jobs finished, $1)"
		[ "$(($(date +%s) - t0))" -lt 600 ] || fail "$1: only $n of $SN jobs finished after 600s"
		sleep 0.5
	done
	stop_daemon
	[ "$stop_rc" -eq 0 ] || fail "pgjobd ($1) exited $stop_rc on SIGTERM"
	res=$(sql "SELECT count(*) FILTER (WHERE state = 'done') || ' ' ||
	             extract(epoch FROM max(finished_at) - min(started_at))
	             FROM pgjobd.history WHERE type = 'true' AND id > $before AND id < 1000000000")
	[ "${res%% *}" -eq "$SN" ] || fail "$1: only ${res%% *} of $SN jobs done"
	jps=$(calc "$SN / ${res#* }")
	# The big tables autovacuum finished meanwhile (it competes with the
	# drain for both cores and the disk): said beside the run.
	vacuumed=$(sql "SELECT string_agg(relname, '+' ORDER BY relname) FROM pg_stat_user_tables
	                 WHERE schemaname = 'pgjobd' AND last_autovacuum >= '$since'
	                   AND n_live_tup + n_dead_tup > 100000")
	run="$(calc "sprintf(\"%.0f\", $jps)")${vacuumed:+ (autovacuum of $vacuumed)}"
	say "$1: $SN jobs at C=$SC: $run jobs/s"
}

# sizes: "live T+I, later T+I, history T+I, attempt_history T+I" (table +
# its indexes, MiB; a partitioned table's are its partitions').
sizes() {
	sql "WITH r(name, rel) AS (VALUES ('live', 'pgjobd.live'), ('later', 'pgjobd.later'),
	       ('history', 'pgjobd.history'), ('attempt_history', 'pgjobd.attempt_history'))
	     SELECT string_agg(format('%s %s+%s MiB', r.name,
	            round(sum_t / 1048576.0), round(sum_i / 1048576.0)), ', ')
	       FROM r, LATERAL (SELECT sum(pg_table_size(t.relid)) AS sum_t,
	                               sum(pg_indexes_size(t.relid)) AS sum_i
	                          FROM (SELECT r.rel::regclass AS relid
	                                UNION SELECT relid FROM pg_partition_tree(r.rel::regclass)) t) s"
}

# Two databases: one stays empty (emptied again after each drain), one
# holds the scale data.  The drains alternate between them, BENCH_DRAINS
# (5) each, and each side counts its best: the two cores are shared with
# whatever else the machine does, and alternating exposes both sides to
# the same.
for db in pgjobd_empty pgjobd_scale; do
	sql "CREATE DATABASE $db" >/dev/null
	write_ini "$tmp/$db.ini" "$SC" "$db"
	"$pgjobd" -c "$tmp/$db.ini" --migrate >/dev/null
	# What the daemons' first upkeep does: the partitions beyond --migrate's.
	PGDATABASE=$db
	export PGDATABASE
	sql "SELECT pgjobd.maintain()" >/dev/null
done
# The payload GIN index (pgjobd.index_payloads) on enqueue: 20000 jobs with
# a realistic payload in one transaction, without and with it, in a
# database of its own (its 120000 rows come and go without touching
# pgjobd.live of either drain's database).
sql "CREATE DATABASE pgjobd_gin" >/dev/null
write_ini "$tmp/pgjobd_gin.ini" 1 pgjobd_gin
"$pgjobd" -c "$tmp/pgjobd_gin.ini" --migrate >/dev/null
PGDATABASE=pgjobd_gin
export PGDATABASE
gin_enqueue() {
	t0=$(ms_now)
	sql "SELECT count(pgjobd.enqueue('gin', jsonb_build_object('user', i, 'kind', 'mail',
	       'to', 'u' || i || '@example.org', 'tags', jsonb_build_array('a', i % 7)), 'gin'))
	       FROM generate_series(1, 20000) i" >/dev/null
	t1=$(ms_now)
	sql "DELETE FROM pgjobd.live WHERE queue = 'gin'" >/dev/null
	echo $((t1 - t0))
}
# Three of each, alternating, and the best of each: one transaction of
# 20000 enqueues varies by a quarter between runs on this machine.
gin_off=0
gin_on=0
for g in 1 2 3; do
	ms=$(gin_enqueue)
	if [ "$gin_off" -eq 0 ] || [ "$ms" -lt "$gin_off" ]; then gin_off=$ms; fi
	sql "SELECT pgjobd.index_payloads(true)" >/dev/null
	ms=$(gin_enqueue)
	if [ "$gin_on" -eq 0 ] || [ "$ms" -lt "$gin_on" ]; then gin_on=$ms; fi
	sql "SELECT pgjobd.index_payloads(false)" >/dev/null
done
PGDATABASE=pgjobd_scale
export PGDATABASE
sql "DROP DATABASE pgjobd_gin" >/dev/null

say "storage: $n_finished finished jobs (with attempts), $n_scheduled scheduled"
t0=$(ms_now)
# The finished jobs of the last nine days, each with its purge day (7 days
# of retention for done): the nine days from tomorrow, whose partitions
# maintain() made above.  None is due yet, so that the daemons' upkeep
# during the drains removes none of them (the retention step below adds
# a due day for itself).  Ids far above the live ones.
sql "INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
       created_at, started_at, finished_at, worker, exit_code, result, last_error, purge_on)
     SELECT 1000000000 + i, 'default', 'true', '{}',
            CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'done' END, 0, f, 1, f, f,
            f + interval '3 ms', 'bench', CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END, '',
            CASE WHEN i % 100 = 0 THEN 'exit code 1' END,
            (now() AT TIME ZONE 'UTC')::date + 1 + i % 9
       FROM generate_series(1, $n_finished) i,
            LATERAL (SELECT now() - (8 - i % 9) * interval '1 day'
                            - (i % 86400) * interval '1 s' AS f) t" >/dev/null
sql "INSERT INTO pgjobd.attempt_history (job_id, attempt, worker, started_at, finished_at,
       outcome, exit_code, purge_on)
     SELECT id, 1, worker, started_at, finished_at, state, exit_code, purge_on
       FROM pgjobd.history WHERE id > 1000000000" >/dev/null
# The scheduled jobs a day ahead, half at a higher priority than the
# backlog, where pgjobd.enqueue puts them: pgjobd.later (tests/check_later).
sql "INSERT INTO pgjobd.later (queue, type, payload, state, priority, run_at)
     SELECT 'default', 'true', '{}', 'scheduled', CASE WHEN i % 2 = 0 THEN -10 ELSE 0 END,
            now() + interval '1 day' + i * interval '10 ms'
       FROM generate_series(1, $n_scheduled) i" >/dev/null
# What the daemons' upkeep does first: the count deltas summed up.
sql "SELECT pgjobd.maintain()" >/dev/null
sql "VACUUM ANALYZE" >/dev/null
fill_s=$(calc "($(ms_now) - $t0) / 1000")
say "storage: filled in ${fill_s}s"
size_before=$(sizes)

jps_empty=0
jps_scale=0
runs_empty=""
runs_scale=""
round=0   # (not i: start_daemon counts with i)
while [ "$round" -lt "${BENCH_DRAINS:-5}" ]; do
	round=$((round + 1))
	drain "empty-$round" pgjobd_empty
	jps_empty=$(calc "($jps > $jps_empty) ? $jps : $jps_empty")
	runs_empty="$runs_empty${runs_empty:+, }$run"
	sql "TRUNCATE pgjobd.live, pgjobd.live_attempts, pgjobd.history, pgjobd.attempt_history" \
	    >/dev/null
	drain "scale-$round" pgjobd_scale
	jps_scale=$(calc "($jps > $jps_scale) ? $jps : $jps_scale")
	runs_scale="$runs_scale${runs_scale:+, }$run"
done
size_after=$(sizes)

# The monitoring queries at this size: the file twice, the second run
# timed; the slowest, by its \echo title.
"$psql" -X -q -f "$top/contrib/monitoring.sql" >/dev/null
"$psql" -X -q -c '\timing on' -f "$top/contrib/monitoring.sql" >"$tmp/monitoring.out"
mon=$(awk '/^== / { name = substr($0, 4) } /^Time: / { print $2 "\t" name }' \
    "$tmp/monitoring.out" | sort -n | tail -n 1)
mon_name=${mon#*"$(printf '\t')"}
mon=${mon%%"$(printf '\t')"*}
t0=$(ms_now)
stats=$(sql "SELECT done + dead FROM pgjobd.queue_stats WHERE queue = 'default'")
stats_ms=$(($(ms_now) - t0))

# One retention step: a day of a ninth as many finished jobs (with an
# attempt each) whose purge day is today, dropped by maintain().
day=$(sql "SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD')")
sql "CREATE TABLE pgjobd.history_$day PARTITION OF pgjobd.history
       FOR VALUES FROM ('$day') TO ('$day'::date + 1)" >/dev/null
sql "CREATE TABLE pgjobd.attempt_history_$day PARTITION OF pgjobd.attempt_history
       FOR VALUES FROM ('$day') TO ('$day'::date + 1)" >/dev/null
sql "INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
       created_at, started_at, finished_at, worker, exit_code, result, purge_on)
     SELECT 2000000000 + i, 'default', 'true', '{}', 'done', 0, f, 1, f, f,
            f + interval '3 ms', 'bench', 0, '', '$day'
       FROM generate_series(1, $((n_finished / 9))) i,
            LATERAL (SELECT now() - interval '8 days' - (i % 86400) * interval '1 s' AS f) t" \
    >/dev/null
sql "INSERT INTO pgjobd.attempt_history (job_id, attempt, worker, started_at, finished_at,
       outcome, exit_code, purge_on)
     SELECT id, 1, worker, started_at, finished_at, state, exit_code, purge_on
       FROM pgjobd.history WHERE id > 2000000000" >/dev/null
sql "VACUUM ANALYZE pgjobd.history, pgjobd.attempt_history" >/dev/null
sql "CHECKPOINT" >/dev/null
before_ret=$(sql "SELECT done + dead FROM pgjobd.queue_stats WHERE queue = 'default'")
t0=$(ms_now)
dropped=$(sql "SELECT dropped FROM pgjobd.maintain()")
ret_s=$(calc "($(ms_now) - $t0) / 1000")
left=$(sql "SELECT done + dead FROM pgjobd.queue_stats WHERE queue = 'default'")
[ "$dropped" -eq 1 ] || fail "the retention step dropped $dropped days, not 1"
[ "$((before_ret - left))" -eq "$((n_finished / 9))" ] ||
    fail "the retention step removed $((before_ret - left)) jobs, not $((n_finished / 9))"

ratio=$(calc "$jps_scale / $jps_empty")
row "storage: drain, empty tables ($SN x /bin/true, C=$SC; best of ${BENCH_DRAINS:-5})" \
    "$(calc "sprintf(\"%.0f jobs/s\", $jps_empty)")" "runs: $runs_empty; reference for the row below" "-"
row "storage: drain beside $n_finished finished + $n_scheduled scheduled" \
    "$(calc "sprintf(\"%.0f jobs/s\", $jps_scale)")" \
    "$(calc "sprintf(\"runs: $runs_scale; ratio %.2f to the empty run, limit >= $SCALE_RATIO_MIN\", $ratio)")" \
    "$(ok_if "$ratio >= $SCALE_RATIO_MIN")"
row "storage: sizes before the drain (table+indexes)" "$size_before" "-" "-"
row "storage: sizes after the drain" "$size_after" "-" "-"
row "storage: one retention step ($((n_finished / 9)) finished jobs)" "${ret_s}s" \
    "$before_ret -> $left retained; limit < ${RETENTION_MAX_S}s" \
    "$(ok_if "$ret_s < $RETENTION_MAX_S")"
row "storage: slowest contrib/monitoring.sql query" "$mon ms ($mon_name)" \
    "queue_stats alone $stats_ms ms ($stats jobs; psql round trip included); limit < $MONITOR_MAX_MS ms" \
    "$(ok_if "$mon < $MONITOR_MAX_MS")"
row "storage: enqueue 20000 jobs, payload GIN index off / on (best of 3)" "$gin_off ms / $gin_on ms" \
    "$(calc "sprintf(\"+%.0f%% with pgjobd.index_payloads()\", ($gin_on - $gin_off) * 100 / $gin_off)")" "-"
