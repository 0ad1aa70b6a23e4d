/*
 * check_plans: the plans of the daemon's statements (sql/stmt/exchange,
 * heartbeat and rescue, planned as the daemon plans them) and of the
 * reads of pgjobd.jobs, pgjobd.attempts, queue_stats and contrib/
 * monitoring.sql, by EXPLAIN: index probes beside a million finished and
 * 200000 scheduled jobs (half in pgjobd.later), in both plan modes, and plans made on an empty
 * table that stay so once the backlog grows.  How long they take is make
 * bench's to show.
 */
#include "testlib.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stmts.h"
#include "storelib.h"

/* The JSON plan of SQL (EXPLAIN, no execution) under plan_cache_mode MODE
 * for the prepared statement STMT executed with ARGS (a SQL list). */
static char *
plan_of(PGconn *c, const char *stmt, const char *args, const char *mode)
{
	char *sql;
	char *plan;

	PQclear(t_exec(c, "DEALLOCATE ALL", NULL));
	sql = malloc(strlen(stmt) + 32);
	sprintf(sql, "PREPARE s AS %s", stmt);
	PQclear(t_exec(c, sql, NULL));
	free(sql);
	PQclear(t_exec(c, "SELECT set_config('plan_cache_mode', $1, false)", mode, NULL));
	sql = malloc(strlen(args) + 64);
	sprintf(sql, "EXPLAIN (FORMAT JSON) EXECUTE s(%s)", args);
	plan = t_str(c, sql, NULL);
	free(sql);
	return plan;
}

/* Fail on a sequential or bitmap scan of any table but the small ones
 * (pgjobd.retention: four rows; the count tables, summed up to a few rows
 * a queue by maintain()) or an empty one (a partition for a later day:
 * cost 0), and, when JOINS, on any merge join (the daemon's statements:
 * a merge join there is the full-index walk this storage was made to end;
 * a read may merge the few rows of two aggregates).  A bitmap scan of ids
 * given as an array (`id = ANY (...)`) is a probe per id, as an index scan
 * would be; a read may also take the rows of one state (the dead ones) by
 * bitmap. */
static void
assert_plan_scales(const char *what, const char *plan, bool joins)
{
	static const char *const bad[] = {"\"Seq Scan\"", "\"Bitmap Heap Scan\"", "\"Merge Join\""};
	static const char *const small[] = {"\"retention\"", "\"live_counts\"",
	                                    "\"history_counts\"", "\"attempt_counts\""};

	for (size_t i = 0; i < (joins ? 3 : 2); i++)
		for (const char *at = strstr(plan, bad[i]); at; at = strstr(at + 1, bad[i])) {
			const char *rel = strstr(at, "\"Relation Name\": ");
			const char *cost = strstr(at, "\"Total Cost\": ");
			const char *recheck = strstr(at, "\"Recheck Cond\": ");
			const char *next = strstr(at + 1, "\"Node Type\"");
			bool ok = false;

			for (size_t k = 0; i < 2 && rel && k < sizeof small / sizeof small[0]; k++)
				ok = ok || strncmp(rel + 17, small[k], strlen(small[k])) == 0;
			if (i == 0 && cost && strncmp(cost + 14, "0.00,", 5) == 0)
				ok = true;
			if (i == 1 && recheck && (!next || recheck < next) &&
			    (!joins || strncmp(recheck + 16, "\"(id = ANY (", 12) == 0 ||
			     strncmp(recheck + 16, "\"(job_id = ANY (", 16) == 0))
				ok = true;
			if (!ok)
				ck_abort_msg("%s: %s in the plan: ...%.600s", what, bad[i],
				             at - plan > 100 ? at - 100 : plan);
		}
}

