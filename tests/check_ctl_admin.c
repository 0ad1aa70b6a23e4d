/*
 * check_ctl_admin: the administration verbs of `pgjobd ctl` (schedules,
 * schedule, unschedule, enable, disable, retention, maintain), run as the
 * real binary against the throwaway cluster: what the table and the JSON
 * say, what the database then holds, and the refusals: the SQL function's
 * own message, exit 1 and nothing written; usage errors exit 64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctllib.h"
#include "testlib.h"

#define DB "pgjobd_ctl_admin"

/* One column of schedule NAME in schedule_defs, as text (malloc'd). */
static char *
def(PGconn *c, const char *name, const char *column)
{
	char *sql, *v;

	ck_assert_int_ne(
	    asprintf(&sql, "SELECT %s::text FROM pgjobd.schedule_defs WHERE name = $1", column),
	    -1);
	v = t_str(c, sql, name, NULL);
	free(sql);
	return v;
}

static void
assert_def(PGconn *c, const char *name, const char *column, const char *want)
{
	char *got = def(c, name, column);

	ck_assert_msg(got && !strcmp(got, want), "%s of %s: got %s, want %s", column, name,
	              got ? got : "NULL", want);
	free(got);
}

START_TEST(test_schedule_creates_with_every_option_and_replaces)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	out = ctl_ok(0, "schedule", "nightly", "0 3 * * *", "report", "{\"a\": 1}", "--queue", "q1",
	             "--tz", "Europe/Berlin", "--priority", "5", "--max-attempts", "3", "--timeout",
	             "30s", "--missed", "skip", "--overlap", "skip", NULL);
	assert_has(out, "schedule nightly: next run ");
	free(out);
	assert_def(c, "nightly", "cron", "0 3 * * *");
	assert_def(c, "nightly", "type", "report");
	assert_def(c, "nightly", "payload", "{\"a\": 1}");
	assert_def(c, "nightly", "queue", "q1");
	assert_def(c, "nightly", "time_zone", "Europe/Berlin");
	assert_def(c, "nightly", "priority", "5");
	assert_def(c, "nightly", "max_attempts", "3");
	assert_def(c, "nightly", "timeout", "00:00:30");
	assert_def(c, "nightly", "missed", "skip");
	assert_def(c, "nightly", "overlap", "skip");

	/* The same name again replaces it, with the function's defaults;
	 * --json gives the next run the database recorded. */
	out = ctl_ok(0, "--json", "schedule", "nightly", "*/5 * * * *", "report2", NULL);
	assert_json(c, out,
	            "SELECT (($1::jsonb->>'next_run')::timestamptz = next_run "
	            "AND $1::jsonb->>'name' = name)::text FROM pgjobd.schedule_defs",
	            "true");
	free(out);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.schedule_defs", NULL), 1);
	assert_def(c, "nightly", "cron", "*/5 * * * *");
	assert_def(c, "nightly", "type", "report2");
	assert_def(c, "nightly", "payload", "{}");
	assert_def(c, "nightly", "queue", "default");
	assert_def(c, "nightly", "time_zone", "UTC");
	assert_def(c, "nightly", "priority", "0");
	assert_def(c, "nightly", "coalesce(max_attempts::text, 'none')", "none");
	assert_def(c, "nightly", "missed", "once");
	assert_def(c, "nightly", "overlap", "allow");

	/* "-": the payload from stdin, as for enqueue. */
	{
		char *err;
		const char *argv[] = {"/bin/sh", "-c",
		                      "printf '{\"from\": \"stdin\"}' | \"$0\" ctl -d '' "
		                      "schedule piped '0 * * * *' t -",
		                      t_pgjobd(), NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
		free(out);
		free(err);
	}
	assert_def(c, "piped", "payload", "{\"from\": \"stdin\"}");
	PQfinish(c);
}
END_TEST

