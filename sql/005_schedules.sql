-- pgjobd schema, version 5: recurring jobs (cron schedules).
--
-- A schedule is a row of pgjobd.schedule_defs; the spec is evaluated here,
-- in the database, with PostgreSQL's own time zone data and clock, so that
-- every daemon and every psql session agree on when a slot is.
--
-- Exactly once per slot without a leader: whichever daemon fires a due
-- schedule locks its row (FOR UPDATE SKIP LOCKED), enqueues the slot's job
-- and moves the row's recorded slot (last_slot, next_run) forward in the
-- same transaction.  A second daemon either skips the locked row or, once
-- the first committed, finds next_run in the future.  The slot is recorded
-- with the schedule, not inferred from job rows, so pruning finished jobs
-- never lets a slot fire again; the job's idempotency key
-- (cron:NAME:2026-12-01T02:30:00Z) is a second belt.
--
-- Jobs are made by pgjobd.enqueue() only; the overlap rule reads
-- pgjobd.live.  sql/down/005_schedules.sql undoes it, keeping every job.

-- How late a slot may be fired and still count as on time: a slot older
-- than this when its turn comes was missed (while no daemon ran), and the
-- schedule's missed policy decides what happens to it.
CREATE FUNCTION pgjobd._schedule_grace() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '1 minute' $$;

-- The most slots one firing enqueues under missed = 'all'; older missed
-- slots beyond it are counted, not run.
CREATE FUNCTION pgjobd._schedule_catchup_max() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 100 $$;

CREATE TABLE pgjobd.schedule_defs (
	name          text        PRIMARY KEY,
	cron          text        NOT NULL,
	time_zone     text        NOT NULL DEFAULT 'UTC',
	type          text        NOT NULL,
	payload       jsonb       NOT NULL DEFAULT '{}',
	queue         text        NOT NULL DEFAULT 'default',
	priority      int         NOT NULL DEFAULT 0,
	max_attempts  int,
	timeout       interval,
	missed        text        NOT NULL DEFAULT 'once',
	overlap       text        NOT NULL DEFAULT 'allow',
	enabled       boolean     NOT NULL DEFAULT true,
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	-- The next slot not yet handled (NULL: the spec has no further slot).
	next_run      timestamptz,
	-- The last slot handled (enqueued, or skipped by a policy) and the
	-- last job enqueued, when and for which slot.
	last_slot     timestamptz,
	last_job_id   bigint,
	last_job_slot timestamptz,
	last_fired_at timestamptz,
	-- The last catch-up: the oldest and newest slot found due together
	-- at a firing that came later than the grace (no daemon ran).
	missed_from   timestamptz,
	missed_until  timestamptz,
	-- Slots not enqueued because the last job was still ready or running
	-- (overlap = 'skip'): how many, and the last.
	skipped_slots bigint      NOT NULL DEFAULT 0,
	last_skipped_slot timestamptz,
	-- Why the last firing failed (NULL: it did not); tried again a
	-- minute later, so one broken row never stops the others.
	last_error    text,
	CONSTRAINT schedule_defs_name_check CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
	CONSTRAINT schedule_defs_missed_check CHECK (missed IN ('skip', 'once', 'all')),
	CONSTRAINT schedule_defs_overlap_check CHECK (overlap IN ('allow', 'skip'))
);
COMMENT ON TABLE pgjobd.schedule_defs IS 'pgjobd: recurring jobs; see pgjobd.schedules';

-- The daemons' question "when is the next slot of my queues".
CREATE INDEX schedule_defs_next_idx ON pgjobd.schedule_defs (queue, next_run)
	WHERE enabled;

