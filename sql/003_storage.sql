-- pgjobd schema, version 3: storage that stays flat from an empty table to
-- tens of millions of finished jobs, with retention and expiry.
--
-- Applied by `pgjobd --migrate` in one transaction (under the migration
-- advisory lock), in place: every job and attempt of a version-2 database
-- is kept.  sql/down/003_storage.sql undoes it.
--
-- The design: the rows a lease or an outcome touches are kept apart from
-- the rows they must never look at.
--  * pgjobd.live (the version-2 table pgjobd.jobs, renamed) holds only the
--    jobs that can still run: 'scheduled' (run_at in the future when
--    written), 'ready' (due) and 'running'.  Its size is the backlog, never
--    the history.  Scheduled rows have their own partial indexes, so a lease
--    walks only due rows whatever the priority of the future ones; the
--    lease also takes due scheduled rows directly, and pgjobd.maintain()
--    promotes them to 'ready' so that priority orders them too.
--  * pgjobd.history holds finished jobs (done, dead, cancelled, expired),
--    partitioned by purge_on: the UTC day from which the row may be removed,
--    fixed when the job finishes as finished_at + its state's retention.
--    Removing a day is dropping one partition, whatever it holds.  A DEFAULT
--    partition catches rows for a day whose partition does not exist yet,
--    so finishing a job never fails for lack of a partition.
--  * pgjobd.live_attempts / pgjobd.attempt_history: the same split for
--    attempts; a job's attempts move with it and are removed with it.
--  * pgjobd.jobs and pgjobd.attempts are views over both halves with every
--    column of version 2 (writes to them are routed by INSTEAD OF
--    triggers), so the contract keeps its shape.
--  * pgjobd.history_counts and pgjobd.live_counts keep counts (as deltas
--    that pgjobd.maintain() sums up), so queue_stats never counts millions
--    of rows.

-- Dependants of the old table that are rebuilt below.
DROP VIEW pgjobd.queue_stats;
DROP FUNCTION pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval);
DROP FUNCTION pgjobd.cancel(bigint);
DROP FUNCTION pgjobd.retry(bigint);

ALTER TABLE pgjobd.jobs RENAME TO live;
ALTER TABLE pgjobd.attempts RENAME TO live_attempts;
-- Attempts of finished jobs live in attempt_history, which a foreign key
-- cannot reference; the functions below keep the two in step.
ALTER TABLE pgjobd.live_attempts DROP CONSTRAINT attempts_job_id_fkey;
ALTER TABLE pgjobd.live_attempts DROP CONSTRAINT attempts_outcome_check;
ALTER TABLE pgjobd.live_attempts ADD CONSTRAINT attempts_outcome_check
	CHECK (outcome IN ('done', 'retry', 'dead', 'cancelled', 'lost'));
-- expires_at: a job not started by then is never run (final state 'expired').
ALTER TABLE pgjobd.live ADD COLUMN expires_at timestamptz;
COMMENT ON TABLE pgjobd.live IS 'pgjobd: jobs that can still run (scheduled, ready, running)';
COMMENT ON TABLE pgjobd.live_attempts IS 'pgjobd: finished attempts of jobs in pgjobd.live';
-- "throughput per minute" (contrib/monitoring.sql), as on attempt_history.
CREATE INDEX live_attempts_finished_idx ON pgjobd.live_attempts (finished_at);

-- How long finished jobs are kept, per final state (cluster-wide).
CREATE TABLE pgjobd.retention (
	state text PRIMARY KEY,
	keep  interval NOT NULL,
	CONSTRAINT retention_state_check CHECK (state IN ('done', 'dead', 'cancelled', 'expired')),
	CONSTRAINT retention_keep_check CHECK (keep >= interval '0')
);
COMMENT ON TABLE pgjobd.retention IS
	'pgjobd: how long finished jobs are kept per final state; set with pgjobd.set_retention()';
INSERT INTO pgjobd.retention VALUES
	('done', '7 days'), ('dead', '30 days'), ('cancelled', '30 days'), ('expired', '30 days');

