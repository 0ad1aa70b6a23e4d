-- pgjobd ctl doctor: what needs attention, one row per finding.
-- $1 the stale bound in ms: a worker whose heartbeat is older is stale
--    (and serves nothing).
-- $2 the window in ms for dead jobs.
-- Rows: kind (stale_worker, unserved, dead), subject (the worker, or
-- queue/type), n (how many), detail (one line for people).
WITH live AS (
  -- (queue, type) pairs some live daemon leases: its queues x its types.
  SELECT DISTINCT q.queue, t.type
    FROM pgjobd.workers w
   CROSS JOIN LATERAL unnest(w.queues) AS q(queue)
   CROSS JOIN LATERAL unnest(w.types) AS t(type)
   WHERE w.last_seen >= now() - $1::bigint * interval '1 ms'
)
SELECT 'stale_worker' AS kind, w.name AS subject, 1::bigint AS n,
       format('worker %s (host %s, pid %s) last seen %s ago',
              w.name, w.host, w.pid, date_trunc('second', now() - w.last_seen)) AS detail
  FROM pgjobd.workers w
 WHERE w.last_seen < now() - $1::bigint * interval '1 ms'
UNION ALL
SELECT 'unserved', j.queue || '/' || j.type, count(*),
       format('%s ready job(s) of type %s in queue %s, due for up to %s: no live worker maps that type for that queue',
              count(*), j.type, j.queue, date_trunc('second', now() - min(j.run_at)))
  FROM pgjobd.jobs j
 WHERE j.state = 'ready' AND j.run_at <= now()
   AND NOT EXISTS (SELECT 1 FROM live l WHERE l.queue = j.queue AND l.type = j.type)
 GROUP BY j.queue, j.type
UNION ALL
SELECT 'dead', j.queue || '/' || j.type, count(*),
       format('%s job(s) of type %s in queue %s went dead in the last %s; latest job %s: %s',
              count(*), j.type, j.queue, $2::bigint * interval '1 ms',
              (array_agg(j.id ORDER BY j.finished_at DESC, j.id DESC))[1],
              left(regexp_replace(coalesce((array_agg(j.last_error ORDER BY j.finished_at DESC, j.id DESC))[1],
                                           'no error recorded'),
                                  '\s+', ' ', 'g'), 120))
  FROM pgjobd.jobs j
 WHERE j.state = 'dead' AND j.finished_at >= now() - $2::bigint * interval '1 ms'
 GROUP BY j.queue, j.type
 ORDER BY 1, 2