START_TEST(test_plans_at_scale_probe_indexes_only)
{
	static const struct {
		const char *name, *stmt, *args;
	} stmts[] = {
	    {"exchange", NULL,
	     "'w', '{q}', '{t}', '{16}', 16, 60000, "
	     "'[{\"id\": 5, \"token\": 1, \"outcome\": \"done\"}, "
	     "{\"id\": 6, \"token\": 2, \"outcome\": \"retry\", \"delay_ms\": 1000}]'"},
	    {"heartbeat", NULL,
	     "'{5,6}', '{1,2}', 60000, 'w', 'h', 1, 0, 4, 2, '{q}', 'v', '{t}'"},
	    {"rescue", NULL, "'{q}', '{t}', '{5}'"},
	};
	static const char *const modes[] = {"force_generic_plan", "force_custom_plan"};
	/* The reads of the views and of contrib/monitoring.sql (make bench
	 * times them beside 10 million finished jobs). */
	static const char *const reads[] = {
	    "SELECT * FROM pgjobd.queue_stats",
	    "SELECT * FROM pgjobd.jobs WHERE id = 500000",
	    "SELECT * FROM pgjobd.attempts WHERE job_id = 500000",
	    "SELECT * FROM pgjobd.jobs WHERE state = 'dead' ORDER BY finished_at DESC LIMIT 50",
	    "SELECT * FROM pgjobd.jobs WHERE state = 'running' ORDER BY started_at",
	    "SELECT * FROM pgjobd.jobs WHERE state = 'expired' "
	    "AND finished_at > now() - interval '1 day'",
	    "SELECT * FROM pgjobd.attempt_counts WHERE minute > now() - interval '1 hour'",
	};
	PGconn *c = t_fresh_schema("pgjobd_st_scale", NULL);

	/* The partitions ahead, as the daemons' first maintain() makes them. */
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));

	/* A million finished jobs (a tenth with keys, some dead), one attempt
	 * each; 100000 scheduled a day ahead at a higher priority (in
	 * pgjobd.later) and 100000 an hour ahead (retries waiting in
	 * pgjobd.live, with an attempt each); 1000 ready. */
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, "
	               "attempts, idempotency_key, created_at, started_at, finished_at, worker, "
	               "purge_on) "
	               "SELECT i, 'q', 't', '{}', CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'done' END, 0, "
	               "now(), 1, CASE WHEN i % 10 = 0 THEN 'k' || i END, now(), now(), "
	               "now() - i * interval '600 ms', 'w', "
	               "(now() AT TIME ZONE 'UTC')::date + 1 + i % 8 "
	               "FROM generate_series(1, 1000000) i",
	               NULL));
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.attempt_history (job_id, attempt, worker, started_at, "
	               "finished_at, outcome, purge_on) "
	               "SELECT id, 1, 'w', started_at, finished_at, state, purge_on FROM pgjobd.history",
	               NULL));
	PQclear(t_exec(c, "SELECT setval('pgjobd.jobs_id_seq', 1000000)", NULL));
	PQclear(t_exec(c,
	               "SELECT count(pgjobd.enqueue('t', queue => 'q', priority => -10, "
	               "run_at => now() + interval '1 day')) FROM generate_series(1, 100000)",
	               NULL));
	PQclear(t_exec(c,
	               "SELECT count(pgjobd.enqueue('t', queue => 'q', priority => -10, "
	               "run_at => now() + interval '1 hour')) FROM generate_series(1, 100000)",
	               NULL));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.later", NULL), 100000);
	PQclear(t_exec(c, "SELECT count(pgjobd.enqueue('t', queue => 'q')) FROM generate_series(1, 1000)",
	               NULL));
	/* The live scheduled ones are retries: each has a failed attempt (over
	 * the last day, as the history's are over the last week). */
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.live_attempts (job_id, attempt, worker, finished_at, outcome) "
	               "SELECT id, 1, 'w', now() - id % 86400 * interval '1 s', 'retry' "
	               "FROM pgjobd.live WHERE state = 'scheduled'",
	               NULL));
	/* What the daemons' poll timers do: sum up the count deltas (100000
	 * enqueues in one statement added one each). */
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	PQclear(t_exec(c, "VACUUM ANALYZE", NULL));

	for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
		for (size_t m = 0; m < 2; m++) {
			const char *text = i == 0 ? stmt_exchange : i == 1 ? stmt_heartbeat : stmt_rescue;
			char *plan = plan_of(c, text, stmts[i].args, modes[m]);
			char what[64];

			snprintf(what, sizeof what, "%s (%s)", stmts[i].name, modes[m]);
			assert_plan_scales(what, plan, true);
			free(plan);
		}
	PQclear(t_exec(c, "RESET plan_cache_mode", NULL));
	/* A lookup by id in the views: an index probe in each part. */
	{
		char *plan = t_str(c, "EXPLAIN (FORMAT JSON) SELECT * FROM pgjobd.jobs j "
		                      "JOIN pgjobd.attempts a ON a.job_id = j.id WHERE j.id = 500000",
		                   NULL);

		assert_plan_scales("lookup by id", plan, true);
		free(plan);
	}
	for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
		char *sql = malloc(strlen(reads[i]) + 32), *plan;

		sprintf(sql, "EXPLAIN (FORMAT JSON) %s", reads[i]);
		plan = t_str(c, sql, NULL);
		assert_plan_scales(reads[i], plan, false);
		free(plan);
		free(sql);
	}
	/* And the lease itself: 16 jobs out of the due ones. */
	{
		PGresult *r = st_exchange(c, "{t}", "{16}", "[]");

		ck_assert_int_eq(PQntuples(r), 16);
		PQclear(r);
	}
	PQfinish(c);
}
END_TEST