CREATE TABLE pgjobd.history (
	id               bigint      NOT NULL,
	queue            text        NOT NULL,
	type             text        NOT NULL,
	payload          jsonb       NOT NULL,
	state            text        NOT NULL,
	priority         int         NOT NULL,
	run_at           timestamptz NOT NULL,
	attempts         int         NOT NULL,
	max_attempts     int,
	timeout          interval,
	idempotency_key  text,
	created_at       timestamptz NOT NULL,
	started_at       timestamptz,
	finished_at      timestamptz,
	worker           text,
	exit_code        int,
	last_error       text,
	result           text,
	expires_at       timestamptz,
	purge_on         date        NOT NULL,   -- UTC day from which it may be removed
	CONSTRAINT history_state_check CHECK (state IN ('done', 'dead', 'cancelled', 'expired')),
	PRIMARY KEY (id, purge_on)              -- a lookup by id: one probe per partition
) PARTITION BY RANGE (purge_on);
COMMENT ON TABLE pgjobd.history IS 'pgjobd: finished jobs, one partition per purge day';
-- Idempotency keys are remembered as long as their job is retained.
CREATE INDEX history_key_idx ON pgjobd.history (queue, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
-- "dead jobs, newest first", "expired in the last day" (contrib/
-- monitoring.sql): every final state but done, the bulk, which stays out.
CREATE INDEX history_failed_idx ON pgjobd.history (state, finished_at DESC NULLS LAST)
	WHERE state <> 'done';
CREATE TABLE pgjobd.history_default PARTITION OF pgjobd.history DEFAULT;

CREATE TABLE pgjobd.attempt_history (
	id          bigint      NOT NULL DEFAULT nextval('pgjobd.attempts_id_seq'),
	job_id      bigint      NOT NULL,
	attempt     int         NOT NULL,
	worker      text,
	started_at  timestamptz,
	finished_at timestamptz NOT NULL,
	outcome     text        NOT NULL,
	exit_code   int,
	signal      int,
	error       text,
	purge_on    date        NOT NULL,       -- its job's
	CONSTRAINT attempt_history_outcome_check
		CHECK (outcome IN ('done', 'retry', 'dead', 'cancelled', 'lost'))
) PARTITION BY RANGE (purge_on);
COMMENT ON TABLE pgjobd.attempt_history IS 'pgjobd: attempts of jobs in pgjobd.history';
CREATE INDEX attempt_history_job_idx ON pgjobd.attempt_history (job_id, attempt);
-- "throughput per minute over the last hour" (contrib/monitoring.sql).
CREATE INDEX attempt_history_finished_idx ON pgjobd.attempt_history (finished_at);
CREATE TABLE pgjobd.attempt_history_default PARTITION OF pgjobd.attempt_history DEFAULT;

-- Rows of pgjobd.history per (queue, state, purge_on) and of pgjobd.live
-- per (queue, state), so that queue_stats never counts rows by the million.
-- Statement triggers add one delta row per statement and group; nothing is
-- ever updated in place, because a counter row updated by every one of
-- 10000 enqueues in one transaction would make each update walk all the
-- versions before it.  pgjobd.maintain() sums the deltas up (and a dropped
-- day takes its counts with it), so these tables stay a few rows per
-- queue.  A heartbeat changes no state and adds nothing; TRUNCATE resets.
CREATE TABLE pgjobd.history_counts (
	queue    text   NOT NULL,
	state    text   NOT NULL,
	purge_on date   NOT NULL,
	n        bigint NOT NULL
);
COMMENT ON TABLE pgjobd.history_counts IS 'pgjobd: counts of pgjobd.history, for queue_stats';
CREATE INDEX history_counts_day_idx ON pgjobd.history_counts (purge_on);
CREATE TABLE pgjobd.live_counts (
	queue text   NOT NULL,
	state text   NOT NULL,
	n     bigint NOT NULL
);
COMMENT ON TABLE pgjobd.live_counts IS 'pgjobd: counts of pgjobd.live, for queue_stats';

CREATE FUNCTION pgjobd._count_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO pgjobd.history_counts (queue, state, purge_on, n)
		SELECT r.queue, r.state, r.purge_on, count(*) FROM new_rows r GROUP BY 1, 2, 3;
	ELSE
		INSERT INTO pgjobd.history_counts (queue, state, purge_on, n)
		SELECT r.queue, r.state, r.purge_on, -count(*) FROM old_rows r GROUP BY 1, 2, 3;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER history_count_insert AFTER INSERT ON pgjobd.history
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_history();
CREATE TRIGGER history_count_delete AFTER DELETE ON pgjobd.history
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_history();

CREATE FUNCTION pgjobd._count_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT r.queue, r.state, count(*) FROM new_rows r GROUP BY 1, 2;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT r.queue, r.state, -count(*) FROM old_rows r GROUP BY 1, 2;
	ELSE
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT d.queue, d.state, sum(d.n)
		  FROM (SELECT r.queue, r.state, 1 AS n FROM new_rows r
		        UNION ALL SELECT r.queue, r.state, -1 FROM old_rows r) d
		 GROUP BY 1, 2 HAVING sum(d.n) <> 0;
	END IF;
	RETURN NULL;
END
$$;

CREATE FUNCTION pgjobd._count_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_TABLE_NAME = 'live' THEN
		DELETE FROM pgjobd.live_counts;
	ELSE
		DELETE FROM pgjobd.history_counts;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER history_count_truncate AFTER TRUNCATE ON pgjobd.history
	FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_reset();

-- The purge day of a job finishing in STATE at FINISHED: the UTC day after
-- FINISHED + that state's retention, and never before tomorrow, so that a
-- job always lands in a partition that is not being removed today.
CREATE FUNCTION pgjobd._purge_on(p_state text, p_finished timestamptz) RETURNS date
LANGUAGE sql STABLE AS $$
	SELECT greatest((coalesce(p_finished, now())
	                 + coalesce((SELECT r.keep FROM pgjobd.retention r WHERE r.state = p_state),
	                            interval '30 days')) AT TIME ZONE 'UTC',
	                now() AT TIME ZONE 'UTC')::date + 1
$$;

-- ---------------------------------------------------------------- partitions

-- Create the partitions of both history tables for every day from tomorrow
-- to the horizon (the longest retention + 15 days, or P_DAYS from today
-- when that is nearer), moving any rows the
-- DEFAULT partitions caught for such a day into them.  Each day is one
-- subtransaction; a lock not granted within the caller's lock_timeout
-- stops the loop (the next call goes on).  Returns the days created.
CREATE FUNCTION pgjobd._make_partitions(p_days int DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	v_today date := (now() AT TIME ZONE 'UTC')::date;
	v_horizon date;
	v_day date;
	v_made int := 0;
	v_jobs pgjobd.history[];
	v_attempts pgjobd.attempt_history[];
	v_name text;
BEGIN
	SELECT least(v_today + 16 + max(extract(epoch FROM keep) / 86400)::int, v_today + p_days)
	  INTO v_horizon FROM pgjobd.retention;
	FOR v_day IN SELECT d::date FROM generate_series(v_today + 1, v_horizon, interval '1 day') d
	LOOP
		v_name := 'history_' || to_char(v_day, 'YYYYMMDD');
		CONTINUE WHEN to_regclass('pgjobd.' || v_name) IS NOT NULL;
		BEGIN
			-- Rows caught by the DEFAULT partitions must leave before the
			-- day's partition may be attached; they go back in after.
			-- (Through the parent, which has no partition for the day yet,
			-- so that the count triggers see both moves.)
			WITH m AS (DELETE FROM pgjobd.history h WHERE h.purge_on = v_day RETURNING h AS r)
			SELECT array_agg(m.r) INTO v_jobs FROM m;
			WITH m AS (DELETE FROM pgjobd.attempt_history a WHERE a.purge_on = v_day
			           RETURNING a AS r)
			SELECT array_agg(m.r) INTO v_attempts FROM m;
			-- Created apart and attached with a matching CHECK: ATTACH takes
			-- only SHARE UPDATE EXCLUSIVE on the parent, which blocks neither
			-- outcomes (inserts) nor readers.
			EXECUTE format('CREATE TABLE pgjobd.%I (LIKE pgjobd.history INCLUDING DEFAULTS '
			               'INCLUDING CONSTRAINTS, CHECK (purge_on = %L))', v_name, v_day);
			EXECUTE format('ALTER TABLE pgjobd.history ATTACH PARTITION pgjobd.%I '
			               'FOR VALUES FROM (%L) TO (%L)', v_name, v_day, v_day + 1);
			EXECUTE format('CREATE TABLE pgjobd.%I (LIKE pgjobd.attempt_history INCLUDING '
			               'DEFAULTS INCLUDING CONSTRAINTS, CHECK (purge_on = %L))',
			               'attempt_' || v_name, v_day);
			EXECUTE format('ALTER TABLE pgjobd.attempt_history ATTACH PARTITION pgjobd.%I '
			               'FOR VALUES FROM (%L) TO (%L)', 'attempt_' || v_name, v_day,
			               v_day + 1);
			INSERT INTO pgjobd.history SELECT * FROM unnest(v_jobs);
			INSERT INTO pgjobd.attempt_history SELECT * FROM unnest(v_attempts);
			v_made := v_made + 1;
		EXCEPTION WHEN lock_not_available THEN
			EXIT;
		END;
	END LOOP;
	RETURN v_made;
END
$$;

-- Remove every day of history whose purge day has come: drop its two
-- partitions (the cost of a drop, whatever the rows) and its counts, and
-- delete what the DEFAULT partitions hold for past days (normally nothing).
-- Dropping a partition takes ACCESS EXCLUSIVE on the parent until commit,
-- so a day whose lock is not granted within the caller's lock_timeout is
-- left for the next call.  Returns the days removed.
CREATE FUNCTION pgjobd._drop_partitions() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	v_today date := (now() AT TIME ZONE 'UTC')::date;
	v_dropped int := 0;
	v_part record;
BEGIN
	FOR v_part IN
		SELECT c.relname, to_date(substr(c.relname, 9), 'YYYYMMDD') AS day
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'pgjobd.history'::regclass AND c.relname ~ '^history_[0-9]{8}$'
		   AND to_date(substr(c.relname, 9), 'YYYYMMDD') <= v_today
		 ORDER BY 2
	LOOP
		BEGIN
			EXECUTE format('DROP TABLE IF EXISTS pgjobd.%I', 'attempt_' || v_part.relname);
			EXECUTE format('DROP TABLE pgjobd.%I', v_part.relname);
			DELETE FROM pgjobd.history_counts WHERE purge_on = v_part.day;
			v_dropped := v_dropped + 1;
		EXCEPTION WHEN lock_not_available THEN
			RETURN v_dropped;   -- the rest next time
		END;
	END LOOP;
	-- Every past day is gone: what is left for past days (and its counts)
	-- is in the DEFAULT partitions.
	BEGIN
		DELETE FROM pgjobd.attempt_history_default WHERE purge_on <= v_today;
		DELETE FROM pgjobd.history_default WHERE purge_on <= v_today;
		DELETE FROM pgjobd.history_counts WHERE purge_on <= v_today;
	EXCEPTION WHEN lock_not_available THEN
		NULL;
	END;
	RETURN v_dropped;
END
$$;

-- ------------------------------------------------------------- moving rows

-- Move the attempts of job P_ID to where the job now is: attempt_history
-- with purge day P_PURGE_ON, or live_attempts when that is NULL.
CREATE FUNCTION pgjobd._move_attempts(p_id bigint, p_purge_on date) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_purge_on IS NULL THEN
		WITH m AS (DELETE FROM pgjobd.attempt_history a WHERE a.job_id = p_id RETURNING a.*)
		INSERT INTO pgjobd.live_attempts
			(id, job_id, attempt, worker, started_at, finished_at, outcome, exit_code, signal,
			 error)
		OVERRIDING SYSTEM VALUE
		SELECT m.id, m.job_id, m.attempt, m.worker, m.started_at, m.finished_at, m.outcome,
		       m.exit_code, m.signal, m.error FROM m;
	ELSE
		WITH m AS (DELETE FROM pgjobd.live_attempts a WHERE a.job_id = p_id RETURNING a.*),
		h AS (DELETE FROM pgjobd.attempt_history a WHERE a.job_id = p_id
		      AND a.purge_on <> p_purge_on RETURNING a.*)
		INSERT INTO pgjobd.attempt_history
			(id, job_id, attempt, worker, started_at, finished_at, outcome, exit_code, signal,
			 error, purge_on)
		SELECT m.id, m.job_id, m.attempt, m.worker, m.started_at, m.finished_at, m.outcome,
		       m.exit_code, m.signal, m.error, p_purge_on FROM m
		UNION ALL
		SELECT h.id, h.job_id, h.attempt, h.worker, h.started_at, h.finished_at, h.outcome,
		       h.exit_code, h.signal, h.error, p_purge_on FROM h;
	END IF;
END
$$;

-- Write job row J (as pgjobd.jobs shows it) where its state belongs:
-- pgjobd.history for a final state, else pgjobd.live ('ready' with a
-- future run_at becomes 'scheduled').  The caller has removed any earlier
-- row of the job.  Returns its purge day (NULL when live).
CREATE FUNCTION pgjobd._put(j pgjobd.live) RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
	v_purge date;
BEGIN
	IF j.state IN ('done', 'dead', 'cancelled', 'expired') THEN
		v_purge := pgjobd._purge_on(j.state, j.finished_at);
		INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
			max_attempts, timeout, idempotency_key, created_at, started_at, finished_at,
			worker, exit_code, last_error, result, expires_at, purge_on)
		VALUES (j.id, j.queue, j.type, j.payload, j.state, j.priority, j.run_at, j.attempts,
			j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at,
			j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.expires_at,
			v_purge);
	ELSE
		IF j.state = 'ready' AND j.run_at > now() THEN
			j.state := 'scheduled';
		END IF;
		INSERT INTO pgjobd.live (id, queue, type, payload, state, priority, run_at, attempts,
			max_attempts, timeout, idempotency_key, created_at, started_at, finished_at,
			worker, exit_code, last_error, result, lease_token, lease_expires_at, expires_at)
		OVERRIDING SYSTEM VALUE
		VALUES (j.id, j.queue, j.type, j.payload, j.state, j.priority, j.run_at, j.attempts,
			j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at,
			j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.lease_token,
			j.lease_expires_at, j.expires_at);
	END IF;
	PERFORM pgjobd._move_attempts(j.id, v_purge);
	RETURN v_purge;
END
$$;

-- ------------------------------------------------------------ the upgrade

-- Scheduled rows get their own state; finished rows move to history.
-- Rows already past their new retention are kept until tomorrow: an
-- upgrade never removes anything by itself.  A fresh install makes no day
-- partitions here, which keeps --migrate as short as before (a daemon
-- reconnecting meanwhile would find no schema); the first maintain() makes
-- them, and the DEFAULT partition holds what finishes before that.  An
-- upgrade with finished jobs makes them all, so that those land in theirs.
ALTER TABLE pgjobd.live DROP CONSTRAINT jobs_state_check;
UPDATE pgjobd.live SET state = 'scheduled' WHERE state = 'ready' AND run_at > now();
SELECT pgjobd._make_partitions(CASE WHEN EXISTS (SELECT FROM pgjobd.live
	WHERE state IN ('done', 'dead', 'cancelled')) THEN NULL ELSE 0 END);
WITH m AS (
	DELETE FROM pgjobd.live j WHERE j.state IN ('done', 'dead', 'cancelled') RETURNING j.*
)
INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
	max_attempts, timeout, idempotency_key, created_at, started_at, finished_at, worker,
	exit_code, last_error, result, expires_at, purge_on)
