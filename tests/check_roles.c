/*
 * check_roles: least privilege (sql/004_roles.sql) proven with real logins
 * against the throwaway cluster: the group roles --migrate installs, what
 * each may and may not do, per-type enqueue rights, enqueued_by, functions
 * planted where a careless lookup would find them (tests/hostile.sql), the
 * role prefix, migrating without CREATEROLE, the downgrade, and the real
 * daemon running every path as a login that is only in pgjobd_daemon.
 *
 * The login roles are cluster-wide, so they are made once if missing (the
 * plain and the ASan run share the cluster); every test makes its own
 * database.  The cluster trusts local connections: a login is "user=NAME".
 */
#include "testlib.h"

#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemonlib.h"
#include "stmts.h"

#define DEADLINE_MS 20000
/* The hostile sessions' search_path: planted schemas before pg_catalog. */
#define HOSTILE_PATH "evil,public,pg_catalog"
#define ENQUEUE_SIG "pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval, " \
                    "timestamptz)"

/* The README's lines (Privileges), made idempotent for a shared cluster. */
static const char logins_sql[] =
	"DO $$ DECLARE r text[]; BEGIN "
	"FOREACH r SLICE 1 IN ARRAY ARRAY[['t_app', 'pgjobd_enqueue'], "
	"  ['t_reader', 'pgjobd_reader'], ['t_op', 'pgjobd_operator'], "
	"  ['t_worker', 'pgjobd_daemon']] LOOP "
	"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r[1]) THEN "
	"    EXECUTE format('CREATE ROLE %I LOGIN IN ROLE %I', r[1], r[2]); "
	"  END IF; "
	"END LOOP; "
	"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't_nobody') THEN "
	"  CREATE ROLE t_nobody LOGIN; "
	"END IF; "
	"END $$";

/* `pgjobd --migrate [--to TO]` with CONFIG_EXTRA (after "database =") or
 * DATABASE as the conninfo; returns its exit status, stdout in *OUT and
 * stderr in *ERR (malloc'd). */
static int
run_migrate(const char *database, const char *to, char **out, char **err)
{
	char *text, *cfg;
	const char *argv[] = {t_pgjobd(), "-c", NULL, "--migrate", to ? "--to" : NULL, to, NULL};
	int rc;

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\ndatabase = %s\n", database ? database : ""), 0);
	cfg = t_write_temp(".ini", text);
	argv[2] = cfg;
	rc = t_run(argv, out, err, 60000);
	unlink(cfg);
	free(cfg);
	free(text);
	return rc;
}

static void
migrate_ok(const char *database, const char *to, const char *expect)
{
	char *out = NULL, *err = NULL;
	int rc = run_migrate(database, to, &out, &err);

	ck_assert_msg(rc == 0, "--migrate exited %d; stderr:\n%s", rc, err);
	ck_assert_str_eq(out, expect);
	free(out);
	free(err);
}

/* A fresh database NAME at the latest version, the login roles in place;
 * a superuser connection to it. */
static PGconn *
fresh(const char *name)
{
	PGconn *c;

	t_use_fresh_db(name);
	migrate_ok(NULL, NULL, T_MIGRATED);
	c = t_connect();
	PQclear(t_exec(c, logins_sql, NULL));
	return c;
}

/* Connect to the current database as USER, with SEARCH_PATH when given. */
static PGconn *
login(const char *user, const char *search_path)
{
	char ci[256];
	PGconn *c;

	if (search_path)
		snprintf(ci, sizeof ci, "user=%s options='-csearch_path=%s'", user, search_path);
	else
		snprintf(ci, sizeof ci, "user=%s", user);
	c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		ck_abort_msg("cannot connect as %s: %s", user, PQerrorMessage(c));
	return c;
}