-- A parsed spec: the allowed values of each field, sorted; or, for
-- @every, the period in seconds (slots at whole multiples of it since the
-- Unix epoch, whatever the time zone).
CREATE TYPE pgjobd._cron_spec AS (
	secs     int[],
	mins     int[],
	hours    int[],
	doms     int[],
	months   int[],
	dows     int[],   -- 0 = Sunday
	dom_star boolean, -- the field starts with '*' (Vixie cron's DOM_STAR)
	dow_star boolean,
	every    bigint   -- @every: seconds; NULL otherwise
);

-- One field of a spec: a comma-separated list of *, N, N-M, with an
-- optional /STEP on * and ranges (N/STEP means N-max/STEP); NAMES (when
-- given) are accepted case-insensitively for LO, LO+1, ...
CREATE FUNCTION pgjobd._cron_field(fn text, field text, what text, lo int, hi int,
                                   names text[] DEFAULT NULL)
RETURNS int[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	item text;
	m text[];
	a int;
	b int;
	step int;
	v int[] := '{}';
	ia int;
	ib int;
BEGIN
	IF field = '' THEN
		PERFORM pgjobd._refuse(fn, 'cron', format('has an empty %s field', what));
	END IF;
	FOREACH item IN ARRAY string_to_array(field, ',') LOOP
		m := regexp_match(lower(item), '^(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/([0-9]+))?$');
		IF m IS NULL OR (m[1] = '*' AND m[2] IS NOT NULL) THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s field: %s is not a value, a range or a step', what,
				       quote_literal(item)));
		END IF;
		IF m[1] = '*' THEN
			a := lo;
			b := hi;
		ELSE
			ia := array_position(names, m[1]);
			IF ia IS NULL AND m[1] !~ '^[0-9]{1,4}$' THEN
				PERFORM pgjobd._refuse(fn, 'cron',
					format('%s field: %s is not a number%s', what, quote_literal(m[1]),
					       CASE WHEN names IS NULL THEN '' ELSE ' or a name' END));
			END IF;
			a := coalesce(lo + ia - 1, m[1]::int);
			IF m[2] IS NOT NULL THEN
				ib := array_position(names, m[2]);
				IF ib IS NULL AND m[2] !~ '^[0-9]{1,4}$' THEN
					PERFORM pgjobd._refuse(fn, 'cron',
						format('%s field: %s is not a number%s', what, quote_literal(m[2]),
						       CASE WHEN names IS NULL THEN '' ELSE ' or a name' END));
				END IF;
				b := coalesce(lo + ib - 1, m[2]::int);
			ELSIF m[3] IS NOT NULL THEN
				b := hi;
			ELSE
				b := a;
			END IF;
		END IF;
		-- Day of week 7 is Sunday too (as in Vixie cron).
		IF what = 'day-of-week' AND a = 7 AND b = 7 THEN
			a := 0;
			b := 0;
		END IF;
		IF a < lo OR a > hi + (what = 'day-of-week')::int OR b < lo
		   OR b > hi + (what = 'day-of-week')::int THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s field: %s is out of range %s-%s', what, quote_literal(item), lo,
				       hi + (what = 'day-of-week')::int));
		END IF;
		IF a > b THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s field: range %s runs backwards', what, quote_literal(item)));
		END IF;
		step := coalesce(m[3]::int, 1);
		IF step < 1 OR step > hi - lo + 1 + (what = 'day-of-week')::int THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s field: step in %s must be 1-%s', what, quote_literal(item),
				       hi - lo + 1 + (what = 'day-of-week')::int));
		END IF;
		v := v || ARRAY(SELECT CASE WHEN what = 'day-of-week' THEN g % 7 ELSE g END
		                  FROM generate_series(a, b, step) g);
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT x FROM unnest(v) x ORDER BY x);
END
$$;

-- Parse a spec; a bad one is refused naming FN's argument "cron".
CREATE FUNCTION pgjobd._cron_parse(fn text, cron text) RETURNS pgjobd._cron_spec
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	s text := btrim(lower(cron));
	f text[];
	r pgjobd._cron_spec;
	m text[];
	secs bigint := 0;