SELECT m.id, m.queue, m.type, m.payload, m.state, m.priority, m.run_at, m.attempts,
       m.max_attempts, m.timeout, m.idempotency_key, m.created_at, m.started_at, m.finished_at,
       m.worker, m.exit_code, m.last_error, m.result, m.expires_at,
       pgjobd._purge_on(m.state, m.finished_at)
  FROM m;
WITH m AS (
	DELETE FROM pgjobd.live_attempts a USING pgjobd.history h WHERE h.id = a.job_id
	RETURNING a.*, h.purge_on
)
INSERT INTO pgjobd.attempt_history (id, job_id, attempt, worker, started_at, finished_at,
	outcome, exit_code, signal, error, purge_on)
SELECT m.id, m.job_id, m.attempt, m.worker, m.started_at, m.finished_at, m.outcome,
       m.exit_code, m.signal, m.error, m.purge_on FROM m;

ALTER TABLE pgjobd.live ADD CONSTRAINT jobs_state_check
	CHECK (state IN ('scheduled', 'ready', 'running'));

-- The lease's second probe: due scheduled rows per (queue, type), walked
-- by run_at, so rows not yet due are never read.
CREATE INDEX live_scheduled_idx ON pgjobd.live (queue, type, run_at)
	WHERE state = 'scheduled';
