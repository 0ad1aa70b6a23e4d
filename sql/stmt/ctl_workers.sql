-- pgjobd ctl status: the daemons, by name.
-- $1 the stale bound in ms: a worker whose heartbeat is older is stale.
SELECT w.name, w.host, w.pid, w.version, w.queues, w.types,
       w.running, w.concurrency, w.started_at,
       date_trunc('second', now() - w.last_seen) AS last_seen_ago,
       w.last_seen < now() - $1::bigint * interval '1 ms' AS stale
  FROM pgjobd.workers w
 ORDER BY w.name
