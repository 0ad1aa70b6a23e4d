/*
 * check_counts: the attempt counts of schema version 6 (sql/
 * 006_attempt_counts.sql) that "throughput per minute" of contrib/
 * monitoring.sql reads: they match the attempts after every kind of write
 * (the daemon's, the statements', the API's), maintain() sums them up and
 * forgets old minutes, the file's query gives what counting the attempts
 * gives, and --migrate --to 5 and back keeps everything.
 *
 * Every test makes its own database with the real binary's --migrate.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stmts.h"
#include "storelib.h"

#define DEADLINE_MS 20000

/* The counts, summed per minute and outcome, as one text. */
#define COUNTS                                                                              \
	"SELECT coalesce(string_agg(format('%s %s %s', m, o, n), E'\\n' ORDER BY m, o), '') "   \
	"FROM (SELECT minute AS m, outcome AS o, sum(n) AS n FROM pgjobd.attempt_counts "      \
	"GROUP BY 1, 2 HAVING sum(n) <> 0) s"
/* The same, counted from the attempts themselves. */
#define COUNTED                                                                             \
	"SELECT coalesce(string_agg(format('%s %s %s', m, o, n), E'\\n' ORDER BY m, o), '') "   \
	"FROM (SELECT date_trunc('minute', finished_at, 'UTC') AS m, outcome AS o, count(*) AS n " \
	"FROM pgjobd.attempts GROUP BY 1, 2) s"

static void
assert_counts_match(PGconn *c, const char *when)
{
	char *have = t_str(c, COUNTS, NULL), *want = t_str(c, COUNTED, NULL);

	ck_assert_msg(strcmp(have, want) == 0, "%s: attempt_counts\n%s\nbut the attempts say\n%s",
	              when, have, want);
	free(have);
	free(want);
}

/* Lease job ID alone (the others of its type are scheduled away first by
 * the caller) and write OUTCOME for it. */
static void
lease_and_finish(PGconn *c, long long id, const char *outcome)
{
	char json[256];
	char ids[32];
	PGresult *r = st_exchange(c, "{t}", "{1}", "[]");

	ck_assert_int_eq(PQntuples(r), 1);
	snprintf(ids, sizeof ids, "%lld", id);
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "id")), ids);
	snprintf(json, sizeof json, "[{\"id\": %lld, \"token\": %s, \"outcome\": \"%s\", \"delay_ms\": 0}]", id,
	         PQgetvalue(r, 0, PQfnumber(r, "token")), outcome);
	PQclear(r);
	r = st_exchange(c, "{}", "{}", json);
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
}

