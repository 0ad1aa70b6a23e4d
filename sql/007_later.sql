-- pgjobd schema, version 7: jobs scheduled far ahead wait in their own
-- table, pgjobd.later, so that pgjobd.live stays the size of what runs
-- now and soon.
--
-- Applied by `pgjobd --migrate` in one transaction, in place: every job
-- is kept (the live ones due more than the horizon ahead move into
-- pgjobd.later).  sql/down/007_later.sql undoes it.
--
-- Why: every run of a job leaves two dead row versions in pgjobd.live (the
-- ready one and the running one), and autovacuum cleans a table once its
-- dead rows reach a fifth of its rows.  A million jobs scheduled for
-- tomorrow count toward that fifth, so pgjobd.live went unvacuumed for
-- 100,000 runs at a time, and every lease walked the dead entries at the
-- head of the ready index: six drains of 20,000 jobs beside a million
-- scheduled ones slowed by 7%, and with a VACUUM before each drain they
-- ran as fast as beside an empty table (make bench, 10M).  In a table of their own the far-future jobs count
-- toward their own vacuum only, and pgjobd.live is vacuumed as often and
-- as cheaply as its backlog deserves.
--
-- The rules:
--  * A job written due more than pgjobd._later_horizon() (2 hours) ahead
--    goes into pgjobd.later, state 'scheduled': by enqueue, and by a write
--    through pgjobd.jobs.  Everything else goes where it went before; a
--    retry's backoff stays in pgjobd.live whatever its length.
--  * pgjobd.maintain() moves the rows of pgjobd.later that come due (or
--    expire) within the horizon into pgjobd.live, BATCH at most per call;
--    a daemon calls again at once while a batch was full.  The horizon is
--    twice the longest poll_interval (1 hour), and every daemon calls
--    maintain() on its poll, so while any daemon runs a job reaches
--    pgjobd.live at least an hour before it is due.  After every daemon
--    was stopped, the first one's upkeep moves what came due meanwhile.
--  * Nothing of the daemon reads pgjobd.later: a lease and an outcome
--    touch pgjobd.live only, as before.
--  * pgjobd.jobs shows its rows as it shows the scheduled rows of
--    pgjobd.live (state ready, or expired past expires_at); queue_stats
--    counts them as scheduled (pgjobd.live_counts state 'later'); cancel,
--    retry and idempotency keys find them.
--  * pgjobd.later has pgjobd.live's columns in pgjobd.live's order (its
--    row type serves both); a later change to one must be made to both.
--  * Also: maintain() sums up only the count groups with new deltas (see
--    "upkeep" below).

-- ------------------------------------------------ what the down restores

-- A migration that replaces definitions keeps the ones it replaced here,
-- as pg_get_functiondef and pg_get_viewdef give them, and its down file
-- runs them again in ord order: an exact restore, without a second copy
-- of their text in sql/down/.
CREATE TABLE pgjobd.saved_definitions (
	version    int  NOT NULL,
	ord        int  NOT NULL,
	definition text NOT NULL,
	PRIMARY KEY (version, ord)
);
COMMENT ON TABLE pgjobd.saved_definitions IS
	'pgjobd: definitions a migration replaced, which its down file restores';
INSERT INTO pgjobd.saved_definitions (version, ord, definition)
SELECT 7, d.ord, d.definition FROM (VALUES
	(1, 'CREATE OR REPLACE VIEW pgjobd.jobs AS ' || pg_get_viewdef('pgjobd.jobs'::regclass)),
	(2, 'CREATE OR REPLACE VIEW pgjobd.queue_stats AS '
	    || pg_get_viewdef('pgjobd.queue_stats'::regclass)),
	(3, pg_get_functiondef('pgjobd._put(pgjobd.live)'::regprocedure)),
	(4, pg_get_functiondef('pgjobd._jobs_write()'::regprocedure)),
	(5, pg_get_functiondef('pgjobd._count_reset()'::regprocedure)),
	(6, pg_get_functiondef('pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, '
	                       'interval, timestamptz)'::regprocedure)),
	(7, pg_get_functiondef('pgjobd.cancel(bigint)'::regprocedure)),
	(8, pg_get_functiondef('pgjobd.retry(bigint)'::regprocedure)),
	(9, pg_get_functiondef('pgjobd._maintain_storage(int)'::regprocedure))
) d(ord, definition);

