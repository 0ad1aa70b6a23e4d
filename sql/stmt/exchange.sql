-- The exchange: the daemon's one statement that changes jobs.
--
-- In one transaction it writes the outcomes finished since the last
-- exchange and leases jobs into the slots those outcomes free, so that the
-- database is always right about caps and concurrency.  With no types to
-- lease ($3 = '{}') it only writes outcomes; with no outcomes ($7 = '[]')
-- it only leases.  Safe to send again after a lost connection: every
-- outcome is fenced by its lease token, and a repeat finds the token
-- cleared and changes nothing; a lease whose reply was lost expires.
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
WITH o AS (
  SELECT * FROM jsonb_to_recordset($7::jsonb) AS o(id bigint, token bigint,
    outcome text, delay_ms bigint, exit_code int, signal int, result text, error text)
),
u AS (
  UPDATE pgjobd.jobs j SET
    state = CASE o.outcome WHEN 'done' THEN 'done' WHEN 'dead' THEN 'dead' ELSE 'ready' END,
    attempts = CASE WHEN o.outcome = 'release' THEN j.attempts - 1 ELSE j.attempts END,
    run_at = CASE WHEN o.outcome = 'retry' THEN now() + o.delay_ms * interval '1 ms'
             ELSE j.run_at END,
    finished_at = CASE WHEN o.outcome IN ('done', 'dead') THEN now() END,
    exit_code = CASE WHEN o.outcome = 'release' THEN j.exit_code ELSE o.exit_code END,
    result = CASE WHEN o.outcome = 'release' THEN j.result ELSE o.result END,
    last_error = CASE WHEN o.outcome IN ('retry', 'dead') THEN o.error ELSE j.last_error END,
    lease_token = NULL, lease_expires_at = NULL
  FROM o WHERE j.id = o.id AND j.lease_token = o.token   -- fencing
  RETURNING j.id, j.attempts, j.started_at
),
a AS (
  -- One attempts row per counted attempt; a release did not happen.
  INSERT INTO pgjobd.attempts
    (job_id, attempt, worker, started_at, outcome, exit_code, signal, error)
  SELECT u.id, u.attempts, $1, u.started_at, o.outcome, o.exit_code, o.signal, o.error
    FROM u JOIN o ON o.id = u.id WHERE o.outcome <> 'release'
),
h AS (SELECT * FROM unnest($3::text[], $4::int[]) AS h(type, free)),
-- One index probe per (queue, type): jobs_ready_idx leads with them, and
-- each probe locks at most that type's free slots, so a type at its cap or
-- with a large backlog never crowds out the others.  Rows locked but not
-- picked are let go at commit.
c AS (
  SELECT l.id, l.priority, l.run_at, h.free,
         row_number() OVER (PARTITION BY h.type ORDER BY l.priority, l.run_at, l.id) AS rn
    FROM h CROSS JOIN unnest($2::text[]) AS q(queue) CROSS JOIN LATERAL (
      SELECT j.id, j.priority, j.run_at FROM pgjobd.jobs j
       WHERE j.state = 'ready' AND j.queue = q.queue AND j.type = h.type
         AND j.run_at <= now()
       ORDER BY j.priority, j.run_at, j.id
       LIMIT h.free FOR UPDATE SKIP LOCKED) l
),
p AS (SELECT id FROM c WHERE rn <= free ORDER BY priority, run_at, id LIMIT $5::int),
l AS (
  -- Expiry comes from the database's clock, never the daemon's.
  UPDATE pgjobd.jobs j
     SET state = 'running', attempts = j.attempts + 1, worker = $1,
         started_at = now(), finished_at = NULL,
         lease_token = nextval('pgjobd.lease_token_seq'),
         lease_expires_at = now() + $6::bigint * interval '1 ms'
    FROM p WHERE j.id = p.id
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
    THEN 'payload "args" is not an array of strings' END AS args_error
)
SELECT 'l' AS kind, l.id, l.lease_token AS token, l.type, l.queue, l.attempts AS attempt,
       l.max_attempts, l.timeout_ms, l.payload, l.nargs, l.args, l.args_error, l.idempotency_key
  FROM l
UNION ALL
SELECT 'o', u.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM u
