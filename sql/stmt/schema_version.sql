-- The schema version installed: the highest migration recorded.  Fails
-- with undefined_table or invalid_schema_name when nothing is installed.
SELECT coalesce(max(version), 0) AS version FROM pgjobd.migrations