/* The daemon's statements planned as the daemon plans them (the session
 * statement first, each plan made once at the first execution) on an
 * empty table, then used on a backlog: the plans made for no rows must
 * still probe indexes for 20000. */
START_TEST(test_plans_made_on_an_empty_table_still_probe_indexes)
{
	static const struct {
		const char *name, *args;
	} stmts[] = {
	    {"exchange",
	     "'w', '{q}', '{t}', '{16}', 16, 60000, "
	     "'[{\"id\": 5, \"token\": 1, \"outcome\": \"done\"}, "
	     "{\"id\": 6, \"token\": 2, \"outcome\": \"retry\", \"delay_ms\": 1000}]'"},
	    {"heartbeat", "'{5,6}', '{1,2}', 60000, 'w', 'h', 1, 0, 4, 2, '{q}', 'v', '{t}'"},
	    {"rescue", "'{q}', '{t}', '{5}'"},
	};
	PGconn *c = t_fresh_schema("pgjobd_st_empty_plans", NULL);
	PGresult *r = PQexec(c, stmt_session);

	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "session: %s",
	              PQresultErrorMessage(r));
	PQclear(r);
	for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
		const char *text = i == 0 ? stmt_exchange : i == 1 ? stmt_heartbeat : stmt_rescue;
		char *sql = malloc(strlen(text) + 64);

		sprintf(sql, "PREPARE s%zu AS %s", i, text);
		PQclear(t_exec(c, sql, NULL));
		sprintf(sql, "EXECUTE s%zu(%s)", i, stmts[i].args);
		PQclear(t_exec(c, sql, NULL));  /* the plan is made here, for no rows */
		free(sql);
	}
	PQclear(t_exec(c, "SELECT count(pgjobd.enqueue('t', queue => 'q')) "
	                  "FROM generate_series(1, 20000)", NULL));
	PQclear(st_exchange(c, "{t}", "{100}", "[]"));   /* 100 running */
	for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
		char sql[512];
		char *plan;

		snprintf(sql, sizeof sql, "EXPLAIN (FORMAT JSON) EXECUTE s%zu(%s)", i, stmts[i].args);
		plan = t_str(c, sql, NULL);
		ck_assert_msg(strstr(plan, "\"Relation Name\": \"live\"") != NULL,
		              "%s: no pgjobd.live in its plan", stmts[i].name);
		assert_plan_scales(stmts[i].name, plan, true);
		free(plan);
	}
	PQfinish(c);
}
END_TEST

static Suite *
plans_suite(void)
{
	Suite *s = suite_create("plans");
	TCase *tc = tcase_create("plans");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_plans_at_scale_probe_indexes_only);
	tcase_add_test(tc, test_plans_made_on_an_empty_table_still_probe_indexes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(plans_suite());
}
