/*
 * check_later: the jobs scheduled beyond the horizon (schema version 7,
 * sql/007_later.sql), which wait in pgjobd.later so that pgjobd.live stays
 * the size of what runs now and soon: where enqueue and the writes to
 * pgjobd.jobs put a job, that every reader, cancel, retry and idempotency
 * key finds it there, that maintain() moves what comes due (batch by
 * batch, and a daemon without waiting for its poll), that a real daemon
 * runs such a job, and that --migrate --to 6 and back keeps every job and
 * gives back version 6's definitions word for word.
 *
 * Time passing is played by setting run_at (or expires_at) in
 * pgjobd.later: nothing here waits for a clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemonlib.h"
#include "storelib.h"

/* Where job ID is: "live", "later", "history" or "none". */
static char *
place_of(PGconn *c, long long id)
{
	return d_qstr(c,
	              "SELECT CASE WHEN EXISTS (SELECT FROM pgjobd.live WHERE id = %1$lld) THEN 'live' "
	              "WHEN EXISTS (SELECT FROM pgjobd.later WHERE id = %1$lld) THEN 'later' "
	              "WHEN EXISTS (SELECT FROM pgjobd.history WHERE id = %1$lld) THEN 'history' "
	              "ELSE 'none' END",
	              id);
}

static void
assert_place(PGconn *c, long long id, const char *want, const char *after)
{
	char *got = place_of(c, id);

	ck_assert_msg(strcmp(got, want) == 0, "after %s: job %lld is in %s, not %s", after, id, got,
	              want);
	free(got);
}

/* The state pgjobd.jobs shows for job ID. */
static void
assert_shown(PGconn *c, long long id, const char *want)
{
	char *got = d_qstr(c, "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);

	ck_assert_msg(got && strcmp(got, want) == 0, "pgjobd.jobs shows job %lld as %s, not %s", id,
	              got ? got : "(missing)", want);
	free(got);
}

START_TEST(test_a_job_due_beyond_the_horizon_waits_in_later_and_is_found_everywhere)
{
	PGconn *c = t_fresh_schema("pgjobd_lt_put", NULL);
	long long far, near, again, put, n;

	ck_assert_int_eq(t_int(c, "SELECT extract(epoch FROM pgjobd._later_horizon())::int", NULL),
	                 7200);
	far = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'k', "
	               "run_at => now() + interval '3 hours')", NULL);
	near = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', "
	                "run_at => now() + interval '1 hour')", NULL);
	assert_place(c, far, "later", "enqueue 3 hours ahead");
	assert_place(c, near, "live", "enqueue 1 hour ahead");
	assert_shown(c, far, "ready");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.later WHERE id = %lld AND "
	                           "state = 'scheduled' AND idempotency_key = 'k'", far), 1);
	st_assert_stats_match_rows(c, "enqueue ahead");

	/* Its key is remembered there: the same enqueue writes nothing. */
	again = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'k', "
	                 "run_at => now() + interval '5 hours')", NULL);
	ck_assert_int_eq(again, far);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.later", NULL), 1);

	/* Cancelled from there, retried into live. */
	ck_assert_int_eq(d_qint(c, "SELECT pgjobd.cancel(%lld)::int", far), 1);
	assert_place(c, far, "history", "cancel");
	assert_shown(c, far, "cancelled");
	st_assert_stats_match_rows(c, "cancel");
	ck_assert_int_eq(d_qint(c, "SELECT pgjobd.retry(%lld)::int", far), 1);
	assert_place(c, far, "live", "retry");
	assert_shown(c, far, "ready");
	st_assert_stats_match_rows(c, "retry");

	/* Writes through pgjobd.jobs go where the row belongs. */
	put = t_int(c, "INSERT INTO pgjobd.jobs (queue, type, run_at) "
	               "VALUES ('q', 't', now() + interval '1 day') RETURNING id", NULL);
	assert_place(c, put, "later", "an insert into pgjobd.jobs a day ahead");
	d_run(c, "UPDATE pgjobd.jobs SET priority = 5 WHERE id = %lld", put);
	assert_place(c, put, "later", "a change of priority");
	ck_assert_int_eq(d_qint(c, "SELECT priority FROM pgjobd.later WHERE id = %lld", put), 5);
	d_run(c, "UPDATE pgjobd.jobs SET run_at = now() WHERE id = %lld", put);
	assert_place(c, put, "live", "run_at set to now");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.live WHERE id = %lld AND "
	                           "state = 'ready' AND priority = 5", put), 1);
	st_assert_stats_match_rows(c, "writes to pgjobd.jobs");

	/* Past its expires_at before maintain() moved it: shown and counted
	 * as expired, and cancel refuses it as it does a live one. */
	n = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval '1 day', "
	             "expires_at => now() + interval '2 days')", NULL);
	d_run(c, "UPDATE pgjobd.later SET run_at = now() - interval '2 s', "
	                  "expires_at = now() - interval '1 s' WHERE id = %lld", n);
	assert_shown(c, n, "expired");
	st_assert_stats_match_rows(c, "a job in later expiring");
	ck_assert_int_eq(d_qint(c, "SELECT pgjobd.cancel(%lld)::int", n), 0);
	/* retry() of an expired job works as it does for a dead one. */
	ck_assert_int_eq(d_qint(c, "SELECT pgjobd.retry(%lld)::int", n), 1);
	assert_place(c, n, "live", "retry of an expired job");
	assert_shown(c, n, "ready");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.live WHERE id = %lld AND "
	                           "expires_at IS NULL AND attempts = 0", n), 1);
	st_assert_stats_match_rows(c, "retry of an expired job");

	/* A DELETE through the view, and a TRUNCATE resetting only its own
	 * counts. */
	n = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval '1 day')",
	          NULL);
	d_run(c, "DELETE FROM pgjobd.jobs WHERE id = %lld", n);
	assert_place(c, n, "none", "a delete through pgjobd.jobs");
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval "
	                  "'1 day') FROM generate_series(1, 3)", NULL));
	st_assert_stats_match_rows(c, "three more ahead");
	PQclear(t_exec(c, "TRUNCATE pgjobd.later", NULL));
	st_assert_stats_match_rows(c, "TRUNCATE pgjobd.later");
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	st_assert_stats_match_rows(c, "maintain");
	PQfinish(c);
}
END_TEST

