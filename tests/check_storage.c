/*
 * check_storage: the storage of schema version 3 (sql/003_storage.sql)
 * and the daemon's statements over it (the sql/stmt files, sent here as the
 * daemon sends them): live and history kept apart, retention by dropping
 * partitions, expiry, idempotency across the move to history, and
 * upgrading and downgrading with --migrate [--to N].  The plans at scale
 * are check_plans'.
 *
 * Every test makes its own database with the real binary's --migrate.
 * Nothing sleeps in place of synchronisation.
 */
#include "testlib.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stmts.h"
#include "storelib.h"

#define DEADLINE_MS 20000
#define LOCK_ADVISORY "1885502308" /* pgjobd's advisory lock class (maintain, keys) */

/* The ids of the leases (kind 'l') in R, sorted, comma-separated. */
static char *
leased(PGresult *r)
{
	static char buf[512];
	long long ids[64];
	int n = 0;

	for (int i = 0; i < PQntuples(r) && n < 64; i++)
		if (strcmp(PQgetvalue(r, i, PQfnumber(r, "kind")), "l") == 0)
			ids[n++] = strtoll(PQgetvalue(r, i, PQfnumber(r, "id")), NULL, 10);
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && ids[k - 1] > ids[k]; k--) {
			long long t = ids[k];
			ids[k] = ids[k - 1];
			ids[k - 1] = t;
		}
	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%lld", i ? "," : "", ids[i]);
	return buf;
}

/* The outcome JSON for job ID's current lease. */
static char *
outcome(PGconn *c, long long id, const char *what, int delay_ms)
{
	char ids[32], d[32];

	snprintf(ids, sizeof ids, "%lld", id);
	snprintf(d, sizeof d, "%d", delay_ms);
	return t_str(c,
	             "SELECT json_build_array(json_build_object('id', id, 'token', lease_token, "
	             "'outcome', $2::text, 'delay_ms', $3::int, 'exit_code', 0, 'result', 'r', "
	             "'error', 'e'))::text FROM pgjobd.jobs WHERE id = $1::bigint",
	             ids, what, d, NULL);
}

/* Assert that SQL (with parameters, NULL-terminated) returns WANT. */
static void
assert_sql_str(PGconn *c, const char *want, const char *sql, const char *p1)
{
	char *got = t_str(c, sql, p1, NULL);

	ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s, expected %s", sql,
	              got ? got : "NULL", want);
	free(got);
}

static void
assert_error(PGresult *r, const char *sqlstate, const char *needle, const char *what)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorMessage(r);

	ck_assert_msg(st && strcmp(st, sqlstate) == 0, "%s: SQLSTATE %s, expected %s: %s", what,
	              st ? st : "(none)", sqlstate, msg);
	ck_assert_msg(strstr(msg, needle), "%s: message does not name %s: %s", what, needle, msg);
	PQclear(r);
}

/* ------------------------------------------------------------ the lease */

