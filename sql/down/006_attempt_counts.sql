-- Undo schema version 6 (sql/006_attempt_counts.sql): the attempt counts
-- go, and pgjobd.maintain() is version 5's again (the storage step under
-- its old name, acting as the owner, with version 5's grants, given in
-- its order).  Every job and attempt is kept.  Run by `pgjobd --migrate
-- --to 5` (or lower) in one transaction.
DROP FUNCTION pgjobd.maintain(int);
ALTER FUNCTION pgjobd._maintain_storage(int) RENAME TO maintain;
ALTER FUNCTION pgjobd.maintain(int) SECURITY DEFINER;
DO $$
BEGIN
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.maintain(int) TO %I',
	               pgjobd._role('operator'));
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.maintain(int) TO %I',
	               pgjobd._role('daemon'));
END
$$;
DROP TRIGGER live_attempts_count_insert ON pgjobd.live_attempts;
DROP TRIGGER live_attempts_count_delete ON pgjobd.live_attempts;
DROP TRIGGER attempt_history_count_insert ON pgjobd.attempt_history;
DROP TRIGGER attempt_history_count_delete ON pgjobd.attempt_history;
DROP FUNCTION pgjobd._count_attempts();
DROP TABLE pgjobd.attempt_counts;
