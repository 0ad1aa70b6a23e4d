-- --migrate, inside its transaction: serialize concurrent runs (the
-- second waits, then finds nothing to do) and make sure the table that
-- records migrations exists.  NOTICEs of IF NOT EXISTS are quieted;
-- errors still come through.
SET LOCAL client_min_messages = warning;
-- The migrations name everything of pgjobd in full; nothing else of the
-- migrating user's search_path is wanted in them.
SET LOCAL search_path = pg_catalog, pg_temp;
SELECT pg_advisory_xact_lock(123666234761828);
CREATE SCHEMA IF NOT EXISTS pgjobd;
CREATE TABLE IF NOT EXISTS pgjobd.migrations (
  version int PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
