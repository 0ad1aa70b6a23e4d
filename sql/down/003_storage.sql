-- Undo schema version 3 (sql/003_storage.sql): every job and attempt,
-- live or finished, back into the one table pgjobd.jobs / pgjobd.attempts
-- of version 2, with the version-2 API.  Nothing is lost: scheduled jobs
-- are ready again with their run_at; 'expired' does not exist in version 2,
-- so expired jobs (moved or not) become 'cancelled' with last_error saying
-- when they expired; expires_at and the retention settings are dropped.
-- Run by `pgjobd --migrate --to 2` (or lower) in one transaction.

DROP VIEW pgjobd.queue_stats;
DROP VIEW pgjobd.jobs;
DROP VIEW pgjobd.attempts;
DROP FUNCTION pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval, timestamptz);
DROP FUNCTION pgjobd.cancel(bigint);
DROP FUNCTION pgjobd.retry(bigint);
DROP FUNCTION pgjobd.set_retention(text, interval);
DROP FUNCTION pgjobd.maintain(int);
DROP FUNCTION pgjobd.index_payloads(boolean);
DROP FUNCTION pgjobd._jobs_write();
DROP FUNCTION pgjobd._attempts_write();
DROP FUNCTION pgjobd._put(pgjobd.live);
DROP FUNCTION pgjobd._move_attempts(bigint, date);
DROP FUNCTION pgjobd._make_partitions(int);
DROP FUNCTION pgjobd._drop_partitions();
DROP FUNCTION pgjobd._purge_on(text, timestamptz);
DROP INDEX pgjobd.live_scheduled_idx;
DROP INDEX pgjobd.live_due_idx;
DROP INDEX pgjobd.live_expires_idx;
DROP INDEX IF EXISTS pgjobd.live_payload_idx;
DROP INDEX pgjobd.live_queue_state_idx;
DROP INDEX pgjobd.live_attempts_finished_idx;
CREATE INDEX jobs_queue_state_idx ON pgjobd.live (queue, state);

ALTER TABLE pgjobd.live DROP CONSTRAINT jobs_state_check;
UPDATE pgjobd.live SET state = 'ready' WHERE state = 'scheduled';
UPDATE pgjobd.live
   SET state = 'cancelled', finished_at = expires_at,
       last_error = 'expired: not started by ' || expires_at
 WHERE state <> 'running' AND expires_at <= now();
INSERT INTO pgjobd.live (id, queue, type, payload, state, priority, run_at, attempts,
	max_attempts, timeout, idempotency_key, created_at, started_at, finished_at, worker,
	exit_code, last_error, result)
OVERRIDING SYSTEM VALUE
SELECT h.id, h.queue, h.type, h.payload,
       CASE WHEN h.state = 'expired' THEN 'cancelled' ELSE h.state END,
       h.priority, h.run_at, h.attempts, h.max_attempts, h.timeout, h.idempotency_key,
       h.created_at, h.started_at, h.finished_at, h.worker, h.exit_code,
       CASE WHEN h.state = 'expired' THEN 'expired: not started by ' || h.expires_at
            ELSE h.last_error END,
       h.result
  FROM pgjobd.history h;
INSERT INTO pgjobd.live_attempts (id, job_id, attempt, worker, started_at, finished_at, outcome,
	exit_code, signal, error)
OVERRIDING SYSTEM VALUE
SELECT a.id, a.job_id, a.attempt, a.worker, a.started_at, a.finished_at, a.outcome,
       a.exit_code, a.signal, a.error
  FROM pgjobd.attempt_history a;
DROP TABLE pgjobd.history;
DROP TABLE pgjobd.attempt_history;
DROP TABLE pgjobd.history_counts;
DROP TRIGGER live_count_insert ON pgjobd.live;
DROP TRIGGER live_count_update ON pgjobd.live;
DROP TRIGGER live_count_delete ON pgjobd.live;
DROP TRIGGER live_count_truncate ON pgjobd.live;
DROP TABLE pgjobd.live_counts;
DROP FUNCTION pgjobd._count_live();
DROP FUNCTION pgjobd._count_reset();
DROP TABLE pgjobd.retention;
DROP FUNCTION pgjobd._count_history();

ALTER TABLE pgjobd.live DROP COLUMN expires_at;
ALTER TABLE pgjobd.live ADD CONSTRAINT jobs_state_check
	CHECK (state IN ('ready', 'running', 'done', 'dead', 'cancelled'));
ALTER TABLE pgjobd.live RENAME TO jobs;
ALTER TABLE pgjobd.live_attempts RENAME TO attempts;
-- Attempts whose job was deleted by hand meanwhile (version 3 has no
-- foreign key) cannot come back under one.
DELETE FROM pgjobd.attempts a WHERE NOT EXISTS (SELECT FROM pgjobd.jobs j WHERE j.id = a.job_id);
ALTER TABLE pgjobd.attempts ADD CONSTRAINT attempts_job_id_fkey
	FOREIGN KEY (job_id) REFERENCES pgjobd.jobs (id) ON DELETE CASCADE;