-- ------------------------------------------------------------- the table

-- How far ahead a job must be due to wait in pgjobd.later.
CREATE FUNCTION pgjobd._later_horizon() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '2 hours' $$;

CREATE TABLE pgjobd.later (LIKE pgjobd.live INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE pgjobd.later ALTER COLUMN id SET DEFAULT nextval('pgjobd.jobs_id_seq');
ALTER TABLE pgjobd.later ADD PRIMARY KEY (id);
ALTER TABLE pgjobd.later ADD CONSTRAINT later_state_check CHECK (state = 'scheduled');
COMMENT ON TABLE pgjobd.later IS
	'pgjobd: jobs due more than pgjobd._later_horizon() ahead when written';
-- maintain()'s move into pgjobd.live, and queue_stats' rows already due.
CREATE INDEX later_run_at_idx ON pgjobd.later (run_at);
-- The same, for a job that expires before it is due (only a write through
-- pgjobd.jobs makes one), and the expired branch of pgjobd.jobs.
CREATE INDEX later_expires_idx ON pgjobd.later (expires_at) WHERE expires_at IS NOT NULL;
-- enqueue's idempotency look.
CREATE INDEX later_key_idx ON pgjobd.later (queue, idempotency_key)
	WHERE idempotency_key IS NOT NULL;

-- Counted in pgjobd.live_counts as state 'later' (so that a TRUNCATE of
-- either table resets only its own counts); queue_stats adds them to the
-- scheduled ones.
CREATE FUNCTION pgjobd._count_later() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT r.queue, 'later', count(*) FROM new_rows r GROUP BY 1;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT r.queue, 'later', -count(*) FROM old_rows r GROUP BY 1;
	ELSE
		INSERT INTO pgjobd.live_counts (queue, state, n)
		SELECT d.queue, 'later', sum(d.n)
		  FROM (SELECT r.queue, 1 AS n FROM new_rows r
		        UNION ALL SELECT r.queue, -1 FROM old_rows r) d
		 GROUP BY 1 HAVING sum(d.n) <> 0;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER later_count_insert AFTER INSERT ON pgjobd.later
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_later();
CREATE TRIGGER later_count_update AFTER UPDATE ON pgjobd.later
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_later();
CREATE TRIGGER later_count_delete AFTER DELETE ON pgjobd.later
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_later();
CREATE TRIGGER later_count_truncate AFTER TRUNCATE ON pgjobd.later
	FOR EACH STATEMENT EXECUTE FUNCTION pgjobd._count_reset();

CREATE OR REPLACE FUNCTION pgjobd._count_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_TABLE_NAME = 'live' THEN
		DELETE FROM pgjobd.live_counts WHERE state <> 'later';
	ELSIF TG_TABLE_NAME = 'later' THEN
		DELETE FROM pgjobd.live_counts WHERE state = 'later';
	ELSE
		DELETE FROM pgjobd.history_counts;
	END IF;
	RETURN NULL;
END
$$;

-- ------------------------------------------------------------ moving rows

-- Write job row J (as pgjobd.jobs shows it) where its state belongs:
-- pgjobd.history for a final state; pgjobd.later when it is waiting and
-- due more than the horizon ahead; else pgjobd.live ('ready' with a
-- future run_at becomes 'scheduled').  The caller has removed any earlier
-- row of the job.  Returns its purge day (NULL when not finished).
CREATE OR REPLACE FUNCTION pgjobd._put(j pgjobd.live) RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
	v_purge date;
BEGIN
	IF j.state IN ('done', 'dead', 'cancelled', 'expired') THEN
		v_purge := pgjobd._purge_on(j.state, j.finished_at);
		INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, attempts,
			max_attempts, timeout, idempotency_key, created_at, started_at, finished_at,
			worker, exit_code, last_error, result, expires_at, purge_on, enqueued_by)
		VALUES (j.id, j.queue, j.type, j.payload, j.state, j.priority, j.run_at, j.attempts,
			j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at,
			j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.expires_at,
			v_purge, j.enqueued_by);
	ELSIF j.state IN ('ready', 'scheduled') AND j.run_at > now() + pgjobd._later_horizon() THEN
		j.state := 'scheduled';
		INSERT INTO pgjobd.later SELECT j.*;
	ELSE
		IF j.state = 'ready' AND j.run_at > now() THEN
			j.state := 'scheduled';
		END IF;
		INSERT INTO pgjobd.live OVERRIDING SYSTEM VALUE SELECT j.*;
	END IF;
	PERFORM pgjobd._move_attempts(j.id, v_purge);
	RETURN v_purge;
