-- pgjobd ctl jobs: jobs, newest first (ids grow with time).
-- $1 queue, $2 type, $3 state: NULL matches any.  $4 at most this many.
SELECT j.id, j.queue, j.type, j.state, j.attempts, j.max_attempts, j.priority,
       j.run_at, j.finished_at, j.last_error
  FROM pgjobd.jobs j
 WHERE ($1::text IS NULL OR j.queue = $1::text)
   AND ($2::text IS NULL OR j.type = $2::text)
   AND ($3::text IS NULL OR j.state = $3::text)
 ORDER BY j.id DESC
 LIMIT $4::bigint