START_TEST(test_maintain_moves_what_comes_due_within_the_horizon_batch_by_batch)
{
	PGconn *c = t_fresh_schema("pgjobd_lt_move", NULL);
	long long due, soon, soon2, expiring, far;
	char *s;

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval "
	                  "'1 day' + i * interval '1 s') FROM generate_series(1, 5) i", NULL));
	due = t_int(c, "SELECT min(id) FROM pgjobd.later", NULL);
	soon = due + 1;
	soon2 = due + 2;
	expiring = due + 3;
	far = due + 4;
	/* Two hours have passed for the first (now due) and a bit less for the
	 * next two; the fourth will expire within the horizon. */
	d_run(c, "UPDATE pgjobd.later SET run_at = now() - interval '1 s' WHERE id = %lld",
	               due);
	d_run(c, "UPDATE pgjobd.later SET run_at = now() + interval '1 hour' + "
	                  "(id - %lld) * interval '1 min' WHERE id IN (%lld, %lld)",
	               due, soon, soon2);
	d_run(c, "UPDATE pgjobd.later SET expires_at = now() + interval '90 min' "
	                  "WHERE id = %lld", expiring);

	/* Batch 2: the soonest two by run_at move, and the fourth by its
	 * expires_at; the due one is made ready as well. */
	s = t_str(c, "SELECT format('%s %s', promoted, skipped::text) FROM pgjobd.maintain(2)", NULL);
	ck_assert_str_eq(s, "4 false");
	free(s);
	assert_place(c, due, "live", "the first maintain(2)");
	assert_place(c, soon, "live", "the first maintain(2)");
	assert_place(c, expiring, "live", "the first maintain(2)");
	assert_place(c, soon2, "later", "the first maintain(2)");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.live WHERE id = %lld AND "
	                           "state = 'ready'", due), 1);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.live WHERE id = %lld AND "
	                           "state = 'scheduled'", soon), 1);
	st_assert_stats_match_rows(c, "the first maintain(2)");

	/* The next call: the third; the fifth is still two hours and more
	 * away. */
	s = t_str(c, "SELECT format('%s %s', promoted, skipped::text) FROM pgjobd.maintain(2)", NULL);
	ck_assert_str_eq(s, "1 false");
	free(s);
	assert_place(c, soon2, "live", "the second maintain(2)");
	assert_place(c, far, "later", "the second maintain(2)");
	s = t_str(c, "SELECT format('%s %s', promoted, skipped::text) FROM pgjobd.maintain(2)", NULL);
	ck_assert_str_eq(s, "0 false");
	free(s);
	st_assert_stats_match_rows(c, "the last maintain(2)");

	/* The lease takes the due one from pgjobd.live, as any other. */
	{
		PGresult *r = st_exchange(c, "{t}", "{16}", "[]");

		ck_assert_int_eq(PQntuples(r), 1);
		ck_assert_int_eq(atoll(PQgetvalue(r, 0, PQfnumber(r, "id"))), due);
		PQclear(r);
	}
	PQfinish(c);
}
END_TEST