END
$$;

-- Move the rows of pgjobd.later with ids IDS (locked by the caller) into
-- pgjobd.live, where they keep state 'scheduled' (maintain() makes them
-- ready when due).  Returns how many moved.  Rows only ever move this way
-- (later -> live), so a function that looks for a job in pgjobd.later
-- first and in pgjobd.live next finds one that moves meanwhile.
CREATE FUNCTION pgjobd._later_move(ids bigint[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	v_moved int;
BEGIN
	WITH m AS (DELETE FROM pgjobd.later x WHERE x.id = ANY (ids) RETURNING x.*)
	INSERT INTO pgjobd.live OVERRIDING SYSTEM VALUE SELECT m.* FROM m;
	GET DIAGNOSTICS v_moved = ROW_COUNT;
	RETURN v_moved;
END
$$;

-- ------------------------------------------------------------------ views

-- As version 4's, with pgjobd.later in two more branches: its rows are
-- shown as live's scheduled rows are.  Each row is in exactly one branch.
CREATE OR REPLACE VIEW pgjobd.jobs AS
SELECT l.id, l.queue, l.type, l.payload, 'running'::text AS state,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.finished_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date AS purge_on,
       l.enqueued_by
  FROM pgjobd.live l WHERE l.state = 'running'
UNION ALL
SELECT l.id, l.queue, l.type, l.payload, 'ready'::text,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.finished_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date, l.enqueued_by
  FROM pgjobd.live l
 WHERE l.state <> 'running' AND (l.expires_at IS NULL OR l.expires_at > now())
UNION ALL
-- Past its expires_at, not started: expired (maintain() moves it to history).
SELECT l.id, l.queue, l.type, l.payload, 'expired'::text,
       l.priority, l.run_at, l.attempts, l.max_attempts, l.timeout, l.idempotency_key,
       l.created_at, l.started_at, l.expires_at, l.worker, l.exit_code, l.last_error, l.result,
       l.lease_token, l.lease_expires_at, l.expires_at, NULL::date, l.enqueued_by
  FROM pgjobd.live l WHERE l.state <> 'running' AND l.expires_at <= now()
UNION ALL
SELECT x.id, x.queue, x.type, x.payload, 'ready'::text,
       x.priority, x.run_at, x.attempts, x.max_attempts, x.timeout, x.idempotency_key,
       x.created_at, x.started_at, x.finished_at, x.worker, x.exit_code, x.last_error, x.result,
       x.lease_token, x.lease_expires_at, x.expires_at, NULL::date, x.enqueued_by
  FROM pgjobd.later x WHERE x.expires_at IS NULL OR x.expires_at > now()
UNION ALL
SELECT x.id, x.queue, x.type, x.payload, 'expired'::text,
       x.priority, x.run_at, x.attempts, x.max_attempts, x.timeout, x.idempotency_key,
       x.created_at, x.started_at, x.expires_at, x.worker, x.exit_code, x.last_error, x.result,
       x.lease_token, x.lease_expires_at, x.expires_at, NULL::date, x.enqueued_by
  FROM pgjobd.later x WHERE x.expires_at <= now()
UNION ALL
SELECT h.id, h.queue, h.type, h.payload, h.state, h.priority, h.run_at, h.attempts,
       h.max_attempts, h.timeout, h.idempotency_key, h.created_at, h.started_at, h.finished_at,
       h.worker, h.exit_code, h.last_error, h.result, NULL::bigint, NULL::timestamptz,
       h.expires_at, h.purge_on, h.enqueued_by
  FROM pgjobd.history h;

-- Writes to the view: as version 4's, and a row of pgjobd.later is taken
-- out and written again where it now belongs (no daemon holds one, so
-- nothing needs to follow it).
CREATE OR REPLACE FUNCTION pgjobd._jobs_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	v pgjobd.live;
	v_state text;
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		IF OLD.purge_on IS NOT NULL THEN
			DELETE FROM pgjobd.history h WHERE h.id = OLD.id AND h.purge_on = OLD.purge_on;
		ELSE
			DELETE FROM pgjobd.later x WHERE x.id = OLD.id;
			IF NOT FOUND THEN
				IF TG_OP = 'UPDATE' AND NEW.state NOT IN ('done', 'dead', 'cancelled', 'expired')
				THEN
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
					       lease_expires_at = NEW.lease_expires_at, expires_at = NEW.expires_at,
					       enqueued_by = NEW.enqueued_by
					 WHERE l.id = OLD.id;
					RETURN NEW;
				END IF;
				DELETE FROM pgjobd.live l WHERE l.id = OLD.id;
			END IF;
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
	      NEW.result, NEW.lease_token, NEW.lease_expires_at, NEW.expires_at, NEW.enqueued_by);
	NEW.purge_on := pgjobd._put(v);
	RETURN NEW;
END
$$;

-- As version 3's, with pgjobd.later's rows counted as scheduled (and, in
-- the few moments between coming due and maintain() moving them, as ready
-- or expired, found by index like live's).
CREATE OR REPLACE VIEW pgjobd.queue_stats AS
WITH a AS (
	SELECT queue,
	       sum(n) FILTER (WHERE state = 'ready')                  AS ready,
	       sum(n) FILTER (WHERE state IN ('scheduled', 'later')) AS scheduled,
	       sum(n) FILTER (WHERE state = 'running')                AS running
	  FROM pgjobd.live_counts GROUP BY queue HAVING sum(n) <> 0
),
d AS (
	SELECT s.queue, count(*) AS n, min(s.run_at) AS oldest
	  FROM (SELECT l.queue, l.run_at, l.expires_at FROM pgjobd.live l
	         WHERE l.state = 'scheduled' AND l.run_at <= now()
	        UNION ALL
	        SELECT x.queue, x.run_at, x.expires_at FROM pgjobd.later x
	         WHERE x.run_at <= now()) s
	 WHERE s.expires_at IS NULL OR s.expires_at > now()
	 GROUP BY s.queue
),
e AS (
	SELECT s.queue, count(*) AS n, count(*) FILTER (WHERE s.state = 'ready') AS ready
	  FROM (SELECT l.queue, l.state FROM pgjobd.live l
	         WHERE l.expires_at <= now() AND l.state <> 'running'
	        UNION ALL
	        SELECT x.queue, x.state FROM pgjobd.later x WHERE x.expires_at <= now()) s
	 GROUP BY s.queue
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

-- The arguments of enqueue, checked as version 3 checks them, in its
-- order and with its messages (the right to the type after the type is
-- known to be well-formed); P_RUN_AT is the one the job gets.  Split out
-- so that a later change of enqueue need not restate them.
CREATE FUNCTION pgjobd._enqueue_check(p_type text, p_payload jsonb, p_queue text,
                                      p_run_at timestamptz, p_priority int, p_max_attempts int,
                                      p_idempotency_key text, p_timeout interval,
                                      p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_type IS NULL OR p_type !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('enqueue', 'type',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(p_type, 140)), 'NULL')));
	END IF;
	-- The right to this type (after the type is known to be well-formed).
	IF NOT pgjobd._may_enqueue(p_type) THEN
		RAISE EXCEPTION 'pgjobd.enqueue: role % may not enqueue jobs of type %',
			session_user, quote_literal(p_type)
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'The schema owner can allow it with pgjobd.grant_enqueue(role, type).';
	END IF;
	IF p_queue IS NULL OR p_queue !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('enqueue', 'queue',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(p_queue, 140)), 'NULL')));
	END IF;
	IF p_payload IS NULL THEN
		PERFORM pgjobd._refuse('enqueue', 'payload', 'must not be NULL (use ''{}'')');
	END IF;
	IF octet_length(p_payload::text) > 1048576 THEN
		PERFORM pgjobd._refuse('enqueue', 'payload',
			format('is %s bytes, over the limit of 1 MiB (1048576 bytes)',
			       octet_length(p_payload::text)));
	END IF;
	IF p_priority IS NULL THEN
		PERFORM pgjobd._refuse('enqueue', 'priority', 'must not be NULL');
	END IF;
	IF p_max_attempts < 1 THEN
		PERFORM pgjobd._refuse('enqueue', 'max_attempts',
			format('must be at least 1, got %s', p_max_attempts));
	END IF;
	IF p_timeout < interval '0' THEN
		PERFORM pgjobd._refuse('enqueue', 'timeout',
			format('must not be negative, got %s', p_timeout));
	END IF;
	IF p_idempotency_key = '' THEN
		PERFORM pgjobd._refuse('enqueue', 'idempotency_key', 'must not be empty (use NULL for none)');
	END IF;
	IF p_expires_at <= p_run_at THEN
		PERFORM pgjobd._refuse('enqueue', 'expires_at',
			format('must be later than run_at (%s), got %s', p_run_at, p_expires_at));
	END IF;