BEGIN
	IF cron IS NULL OR s = '' THEN
		PERFORM pgjobd._refuse(fn, 'cron', 'must not be empty or NULL');
	END IF;
	IF s LIKE '@every%' THEN
		-- @every <duration>: integers with s, m, h or d, e.g. 90s, 1h30m.
		IF s !~ '^@every\s+([0-9]{1,9}[smhd])+$' THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s: @every needs a duration such as 30s, 5m, 1h30m or 1d',
				       quote_literal(cron)));
		END IF;
		FOR m IN SELECT regexp_matches(substr(s, 7), '([0-9]+)([smhd])', 'g') LOOP
			secs := secs + m[1]::bigint * CASE m[2] WHEN 's' THEN 1 WHEN 'm' THEN 60
			                                       WHEN 'h' THEN 3600 ELSE 86400 END;
		END LOOP;
		IF secs < 1 OR secs > 366 * 86400 THEN
			PERFORM pgjobd._refuse(fn, 'cron',
				format('%s: @every must be between 1s and 366d', quote_literal(cron)));
		END IF;
		r.every := secs;
		RETURN r;
	END IF;
	s := CASE s WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
	            WHEN '@monthly' THEN '0 0 1 * *' WHEN '@weekly' THEN '0 0 * * 0'
	            WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
	            WHEN '@hourly' THEN '0 * * * *' ELSE s END;
	IF s LIKE '@%' THEN
		PERFORM pgjobd._refuse(fn, 'cron',
			format('%s is not a macro (@yearly @monthly @weekly @daily @hourly @every)',
			       quote_literal(cron)));
	END IF;
	f := regexp_split_to_array(s, '\s+');
	IF array_length(f, 1) = 5 THEN
		f := '0'::text || f;
	ELSIF array_length(f, 1) <> 6 THEN
		PERFORM pgjobd._refuse(fn, 'cron',
			format('%s has %s fields, needs 5 (minute hour day-of-month month day-of-week) '
			       'or 6 (with leading seconds)', quote_literal(cron), array_length(f, 1)));
	END IF;
	r.secs := pgjobd._cron_field(fn, f[1], 'second', 0, 59);
	r.mins := pgjobd._cron_field(fn, f[2], 'minute', 0, 59);
	r.hours := pgjobd._cron_field(fn, f[3], 'hour', 0, 23);
	r.doms := pgjobd._cron_field(fn, f[4], 'day-of-month', 1, 31);
	r.months := pgjobd._cron_field(fn, f[5], 'month', 1, 12,
		'{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}');
	-- Day of week 0-6 (and 7) from Sunday; hi is 6, 7 is allowed as Sunday.
	r.dows := pgjobd._cron_field(fn, f[6], 'day-of-week', 0, 6,
		'{sun,mon,tue,wed,thu,fri,sat}');
	r.dom_star := f[4] LIKE '*%';
	r.dow_star := f[6] LIKE '*%';
	RETURN r;
END
$$;

-- Refuse a time zone that is not an IANA name PostgreSQL knows.
CREATE FUNCTION pgjobd._check_zone(fn text, tz text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF tz IS NULL OR tz !~ '^[A-Za-z0-9_+/-]{1,64}$'
	   OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = tz) THEN
		PERFORM pgjobd._refuse(fn, 'time_zone',
			format('must be an IANA time zone name such as Europe/Berlin or UTC, got %s',
			       coalesce(quote_literal(left(tz, 70)), 'NULL')));
	END IF;
END
$$;

-- Zone TZ's offset from UTC at instant T.
CREATE FUNCTION pgjobd._zone_offset(tz text, t timestamptz) RETURNS interval
LANGUAGE sql STABLE AS $$ SELECT (t AT TIME ZONE tz) - (t AT TIME ZONE 'UTC') $$;