START_TEST(test_schedules_lists_every_schedule_as_table_and_json)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	out = ctl_ok(0, "schedules", NULL);
	ck_assert_str_eq(out, "(none)\n");
	free(out);
	free(ctl_ok(0, "schedule", "b-hourly", "0 * * * *", "tick", "--queue", "q2", NULL));
	free(ctl_ok(0, "schedule", "a-daily", "30 4 * * *", "report", "--tz", "Asia/Tokyo", NULL));
	free(ctl_ok(0, "disable", "b-hourly", NULL));

	out = ctl_ok(0, "schedules", NULL);
	assert_has(out, "name");
	assert_has(out, "time_zone");
	assert_has(out, "last_job_state");
	assert_has(out, "last_error");
	ck_assert_msg(strstr(out, "a-daily") < strstr(out, "b-hourly"), "not by name:\n%s", out);
	assert_has(out, "Asia/Tokyo");
	assert_has(out, "30 4 * * *");
	free(out);

	ctl_json(
	    c,
	    "SELECT string_agg(s->>'name' || ':' || (s->>'queue') || ':' || (s->>'type') || ':' "
	    "|| (s->'enabled')::text || ':' || coalesce(s->>'last_run', '-'), ',' ORDER BY o) "
	    "FROM jsonb_array_elements($1::jsonb->'schedules') WITH ORDINALITY AS x(s, o)",
	    "a-daily:default:report:true:-,b-hourly:q2:tick:false:-", "--json", "schedules", NULL);
	ctl_json(c,
	         "SELECT ((s->>'next_run')::timestamptz = d.next_run AND s->>'cron' = d.cron "
	         "AND s->>'time_zone' = d.time_zone)::text FROM "
	         "jsonb_array_elements($1::jsonb->'schedules') s, pgjobd.schedule_defs d "
	         "WHERE d.name = 'a-daily' AND s->>'name' = d.name",
	         "true", "--json", "schedules", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_unschedule_enable_disable_say_whether_the_schedule_exists)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	free(ctl_ok(0, "schedule", "s1", "0 * * * *", "t", NULL));
	out = ctl_ok(0, "disable", "s1", NULL);
	ck_assert_str_eq(out, "schedule s1 disabled\n");
	free(out);
	assert_def(c, "s1", "enabled", "false");
	ctl_json(c, "SELECT $1::jsonb::text", "{\"name\": \"s1\", \"enabled\": true}", "--json",
	         "enable", "s1", NULL);
	assert_def(c, "s1", "enabled", "true");
	ctl_json(c, "SELECT $1::jsonb::text", "{\"name\": \"s1\", \"disabled\": true}", "--json",
	         "disable", "s1", NULL);
	assert_def(c, "s1", "enabled", "false");
	out = ctl_ok(0, "unschedule", "s1", NULL);
	ck_assert_str_eq(out, "schedule s1 removed\n");
	free(out);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.schedule_defs", NULL), 0);

	ctl_fails(1, "no schedule s1", "unschedule", "s1", NULL);
	ctl_fails(1, "no schedule nope", "enable", "nope", NULL);
	ctl_fails(1, "no schedule nope", "disable", "nope", NULL);
	out = ctl_ok(1, "--json", "unschedule", "nope", NULL);
	assert_json(c, out, "SELECT $1::jsonb::text", "{\"name\": \"nope\", \"removed\": false}");
	free(out);
	PQfinish(c);
}
END_TEST

START_TEST(test_refused_schedule_is_the_functions_message_and_writes_nothing)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	ctl_fails(1, "pgjobd.schedule: cron", "schedule", "s", "61 * * * *", "t", NULL);
	ctl_fails(1, "pgjobd.schedule: cron", "schedule", "s", "* * *", "t", NULL);
	ctl_fails(1, "pgjobd.schedule: time_zone", "schedule", "s", "0 * * * *", "t", "--tz",
	          "Mars/Olympus", NULL);
	ctl_fails(1, "pgjobd.schedule: name", "schedule", "a b", "0 * * * *", "t", NULL);
	ctl_fails(1, "pgjobd.schedule: missed", "schedule", "s", "0 * * * *", "t", "--missed",
	          "never", NULL);
	ctl_fails(1, "pgjobd.schedule: overlap", "schedule", "s", "0 * * * *", "t", "--overlap",
	          "deny", NULL);
	ctl_fails(1, "pgjobd.schedule: max_attempts", "schedule", "s", "0 * * * *", "t",
	          "--max-attempts", "0", NULL);
	ctl_fails(1, "invalid input syntax for type json", "schedule", "s", "0 * * * *", "t",
	          "{nope", NULL);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.schedule_defs", NULL), 0);
	PQfinish(c);
}
END_TEST