START_TEST(test_counts_match_the_attempts_after_every_kind_of_write)
{
	PGconn *c = t_fresh_schema("pgjobd_cn_writes", NULL);
	char *cfg, *s;
	struct t_daemon *d;
	long long a, b;

	/* The daemon: 4 done, 3 dead after a retry each (/bin/false, 2 attempts). */
	cfg = t_config("queues = q\nconcurrency = 4\npoll_interval = 200ms\n"
	               "[handler.ok]\ncommand = /bin/true\n"
	               "[handler.bad]\ncommand = /bin/false\nmax_attempts = 2\nbackoff = 10ms\n");
	PQclear(t_exec(c, "SELECT pgjobd.enqueue(CASE WHEN i <= 4 THEN 'ok' ELSE 'bad' END, "
	                  "queue => 'q') FROM generate_series(1, 7) i", NULL));
	d = t_daemon_start(cfg, NULL);
	t_wait_value(c, "7", DEADLINE_MS,
	             "SELECT count(*) FROM pgjobd.jobs WHERE state IN ('done', 'dead')");
	ck_assert_int_eq(t_daemon_stop(d), 0);
	unlink(cfg);
	free(cfg);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 4 + 3 * 2);
	assert_counts_match(c, "after the daemon");

	/* The statements: a retry that stays live, then done; a lost lease. */
	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	lease_and_finish(c, a, "retry");
	assert_counts_match(c, "after a retry");
	lease_and_finish(c, a, "done");
	assert_counts_match(c, "after its move to history");
	b = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	PQclear(st_exchange(c, "{t}", "{1}", "[]"));
	{
		char ids[32];

		snprintf(ids, sizeof ids, "%lld", b);
		PQclear(t_exec(c, "UPDATE pgjobd.live SET lease_expires_at = now() - interval '1 s' "
		                  "WHERE id = $1", ids, NULL));
		PQclear(t_exec(c, stmt_rescue, "{q}", "{t}", "{1}", NULL));
		ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = $1 "
		                          "AND outcome = 'lost'", ids, NULL), 1);
		assert_counts_match(c, "after a rescue (lost, dead)");
		/* The API: retry the dead job (its attempts come back live). */
		ck_assert_int_eq(t_int(c, "SELECT pgjobd.retry($1)::int", ids, NULL), 1);
		assert_counts_match(c, "after pgjobd.retry");
		/* ... and cancel it while it runs: a cancelled attempt. */
		PQclear(st_exchange(c, "{t}", "{1}", "[]"));
		ck_assert_int_eq(t_int(c, "SELECT pgjobd.cancel($1)::int", ids, NULL), 1);
		assert_counts_match(c, "after pgjobd.cancel of a running job");
	}
	/* maintain(): an expiry (a job that had a retry), then the sums. */
	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', expires_at => now() + "
	             "interval '1 h')", NULL);
	lease_and_finish(c, a, "retry");
	PQclear(t_exec(c, "UPDATE pgjobd.live SET expires_at = now() - interval '1 s'", NULL));
	ck_assert_int_eq(t_int(c, "SELECT expired FROM pgjobd.maintain()", NULL), 1);
	assert_counts_match(c, "after maintain() (an expiry, the sums)");
	/* Summed up: one row per minute and outcome. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempt_counts", NULL),
	                 t_int(c, "SELECT count(DISTINCT (date_trunc('minute', finished_at, 'UTC'), "
	                          "outcome)) FROM pgjobd.attempts", NULL));
	/* 10 by the daemon; a retry and done, lost, cancelled, a retry. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 15);
	/* A reader sees them. */
	PQclear(t_exec(c, "SET ROLE pgjobd_reader", NULL));
	s = t_str(c, "SELECT sum(n)::text FROM pgjobd.attempt_counts", NULL);
	PQclear(t_exec(c, "RESET ROLE", NULL));
	ck_assert_str_eq(s, "15");
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_maintain_sums_the_deltas_and_forgets_minutes_after_7_days)
{
	PGconn *c = t_fresh_schema("pgjobd_cn_maintain", NULL), *holder;
	char *s;

	PQclear(t_exec(c, "INSERT INTO pgjobd.attempt_counts VALUES "
	                  "('2026-01-01 10:00Z', 'done', 3), ('2026-01-01 10:00Z', 'done', 4), "
	                  "('2026-01-01 10:00Z', 'retry', 2), ('2026-01-01 10:00Z', 'retry', -2), "
	                  "(date_trunc('minute', now(), 'UTC'), 'done', 5), "
	                  "(date_trunc('minute', now(), 'UTC'), 'done', 1), "
	                  "(date_trunc('minute', now() - interval '6 days 23 hours', 'UTC'), 'dead', 1)",
	                  NULL));
	/* Another session holds the upkeep's lock: this call skips, changes nothing. */
	holder = t_connect();
	PQclear(t_exec(holder, "BEGIN", NULL));
	PQclear(t_exec(holder, "SELECT pg_advisory_xact_lock(1885502308, 0)", NULL));
	ck_assert_str_eq((s = t_str(c, "SELECT skipped::text FROM pgjobd.maintain()", NULL)), "true");
	free(s);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempt_counts", NULL), 7);
	PQclear(t_exec(holder, "COMMIT", NULL));
	PQfinish(holder);

	ck_assert_str_eq((s = t_str(c, "SELECT skipped::text FROM pgjobd.maintain()", NULL)), "false");
	free(s);
	/* The old minute is gone, the zero sum dropped, the rest one row each. */
	s = t_str(c, "SELECT string_agg(format('%s %s', outcome, n), ',' ORDER BY minute) "
	             "FROM pgjobd.attempt_counts", NULL);
	ck_assert_str_eq(s, "dead 1,done 6");
	free(s);
	PQfinish(c);
}
END_TEST