START_TEST(test_lease_takes_due_jobs_never_future_or_expired_ones)
{
	PGconn *c = t_fresh_schema("pgjobd_st_lease", NULL);
	long long ready, future, due, expired;
	PGresult *r;
	char want[96], *s;

	ready = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	/* At a higher priority than the ready one, an hour ahead: never leased. */
	future = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', priority => -10, "
	                  "run_at => now() + interval '1 hour')", NULL);
	/* Scheduled when written, due by now (not yet promoted by maintain). */
	due = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval '1 hour')",
	            NULL);
	{
		char ids[32];

		snprintf(ids, sizeof ids, "%lld", due);
		PQclear(t_exec(c, "UPDATE pgjobd.live SET run_at = now() - interval '1 s' "
		                  "WHERE id = $1::bigint", ids, NULL));
	}
	expired = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', "
	                   "expires_at => now() + interval '1 hour')", NULL);
	{
		char ids[32];

		snprintf(ids, sizeof ids, "%lld", expired);
		PQclear(t_exec(c, "UPDATE pgjobd.live SET expires_at = now() - interval '1 s' "
		                  "WHERE id = $1::bigint", ids, NULL));
	}
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.live WHERE state = 'scheduled'", NULL),
	                 2);
	r = st_exchange(c, "{t}", "{10}", "[]");
	snprintf(want, sizeof want, "%lld,%lld", ready, due);
	ck_assert_str_eq(leased(r), want);
	PQclear(r);
	s = t_str(c, "SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM pgjobd.jobs", NULL);
	snprintf(want, sizeof want, "%lld:running,%lld:ready,%lld:running,%lld:expired", ready,
	         future, due, expired);
	ck_assert_str_eq(s, want);
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_outcomes_move_finished_jobs_and_their_attempts_to_history)
{
	PGconn *c = t_fresh_schema("pgjobd_st_outcome", NULL);
	long long id = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'k')",
	                     NULL);
	char *o, *stale, *s;
	PGresult *r;

	PQclear(st_exchange(c, "{t}", "{1}", "[]"));
	o = outcome(c, id, "retry", 0);
	PQclear(st_exchange(c, "{}", "{}", o));
	free(o);
	r = st_exchange(c, "{t}", "{1}", "[]");
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
	stale = outcome(c, id, "done", 0);
	o = outcome(c, id, "done", 0);
	r = st_exchange(c, "{}", "{}", o);
	ck_assert_int_eq(PQntuples(r), 1); /* accepted: one 'o' row */
	ck_assert_str_eq(PQgetvalue(r, 0, PQfnumber(r, "kind")), "o");
	PQclear(r);
	/* The same outcome again (a resend): the token is gone, nothing changes. */
	r = st_exchange(c, "{}", "{}", stale);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	free(o);
	free(stale);
	s = t_str(c,
	          "SELECT format('live=%s history=%s live_attempts=%s attempt_history=%s "
	          "view=%s attempts=%s stats_done=%s', "
	          "(SELECT count(*) FROM pgjobd.live), "
	          "(SELECT string_agg(state || '/' || attempts || '/' || result, ',') FROM pgjobd.history), "
	          "(SELECT count(*) FROM pgjobd.live_attempts), "
	          "(SELECT string_agg(attempt || ':' || outcome, ',' ORDER BY attempt) "
	          "   FROM pgjobd.attempt_history), "
	          "(SELECT string_agg(state || ' ' || idempotency_key, ',') FROM pgjobd.jobs), "
	          "(SELECT count(*) FROM pgjobd.attempts), "
	          "(SELECT done FROM pgjobd.queue_stats WHERE queue = 'q'))",
	          NULL);
	ck_assert_str_eq(s, "live=0 history=done/2/r live_attempts=0 attempt_history=1:retry,2:done "
	                    "view=done k attempts=2 stats_done=1");
	free(s);
	/* Its purge day: the day after finished_at + 7 days (UTC). */
	ck_assert_int_eq(t_int(c, "SELECT purge_on - ((finished_at + interval '7 days') "
	                          "AT TIME ZONE 'UTC')::date FROM pgjobd.jobs", NULL), 1);
	PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------- maintain */

