#!/bin/sh
# contrib/demo.sh PGJOBD -- `make demo`: pgjobd at work, end to end, in
# 10-15 seconds.  POSIX sh.
#
# Runs itself under tests/with-pg.sh (a throwaway PostgreSQL cluster in a
# temp dir, removed afterwards), installs the schema with --migrate, starts
# PGJOBD with etc/pgjobd.ini (its example handlers) in the background and
# enqueues five jobs with psql:
#   echo       succeeds at once (/bin/cat: the payload becomes the result)
#   flaky      fails twice, then succeeds (retried after ~1s, ~2s)
#   fail       fails every time: dead after max_attempts = 3
#   slow       sleeps 30s under timeout = 2s: killed, retried once, dead
#   echo       scheduled 5s ahead (run_at); found by the safety-net poll
# and a schedule, "every2s", that enqueues an echo job every 2 seconds
# (pgjobd.schedule) on the daemon's timer, whatever poll_interval is.
# It shows pgjobd.jobs and pgjobd.queue_stats whenever they change, with the
# daemon's log interleaved (prefix "pgjobd |"), until every job is done or
# dead (deadline: PGJOBD_DEMO_DEADLINE seconds, default 60), checks that
# each ended as it should, prints the attempts history, and stops the
# daemon with SIGTERM (exit 0 expected).  Exits non-zero on any surprise.
# Everything it started is stopped and removed however it ends.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=contrib/daemon.sh
. "$here/daemon.sh"

if [ $# -ne 1 ]; then
	echo "usage: contrib/demo.sh PATH/TO/pgjobd" >&2
	exit 2
fi
pgjobd=$1
case $pgjobd in
/*) ;;
*) pgjobd=$(pwd)/$pgjobd ;;
esac
if [ ! -x "$pgjobd" ]; then
	echo "demo: $pgjobd: not an executable (run make first)" >&2
	exit 1
fi

# Not yet under tests/with-pg.sh: run this script again under it.
if [ -z "${PGTEST_DIR:-}" ]; then
	exec "$top/tests/with-pg.sh" "$here/demo.sh" "$pgjobd"
fi

ini=${PGJOBD_DEMO_CONFIG:-$top/etc/pgjobd.ini}
deadline=${PGJOBD_DEMO_DEADLINE:-60}
psql="$PGTEST_BINDIR/psql"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgjobd-demo.XXXXXX")
log=$tmp/pgjobd.log
: >"$log"
pid=""
shown=0

sql() {
	"$psql" -X -q -v ON_ERROR_STOP=1 -P pager=off -P footer=off "$@"
}

# Print the daemon's log lines not shown yet, prefixed, without the date.
show_log() {
	total=$(wc -l <"$log")
	if [ "$total" -gt "$shown" ]; then
		sed -n "$((shown + 1)),${total}p" "$log" |
		    sed -e 's/^[0-9][0-9-]*T//' -e 's/^/  pgjobd | /'
		shown=$total
	fi
}

cleanup() {
	st=$?
	trap - EXIT INT TERM HUP
	if alive; then
		echo "demo: stopping pgjobd (pid $pid)" >&2
		kill_daemon
	fi
	if [ "$st" -ne 0 ] && [ -s "$log" ]; then
		echo "demo: FAILED (status $st); the daemon's log:" >&2
		shown=0
		show_log >&2
	fi
	rm -rf "$tmp"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

echo "== pgjobd demo: throwaway cluster in $PGTEST_DIR"
"$pgjobd" -c "$ini" -t
printf '== %s --migrate: ' "$(basename "$pgjobd")"
"$pgjobd" -c "$ini" --migrate

echo "== starting pgjobd -c $ini (log below, prefixed \"pgjobd |\")"
"$pgjobd" -c "$ini" </dev/null >>"$log" 2>&1 &
pid=$!
i=0
until grep -q ' ready: ' "$log"; do
	alive || fail "pgjobd exited before it was ready"
	[ "$i" -lt 150 ] || fail "pgjobd not ready after 15s"
	sleep 0.1
	i=$((i + 1))
done
show_log

echo "== enqueueing five jobs"
ids=$(sql -At <<'SQL'
SELECT pgjobd.enqueue('echo', '{"hello": "world"}');
SELECT pgjobd.enqueue('flaky');
SELECT pgjobd.enqueue('fail');
SELECT pgjobd.enqueue('slow');
SELECT pgjobd.enqueue('echo', '{"note": "scheduled 5s ahead"}',
                      run_at => now() + interval '5 seconds');
SQL
)
# shellcheck disable=SC2086 # five ids, split on purpose
set -- $ids
[ $# -eq 5 ] || fail "expected five job ids, got: $ids"
echo "   ids: echo=$1 flaky=$2 fail=$3 slow=$4 scheduled(echo)=$5"
echo "== a recurring job: every 2s, next runs:"
sql -c "SELECT pgjobd.schedule('every2s', '*/2 * * * * *', 'echo', '{\"from\": \"schedule\"}')
          AS first_run"
echo "   (poll_interval is 5s: the scheduled job starts at the first poll after its"
echo "    run_at, so up to 5s late; retries are timed by the daemon itself)"

# What is shown; run_at relative to now.
show_tables() {
	sql <<'SQL'
SELECT id, type, state, attempts AS att,
       CASE WHEN state = 'ready' AND run_at > now()
            THEN 'in ' || round(extract(epoch FROM run_at - now())::numeric, 1) || 's'
            ELSE round(extract(epoch FROM now() - run_at)::numeric, 1) || 's ago' END
         AS run_at,
       left(split_part(last_error, E'\n', 1), 34) AS last_error,
       left(replace(rtrim(result, E'\n'), E'\n', ' / '), 30) AS result
  FROM pgjobd.jobs ORDER BY id;
SELECT queue, ready, scheduled, running, done, dead, cancelled,
       round(extract(epoch FROM oldest_ready_age)::numeric, 1) AS oldest_ready_s
  FROM pgjobd.queue_stats ORDER BY queue;
SQL
}

# Everything shown except the clock: a change in it means "print again".
state_key() {
	sql -At -c "SELECT string_agg(concat_ws(',', id, state, attempts, run_at,
	              run_at <= now(), last_error, result), ';' ORDER BY id)
	              FROM pgjobd.jobs"
}

