-- Rescue leases not extended in time (their daemon died or lost the
-- database for longer than the lease).  The attempt is counted as lost,
-- and the job is ready again, first in line (run_at is kept), or dead when
-- that was its last attempt (and moves to pgjobd.history).  Only jobs this
-- daemon could run itself: its queues and the types it maps, whose
-- configured max_attempts apply where the job has none of its own.
-- Expiry is judged by the database's clock.
--
-- $1 queues (text[])   $2 types (text[])   $3 their max_attempts (int[])
-- Rows: id, type, attempts, worker, state (the job's new state).
WITH h AS (SELECT * FROM unnest($2::text[], $3::int[]) AS h(type, max_attempts)),
-- The running rows are few (jobs_running_idx); two rescuers never rescue
-- one job twice (SKIP LOCKED).
x AS (
  SELECT j.id, j.attempts >= coalesce(j.max_attempts, h.max_attempts) AS dead
    FROM pgjobd.live j JOIN h ON h.type = j.type
   WHERE j.state = 'running' AND j.lease_expires_at < now()
     AND j.queue = ANY ($1::text[]) AND j.type = ANY ($2::text[])
   FOR UPDATE OF j SKIP LOCKED
),
d AS (
  DELETE FROM pgjobd.live j WHERE j.id = ANY (ARRAY(SELECT x.id FROM x WHERE x.dead))
  RETURNING j.*
),
dh AS (
  INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
    max_attempts, timeout, idempotency_key, created_at, started_at, finished_at, worker,
    exit_code, last_error, result, expires_at, purge_on, enqueued_by)
  SELECT d.id, d.queue, d.type, d.payload, 'dead', d.priority, d.run_at, d.attempts,
    d.max_attempts, d.timeout, d.idempotency_key, d.created_at, d.started_at, now(), d.worker,
    d.exit_code, 'lease expired: worker ' || coalesce(d.worker, '?') || ' stopped extending it',
    d.result, d.expires_at, pgjobd._purge_on('dead', now()), d.enqueued_by
    FROM d
  RETURNING id, purge_on
),
u AS (
  UPDATE pgjobd.live j
     SET state = 'ready',
         last_error = 'lease expired: worker ' || coalesce(j.worker, '?') ||
                      ' stopped extending it',
         lease_token = NULL, lease_expires_at = NULL
   WHERE j.id = ANY (ARRAY(SELECT x.id FROM x WHERE NOT x.dead))
  RETURNING j.id, j.attempts, j.worker, j.started_at, j.state, j.type
),
ma AS (
  DELETE FROM pgjobd.live_attempts a WHERE a.job_id = ANY (ARRAY(SELECT d.id FROM d))
  RETURNING a.*
),
ah AS (
  INSERT INTO pgjobd.attempt_history
    (id, job_id, attempt, worker, started_at, finished_at, outcome, exit_code, signal, error,
     purge_on)
  SELECT ma.id, ma.job_id, ma.attempt, ma.worker, ma.started_at, ma.finished_at, ma.outcome,
         ma.exit_code, ma.signal, ma.error, dh.purge_on
    FROM ma JOIN dh ON dh.id = ma.job_id
  UNION ALL
  SELECT nextval('pgjobd.attempts_id_seq'), d.id, d.attempts, d.worker, d.started_at, now(),
         'lost', NULL, NULL, 'lease expired', dh.purge_on
    FROM d JOIN dh ON dh.id = d.id
),
a AS (
  INSERT INTO pgjobd.live_attempts (job_id, attempt, worker, started_at, outcome, error)
  SELECT u.id, u.attempts, u.worker, u.started_at, 'lost', 'lease expired' FROM u
)
SELECT u.id, u.type, u.attempts, u.worker, u.state FROM u
UNION ALL
SELECT d.id, d.type, d.attempts, d.worker, 'dead' FROM d
