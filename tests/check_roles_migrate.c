/*
 * check_roles_migrate: the roles of sql/004_roles.sql across migrations:
 * a role prefix gives a database its own roles and is kept, an owner
 * without CREATEROLE migrates once the roles exist, the downgrade to 3
 * keeps every job and the roles, and version 4 redefines version 3's
 * functions adding only enqueued_by and the type right.
 *
 * The logins and the helpers are tests/rolelib.h's; every test makes its
 * own database.
 */
#include "testlib.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemonlib.h"
#include "rolelib.h"

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
	r_migrate_ok(NULL, NULL, T_MIGRATED);
	r_expect_str(su, "daemon=app1_pgjobd_daemon enqueue=app1_pgjobd_enqueue "
	               "operator=app1_pgjobd_operator reader=app1_pgjobd_reader",
	    "SELECT string_agg(kind || '=' || name, ' ' ORDER BY kind) FROM pgjobd.roles");
	r_expect_str(su, "4", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'app1\\_pgjobd\\_%%' "
	                    "AND NOT rolcanlogin");
	r_expect_str(su, "app1_pgjobd_enqueue",
	    "SELECT string_agg(a.grantee::regrole::text, ' ') FROM pg_proc p, aclexplode(p.proacl) a "
	    "WHERE p.oid = '" ENQUEUE_SIG "'::regprocedure AND a.grantee <> p.proowner");
	/* A later run keeps the names recorded, whatever the setting. */
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=app2_", 1);
	r_migrate_ok(NULL, NULL, T_MIGRATED);
	r_expect_str(su, "app1_pgjobd_enqueue", "SELECT name FROM pgjobd.roles WHERE kind = 'enqueue'");
	PQfinish(su);

	/* A prefix that would make odd names is refused, and nothing stays. */
	t_use_fresh_db("pgjobd_r_prefix_bad");
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=Bad-Prefix", 1);
	rc = r_run_migrate(NULL, NULL, &out, &err);
	unsetenv("PGOPTIONS");
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "pgjobd.role_prefix: must be empty or 1-40 characters") != NULL,
	    "stderr: %s", err);
	su = t_connect();
	r_expect_str(su, "0", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgjobd'");
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

	su = r_fresh("pgjobd_r_owner_setup"); /* the four roles exist now */
	PQclear(t_exec(su, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
	                   "'t_owner') THEN CREATE ROLE t_owner LOGIN; END IF; END $$",
	    NULL));
	PQclear(t_exec(su, "DROP ROLE IF EXISTS t9_pgjobd_enqueue, t9_pgjobd_reader, "
	                   "t9_pgjobd_operator, t9_pgjobd_daemon", NULL));
	PQfinish(su);

	t_use_fresh_db("pgjobd_r_owner");
	su = t_connect();
	PQclear(t_exec(su, "ALTER DATABASE pgjobd_r_owner OWNER TO t_owner", NULL));
	r_migrate_ok("user=t_owner", NULL, T_MIGRATED);
	r_expect_str(su, "t_owner false false", "SELECT n.nspowner::regrole || ' ' || r.rolsuper || ' ' || "
	                              "r.rolcreaterole FROM pg_namespace n JOIN pg_roles r "
	                              "ON r.oid = n.nspowner WHERE n.nspname = 'pgjobd'");
	r_expect_str(su, "pgjobd_enqueue", "SELECT name FROM pgjobd.roles WHERE kind = 'enqueue'");
	PQfinish(su);

	/* Roles that are missing need CREATEROLE: refused, nothing stays. */
	t_use_fresh_db("pgjobd_r_owner_t9");
	su = t_connect();
	PQclear(t_exec(su, "ALTER DATABASE pgjobd_r_owner_t9 OWNER TO t_owner", NULL));
	setenv("PGOPTIONS", "-cpgjobd.role_prefix=t9_", 1);
	rc = r_run_migrate("user=t_owner", NULL, &out, &err);
	unsetenv("PGOPTIONS");
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "permission denied to create role") != NULL, "stderr: %s", err);
	r_expect_str(su, "0", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgjobd'");
	free(out);
	free(err);
	PQfinish(su);
}
END_TEST