start=$(date +%s)
last=""
while :; do
	show_log
	alive || fail "pgjobd exited unexpectedly"
	key=$(state_key)
	if [ "$key" != "$last" ]; then
		echo "-- t+$(($(date +%s) - start))s"
		show_tables
		last=$key
	fi
	left=$(sql -At -c "SELECT count(*) FROM pgjobd.jobs WHERE state NOT IN ('done', 'dead')
	                   AND id IN ($1, $2, $3, $4, $5)")
	[ "$left" -eq 0 ] && break
	[ "$(($(date +%s) - start))" -lt "$deadline" ] ||
	    fail "deadline: $left job(s) not done or dead after ${deadline}s"
	sleep 1
done
echo "== all five jobs final after $(($(date +%s) - start))s"

# Each job ended as its handler says it should.
bad=$(sql -At <<SQL
SELECT format('job %s (%s): %s after %s attempt(s), expected %s after %s%s', j.id, j.type,
              j.state, j.attempts, e.state, e.att,
              CASE WHEN e.err IS NOT NULL THEN ' with an error starting "' || e.err || '"' END)
  FROM (VALUES ($1, 'done', 1, NULL), ($2, 'done', 3, NULL), ($3, 'dead', 3, 'exit code 1'),
               ($4, 'dead', 2, 'timed out'), ($5, 'done', 1, NULL)) AS e(id, state, att, err)
  JOIN pgjobd.jobs j USING (id)
 WHERE (j.state, j.attempts) IS DISTINCT FROM (e.state, e.att)
    OR (e.err IS NOT NULL AND j.last_error NOT LIKE e.err || '%');
SELECT format('job %s started at %s, before its run_at %s', id, started_at, run_at)
  FROM pgjobd.jobs WHERE id = $5 AND started_at < run_at;
SQL
)
[ -z "$bad" ] || fail "unexpected outcome: $bad"

echo "== pgjobd.attempts"
sql <<'SQL'
SELECT a.job_id, j.type, a.attempt, a.outcome, a.exit_code, a.signal,
       round(extract(epoch FROM a.finished_at - a.started_at)::numeric, 2) AS seconds,
       to_char(a.started_at, 'HH24:MI:SS.MS') AS started,
       left(replace(rtrim(a.error, E'\n'), E'\n', ' / '), 50) AS error
  FROM pgjobd.attempts a JOIN pgjobd.jobs j ON j.id = a.job_id
 ORDER BY a.job_id, a.attempt;
SQL
echo "   (the scheduled job $5 was due at" \
    "$(sql -At -c "SELECT to_char(run_at, 'HH24:MI:SS.MS') || ', started ' ||
       round(extract(epoch FROM started_at - run_at)::numeric, 2) || 's later'
       FROM pgjobd.jobs WHERE id = $5"))"

# Three slots of the schedule at least (it has been running for a few).
i=0
until [ "$(sql -At -c "SELECT count(*) FROM pgjobd.jobs
                       WHERE idempotency_key LIKE 'cron:every2s:%' AND state = 'done'")" -ge 3 ]; do
	[ "$i" -lt 100 ] || fail "the every-2s schedule made fewer than 3 jobs in 10s more"
	sleep 0.1
	i=$((i + 1))
done
show_log
echo "== the schedule every2s: one job per slot, enqueued right at its slot"
sql <<'SQL'
SELECT j.id, substr(j.idempotency_key, 14) AS slot, j.state,
       round(extract(epoch FROM j.created_at - substr(j.idempotency_key, 14)::timestamptz)
             * 1000, 1) AS enqueued_ms_after_slot
  FROM pgjobd.jobs j WHERE j.idempotency_key LIKE 'cron:every2s:%' ORDER BY j.id;
SELECT name, cron, next_run, last_run, last_job_id, last_job_state FROM pgjobd.schedules;
SQL
dup=$(sql -At -c "SELECT count(*) - count(DISTINCT idempotency_key) FROM pgjobd.jobs
                  WHERE idempotency_key LIKE 'cron:every2s:%'")
[ "$dup" -eq 0 ] || fail "a slot of the schedule has more than one job"
sql -At -c "SELECT pgjobd.unschedule('every2s')" >/dev/null

echo "== stopping pgjobd with SIGTERM"
kill -TERM "$pid"
wait_gone 350 || fail "pgjobd still running 35s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=""
show_log
[ "$rc" -eq 0 ] || fail "pgjobd exited with status $rc after SIGTERM, expected 0"
echo "== pgjobd exited 0.  demo OK"
