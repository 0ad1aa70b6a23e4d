-- check_roles: functions, operators and an aggregate planted where a
-- careless lookup would find them.  Each copy shadows a pg_catalog one
-- that pgjobd's function bodies or the daemon's statements use, with the
-- very same signature, in schema evil (which the hostile sessions put
-- before pg_catalog) and in public; each records its call in evil.calls
-- and then does what the real one does, so that nothing fails and only
-- evil.calls tells.
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.calls (fn text NOT NULL);
CREATE FUNCTION evil.hit(fn text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'INSERT INTO evil.calls (fn) VALUES ($1)';

DO $plant$
DECLARE
	s text;
	f text[];
	n int := 0;
BEGIN
	FOREACH s IN ARRAY ARRAY['evil', 'public'] LOOP
		-- name, arguments, result, the real thing
		FOREACH f SLICE 1 IN ARRAY ARRAY[
			['now', '', 'timestamptz', 'pg_catalog.now()'],
			['pg_notify', 'text, text', 'void', 'pg_catalog.pg_notify($1, $2)'],
			['octet_length', 'text', 'int', 'pg_catalog.octet_length($1)'],
			['quote_literal', 'text', 'text', 'pg_catalog.quote_literal($1)'],
			['left', 'text, int', 'text', 'pg_catalog.left($1, $2)'],
			['format', 'text', 'text', 'pg_catalog.format($1)'],
			['hashtext', 'text', 'int', 'pg_catalog.hashtext($1)'],
			['pg_advisory_lock', 'int, int', 'void', 'pg_catalog.pg_advisory_lock($1, $2)'],
			['pg_advisory_unlock', 'int, int', 'boolean', 'pg_catalog.pg_advisory_unlock($1, $2)'],
			['pg_advisory_xact_lock', 'int, int', 'void', 'pg_catalog.pg_advisory_xact_lock($1, $2)'],
			['pg_try_advisory_xact_lock', 'int, int', 'boolean',
			 'pg_catalog.pg_try_advisory_xact_lock($1, $2)'],
			['jsonb_typeof', 'jsonb', 'text', 'pg_catalog.jsonb_typeof($1)'],
			['jsonb_array_length', 'jsonb', 'int', 'pg_catalog.jsonb_array_length($1)'],
			['nextval', 'regclass', 'bigint', 'pg_catalog.nextval($1)'],
			['set_config', 'text, text, boolean', 'text', 'pg_catalog.set_config($1, $2, $3)'],
			['current_setting', 'text', 'text', 'pg_catalog.current_setting($1)'],
			['pg_backend_pid', '', 'int', 'pg_catalog.pg_backend_pid()'],
			['to_regclass', 'text', 'regclass', 'pg_catalog.to_regclass($1)'],
			['to_timestamp', 'double precision', 'timestamptz', 'pg_catalog.to_timestamp($1)'],
			['to_regrole', 'text', 'regrole', 'pg_catalog.to_regrole($1)'],
			['pg_has_role', 'name, oid, text', 'boolean', 'pg_catalog.pg_has_role($1, $2, $3)'],
			['replace', 'text, text, text', 'text', 'pg_catalog.replace($1, $2, $3)']
		] LOOP
			EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql VOLATILE '
			               'SET search_path = pg_catalog, pg_temp AS %L',
			               s, f[1], f[2], f[3],
			               format('SELECT evil.hit(%L); SELECT %s', s || '.' || f[1], f[4]));
		END LOOP;
		EXECUTE format('CREATE FUNCTION %I.unnest(anyarray) RETURNS SETOF anyelement '
		               'LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS %L', s,
		               format('SELECT evil.hit(%L); SELECT pg_catalog.unnest($1)', s || '.unnest'));
		-- operator, left, right, result
		FOREACH f SLICE 1 IN ARRAY ARRAY[
			['=', 'text', 'text', 'boolean'], ['<>', 'text', 'text', 'boolean'],
			['||', 'text', 'text', 'text'], ['~', 'text', 'text', 'boolean'],
			['!~', 'text', 'text', 'boolean'], ['=', 'bigint', 'bigint', 'boolean'],
			['=', 'int', 'int', 'boolean'], ['+', 'int', 'int', 'int'],
			['-', 'int', 'int', 'int'], ['>=', 'int', 'int', 'boolean'],
			['<=', 'bigint', 'bigint', 'boolean'],
			['<=', 'timestamptz', 'timestamptz', 'boolean'],
			['>', 'timestamptz', 'timestamptz', 'boolean'],
			['<', 'timestamptz', 'timestamptz', 'boolean'],
			['+', 'timestamptz', 'interval', 'timestamptz'],
			['*', 'bigint', 'interval', 'interval'],
			['->', 'jsonb', 'text', 'jsonb'], ['?', 'jsonb', 'text', 'boolean'],
			['<', 'interval', 'interval', 'boolean']
		] LOOP
			n := n + 1;
			EXECUTE format('CREATE FUNCTION %I.op%s(%s, %s) RETURNS %s LANGUAGE sql VOLATILE '
			               'SET search_path = pg_catalog, pg_temp AS %L',
			               s, n, f[2], f[3], f[4],
			               format('SELECT evil.hit(%L); SELECT $1 OPERATOR(pg_catalog.%s) $2',
			                      s || '.' || f[1], f[1]));
			EXECUTE format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.op%s)',
			               s, f[1], f[2], f[3], s, n);
		END LOOP;
		-- The aggregates of the daemon's statements and of queue_stats.
		EXECUTE format('CREATE FUNCTION %I.max_step(int, int) RETURNS int LANGUAGE sql VOLATILE '
		               'SET search_path = pg_catalog, pg_temp AS %L', s,
		               format('SELECT evil.hit(%L); SELECT GREATEST($1, $2)',
		                      s || '.max'));
		EXECUTE format('CREATE AGGREGATE %I.max(int) (SFUNC = %I.max_step, STYPE = int)', s, s);
		EXECUTE format('CREATE FUNCTION %I.count_step(bigint, anyelement) RETURNS bigint '
		               'LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS %L', s,
		               format('SELECT evil.hit(%L); SELECT $1 OPERATOR(pg_catalog.+) 1',
		                      s || '.count'));
		EXECUTE format('CREATE AGGREGATE %I.count(anyelement) (SFUNC = %I.count_step, '
		               'STYPE = bigint, INITCOND = 0)', s, s);
	END LOOP;
END
$plant$;
