-- The schema version installed: the highest migration recorded.  Fails
-- with undefined_table or invalid_schema_name when nothing is installed.
-- Sent before session.sql has fixed the search_path, hence max in full.
SELECT coalesce(pg_catalog.max(version), 0) AS version FROM pgjobd.migrations