START_TEST(test_maintain_promotes_expires_and_only_one_caller_works_at_a_time)
{
	PGconn *c = t_fresh_schema("pgjobd_st_maintain", NULL), *holder;
	long long due, exp;
	char ids[32], *s;

	due = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', run_at => now() + interval '1 h')",
	            NULL);
	snprintf(ids, sizeof ids, "%lld", due);
	PQclear(t_exec(c, "UPDATE pgjobd.live SET run_at = now() - interval '1 s' WHERE id = $1::bigint",
	               ids, NULL));
	exp = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', expires_at => now() + interval '1 h')",
	            NULL);
	snprintf(ids, sizeof ids, "%lld", exp);
	PQclear(t_exec(c, "UPDATE pgjobd.live SET expires_at = now() - interval '1 s' "
	                  "WHERE id = $1::bigint", ids, NULL));
	/* Counted as expired before maintain moves it, and after. */
	ck_assert_int_eq(t_int(c, "SELECT expired FROM pgjobd.queue_stats", NULL), 1);

	holder = t_connect();
	PQclear(t_exec(holder, "BEGIN", NULL));
	PQclear(t_exec(holder, "SELECT pg_advisory_xact_lock(" LOCK_ADVISORY ", 0)", NULL));
	s = t_str(c, stmt_maintain, "1000", NULL);
	ck_assert_str_eq(s, "0"); /* promoted: nothing, skipped */
	free(s);
	assert_sql_str(c, "true", "SELECT skipped::text FROM pgjobd.maintain()", NULL);
	PQclear(t_exec(holder, "COMMIT", NULL));
	PQfinish(holder);

	s = t_str(c, "SELECT format('%s %s %s', promoted, expired, skipped) FROM pgjobd.maintain()",
	          NULL);
	ck_assert_str_eq(s, "1 1 f");
	free(s);
	{
		char dids[32];

		snprintf(dids, sizeof dids, "%lld", due);
		s = t_str(c,
		          "SELECT format('%s / %s / %s', (SELECT state FROM pgjobd.live WHERE id = $1::bigint), "
		          "(SELECT state || ' ' || (finished_at = expires_at) FROM pgjobd.history "
		          " WHERE id = $2::bigint), (SELECT expired FROM pgjobd.queue_stats))",
		          dids, ids, NULL);
		ck_assert_str_eq(s, "ready / expired true / 1");
		free(s);
	}
	/* An expired job retried runs like a dead one retried: no expiry left. */
	assert_sql_str(c, "true", "SELECT pgjobd.retry($1::bigint)::text", ids);
	s = t_str(c, "SELECT format('%s %s %s', state, attempts, expires_at IS NULL) "
	             "FROM pgjobd.jobs WHERE id = $1::bigint", ids, NULL);
	ck_assert_str_eq(s, "ready 0 t");
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_refuses_expires_at_not_after_run_at)
{
	PGconn *c = t_fresh_schema("pgjobd_st_expires", NULL);

	assert_error(t_exec_any(c, "SELECT pgjobd.enqueue('t', expires_at => now())", NULL), "22023",
	             "expires_at", "expires_at now");
	assert_error(t_exec_any(c, "SELECT pgjobd.enqueue('t', run_at => now() + interval '2 h', "
	                           "expires_at => now() + interval '1 h')", NULL),
	             "22023", "expires_at", "expires_at before run_at");
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 0);
	PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------ retention */

/* Make a day of history that is due today, as time would have: a
 * partition for yesterday's purge day holding N finished jobs with one
 * attempt each. */
static void
make_due_day(PGconn *c, const char *n)
{
	PQclear(t_exec(c,
	               "DO $$ DECLARE d date := (now() AT TIME ZONE 'UTC')::date - 1; BEGIN "
	               "EXECUTE format('CREATE TABLE pgjobd.%I PARTITION OF pgjobd.history "
	               "FOR VALUES FROM (%L) TO (%L)', 'history_' || to_char(d, 'YYYYMMDD'), d, d + 1); "
	               "EXECUTE format('CREATE TABLE pgjobd.%I PARTITION OF pgjobd.attempt_history "
	               "FOR VALUES FROM (%L) TO (%L)', 'attempt_history_' || to_char(d, 'YYYYMMDD'), "
	               "d, d + 1); END $$",
	               NULL));
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.history (id, queue, type, payload, state, priority, run_at, "
	               "attempts, created_at, finished_at, purge_on) "
	               "SELECT nextval('pgjobd.jobs_id_seq'), 'q', 't', '{}', 'done', 0, now(), 1, "
	               "now(), now(), (now() AT TIME ZONE 'UTC')::date - 1 "
	               "FROM generate_series(1, $1::int)",
	               n, NULL));
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.attempt_history (job_id, attempt, finished_at, outcome, purge_on) "
	               "SELECT id, 1, now(), 'done', purge_on FROM pgjobd.history "
	               "WHERE purge_on < (now() AT TIME ZONE 'UTC')::date", NULL));
}