END
$$;

-- The job already enqueued into P_QUEUE with P_IDEMPOTENCY_KEY, or NULL,
-- in which case the caller holds the key's lock until its transaction
-- ends and inserts the job.
CREATE FUNCTION pgjobd._enqueue_key(p_queue text, p_idempotency_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_id bigint;
	v_lock int;
BEGIN
	-- One enqueuer per (queue, key) at a time.  The look is one
	-- statement over the three tables, so a job moving between them at
	-- this moment is seen in exactly one.  The
	-- lock is taken at session level, so that an enqueuer that finds
	-- the first job lets go at once (and later ones need not wait for
	-- its transaction); one that inserts holds it at transaction level
	-- too, until its job is committed or rolled back.
	v_lock := hashtext(p_queue || E'\n' || p_idempotency_key);
	PERFORM pg_advisory_lock(1885502308, v_lock);
	BEGIN
		SELECT f.id INTO v_id FROM (
			SELECT l.id FROM pgjobd.live l
			 WHERE l.queue = p_queue AND l.idempotency_key = p_idempotency_key
			UNION ALL
			SELECT x.id FROM pgjobd.later x
			 WHERE x.queue = p_queue AND x.idempotency_key = p_idempotency_key
			UNION ALL
			SELECT h.id FROM pgjobd.history h
			 WHERE h.queue = p_queue AND h.idempotency_key = p_idempotency_key
		) f LIMIT 1;
		IF v_id IS NULL THEN
			PERFORM pg_advisory_xact_lock(1885502308, v_lock);
		END IF;
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		PERFORM pg_advisory_unlock(1885502308, v_lock);
		RAISE;
	END;
	PERFORM pg_advisory_unlock(1885502308, v_lock);
	RETURN v_id;
END
$$;

-- As version 4's, with a job due beyond the horizon written to
-- pgjobd.later, and its idempotency key looked for there too; its
-- argument checks and its key look are the two functions above.
CREATE OR REPLACE FUNCTION pgjobd.enqueue(type text, payload jsonb DEFAULT '{}',
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
	v_due boolean := v_run_at <= now();
BEGIN
	PERFORM pgjobd._enqueue_check(enqueue.type, enqueue.payload, enqueue.queue, v_run_at,
	                              enqueue.priority, enqueue.max_attempts,
	                              enqueue.idempotency_key, enqueue.timeout, enqueue.expires_at);
	IF enqueue.idempotency_key IS NOT NULL THEN
		v_id := pgjobd._enqueue_key(enqueue.queue, enqueue.idempotency_key);
		IF v_id IS NOT NULL THEN
			RETURN v_id;   -- the first job: nothing changes, no NOTIFY
		END IF;
	END IF;
	IF v_run_at > now() + pgjobd._later_horizon() THEN
		INSERT INTO pgjobd.later AS j (queue, type, payload, state, priority, run_at,
		                               max_attempts, timeout, idempotency_key, expires_at)
		VALUES (enqueue.queue, enqueue.type, enqueue.payload, 'scheduled', enqueue.priority,
		        v_run_at, enqueue.max_attempts, enqueue.timeout, enqueue.idempotency_key,
		        enqueue.expires_at)
		RETURNING j.id INTO v_id;
		RETURN v_id;
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

-- As version 3's, for a job in pgjobd.later too (looked for there first:
-- see pgjobd._later_move).
CREATE OR REPLACE FUNCTION pgjobd.cancel(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v pgjobd.live;
	v_later boolean;
BEGIN
	SELECT * INTO v FROM pgjobd.later x WHERE x.id = cancel.id FOR UPDATE;
	v_later := FOUND;
	IF NOT v_later THEN
		SELECT * INTO v FROM pgjobd.live j WHERE j.id = cancel.id FOR UPDATE;
	END IF;
	-- Missing here: finished (or no such job).  Past its expires_at and
	-- not running: already expired.
	IF v.id IS NULL OR (v.state <> 'running' AND v.expires_at <= now()) THEN
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
	IF v_later THEN
		DELETE FROM pgjobd.later x WHERE x.id = cancel.id;
	ELSE
		DELETE FROM pgjobd.live j WHERE j.id = cancel.id;
	END IF;
	v.state := 'cancelled';
	v.finished_at := now();
	v.lease_token := NULL;
	v.lease_expires_at := NULL;
	PERFORM pgjobd._put(v);
	RETURN true;
END
$$;

-- As version 4's, for an expired job still in pgjobd.later too.
CREATE OR REPLACE FUNCTION pgjobd.retry(id bigint) RETURNS boolean
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
		      h.exit_code, h.last_error, h.result, NULL, NULL, NULL, h.enqueued_by);
		PERFORM pgjobd._put(v);
	ELSE
		-- Expired but not yet moved to history by maintain(): in
		-- pgjobd.later (looked for first: see pgjobd._later_move) or live.
		DELETE FROM pgjobd.later x WHERE x.id = retry.id AND x.expires_at <= now()
		RETURNING x.* INTO v;
		IF FOUND THEN
			v.state := 'ready';
			v.attempts := 0;
			v.run_at := now();
			v.finished_at := NULL;
			v.expires_at := NULL;
			PERFORM pgjobd._put(v);
		ELSE
			UPDATE pgjobd.live j SET state = 'ready', attempts = 0, run_at = now(),
			       finished_at = NULL, expires_at = NULL
			 WHERE j.id = retry.id AND j.state <> 'running' AND j.expires_at <= now()
			RETURNING j.* INTO v;
			IF NOT FOUND THEN
				RETURN false;
			END IF;
		END IF;
	END IF;
	PERFORM pg_notify('pgjobd_enqueue', v.queue);
	RETURN true;
END
$$;

-- ---------------------------------------------------------------- upkeep

-- The counts behind queue_stats were summed up whole at every call: every
-- row of pgjobd.history_counts (a queue's states times the days of its
-- retention) and of pgjobd.live_counts rewritten every poll, thousands of
-- rows a second with hundreds of queues.  As in pgjobd.attempt_counts, a
-- summed row is marked, and only the groups with new deltas (found by a
-- partial index) are summed up again.
ALTER TABLE pgjobd.history_counts ADD COLUMN summed boolean NOT NULL DEFAULT false;
ALTER TABLE pgjobd.live_counts ADD COLUMN summed boolean NOT NULL DEFAULT false;
CREATE INDEX history_counts_delta_idx ON pgjobd.history_counts (queue, state, purge_on)
	WHERE NOT summed;
CREATE INDEX live_counts_delta_idx ON pgjobd.live_counts (queue, state) WHERE NOT summed;

-- As version 4's (the storage step of pgjobd.maintain() since version 6),
-- with pgjobd.later's rows moved into pgjobd.live first, and only the
-- count groups with new deltas summed up.
CREATE OR REPLACE FUNCTION pgjobd._maintain_storage(batch int DEFAULT 10000,
                                OUT promoted int, OUT expired int,
                                OUT created int, OUT dropped int, OUT skipped boolean)
LANGUAGE plpgsql AS $$
DECLARE
	v_lock_timeout text := current_setting('lock_timeout');
	v_ready int;
BEGIN
	promoted := 0; expired := 0; created := 0; dropped := 0;
	skipped := NOT pg_try_advisory_xact_lock(1885502308, 0);
	IF skipped THEN
		RETURN;
	END IF;
	-- Jobs of pgjobd.later due (or expiring) within the horizon move to
	-- pgjobd.live, the soonest first; those already due are made ready just
	-- below.  Counted as promoted.
	promoted := pgjobd._later_move(ARRAY(
		SELECT x.id FROM pgjobd.later x WHERE x.run_at <= now() + pgjobd._later_horizon()
		 ORDER BY x.run_at LIMIT batch FOR UPDATE SKIP LOCKED)
		|| ARRAY(
		SELECT x.id FROM pgjobd.later x WHERE x.expires_at <= now() + pgjobd._later_horizon()
		 ORDER BY x.expires_at LIMIT batch FOR UPDATE SKIP LOCKED));
	-- Due scheduled rows become ready, so that priority orders them.
	UPDATE pgjobd.live j SET state = 'ready'
	 WHERE j.id = ANY (ARRAY(
		SELECT s.id FROM pgjobd.live s WHERE s.state = 'scheduled' AND s.run_at <= now()
		 ORDER BY s.run_at LIMIT batch FOR UPDATE SKIP LOCKED));
	GET DIAGNOSTICS v_ready = ROW_COUNT;
	promoted := promoted + v_ready;
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
			finished_at, worker, exit_code, last_error, result, expires_at, purge_on, enqueued_by)
		SELECT e.id, e.queue, e.type, e.payload, 'expired', e.priority, e.run_at, e.attempts,
		       e.max_attempts, e.timeout, e.idempotency_key, e.created_at, e.started_at,
		       e.expires_at, e.worker, e.exit_code, e.last_error, e.result, e.expires_at,
		       pgjobd._purge_on('expired', e.expires_at), e.enqueued_by
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
	-- The count deltas summed up: only the groups with new deltas, each
	-- into one row (zeros dropped); a delta committed meanwhile waits for
	-- the next call.
	WITH k AS (
		SELECT DISTINCT c.queue, c.state, c.purge_on FROM pgjobd.history_counts c
		 WHERE NOT c.summed
	),
	d AS (
		DELETE FROM pgjobd.history_counts c USING k
		 WHERE c.queue = k.queue AND c.state = k.state AND c.purge_on = k.purge_on
		RETURNING c.queue, c.state, c.purge_on, c.n
	)
	INSERT INTO pgjobd.history_counts (queue, state, purge_on, n, summed)
	SELECT d.queue, d.state, d.purge_on, sum(d.n), true FROM d
	 GROUP BY 1, 2, 3 HAVING sum(d.n) <> 0;
	WITH k AS (
		SELECT DISTINCT c.queue, c.state FROM pgjobd.live_counts c WHERE NOT c.summed
	),
	d AS (
		DELETE FROM pgjobd.live_counts c USING k
		 WHERE c.queue = k.queue AND c.state = k.state
		RETURNING c.queue, c.state, c.n
	)
	INSERT INTO pgjobd.live_counts (queue, state, n, summed)
	SELECT d.queue, d.state, sum(d.n), true FROM d GROUP BY 1, 2 HAVING sum(d.n) <> 0;
	-- Partitions ahead, then the days whose retention has passed.
	PERFORM set_config('lock_timeout', '50ms', true);
	created := pgjobd._make_partitions();
	dropped := pgjobd._drop_partitions();
	PERFORM set_config('lock_timeout', v_lock_timeout, true);
END
$$;

-- ------------------------------------------------------------ the upgrade

-- What waits in pgjobd.live beyond the horizon moves.
WITH m AS (
	DELETE FROM pgjobd.live j
	 WHERE j.state = 'scheduled' AND j.run_at > now() + pgjobd._later_horizon()
	RETURNING j.*
)
INSERT INTO pgjobd.later SELECT m.* FROM m;

SELECT pgjobd._harden();
ALTER FUNCTION pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval, timestamptz)
	SECURITY DEFINER;
ALTER FUNCTION pgjobd.cancel(bigint) SECURITY DEFINER;
ALTER FUNCTION pgjobd.retry(bigint) SECURITY DEFINER;

DO $$
BEGIN
	EXECUTE format('GRANT SELECT ON pgjobd.later, pgjobd.saved_definitions TO %I',
	               pgjobd._role('reader'));
END
$$;