/* The query under "== throughput per minute" in contrib/monitoring.sql. */
static char *
throughput_query(void)
{
	const char *dir = getenv("PGJOBD_SRCDIR");
	char path[4096];
	FILE *f;
	char *text, *at, *end;
	long n;

	snprintf(path, sizeof path, "%s/contrib/monitoring.sql", dir ? dir : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: cannot open", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	ck_assert_int_eq((long)fread(text, 1, (size_t)n, f), n);
	fclose(f);
	at = strstr(text, "\\echo '== throughput per minute");
	ck_assert_msg(at != NULL, "no throughput query in %s", path);
	at = strchr(at, '\n') + 1;
	end = strstr(at, "\\echo");
	ck_assert_msg(end != NULL, "the throughput query is the last of %s", path);
	*end = '\0';
	end = strrchr(at, ';');
	ck_assert_msg(end != NULL, "the throughput query has no ';'");
	*end = '\0';
	memmove(text, at, strlen(at) + 1);
	return text;
}

START_TEST(test_the_monitoring_query_says_what_counting_the_attempts_says)
{
	PGconn *c = t_fresh_schema("pgjobd_cn_query", NULL);
	char *q = throughput_query(), *have, *want, *sql;

	/* Attempts in the last 70 minutes, every outcome, in both tables. */
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => 'q') FROM generate_series(1, 200)",
	               NULL));
	PQclear(t_exec(c, "INSERT INTO pgjobd.attempts (job_id, attempt, worker, started_at, "
	                  "finished_at, outcome) SELECT id, 1, 'w', now() - id * interval '21 s', "
	                  "now() - id * interval '21 s', (ARRAY['done', 'retry', 'dead', 'lost'])"
	                  "[1 + id % 4] FROM pgjobd.jobs", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'done', attempts = 1, finished_at = now() "
	                  "WHERE id % 3 = 0", NULL));
	sql = malloc(strlen(q) + 256);
	sprintf(sql, "SELECT string_agg(format('%%s %%s %%s %%s %%s', minute, done, retried, dead, "
	             "lost), E'\\n' ORDER BY minute) FROM (%s) x", q);
	have = t_str(c, sql, NULL);
	want = t_str(c, "SELECT string_agg(format('%s %s %s %s %s', minute, done, retried, dead, "
	                "lost), E'\\n' ORDER BY minute) FROM (SELECT date_trunc('minute', "
	                "finished_at, 'UTC') AS minute, "
	                "count(*) FILTER (WHERE outcome = 'done') AS done, "
	                "count(*) FILTER (WHERE outcome = 'retry') AS retried, "
	                "count(*) FILTER (WHERE outcome = 'dead') AS dead, "
	                "count(*) FILTER (WHERE outcome = 'lost') AS lost FROM pgjobd.attempts "
	                "WHERE date_trunc('minute', finished_at, 'UTC') > now() - interval '1 hour' "
	                "GROUP BY 1) x", NULL);
	ck_assert_ptr_nonnull(have);
	ck_assert_msg(strcmp(have, want) == 0, "monitoring.sql says\n%s\nthe attempts say\n%s",
	              have, want);
	ck_assert_int_ge(t_int(c, "SELECT count(DISTINCT date_trunc('minute', finished_at)) "
	                          "FROM pgjobd.attempts WHERE finished_at > now() - interval '1 hour'",
	                       NULL), 59);
	/* It reads the counts, never an attempts table. */
	sprintf(sql, "EXPLAIN %s", q);
	{
		PGresult *r = t_exec(c, sql, NULL);

		for (int i = 0; i < PQntuples(r); i++)
			ck_assert_msg(strstr(PQgetvalue(r, i, 0), "attempt_history") == NULL &&
			                  strstr(PQgetvalue(r, i, 0), "live_attempts") == NULL,
			              "the query reads an attempts table: %s", PQgetvalue(r, i, 0));
		PQclear(r);
	}
	free(sql);
	free(have);
	free(want);
	free(q);
	PQfinish(c);
}
END_TEST