START_TEST(test_retention_drops_a_due_day_whole_and_keeps_the_others)
{
	PGconn *c = t_fresh_schema("pgjobd_st_retention", NULL);
	long long kept = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	char *o, *s;

	PQclear(st_exchange(c, "{t}", "{1}", "[]"));
	o = outcome(c, kept, "done", 0);
	PQclear(st_exchange(c, "{}", "{}", o));
	free(o);
	make_due_day(c, "200000");
	ck_assert_int_eq(t_int(c, "SELECT done FROM pgjobd.queue_stats", NULL), 200001);
	s = t_str(c, "SELECT format('%s %s', dropped, skipped) FROM pgjobd.maintain()", NULL);
	ck_assert_str_eq(s, "1 f");
	free(s);
	/* Dropped whole (its cost is a DROP whatever it held: make bench
	 * times a day of a million): both partitions of the day are gone. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pg_inherits i JOIN pg_class p "
	                          "ON p.oid = i.inhparent WHERE p.relname IN ('history', "
	                          "'attempt_history') AND i.inhrelid::regclass::text LIKE '%' || "
	                          "to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYYMMDD')", NULL), 0);
	s = t_str(c, "SELECT format('%s %s %s', (SELECT string_agg(id::text, ',') FROM pgjobd.jobs), "
	             "(SELECT count(*) FROM pgjobd.attempts), (SELECT done FROM pgjobd.queue_stats))",
	          NULL);
	{
		char want[64];

		snprintf(want, sizeof want, "%lld 1 1", kept);
		ck_assert_str_eq(s, want);
	}
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_retention_step_never_waits_long_for_a_reader_and_is_done_later)
{
	PGconn *c = t_fresh_schema("pgjobd_st_reader", NULL), *reader, *q;
	char *s;

	make_due_day(c, "1000");
	/* A long reader of the history holds a lock on every partition. */
	reader = t_connect();
	PQclear(t_exec(reader, "BEGIN", NULL));
	ck_assert_int_eq(t_int(reader, "SELECT count(*) FROM pgjobd.jobs", NULL), 1000);
	/* Returns while the reader still holds its lock (it gives up after
	 * its lock_timeout of 50 ms), having dropped nothing. */
	s = t_str(c, "SELECT format('%s %s', dropped, skipped) FROM pgjobd.maintain()", NULL);
	ck_assert_str_eq(s, "0 f");
	free(s);
	/* Meanwhile enqueue and the lease go on. */
	q = t_connect();
	ck_assert_int_gt(t_int(q, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL), 0);
	PQclear(st_exchange(q, "{t}", "{1}", "[]"));
	PQclear(t_exec(reader, "COMMIT", NULL));
	s = t_str(c, "SELECT format('%s %s', dropped, skipped) FROM pgjobd.maintain()", NULL);
	ck_assert_str_eq(s, "1 f");
	free(s);
	PQfinish(reader);
	PQfinish(q);
	PQfinish(c);
}
END_TEST

