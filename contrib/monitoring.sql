-- pgjobd: the queries an operator runs from psql.
--   psql -X -f contrib/monitoring.sql        (all of them)
-- or copy the one you need.  Each is read-only and cheap however much
-- history is kept (make bench times them beside 10 million finished jobs):
-- queue_stats counts the history from pgjobd.history_counts, throughput
-- reads pgjobd.attempt_counts, the state filters on pgjobd.jobs skip the
-- halves that cannot hold that state, and the rest use indexes (partial
-- ones for running, ready and dead jobs).

\echo '== queue health'
SELECT queue, ready, scheduled, running, done, dead, cancelled, expired,
       date_trunc('second', oldest_ready_age) AS oldest_ready_age
  FROM pgjobd.queue_stats
 ORDER BY queue;

\echo '== oldest ready job per queue (due, waiting for a daemon)'
-- The queues with waiting jobs, from the counts behind queue_stats (a few
-- rows a queue), then the oldest due job of each by index: 'ready' rows
-- and scheduled rows already due (pgjobd.live's own states; pgjobd.jobs
-- shows both as ready).  The jobs of pgjobd.later are hours from due while
-- any daemon runs (queue_stats counts them).
WITH q AS (
  SELECT queue FROM pgjobd.live_counts
   GROUP BY queue HAVING sum(n) FILTER (WHERE state IN ('ready', 'scheduled')) > 0
)
SELECT q.queue, o.id, o.type, o.priority, o.run_at,
       date_trunc('second', now() - o.run_at) AS waiting
  FROM q CROSS JOIN LATERAL (
    SELECT * FROM (
      (SELECT l.id, l.type, l.priority, l.run_at FROM pgjobd.live l
        WHERE l.queue = q.queue AND l.state = 'ready'
          AND (l.expires_at IS NULL OR l.expires_at > now())
        ORDER BY l.run_at, l.id LIMIT 1)
      UNION ALL
      (SELECT l.id, l.type, l.priority, l.run_at FROM pgjobd.live l
        WHERE l.queue = q.queue AND l.state = 'scheduled' AND l.run_at <= now()
          AND (l.expires_at IS NULL OR l.expires_at > now())
        ORDER BY l.run_at, l.id LIMIT 1)) x
    ORDER BY x.run_at, x.id LIMIT 1) o
 ORDER BY q.queue;

\echo '== running jobs, their worker and the lease left'
SELECT id, queue, type, attempts, worker,
       date_trunc('second', now() - started_at) AS running_for,
       date_trunc('second', lease_expires_at - now()) AS lease_left
  FROM pgjobd.jobs
 WHERE state = 'running'
 ORDER BY started_at;

\echo '== dead jobs with their last error (newest first)'
SELECT id, queue, type, attempts, finished_at,
       left(split_part(coalesce(last_error, ''), E'\n', 1), 120) AS last_error
  FROM pgjobd.jobs
 WHERE state = 'dead'
 ORDER BY finished_at DESC NULLS LAST
 LIMIT 50;

\echo '== jobs that expired in the last day (never started by their expires_at)'
SELECT queue, type, count(*) AS expired, max(expires_at) AS last_expired
  FROM pgjobd.jobs
 WHERE state = 'expired' AND finished_at > now() - interval '1 day'
 GROUP BY queue, type
 ORDER BY expired DESC
 LIMIT 50;

\echo '== retention: how long finished jobs are kept, and the oldest kept'
SELECT r.state, r.keep,
       (SELECT min(purge_on) FROM pgjobd.history_counts c WHERE c.state = r.state AND c.n > 0)
           AS next_purge_day,
       (SELECT sum(n) FROM pgjobd.history_counts c WHERE c.state = r.state) AS kept
  FROM pgjobd.retention r
 ORDER BY r.state;

\echo '== throughput per minute over the last hour (finished attempts)'
-- From pgjobd.attempt_counts (per minute and outcome, kept 7 days): a few
-- hundred rows however many jobs the hour ran.  Counted as they finished;
-- retention dropping history does not lower them.
SELECT minute,
       coalesce(sum(n) FILTER (WHERE outcome = 'done'), 0)  AS done,
       coalesce(sum(n) FILTER (WHERE outcome = 'retry'), 0) AS retried,
       coalesce(sum(n) FILTER (WHERE outcome = 'dead'), 0)  AS dead,
       coalesce(sum(n) FILTER (WHERE outcome = 'lost'), 0)  AS lost
  FROM pgjobd.attempt_counts
 WHERE minute > now() - interval '1 hour'
 GROUP BY 1
HAVING sum(n) <> 0
 ORDER BY 1;

\echo '== stale workers (no heartbeat for over a minute)'
SELECT name, host, pid, running, concurrency, last_seen,
       date_trunc('second', now() - last_seen) AS silent_for
  FROM pgjobd.workers
 WHERE last_seen < now() - interval '1 minute'
 ORDER BY last_seen;

\echo '== schedules late (a slot over a minute overdue), failing, or whose last job died'
SELECT name, queue, cron, time_zone, next_run, last_run, last_job_id, last_job_state,
       CASE WHEN last_error IS NOT NULL THEN 'firing fails: ' || left(last_error, 80)
            WHEN next_run < now() - interval '1 minute' THEN 'late: no daemon fires it'
            ELSE 'last job dead' END AS problem,
       date_trunc('second', now() - next_run) AS overdue
  FROM pgjobd.schedules
 WHERE enabled AND (next_run < now() - interval '1 minute' OR last_job_state = 'dead'
                    OR last_error IS NOT NULL)
 ORDER BY next_run;