-- maintain()'s promotion of due scheduled rows, across all queues.
CREATE INDEX live_due_idx ON pgjobd.live (run_at) WHERE state = 'scheduled';
-- queue_stats: the oldest ready run_at per queue.  (Replaces version 1's
-- jobs_queue_state_idx.)
DROP INDEX pgjobd.jobs_queue_state_idx;
CREATE INDEX live_queue_state_idx ON pgjobd.live (queue, state, run_at);
-- maintain()'s expiry.
CREATE INDEX live_expires_idx ON pgjobd.live (expires_at)
	WHERE expires_at IS NOT NULL AND state <> 'running';

-- Count the live rows from here on (the moves above are done).
INSERT INTO pgjobd.live_counts (queue, state, n)
SELECT queue, state, count(*) FROM pgjobd.live GROUP BY 1, 2;
CREATE TRIGGER live_count_insert AFTER INSERT ON pgjobd.live
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_live();
CREATE TRIGGER live_count_update AFTER UPDATE ON pgjobd.live
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_live();
CREATE TRIGGER live_count_delete AFTER DELETE ON pgjobd.live
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_live();
CREATE TRIGGER live_count_truncate AFTER TRUNCATE ON pgjobd.live
	FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_reset();

-- ------------------------------------------------------------------ views

-- Live rows come in three branches, each with a constant state, so that a
-- query for one state skips the branches that cannot hold it (the planner
-- folds "'running' = 'dead'" to false) and a query for a finished state
-- never reads pgjobd.live at all.  Each live row is in exactly one branch.
CREATE VIEW pgjobd.jobs AS
SELECT l.id, l.queue, l.type, l.payload, 'running'::text AS state,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.finished_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date AS purge_on
  FROM pgjobd.live l WHERE l.state = 'running'