COMMENT ON TABLE pgjobd.jobs IS 'pgjobd: one row per job for its whole life';
COMMENT ON TABLE pgjobd.attempts IS 'pgjobd: one row per finished attempt (insert-only)';

-- The version-1 definitions (sql/001_schema.sql), unchanged in version 2.
CREATE VIEW pgjobd.queue_stats AS
SELECT queue,
       count(*) FILTER (WHERE state = 'ready' AND run_at <= now()) AS ready,
       count(*) FILTER (WHERE state = 'ready' AND run_at > now())  AS scheduled,
       count(*) FILTER (WHERE state = 'running')                   AS running,
       count(*) FILTER (WHERE state = 'done')                      AS done,
       count(*) FILTER (WHERE state = 'dead')                      AS dead,
       count(*) FILTER (WHERE state = 'cancelled')                 AS cancelled,
       now() - min(run_at) FILTER (WHERE state = 'ready' AND run_at <= now()) AS oldest_ready_age
  FROM pgjobd.jobs
 GROUP BY queue;

CREATE FUNCTION pgjobd.enqueue(type text, payload jsonb DEFAULT '{}',
                               queue text DEFAULT 'default',
                               run_at timestamptz DEFAULT NULL,
                               priority int DEFAULT 0,
                               max_attempts int DEFAULT NULL,
                               idempotency_key text DEFAULT NULL,
                               timeout interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_id bigint;
	v_due boolean;
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

	v_due := enqueue.run_at IS NULL OR enqueue.run_at <= now();

	IF enqueue.idempotency_key IS NULL THEN
		INSERT INTO pgjobd.jobs AS j (queue, type, payload, priority, run_at,
		                              max_attempts, timeout)
		VALUES (enqueue.queue, enqueue.type, enqueue.payload, enqueue.priority,
		        coalesce(enqueue.run_at, now()), enqueue.max_attempts, enqueue.timeout)
		RETURNING j.id INTO v_id;
	ELSE
		-- ON CONFLICT waits for a concurrent inserter of the same key; if it
		-- commits we read its row, if it rolls back our insert goes ahead.
		-- Under READ COMMITTED each statement sees the newest commits, so
		-- the loop runs at most twice unless the first job is deleted in
		-- between.
		LOOP
			INSERT INTO pgjobd.jobs AS j (queue, type, payload, priority, run_at,
			                              max_attempts, timeout, idempotency_key)
			VALUES (enqueue.queue, enqueue.type, enqueue.payload, enqueue.priority,
			        coalesce(enqueue.run_at, now()), enqueue.max_attempts,
			        enqueue.timeout, enqueue.idempotency_key)
			ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL
			DO NOTHING
			RETURNING j.id INTO v_id;
			IF v_id IS NOT NULL THEN
				EXIT;
			END IF;
			SELECT j.id INTO v_id FROM pgjobd.jobs j
			 WHERE j.queue = enqueue.queue
			   AND j.idempotency_key = enqueue.idempotency_key;
			IF v_id IS NOT NULL THEN
				RETURN v_id;   -- the first job: nothing changes, no NOTIFY
			END IF;
		END LOOP;
	END IF;

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
	v_job pgjobd.jobs;
BEGIN
	SELECT * INTO v_job FROM pgjobd.jobs j WHERE j.id = cancel.id FOR UPDATE;
	IF NOT FOUND OR v_job.state NOT IN ('ready', 'running') THEN
		RETURN false;
	END IF;
	IF v_job.state = 'running' THEN
		INSERT INTO pgjobd.attempts (job_id, attempt, worker, started_at, outcome, error)
		VALUES (v_job.id, v_job.attempts, v_job.worker, v_job.started_at, 'cancelled',
		        'cancelled by pgjobd.cancel()');
		-- The worker running it kills the handler on this notification
		-- (payload: job id); its heartbeat would notice the lost lease too.
		PERFORM pg_notify('pgjobd_cancel', v_job.id::text);
	END IF;
	UPDATE pgjobd.jobs j
	   SET state = 'cancelled', finished_at = now(),
	       lease_token = NULL, lease_expires_at = NULL
	 WHERE j.id = cancel.id;
	RETURN true;
END
$$;

CREATE FUNCTION pgjobd.retry(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v_queue text;
BEGIN
	UPDATE pgjobd.jobs j
	   SET state = 'ready', attempts = 0, run_at = now(), finished_at = NULL
	 WHERE j.id = retry.id AND j.state IN ('dead', 'cancelled')
	RETURNING j.queue INTO v_queue;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM pg_notify('pgjobd_enqueue', v_queue);
	RETURN true;
END
$$;