START_TEST(test_set_retention_is_checked_shown_and_makes_partitions_ahead)
{
	PGconn *c = t_fresh_schema("pgjobd_st_setret", NULL);
	char *s;

	s = t_str(c, "SELECT string_agg(state || '=' || keep, ' ' ORDER BY state) FROM pgjobd.retention",
	          NULL);
	ck_assert_str_eq(s, "cancelled=30 days dead=30 days done=7 days expired=30 days");
	free(s);
	assert_error(t_exec_any(c, "SELECT pgjobd.set_retention('ready', '1 day')", NULL), "22023",
	             "state", "state ready");
	assert_error(t_exec_any(c, "SELECT pgjobd.set_retention('done', '-1 day')", NULL), "22023",
	             "keep", "negative keep");
	assert_error(t_exec_any(c, "SELECT pgjobd.set_retention('done', NULL)", NULL), "22023",
	             "keep", "NULL keep");
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pg_class WHERE relname = 'history_' || "
	                          "to_char((now() AT TIME ZONE 'UTC')::date + 91, 'YYYYMMDD')", NULL),
	                 0);
	PQclear(t_exec(c, "SELECT pgjobd.set_retention('done', '90 days')", NULL));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pg_class WHERE relname = 'history_' || "
	                          "to_char((now() AT TIME ZONE 'UTC')::date + 91, 'YYYYMMDD')", NULL),
	                 1);
	assert_sql_str(c, "90 days", "SELECT keep::text FROM pgjobd.retention WHERE state = 'done'",
	               NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_a_job_finishing_without_its_partition_lands_in_default_then_moves)
{
	PGconn *c = t_fresh_schema("pgjobd_st_default", NULL);
	long long id = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q')", NULL);
	char *o, *s;

	/* The partition its purge day needs is missing (as if maintain had not
	 * run for weeks). */
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	PQclear(t_exec(c,
	               "DO $$ DECLARE d text := to_char(((now() + interval '7 days') AT TIME ZONE "
	               "'UTC')::date + 1, 'YYYYMMDD'); BEGIN "
	               "EXECUTE format('DROP TABLE pgjobd.%I', 'history_' || d); "
	               "EXECUTE format('DROP TABLE pgjobd.%I', 'attempt_history_' || d); END $$",
	               NULL));
	PQclear(st_exchange(c, "{t}", "{1}", "[]"));
	o = outcome(c, id, "done", 0);
	PQclear(st_exchange(c, "{}", "{}", o));
	free(o);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.history_default", NULL), 1);
	/* maintain() makes the missing day (with the days beyond --migrate's). */
	ck_assert_int_ge(t_int(c, "SELECT created FROM pgjobd.maintain()", NULL), 1);
	s = t_str(c, "SELECT format('%s %s %s', (SELECT tableoid::regclass::text FROM pgjobd.history), "
	             "(SELECT count(*) FROM pgjobd.attempt_history_default), "
	             "(SELECT done FROM pgjobd.queue_stats))", NULL);
	ck_assert_msg(strncmp(s, "pgjobd.history_2", 16) == 0 && strstr(s, " 0 1"), "%s", s);
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_queue_stats_counters_match_the_rows_after_every_kind_of_write)
{
	PGconn *c = t_fresh_schema("pgjobd_st_counts", NULL);
	PGresult *r;
	char *o;

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => q, run_at => CASE WHEN i % 3 = 0 "
	                  "THEN now() + interval '1 h' END, expires_at => CASE WHEN i % 5 = 0 THEN "
	                  "now() + interval '2 h' END) FROM generate_series(1, 60) i, "
	                  "unnest('{q,other}'::text[]) q", NULL));
	st_assert_stats_match_rows(c, "enqueue");
	r = st_exchange(c, "{t}", "{8}", "[]");
	PQclear(r);
	st_assert_stats_match_rows(c, "a lease");
	o = t_str(c, "SELECT json_agg(json_build_object('id', id, 'token', lease_token, 'outcome', "
	             "CASE id % 4 WHEN 0 THEN 'done' WHEN 1 THEN 'dead' WHEN 2 THEN 'retry' "
	             "ELSE 'release' END, 'delay_ms', CASE WHEN id % 8 = 2 THEN 60000 ELSE 0 END))::text "
	             "FROM pgjobd.live WHERE state = 'running'", NULL);
	PQclear(st_exchange(c, "{t}", "{3}", o));
	free(o);
	st_assert_stats_match_rows(c, "outcomes of every kind and a lease");
	PQclear(t_exec(c, "SELECT pgjobd.cancel(id) FROM pgjobd.jobs WHERE id % 7 = 0", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.retry(id) FROM pgjobd.jobs WHERE id % 2 = 0", NULL));
	st_assert_stats_match_rows(c, "cancel and retry");
	PQclear(t_exec(c, "UPDATE pgjobd.live SET expires_at = now() - interval '1 s' "
	                  "WHERE expires_at IS NOT NULL AND state <> 'running'", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.live SET run_at = now() - interval '1 s' "
	                  "WHERE state = 'scheduled' AND id % 2 = 1", NULL));
	st_assert_stats_match_rows(c, "jobs expiring and scheduled ones coming due");
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	st_assert_stats_match_rows(c, "maintain");
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'done', finished_at = now() "
	                  "WHERE id % 5 = 1 AND state = 'ready'", NULL));
	PQclear(t_exec(c, "DELETE FROM pgjobd.jobs WHERE id % 9 = 0", NULL));
	st_assert_stats_match_rows(c, "writes to the view");
	PQclear(t_exec(c, "UPDATE pgjobd.live SET lease_expires_at = now() - interval '1 s' "
	                  "WHERE state = 'running'", NULL));
	PQclear(t_exec(c, stmt_rescue, "{q}", "{t}", "{1}", NULL));
	st_assert_stats_match_rows(c, "a rescue");
	PQclear(t_exec(c, "TRUNCATE pgjobd.live, pgjobd.history", NULL));
	st_assert_stats_match_rows(c, "TRUNCATE");
	PQfinish(c);
}
END_TEST