UNION ALL
SELECT l.id, l.queue, l.type, l.payload, 'ready'::text,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.finished_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date
  FROM pgjobd.live l
 WHERE l.state <> 'running' AND (l.expires_at IS NULL OR l.expires_at > now())
UNION ALL
-- Past its expires_at, not started: expired (maintain() moves it to history).
SELECT l.id, l.queue, l.type, l.payload, 'expired'::text,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.expires_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date
  FROM pgjobd.live l WHERE l.state <> 'running' AND l.expires_at <= now()
UNION ALL
SELECT h.id, h.queue, h.type, h.payload, h.state, h.priority, h.run_at, h.attempts,
       h.max_attempts, h.timeout, h.idempotency_key, h.created_at, h.started_at, h.finished_at,
       h.worker, h.exit_code, h.last_error, h.result, NULL::bigint, NULL::timestamptz,
       h.expires_at, h.purge_on
  FROM pgjobd.history h;
COMMENT ON VIEW pgjobd.jobs IS 'pgjobd: every job, live or finished (pgjobd.live + pgjobd.history)';
ALTER VIEW pgjobd.jobs ALTER COLUMN id SET DEFAULT nextval('pgjobd.jobs_id_seq');
ALTER VIEW pgjobd.jobs ALTER COLUMN queue SET DEFAULT 'default';
ALTER VIEW pgjobd.jobs ALTER COLUMN payload SET DEFAULT '{}';
ALTER VIEW pgjobd.jobs ALTER COLUMN state SET DEFAULT 'ready';
ALTER VIEW pgjobd.jobs ALTER COLUMN priority SET DEFAULT 0;
ALTER VIEW pgjobd.jobs ALTER COLUMN run_at SET DEFAULT now();
ALTER VIEW pgjobd.jobs ALTER COLUMN attempts SET DEFAULT 0;
ALTER VIEW pgjobd.jobs ALTER COLUMN created_at SET DEFAULT now();

CREATE VIEW pgjobd.attempts AS
SELECT a.id, a.job_id, a.attempt, a.worker, a.started_at, a.finished_at, a.outcome,
       a.exit_code, a.signal, a.error
  FROM pgjobd.live_attempts a
UNION ALL
SELECT a.id, a.job_id, a.attempt, a.worker, a.started_at, a.finished_at, a.outcome,
       a.exit_code, a.signal, a.error
  FROM pgjobd.attempt_history a;
COMMENT ON VIEW pgjobd.attempts IS 'pgjobd: every finished attempt of every retained job';
ALTER VIEW pgjobd.attempts ALTER COLUMN id SET DEFAULT nextval('pgjobd.attempts_id_seq');
ALTER VIEW pgjobd.attempts ALTER COLUMN finished_at SET DEFAULT now();