/* pgjobd.retention as "state=keep,...". */
#define RETENTION                                                                                  \
	"SELECT string_agg(state || '=' || keep::text, ',' ORDER BY state) FROM pgjobd.retention"

START_TEST(test_retention_shows_and_sets_each_state)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	out = ctl_ok(0, "retention", NULL);
	assert_has(out, "state");
	assert_has(out, "keep");
	assert_has(out, "done");
	assert_has(out, "7 days");
	assert_has(out, "expired");
	free(out);
	ctl_json(c,
	         "SELECT string_agg((r->>'state') || '=' || (r->>'keep'), ',' ORDER BY o) FROM "
	         "jsonb_array_elements($1::jsonb->'retention') WITH ORDINALITY AS x(r, o)",
	         "done=7 days,dead=30 days,cancelled=30 days,expired=30 days", "--json",
	         "retention", NULL);

	out = ctl_ok(0, "retention", "done", "14 days", NULL);
	assert_has(out, "done");
	assert_has(out, "14 days");
	free(out);
	ctl_json(c, "SELECT $1::jsonb::text",
	         "{\"retention\": [{\"keep\": \"36:00:00\", "
	         "\"state\": \"dead\"}]}",
	         "--json", "retention", "dead", "36 hours", NULL);
	{
		char *got = t_str(c, RETENTION, NULL);
		ck_assert_str_eq(got, "cancelled=30 days,dead=36:00:00,done=14 days,"
		                      "expired=30 days");
		free(got);
	}
	PQfinish(c);
}
END_TEST

START_TEST(test_refused_retention_is_the_functions_message_and_writes_nothing)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *before = t_str(c, RETENTION, NULL), *after;

	ctl_fails(1, "pgjobd.set_retention: state", "retention", "running", "1 day", NULL);
	ctl_fails(1, "pgjobd.set_retention: keep", "retention", "done", "5000 days", NULL);
	ctl_fails(1, "pgjobd.set_retention: keep", "retention", "done", "--", "-1 day", NULL);
	ctl_fails(1, "invalid input syntax for type interval", "retention", "done", "fortnight",
	          NULL);
	after = t_str(c, RETENTION, NULL);
	ck_assert_str_eq(after, before);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