-- The instant local time TS in zone TZ names.  A time that exists twice
-- (the repeated hour when clocks go back) is its first occurrence; a time
-- that does not exist (skipped when clocks go forward) is the moment of
-- the jump, so that it still runs, once, right after it.  PostgreSQL's own
-- reading of such times (standard time) is corrected here.
CREATE FUNCTION pgjobd._local_instant(ts timestamp, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
	a timestamptz := ts AT TIME ZONE tz;
	o_before interval;
	o_after interval;
	c1 timestamptz;
	c2 timestamptz;
	lo bigint;
	hi bigint;
	mid bigint;
BEGIN
	o_before := pgjobd._zone_offset(tz, a - interval '1 day');
	o_after := pgjobd._zone_offset(tz, a + interval '1 day');
	IF o_before = o_after THEN
		RETURN a;   -- no transition near: the common case
	END IF;
	c1 := (ts - o_before) AT TIME ZONE 'UTC';
	c2 := (ts - o_after) AT TIME ZONE 'UTC';
	IF (c1 AT TIME ZONE tz) = ts AND (c2 AT TIME ZONE tz) = ts THEN
		RETURN least(c1, c2);
	ELSIF (c1 AT TIME ZONE tz) = ts THEN
		RETURN c1;
	ELSIF (c2 AT TIME ZONE tz) = ts THEN
		RETURN c2;
	END IF;
	-- In the gap: find the jump, to the second, between the two readings.
	lo := extract(epoch FROM least(c1, c2))::bigint;
	hi := extract(epoch FROM greatest(c1, c2))::bigint;
	WHILE hi - lo > 1 LOOP
		mid := (lo + hi) / 2;
		IF pgjobd._zone_offset(tz, to_timestamp(mid)) = o_before THEN
			lo := mid;
		ELSE
			hi := mid;
		END IF;
	END LOOP;
	RETURN to_timestamp(hi);
END
$$;

-- The first slot of SPEC in zone TZ strictly after AFTER, or NULL when
-- there is none within 30 years (e.g. 30 February).  Local times are
-- walked in order; since _local_instant never goes backwards, the first
-- instant past AFTER is the answer, and units (days, hours, minutes) that
-- end before AFTER are skipped whole.
CREATE FUNCTION pgjobd._cron_after(spec pgjobd._cron_spec, tz text, after timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
	e bigint;
	lo timestamp := after AT TIME ZONE tz;
	day date;
	last_day date;
	h int;
	mi int;
	se int;
	t timestamp;
	inst timestamptz;
	dom_ok boolean;
	dow_ok boolean;
BEGIN
	IF spec.every IS NOT NULL THEN
		e := floor(extract(epoch FROM after))::bigint;
		RETURN to_timestamp((e / spec.every + 1) * spec.every);
	END IF;
	-- LO: no local time before it can be the answer.  With the offset
	-- unchanged for a day around AFTER that is AFTER's own local time;
	-- else three hours earlier covers any offset change (the largest is
	-- 2 h).  Units ending before LO are skipped without converting them.
	IF pgjobd._zone_offset(tz, after - interval '1 day')
	   <> pgjobd._zone_offset(tz, after + interval '1 day') THEN
		lo := lo - interval '3 hours';
	END IF;
	day := lo::date;
	last_day := day + interval '30 years';
	WHILE day <= last_day LOOP
		IF NOT extract(month FROM day)::int = ANY (spec.months) THEN
			day := date_trunc('month', day) + interval '1 month';
			CONTINUE;
		END IF;
		dom_ok := extract(day FROM day)::int = ANY (spec.doms);
		dow_ok := extract(dow FROM day)::int = ANY (spec.dows);
		-- Both restricted: either matches (Vixie cron); else both must.
		IF (CASE WHEN NOT spec.dom_star AND NOT spec.dow_star THEN dom_ok OR dow_ok
		         ELSE dom_ok AND dow_ok END) THEN
			FOREACH h IN ARRAY spec.hours LOOP
				t := day + make_interval(hours => h);
				CONTINUE WHEN t + interval '1 hour' <= lo
				           OR pgjobd._local_instant(t + interval '1 hour', tz) <= after;
				FOREACH mi IN ARRAY spec.mins LOOP
					t := day + make_interval(hours => h, mins => mi);
					CONTINUE WHEN t + interval '1 minute' <= lo
					           OR pgjobd._local_instant(t + interval '1 minute', tz) <= after;
					FOREACH se IN ARRAY spec.secs LOOP
						CONTINUE WHEN t + make_interval(secs => se) < lo;
						inst := pgjobd._local_instant(t + make_interval(secs => se), tz);
						IF inst > after THEN
							RETURN inst;
						END IF;
					END LOOP;
				END LOOP;
			END LOOP;
		END IF;
		day := day + 1;
	END LOOP;
	RETURN NULL;
END
$$;

-- The newest K slots of SPEC in [FIRST, UNTIL], oldest first (FIRST is a
-- slot).  Found backwards from UNTIL in a doubling window, so that a long
-- downtime of a frequent schedule costs a few probes, not a walk over
-- every slot it missed.
CREATE FUNCTION pgjobd._cron_newest(spec pgjobd._cron_spec, tz text, first timestamptz,
                                    until timestamptz, k int)
RETURNS timestamptz[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
	w interval := interval '1 second';
	start timestamptz;
	t timestamptz;
	r timestamptz[];
BEGIN
	LOOP
		start := until - w;
		IF start < first THEN
			r := ARRAY[first];
			t := first;
		ELSE
			r := '{}';
			t := start;
		END IF;
		LOOP
			t := pgjobd._cron_after(spec, tz, t);
			EXIT WHEN t IS NULL OR t > until;
			r := r || t;
			IF array_length(r, 1) > k THEN
				r := r[2:];
			END IF;
		END LOOP;
		IF coalesce(array_length(r, 1), 0) >= k OR start < first THEN
			RETURN r;
		END IF;
		w := w * 2;
	END LOOP;
END
$$;

-- The next N run times of a spec after AFTER: to check a spec in psql
-- before saving it.
CREATE FUNCTION pgjobd.cron_next(cron text, time_zone text DEFAULT 'UTC',
                                 after timestamptz DEFAULT now(), n int DEFAULT 10)
RETURNS SETOF timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
	spec pgjobd._cron_spec;
	t timestamptz := cron_next.after;
BEGIN
	spec := pgjobd._cron_parse('cron_next', cron_next.cron);
	PERFORM pgjobd._check_zone('cron_next', cron_next.time_zone);
	IF cron_next.after IS NULL OR NOT isfinite(cron_next.after) THEN
		PERFORM pgjobd._refuse('cron_next', 'after', 'must be a finite time');
	END IF;
	IF cron_next.n IS NULL OR cron_next.n < 1 OR cron_next.n > 1000 THEN
		PERFORM pgjobd._refuse('cron_next', 'n',
			format('must be 1-1000, got %s', coalesce(cron_next.n::text, 'NULL')));
	END IF;
	FOR i IN 1 .. cron_next.n LOOP
		t := pgjobd._cron_after(spec, cron_next.time_zone, t);
		EXIT WHEN t IS NULL;
		RETURN NEXT t;
	END LOOP;
END
$$;

-- The idempotency key of a slot: cron:NAME:2026-12-01T02:30:00Z.  The
-- daemon reads it back (the handler's PGJOBD_SCHEDULE and
-- PGJOBD_SCHEDULED_AT), so its form is fixed.
CREATE FUNCTION pgjobd._slot_key(name text, slot timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT 'cron:' || name || ':' ||
	       to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

CREATE FUNCTION pgjobd.schedule(name text, cron text, type text,
                                payload jsonb DEFAULT '{}',
                                queue text DEFAULT 'default',
                                time_zone text DEFAULT 'UTC',
                                priority int DEFAULT 0,
                                max_attempts int DEFAULT NULL,
                                timeout interval DEFAULT NULL,
                                missed text DEFAULT 'once',
                                overlap text DEFAULT 'allow')
RETURNS timestamptz
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
	spec pgjobd._cron_spec;
	v_old pgjobd.schedule_defs;
	v_next timestamptz;
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
		PERFORM pgjobd._refuse('schedule', 'name',
			format('must be 1-128 characters of [A-Za-z0-9_.-], got %s',
			       coalesce(quote_literal(left(name, 140)), 'NULL')));
	END IF;
	spec := pgjobd._cron_parse('schedule', cron);
	PERFORM pgjobd._check_zone('schedule', time_zone);
	IF type IS NULL OR type !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('schedule', 'type',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(type, 140)), 'NULL')));
	END IF;
	IF queue IS NULL OR queue !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
		PERFORM pgjobd._refuse('schedule', 'queue',
			format('must be 1-128 characters of [A-Za-z0-9_.:-], got %s',
			       coalesce(quote_literal(left(queue, 140)), 'NULL')));
	END IF;
	IF payload IS NULL THEN
		PERFORM pgjobd._refuse('schedule', 'payload', 'must not be NULL (use ''{}'')');
	END IF;
	IF octet_length(payload::text) > 1048576 THEN
		PERFORM pgjobd._refuse('schedule', 'payload',
			format('is %s bytes, over the limit of 1 MiB (1048576 bytes)',
			       octet_length(payload::text)));
	END IF;
	IF priority IS NULL THEN
		PERFORM pgjobd._refuse('schedule', 'priority', 'must not be NULL');
	END IF;
	IF max_attempts < 1 THEN
		PERFORM pgjobd._refuse('schedule', 'max_attempts',
			format('must be at least 1, got %s', max_attempts));
	END IF;
	IF timeout < interval '0' THEN
		PERFORM pgjobd._refuse('schedule', 'timeout',
			format('must not be negative, got %s', timeout));
	END IF;
	IF missed IS NULL OR missed NOT IN ('skip', 'once', 'all') THEN
		PERFORM pgjobd._refuse('schedule', 'missed',
			format('must be skip, once or all, got %s',
			       coalesce(quote_literal(left(missed, 140)), 'NULL')));
	END IF;
	-- A schedule is a standing enqueue: its creator needs the right to
	-- the type (pgjobd.grant_enqueue), checked here, not at each firing.
	IF NOT pgjobd._may_enqueue(type) THEN
		RAISE EXCEPTION 'pgjobd.schedule: role % may not enqueue jobs of type %',
			session_user, quote_literal(type)
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'The schema owner can allow it with pgjobd.grant_enqueue(role, type).';
	END IF;
	IF overlap IS NULL OR overlap NOT IN ('allow', 'skip') THEN
		PERFORM pgjobd._refuse('schedule', 'overlap',
			format('must be allow or skip, got %s',
			       coalesce(quote_literal(left(overlap, 140)), 'NULL')));
	END IF;
	v_next := pgjobd._cron_after(spec, time_zone, now());
	IF v_next IS NULL THEN
		PERFORM pgjobd._refuse('schedule', 'cron',
			format('%s never matches a date (within 30 years)', quote_literal(cron)));
	END IF;

	SELECT * INTO v_old FROM pgjobd.schedule_defs s WHERE s.name = schedule.name FOR UPDATE;
	IF FOUND THEN
		-- Same timing: keep the recorded next slot, so that re-running a
		-- deployment script neither skips nor repeats a slot.
		IF v_old.cron = cron AND v_old.time_zone = time_zone AND v_old.next_run IS NOT NULL
		   AND v_old.enabled THEN
			v_next := v_old.next_run;
		END IF;
		UPDATE pgjobd.schedule_defs s
		   SET cron = schedule.cron, time_zone = schedule.time_zone, type = schedule.type,
		       payload = schedule.payload, queue = schedule.queue,
		       priority = schedule.priority, max_attempts = schedule.max_attempts,
		       timeout = schedule.timeout, missed = schedule.missed,
		       overlap = schedule.overlap, enabled = true, updated_at = now(),
		       next_run = v_next
		 WHERE s.name = schedule.name;
	ELSE
		INSERT INTO pgjobd.schedule_defs (name, cron, time_zone, type, payload, queue,
		                                  priority, max_attempts, timeout, missed, overlap,
		                                  next_run)
		VALUES (name, cron, time_zone, type, payload, queue, priority, max_attempts, timeout,
		        missed, overlap, v_next);
	END IF;
	-- Daemons serving the queue re-read their next slot at once (and a
	-- queue moved away from is re-read by its daemons too).
	PERFORM pg_notify('pgjobd_schedule', queue);
	IF v_old.queue IS DISTINCT FROM queue AND v_old.queue IS NOT NULL THEN
		PERFORM pg_notify('pgjobd_schedule', v_old.queue);
	END IF;
	RETURN v_next;
END
$$;

CREATE FUNCTION pgjobd.unschedule(name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v_queue text;
BEGIN
	DELETE FROM pgjobd.schedule_defs s WHERE s.name = unschedule.name RETURNING s.queue INTO v_queue;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM pg_notify('pgjobd_schedule', v_queue);
	RETURN true;
END
$$;

-- Disable keeps the schedule and its history; enable starts again from
-- the next slot after now: slots while it was disabled are not run.
CREATE FUNCTION pgjobd.schedule_enable(name text, enabled boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	v_row pgjobd.schedule_defs;
BEGIN
	IF schedule_enable.enabled IS NULL THEN
		PERFORM pgjobd._refuse('schedule_enable', 'enabled', 'must be true or false');
	END IF;
	SELECT * INTO v_row FROM pgjobd.schedule_defs s WHERE s.name = schedule_enable.name FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	IF v_row.enabled <> schedule_enable.enabled THEN
		UPDATE pgjobd.schedule_defs s
		   SET enabled = schedule_enable.enabled, updated_at = now(),
		       next_run = CASE WHEN schedule_enable.enabled THEN
		                  pgjobd._cron_after(pgjobd._cron_parse('schedule_enable', s.cron),
		                                     s.time_zone, now())
		                  ELSE s.next_run END
		 WHERE s.name = schedule_enable.name;
		PERFORM pg_notify('pgjobd_schedule', v_row.queue);
	END IF;
	RETURN true;
END
$$;

CREATE FUNCTION pgjobd.schedule_disable(name text) RETURNS boolean
LANGUAGE sql AS $$ SELECT pgjobd.schedule_enable(name, false) $$;

CREATE VIEW pgjobd.schedules AS
SELECT s.name, s.cron, s.time_zone, s.type, s.queue, s.enabled,
       s.next_run, s.last_slot AS last_run, s.last_job_id, j.state AS last_job_state,
       s.last_fired_at, s.missed, s.overlap, s.missed_from, s.missed_until, s.skipped_slots,
       s.last_skipped_slot, s.last_error, s.payload, s.priority, s.max_attempts, s.timeout,
       s.created_at, s.updated_at
  FROM pgjobd.schedule_defs s
  LEFT JOIN pgjobd.jobs j ON j.id = s.last_job_id;

-- The daemons' firing: for each due, enabled schedule of QUEUES that no
-- other daemon is firing right now, handle its due slots per its policies
-- and record them, then say how long until the next slot.  AT is the
-- database's clock (tests pass another to replay a downtime).
--
-- Due slots: from the recorded next_run up to now.  missed = 'all': one
-- job for each of the newest _schedule_catchup_max() of them; 'once': one
-- job, for the newest; 'skip': one for the newest only while it is within
-- the grace, else none.  Only the newest slots are ever computed.
--
-- Rows: kind 'f' per slot enqueued (job_id), 's' per slot skipped by
-- overlap (job_id: the job still running), 'm' per schedule found late by
-- more than the grace (slot: the oldest due slot), 'e' per schedule whose
-- firing failed (name; its error is in last_error); then one row kind 'n' whose wait_ms is the time to the next
-- slot of QUEUES not being fired by someone else (NULL: none).
CREATE FUNCTION pgjobd._schedule_fire(queues text[], at timestamptz DEFAULT NULL)
RETURNS TABLE (kind text, name text, slot timestamptz, job_id bigint, wait_ms bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_now timestamptz := coalesce(at, now());
	s pgjobd.schedule_defs;
	spec pgjobd._cron_spec;
	due timestamptz[];
	fire timestamptz[];
	t timestamptz;
	v_last timestamptz;
	v_late boolean;
	v_job bigint;
	v_job_slot timestamptz;
	v_state text;
	r_kind text[] := '{}';
	r_slot timestamptz[] := '{}';
	r_job bigint[] := '{}';
BEGIN
	FOR s IN SELECT * FROM pgjobd.schedule_defs d
	          WHERE d.enabled AND d.queue = ANY (queues) AND d.next_run <= v_now
	          ORDER BY d.next_run
	          FOR UPDATE SKIP LOCKED LOOP
		-- One schedule's failure (a row edited by hand into a bad spec, an
		-- enqueue refused) is its own: recorded, retried in a minute.
		BEGIN
			spec := pgjobd._cron_parse('schedule', s.cron);
			due := pgjobd._cron_newest(spec, s.time_zone, s.next_run, v_now,
			                           CASE WHEN s.missed = 'all' THEN pgjobd._schedule_catchup_max()
			                                ELSE 1 END);
			v_last := due[array_length(due, 1)];
			v_late := v_now - s.next_run > pgjobd._schedule_grace();
			IF s.missed = 'skip' AND v_now - v_last > pgjobd._schedule_grace() THEN
				fire := '{}';
			ELSE
				fire := due;
			END IF;
			v_job := s.last_job_id;
			v_job_slot := s.last_job_slot;
			FOREACH t IN ARRAY fire LOOP
				IF s.overlap = 'skip' AND v_job IS NOT NULL THEN
					-- Still going: live and not expired (a 'scheduled' row is
					-- one waiting for its retry backoff; pgjobd.jobs shows it
					-- as ready).  Finished jobs are in history, not here.
					SELECT l.state INTO v_state FROM pgjobd.live l
					 WHERE l.id = v_job
					   AND (l.state = 'running' OR l.expires_at IS NULL OR l.expires_at > now());
					IF v_state IN ('ready', 'scheduled', 'running') THEN
						UPDATE pgjobd.schedule_defs d
						   SET skipped_slots = d.skipped_slots + 1, last_skipped_slot = t
						 WHERE d.name = s.name;
						r_kind := r_kind || 's'::text; r_slot := r_slot || t; r_job := r_job || v_job;
						CONTINUE;
					END IF;
				END IF;
				v_job := pgjobd.enqueue(s.type, s.payload, s.queue, NULL, s.priority,
				                        s.max_attempts, pgjobd._slot_key(s.name, t), s.timeout);
				v_job_slot := t;
				r_kind := r_kind || 'f'::text; r_slot := r_slot || t; r_job := r_job || v_job;
			END LOOP;
			UPDATE pgjobd.schedule_defs d
			   SET next_run = pgjobd._cron_after(spec, s.time_zone, v_now), last_slot = v_last,
			       last_job_id = v_job, last_job_slot = v_job_slot,
			       last_fired_at = CASE WHEN v_job_slot IS DISTINCT FROM s.last_job_slot
			                            THEN now() ELSE d.last_fired_at END,
			       last_error = NULL,
			       missed_from = CASE WHEN v_late THEN s.next_run ELSE d.missed_from END,
			       missed_until = CASE WHEN v_late THEN v_last ELSE d.missed_until END
			 WHERE d.name = s.name;
			IF v_late THEN
				r_kind := r_kind || 'm'::text; r_slot := r_slot || s.next_run;
				r_job := r_job || NULL::bigint;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			UPDATE pgjobd.schedule_defs d
			   SET last_error = SQLERRM, next_run = v_now + interval '1 minute'
			 WHERE d.name = s.name;
			r_kind := '{e}';
			r_slot := ARRAY[s.next_run];
			r_job := ARRAY[NULL::bigint];
		END;
		-- Rows only for what committed with the block (a failed one's
		-- enqueues were rolled back with it).
		FOR i IN 1 .. coalesce(array_length(r_kind, 1), 0) LOOP
			kind := r_kind[i]; name := s.name; slot := r_slot[i]; job_id := r_job[i];
			wait_ms := NULL;
			RETURN NEXT;
		END LOOP;
		r_kind := '{}';
		r_slot := '{}';
		r_job := '{}';
	END LOOP;
	-- Rows another daemon holds are left out: it is advancing them, and
	-- counting their past next_run would make this daemon ask again at
	-- once, in a loop, until it commits.
	kind := 'n'; name := NULL; slot := NULL; job_id := NULL;
	SELECT ceil(greatest(extract(epoch FROM (min(d.next_run) - clock_timestamp())) * 1000, 0))::bigint
	  INTO wait_ms
	  FROM pgjobd.schedule_defs d
	 WHERE d.enabled AND d.queue = ANY (queues) AND d.next_run > v_now;
	RETURN NEXT;
END
$$;

-- ------------------------------------------------------------- privileges

-- The firing enqueues as the daemon's login (session_user, which
-- enqueued_by records), for whatever type the schedule names: the right
-- was checked when the schedule was made.  So members of pgjobd_daemon may
-- enqueue every type, which they can only use through _schedule_fire:
-- they have no EXECUTE on pgjobd.enqueue.  Otherwise version 4's.
CREATE OR REPLACE FUNCTION pgjobd._may_enqueue(p_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT pg_catalog.pg_has_role(session_user, n.nspowner, 'USAGE')
	    OR pg_catalog.pg_has_role(session_user, pgjobd._role('daemon'), 'USAGE') OR EXISTS (
		SELECT FROM pgjobd.enqueue_grants g
		 WHERE g.type IN (p_type, '*') AND pg_catalog.pg_has_role(session_user, g.grantee, 'USAGE'))
	  FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pgjobd'
$$;

SELECT pgjobd._harden();

-- The API acts as the owner, on the table its callers cannot touch (and
-- cron_next calls the private parsing functions).
ALTER FUNCTION pgjobd.cron_next(text, text, timestamptz, int) SECURITY DEFINER;
ALTER FUNCTION pgjobd.schedule(text, text, text, jsonb, text, text, int, int, interval, text,
                               text) SECURITY DEFINER;
ALTER FUNCTION pgjobd.unschedule(text) SECURITY DEFINER;
ALTER FUNCTION pgjobd.schedule_enable(text, boolean) SECURITY DEFINER;
ALTER FUNCTION pgjobd.schedule_disable(text) SECURITY DEFINER;
ALTER FUNCTION pgjobd._schedule_fire(text[], timestamptz) SECURITY DEFINER;

DO $$
DECLARE
	v_enqueue name := pgjobd._role('enqueue');
	v_reader name := pgjobd._role('reader');
	v_operator name := pgjobd._role('operator');
	v_daemon name := pgjobd._role('daemon');
BEGIN
	EXECUTE format('GRANT SELECT ON pgjobd.schedule_defs, pgjobd.schedules TO %I', v_reader);
	-- Checking a spec changes nothing: for whoever writes schedules or
	-- the jobs' applications (the operator, through pgjobd_reader).
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.cron_next(text, text, timestamptz, int) '
	               'TO %I, %I', v_reader, v_enqueue);
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd.schedule(text, text, text, jsonb, text, '
	               'text, int, int, interval, text, text), pgjobd.unschedule(text), '
	               'pgjobd.schedule_enable(text, boolean), pgjobd.schedule_disable(text) TO %I',
	               v_operator);
	-- sql/stmt/schedule_fire.sql, the daemon's one schedule statement.
	EXECUTE format('GRANT EXECUTE ON FUNCTION pgjobd._schedule_fire(text[], timestamptz) TO %I',
	               v_daemon);
END
$$;