#define JOBS                                                                                \
	"SELECT string_agg(format('%s %s %s', id, state, attempts), ',' ORDER BY id) || ' / ' || " \
	"(SELECT string_agg(format('%s %s', job_id, outcome), ',' ORDER BY id) "                  \
	"FROM pgjobd.attempts) FROM pgjobd.jobs"
#define MAINTAIN_DEF                                                                        \
	"SELECT pg_get_functiondef(p.oid) || ' ' || p.proacl::text FROM pg_proc p "               \
	"WHERE p.oid = 'pgjobd.maintain(int)'::regprocedure"

START_TEST(test_downgrade_to_5_and_back_keeps_the_jobs_and_recounts)
{
	PGconn *c;
	char *jobs, *s, *def5;
	long long a;

	/* maintain() of a database made at version 5. */
	t_use_fresh_db("pgjobd_cn_v5");
	t_migrate(NULL, "5", "schema version 5\n");
	c = t_connect();
	def5 = t_str(c, MAINTAIN_DEF, NULL);
	PQfinish(c);

	c = t_fresh_schema("pgjobd_cn_down", NULL);
	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	lease_and_finish(c, a, "retry");
	lease_and_finish(c, a, "dead");
	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	lease_and_finish(c, a, "retry");
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + "
	                  "interval '1 day')", NULL));
	jobs = t_str(c, JOBS, NULL);

	t_migrate(NULL, "5", "schema version 5\n");
	ck_assert_ptr_null(t_str(c, "SELECT to_regclass('pgjobd.attempt_counts')::text", NULL));
	ck_assert_ptr_null(t_str(c, "SELECT to_regprocedure('pgjobd._maintain_storage(int)')::text",
	                         NULL));
	ck_assert_str_eq((s = t_str(c, JOBS, NULL)), jobs);
	free(s);
	/* maintain() is version 5's, word for word, grants included. */
	ck_assert_str_eq((s = t_str(c, MAINTAIN_DEF, NULL)), def5);
	free(s);
	ck_assert_str_eq((s = t_str(c, "SELECT skipped::text FROM pgjobd.maintain()", NULL)), "false");
	free(s);
	/* Attempts written at version 5 are not counted by anything ... */
	lease_and_finish(c, a, "done");

	/* ... and back at 6 the counts are made again from the attempts. */
	t_migrate(NULL, NULL, T_MIGRATED);
	ck_assert_str_ne((s = t_str(c, JOBS, NULL)), jobs);
	free(s);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 4);
	assert_counts_match(c, "after 6 -> 5 -> 6");
	ck_assert_str_eq((s = t_str(c, "SELECT skipped::text FROM pgjobd.maintain()", NULL)), "false");
	free(s);
	assert_counts_match(c, "after 6 -> 5 -> 6 and maintain()");
	free(jobs);
	free(def5);
	PQfinish(c);
}
END_TEST

static Suite *
counts_suite(void)
{
	Suite *s = suite_create("counts");
	TCase *tc = tcase_create("counts");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_counts_match_the_attempts_after_every_kind_of_write);
	tcase_add_test(tc, test_maintain_sums_the_deltas_and_forgets_minutes_after_7_days);
	tcase_add_test(tc, test_the_monitoring_query_says_what_counting_the_attempts_says);
	tcase_add_test(tc, test_downgrade_to_5_and_back_keeps_the_jobs_and_recounts);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(counts_suite());
}
