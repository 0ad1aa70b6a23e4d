-- pgjobd ctl show: a job's finished attempts, oldest first.  Attempt
-- numbers start again after pgjobd.retry(), so the order is by time.
-- $1 the job id.
SELECT a.attempt, a.outcome, a.worker, a.started_at, a.finished_at,
       a.exit_code, a.signal, a.error
  FROM pgjobd.attempts a
 WHERE a.job_id = $1::bigint
 ORDER BY a.finished_at, a.attempt
