-- pgjobd schema, version 4: least privilege.
--
-- Applied by `pgjobd --migrate` in one transaction, as the user running it,
-- who becomes (or stays) the owner of everything in schema pgjobd.  None of
-- the roles below owns anything; the owner should not be a login that the
-- applications or the daemons use.  sql/down/004_roles.sql undoes it.
--
-- Four group roles (NOLOGIN), created when missing, which needs CREATEROLE
-- (roles that already exist, with pgjobd_operator a member of
-- pgjobd_reader, need no CREATEROLE; an existing role that can log in is
-- used as it is, with a warning):
--   pgjobd_enqueue   may call pgjobd.enqueue, for the types granted to its
--                    login with pgjobd.grant_enqueue(role, type), nothing else
--   pgjobd_reader    may read pgjobd's tables and views (jobs, attempts,
--                    queue_stats, workers, retention, ...)
--   pgjobd_operator  member of pgjobd_reader; may call cancel, retry,
--                    set_retention, maintain, index_payloads
--   pgjobd_daemon    exactly what the daemon's statements (sql/stmt/*.sql)
--                    need: no DDL, no API function but maintain
-- Roles are cluster-wide while the schema is per database: a cluster that
-- hosts several pgjobd databases can give each its own set with a prefix,
-- the setting pgjobd.role_prefix at the first --migrate (for example
-- `database = dbname=app1 options=-cpgjobd.role_prefix=app1_` makes
-- app1_pgjobd_enqueue, ...).  The names are recorded in pgjobd.roles, and
-- later migrations and pgjobd.grant_enqueue use those, whatever the
-- setting says then.
--
-- Every function of the schema runs with search_path = pg_catalog, pg_temp
-- (CVE-2018-1058: nothing a caller plants in public, or in a schema it puts
-- first on its own search_path, is resolved by pgjobd's code), and EXECUTE
-- is revoked from PUBLIC on every one of them (pgjobd._harden(), which
-- every later migration must call last).  The API functions and the
-- trigger functions are SECURITY DEFINER: they act on tables their callers
-- cannot touch.  Each job records the session user that enqueued it
-- (enqueued_by, NULL for jobs older than this version).

-- ------------------------------------------------------------------- roles

CREATE TABLE pgjobd.roles (
	kind text PRIMARY KEY,
	name name NOT NULL UNIQUE,
	CONSTRAINT roles_kind_check CHECK (kind IN ('enqueue', 'reader', 'operator', 'daemon'))
);
COMMENT ON TABLE pgjobd.roles IS 'pgjobd: the group roles of this database (prefix included)';

DO $$
DECLARE
	v_prefix text := coalesce(current_setting('pgjobd.role_prefix', true), '');
	v_kind text;
	v_name text;
BEGIN
	IF v_prefix !~ '^([a-z][a-z0-9_]{0,39})?$' THEN
		RAISE EXCEPTION 'pgjobd.role_prefix: must be empty or 1-40 characters of [a-z0-9_] '
			'starting with a letter, got %', quote_literal(v_prefix)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOREACH v_kind IN ARRAY ARRAY['enqueue', 'reader', 'operator', 'daemon'] LOOP
		v_name := v_prefix || 'pgjobd_' || v_kind;
		INSERT INTO pgjobd.roles (kind, name) VALUES (v_kind, v_name);
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = v_name) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN', v_name);
			EXCEPTION WHEN duplicate_object THEN
				NULL;   -- another database's --migrate made it meanwhile
			END;
		ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = v_name
		              AND (r.rolcanlogin OR r.rolsuper)) THEN
			RAISE WARNING 'pgjobd: role % exists and can log in (or is a superuser); it '
				'should be a group role: ALTER ROLE % NOLOGIN', v_name, v_name;
		END IF;
	END LOOP;
	IF NOT pg_catalog.pg_has_role(v_prefix || 'pgjobd_operator', v_prefix || 'pgjobd_reader',
	                              'MEMBER') THEN
		EXECUTE format('GRANT %I TO %I', v_prefix || 'pgjobd_reader',
		               v_prefix || 'pgjobd_operator');
	END IF;