START_TEST(test_downgrade_to_3_keeps_every_job_and_the_roles)
{
	PGconn *su = r_fresh("pgjobd_r_down");
	PGconn *app = r_login("t_app", NULL);
	long long a, b;

	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	a = r_enqueue_as(app, "resize");
	b = r_enqueue_as(app, "resize");
	d_run(su, "UPDATE pgjobd.jobs SET state = 'done', finished_at = now() WHERE id = %lld", b);
	PQfinish(app);
	r_migrate_ok(NULL, "3", "schema version 3\n");
	r_expect_str(su, "ready done", "SELECT string_agg(state, ' ' ORDER BY id) FROM pgjobd.jobs "
	                             "WHERE id IN (%lld, %lld)", a, b);
	r_expect_str(su, "0", "SELECT count(*) FROM information_schema.columns WHERE "
	                    "table_schema = 'pgjobd' AND column_name = 'enqueued_by'");
	/* Version 3's API, open as it was; the roles stay (cluster-wide). */
	r_expect_str(su, "0", "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgjobd'::regnamespace "
	                    "AND (prosecdef OR proconfig IS NOT NULL)");
	r_expect_str(su, "t", "SELECT has_function_privilege('t_nobody', '" ENQUEUE_SIG "', 'EXECUTE')");
	r_expect_str(su, "f", "SELECT has_schema_privilege('pgjobd_enqueue', 'pgjobd', 'USAGE')");
	r_expect_str(su, "4", "SELECT count(*) FROM pg_roles WHERE rolname IN ('pgjobd_enqueue', "
	                    "'pgjobd_reader', 'pgjobd_operator', 'pgjobd_daemon')");
	r_expect_str(su, "0", "SELECT count(*) FROM pg_class WHERE relname IN ('roles', "
	                    "'enqueue_grants') AND relnamespace = 'pgjobd'::regnamespace");
	/* No grant to them is left in this database, so they can be dropped. */
	r_expect_str(su, "0", "SELECT count(*) FROM (SELECT relacl AS acl FROM pg_class "
	                    "  WHERE relnamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT attacl FROM pg_attribute a JOIN pg_class c "
	                    "  ON c.oid = a.attrelid WHERE c.relnamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT proacl FROM pg_proc "
	                    "  WHERE pronamespace = 'pgjobd'::regnamespace "
	                    "UNION ALL SELECT nspacl FROM pg_namespace WHERE nspname = 'pgjobd' "
	                    "UNION ALL SELECT defaclacl FROM pg_default_acl) x, aclexplode(x.acl) e "
	                    "WHERE e.grantee IN (SELECT oid FROM pg_roles "
	                    "  WHERE rolname LIKE 'pgjobd\\_%%')");
	ck_assert_int_gt(r_enqueue_as(su, "t"), b);
	/* And up again: the jobs keep no enqueued_by, the grants are gone. */
	r_migrate_ok(NULL, NULL, T_MIGRATED);
	r_expect_str(su, "3", "SELECT count(*) FROM pgjobd.jobs WHERE enqueued_by IS NULL");
	app = r_login("t_app", NULL);
	r_denied(app, "SELECT pgjobd.enqueue('resize')");
	PQclear(t_exec(su, "SELECT pgjobd.grant_enqueue('t_app', 'resize')", NULL));
	r_enqueue_as(app, "resize");
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
	r_migrate_ok(NULL, "3", "schema version 3\n");
	c = t_connect();
	v3 = copied_definitions(c, false);
	r_migrate_ok(NULL, "4", "schema version 4\n");
	v4 = copied_definitions(c, true);
	ck_assert_msg(strstr(v4, "enqueued_by") == NULL, "not all of enqueued_by stripped:\n%s", v4);
	expect_same(v4, v3, "004's definitions without what it adds, against 003's");
	free(v4);
	v4 = copied_definitions(c, false);
	ck_assert_ptr_nonnull(strstr(v4, "enqueued_by"));
	r_migrate_ok(NULL, "3", "schema version 3\n");
	back = copied_definitions(c, false);
	expect_same(back, v3, "the definitions after the downgrade, against 003's");
	free(back);
	free(v4);
	free(v3);
	PQfinish(c);
}
END_TEST

static Suite *
roles_migrate_suite(void)
{
	Suite *s = suite_create("roles_migrate");
	TCase *tc = tcase_create("roles_migrate");

	tcase_set_timeout(tc, 120);
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
	return t_run_suite(roles_migrate_suite());
}