/* The rows of both count tables for queue Q, each with the transaction
 * that wrote it. */
#define COUNT_ROWS(q)                                                                     \
	"SELECT coalesce(string_agg(format('%s %s %s %s', t, state, n, x), ',' ORDER BY t, state, " \
	"x), '') FROM (SELECT 'l' AS t, state, n, xmin::text AS x FROM pgjobd.live_counts "        \
	"WHERE queue = '" q "' UNION ALL SELECT 'h', state, n, xmin::text FROM "                 \
	"pgjobd.history_counts WHERE queue = '" q "') r"

START_TEST(test_maintain_sums_up_only_the_count_groups_with_new_deltas)
{
	PGconn *c = t_fresh_schema("pgjobd_st_sums", NULL);
	char *a, *s;

	/* The partitions first, so that no job moves out of the DEFAULT one
	 * (two more deltas) in the calls below. */
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => q) FROM unnest('{a,a,a,b,b}'::text[]) q",
	               NULL));
	PQclear(t_exec(c, "SELECT pgjobd.cancel(min(id)) FROM pgjobd.live GROUP BY queue", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	/* One summed row per group. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.live_counts", NULL), 2);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.history_counts", NULL), 2);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM (SELECT summed FROM pgjobd.live_counts "
	                          "UNION ALL SELECT summed FROM pgjobd.history_counts) u "
	                          "WHERE NOT summed", NULL),
	                 0);
	a = t_str(c, COUNT_ROWS("a"), NULL);

	/* New deltas in queue b only: queue a's rows are not written again. */
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t', queue => 'b')", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.cancel(min(id)) FROM pgjobd.live WHERE queue = 'b'", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	ck_assert_str_eq((s = t_str(c, COUNT_ROWS("a"), NULL)), a);
	free(s);
	s = t_str(c, "SELECT string_agg(format('%s %s %s', state, n, summed), ',' ORDER BY state) "
	             "FROM (SELECT state, n, summed FROM pgjobd.live_counts WHERE queue = 'b' "
	             "UNION ALL SELECT state, n, summed FROM pgjobd.history_counts WHERE queue = 'b') r",
	          NULL);
	ck_assert_str_eq(s, "cancelled 2 t,ready 1 t");
	free(s);
	st_assert_stats_match_rows(c, "maintain after new deltas in one queue");
	free(a);
	PQfinish(c);
}
END_TEST

/* ---------------------------------------------------------- idempotency */

#define NCONC 8

/* The id the enqueue sent on C returns (waits for it). */
static long long
result_id(PGconn *c)
{
	int64_t deadline = t_now_ms() + DEADLINE_MS;
	PGresult *r;
	long long id;

	for (;;) {
		struct pollfd p = {PQsocket(c), POLLIN, 0};

		ck_assert(PQconsumeInput(c) == 1);
		if (!PQisBusy(c))
			break;
		ck_assert_msg(t_now_ms() < deadline, "an enqueue did not return");
		(void)poll(&p, 1, 20);
	}
	r = PQgetResult(c);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));
	return id;
}

/*
 * A job with a key finishes (its outcome commits, moving it to history)
 * while 8 sessions enqueue the same key: sent in the same instant as the
 * COMMIT, each lands before or after it.  Every one must get the job's id
 * and no second job may appear, in every round.
 */
