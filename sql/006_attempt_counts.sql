-- pgjobd schema, version 6: finished attempts counted per minute.
--
-- Applied by `pgjobd --migrate` in one transaction; sql/down/
-- 006_attempt_counts.sql undoes it.  Nothing existing changes.
--
-- "Throughput per minute over the last hour" (contrib/monitoring.sql)
-- counted the rows of pgjobd.attempts, a cost that grows with the hour's
-- volume: 65 ms for the 100,000 attempts of a busy hour, seconds at a
-- thousand jobs a second.  pgjobd.attempt_counts holds, per minute (UTC)
-- of finished_at and per outcome, how many attempts finished, so that the
-- query reads at most a few hundred rows however busy the hour was.
--
-- Statement triggers on both attempt tables add one delta row per
-- statement, minute and outcome, and never update in place (a counter row
-- updated by every exchange would serialize the daemons on its lock).
-- pgjobd.maintain() sums up only the minutes that have new deltas (marked
-- by summed = false; a week of summed minutes is some 50,000 rows, which
-- rewriting at every call would churn), and removes minutes older than 7
-- days.  A job
-- moving to history deletes its attempts from pgjobd.live_attempts and
-- inserts them into pgjobd.attempt_history, and the two deltas cancel.
-- Dropping a day of history (retention) and TRUNCATE change no count:
-- the counts are the throughput as it happened, whatever is still kept.

CREATE TABLE pgjobd.attempt_counts (
	minute  timestamptz NOT NULL,   -- date_trunc('minute', finished_at, 'UTC')
	outcome text        NOT NULL,
	n       bigint      NOT NULL,
	summed  boolean     NOT NULL DEFAULT false  -- false: a delta not yet summed up
);
COMMENT ON TABLE pgjobd.attempt_counts IS
	'pgjobd: finished attempts per minute and outcome (last 7 days), for monitoring';
-- The monitoring query's range, the upkeep's sums and its old minutes.
CREATE INDEX attempt_counts_minute_idx ON pgjobd.attempt_counts (minute, outcome);
-- The minutes with new deltas, however many summed ones there are.
CREATE INDEX attempt_counts_delta_idx ON pgjobd.attempt_counts (minute, outcome)
	WHERE NOT summed;

CREATE FUNCTION pgjobd._count_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO pgjobd.attempt_counts (minute, outcome, n)
		SELECT date_trunc('minute', r.finished_at, 'UTC'), r.outcome, count(*)
		  FROM new_rows r GROUP BY 1, 2;
	ELSE
		INSERT INTO pgjobd.attempt_counts (minute, outcome, n)
		SELECT date_trunc('minute', r.finished_at, 'UTC'), r.outcome, -count(*)
		  FROM old_rows r GROUP BY 1, 2;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER live_attempts_count_insert AFTER INSERT ON pgjobd.live_attempts
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_attempts();
CREATE TRIGGER live_attempts_count_delete AFTER DELETE ON pgjobd.live_attempts
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_attempts();
CREATE TRIGGER attempt_history_count_insert AFTER INSERT ON pgjobd.attempt_history
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_attempts();
CREATE TRIGGER attempt_history_count_delete AFTER DELETE ON pgjobd.attempt_history
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_attempts();

-- The last 7 days of what is kept, counted once (through the
-- finished_at indexes of both tables).
INSERT INTO pgjobd.attempt_counts (minute, outcome, n, summed)
SELECT date_trunc('minute', a.finished_at, 'UTC'), a.outcome, count(*), true
  FROM pgjobd.attempts a WHERE a.finished_at > now() - interval '7 days'
 GROUP BY 1, 2;

-- pgjobd.maintain() of version 5 becomes the storage step of the new one,
-- which adds the counts' upkeep under the same advisory lock (taken by the
-- storage step; skipped when not got).  A private step now: it runs as
-- the new one's caller, the owner, and nobody else may call it.
ALTER FUNCTION pgjobd.maintain(int) RENAME TO _maintain_storage;
ALTER FUNCTION pgjobd._maintain_storage(int) SECURITY INVOKER;
DO $$
BEGIN
	EXECUTE format('REVOKE EXECUTE ON FUNCTION pgjobd._maintain_storage(int) FROM %I, %I',
	               pgjobd._role('operator'), pgjobd._role('daemon'));
END
$$;

-- Periodic upkeep, sent by every daemon on its poll timer (sql/stmt/
-- maintain.sql) and callable by anyone with the right (pg_cron, psql):
-- the storage step (see pgjobd._maintain_storage in sql/004_roles.sql),
-- then the attempt counts summed up and their old minutes removed.
CREATE FUNCTION pgjobd.maintain(batch int DEFAULT 10000,
                                OUT promoted int, OUT expired int,
                                OUT created int, OUT dropped int, OUT skipped boolean)
LANGUAGE plpgsql AS $$
BEGIN
	SELECT s.promoted, s.expired, s.created, s.dropped, s.skipped
	  INTO promoted, expired, created, dropped, skipped
	  FROM pgjobd._maintain_storage(batch) s;
	IF skipped THEN
		RETURN;
	END IF;
	-- The minutes with new deltas, each summed into one row (zeros
	-- dropped); a delta committed meanwhile waits for the next call.
	WITH k AS (
		SELECT DISTINCT c.minute, c.outcome FROM pgjobd.attempt_counts c WHERE NOT c.summed
	),
	d AS (
		DELETE FROM pgjobd.attempt_counts c USING k
		 WHERE c.minute = k.minute AND c.outcome = k.outcome
		RETURNING c.minute, c.outcome, c.n
	)
	INSERT INTO pgjobd.attempt_counts (minute, outcome, n, summed)
	SELECT d.minute, d.outcome, sum(d.n), true FROM d
	 WHERE d.minute > now() - interval '7 days'
	 GROUP BY 1, 2 HAVING sum(d.n) <> 0;
	DELETE FROM pgjobd.attempt_counts c WHERE c.minute <= now() - interval '7 days';
END
$$;

SELECT pgjobd._harden();
ALTER FUNCTION pgjobd.maintain(int) SECURITY DEFINER;

DO $$
BEGIN
	EXECUTE format('GRANT SELECT ON pgjobd.attempt_counts TO %I', pgjobd._role('reader'));
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.maintain(int) TO %I, %I',
	               pgjobd._role('operator'), pgjobd._role('daemon'));
END
$$;
