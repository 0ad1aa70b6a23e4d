-- The heartbeat: extend every lease this daemon holds, each fenced by its
-- token, and keep the worker row current (this is also the registration,
-- so a daemon whose row was removed puts it back).  lease_expires_at is in
-- no index and no index predicate, so these are HOT updates.
--
-- $1 job ids (bigint[])  $2 their lease tokens (bigint[])  $3 lease in ms
-- $4 worker name  $5 host  $6 pid  $7 started_at (epoch seconds)
-- $8 concurrency  $9 handlers running  $10 queues (text[])  $11 version
-- $12 the types it maps (text[])
-- Rows: id of each job whose lease is still ours; a job missing here was
-- cancelled or expired and taken over, and its handler must be killed.
--
-- The rows are found by `id = ANY ($1)` (an index probe per id, whatever
-- the plan); a lease token is unique for all time, so matching it among
-- the daemon's tokens is as good as matching it pairwise.
WITH l AS (
  UPDATE pgjobd.live j
     SET lease_expires_at = now() + $3::bigint * interval '1 ms'
   WHERE j.id = ANY ($1::bigint[]) AND j.lease_token = ANY ($2::bigint[])
  RETURNING j.id
),
w AS (
  INSERT INTO pgjobd.workers AS w
    (name, host, pid, started_at, last_seen, concurrency, running, queues, version, types)
  VALUES ($4, $5, $6::int, to_timestamp($7::double precision), now(), $8::int, $9::int,
          $10::text[], $11, $12::text[])
  ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, last_seen = now(),
    concurrency = excluded.concurrency, running = excluded.running,
    queues = excluded.queues, version = excluded.version, types = excluded.types
)
SELECT id FROM l