START_TEST(test_idempotency_key_holds_while_its_job_finishes_and_moves)
{
	PGconn *c = t_fresh_schema("pgjobd_st_idem", NULL), *fin = t_connect(), *e[NCONC];

	for (int i = 0; i < NCONC; i++)
		e[i] = t_connect();
	for (int round = 0; round < 20; round++) {
		char key[32], *o;
		long long id;

		snprintf(key, sizeof key, "k%d", round);
		id = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => $1)", key,
		           NULL);
		PQclear(st_exchange(c, "{t}", "{1}", "[]"));
		o = outcome(c, id, round % 2 ? "done" : "dead", 0);
		PQclear(t_exec(fin, "BEGIN", NULL));
		PQclear(t_exec(fin, stmt_exchange, "w", "{q}", "{}", "{}", "100", "60000", o, NULL));
		free(o);
		for (int i = 0; i < NCONC; i++) {
			const char *params[1] = {key};

			ck_assert(PQsendQueryParams(e[i], "SELECT pgjobd.enqueue('t', queue => 'q', "
			                                  "idempotency_key => $1)",
			                            1, NULL, params, NULL, NULL, 0) == 1);
			if (i == NCONC / 2)
				ck_assert(PQsendQuery(fin, "COMMIT") == 1);
		}
		for (int i = 0; i < NCONC; i++)
			ck_assert_int_eq(result_id(e[i]), id);
		{
			PGresult *r;

			while ((r = PQgetResult(fin)) != NULL) {
				ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
				PQclear(r);
			}
		}
		ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key = $1",
		                       key, NULL),
		                 1);
		/* After the move, from history. */
		ck_assert_int_eq(t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', "
		                          "idempotency_key => $1)", key, NULL),
		                 id);
	}
	for (int i = 0; i < NCONC; i++)
		PQfinish(e[i]);
	PQfinish(fin);
	PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------ migration */

/* Every job of the database as one text: id, state, attempts, lease token,
 * payload, run_at, result and last_error, in id order; and the attempts. */
static char *
snapshot(PGconn *c)
{
	return t_str(c,
	             "SELECT (SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s:%s:%s', id, state, "
	             "attempts, lease_token, payload, run_at, result, last_error, idempotency_key), "
	             "E'\\n' ORDER BY id) FROM pgjobd.jobs) || E'\\n--\\n' || "
	             "(SELECT string_agg(format('%s:%s:%s:%s', id, job_id, attempt, outcome), ',' "
	             "ORDER BY id) FROM pgjobd.attempts)",
	             NULL);
}

/* Fill a version-1 or -2 schema: jobs in every state, a live lease, a
 * scheduled job, attempts, keys. */
static void
fill_old_schema(PGconn *c)
{
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t', jsonb_build_object('i', i), 'q', "
	               "CASE WHEN i % 7 = 5 THEN now() + interval '1 day' END, i % 3, NULL, "
	               "CASE WHEN i % 4 = 0 THEN 'key' || i END) FROM generate_series(1, 70) i",
	               NULL));
	PQclear(t_exec(c,
	               "UPDATE pgjobd.jobs SET state = 'running', attempts = 1, worker = 'w', "
	               "started_at = now(), lease_token = nextval('pgjobd.lease_token_seq'), "
	               "lease_expires_at = now() + interval '1 min' WHERE id % 7 = 1",
	               NULL));
	PQclear(t_exec(c,
	               "UPDATE pgjobd.jobs SET state = 'done', attempts = 1, result = 'ok', "
	               "started_at = now(), finished_at = now() WHERE id % 7 = 2",
	               NULL));
	PQclear(t_exec(c,
	               "UPDATE pgjobd.jobs SET state = 'dead', attempts = 3, last_error = 'boom', "
	               "finished_at = now() - interval '60 days' WHERE id % 7 = 3",
	               NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'cancelled', finished_at = now() "
	                  "WHERE id % 7 = 4", NULL));
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.attempts (job_id, attempt, worker, outcome) "
	               "SELECT id, a, 'w', CASE WHEN a < attempts THEN 'retry' ELSE state END "
	               "FROM pgjobd.jobs, generate_series(1, 3) a "
	               "WHERE state IN ('done', 'dead') AND a <= attempts",
	               NULL));
}