/* cancel() of a job that maintain() is moving from pgjobd.later to
 * pgjobd.live finds it once the move commits (it looks in later first). */
START_TEST(test_cancel_while_maintain_moves_the_job_finds_it_in_live)
{
	PGconn *c = t_fresh_schema("pgjobd_lt_race", NULL), *m = t_connect();
	long long id = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + "
	                        "interval '1 day')", NULL);
	char sql[160];
	PGresult *r;

	/* The move, not yet committed: the job's row in later is locked. */
	d_run(c, "UPDATE pgjobd.later SET run_at = now() + interval '1 hour' WHERE id = %lld", id);
	PQclear(t_exec(m, "BEGIN", NULL));
	ck_assert_int_eq(t_int(m, "SELECT promoted FROM pgjobd.maintain()", NULL), 1);
	snprintf(sql, sizeof sql, "SELECT pgjobd.cancel(%lld)::int", id);
	ck_assert_int_eq(PQsendQuery(c, sql), 1);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
	         PQbackendPID(c));
	t_wait_value(m, "1", 20000, sql);
	PQclear(t_exec(m, "COMMIT", NULL));
	r = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));
	assert_place(c, id, "history", "cancel during the move");
	assert_shown(c, id, "cancelled");
	st_assert_stats_match_rows(c, "cancel during the move");
	PQfinish(m);
	PQfinish(c);
}
END_TEST

/* Poll once an hour: only the upkeep at connect, and the rounds it asks
 * for after a full batch, can move these jobs while the test waits. */
#define HOURLY TIMINGS("2s", "500ms", "1h")

START_TEST(test_a_daemon_empties_a_backlog_of_later_at_once_and_runs_what_is_due)
{
	char *cfg = d_config(HOURLY "[handler.true]\ncommand = /bin/true\n");
	PGconn *c = t_fresh_schema("pgjobd_lt_daemon", cfg);
	struct t_daemon *d;
	long long id;

	/* Every daemon was stopped while 10050 jobs of another queue and one
	 * of ours came due in pgjobd.later: more than one batch (10000). */
	PQclear(t_exec(c, "SELECT count(pgjobd.enqueue('x', queue => 'elsewhere', run_at => now() + "
	                  "interval '1 day')) FROM generate_series(1, 10050)", NULL));
	id = t_int(c, "SELECT pgjobd.enqueue('true', run_at => now() + interval '1 day')", NULL);
	assert_place(c, id, "later", "enqueue a day ahead");
	PQclear(t_exec(c, "UPDATE pgjobd.later SET run_at = now() - interval '1 hour' "
	                  "WHERE queue = 'elsewhere'", NULL));
	d_run(c, "UPDATE pgjobd.later SET run_at = now() WHERE id = %lld", id);

	d = d_start(cfg, NULL);
	/* Ours comes last by run_at, in the second batch. */
	d_wait_state(c, id, "done", JOB_MS);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.later", NULL), 0);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.live WHERE queue = 'elsewhere' AND "
	                          "state = 'ready'", NULL),
	                 10050);
	st_assert_stats_match_rows(c, "the daemon's upkeep");
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

