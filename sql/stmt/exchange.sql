-- The exchange: the daemon's one statement that changes jobs.
--
-- In one transaction it writes the outcomes finished since the last
-- exchange and leases jobs into the slots those outcomes free, so that the
-- database is always right about caps and concurrency.  With no types to
-- lease ($3 = '{}') it only writes outcomes; with no outcomes ($7 = '[]')
-- it only leases.  Safe to send again after a lost connection: every
-- outcome is fenced by its lease token, and a repeat finds the token
-- cleared (or the job gone to history) and changes nothing; a lease whose
-- reply was lost expires.
--
-- $1 worker name          $2 queues served (text[])
-- $3 types with a free slot (text[])     $4 their free slots (int[])
-- $5 jobs at most in all  $6 lease length in ms
-- $7 outcomes: a JSON array of {id, token, outcome, delay_ms, exit_code,
--    signal, result, error}; outcome is done, retry, dead, or release
--    (handed back at shutdown: the attempt is not counted)
--
-- Rows: kind 'o' with the id of each outcome accepted (a refused one had
-- a stale token); kind 'l' with the job of each lease.  Columns are read
-- by name.
--
-- Plans: it reads only pgjobd.live (the backlog), and every row it
-- changes there is found by `id = ANY (ARRAY(...))`, an index probe per
-- id whatever the planner estimates for the set, so no plan, generic or
-- custom, can join over a whole table.  Finished jobs are only inserted
-- into pgjobd.history, never read.
WITH o AS (
  SELECT * FROM jsonb_to_recordset($7::jsonb) AS o(id bigint, token bigint,
    outcome text, delay_ms bigint, exit_code int, signal int, result text, error text)
),
-- done and dead: the job leaves pgjobd.live for pgjobd.history.
f AS (
  DELETE FROM pgjobd.live j USING o
   WHERE j.id = ANY (ARRAY(SELECT o.id FROM o WHERE o.outcome IN ('done', 'dead')))
     AND j.id = o.id AND j.lease_token = o.token   -- fencing
  RETURNING j.id, j.queue, j.type, j.payload, j.priority, j.run_at, j.attempts,
    j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at, j.worker,
    j.last_error, j.expires_at, j.enqueued_by, o.outcome, o.exit_code, o.signal, o.result, o.error
),
fh AS (
  -- Its purge day: see pgjobd._purge_on (inlined: this is the hot path).
  INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
    max_attempts, timeout, idempotency_key, created_at, started_at, finished_at, worker,
    exit_code, last_error, result, expires_at, purge_on, enqueued_by)
  SELECT f.id, f.queue, f.type, f.payload, f.outcome, f.priority, f.run_at, f.attempts,
    f.max_attempts, f.timeout, f.idempotency_key, f.created_at, f.started_at, now(), f.worker,
    f.exit_code, CASE WHEN f.outcome = 'dead' THEN f.error ELSE f.last_error END, f.result,
    f.expires_at,
    ((now() + coalesce(r.keep, interval '30 days')) AT TIME ZONE 'UTC')::date + 1,
    f.enqueued_by
    FROM f LEFT JOIN pgjobd.retention r ON r.state = f.outcome
  RETURNING id, purge_on
),
-- retry and release: the job stays live, ready again (or scheduled for
-- its backoff).
u AS (
  UPDATE pgjobd.live j SET
    state = CASE WHEN o.outcome = 'retry' AND o.delay_ms > 0 THEN 'scheduled' ELSE 'ready' END,
    attempts = CASE WHEN o.outcome = 'release' THEN j.attempts - 1 ELSE j.attempts END,
    run_at = CASE WHEN o.outcome = 'retry' THEN now() + o.delay_ms * interval '1 ms'
             ELSE j.run_at END,
    finished_at = NULL,
    exit_code = CASE WHEN o.outcome = 'release' THEN j.exit_code ELSE o.exit_code END,
    result = CASE WHEN o.outcome = 'release' THEN j.result ELSE o.result END,
    last_error = CASE WHEN o.outcome = 'retry' THEN o.error ELSE j.last_error END,
    lease_token = NULL, lease_expires_at = NULL
  FROM o
  WHERE j.id = ANY (ARRAY(SELECT o.id FROM o WHERE o.outcome IN ('retry', 'release')))
    AND j.id = o.id AND j.lease_token = o.token   -- fencing
  RETURNING j.id, j.attempts, j.started_at, o.outcome, o.exit_code, o.signal, o.error
),
-- A finished job takes its earlier attempts (retries) along.
ma AS (
  DELETE FROM pgjobd.live_attempts a WHERE a.job_id = ANY (ARRAY(SELECT f.id FROM f))
  RETURNING a.*
),
ah AS (
  INSERT INTO pgjobd.attempt_history
    (id, job_id, attempt, worker, started_at, finished_at, outcome, exit_code, signal, error,
     purge_on)
  SELECT ma.id, ma.job_id, ma.attempt, ma.worker, ma.started_at, ma.finished_at, ma.outcome,
         ma.exit_code, ma.signal, ma.error, fh.purge_on
    FROM ma JOIN fh ON fh.id = ma.job_id
  UNION ALL
  SELECT nextval('pgjobd.attempts_id_seq'), f.id, f.attempts, $1, f.started_at, now(),
         f.outcome, f.exit_code, f.signal, f.error, fh.purge_on
    FROM f JOIN fh ON fh.id = f.id
),
-- One attempts row per counted attempt; a release did not happen.
la AS (
  INSERT INTO pgjobd.live_attempts
    (job_id, attempt, worker, started_at, outcome, exit_code, signal, error)
  SELECT u.id, u.attempts, $1, u.started_at, u.outcome, u.exit_code, u.signal, u.error
    FROM u WHERE u.outcome <> 'release'
),
h AS (SELECT * FROM unnest($3::text[], $4::int[]) AS h(type, free)),
-- Two index probes per (queue, type) (c1, c2): the ready rows in lease order
-- (live_ready: jobs_ready_idx), and the scheduled rows already due in
-- run_at order (live_scheduled_idx), so rows not yet due are never
-- walked, whatever their priority.  Each probe locks at most that type's
-- free slots, so a type at its cap or with a large backlog never crowds
-- out the others.  Rows locked but not picked are let go at commit.  A job
-- past its expires_at is never started.
c1 AS (
  SELECT l.id, l.priority, l.run_at, h.type, h.free
    FROM h CROSS JOIN unnest($2::text[]) AS q(queue) CROSS JOIN LATERAL (
      SELECT j.id, j.priority, j.run_at FROM pgjobd.live j
       WHERE j.state = 'ready' AND j.queue = q.queue AND j.type = h.type
         AND j.run_at <= now() AND (j.expires_at IS NULL OR j.expires_at > now())
       ORDER BY j.priority, j.run_at, j.id
       LIMIT h.free FOR UPDATE SKIP LOCKED) l
),
c2 AS (
  SELECT l.id, l.priority, l.run_at, h.type, h.free
    FROM h CROSS JOIN unnest($2::text[]) AS q(queue) CROSS JOIN LATERAL (
      SELECT j.id, j.priority, j.run_at FROM pgjobd.live j
       WHERE j.state = 'scheduled' AND j.queue = q.queue AND j.type = h.type
         AND j.run_at <= now() AND (j.expires_at IS NULL OR j.expires_at > now())
       ORDER BY j.run_at
       LIMIT h.free FOR UPDATE SKIP LOCKED) l
),
c AS (
  SELECT x.*, row_number() OVER (PARTITION BY x.type ORDER BY x.priority, x.run_at, x.id) AS rn
    FROM (SELECT * FROM c1 UNION ALL SELECT * FROM c2) x
),
p AS (SELECT id FROM c WHERE rn <= free ORDER BY priority, run_at, id LIMIT $5::int),
l AS (
  -- Expiry comes from the database's clock, never the daemon's.
  UPDATE pgjobd.live j
     SET state = 'running', attempts = j.attempts + 1, worker = $1,
         started_at = now(), finished_at = NULL,
         lease_token = nextval('pgjobd.lease_token_seq'),
         lease_expires_at = now() + $6::bigint * interval '1 ms'
   WHERE j.id = ANY (ARRAY(SELECT p.id FROM p))
  RETURNING j.id, j.lease_token, j.type, j.queue, j.attempts, j.max_attempts, j.idempotency_key,
    (extract(epoch FROM j.timeout) * 1000)::bigint AS timeout_ms, j.payload::text AS payload,
    -- args_from_payload: the strings of payload's "args", each with \ and
    -- newline escaped, joined by newlines; or why they are unusable.
    CASE WHEN jsonb_typeof(j.payload -> 'args') = 'array'
         THEN jsonb_array_length(j.payload -> 'args') ELSE 0 END AS nargs,
    CASE WHEN jsonb_typeof(j.payload -> 'args') = 'array' THEN
      (SELECT string_agg(replace(replace(a.v, '\', '\\'), E'\n', '\n'), E'\n' ORDER BY a.n)
         FROM jsonb_array_elements_text(j.payload -> 'args') WITH ORDINALITY AS a(v, n)) END
      AS args,
    CASE WHEN jsonb_typeof(j.payload) = 'object' AND j.payload ? 'args' AND
      (jsonb_typeof(j.payload -> 'args') <> 'array' OR EXISTS (SELECT 1 FROM
        jsonb_array_elements(j.payload -> 'args') e WHERE jsonb_typeof(e) <> 'string'))
    THEN 'payload "args" is not an array of strings' END AS args_error,
    -- For the metrics only (pgjobd_pickup_delay_seconds): how long the
    -- job waited past its due time; run_at is not changed by this lease.
    extract(epoch FROM now() - j.run_at)::float8 * 1000 AS pickup_delay_ms
)
SELECT 'l' AS kind, l.id, l.lease_token AS token, l.type, l.queue, l.attempts AS attempt,
       l.max_attempts, l.timeout_ms, l.payload, l.nargs, l.args, l.args_error,
       l.pickup_delay_ms, l.idempotency_key
  FROM l
UNION ALL
SELECT 'o', fh.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM fh
UNION ALL
SELECT 'o', u.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM u
