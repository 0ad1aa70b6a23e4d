/*
 * check_roles: least privilege (sql/004_roles.sql) proven with real logins
 * against the throwaway cluster: the group roles --migrate installs, what
 * each may and may not do, per-type enqueue rights, enqueued_by, functions
 * planted where a careless lookup would find them (tests/hostile.sql), and
 * the real daemon running every path as a login that is only in
 * pgjobd_daemon.  The role prefix, CREATEROLE and the downgrade are
 * check_roles_migrate's.
 *
 * The logins and the helpers are tests/rolelib.h's; every test makes its
 * own database.
 */
#include "testlib.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemonlib.h"
#include "rolelib.h"
#include "stmts.h"

#define DEADLINE_MS 20000
/* The hostile sessions' search_path: planted schemas before pg_catalog. */
#define HOSTILE_PATH "evil,public,pg_catalog"

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

/* Wait until job ID is in STATE. */
static void
wait_state(PGconn *c, long long id, const char *state)
{
	d_wait_state(c, id, state, DEADLINE_MS);
}

/* Nothing planted was called, by anyone, so far. */
static void
expect_no_planted_call(PGconn *su)
{
	r_expect_str(su, "", "SELECT coalesce(string_agg(DISTINCT fn, ' '), '') FROM evil.calls");
}

/* ---- what --migrate installs ---- */

START_TEST(test_migrate_installs_nologin_group_roles_and_closes_every_function)
{
	PGconn *c = r_fresh("pgjobd_r_install");

	r_expect_str(c, "daemon=pgjobd_daemon enqueue=pgjobd_enqueue operator=pgjobd_operator "
	              "reader=pgjobd_reader",
	    "SELECT string_agg(kind || '=' || name, ' ' ORDER BY kind) FROM pgjobd.roles");
	r_expect_str(c, "4", "SELECT count(*) FROM pg_roles WHERE rolname IN (SELECT name FROM "
	                   "pgjobd.roles) AND NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole");
	/* The only membership among them: operator in reader. */
	r_expect_str(c, "pgjobd_operator>pgjobd_reader",
	    "SELECT string_agg(m.rolname || '>' || g.rolname, ' ') FROM pg_auth_members a "
	    "JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid "
	    "WHERE g.rolname LIKE 'pgjobd\\_%%' AND m.rolname LIKE 'pgjobd\\_%%'");
	/* No function is executable by PUBLIC; every one has the fixed path. */
	r_expect_str(c, "0", "SELECT count(*) FROM pg_proc p WHERE pronamespace = 'pgjobd'::regnamespace "
	                   "AND (proacl IS NULL OR EXISTS (SELECT FROM aclexplode(proacl) a "
	                   "WHERE a.grantee = 0))");
	r_expect_str(c, "0", "SELECT count(*) FROM pg_proc p WHERE pronamespace = 'pgjobd'::regnamespace "
	                   "AND NOT coalesce(proconfig, '{}') @> "
	                   "ARRAY['search_path=pg_catalog, pg_temp']");
	/* Acting as the owner: the API and the triggers, nothing else. */
	r_expect_str(c, "_schedule_fire cancel cron_next enqueue grant_enqueue index_payloads maintain "
	              "retry revoke_enqueue schedule schedule_disable schedule_enable set_retention "
	              "unschedule",
	    "SELECT string_agg(proname, ' ' ORDER BY proname) FROM pg_proc WHERE prosecdef "
	    "AND pronamespace = 'pgjobd'::regnamespace AND prorettype <> 'trigger'::regtype");
	r_expect_str(c, "0", "SELECT count(*) FROM pg_proc WHERE NOT prosecdef "
	                   "AND pronamespace = 'pgjobd'::regnamespace AND prorettype = 'trigger'::regtype");
	/* Who may execute what, besides the owner. */
	r_expect_str(c, "_purge_on:pgjobd_daemon _schedule_fire:pgjobd_daemon cancel:pgjobd_operator "
	              "cron_next:pgjobd_enqueue cron_next:pgjobd_reader enqueue:pgjobd_enqueue "
	              "index_payloads:pgjobd_operator maintain:pgjobd_daemon maintain:pgjobd_operator "
	              "retry:pgjobd_operator schedule:pgjobd_operator "
	              "schedule_disable:pgjobd_operator schedule_enable:pgjobd_operator "
	              "set_retention:pgjobd_operator unschedule:pgjobd_operator",
	    "SELECT string_agg(p.proname || ':' || r.rolname, ' ' ORDER BY p.proname, r.rolname) "
	    "FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee "
	    "WHERE p.pronamespace = 'pgjobd'::regnamespace AND a.grantee <> p.proowner");
	/* The roles own nothing; the schema belongs to whoever migrated. */
	r_expect_str(c, "0", "SELECT count(*) FROM pg_class WHERE relnamespace = 'pgjobd'::regnamespace "
	                   "AND relowner IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'pgjobd\\_%%')");
	r_expect_str(c, "postgres", "SELECT nspowner::regrole::text FROM pg_namespace "
	                          "WHERE nspname = 'pgjobd'");
	PQfinish(c);
}
END_TEST

