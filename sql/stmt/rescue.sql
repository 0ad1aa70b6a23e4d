-- Rescue leases not extended in time (their daemon died or lost the
-- database for longer than the lease).  The attempt is counted as lost,
-- and the job is ready again, first in line (run_at is kept), or dead when
-- that was its last attempt.  Only jobs this daemon could run itself: its
-- queues and the types it maps, whose configured max_attempts apply where
-- the job has none of its own.  Expiry is judged by the database's clock.
--
-- $1 queues (text[])   $2 types (text[])   $3 their max_attempts (int[])
-- Rows: id, type, attempts, worker, state (the job's new state).
WITH h AS (SELECT * FROM unnest($2::text[], $3::int[]) AS h(type, max_attempts)),
l AS (
  SELECT j.id FROM pgjobd.jobs j
   WHERE j.state = 'running' AND j.lease_expires_at < now()
     AND j.queue = ANY ($1::text[]) AND j.type = ANY ($2::text[])
   FOR UPDATE SKIP LOCKED   -- two rescuers never rescue one job twice
),
u AS (
  UPDATE pgjobd.jobs j
     SET state = CASE WHEN j.attempts >= coalesce(j.max_attempts, h.max_attempts)
                      THEN 'dead' ELSE 'ready' END,
         finished_at = CASE WHEN j.attempts >= coalesce(j.max_attempts, h.max_attempts)
                            THEN now() END,
         last_error = 'lease expired: worker ' || coalesce(j.worker, '?') ||
                      ' stopped extending it',
         lease_token = NULL, lease_expires_at = NULL
    FROM l, h WHERE j.id = l.id AND h.type = j.type
  RETURNING j.id, j.attempts, j.worker, j.started_at, j.state, j.type
),
a AS (
  INSERT INTO pgjobd.attempts (job_id, attempt, worker, started_at, outcome, error)
  SELECT u.id, u.attempts, u.worker, u.started_at, 'lost', 'lease expired' FROM u
)
SELECT u.id, u.type, u.attempts, u.worker, u.state FROM u
