-- pgjobd schema, version 1: the job table, attempts, workers, the SQL API.
--
-- Applied by `pgjobd --migrate` inside one transaction that already holds
-- the migration advisory lock and has created schema pgjobd.
--
-- Design for a queue that churns millions of rows:
--  * A job is one row in pgjobd.jobs for its whole life.  The daemon's most
--    frequent write, the heartbeat, only touches lease_expires_at, which no
--    index (nor index predicate) mentions, so heartbeats are HOT updates: no
--    index insertions, and the page is pruned in place.  fillfactor 80
--    leaves room on each page for those new row versions.
--  * State transitions (ready -> running -> done) do change indexed columns;
--    there is one partial index per state that is looked up hot (ready,
--    running), so done/dead/cancelled rows cost nothing in them.
--  * pgjobd.attempts is insert-only: one row per finished attempt.

CREATE TABLE pgjobd.jobs (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	queue            text        NOT NULL DEFAULT 'default',
	type             text        NOT NULL,
	payload          jsonb       NOT NULL DEFAULT '{}',
	state            text        NOT NULL DEFAULT 'ready',
	priority         int         NOT NULL DEFAULT 0,
	run_at           timestamptz NOT NULL DEFAULT now(),
	attempts         int         NOT NULL DEFAULT 0,
	max_attempts     int,                 -- NULL: the handler's max_attempts
	timeout          interval,            -- NULL: the handler's timeout
	idempotency_key  text,
	created_at       timestamptz NOT NULL DEFAULT now(),
	started_at       timestamptz,         -- start of the current/last attempt
	finished_at      timestamptz,
	worker           text,                -- worker of the current/last attempt
	exit_code        int,
	last_error       text,
	result           text,
	-- The lease: a running job belongs to whoever holds lease_token until
	-- lease_expires_at.  Every outcome is written "WHERE lease_token = $t"
	-- (fencing); the token comes from pgjobd.lease_token_seq and is never
	-- reused, so a stale holder can never match a newer lease.
	lease_token      bigint,
	lease_expires_at timestamptz,
	CONSTRAINT jobs_state_check CHECK (state IN ('ready', 'running', 'done', 'dead', 'cancelled')),
	CONSTRAINT jobs_type_check CHECK (type ~ '^[A-Za-z0-9_.:-]{1,128}$'),
	CONSTRAINT jobs_queue_check CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
	CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
	CONSTRAINT jobs_timeout_check CHECK (timeout >= interval '0'),
	CONSTRAINT jobs_running_has_lease CHECK ((state = 'running') = (lease_token IS NOT NULL))
) WITH (fillfactor = 80);

COMMENT ON TABLE pgjobd.jobs IS 'pgjobd: one row per job for its whole life';

-- The lease query's index: runnable rows in lease order.  Partial, so it
-- holds only the ready rows (the backlog), never the millions of finished
-- ones.  A daemon leases per (queue, type) it serves, so those lead: each
-- lookup walks only its own rows in (priority, run_at, id) order and stops
-- at the first it can lock (SKIP LOCKED); a type with nothing due costs one
-- index probe however large the other types' backlog is.
CREATE INDEX jobs_ready_idx ON pgjobd.jobs (queue, type, priority, run_at, id)
	WHERE state = 'ready';

-- Running rows: few (bounded by the daemons' total concurrency).  Used to
-- find leases that expired (the rows themselves are checked for
-- lease_expires_at, which is deliberately not indexed to keep heartbeats
-- HOT) and by cancel()/heartbeat bookkeeping.
CREATE INDEX jobs_running_idx ON pgjobd.jobs (id)
	WHERE state = 'running';

-- Deduplication per (queue, idempotency_key) while the first job exists.
CREATE UNIQUE INDEX jobs_idempotency_idx ON pgjobd.jobs (queue, idempotency_key)
	WHERE idempotency_key IS NOT NULL;

-- queue_stats and monitoring group by (queue, state); this lets them count
-- from the index instead of reading every row of a table of millions.  It
-- changes only on a state transition, which is a non-HOT update anyway.
CREATE INDEX jobs_queue_state_idx ON pgjobd.jobs (queue, state);

-- Lease tokens: fencing values, unique for all time.
CREATE SEQUENCE pgjobd.lease_token_seq AS bigint;

CREATE TABLE pgjobd.attempts (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job_id      bigint      NOT NULL REFERENCES pgjobd.jobs (id) ON DELETE CASCADE,
	attempt     int         NOT NULL,   -- 1-based; retry() starts counting again
	worker      text,
	started_at  timestamptz,
	finished_at timestamptz NOT NULL DEFAULT now(),
	outcome     text        NOT NULL,
	exit_code   int,
	signal      int,
	error       text,
	CONSTRAINT attempts_outcome_check CHECK (outcome IN ('done', 'retry', 'dead', 'cancelled', 'lost'))
);
COMMENT ON TABLE pgjobd.attempts IS 'pgjobd: one row per finished attempt (insert-only)';

-- A job's history, and the ON DELETE CASCADE from jobs.
CREATE INDEX attempts_job_idx ON pgjobd.attempts (job_id, attempt);

CREATE TABLE pgjobd.workers (
	name        text        PRIMARY KEY,
	host        text        NOT NULL,
	pid         int         NOT NULL,
	started_at  timestamptz NOT NULL DEFAULT now(),
	last_seen   timestamptz NOT NULL DEFAULT now(),
	concurrency int         NOT NULL,
	running     int         NOT NULL DEFAULT 0,
	queues      text[]      NOT NULL DEFAULT '{}',
	version     text
);
COMMENT ON TABLE pgjobd.workers IS 'pgjobd: daemons, kept current by their heartbeats';

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

-- Raise the refusal for a bad argument: SQLSTATE 22023
-- (invalid_parameter_value), the message naming the function and argument.
CREATE FUNCTION pgjobd._refuse(fn text, arg text, msg text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'pgjobd.%: % %', fn, arg, msg USING ERRCODE = 'invalid_parameter_value';
END
$$;

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