START_TEST(test_upgrade_from_version_1_keeps_every_job_in_every_state)
{
	PGconn *c;
	char *before, *after, *s;

	t_use_fresh_db("pgjobd_st_up");
	t_migrate(NULL, "1", "schema version 1\n");
	c = t_connect();
	fill_old_schema(c);
	before = snapshot(c);
	PQfinish(c);
	t_migrate(NULL, NULL, T_MIGRATED);
	c = t_connect();
	after = snapshot(c);
	ck_assert_str_eq(after, before);
	/* Each row is where it belongs now, and the lease still works. */
	s = t_str(c,
	          "SELECT format('live=%s history=%s later=%s old_dead_kept=%s', "
	          "(SELECT count(*) FROM pgjobd.live), (SELECT count(*) FROM pgjobd.history), "
	          "(SELECT count(*) FROM pgjobd.later WHERE state = 'scheduled'), "
	          "(SELECT count(*) FROM pgjobd.history WHERE state = 'dead'))",
	          NULL);
	/* The jobs scheduled a day ahead wait in pgjobd.later (version 7). */
	ck_assert_str_eq(s, "live=30 history=30 later=10 old_dead_kept=10");
	free(s);
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'key4')",
	                       NULL),
	                 4); /* a key of a cancelled job, remembered in history */
	s = t_str(c, "SELECT format('%s %s %s %s', ready, scheduled, running, done + dead + cancelled) "
	             "FROM pgjobd.queue_stats WHERE queue = 'q'", NULL);
	ck_assert_str_eq(s, "20 10 10 30");
	free(s);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

START_TEST(test_downgrade_3_to_1_and_back_keeps_every_live_job)
{
	PGconn *c = t_fresh_schema("pgjobd_st_down", NULL);
	char *before, *mid, *after;

	PQfinish(c);
	t_migrate(NULL, "1", "schema version 1\n");
	c = t_connect();
	fill_old_schema(c);
	PQfinish(c);
	t_migrate(NULL, NULL, T_MIGRATED);
	c = t_connect();
	before = snapshot(c);
	/* Down to 2 (types gone next), then 1: the same jobs in one table. */
	PQfinish(c);
	t_migrate(NULL, "2", "schema version 2\n");
	t_migrate(NULL, "1", "schema version 1\n");
	c = t_connect();
	mid = snapshot(c);
	ck_assert_str_eq(mid, before);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM information_schema.tables "
	                          "WHERE table_schema = 'pgjobd' AND table_name = 'jobs' "
	                          "AND table_type = 'BASE TABLE'", NULL),
	                 1);
	assert_sql_str(c, "1", "SELECT string_agg(version::text, ',') FROM pgjobd.migrations", NULL);
	ck_assert_int_gt(t_int(c, "SELECT pgjobd.enqueue('t')", NULL), 70);
	PQclear(t_exec(c, "DELETE FROM pgjobd.jobs WHERE id > 70", NULL));
	PQfinish(c);
	/* --to beyond the latest means the latest; back up to 3. */
	t_migrate(NULL, "9", T_MIGRATED);
	c = t_connect();
	after = snapshot(c);
	ck_assert_str_eq(after, before);
	free(before);
	free(mid);
	free(after);
	PQfinish(c);
}
END_TEST

static Suite *
storage_suite(void)
{
	Suite *s = suite_create("storage");
	TCase *tc = tcase_create("storage");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_lease_takes_due_jobs_never_future_or_expired_ones);
	tcase_add_test(tc, test_outcomes_move_finished_jobs_and_their_attempts_to_history);
	tcase_add_test(tc, test_maintain_promotes_expires_and_only_one_caller_works_at_a_time);
	tcase_add_test(tc, test_enqueue_refuses_expires_at_not_after_run_at);
	tcase_add_test(tc, test_retention_drops_a_due_day_whole_and_keeps_the_others);
	tcase_add_test(tc, test_retention_step_never_waits_long_for_a_reader_and_is_done_later);
	tcase_add_test(tc, test_set_retention_is_checked_shown_and_makes_partitions_ahead);
	tcase_add_test(tc, test_a_job_finishing_without_its_partition_lands_in_default_then_moves);
	tcase_add_test(tc, test_idempotency_key_holds_while_its_job_finishes_and_moves);
	tcase_add_test(tc, test_queue_stats_counters_match_the_rows_after_every_kind_of_write);
	tcase_add_test(tc, test_maintain_sums_up_only_the_count_groups_with_new_deltas);
	tcase_add_test(tc, test_upgrade_from_version_1_keeps_every_job_in_every_state);
	tcase_add_test(tc, test_downgrade_3_to_1_and_back_keeps_every_live_job);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(storage_suite());
}