-- Writes to the views (an operator's repair, a test setting up state) go
-- where the row belongs, through the same constraints as the daemon's.
CREATE FUNCTION pgjobd._jobs_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v pgjobd.live;
	v_state text;
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		IF OLD.purge_on IS NULL THEN
			IF TG_OP = 'UPDATE' AND NEW.state NOT IN ('done', 'dead', 'cancelled', 'expired') THEN
				-- Live stays live: a real UPDATE, so that a concurrent
				-- daemon's fenced write follows it.
				v_state := CASE WHEN NEW.state = 'ready' AND NEW.run_at > now()
				                THEN 'scheduled' ELSE NEW.state END;
				UPDATE pgjobd.live l SET queue = NEW.queue, type = NEW.type,
				       payload = NEW.payload, state = v_state, priority = NEW.priority,
				       run_at = NEW.run_at, attempts = NEW.attempts,
				       max_attempts = NEW.max_attempts, timeout = NEW.timeout,
				       idempotency_key = NEW.idempotency_key, created_at = NEW.created_at,
				       started_at = NEW.started_at, finished_at = NEW.finished_at,
				       worker = NEW.worker, exit_code = NEW.exit_code,
				       last_error = NEW.last_error, result = NEW.result,
				       lease_token = NEW.lease_token,
				       lease_expires_at = NEW.lease_expires_at, expires_at = NEW.expires_at
				 WHERE l.id = OLD.id;
				RETURN NEW;
			END IF;
			DELETE FROM pgjobd.live l WHERE l.id = OLD.id;
		ELSE
			DELETE FROM pgjobd.history h WHERE h.id = OLD.id AND h.purge_on = OLD.purge_on;
		END IF;
		IF TG_OP = 'DELETE' THEN
			DELETE FROM pgjobd.live_attempts a WHERE a.job_id = OLD.id;
			DELETE FROM pgjobd.attempt_history a WHERE a.job_id = OLD.id;
			RETURN OLD;
		END IF;
	END IF;
	v := (NEW.id, NEW.queue, NEW.type, NEW.payload, NEW.state, NEW.priority, NEW.run_at,
	      NEW.attempts, NEW.max_attempts, NEW.timeout, NEW.idempotency_key, NEW.created_at,
	      NEW.started_at, NEW.finished_at, NEW.worker, NEW.exit_code, NEW.last_error,
	      NEW.result, NEW.lease_token, NEW.lease_expires_at, NEW.expires_at);
	NEW.purge_on := pgjobd._put(v);
	RETURN NEW;
END
$$;
CREATE TRIGGER jobs_write INSTEAD OF INSERT OR UPDATE OR DELETE ON pgjobd.jobs
	FOR EACH ROW EXECUTE FUNCTION pgjobd._jobs_write();

CREATE FUNCTION pgjobd._attempts_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v_purge date;
BEGIN
	SELECT h.purge_on INTO v_purge FROM pgjobd.history h WHERE h.id = NEW.job_id;
	IF v_purge IS NULL THEN
		INSERT INTO pgjobd.live_attempts (id, job_id, attempt, worker, started_at, finished_at,
			outcome, exit_code, signal, error)
		OVERRIDING SYSTEM VALUE
		VALUES (NEW.id, NEW.job_id, NEW.attempt, NEW.worker, NEW.started_at, NEW.finished_at,
			NEW.outcome, NEW.exit_code, NEW.signal, NEW.error);
	ELSE
		INSERT INTO pgjobd.attempt_history (id, job_id, attempt, worker, started_at,
			finished_at, outcome, exit_code, signal, error, purge_on)
		VALUES (NEW.id, NEW.job_id, NEW.attempt, NEW.worker, NEW.started_at, NEW.finished_at,
			NEW.outcome, NEW.exit_code, NEW.signal, NEW.error, v_purge);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER attempts_write INSTEAD OF INSERT ON pgjobd.attempts
	FOR EACH ROW EXECUTE FUNCTION pgjobd._attempts_write();

-- Counted from pgjobd.live_counts and pgjobd.history_counts, so that no
-- table is read row by row.  Due scheduled rows count as ready, and a live
-- row past its expires_at as expired; both are few (maintain() promotes and
-- moves them) and found by index.
CREATE VIEW pgjobd.queue_stats AS
WITH a AS (
	SELECT queue,
	       sum(n) FILTER (WHERE state = 'ready')     AS ready,
	       sum(n) FILTER (WHERE state = 'scheduled') AS scheduled,
	       sum(n) FILTER (WHERE state = 'running')   AS running
	  FROM pgjobd.live_counts GROUP BY queue HAVING sum(n) <> 0
),
d AS (
	SELECT queue, count(*) AS n, min(run_at) AS oldest
	  FROM pgjobd.live
	 WHERE state = 'scheduled' AND run_at <= now()
	   AND (expires_at IS NULL OR expires_at > now())
	 GROUP BY queue
),
e AS (
	SELECT queue, count(*) AS n, count(*) FILTER (WHERE state = 'ready') AS ready
	  FROM pgjobd.live
	 WHERE expires_at <= now() AND state <> 'running'
	 GROUP BY queue
),
h AS (
	SELECT queue,
	       sum(n) FILTER (WHERE state = 'done')      AS done,
	       sum(n) FILTER (WHERE state = 'dead')      AS dead,
	       sum(n) FILTER (WHERE state = 'cancelled') AS cancelled,
	       sum(n) FILTER (WHERE state = 'expired')   AS expired
	  FROM pgjobd.history_counts GROUP BY queue HAVING sum(n) <> 0
)
SELECT coalesce(a.queue, h.queue) AS queue,
       (coalesce(a.ready, 0) - coalesce(e.ready, 0) + coalesce(d.n, 0))::bigint AS ready,
       (coalesce(a.scheduled, 0) - coalesce(d.n, 0) - (coalesce(e.n, 0) - coalesce(e.ready, 0)))::bigint
           AS scheduled,
       coalesce(a.running, 0)::bigint AS running,
       coalesce(h.done, 0)::bigint AS done,
       coalesce(h.dead, 0)::bigint AS dead,
       coalesce(h.cancelled, 0)::bigint AS cancelled,
       now() - least((SELECT min(r.run_at) FROM pgjobd.live r
                       WHERE r.queue = a.queue AND r.state = 'ready'), d.oldest)
           AS oldest_ready_age,
       (coalesce(h.expired, 0) + coalesce(e.n, 0))::bigint AS expired
  FROM a FULL JOIN h ON h.queue = a.queue
  LEFT JOIN d ON d.queue = a.queue
  LEFT JOIN e ON e.queue = a.queue;

-- ---------------------------------------------------------------- the API

CREATE FUNCTION pgjobd.enqueue(type text, payload jsonb DEFAULT '{}',
                               queue text DEFAULT 'default',
                               run_at timestamptz DEFAULT NULL,
                               priority int DEFAULT 0,
                               max_attempts int DEFAULT NULL,
                               idempotency_key text DEFAULT NULL,
                               timeout interval DEFAULT NULL,
                               expires_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_id bigint;
	v_run_at timestamptz := coalesce(enqueue.run_at, now());
	v_due boolean;
	v_lock int;
BEGIN
	IF enqueue.type IS NULL OR enqueue.type !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('enqueue', 'type',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(enqueue.type, 140)), 'NULL')));
	END IF;
	IF enqueue.queue IS NULL OR enqueue.queue !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('enqueue', 'queue',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(enqueue.queue, 140)), 'NULL')));
	END IF;
	IF enqueue.payload IS NULL THEN
		PERFORM pgjobd._refuse('enqueue', 'payload', 'must not be NULL (use ''{}'')');
	END IF;
	IF octet_length(enqueue.payload::text) > 1048576 THEN
		PERFORM pgjobd._refuse('enqueue', 'payload',
			format('is %s bytes, over the limit of 1 MiB (1048576 bytes)',
			       octet_length(enqueue.payload::text)));
	END IF;
	IF enqueue.priority IS NULL THEN
		PERFORM pgjobd._refuse('enqueue', 'priority', 'must not be NULL');
	END IF;
	IF enqueue.max_attempts < 1 THEN
		PERFORM pgjobd._refuse('enqueue', 'max_attempts',
			format('must be at least 1, got %s', enqueue.max_attempts));
	END IF;
	IF enqueue.timeout < interval '0' THEN
		PERFORM pgjobd._refuse('enqueue', 'timeout',
			format('must not be negative, got %s', enqueue.timeout));
	END IF;
	IF enqueue.idempotency_key = '' THEN
		PERFORM pgjobd._refuse('enqueue', 'idempotency_key', 'must not be empty (use NULL for none)');
	END IF;
	IF enqueue.expires_at <= v_run_at THEN
		PERFORM pgjobd._refuse('enqueue', 'expires_at',
			format('must be later than run_at (%s), got %s', v_run_at, enqueue.expires_at));
	END IF;

	v_due := v_run_at <= now();

	IF enqueue.idempotency_key IS NOT NULL THEN
		-- One enqueuer per (queue, key) at a time.  The look is one
		-- statement over both halves, so a job moving between live and
		-- history at this moment is seen in exactly one of them.  The
		-- lock is taken at session level, so that an enqueuer that finds
		-- the first job lets go at once (and later ones need not wait for
		-- its transaction); one that inserts holds it at transaction level
		-- too, until its job is committed or rolled back.
		v_lock := hashtext(enqueue.queue || E'\n' || enqueue.idempotency_key);
		PERFORM pg_advisory_lock(1885502308, v_lock);
		BEGIN
			SELECT k.id INTO v_id FROM (
				SELECT l.id FROM pgjobd.live l
				 WHERE l.queue = enqueue.queue AND l.idempotency_key = enqueue.idempotency_key
				UNION ALL
				SELECT h.id FROM pgjobd.history h
				 WHERE h.queue = enqueue.queue AND h.idempotency_key = enqueue.idempotency_key
			) k LIMIT 1;
			IF v_id IS NULL THEN
				PERFORM pg_advisory_xact_lock(1885502308, v_lock);
			END IF;
		EXCEPTION WHEN OTHERS OR query_canceled THEN
			PERFORM pg_advisory_unlock(1885502308, v_lock);
			RAISE;
		END;
		PERFORM pg_advisory_unlock(1885502308, v_lock);
		IF v_id IS NOT NULL THEN
			RETURN v_id;   -- the first job: nothing changes, no NOTIFY
		END IF;
	END IF;
	INSERT INTO pgjobd.live AS j (queue, type, payload, state, priority, run_at,
	                              max_attempts, timeout, idempotency_key, expires_at)
	VALUES (enqueue.queue, enqueue.type, enqueue.payload,
	        CASE WHEN v_due THEN 'ready' ELSE 'scheduled' END, enqueue.priority, v_run_at,
	        enqueue.max_attempts, enqueue.timeout, enqueue.idempotency_key, enqueue.expires_at)
	RETURNING j.id INTO v_id;

	-- Wake the daemons serving this queue.  PostgreSQL folds identical
	-- notifications (same channel and payload) within a transaction, so a
	-- transaction that enqueues 10000 jobs into one queue sends one.
	-- Scheduled jobs are found by the daemons' timers instead.
	IF v_due THEN
		PERFORM pg_notify('pgjobd_enqueue', enqueue.queue);
	END IF;
	RETURN v_id;
