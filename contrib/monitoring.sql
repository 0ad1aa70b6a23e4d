-- pgjobd: the queries an operator runs from psql.
--   psql -X -f contrib/monitoring.sql        (all of them)
-- or copy the one you need.  Each is read-only and cheap on a large table:
-- the running/ready/dead ones use the partial and (queue, state) indexes.

\echo '== queue health'
SELECT queue, ready, scheduled, running, done, dead, cancelled,
       date_trunc('second', oldest_ready_age) AS oldest_ready_age
  FROM pgjobd.queue_stats
 ORDER BY queue;

\echo '== oldest ready job per queue (due, waiting for a daemon)'
SELECT DISTINCT ON (queue) queue, id, type, priority, run_at,
       date_trunc('second', now() - run_at) AS waiting
  FROM pgjobd.jobs
 WHERE state = 'ready' AND run_at <= now()
 ORDER BY queue, run_at, id;

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

\echo '== throughput per minute over the last hour (finished attempts)'
SELECT date_trunc('minute', finished_at) AS minute,
       count(*) FILTER (WHERE outcome = 'done')  AS done,
       count(*) FILTER (WHERE outcome = 'retry') AS retried,
       count(*) FILTER (WHERE outcome = 'dead')  AS dead,
       count(*) FILTER (WHERE outcome = 'lost')  AS lost
  FROM pgjobd.attempts
 WHERE finished_at > now() - interval '1 hour'
 GROUP BY 1
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
