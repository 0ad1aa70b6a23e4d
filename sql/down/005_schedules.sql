-- Undo schema version 5 (sql/005_schedules.sql): the schedules are
-- dropped, with their definitions and recorded slots.  Every job is kept,
-- those the schedules enqueued too (their idempotency keys, cron:NAME:SLOT,
-- stay with them).  Run by `pgjobd --migrate --to 4` (or lower) in one
-- transaction; the grants go with the objects.
DROP VIEW pgjobd.schedules;
DROP FUNCTION pgjobd._schedule_fire(text[], timestamptz);
DROP FUNCTION pgjobd.schedule_disable(text);
DROP FUNCTION pgjobd.schedule_enable(text, boolean);
DROP FUNCTION pgjobd.unschedule(text);
DROP FUNCTION pgjobd.schedule(text, text, text, jsonb, text, text, int, int, interval, text,
                              text);
DROP FUNCTION pgjobd._slot_key(text, timestamptz);
DROP FUNCTION pgjobd.cron_next(text, text, timestamptz, int);
DROP FUNCTION pgjobd._cron_newest(pgjobd._cron_spec, text, timestamptz, timestamptz, int);
DROP FUNCTION pgjobd._cron_after(pgjobd._cron_spec, text, timestamptz);
DROP FUNCTION pgjobd._local_instant(timestamp, text);
DROP FUNCTION pgjobd._zone_offset(text, timestamptz);
DROP FUNCTION pgjobd._check_zone(text, text);
DROP FUNCTION pgjobd._cron_parse(text, text);
DROP FUNCTION pgjobd._cron_field(text, text, text, int, int, text[]);
DROP TYPE pgjobd._cron_spec;
DROP TABLE pgjobd.schedule_defs;
DROP FUNCTION pgjobd._schedule_catchup_max();
DROP FUNCTION pgjobd._schedule_grace();

-- Version 4's type right: the daemon's role no longer enqueues.
CREATE OR REPLACE FUNCTION pgjobd._may_enqueue(p_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT pg_catalog.pg_has_role(session_user, n.nspowner, 'USAGE') OR EXISTS (
		SELECT FROM pgjobd.enqueue_grants g
		 WHERE g.type IN (p_type, '*') AND pg_catalog.pg_has_role(session_user, g.grantee, 'USAGE'))
	  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pgjobd'
$$;
-- A migration file ends in a command, not a query (src/migrate.c).
DO $$ BEGIN PERFORM pgjobd._harden(); END $$;