END
$$;

CREATE FUNCTION pgjobd.cancel(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v pgjobd.live;
BEGIN
	SELECT * INTO v FROM pgjobd.live j WHERE j.id = cancel.id FOR UPDATE;
	-- Missing here: finished (or no such job).  Past its expires_at and
	-- not running: already expired.
	IF NOT FOUND OR (v.state <> 'running' AND v.expires_at <= now()) THEN
		RETURN false;
	END IF;
	IF v.state = 'running' THEN
		INSERT INTO pgjobd.live_attempts (job_id, attempt, worker, started_at, outcome, error)
		VALUES (v.id, v.attempts, v.worker, v.started_at, 'cancelled',
		        'cancelled by pgjobd.cancel()');
		-- The worker running it kills the handler on this notification
		-- (payload: job id); its heartbeat would notice the lost lease too.
		PERFORM pg_notify('pgjobd_cancel', v.id::text);
	END IF;
	DELETE FROM pgjobd.live j WHERE j.id = cancel.id;
	v.state := 'cancelled';
	v.finished_at := now();
	v.lease_token := NULL;
	v.lease_expires_at := NULL;
	PERFORM pgjobd._put(v);
	RETURN true;
END
$$;

-- dead, cancelled or expired -> ready, attempts counted from 0 again, due
-- now, no expiry (an expired job retried runs like a dead one retried).
CREATE FUNCTION pgjobd.retry(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	h pgjobd.history;
	v pgjobd.live;
BEGIN
	DELETE FROM pgjobd.history j WHERE j.id = retry.id
	   AND j.state IN ('dead', 'cancelled', 'expired') RETURNING j.* INTO h;
	IF FOUND THEN
		v := (h.id, h.queue, h.type, h.payload, 'ready', h.priority, now(), 0, h.max_attempts,
		      h.timeout, h.idempotency_key, h.created_at, h.started_at, NULL, h.worker,
		      h.exit_code, h.last_error, h.result, NULL, NULL, NULL);
		PERFORM pgjobd._put(v);
	ELSE
		-- Expired but not yet moved to history by maintain().
		UPDATE pgjobd.live j SET state = 'ready', attempts = 0, run_at = now(),
		       finished_at = NULL, expires_at = NULL
		 WHERE j.id = retry.id AND j.state <> 'running' AND j.expires_at <= now()
		RETURNING j.* INTO v;
		IF NOT FOUND THEN
			RETURN false;
		END IF;
	END IF;
	PERFORM pg_notify('pgjobd_enqueue', v.queue);
	RETURN true;
END
$$;

CREATE FUNCTION pgjobd.set_retention(state text, keep interval) RETURNS interval
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	IF set_retention.state IS NULL OR
	   set_retention.state NOT IN ('done', 'dead', 'cancelled', 'expired') THEN
		PERFORM pgjobd._refuse('set_retention', 'state',
			format('must be done, dead, cancelled or expired, got %s',
			       coalesce(quote_literal(set_retention.state), 'NULL')));
	END IF;
	IF set_retention.keep IS NULL OR set_retention.keep < interval '0'
	   OR set_retention.keep > interval '3650 days' THEN
		PERFORM pgjobd._refuse('set_retention', 'keep',
			format('must be between 0 and 3650 days, got %s',
			       coalesce(set_retention.keep::text, 'NULL')));
	END IF;
	UPDATE pgjobd.retention r SET keep = set_retention.keep WHERE r.state = set_retention.state;
	-- A longer retention needs partitions further ahead: make them now.
	PERFORM pgjobd._make_partitions();
	RETURN set_retention.keep;
END
$$;

-- Periodic upkeep, sent by every daemon on its poll timer (sql/stmt/
-- maintain.sql) and callable by anyone (pg_cron, psql).  The first caller
-- of the moment does the work; the others return at once with skipped.
-- Each step is bounded: BATCH rows per call for promotion and expiry, and
-- lock waits of at most 50 ms for partition changes (left for the next
-- call when not granted), so that enqueue and leasing are never held up.
CREATE FUNCTION pgjobd.maintain(batch int DEFAULT 10000,
                                OUT promoted int, OUT expired int,
                                OUT created int, OUT dropped int, OUT skipped boolean)
LANGUAGE plpgsql AS $$
DECLARE
	v_lock_timeout text := current_setting('lock_timeout');
BEGIN
	promoted := 0; expired := 0; created := 0; dropped := 0;
	skipped := NOT pg_try_advisory_xact_lock(1885502308, 0);
	IF skipped THEN
		RETURN;
	END IF;
	-- Due scheduled rows become ready, so that priority orders them.
	UPDATE pgjobd.live j SET state = 'ready'
	 WHERE j.id = ANY (ARRAY(
		SELECT s.id FROM pgjobd.live s WHERE s.state = 'scheduled' AND s.run_at <= now()
		 ORDER BY s.run_at LIMIT batch FOR UPDATE SKIP LOCKED));
	GET DIAGNOSTICS promoted = ROW_COUNT;
	-- Jobs not started by their expires_at become expired.
	WITH e AS (
		DELETE FROM pgjobd.live j WHERE j.id = ANY (ARRAY(
			SELECT x.id FROM pgjobd.live x
			 WHERE x.expires_at <= now() AND x.state <> 'running'
			 ORDER BY x.expires_at LIMIT batch FOR UPDATE SKIP LOCKED))
		RETURNING j.*
	),
	h AS (
		INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at,
			attempts, max_attempts, timeout, idempotency_key, created_at, started_at,
			finished_at, worker, exit_code, last_error, result, expires_at, purge_on)
		SELECT e.id, e.queue, e.type, e.payload, 'expired', e.priority, e.run_at, e.attempts,
		       e.max_attempts, e.timeout, e.idempotency_key, e.created_at, e.started_at,
		       e.expires_at, e.worker, e.exit_code, e.last_error, e.result, e.expires_at,
		       pgjobd._purge_on('expired', e.expires_at)
		  FROM e
		RETURNING history.id, history.purge_on
	),
	m AS (
		DELETE FROM pgjobd.live_attempts a WHERE a.job_id = ANY (ARRAY(SELECT e.id FROM e))
		RETURNING a.*
	),
	ma AS (
		INSERT INTO pgjobd.attempt_history (id, job_id, attempt, worker, started_at,
			finished_at, outcome, exit_code, signal, error, purge_on)
		SELECT m.id, m.job_id, m.attempt, m.worker, m.started_at, m.finished_at, m.outcome,
		       m.exit_code, m.signal, m.error, h.purge_on
		  FROM m JOIN h ON h.id = m.job_id
	)
	SELECT count(*) INTO expired FROM h;
	-- The count deltas summed up, one row per group (zeros dropped).
	WITH d AS (DELETE FROM pgjobd.history_counts RETURNING *)
	INSERT INTO pgjobd.history_counts (queue, state, purge_on, n)
	SELECT d.queue, d.state, d.purge_on, sum(d.n) FROM d GROUP BY 1, 2, 3 HAVING sum(d.n) <> 0;
	WITH d AS (DELETE FROM pgjobd.live_counts RETURNING *)
	INSERT INTO pgjobd.live_counts (queue, state, n)
	SELECT d.queue, d.state, sum(d.n) FROM d GROUP BY 1, 2 HAVING sum(d.n) <> 0;
	-- Partitions ahead, then the days whose retention has passed.
	PERFORM set_config('lock_timeout', '50ms', true);
	created := pgjobd._make_partitions();
	dropped := pgjobd._drop_partitions();
	PERFORM set_config('lock_timeout', v_lock_timeout, true);
END
$$;

-- Opt in to searching payloads (live and history) with @>, ? and jsonpath
-- operators: GIN indexes (jsonb_path_ops) on both halves, inherited by
-- every partition made later.  ON false drops them.  Building them on a
-- large history takes as long as reading it and blocks finishing jobs
-- meanwhile; the README gives the cost on enqueue.
CREATE FUNCTION pgjobd.index_payloads(on_ boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	IF on_ THEN
		CREATE INDEX IF NOT EXISTS live_payload_idx ON pgjobd.live
			USING gin (payload jsonb_path_ops);
		CREATE INDEX IF NOT EXISTS history_payload_idx ON pgjobd.history
			USING gin (payload jsonb_path_ops);
	ELSE
		DROP INDEX IF EXISTS pgjobd.live_payload_idx;
		DROP INDEX IF EXISTS pgjobd.history_payload_idx;
	END IF;
	RETURN on_;
END
$$;