END
$$;

-- The name of group role KIND in this database.
CREATE FUNCTION pgjobd._role(kind text) RETURNS name
LANGUAGE sql STABLE AS $$
	SELECT r.name FROM pgjobd.roles r WHERE r.kind = _role.kind
$$;

-- -------------------------------------------------------------- enqueued_by

-- Added without a default first, so that the jobs already there say NULL
-- (unknown) rather than the name of whoever runs this migration.
ALTER TABLE pgjobd.live ADD COLUMN enqueued_by text;
ALTER TABLE pgjobd.live ALTER COLUMN enqueued_by SET DEFAULT session_user;
ALTER TABLE pgjobd.history ADD COLUMN enqueued_by text;

-- Every move of a job between live and history carries enqueued_by along:
-- the version-3 definitions, each with that one column added (and
-- sql/down/004_roles.sql puts version 3's back).  While 003 is not yet
-- released, a change to one of them there must be made here too:
-- tests/check_roles.c compares the three versions and says where they part.

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
			worker, exit_code, last_error, result, expires_at, purge_on, enqueued_by)
		VALUES (j.id, j.queue, j.type, j.payload, j.state, j.priority, j.run_at, j.attempts,
			j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at,
			j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.expires_at,
			v_purge, j.enqueued_by);
	ELSE
		IF j.state = 'ready' AND j.run_at > now() THEN
			j.state := 'scheduled';
		END IF;
		INSERT INTO pgjobd.live (id, queue, type, payload, state, priority, run_at, attempts,
			max_attempts, timeout, idempotency_key, created_at, started_at, finished_at,
			worker, exit_code, last_error, result, lease_token, lease_expires_at, expires_at,
			enqueued_by)
		OVERRIDING SYSTEM VALUE
		VALUES (j.id, j.queue, j.type, j.payload, j.state, j.priority, j.run_at, j.attempts,
			j.max_attempts, j.timeout, j.idempotency_key, j.created_at, j.started_at,
			j.finished_at, j.worker, j.exit_code, j.last_error, j.result, j.lease_token,
			j.lease_expires_at, j.expires_at, j.enqueued_by);
	END IF;
	PERFORM pgjobd._move_attempts(j.id, v_purge);
	RETURN v_purge;
END
$$;

-- Live rows come in three branches, each with a constant state, so that a
-- query for one state skips the branches that cannot hold it (the planner
-- folds "'running' = 'dead'" to false) and a query for a finished state
-- never reads pgjobd.live at all.  Each live row is in exactly one branch.
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
SELECT h.id, h.queue, h.type, h.payload, h.state, h.priority, h.run_at, h.attempts,
       h.max_attempts, h.timeout, h.idempotency_key, h.created_at, h.started_at, h.finished_at,
       h.worker, h.exit_code, h.last_error, h.result, NULL::bigint, NULL::timestamptz,
       h.expires_at, h.purge_on, h.enqueued_by
  FROM pgjobd.history h;
ALTER VIEW pgjobd.jobs ALTER COLUMN enqueued_by SET DEFAULT session_user;

-- Writes to the views (an operator's repair, a test setting up state) go
-- where the row belongs, through the same constraints as the daemon's.
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
				       lease_expires_at = NEW.lease_expires_at, expires_at = NEW.expires_at,
				       enqueued_by = NEW.enqueued_by
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
	      NEW.result, NEW.lease_token, NEW.lease_expires_at, NEW.expires_at, NEW.enqueued_by);
	NEW.purge_on := pgjobd._put(v);
	RETURN NEW;
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
		      h.exit_code, h.last_error, h.result, NULL, NULL, NULL, h.enqueued_by);
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

-- --------------------------------------------------------- per-type rights

