-- Undo schema version 4 (sql/004_roles.sql): the API is open to whoever
-- may use the schema again, as in version 3.  Every job is kept; only who
-- enqueued it (enqueued_by) is forgotten.  Run by `pgjobd --migrate --to 3`
-- (or lower) in one transaction.
--
-- The group roles themselves are left in place: roles belong to the
-- cluster, and other pgjobd databases (or grants made outside pgjobd) may
-- still use them.  This database's grants to them are revoked, so that
-- `DROP ROLE` works once no other database needs them.

DO $$
DECLARE
	v_fn regprocedure;
	v_role name;
BEGIN
	FOR v_role IN SELECT r.name FROM pgjobd.roles r LOOP
		EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA pgjobd FROM %I', v_role);
		EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgjobd FROM %I', v_role);
		EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgjobd FROM %I', v_role);
		EXECUTE format('REVOKE ALL ON SCHEMA pgjobd FROM %I', v_role);
		EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA pgjobd REVOKE ALL ON TABLES FROM %I',
		               v_role);
	END LOOP;
	FOR v_fn IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	             WHERE p.pronamespace = 'pgjobd'::regnamespace LOOP
		EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER RESET search_path', v_fn);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', v_fn);
	END LOOP;
END
$$;

DROP FUNCTION pgjobd.grant_enqueue(text, text);
DROP FUNCTION pgjobd.revoke_enqueue(text, text);
DROP FUNCTION pgjobd._may_enqueue(text);
DROP FUNCTION pgjobd._role(text);
DROP FUNCTION pgjobd._harden();
DROP TABLE pgjobd.enqueue_grants;
DROP TABLE pgjobd.roles;

-- enqueued_by goes; the view and the functions that move jobs are
-- version 3's again (sql/003_storage.sql, unchanged).
DROP VIEW pgjobd.jobs;
ALTER TABLE pgjobd.live DROP COLUMN enqueued_by;
ALTER TABLE pgjobd.history DROP COLUMN enqueued_by;

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

CREATE OR REPLACE FUNCTION pgjobd._jobs_write() RETURNS trigger
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

-- Write job row J (as pgjobd.jobs shows it) where its state belongs:
-- pgjobd.history for a final state, else pgjobd.live ('ready' with a
-- future run_at becomes 'scheduled').  The caller has removed any earlier
-- row of the job.  Returns its purge day (NULL when live).
CREATE OR REPLACE FUNCTION pgjobd._put(j pgjobd.live) RETURNS date
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

-- dead, cancelled or expired -> ready, attempts counted from 0 again, due
-- now, no expiry (an expired job retried runs like a dead one retried).
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

-- Periodic upkeep, sent by every daemon on its poll timer (sql/stmt/
-- maintain.sql) and callable by anyone (pg_cron, psql).  The first caller
-- of the moment does the work; the others return at once with skipped.
-- Each step is bounded: BATCH rows per call for promotion and expiry, and
-- lock waits of at most 50 ms for partition changes (left for the next
-- call when not granted), so that enqueue and leasing are never held up.
CREATE OR REPLACE FUNCTION pgjobd.maintain(batch int DEFAULT 10000,
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