/* Every function and view of the schema, with its grants. */
#define DEFINITIONS                                                                             \
	"SELECT (SELECT string_agg(pg_get_functiondef(p.oid) || ' ' || coalesce(p.proacl::text, ''), " \
	"E'\\n' ORDER BY p.oid::regprocedure::text) FROM pg_proc p "                                 \
	"WHERE p.pronamespace = 'pgjobd'::regnamespace AND p.prokind = 'f') || E'\\n' || "          \
	"(SELECT string_agg(r.relname || ' ' || pg_get_viewdef(r.oid) || ' ' || "                  \
	"coalesce(r.relacl::text, ''), E'\\n' ORDER BY r.relname) FROM pg_class r "                \
	"WHERE r.relnamespace = 'pgjobd'::regnamespace AND r.relkind = 'v')"
#define JOBS                                                                                  \
	"SELECT string_agg(format('%s %s %s %s %s', id, state, run_at, idempotency_key, payload), " \
	"E'\\n' ORDER BY id) FROM pgjobd.jobs"
#define STATS "SELECT format('%s %s %s', ready, scheduled, cancelled) FROM pgjobd.queue_stats"

START_TEST(test_downgrade_to_6_and_back_keeps_every_job_and_version_6_word_for_word)
{
	PGconn *c;
	char *def6, *jobs, *stats, *s;
	long long far;

	/* The definitions of a database made at version 6. */
	t_use_fresh_db("pgjobd_lt_v6");
	t_migrate(NULL, "6", "schema version 6\n");
	c = t_connect();
	def6 = t_str(c, DEFINITIONS, NULL);
	PQfinish(c);

	c = t_fresh_schema("pgjobd_lt_down", NULL);
	far = t_int(c, "SELECT pgjobd.enqueue('t', '{\"a\": 1}', 'q', now() + interval '1 day', "
	               "idempotency_key => 'k')", NULL);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', '{}', 'q', now() + interval '1 hour')", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', '{}', 'q')", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.cancel(pgjobd.enqueue('t', '{}', 'q', now() + "
	                  "interval '2 days'))", NULL));
	jobs = t_str(c, JOBS, NULL);
	stats = t_str(c, STATS, NULL);
	ck_assert_str_eq(stats, "1 2 1");

	t_migrate(NULL, "6", "schema version 6\n");
	ck_assert_ptr_null(t_str(c, "SELECT to_regclass('pgjobd.later')::text", NULL));
	ck_assert_ptr_null(t_str(c, "SELECT to_regclass('pgjobd.saved_definitions')::text", NULL));
	ck_assert_str_eq((s = t_str(c, DEFINITIONS, NULL)), def6);
	free(s);
	ck_assert_str_eq((s = t_str(c, JOBS, NULL)), jobs);
	free(s);
	ck_assert_str_eq((s = t_str(c, STATS, NULL)), stats);
	free(s);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.live WHERE id = %lld AND "
	                           "state = 'scheduled'", far), 1);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.live_counts WHERE state = 'later'",
	                       NULL),
	                 0);
	/* Version 6 finds the key in live. */
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.enqueue('t', '{}', 'q', idempotency_key => 'k')",
	                       NULL),
	                 far);

	t_migrate(NULL, NULL, T_MIGRATED);
	assert_place(c, far, "later", "--migrate back to 7");
	ck_assert_str_eq((s = t_str(c, JOBS, NULL)), jobs);
	free(s);
	ck_assert_str_eq((s = t_str(c, STATS, NULL)), stats);
	free(s);
	st_assert_stats_match_rows(c, "6 -> 7");
	free(def6);
	free(jobs);
	free(stats);
	PQfinish(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("later");
	TCase *tc = d_tcase(s, "later", 120);

	tcase_add_test(tc, test_a_job_due_beyond_the_horizon_waits_in_later_and_is_found_everywhere);
	tcase_add_test(tc, test_maintain_moves_what_comes_due_within_the_horizon_batch_by_batch);
	tcase_add_test(tc, test_cancel_while_maintain_moves_the_job_finds_it_in_live);
	tcase_add_test(tc, test_a_daemon_empties_a_backlog_of_later_at_once_and_runs_what_is_due);
	tcase_add_test(tc, test_downgrade_to_6_and_back_keeps_every_job_and_version_6_word_for_word);
	return d_run_suite(s);
}