-- Who may enqueue which type: a row (R, T) lets every session whose user
-- has R's privileges (is R, or a member of it that inherits) enqueue jobs
-- of type T; T = '*' means every type.  The owner of the schema (and a
-- superuser) may enqueue any type.  Kept by grant_enqueue/revoke_enqueue.
CREATE TABLE pgjobd.enqueue_grants (
	grantee regrole NOT NULL,
	type    text    NOT NULL,
	PRIMARY KEY (grantee, type),
	CONSTRAINT enqueue_grants_type_check CHECK (type ~ '^([A-Za-z0-9_.:-]{1,128}|\*)$')
);
COMMENT ON TABLE pgjobd.enqueue_grants IS
	'pgjobd: which roles may enqueue which types; see pgjobd.grant_enqueue()';

-- Whether the session user may enqueue jobs of type P_TYPE.  The session
-- user, not the current one: inside a SECURITY DEFINER function the
-- current user is the owner, and the session user is also what enqueued_by
-- records.
CREATE FUNCTION pgjobd._may_enqueue(p_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT pg_catalog.pg_has_role(session_user, n.nspowner, 'USAGE') OR EXISTS (
		SELECT FROM pgjobd.enqueue_grants g
		 WHERE g.type IN (p_type, '*') AND pg_catalog.pg_has_role(session_user, g.grantee, 'USAGE'))
	  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pgjobd'
$$;

-- Version 3's enqueue with the type right checked; nothing else changes.
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
	-- The right to this type (after the type is known to be well-formed).
	IF NOT pgjobd._may_enqueue(enqueue.type) THEN
		RAISE EXCEPTION 'pgjobd.enqueue: role % may not enqueue jobs of type %',
			session_user, quote_literal(enqueue.type)
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'The schema owner can allow it with pgjobd.grant_enqueue(role, type).';
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

-- Allow ROLE (and the roles that inherit its privileges) to enqueue jobs
-- of TYPE ('*': every type).  True when that is new.  The role must also
-- be a member of pgjobd_enqueue to call enqueue at all.
CREATE FUNCTION pgjobd.grant_enqueue(role text, type text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_role regrole := pg_catalog.to_regrole(grant_enqueue.role);
BEGIN
	IF v_role IS NULL THEN
		PERFORM pgjobd._refuse('grant_enqueue', 'role',
			format('must name an existing role, got %s',
			       coalesce(quote_literal(grant_enqueue.role), 'NULL')));
	END IF;
	IF grant_enqueue.type IS NULL OR grant_enqueue.type !~ '^([A-Za-z0-9_.:-]{1,128}|\*)$' THEN
		PERFORM pgjobd._refuse('grant_enqueue', 'type',
			format('must be 1-128 characters of [A-Za-z0-9_.:-] or *, got %s',
			       coalesce(quote_literal(left(grant_enqueue.type, 140)), 'NULL')));
	END IF;
	INSERT INTO pgjobd.enqueue_grants (grantee, type) VALUES (v_role, grant_enqueue.type)
	ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;

-- Take back what grant_enqueue(ROLE, TYPE) gave.  True when there was such
-- a grant.  (A right through '*' or through another role stays.)
CREATE FUNCTION pgjobd.revoke_enqueue(role text, type text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	DELETE FROM pgjobd.enqueue_grants g
	 WHERE g.grantee = pg_catalog.to_regrole(revoke_enqueue.role)
	   AND g.type = revoke_enqueue.type;
	RETURN FOUND;
END
$$;

-- -------------------------------------------------------------- privileges

-- Every function of the schema gets a fixed search_path and loses EXECUTE
-- for PUBLIC; trigger functions act as the owner (they write the counts
-- tables for whoever changed a job).  Called here and at the end of every
-- later migration: a per-schema ALTER DEFAULT PRIVILEGES cannot take away
-- the EXECUTE that PostgreSQL gives PUBLIC on every new function.
CREATE FUNCTION pgjobd._harden() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_fn regprocedure;
	v_trigger boolean;
BEGIN
	FOR v_fn, v_trigger IN
		SELECT p.oid::regprocedure, p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype
		  FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'pgjobd'::pg_catalog.regnamespace
	LOOP
		EXECUTE pg_catalog.format('ALTER FUNCTION %s %s SET search_path = pg_catalog, pg_temp',
		                          v_fn, CASE WHEN v_trigger THEN 'SECURITY DEFINER' ELSE '' END);
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_fn);
	END LOOP;
END
$$;
SELECT pgjobd._harden();

-- The API acts as the owner, on tables its callers cannot touch.
ALTER FUNCTION pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval, timestamptz)
	SECURITY DEFINER;
ALTER FUNCTION pgjobd.cancel(bigint) SECURITY DEFINER;
ALTER FUNCTION pgjobd.retry(bigint) SECURITY DEFINER;
ALTER FUNCTION pgjobd.set_retention(text, interval) SECURITY DEFINER;
ALTER FUNCTION pgjobd.maintain(int) SECURITY DEFINER;
ALTER FUNCTION pgjobd.index_payloads(boolean) SECURITY DEFINER;
ALTER FUNCTION pgjobd.grant_enqueue(text, text) SECURITY DEFINER;
ALTER FUNCTION pgjobd.revoke_enqueue(text, text) SECURITY DEFINER;
REVOKE ALL ON SCHEMA pgjobd FROM PUBLIC;

DO $$
DECLARE
	v_enqueue name := pgjobd._role('enqueue');
	v_reader name := pgjobd._role('reader');
	v_operator name := pgjobd._role('operator');
	v_daemon name := pgjobd._role('daemon');
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA pgjobd TO %I, %I, %I, %I',
	               v_enqueue, v_reader, v_operator, v_daemon);

	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.enqueue(text, jsonb, text, timestamptz, '
	               'int, int, text, interval, timestamptz) TO %I', v_enqueue);

	EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA pgjobd TO %I', v_reader);
	EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA pgjobd GRANT SELECT ON TABLES TO %I',
	               v_reader);

	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.cancel(bigint), pgjobd.retry(bigint), '
	               'pgjobd.set_retention(text, interval), pgjobd.maintain(int), '
	               'pgjobd.index_payloads(boolean) TO %I', v_operator);

	-- The daemon, statement by statement (sql/stmt/*.sql): the exchange and
	-- the rescue read, lease, update and delete live rows, insert finished
	-- ones into history (reading back only id and purge_on), move attempts
	-- and read retention; the heartbeat and deregister keep its worker row;
	-- the start reads the schema version; maintain is the function.
	-- It reads the live rows whole (a lease returns the payload) but may
	-- change only what a lease, a heartbeat and an outcome change: never a
	-- job's type, queue, payload or limits.
	EXECUTE format('GRANT SELECT, DELETE ON pgjobd.live TO %I', v_daemon);
	EXECUTE format('GRANT UPDATE (state, attempts, run_at, worker, started_at, finished_at, '
	               'exit_code, last_error, result, lease_token, lease_expires_at) '
	               'ON pgjobd.live TO %I', v_daemon);
	EXECUTE format('GRANT INSERT ON pgjobd.history TO %I', v_daemon);
	EXECUTE format('GRANT SELECT (id, purge_on) ON pgjobd.history TO %I', v_daemon);
	EXECUTE format('GRANT SELECT, INSERT, DELETE ON pgjobd.live_attempts TO %I', v_daemon);
	EXECUTE format('GRANT INSERT ON pgjobd.attempt_history TO %I', v_daemon);
	EXECUTE format('GRANT SELECT ON pgjobd.retention, pgjobd.migrations TO %I', v_daemon);
	EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgjobd.workers TO %I', v_daemon);
	EXECUTE format('GRANT USAGE ON SEQUENCE pgjobd.lease_token_seq, pgjobd.attempts_id_seq '
	               'TO %I', v_daemon);
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.maintain(int), '
	               'pgjobd._purge_on(text, timestamptz) TO %I', v_daemon);
END
$$;
