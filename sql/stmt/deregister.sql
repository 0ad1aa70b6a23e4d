-- A clean stop removes the worker row, after every outcome is written.
-- $1 worker name.
DELETE FROM pgjobd.workers WHERE name = $1
