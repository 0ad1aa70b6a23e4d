-- Fire the due slots of this daemon's queues' schedules, record them, and
-- say how long until the next slot (sql/005_schedules.sql,
-- pgjobd._schedule_fire: the row locks and the recorded slot make each
-- slot one job, whichever daemons ask at once).  The wait is measured by
-- the database's clock and sent as a duration, so the daemon's own clock
-- offset does not matter.
--
-- $1 queues served (text[])
-- Rows: kind 'f' (enqueued), 's' (skipped: overlap), 'm' (late: missed
-- policy applied) with name, slot (UTC, ISO 8601), job_id; then one row
-- kind 'n' with wait_ms (NULL: no slot ahead).  Columns are read by name.
SELECT f.kind, f.name,
       to_char(f.slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS slot,
       f.job_id, f.wait_ms
  FROM pgjobd._schedule_fire($1::text[]) AS f
