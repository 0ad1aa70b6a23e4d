-- Undo schema version 7 (sql/007_later.sql): the jobs of pgjobd.later go
-- back into pgjobd.live as scheduled rows, the definitions version 7
-- replaced are version 6's again, exactly (pgjobd.saved_definitions), and
-- the counts lose their summed mark.
-- Every job is kept.  Run by `pgjobd --migrate --to 6` (or lower) in one
-- transaction.
DO $$
DECLARE
	v_def text;
BEGIN
	FOR v_def IN SELECT s.definition FROM pgjobd.saved_definitions s WHERE s.version = 7
	               ORDER BY s.ord LOOP
		EXECUTE v_def;
	END LOOP;
END
$$;
WITH m AS (DELETE FROM pgjobd.later x RETURNING x.*)
INSERT INTO pgjobd.live OVERRIDING SYSTEM VALUE SELECT m.* FROM m;
-- The moves above counted themselves; what is left of 'later' sums to 0.
DELETE FROM pgjobd.live_counts WHERE state = 'later';
DROP TABLE pgjobd.later;
DROP FUNCTION pgjobd._count_later();
DROP FUNCTION pgjobd._later_move(bigint[]);
DROP FUNCTION pgjobd._later_horizon();
DROP FUNCTION pgjobd._enqueue_check(text, jsonb, text, timestamptz, int, int, text, interval,
                                    timestamptz);
DROP FUNCTION pgjobd._enqueue_key(text, text);
DROP TABLE pgjobd.saved_definitions;
DROP INDEX pgjobd.history_counts_delta_idx;
DROP INDEX pgjobd.live_counts_delta_idx;
ALTER TABLE pgjobd.history_counts DROP COLUMN summed;
ALTER TABLE pgjobd.live_counts DROP COLUMN summed;