START_TEST(test_maintain_runs_once_and_prints_its_counts)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	/* Two scheduled jobs whose time has come: maintain promotes them. */
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t', run_at => now() + interval '1 hour') "
	               "FROM generate_series(1, 2)",
	               NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.live SET run_at = now() - interval '1 second'", NULL));
	/* pgjobd.jobs shows a due row as ready already: read the table. */
	ck_assert_int_eq(
	    t_int(c, "SELECT count(*) FROM pgjobd.live WHERE state = 'scheduled'", NULL), 2);
	out = ctl_ok(0, "maintain", NULL);
	assert_has(out, "promoted  2\n");
	assert_has(out, "expired   0\n");
	assert_has(out, "created");
	assert_has(out, "dropped");
	assert_has(out, "skipped   f\n");
	free(out);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.live WHERE state = 'ready'", NULL),
	                 2);
	ctl_json(
	    c,
	    "SELECT ($1::jsonb->'promoted')::text || ',' || ($1::jsonb->'expired')::text || ','"
	    " || jsonb_typeof($1::jsonb->'created') || ',' || jsonb_typeof($1::jsonb->'dropped')"
	    " || ',' || ($1::jsonb->'skipped')::text",
	    "0,0,number,number,false", "--json", "maintain", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_grant_revoke_and_grants_keep_the_enqueue_rights)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	PQclear(t_exec(c, "DROP ROLE IF EXISTS t_ctl_app", NULL));
	PQclear(t_exec(c, "CREATE ROLE t_ctl_app NOLOGIN", NULL));
	out = ctl_ok(0, "grants", NULL);
	assert_has(out, "(none)");
	free(out);
	out = ctl_ok(0, "grant", "t_ctl_app", "resize", NULL);
	ck_assert_str_eq(out, "t_ctl_app may enqueue resize\n");
	free(out);
	out = ctl_ok(0, "grant", "t_ctl_app", "resize", NULL);
	ck_assert_str_eq(out, "t_ctl_app may enqueue resize (already)\n");
	free(out);
	ctl_json(c, "SELECT $1::jsonb::text",
	         "{\"role\": \"t_ctl_app\", \"type\": \"*\", \"granted\": true}", "--json",
	         "grant", "t_ctl_app", "*", NULL);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.enqueue_grants "
	                          "WHERE grantee = 't_ctl_app'::regrole", NULL), 2);
	out = ctl_ok(0, "grants", NULL);
	assert_has(out, "t_ctl_app");
	assert_has(out, "resize");
	free(out);
	ctl_json(c, "SELECT string_agg(g->>'role' || ':' || (g->>'type'), ',' ORDER BY g->>'type') "
	            "FROM jsonb_array_elements($1::jsonb->'grants') g",
	         "t_ctl_app:*,t_ctl_app:resize", "--json", "grants", NULL);
	out = ctl_ok(0, "revoke", "t_ctl_app", "resize", NULL);
	ck_assert_str_eq(out, "t_ctl_app may no longer enqueue resize\n");
	free(out);
	ctl_fails(1, "no grant of resize to t_ctl_app", "revoke", "t_ctl_app", "resize", NULL);
	/* Refused by pgjobd.grant_enqueue itself, nothing written. */
	ctl_fails(1, "must name an existing role", "grant", "t_no_such_role", "resize", NULL);
	ctl_fails(1, "must be 1-128 characters", "grant", "t_ctl_app", "bad type", NULL);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.enqueue_grants", NULL), 1);
	ctl_fails(64, "grant: missing argument", "grant", "t_ctl_app", NULL);
	ctl_fails(64, "revoke: unexpected argument: b", "revoke", "t_ctl_app", "a", "b", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_usage_errors_of_the_admin_verbs_exit_64)
{
	ctl_fails(64, "schedule: missing argument", "schedule", "n", "0 * * * *", NULL);
	ctl_fails(64, "schedule: unexpected argument: x", "schedule", "n", "0 * * * *", "t", "{}",
	          "x", NULL);
	ctl_fails(64, "schedule does not take --key", "schedule", "n", "0 * * * *", "t", "--key",
	          "k", NULL);
	ctl_fails(64, "--priority: not an integer", "schedule", "n", "0 * * * *", "t", "--priority",
	          "high", NULL);
	ctl_fails(64, "--timeout", "schedule", "n", "0 * * * *", "t", "--timeout", "soon", NULL);
	ctl_fails(64, "schedules: unexpected argument: x", "schedules", "x", NULL);
	ctl_fails(64, "schedules does not take --tz", "schedules", "--tz", "UTC", NULL);
	ctl_fails(64, "unschedule: missing argument", "unschedule", NULL);
	ctl_fails(64, "enable: unexpected argument: b", "enable", "a", "b", NULL);
	ctl_fails(64, "disable: missing argument", "disable", NULL);
	ctl_fails(64, "retention: STATE needs KEEP", "retention", "done", NULL);
	ctl_fails(64, "retention: unexpected argument: x", "retention", "done", "1 day", "x", NULL);
	ctl_fails(64, "maintain: unexpected argument: now", "maintain", "now", NULL);
	ctl_fails(64, "enqueue does not take --tz", "enqueue", "t", "--tz", "UTC", NULL);
	{
		static const char *const verbs[] = {"schedules", "schedule", "unschedule",
		                                    "enable",    "disable",  "retention",
		                                    "maintain"};
		char *out = ctl_ok(0, "-h", NULL), *item;
		for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
			ck_assert_int_ne(asprintf(&item, "\n  %s ", verbs[i]), -1);
			assert_has(out, item);
			free(item);
		}
		free(out);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ctl_admin");
	TCase *tc = tcase_create("ctl_admin");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_schedule_creates_with_every_option_and_replaces);
	tcase_add_test(tc, test_schedules_lists_every_schedule_as_table_and_json);
	tcase_add_test(tc, test_unschedule_enable_disable_say_whether_the_schedule_exists);
	tcase_add_test(tc, test_refused_schedule_is_the_functions_message_and_writes_nothing);
	tcase_add_test(tc, test_retention_shows_and_sets_each_state);
	tcase_add_test(tc, test_refused_retention_is_the_functions_message_and_writes_nothing);
	tcase_add_test(tc, test_maintain_runs_once_and_prints_its_counts);
	tcase_add_test(tc, test_grant_revoke_and_grants_keep_the_enqueue_rights);
	tcase_add_test(tc, test_usage_errors_of_the_admin_verbs_exit_64);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