/* ---- the enqueue role ---- */

START_TEST(test_enqueue_role_enqueues_only_granted_types_and_nothing_else)
{
	PGconn *su = r_fresh("pgjobd_r_enqueue");
	PGconn *app = r_login("t_app", NULL), *nobody;
	long long id, mine;

	r_denied(app, "SELECT pgjobd.enqueue('resize')");
	r_expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_app', 'resize')");
	r_expect_str(su, "f", "SELECT pgjobd.grant_enqueue('t_app', 'resize')");
	mine = r_enqueue_as(app, "resize");
	r_expect_str(su, "t_app", "SELECT enqueued_by FROM pgjobd.jobs WHERE id = %lld", mine);
	r_denied(app, "SELECT pgjobd.enqueue('other')");
	/* The refusal names the role and the type. */
	{
		PGresult *r = PQexec(app, "SELECT pgjobd.enqueue('other')");
		ck_assert_ptr_nonnull(strstr(PQresultErrorMessage(r),
		    "role t_app may not enqueue jobs of type 'other'"));
		PQclear(r);
	}
	/* A bad argument is still the usual refusal, before any right. */
	r_expect_state(app, "22023", "SELECT pgjobd.enqueue('resize', NULL)");

	id = r_enqueue_as(su, "other");
	/* Reading anything, writing any table or view, operating: refused. */
	r_denied(app, "SELECT * FROM pgjobd.jobs");
	r_denied(app, "SELECT payload FROM pgjobd.live");
	r_denied(app, "SELECT * FROM pgjobd.history");
	r_denied(app, "SELECT * FROM pgjobd.attempts");
	r_denied(app, "SELECT * FROM pgjobd.queue_stats");
	r_denied(app, "SELECT * FROM pgjobd.workers");
	r_denied(app, "SELECT * FROM pgjobd.enqueue_grants");
	r_denied(app, "INSERT INTO pgjobd.live (type) VALUES ('other')");
	r_denied(app, "INSERT INTO pgjobd.jobs (type) VALUES ('other')");
	r_denied(app, "INSERT INTO pgjobd.history (id) VALUES (1)");
	r_denied(app, "INSERT INTO pgjobd.attempts (job_id, attempt, outcome) VALUES (%lld, 1, 'done')",
	    id);
	r_denied(app, "INSERT INTO pgjobd.enqueue_grants VALUES ('t_app', 'other')");
	r_denied(app, "INSERT INTO pgjobd.workers (name, host, pid, concurrency) VALUES ('x', 'h', 1, 1)");
	r_denied(app, "UPDATE pgjobd.live SET priority = 1");
	r_denied(app, "UPDATE pgjobd.jobs SET priority = 1 WHERE id = %lld", id);
	r_denied(app, "UPDATE pgjobd.retention SET keep = '1 day'");
	r_denied(app, "DELETE FROM pgjobd.live");
	r_denied(app, "DELETE FROM pgjobd.jobs WHERE id = %lld", id);
	r_denied(app, "TRUNCATE pgjobd.live");
	r_denied(app, "SELECT pgjobd.cancel(%lld)", id);
	r_denied(app, "SELECT pgjobd.retry(%lld)", id);
	r_denied(app, "SELECT pgjobd.grant_enqueue('t_app', 'other')");
	r_denied(app, "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	r_denied(app, "SELECT pgjobd.set_retention('done', '1 day')");
	r_denied(app, "SELECT pgjobd.maintain()");
	r_denied(app, "SELECT pgjobd.index_payloads()");
	r_denied(app, "SELECT pgjobd._make_partitions()");
	r_denied(app, "SELECT pgjobd._may_enqueue('other')");
	r_denied(app, "SELECT nextval('pgjobd.lease_token_seq')");
	r_expect_str(su, "ready", "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);
	r_expect_str(su, "2", "SELECT count(*) FROM pgjobd.jobs");

	/* '*' is every type; revoking it leaves the type's own grant. */
	r_expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_app', '*')");
	r_enqueue_as(app, "other");
	r_expect_str(su, "t", "SELECT pgjobd.revoke_enqueue('t_app', '*')");
	r_denied(app, "SELECT pgjobd.enqueue('other')");
	r_enqueue_as(app, "resize");
	r_expect_str(su, "t", "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	r_expect_str(su, "f", "SELECT pgjobd.revoke_enqueue('t_app', 'resize')");
	r_denied(app, "SELECT pgjobd.enqueue('resize')");
	/* A grant to the group holds for its members. */
	r_expect_str(su, "t", "SELECT pgjobd.grant_enqueue('pgjobd_enqueue', 'thumb')");
	r_enqueue_as(app, "thumb");

	/* Outside pgjobd_enqueue a type right is not enough. */
	r_expect_str(su, "t", "SELECT pgjobd.grant_enqueue('t_nobody', '*')");
	nobody = r_login("t_nobody", NULL);
	r_denied(nobody, "SELECT pgjobd.enqueue('thumb')");
	PQfinish(nobody);

	r_expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('no_such_role', 'x')");
	r_expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('t_app', 'bad type')");
	r_expect_state(su, "22023", "SELECT pgjobd.grant_enqueue('t_app', NULL)");
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the reader and the operator ---- */

START_TEST(test_reader_reads_jobs_attempts_and_stats_and_changes_nothing)
{
	PGconn *su = r_fresh("pgjobd_r_reader");
	PGconn *rd = r_login("t_reader", NULL);
	long long id = r_enqueue_as(su, "t");

	r_expect_str(rd, "1", "SELECT count(*) FROM pgjobd.jobs");
	r_expect_str(rd, "0", "SELECT count(*) FROM pgjobd.attempts");
	r_expect_str(rd, "1", "SELECT sum(ready) FROM pgjobd.queue_stats");
	r_expect_str(rd, "0", "SELECT count(*) FROM pgjobd.workers");
	r_expect_str(rd, "4", "SELECT count(*) FROM pgjobd.retention");
	r_denied(rd, "SELECT pgjobd.enqueue('t')");
	r_denied(rd, "SELECT pgjobd.cancel(%lld)", id);
	r_denied(rd, "SELECT pgjobd.retry(%lld)", id);
	r_denied(rd, "SELECT pgjobd.maintain()");
	r_denied(rd, "SELECT pgjobd.schedule('s', '@daily', 't')");
	r_denied(rd, "DELETE FROM pgjobd.schedule_defs");
	r_expect_str(rd, "0", "SELECT count(*) FROM pgjobd.schedules");
	r_denied(rd, "UPDATE pgjobd.jobs SET priority = 1");
	r_denied(rd, "DELETE FROM pgjobd.live");
	r_denied(rd, "INSERT INTO pgjobd.live (type) VALUES ('t')");
	PQfinish(rd);
	PQfinish(su);
}
END_TEST

START_TEST(test_operator_cancels_and_retries_and_enqueued_by_follows_every_move)
{
	PGconn *su = r_fresh("pgjobd_r_operator");
	PGconn *app = r_login("t_app", NULL), *op = r_login("t_op", NULL);
	long long a, b;

	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	a = r_enqueue_as(app, "resize");
	b = r_enqueue_as(app, "resize");
	/* ready -> cancelled (to history) -> ready (back to live) */
	r_expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", a);
	r_expect_str(su, "cancelled t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.history "
	                                  "WHERE id = %lld", a);
	r_expect_str(op, "t", "SELECT pgjobd.retry(%lld)", a);
	r_expect_str(su, "ready t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.live "
	                              "WHERE id = %lld", a);
	/* A repair through the view (to dead), then retry. */
	d_run(su, "UPDATE pgjobd.jobs SET state = 'dead', finished_at = now() WHERE id = %lld", b);
	r_expect_str(su, "dead t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.history "
	                             "WHERE id = %lld", b);
	r_expect_str(op, "t", "SELECT pgjobd.retry(%lld)", b);
	r_expect_str(su, "ready t_app", "SELECT state || ' ' || enqueued_by FROM pgjobd.jobs "
	                              "WHERE id = %lld", b);
	r_expect_str(op, "2", "SELECT count(*) FROM pgjobd.jobs WHERE enqueued_by = 't_app'");
	r_expect_str(op, "1 day", "SELECT pgjobd.set_retention('done', '1 day')");
	r_expect_str(op, "f", "SELECT skipped FROM pgjobd.maintain()");
	r_expect_str(op, "t", "SELECT pgjobd.index_payloads(true)");
	r_expect_str(op, "f", "SELECT pgjobd.index_payloads(false)");
	r_denied(op, "SELECT pgjobd.enqueue('resize')");
	r_denied(op, "SELECT pgjobd.grant_enqueue('t_op', 'resize')");
	r_denied(op, "INSERT INTO pgjobd.live (type) VALUES ('resize')");
	r_denied(op, "UPDATE pgjobd.jobs SET priority = 5 WHERE id = %lld", a);
	r_denied(op, "DELETE FROM pgjobd.history");
	PQfinish(op);
	PQfinish(app);
	PQfinish(su);
}
END_TEST

/* ---- the daemon role ---- */

START_TEST(test_daemon_role_cannot_create_alter_or_drop_anything)
{
	PGconn *su = r_fresh("pgjobd_r_ddl");
	PGconn *w = r_login("t_worker", NULL);
	long long id = r_enqueue_as(su, "t");

	r_denied(w, "CREATE TABLE pgjobd.x (i int)");
	r_denied(w, "CREATE TABLE public.x (i int)");
	r_denied(w, "CREATE SCHEMA x");
	r_denied(w, "CREATE FUNCTION pgjobd.f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
	r_denied(w, "CREATE VIEW pgjobd.v AS SELECT 1");
	r_denied(w, "CREATE TYPE pgjobd.t AS (a int)");
	r_denied(w, "CREATE TABLE pgjobd.history_20990101 PARTITION OF pgjobd.history "
	          "FOR VALUES FROM ('2099-01-01') TO ('2099-01-02')");
	r_denied(w, "CREATE INDEX ON pgjobd.live (priority)");
	r_denied(w, "CREATE TRIGGER t AFTER INSERT ON pgjobd.live FOR EACH STATEMENT "
	          "EXECUTE FUNCTION pgjobd._count_reset()");
	r_denied(w, "ALTER TABLE pgjobd.live ADD COLUMN x int");
	r_denied(w, "ALTER TABLE pgjobd.history DETACH PARTITION pgjobd.history_default");
	r_denied(w, "ALTER VIEW pgjobd.jobs RENAME TO j");
	r_denied(w, "ALTER FUNCTION pgjobd.maintain(int) SECURITY INVOKER");
	r_denied(w, "ALTER FUNCTION " ENQUEUE_SIG " RENAME TO e");
	r_denied(w, "ALTER SEQUENCE pgjobd.lease_token_seq RESTART");
	r_denied(w, "ALTER SCHEMA pgjobd RENAME TO p");
	r_denied(w, "COMMENT ON TABLE pgjobd.live IS 'x'");
	r_denied(w, "DROP TABLE pgjobd.live");
	r_denied(w, "DROP TABLE pgjobd.history_default");
	r_denied(w, "DROP VIEW pgjobd.jobs");
	r_denied(w, "DROP FUNCTION pgjobd.maintain(int)");
	r_denied(w, "DROP SEQUENCE pgjobd.lease_token_seq");
	r_denied(w, "DROP SCHEMA pgjobd CASCADE");
	r_denied(w, "TRUNCATE pgjobd.live");
	/* Nor reach past what its statements need. */
	r_denied(w, "SELECT payload FROM pgjobd.history");
	r_denied(w, "SELECT * FROM pgjobd.jobs");
	r_denied(w, "SELECT * FROM pgjobd.enqueue_grants");
	r_denied(w, "INSERT INTO pgjobd.live (type) VALUES ('t')");
	r_denied(w, "UPDATE pgjobd.history SET state = 'dead'");
	r_denied(w, "UPDATE pgjobd.live SET payload = '{}'");
	r_denied(w, "UPDATE pgjobd.live SET type = 'x', queue = 'y'");
	r_denied(w, "UPDATE pgjobd.live SET max_attempts = 100");
	r_denied(w, "SELECT pgjobd.enqueue('t')");
	r_denied(w, "SELECT pgjobd.cancel(%lld)", id);
	r_denied(w, "SELECT pgjobd.retry(%lld)", id);
	r_denied(w, "SELECT pgjobd.set_retention('done', '1 day')");
	r_denied(w, "SELECT pgjobd.grant_enqueue('t_worker', 't')");
	r_denied(w, "SELECT pgjobd._make_partitions()");
	r_denied(w, "SELECT pgjobd.schedule('s', '@daily', 't')");
	r_denied(w, "SELECT * FROM pgjobd.schedule_defs");
	r_expect_str(su, "1", "SELECT count(*) FROM pgjobd.jobs WHERE state = 'ready'");
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
	PGconn *su = r_fresh("pgjobd_r_planted");
	PGconn *app, *op, *rd, *w, *evil_su;
	PGresult *r;
	long long a, b, c;

	hostile(su);
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	app = r_login("t_app", HOSTILE_PATH);
	op = r_login("t_op", HOSTILE_PATH);
	rd = r_login("t_reader", HOSTILE_PATH);
	w = r_login("t_worker", HOSTILE_PATH);
	evil_su = r_login("postgres", HOSTILE_PATH);

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
	r_expect_state(app, "22023", "SELECT pgjobd.enqueue('resize', timeout => '-1 s')");
	r_expect_state(app, "42501", "SELECT pgjobd.enqueue('other')");
	/* The operator's functions and the owner's. */
	r_expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", b);
	r_expect_str(op, "t", "SELECT pgjobd.retry(%lld)", b);
	r_expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", c);
	r_expect_str(op, "1 day", "SELECT pgjobd.set_retention('done', '1 day')");
	r_expect_str(op, "f", "SELECT skipped FROM pgjobd.maintain(100)");
	r_expect_str(op, "t", "SELECT pgjobd.index_payloads(true)");
	r_expect_str(op, "f", "SELECT pgjobd.index_payloads(false)");
	/* Schedules: the operator's (for a type it may enqueue), read by the
	 * reader, fired by the daemon's statement as the daemon's login. */
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_op', 'report')", NULL));
	PQclear(t_exec(op, "SELECT pgjobd.schedule('s', '@every 1h', 'report', queue => 'q')",
	    NULL));
	r_expect_state(op, "42501", "SELECT pgjobd.schedule('s2', '@daily', 'other')");
	r_expect_state(op, "22023", "SELECT pgjobd.schedule('s2', '61 * * * *', 'report')");
	r_expect_str(op, "t", "SELECT pgjobd.schedule_disable('s')");
	r_expect_str(op, "t", "SELECT pgjobd.schedule_enable('s')");
	r_expect_str(rd, "2", "SELECT count(*) FROM pgjobd.cron_next('0 3 * * *', 'Europe/Berlin', "
	                    "n => 2)");
	r_expect_str(app, "1", "SELECT count(*) FROM pgjobd.cron_next('@hourly', n => 1)");
	d_run(su, "UPDATE pgjobd.schedule_defs SET next_run = now() - '1 s'::interval");
	r = t_exec(w, stmt_schedule_fire, "{q}", NULL);
	ck_assert_int_eq(PQntuples(r), 2);
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "kind")), "f");
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "name")), "s");
	ck_assert_str_eq(PQgetvalue(r, 1, PQfnumber(r, "kind")), "n");
	PQclear(r);
	r_expect_str(su, "s ready", "SELECT name || ' ' || last_job_state FROM pgjobd.schedules");
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.schedules", NULL));
	r_expect_str(su, "report t_worker", "SELECT type || ' ' || enqueued_by FROM pgjobd.jobs "
	                                  "WHERE idempotency_key LIKE 'cron:s:%%'");
	r_expect_str(op, "t", "SELECT pgjobd.unschedule('s')");
	r_expect_str(evil_su, "t", "SELECT pgjobd.grant_enqueue('t_op', 'resize')");
	r_expect_str(evil_su, "t", "SELECT pgjobd.revoke_enqueue('t_op', 'resize')");
	/* Reading the views. */
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.jobs", NULL));
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.attempts", NULL));
	PQclear(t_exec(rd, "SELECT * FROM pgjobd.queue_stats", NULL));
	/* Writing through them. */
	PQclear(t_exec(evil_su, "UPDATE pgjobd.jobs SET priority = 2", NULL));
	PQclear(t_exec(evil_su, "INSERT INTO pgjobd.jobs (type, queue) VALUES ('resize', 'q')", NULL));

	r_expect_str(su, "done 1", "SELECT state || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", a);
	expect_no_planted_call(su);
	/* The traps do work where a lookup goes through them. */
	PQclear(t_exec(app, "SELECT now(), 'a'::text = 'b'::text", NULL));
	r_expect_str(su, "evil.= evil.now", "SELECT string_agg(DISTINCT fn, ' ' ORDER BY fn) "
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
	PGconn *su = r_fresh("pgjobd_r_daemon");
	PGconn *app, *op, *w;
	long long ok, flaky, slow, lost, lostdead, expiring;
	char *text, *cfg, *log;
	struct t_daemon *d;
	int rc;

	hostile(su);
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', '*')", NULL));
	app = r_login("t_app", HOSTILE_PATH);
	ok = r_enqueue_as(app, "ok");
	flaky = r_enqueue_as(app, "flaky");
	lost = r_enqueue_as(app, "ok");
	lostdead = r_enqueue_as(app, "flaky");
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
	slow = r_enqueue_as(app, "slow");

	wait_state(su, ok, "done");
	wait_state(su, flaky, "dead");
	wait_state(su, lost, "done");
	wait_state(su, lostdead, "dead");
	wait_state(su, slow, "running");
	/* Its heartbeat keeps the worker row. */
	t_wait_value(su, "1", DEADLINE_MS, "SELECT count(*) FROM pgjobd.workers WHERE name = 'w-roles'");
	op = r_login("t_op", HOSTILE_PATH);
	r_expect_str(op, "t", "SELECT pgjobd.cancel(%lld)", slow);
	t_daemon_wait_log(d, "outcome=cancelled", DEADLINE_MS);
	/* Maintenance as the daemon role, once the expiry has passed: the
	 * daemon sends it on its poll, and the role may send it by hand too
	 * (whichever comes first expires the job; the other finds nothing, or
	 * is skipped while the first holds the lock). */
	wait_state(su, expiring, "expired");
	w = r_login("t_worker", HOSTILE_PATH);
	PQclear(PQexec(w, stmt_session));
	r_expect_str(w, "ok", "SELECT CASE WHEN expired IN (0, 1) THEN 'ok' ELSE expired::text END "
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
	r_expect_str(su, "0", "SELECT count(*) FROM pgjobd.workers");

	r_expect_str(su, "1:done", "SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
	                         "FROM pgjobd.attempts WHERE job_id = %lld", ok);
	r_expect_str(su, "1:retry,2:dead", "SELECT string_agg(attempt || ':' || outcome, ',' "
	                                 "ORDER BY attempt) FROM pgjobd.attempts WHERE job_id = %lld",
	    flaky);
	r_expect_str(su, "1:lost,2:done", "SELECT string_agg(attempt || ':' || outcome, ',' "
	                                "ORDER BY attempt) FROM pgjobd.attempts WHERE job_id = %lld",
	    lost);
	r_expect_str(su, "2:lost", "SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
	                         "FROM pgjobd.attempts WHERE job_id = %lld", lostdead);
	r_expect_str(su, "cancelled", "SELECT state FROM pgjobd.history WHERE id = %lld", slow);
	/* Who enqueued each job survived every move. */
	r_expect_str(su, "6 t_app", "SELECT count(*) || ' ' || string_agg(DISTINCT enqueued_by, ',') "
	                          "FROM pgjobd.jobs");
	expect_no_planted_call(su);
	unlink(cfg);
	free(cfg);
	PQfinish(op);
	PQfinish(app);
	PQfinish(su);
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
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(roles_suite());
}
