-- pgjobd ctl show: one job, every documented column.  $1 the job id.
SELECT j.id, j.queue, j.type, j.state, j.priority, j.run_at, j.attempts,
       j.max_attempts, j.idempotency_key, j.created_at, j.started_at,
       j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.payload
  FROM pgjobd.jobs j
 WHERE j.id = $1::bigint