static void
hostile(PGconn *su)
{
	char path[4096], *sql;
	const char *src = getenv("PGJOBD_SRCDIR");
	FILE *f;
	long n;
	PGresult *r;

	snprintf(path, sizeof path, "%s/tests/hostile.sql", src && *src ? src : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	sql = calloc(1, (size_t)n + 1);
	ck_assert_int_eq(fread(sql, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	r = PQexec(su, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "tests/hostile.sql: %s",
	    PQresultErrorMessage(r));
	PQclear(r);
	free(sql);
}

/* SQL (with printf formatting) must fail with SQLSTATE STATE. */
static void PRINTF(3, 4)
expect_state(PGconn *c, const char *state, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	PGresult *r;
	const char *got;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	r = PQexec(c, sql);
	got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	ck_assert_msg(got && !strcmp(got, state), "%s as %s: want SQLSTATE %s, got %s (%s)", sql,
	    PQuser(c), state, got ? got : "success", PQresultErrorMessage(r));
	PQclear(r);
	free(sql);
}

#define denied(c, ...) expect_state(c, "42501", __VA_ARGS__)

static void PRINTF(3, 4)
expect_str(PGconn *c, const char *want, const char *fmt, ...)
{
	va_list ap;
	char *sql, *v;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	v = t_str(c, sql, NULL);
	ck_assert_msg(v && !strcmp(v, want), "%s: got %s, want %s", sql, v ? v : "NULL", want);
	free(v);
	free(sql);
}

/* Wait until job ID is in STATE. */
static void
wait_state(PGconn *c, long long id, const char *state)
{
	char sql[128];

	snprintf(sql, sizeof sql, "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);
	t_wait_value(c, state, DEADLINE_MS, sql);
}

static long long
enqueue_as(PGconn *c, const char *type)
{
	return t_int(c, "SELECT pgjobd.enqueue($1)", type, NULL);
}

/* Nothing planted was called, by anyone, so far. */
static void
expect_no_planted_call(PGconn *su)
{
	expect_str(su, "", "SELECT coalesce(string_agg(DISTINCT fn, ' '), '') FROM evil.calls");
}

/* ---- what --migrate installs ---- */

START_TEST(test_migrate_installs_nologin_group_roles_and_closes_every_function)
{
	PGconn *c = fresh("pgjobd_r_install");

	expect_str(c, "daemon=pgjobd_daemon enqueue=pgjobd_enqueue operator=pgjobd_operator "
	              "reader=pgjobd_reader",
	    "SELECT string_agg(kind || '=' || name, ' ' ORDER BY kind) FROM pgjobd.roles");
	expect_str(c, "4", "SELECT count(*) FROM pg_roles WHERE rolname IN (SELECT name FROM "
	                   "pgjobd.roles) AND NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole");
	/* The only membership among them: operator in reader. */
	expect_str(c, "pgjobd_operator>pgjobd_reader",
	    "SELECT string_agg(m.rolname || '>' || g.rolname, ' ') FROM pg_auth_members a "
	    "JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid "
	    "WHERE g.rolname LIKE 'pgjobd\\_%%' AND m.rolname LIKE 'pgjobd\\_%%'");
	/* No function is executable by PUBLIC; every one has the fixed path. */
	expect_str(c, "0", "SELECT count(*) FROM pg_proc p WHERE pronamespace = 'pgjobd'::regnamespace "
	                   "AND (proacl IS NULL OR EXISTS (SELECT FROM aclexplode(proacl) a "
	                   "WHERE a.grantee = 0))");
	expect_str(c, "0", "SELECT count(*) FROM pg_proc p WHERE pronamespace = 'pgjobd'::regnamespace "
	                   "AND NOT coalesce(proconfig, '{}') @> "
	                   "ARRAY['search_path=pg_catalog, pg_temp']");
	/* Acting as the owner: the API and the triggers, nothing else. */
	expect_str(c, "_schedule_fire cancel cron_next enqueue grant_enqueue index_payloads maintain "
	              "retry revoke_enqueue schedule schedule_disable schedule_enable set_retention "
	              "unschedule",
	    "SELECT string_agg(proname, ' ' ORDER BY proname) FROM pg_proc WHERE prosecdef "
	    "AND pronamespace = 'pgjobd'::regnamespace AND prorettype <> 'trigger'::regtype");
	expect_str(c, "0", "SELECT count(*) FROM pg_proc WHERE NOT prosecdef "
	                   "AND pronamespace = 'pgjobd'::regnamespace AND prorettype = 'trigger'::regtype");
	/* Who may execute what, besides the owner. */
	expect_str(c, "_purge_on:pgjobd_daemon _schedule_fire:pgjobd_daemon cancel:pgjobd_operator "
	              "cron_next:pgjobd_enqueue cron_next:pgjobd_reader enqueue:pgjobd_enqueue "
	              "index_payloads:pgjobd_operator maintain:pgjobd_daemon maintain:pgjobd_operator "
	              "retry:pgjobd_operator schedule:pgjobd_operator "
	              "schedule_disable:pgjobd_operator schedule_enable:pgjobd_operator "
	              "set_retention:pgjobd_operator unschedule:pgjobd_operator",
	    "SELECT string_agg(p.proname || ':' || r.rolname, ' ' ORDER BY p.proname, r.rolname) "
	    "FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee "
	    "WHERE p.pronamespace = 'pgjobd'::regnamespace AND a.grantee <> p.proowner");
	/* The roles own nothing; the schema belongs to whoever migrated. */
	expect_str(c, "0", "SELECT count(*) FROM pg_class WHERE relnamespace = 'pgjobd'::regnamespace "
	                   "AND relowner IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'pgjobd\\_%%')");
	expect_str(c, "postgres", "SELECT nspowner::regrole::text FROM pg_namespace "
	                          "WHERE nspname = 'pgjobd'");
	PQfinish(c);
}
END_TEST

/* ---- the enqueue role ---- */

START_TEST(test_enqueue_role_enqueues_only_granted_types_and_nothing_else)
{
	PGconn *su = fresh("pgjobd_r_enqueue");
	PGconn *app = login("t_app", NULL), *nobody;
	long long id, mine;

	denied(app, "SELECT pgjobd.enqueue('resize')");
	expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_app', 'resize')");
	expect_str(su, "f", "SELECT pgjobd.grant_enqueue('t_app', 'resize')");
	mine = enqueue_as(app, "resize");
	expect_str(su, "t_app", "SELECT enqueued_by FROM pgjobd.jobs WHERE id = %lld", mine);
	denied(app, "SELECT pgjobd.enqueue('other')");
	/* The refusal names the role and the type. */
	{
		PGresult *r = PQexec(app, "SELECT pgjobd.enqueue('other')");
		ck_assert_ptr_nonnull(strstr(PQresultErrorMessage(r),
		    "role t_app may not enqueue jobs of type 'other'"));
		PQclear(r);
	}
	/* A bad argument is still the usual refusal, before any right. */
	expect_state(app, "22023", "SELECT pgjobd.enqueue('resize', NULL)");

	id = enqueue_as(su, "other");
	/* Reading anything, writing any table or view, operating: refused. */
	denied(app, "SELECT * FROM pgjobd.jobs");
	denied(app, "SELECT payload FROM pgjobd.live");
	denied(app, "SELECT * FROM pgjobd.history");
	denied(app, "SELECT * FROM pgjobd.attempts");
	denied(app, "SELECT * FROM pgjobd.queue_stats");
	denied(app, "SELECT * FROM pgjobd.workers");
	denied(app, "SELECT * FROM pgjobd.enqueue_grants");
	denied(app, "INSERT INTO pgjobd.live (type) VALUES ('other')");
	denied(app, "INSERT INTO pgjobd.jobs (type) VALUES ('other')");
	denied(app, "INSERT INTO pgjobd.history (id) VALUES (1)");
	denied(app, "INSERT INTO pgjobd.attempts (job_id, attempt, outcome) VALUES (%lld, 1, 'done')",
	    id);
	denied(app, "INSERT INTO pgjobd.enqueue_grants VALUES ('t_app', 'other')");
	denied(app, "INSERT INTO pgjobd.workers (name, host, pid, concurrency) VALUES ('x', 'h', 1, 1)");
	denied(app, "UPDATE pgjobd.live SET priority = 1");
	denied(app, "UPDATE pgjobd.jobs SET priority = 1 WHERE id = %lld", id);
	denied(app, "UPDATE pgjobd.retention SET keep = '1 day'");
	denied(app, "DELETE FROM pgjobd.live");
	denied(app, "DELETE FROM pgjobd.jobs WHERE id = %lld", id);
	denied(app, "TRUNCATE pgjobd.live");
	denied(app, "SELECT pgjobd.cancel(%lld)", id);
	denied(app, "SELECT pgjobd.retry(%lld)", id);
	denied(app, "SELECT pgjobd.grant_enqueue('t_app', 'other')");
	denied(app, "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	denied(app, "SELECT pgjobd.set_retention('done', '1 day')");
	denied(app, "SELECT pgjobd.maintain()");
	denied(app, "SELECT pgjobd.index_payloads()");
	denied(app, "SELECT pgjobd._make_partitions()");
	denied(app, "SELECT pgjobd._may_enqueue('other')");
	denied(app, "SELECT nextval('pgjobd.lease_token_seq')");
	expect_str(su, "ready", "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);
	expect_str(su, "2", "SELECT count(*) FROM pgjobd.jobs");

	/* '*' is every type; revoking it leaves the type's own grant. */
	expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_app', '*')");
	enqueue_as(app, "other");
	expect_str(su, "t", "SELECT pgjobd.revoke_enqueue('t_app', '*')");
	denied(app, "SELECT pgjobd.enqueue('other')");
	enqueue_as(app, "resize");
	expect_str(su, "t", "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	expect_str(su, "f", "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	denied(app, "SELECT pgjobd.enqueue('resize')");
	/* A grant to the group holds for its members. */
	expect_str(su, "t", "SELECT pgjobd.grant_enqueue('pgjobd_enqueue', 'thumb')");
	enqueue_as(app, "thumb");

	/* Outside pgjobd_enqueue a type right is not enough. */
	expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_nobody', '*')");
	nobody = login("t_nobody", NULL);
	denied(nobody, "SELECT pgjobd.enqueue('thumb')");
	PQfinish(nobody);

	expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('no_such_role', 'x')");
	expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('t_app', 'bad type')");
	expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('t_app', NULL)");
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the reader and the operator ---- */

START_TEST(test_reader_reads_jobs_attempts_and_stats_and_changes_nothing)
{
	PGconn *su = fresh("pgjobd_r_reader");
	PGconn *rd = login("t_reader", NULL);
	long long id = enqueue_as(su, "t");

	expect_str(rd, "1", "SELECT count(*) FROM pgjobd.jobs");
	expect_str(rd, "0", "SELECT count(*) FROM pgjobd.attempts");
	expect_str(rd, "1", "SELECT sum(ready) FROM pgjobd.queue_stats");
	expect_str(rd, "0", "SELECT count(*) FROM pgjobd.workers");
	expect_str(rd, "4", "SELECT count(*) FROM pgjobd.retention");
	denied(rd, "SELECT pgjobd.enqueue('t')");
	denied(rd, "SELECT pgjobd.cancel(%lld)", id);
	denied(rd, "SELECT pgjobd.retry(%lld)", id);
	denied(rd, "SELECT pgjobd.maintain()");
	denied(rd, "SELECT pgjobd.schedule('s', '@daily', 't')");
	denied(rd, "DELETE FROM pgjobd.schedule_defs");
	expect_str(rd, "0", "SELECT count(*) FROM pgjobd.schedules");
	denied(rd, "UPDATE pgjobd.jobs SET priority = 1");
	denied(rd, "DELETE FROM pgjobd.live");
	denied(rd, "INSERT INTO pgjobd.live (type) VALUES ('t')");
	PQfinish(rd);
	PQfinish(su);
}
END_TEST

START_TEST(test_operator_cancels_and_retries_and_enqueued_by_follows_every_move)
{
	PGconn *su = fresh("pgjobd_r_operator");
	PGconn *app = login("t_app", NULL), *op = login("t_op", NULL);
	long long a, b;

	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	a = enqueue_as(app, "resize");
	b = enqueue_as(app, "resize");
	/* ready -> cancelled (to history) -> ready (back to live) */
	expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", a);
	expect_str(su, "cancelled t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.history "
	                                  "WHERE id = %lld", a);
	expect_str(op, "t", "SELECT pgjobd.retry(%lld)", a);
	expect_str(su, "ready t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.live "
	                              "WHERE id = %lld", a);
	/* A repair through the view (to dead), then retry. */
	d_run(su, "UPDATE pgjobd.jobs SET state = 'dead', finished_at = now() WHERE id = %lld", b);
	expect_str(su, "dead t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.history "
	                             "WHERE id = %lld", b);
	expect_str(op, "t", "SELECT pgjobd.retry(%lld)", b);
	expect_str(su, "ready t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.jobs "
	                              "WHERE id = %lld", b);
	expect_str(op, "2", "SELECT count(*) FROM pgjobd.jobs WHERE enqueued_by = 't_app'");
	expect_str(op, "1 day", "SELECT pgjobd.set_retention('done', '1 day')");
	expect_str(op, "f", "SELECT skipped FROM pgjobd.maintain()");
	expect_str(op, "t", "SELECT pgjobd.index_payloads(true)");
	expect_str(op, "f", "SELECT pgjobd.index_payloads(false)");
	denied(op, "SELECT pgjobd.enqueue('resize')");
	denied(op, "SELECT pgjobd.grant_enqueue('t_op', 'resize')");
	denied(op, "INSERT INTO pgjobd.live (type) VALUES ('resize')");
	denied(op, "UPDATE pgjobd.jobs SET priority = 5 WHERE id = %lld", a);
	denied(op, "DELETE FROM pgjobd.history");
	PQfinish(op);
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the daemon role ---- */

START_TEST(test_daemon_role_cannot_create_alter_or_drop_anything)
{
	PGconn *su = fresh("pgjobd_r_ddl");
	PGconn *w = login("t_worker", NULL);
	long long id = enqueue_as(su, "t");

	denied(w, "CREATE TABLE pgjobd.x (i int)");
	denied(w, "CREATE TABLE public.x (i int)");
	denied(w, "CREATE SCHEMA x");
	denied(w, "CREATE FUNCTION pgjobd.f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
	denied(w, "CREATE VIEW pgjobd.v AS SELECT 1");
	denied(w, "CREATE TYPE pgjobd.t AS (a int)");
	denied(w, "CREATE TABLE pgjobd.history_20990101 PARTITION OF pgjobd.history "
	          "FOR VALUES FROM ('2099-01-01') TO ('2099-01-02')");
	denied(w, "CREATE INDEX ON pgjobd.live (priority)");
	denied(w, "CREATE TRIGGER t AFTER INSERT ON pgjobd.live FOR EACH STATEMENT "
	          "EXECUTE FUNCTION pgjobd._count_reset()");
	denied(w, "ALTER TABLE pgjobd.live ADD COLUMN x int");
	denied(w, "ALTER TABLE pgjobd.history DETACH PARTITION pgjobd.history_default");
	denied(w, "ALTER VIEW pgjobd.jobs RENAME TO j");
	denied(w, "ALTER FUNCTION pgjobd.maintain(int) SECURITY INVOKER");
	denied(w, "ALTER FUNCTION " ENQUEUE_SIG " RENAME TO e");
	denied(w, "ALTER SEQUENCE pgjobd.lease_token_seq RESTART");
	denied(w, "ALTER SCHEMA pgjobd RENAME TO p");
	denied(w, "COMMENT ON TABLE pgjobd.live IS 'x'");
	denied(w, "DROP TABLE pgjobd.live");
	denied(w, "DROP TABLE pgjobd.history_default");
	denied(w, "DROP VIEW pgjobd.jobs");
	denied(w, "DROP FUNCTION pgjobd.maintain(int)");
	denied(w, "DROP SEQUENCE pgjobd.lease_token_seq");
	denied(w, "DROP SCHEMA pgjobd CASCADE");
	denied(w, "TRUNCATE pgjobd.live");
	/* Nor reach past what its statements need. */
	denied(w, "SELECT payload FROM pgjobd.history");
	denied(w, "SELECT * FROM pgjobd.jobs");
	denied(w, "SELECT * FROM pgjobd.enqueue_grants");
	denied(w, "INSERT INTO pgjobd.live (type) VALUES ('t')");
	denied(w, "UPDATE pgjobd.history SET state = 'dead'");
	denied(w, "UPDATE pgjobd.live SET payload = '{}'");
	denied(w, "UPDATE pgjobd.live SET type = 'x', queue = 'y'");
	denied(w, "UPDATE pgjobd.live SET max_attempts = 100");
	denied(w, "SELECT pgjobd.enqueue('t')");
	denied(w, "SELECT pgjobd.cancel(%lld)", id);
	denied(w, "SELECT pgjobd.retry(%lld)", id);
	denied(w, "SELECT pgjobd.set_retention('done', '1 day')");
	denied(w, "SELECT pgjobd.grant_enqueue('t_worker', 't')");
	denied(w, "SELECT pgjobd._make_partitions()");
	denied(w, "SELECT pgjobd.schedule('s', '@daily', 't')");
	denied(w, "SELECT * FROM pgjobd.schedule_defs");
	expect_str(su, "1", "SELECT count(*) FROM pgjobd.jobs WHERE state = 'ready'");
	PQfinish(w);
	PQfinish(su);
}
END_TEST

/* ---- planted functions ---- */

/* Send the daemon's statements on W as the daemon does (the version,
 * then session.sql, then the rest): lease job ID (the only one ready in
 * queue q), heartbeat it, finish it, rescue, maintain, deregister. */
static void
daemon_statements(PGconn *su, PGconn *w, long long id)
{
	char ids[32], toks[64], *tok, *outcomes;
	PGresult *r;

	PQclear(t_exec(w, stmt_schema_version, NULL));
	r = PQexec(w, stmt_session);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "session: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQclear(t_exec(w, stmt_heartbeat, "{}", "{}", "60000", "w-evil", "h", "1", "0", "4", "0",
	    "{q}", "v", "{resize}", NULL));
	r = t_exec(w, stmt_exchange, "w-evil", "{q}", "{resize}", "{4}", "100", "60000", "[]", NULL);
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
	snprintf(ids, sizeof ids, "{%lld}", id);
	tok = t_str(su, "SELECT lease_token FROM pgjobd.live WHERE id = ($1::bigint[])[1]", ids, NULL);
	ck_assert_ptr_nonnull(tok);
	snprintf(toks, sizeof toks, "{%s}", tok);
	r = t_exec(w, stmt_heartbeat, ids, toks, "60000", "w-evil", "h", "1", "0", "4", "1", "{q}",
	    "v", "{resize}", NULL);
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
	ck_assert_int_ge(asprintf(&outcomes, "[{\"id\": %lld, \"token\": %s, \"outcome\": \"done\", "
	                                     "\"delay_ms\": 0, \"exit_code\": 0, \"result\": \"r\"}]",
	                     id, tok), 0);
	r = t_exec(w, stmt_exchange, "w-evil", "{q}", "{}", "{}", "0", "60000", outcomes, NULL);
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
	PQclear(t_exec(w, stmt_rescue, "{q}", "{resize}", "{5}", NULL));
	PQclear(t_exec(w, stmt_maintain, "10000", NULL));
	PQclear(t_exec(w, stmt_deregister, "w-evil", NULL));
	free(outcomes);
	free(tok);
}

START_TEST(test_planted_functions_and_operators_are_never_called)
{
	PGconn *su = fresh("pgjobd_r_planted");
	PGconn *app, *op, *rd, *w, *evil_su;
	PGresult *r;
	long long a, b, c;

	hostile(su);
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	app = login("t_app", HOSTILE_PATH);
	op = login("t_op", HOSTILE_PATH);
	rd = login("t_reader", HOSTILE_PATH);
	w = login("t_worker", HOSTILE_PATH);
	evil_su = login("postgres", HOSTILE_PATH);

	/* Every path of enqueue: plain, keyed (new, then found), scheduled
	 * with expiry, refused. */
	a = t_int(app, "SELECT pgjobd.enqueue('resize', '{\"args\": [\"x\"]}', queue => 'q')", NULL);
	/* The daemon's statements: lease a, finish it, rescue, maintain. */
	daemon_statements(su, w, a);
	b = t_int(app, "SELECT pgjobd.enqueue('resize', queue => 'q', idempotency_key => 'k')", NULL);
	ck_assert_int_eq(t_int(app, "SELECT pgjobd.enqueue('resize', queue => 'q', "
	                            "idempotency_key => 'k')", NULL), b);
	c = t_int(app, "SELECT pgjobd.enqueue('resize', queue => 'q', run_at => '2990-01-01', "
	               "expires_at => '2999-01-01', timeout => '1 min', max_attempts => 3)", NULL);
	expect_state(app, "22023", "SELECT pgjobd.enqueue('resize', timeout => '-1 s')");
	expect_state(app, "42501", "SELECT pgjobd.enqueue('other')");
	/* The operator's functions and the owner's. */
	expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", b);
	expect_str(op, "t", "SELECT pgjobd.retry(%lld)", b);
	expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", c);
	expect_str(op, "1 day", "SELECT pgjobd.set_retention('done', '1 day')");
	expect_str(op, "f", "SELECT skipped FROM pgjobd.maintain(100)");
	expect_str(op, "t", "SELECT pgjobd.index_payloads(true)");
	expect_str(op, "f", "SELECT pgjobd.index_payloads(false)");
	/* Schedules: the operator's (for a type it may enqueue), read by the
	 * reader, fired by the daemon's statement as the daemon's login. */
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_op', 'report')", NULL));
	PQclear(t_exec(op, "SELECT pgjobd.schedule('s', '@every 1h', 'report', queue => 'q')",
	    NULL));
	expect_state(op, "42501", "SELECT pgjobd.schedule('s2', '@daily', 'other')");
	expect_state(op, "22023", "SELECT pgjobd.schedule('s2', '61 * * * *', 'report')");
	expect_str(op, "t", "SELECT pgjobd.schedule_disable('s')");
	expect_str(op, "t", "SELECT pgjobd.schedule_enable('s')");
	expect_str(rd, "2", "SELECT count(*) FROM pgjobd.cron_next('0 3 * * *', 'Europe/Berlin', "
	                    "n => 2)");
	expect_str(app, "1", "SELECT count(*) FROM pgjobd.cron_next('@hourly', n => 1)");
	d_run(su, "UPDATE pgjobd.schedule_defs SET next_run = now() - '1 s'::interval");
	r = t_exec(w, stmt_schedule_fire, "{q}", NULL);
	ck_assert_int_eq(PQntuples(r), 2);
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "kind")), "f");
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "name")), "s");
	ck_assert_str_eq(PQgetvalue(r, 1, PQfnumber(r, "kind")), "n");
	PQclear(r);
	expect_str(su, "s ready", "SELECT name || ' ' || last_job_state FROM pgjobd.schedules");
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.schedules", NULL));
	expect_str(su, "report t_worker", "SELECT type || ' ' || enqueued_by FROM pgjobd.jobs "
	                                  "WHERE idempotency_key LIKE 'cron:s:%%'");
	expect_str(op, "t", "SELECT pgjobd.unschedule('s')");
	expect_str(evil_su, "t", "SELECT pgjobd.grant_enqueue('t_op', 'resize')");
	expect_str(evil_su, "t", "SELECT pgjobd.revoke_enqueue('t_op', 'resize')");
	/* Reading the views. */
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.jobs", NULL));
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.attempts", NULL));
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.queue_stats", NULL));
	/* Writing through them. */
	PQclear(t_exec(evil_su, "UPDATE pgjobd.jobs SET priority = 2", NULL));
	PQclear(t_exec(evil_su, "INSERT INTO pgjobd.jobs (type, queue) VALUES ('resize', 'q')", NULL));

	expect_str(su, "done 1", "SELECT state || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", a);
	expect_no_planted_call(su);
	/* The traps do work where a lookup goes through them. */
	PQclear(t_exec(app, "SELECT now(), 'a'::text = 'b'::text", NULL));
	expect_str(su, "evil.= evil.now", "SELECT string_agg(DISTINCT fn, ' ' ORDER BY fn) "
	                                  "FROM evil.calls");
	PQfinish(evil_su);
	PQfinish(w);
	PQfinish(rd);
	PQfinish(op);
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the real daemon as a bare daemon role ---- */

START_TEST(test_daemon_runs_every_path_as_a_login_only_in_the_daemon_role)
{
	PGconn *su = fresh("pgjobd_r_daemon");
	PGconn *app, *op, *w;
	long long ok, flaky, slow, lost, lostdead, expiring;
	char *text, *cfg, *log;
	struct t_daemon *d;
	int rc;

	hostile(su);
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', '*')", NULL));
	app = login("t_app", HOSTILE_PATH);
	ok = enqueue_as(app, "ok");
	flaky = enqueue_as(app, "flaky");
	lost = enqueue_as(app, "ok");
	lostdead = enqueue_as(app, "flaky");
	expiring = t_int(app, "SELECT pgjobd.enqueue('unmapped', expires_at => "
	                            "pg_catalog.now() OPERATOR(pg_catalog.+) '300 ms'::interval)",
	    NULL);
	/* Two leases of a daemon that died: one job goes again, one is dead. */
	d_run(su, "UPDATE pgjobd.live SET state = 'running', worker = 'ghost', "
	        "attempts = CASE type WHEN 'ok' THEN 1 ELSE 2 END, "
	        "started_at = now() - '1 min'::interval, "
	        "lease_token = nextval('pgjobd.lease_token_seq'), "
	        "lease_expires_at = now() - '1 s'::interval WHERE id IN (%lld, %lld)",
	    lost, lostdead);

	ck_assert_int_ge(asprintf(&text,
	                     "[pgjobd]\n"
	                     "database = user=t_worker options='-csearch_path=" HOSTILE_PATH "'\n"
	                     "name = w-roles\nlease = 2s\nheartbeat = 500ms\npoll_interval = 500ms\n"
	                     "kill_grace = 500ms\n"
	                     "[handler.ok]\ncommand = /bin/cat\n"
	                     "[handler.flaky]\ncommand = /bin/sh -c 'exit 1'\nmax_attempts = 2\n"
	                     "backoff = 100ms\n"
	                     "[handler.slow]\ncommand = /bin/sleep 60\n"),
	    0);
	cfg = t_write_temp(".ini", text);
	free(text);
	d = t_daemon_start(cfg, NULL);
	t_daemon_wait_log(d, "ready: worker w-roles", DEADLINE_MS);
	slow = enqueue_as(app, "slow");

	wait_state(su, ok, "done");
	wait_state(su, flaky, "dead");
	wait_state(su, lost, "done");
	wait_state(su, lostdead, "dead");
	wait_state(su, slow, "running");
	/* Its heartbeat keeps the worker row. */
	t_wait_value(su, "1", DEADLINE_MS, "SELECT count(*) FROM pgjobd.workers WHERE name = 'w-roles'");
	op = login("t_op", HOSTILE_PATH);
	expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", slow);
	t_daemon_wait_log(d, "outcome=cancelled", DEADLINE_MS);
	/* Maintenance as the daemon role, once the expiry has passed: the
	 * daemon sends it on its poll, and the role may send it by hand too
	 * (whichever comes first expires the job; the other finds nothing, or
	 * is skipped while the first holds the lock). */
	wait_state(su, expiring, "expired");
	w = login("t_worker", HOSTILE_PATH);
	PQclear(PQexec(w, stmt_session));
	expect_str(w, "ok", "SELECT CASE WHEN expired IN (0, 1) THEN 'ok' ELSE expired::text END "
	                    "FROM pgjobd.maintain(10000)");
	PQfinish(w);
	{
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT state FROM pgjobd.history WHERE id = %lld", expiring);
		t_wait_value(su, "expired", DEADLINE_MS, sql);
	}

	rc = t_daemon_signal(d, SIGTERM, true, 30000);
	log = t_daemon_log(d);
	ck_assert_msg(rc == 0, "daemon exited %d:\n%s", rc, log);
	ck_assert_msg(!strstr(log, "permission denied") && !strstr(log, "failed"),
	    "the daemon's log has an error:\n%s", log);
	free(log);
	t_daemon_stop(d);
	/* deregister removed the row. */
	expect_str(su, "0", "SELECT count(*) FROM pgjobd.workers");

	expect_str(su, "1:done", "SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
	                         "FROM pgjobd.attempts WHERE job_id = %lld", ok);
	expect_str(su, "1:retry,2:dead", "SELECT string_agg(attempt || ':' || outcome, ',' "
	                                 "ORDER BY attempt) FROM pgjobd.attempts WHERE job_id = %lld",
	    flaky);
	expect_str(su, "1:lost,2:done", "SELECT string_agg(attempt || ':' || outcome, ',' "
	                                "ORDER BY attempt) FROM pgjobd.attempts WHERE job_id = %lld",
	    lost);
	expect_str(su, "2:lost", "SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
	                         "FROM pgjobd.attempts WHERE job_id = %lld", lostdead);
	expect_str(su, "cancelled", "SELECT state FROM pgjobd.history WHERE id = %lld", slow);
	/* Who enqueued each job survived every move. */
	expect_str(su, "6 t_app", "SELECT count(*) || ' ' || string_agg(DISTINCT enqueued_by, ',') "
	                          "FROM pgjobd.jobs");
	expect_no_planted_call(su);
	unlink(cfg);
	free(cfg);
	PQfinish(op);
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the prefix, CREATEROLE, the downgrade ---- */

START_TEST(test_role_prefix_gives_a_database_its_own_roles_and_is_kept)
{
	PGconn *su;
	char *out = NULL, *err = NULL;
	int rc;

	t_use_fresh_db("pgjobd_r_prefix");
	su = t_connect();
	PQclear(t_exec(su, "DROP ROLE IF EXISTS app1_pgjobd_enqueue, app1_pgjobd_reader, "
	                   "app1_pgjobd_operator, app1_pgjobd_daemon", NULL));
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=app1_", 1);
	migrate_ok(NULL, NULL, T_MIGRATED);
	expect_str(su, "daemon=app1_pgjobd_daemon enqueue=app1_pgjobd_enqueue "
	               "operator=app1_pgjobd_operator reader=app1_pgjobd_reader",
	    "SELECT string_agg(kind || '=' || name, ' ' ORDER BY kind) FROM pgjobd.roles");
	expect_str(su, "4", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'app1\\_pgjobd\\_%%' "
	                    "AND NOT rolcanlogin");
	expect_str(su, "app1_pgjobd_enqueue",
	    "SELECT string_agg(a.grantee::regrole::text, ' ') FROM pg_proc p, aclexplode(p.proacl) a "
	    "WHERE p.oid = '" ENQUEUE_SIG "'::regprocedure AND a.grantee <> p.proowner");
	/* A later run keeps the names recorded, whatever the setting. */
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=app2_", 1);
	migrate_ok(NULL, NULL, T_MIGRATED);
	expect_str(su, "app1_pgjobd_enqueue", "SELECT name FROM pgjobd.roles WHERE kind = 'enqueue'");
	PQfinish(su);

	/* A prefix that would make odd names is refused, and nothing stays. */
	t_use_fresh_db("pgjobd_r_prefix_bad");
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=Bad-Prefix", 1);
	rc = run_migrate(NULL, NULL, &out, &err);
	unsetenv("PGOPTIONS");
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "pgjobd.role_prefix: must be empty or 1-40 characters") != NULL,
	    "stderr: %s", err);
	su = t_connect();
	expect_str(su, "0", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgjobd'");
	PQfinish(su);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_owner_without_createrole_migrates_when_the_roles_exist)
{
	PGconn *su;
	char *out = NULL, *err = NULL;
	int rc;

	su = fresh("pgjobd_r_owner_setup"); /* the four roles exist now */
	PQclear(t_exec(su, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
	                   "'t_owner') THEN CREATE ROLE t_owner LOGIN; END IF; END $$",
	    NULL));
	PQclear(t_exec(su, "DROP ROLE IF EXISTS t9_pgjobd_enqueue, t9_pgjobd_reader, "
	                   "t9_pgjobd_operator, t9_pgjobd_daemon", NULL));
	PQfinish(su);

	t_use_fresh_db("pgjobd_r_owner");
	su = t_connect();
	PQclear(t_exec(su, "ALTER DATABASE pgjobd_r_owner OWNER TO t_owner", NULL));
	migrate_ok("user=t_owner", NULL, T_MIGRATED);
	expect_str(su, "t_owner false false", "SELECT n.nspowner::regrole || ' ' || r.rolsuper || ' ' || "
	                              "r.rolcreaterole FROM pg_namespace n JOIN pg_roles r "
	                              "ON r.oid = n.nspowner WHERE n.nspname = 'pgjobd'");
	expect_str(su, "pgjobd_enqueue", "SELECT name FROM pgjobd.roles WHERE kind = 'enqueue'");
	PQfinish(su);

	/* Roles that are missing need CREATEROLE: refused, nothing stays. */
	t_use_fresh_db("pgjobd_r_owner_t9");
	su = t_connect();
	PQclear(t_exec(su, "ALTER DATABASE pgjobd_r_owner_t9 OWNER TO t_owner", NULL));
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=t9_", 1);
	rc = run_migrate("user=t_owner", NULL, &out, &err);
	unsetenv("PGOPTIONS");
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "permission denied to create role") != NULL, "stderr: %s", err);
	expect_str(su, "0", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgjobd'");
	free(out);
	free(err);
	PQfinish(su);
}
END_TEST

START_TEST(test_downgrade_to_3_keeps_every_job_and_the_roles)
{
	PGconn *su = fresh("pgjobd_r_down");
	PGconn *app = login("t_app", NULL);
	long long a, b;

	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	a = enqueue_as(app, "resize");
	b = enqueue_as(app, "resize");
	d_run(su, "UPDATE pgjobd.jobs SET state = 'done', finished_at = now() WHERE id = %lld", b);
	PQfinish(app);
	migrate_ok(NULL, "3", "schema version 3\n");
	expect_str(su, "ready done", "SELECT string_agg(state, ' ' ORDER BY id) FROM pgjobd.jobs "
	                             "WHERE id IN (%lld, %lld)", a, b);
	expect_str(su, "0", "SELECT count(*) FROM information_schema.columns WHERE "
	                    "table_schema = 'pgjobd' AND column_name = 'enqueued_by'");
	/* Version 3's API, open as it was; the roles stay (cluster-wide). */
	expect_str(su, "0", "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgjobd'::regnamespace "
	                    "AND (prosecdef OR proconfig IS NOT NULL)");
	expect_str(su, "t", "SELECT has_function_privilege('t_nobody', '" ENQUEUE_SIG "', 'EXECUTE')");
	expect_str(su, "f", "SELECT has_schema_privilege('pgjobd_enqueue', 'pgjobd', 'USAGE')");
	expect_str(su, "4", "SELECT count(*) FROM pg_roles WHERE rolname IN ('pgjobd_enqueue', "
	                    "'pgjobd_reader', 'pgjobd_operator', 'pgjobd_daemon')");
	expect_str(su, "0", "SELECT count(*) FROM pg_class WHERE relname IN ('roles', "
	                    "'enqueue_grants') AND relnamespace = 'pgjobd'::regnamespace");
	/* No grant to them is left in this database, so they can be dropped. */
	expect_str(su, "0", "SELECT count(*) FROM (SELECT relacl AS acl FROM pg_class "
	                    "  WHERE relnamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT attacl FROM pg_attribute a JOIN pg_class c "
	                    "  ON c.oid = a.attrelid WHERE c.relnamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT proacl FROM pg_proc "
	                    "  WHERE pronamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT nspacl FROM pg_namespace WHERE nspname = 'pgjobd' "
	                    "UNION ALL SELECT defaclacl FROM pg_default_acl) x, aclexplode(x.acl) e "
	                    "WHERE e.grantee IN (SELECT oid FROM pg_roles "
	                    "  WHERE rolname LIKE 'pgjobd\\_%%')");
	ck_assert_int_gt(enqueue_as(su, "t"), b);
	/* And up again: the jobs keep no enqueued_by, the grants are gone. */
	migrate_ok(NULL, NULL, T_MIGRATED);
	expect_str(su, "3", "SELECT count(*) FROM pgjobd.jobs WHERE enqueued_by IS NULL");
	app = login("t_app", NULL);
	denied(app, "SELECT pgjobd.enqueue('resize')");
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	enqueue_as(app, "resize");
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* The version-3 definitions that 004 redefines, each with what 004 added
 * (enqueued_by, the type right) taken out when STRIP, spaces collapsed. */
static char *
copied_definitions(PGconn *c, bool strip)
{
	char *sql, *v;

	ck_assert_int_ge(asprintf(&sql,
	                     "WITH d AS ("
	                     "  SELECT p.proname AS name, p.prosrc AS src FROM pg_proc p"
	                     "   WHERE p.pronamespace = 'pgjobd'::regnamespace AND p.proname IN"
	                     "         ('_put', '_jobs_write', 'retry', 'maintain', 'enqueue')"
	                     "  UNION ALL SELECT 'jobs', pg_get_viewdef('pgjobd.jobs'::regclass)),"
	                     "s AS (SELECT name, CASE WHEN %s THEN regexp_replace(regexp_replace(src,"
	                     "    '-- The right to this type.*?END IF;', '', 'g'),"
	                     "    '(,\\s*)?[A-Za-z]*\\.?enqueued_by(\\s*=\\s*NEW\\.enqueued_by)?', '', 'g')"
	                     "  ELSE src END AS src FROM d)"
	                     "SELECT string_agg(name || ': ' || regexp_replace(src, '\\s+', ' ', 'g'),"
	                     "                  E'\\n' ORDER BY name) FROM s",
	                     strip ? "true" : "false"),
	    0);
	v = t_str(c, sql, NULL);
	free(sql);
	return v;
}

/* GOT equals WANT; else show where they part (Check cannot print
 * messages of this size whole). */
static void
expect_same(const char *got, const char *want, const char *what)
{
	size_t i = 0;

	while (got[i] && got[i] == want[i])
		i++;
	ck_assert_msg(got[i] == want[i], "%s differs at %zu:\n  got:  ...%.160s\n  want: ...%.160s",
	    what, i, got + (i > 40 ? i - 40 : 0), want + (i > 40 ? i - 40 : 0));
}

START_TEST(test_version_4_redefines_version_3_adding_only_enqueued_by_and_the_right)
{
	PGconn *c;
	char *v3, *v4, *back;

	/* 004 and its down file carry copies of 003's functions and view;
	 * this fails when 003 changes and the copies were not made again. */
	t_use_fresh_db("pgjobd_r_copies");
	migrate_ok(NULL, "3", "schema version 3\n");
	c = t_connect();
	v3 = copied_definitions(c, false);
	migrate_ok(NULL, "4", "schema version 4\n");
	v4 = copied_definitions(c, true);
	ck_assert_msg(strstr(v4, "enqueued_by") == NULL, "not all of enqueued_by stripped:\n%s", v4);
	expect_same(v4, v3, "004's definitions without what it adds, against 003's");
	free(v4);
	v4 = copied_definitions(c, false);
	ck_assert_ptr_nonnull(strstr(v4, "enqueued_by"));
	migrate_ok(NULL, "3", "schema version 3\n");
	back = copied_definitions(c, false);
	expect_same(back, v3, "the definitions after the downgrade, against 003's");
	free(back);
	free(v4);
	free(v3);
	PQfinish(c);
}
END_TEST

static Suite *
roles_suite(void)
{
	Suite *s = suite_create("roles");
	TCase *tc = tcase_create("roles");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_migrate_installs_nologin_group_roles_and_closes_every_function);
	tcase_add_test(tc, test_enqueue_role_enqueues_only_granted_types_and_nothing_else);
	tcase_add_test(tc, test_reader_reads_jobs_attempts_and_stats_and_changes_nothing);
	tcase_add_test(tc, test_operator_cancels_and_retries_and_enqueued_by_follows_every_move);
	tcase_add_test(tc, test_daemon_role_cannot_create_alter_or_drop_anything);
	tcase_add_test(tc, test_planted_functions_and_operators_are_never_called);
	tcase_add_test(tc, test_daemon_runs_every_path_as_a_login_only_in_the_daemon_role);
	tcase_add_test(tc, test_role_prefix_gives_a_database_its_own_roles_and_is_kept);
	tcase_add_test(tc, test_owner_without_createrole_migrates_when_the_roles_exist);
	tcase_add_test(tc, test_downgrade_to_3_keeps_every_job_and_the_roles);
	tcase_add_test(tc, test_version_4_redefines_version_3_adding_only_enqueued_by_and_the_right);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(roles_suite());
}
