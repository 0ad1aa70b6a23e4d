/*
 * check_stmt: each of the daemon's statements (the files sql/stmt/NAME.sql, compiled
 * into the binary as stmt_NAME) run as the daemon sends them, against the
 * real schema installed by `pgjobd --migrate`: lease order, caps, due and
 * served rows only, fencing of outcomes by lease token, refused stale
 * tokens, rescue of expired leases, heartbeats and deregistration.
 *
 * Jobs are made with pgjobd.enqueue() and leased by the exchange itself,
 * never by writing rows directly, so these tests hold for any storage
 * behind pgjobd.jobs.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stmts.h"
#include "testlib.h"

#define STMT_DB "pgjobd_stmt"
#define NO_OUTCOMES "[]"

static void
setup_database(void)
{
	static bool installed;
	char *cfg, *out = NULL, *err = NULL;
	const char *argv[] = {t_pgjobd(), "-c", NULL, "--migrate", NULL};
	int rc;

	if (installed) {
		setenv("PGDATABASE", STMT_DB, 1);
		return;
	}
	t_use_fresh_db(STMT_DB);
	cfg = t_config("");
	argv[2] = cfg;
	rc = t_run(argv, &out, &err, 30000);
	if (rc != 0) {
		fprintf(stderr, "--migrate exited %d: %s\n", rc, err);
		exit(1);
	}
	unlink(cfg);
	free(cfg);
	free(out);
	free(err);
	installed = true;
}

static PGconn *conn;

static void
clear_state(void)
{
	conn = t_connect();
	PQclear(t_exec(conn,
	    "TRUNCATE pgjobd.live, pgjobd.live_attempts, pgjobd.history, pgjobd.attempt_history, "
	    "pgjobd.workers RESTART IDENTITY",
	    NULL));
}

static void
close_conn(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* The exchange as the daemon sends it, by worker "w". */
static PGresult *
exchange(const char *queues, const char *types, const char *free_slots, const char *limit,
    const char *lease_ms, const char *outcomes)
{
	return t_exec(conn, stmt_exchange, "w", queues, types, free_slots, limit, lease_ms,
	    outcomes, NULL);
}

static int
column(const PGresult *r, const char *name)
{
	int c = PQfnumber(r, name);

	ck_assert_msg(c >= 0, "no column %s", name);
	return c;
}

/* The ids of R's rows of KIND, comma-separated in row order. */
static char *
ids_of(const PGresult *r, char kind)
{
	static char out[1024];
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < PQntuples(r); i++)
		if (*PQgetvalue(r, i, column(r, "kind")) == kind)
			n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? "," : "",
			    PQgetvalue(r, i, column(r, "id")));
	return out;
}

static const char *
field(const PGresult *r, int row, const char *name)
{
	return PQgetvalue(r, row, column(r, name));
}

static long long
enqueue(const char *type, const char *queue, const char *priority)
{
	return t_int(conn, "SELECT pgjobd.enqueue($1, queue => $2, priority => $3::int)", type,
	    queue, priority, NULL);
}

/* Lease job of type t in queue default (it must be the only one due) and
 * return its token, malloc'd. */
static char *
lease_one(const char *lease_ms)
{
	PGresult *r = exchange("{default}", "{t}", "{1}", "1", lease_ms, NO_OUTCOMES);
	char *token;

	ck_assert_int_eq(PQntuples(r), 1);
	token = strdup(field(r, 0, "token"));
	PQclear(r);
	return token;
}

static char *
outcome_json(long long id, const char *token, const char *outcome, const char *extra)
{
	static char buf[512];

	snprintf(buf, sizeof buf, "[{\"id\":%lld,\"token\":%s,\"outcome\":\"%s\"%s}]", id, token,
	    outcome, extra ? extra : "");
	return buf;
}

static char *
job_field(long long id, const char *expr)
{
	char sql[256], ids[32];

	snprintf(ids, sizeof ids, "%lld", id);
	snprintf(sql, sizeof sql, "SELECT (%s)::text FROM pgjobd.jobs WHERE id = $1::bigint", expr);
	return t_str(conn, sql, ids, NULL);
}

static void
assert_job(long long id, const char *expr, const char *want)
{
	char *got = job_field(id, expr);

	ck_assert_msg(got && strcmp(got, want) == 0, "job %lld: %s is %s, want %s", id, expr,
	    got ? got : "NULL", want);
	free(got);
}

static long long
attempts_rows(long long id)
{
	char ids[32];

	snprintf(ids, sizeof ids, "%lld", id);
	return t_int(conn, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = $1::bigint", ids,
	    NULL);
}

/* ---- exchange: leasing ---- */

START_TEST(test_exchange_leases_in_priority_run_at_id_order_up_to_the_limit)
{
	PGresult *r;

	enqueue("t", "default", "5");  /* 1 */
	enqueue("t", "default", "-1"); /* 2 */
	enqueue("t", "default", "5");  /* 3 */
	enqueue("t", "default", "0");  /* 4 */
	r = exchange("{default}", "{t}", "{3}", "3", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 3);
	/* The lease takes the first three in lease order (a set: rows come
	 * back in any order). */
	ck_assert_int_eq(t_int(conn,
			     "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running' "
			     "AND id IN (2, 4, 1) AND worker = 'w' AND attempts = 1 "
			     "AND lease_expires_at BETWEEN now() + interval '59 s' "
			     "AND now() + interval '61 s'",
			     NULL),
	    3);
	assert_job(3, "state", "ready");
	for (int i = 0; i < PQntuples(r); i++) {
		ck_assert_str_eq(field(r, i, "kind"), "l");
		ck_assert_str_eq(field(r, i, "type"), "t");
		ck_assert_str_eq(field(r, i, "queue"), "default");
		ck_assert_str_eq(field(r, i, "attempt"), "1");
		ck_assert_str_eq(field(r, i, "payload"), "{}");
		ck_assert(PQgetisnull(r, i, column(r, "max_attempts")));
		ck_assert(PQgetisnull(r, i, column(r, "timeout_ms")));
	}
	/* Tokens are unique. */
	ck_assert_int_eq(t_int(conn,
			     "SELECT count(DISTINCT lease_token) FROM pgjobd.jobs WHERE state = 'running'",
			     NULL),
	    3);
	PQclear(r);
}
END_TEST

START_TEST(test_exchange_takes_at_most_each_types_free_slots)
{
	PGresult *r;

	for (int i = 0; i < 3; i++) {
		enqueue("a", "default", "0");
		enqueue("b", "default", "0");
	}
	r = exchange("{default}", "{a,b}", "{1,2}", "10", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 3);
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running' "
				     "AND type = 'a'", NULL), 1);
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running' "
				     "AND type = 'b'", NULL), 2);
	PQclear(r);
	/* The overall limit binds too. */
	r = exchange("{default}", "{a,b}", "{5,5}", "1", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 1);
	PQclear(r);
}
END_TEST

START_TEST(test_exchange_leases_only_due_jobs_of_served_queues_and_types)
{
	PGresult *r;

	PQclear(t_exec(conn, "SELECT pgjobd.enqueue('t', run_at => now() + interval '1 h')", NULL));
	enqueue("t", "other", "0");
	enqueue("u", "default", "0");
	r = exchange("{default}", "{t}", "{5}", "5", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	/* No types: outcomes only, nothing leased. */
	r = exchange("{default,other}", "{}", "{}", "0", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'ready'",
			     NULL), 3);
}
END_TEST

START_TEST(test_exchange_skips_rows_locked_by_another_exchange)
{
	PGconn *other = t_connect();
	PGresult *r;

	enqueue("t", "default", "0");
	enqueue("t", "default", "0");
	PQclear(t_exec(other, "BEGIN", NULL));
	/* The row itself, in the table the exchange leases from. */
	PQclear(t_exec(other, "SELECT id FROM pgjobd.live WHERE id = 1 FOR UPDATE", NULL));
	r = exchange("{default}", "{t}", "{2}", "2", "60000", NO_OUTCOMES);
	ck_assert_str_eq(ids_of(r, 'l'), "2");
	PQclear(r);
	PQclear(t_exec(other, "ROLLBACK", NULL));
	PQfinish(other);
}
END_TEST

START_TEST(test_exchange_hands_payload_args_escaped_and_flags_unusable_ones)
{
	PGresult *r;

	PQclear(t_exec(conn,
	    "SELECT pgjobd.enqueue('t', jsonb_build_object('args', "
	    "jsonb_build_array('a b', E'x\\ny', 'back\\slash')))",
	    NULL));
	PQclear(t_exec(conn, "SELECT pgjobd.enqueue('t', '{\"args\": [1]}')", NULL));
	r = exchange("{default}", "{t}", "{2}", "2", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 2);
	for (int i = 0; i < 2; i++) {
		if (!strcmp(field(r, i, "id"), "1")) {
			ck_assert_str_eq(field(r, i, "nargs"), "3");
			ck_assert_str_eq(field(r, i, "args"), "a b\nx\\ny\nback\\\\slash");
			ck_assert(PQgetisnull(r, i, column(r, "args_error")));
		} else {
			ck_assert_str_eq(field(r, i, "args_error"),
			    "payload \"args\" is not an array of strings");
		}
	}
	PQclear(r);
}
END_TEST

/* ---- exchange: outcomes ---- */

START_TEST(test_exchange_writes_done_fenced_by_token_once)
{
	long long id = enqueue("t", "default", "0");
	char *token = lease_one("60000");
	const char *out = outcome_json(id, token, "done",
	    ",\"exit_code\":0,\"result\":\"ok\\n\",\"delay_ms\":0");
	PGresult *r = exchange("{default}", "{}", "{}", "0", "60000", out);

	ck_assert_str_eq(ids_of(r, 'o'), "1");
	PQclear(r);
	assert_job(id, "state", "done");
	assert_job(id, "result", "ok\n");
	assert_job(id, "exit_code", "0");
	assert_job(id, "lease_token IS NULL AND finished_at IS NOT NULL", "true");
	ck_assert_int_eq(attempts_rows(id), 1);
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.attempts WHERE outcome = 'done' "
				     "AND worker = 'w' AND attempt = 1 AND exit_code = 0", NULL), 1);
	/* Sent again (a lost reply): refused, nothing written twice. */
	r = exchange("{default}", "{}", "{}", "0", "60000", out);
	ck_assert_str_eq(ids_of(r, 'o'), "");
	PQclear(r);
	ck_assert_int_eq(attempts_rows(id), 1);
	free(token);
}
END_TEST

START_TEST(test_exchange_refuses_an_outcome_with_a_stale_token)
{
	long long id = enqueue("t", "default", "0");
	char *token = lease_one("60000"), stale[32];
	PGresult *r;

	snprintf(stale, sizeof stale, "%lld", atoll(token) + 1000);
	r = exchange("{default}", "{}", "{}", "0", "60000", outcome_json(id, stale, "dead", NULL));
	ck_assert_str_eq(ids_of(r, 'o'), "");
	PQclear(r);
	assert_job(id, "state", "running");
	assert_job(id, "lease_token::text", token);
	ck_assert_int_eq(attempts_rows(id), 0);
	free(token);
}
END_TEST

START_TEST(test_exchange_retry_reschedules_after_delay_and_keeps_error)
{
	long long id = enqueue("t", "default", "0");
	char *token = lease_one("60000");
	PGresult *r = exchange("{default}", "{}", "{}", "0", "60000",
	    outcome_json(id, token, "retry", ",\"delay_ms\":600000,\"exit_code\":3,\"error\":\"boom\""));

	ck_assert_str_eq(ids_of(r, 'o'), "1");
	PQclear(r);
	assert_job(id, "state", "ready");
	assert_job(id, "attempts", "1");
	assert_job(id, "last_error", "boom");
	assert_job(id, "run_at BETWEEN now() + interval '599 s' AND now() + interval '601 s'", "true");
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.attempts WHERE outcome = 'retry' "
				     "AND exit_code = 3 AND error = 'boom'", NULL), 1);
	/* Not due: the next lease does not take it. */
	r = exchange("{default}", "{t}", "{1}", "1", "60000", NO_OUTCOMES);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	free(token);
}
END_TEST

START_TEST(test_exchange_release_hands_back_without_counting_the_attempt)
{
	long long id = enqueue("t", "default", "0");
	char *token = lease_one("60000");
	PGresult *r = exchange("{default}", "{}", "{}", "0", "60000",
	    outcome_json(id, token, "release", ",\"delay_ms\":0,\"signal\":15"));

	ck_assert_str_eq(ids_of(r, 'o'), "1");
	PQclear(r);
	assert_job(id, "state", "ready");
	assert_job(id, "attempts", "0");
	assert_job(id, "lease_token IS NULL", "true");
	ck_assert_int_eq(attempts_rows(id), 0);
	free(token);
}
END_TEST

START_TEST(test_exchange_writes_outcomes_and_leases_the_freed_slot_in_one_statement)
{
	long long first = enqueue("t", "default", "0");
	char *token = lease_one("60000");
	long long second = enqueue("t", "default", "0");
	PGresult *r = exchange("{default}", "{t}", "{1}", "1", "60000",
	    outcome_json(first, token, "dead", ",\"delay_ms\":0,\"exit_code\":65"));

	ck_assert_str_eq(ids_of(r, 'o'), "1");
	ck_assert_str_eq(ids_of(r, 'l'), "2");
	PQclear(r);
	assert_job(first, "state", "dead");
	assert_job(second, "state", "running");
	free(token);
}
END_TEST

/* ---- rescue ---- */

/* Wait until job ID's lease has expired by the database's clock. */
static void
await_expiry(long long id)
{
	char ids[32], sql[160];

	snprintf(ids, sizeof ids, "%lld", id);
	snprintf(sql, sizeof sql,
	    "SELECT (lease_expires_at < now())::text FROM pgjobd.jobs WHERE id = %s", ids);
	t_wait_value(conn, "true", 5000, sql);
}

START_TEST(test_rescue_takes_back_expired_leases_counting_them_lost)
{
	long long id = enqueue("t", "default", "0"), kept;
	char *token = lease_one("1");
	PGresult *r;

	kept = enqueue("t", "default", "0");
	free(lease_one("600000"));
	await_expiry(id);
	r = t_exec(conn, stmt_rescue, "{default}", "{t}", "{5}", NULL);
	ck_assert_int_eq(PQntuples(r), 1);
	ck_assert_str_eq(field(r, 0, "id"), "1");
	ck_assert_str_eq(field(r, 0, "state"), "ready");
	ck_assert_str_eq(field(r, 0, "worker"), "w");
	PQclear(r);
	assert_job(id, "state", "ready");
	assert_job(id, "lease_token IS NULL", "true");
	assert_job(kept, "state", "running");
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = 1 "
				     "AND outcome = 'lost'", NULL), 1);
	/* The old holder's outcome is refused now. */
	r = exchange("{default}", "{}", "{}", "0", "60000", outcome_json(id, token, "done", NULL));
	ck_assert_str_eq(ids_of(r, 'o'), "");
	PQclear(r);
	free(token);
}
END_TEST

START_TEST(test_rescue_of_a_last_attempt_makes_the_job_dead)
{
	long long id = t_int(conn, "SELECT pgjobd.enqueue('t', max_attempts => 1)", NULL);
	PGresult *r;

	free(lease_one("1"));
	await_expiry(id);
	r = t_exec(conn, stmt_rescue, "{default}", "{t}", "{5}", NULL);
	ck_assert_str_eq(field(r, 0, "state"), "dead");
	PQclear(r);
	assert_job(id, "state", "dead");
	assert_job(id, "finished_at IS NOT NULL", "true");
}
END_TEST

START_TEST(test_rescue_leaves_other_queues_and_types_alone)
{
	long long id = enqueue("t", "default", "0");
	PGresult *r;

	free(lease_one("1"));
	await_expiry(id);
	r = t_exec(conn, stmt_rescue, "{other}", "{t}", "{5}", NULL);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	r = t_exec(conn, stmt_rescue, "{default}", "{u}", "{5}", NULL);
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	assert_job(id, "state", "running");
}
END_TEST

/* ---- heartbeat and deregistration ---- */

static PGresult *
heartbeat(const char *ids, const char *tokens, const char *running)
{
	return t_exec(conn, stmt_heartbeat, ids, tokens, "120000", "w", "host1", "4242",
	    "1700000000.5", "4", running, "{default}", "9.9", "{t,u}", NULL);
}

START_TEST(test_heartbeat_extends_only_leases_with_their_token_and_registers_the_worker)
{
	long long a = enqueue("t", "default", "0"), b;
	char *ta = lease_one("60000"), *tb, ids[64], tokens[64];
	PGresult *r;

	b = enqueue("t", "default", "0");
	tb = lease_one("60000");
	snprintf(ids, sizeof ids, "{%lld,%lld}", a, b);
	snprintf(tokens, sizeof tokens, "{%s,%lld}", ta, atoll(tb) + 1000); /* b: stale */
	r = heartbeat(ids, tokens, "2");
	ck_assert_int_eq(PQntuples(r), 1);
	ck_assert_str_eq(field(r, 0, "id"), "1");
	PQclear(r);
	assert_job(a, "lease_expires_at BETWEEN now() + interval '119 s' AND now() + interval '121 s'",
	    "true");
	assert_job(b, "lease_expires_at < now() + interval '61 s'", "true");
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.workers WHERE name = 'w' "
				     "AND host = 'host1' AND pid = 4242 AND concurrency = 4 "
				     "AND running = 2 AND queues = '{default}' AND version = '9.9' "
				     "AND types = '{t,u}' AND started_at = to_timestamp(1700000000.5)",
			     NULL), 1);
	/* Again: the same row, kept current. */
	PQclear(heartbeat("{}", "{}", "0"));
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.workers WHERE running = 0", NULL), 1);
	PQclear(t_exec(conn, stmt_deregister, "w", NULL));
	ck_assert_int_eq(t_int(conn, "SELECT count(*) FROM pgjobd.workers", NULL), 0);
	free(ta);
	free(tb);
}
END_TEST

START_TEST(test_heartbeat_does_not_return_a_cancelled_job)
{
	long long id = enqueue("t", "default", "0");
	char *token = lease_one("60000"), ids[32], tokens[48];
	PGresult *r;

	ck_assert_int_eq(t_int(conn, "SELECT pgjobd.cancel(1)::int", NULL), 1);
	snprintf(ids, sizeof ids, "{%lld}", id);
	snprintf(tokens, sizeof tokens, "{%s}", token);
	r = heartbeat(ids, tokens, "1");
	ck_assert_int_eq(PQntuples(r), 0);
	PQclear(r);
	free(token);
}
END_TEST

/* ---- the session and the schema version ---- */

START_TEST(test_session_setup_listens_for_enqueues_and_cancels)
{
	PGconn *l = t_connect();
	PGresult *r = PQexec(l, stmt_session);
	PGnotify *n;
	int64_t deadline = t_now_ms() + 5000;
	bool enq = false, can = false;

	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	enqueue("t", "default", "0");
	free(lease_one("60000"));
	enqueue("t", "q1", "0");
	PQclear(t_exec(conn, "SELECT pgjobd.cancel(1)", NULL)); /* running: notifies */
	while (!(enq && can) && t_now_ms() < deadline) {
		PQclear(PQexec(l, "SELECT 1"));
		while ((n = PQnotifies(l)) != NULL) {
			enq |= !strcmp(n->relname, "pgjobd_enqueue") && !strcmp(n->extra, "q1");
			can |= !strcmp(n->relname, "pgjobd_cancel") && !strcmp(n->extra, "1");
			PQfreemem(n);
		}
	}
	ck_assert_msg(enq && can, "notifications: enqueue %d, cancel %d", enq, can);
	PQfinish(l);
}
END_TEST

START_TEST(test_schema_version_is_the_highest_migration)
{
	ck_assert_int_eq(t_int(conn, stmt_schema_version, NULL),
	    t_int(conn, "SELECT max(version) FROM pgjobd.migrations", NULL));
	ck_assert_int_ge(t_int(conn, stmt_schema_version, NULL), 2);
}
END_TEST

static TCase *
tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup_database, NULL);
	tcase_add_checked_fixture(tc, clear_state, close_conn);
	tcase_set_timeout(tc, 60);
	return tc;
}

static Suite *
stmt_suite(void)
{
	Suite *s = suite_create("stmt");
	TCase *tc;

	tc = tcase("lease");
	tcase_add_test(tc, test_exchange_leases_in_priority_run_at_id_order_up_to_the_limit);
	tcase_add_test(tc, test_exchange_takes_at_most_each_types_free_slots);
	tcase_add_test(tc, test_exchange_leases_only_due_jobs_of_served_queues_and_types);
	tcase_add_test(tc, test_exchange_skips_rows_locked_by_another_exchange);
	tcase_add_test(tc, test_exchange_hands_payload_args_escaped_and_flags_unusable_ones);
	suite_add_tcase(s, tc);

	tc = tcase("outcomes");
	tcase_add_test(tc, test_exchange_writes_done_fenced_by_token_once);
	tcase_add_test(tc, test_exchange_refuses_an_outcome_with_a_stale_token);
	tcase_add_test(tc, test_exchange_retry_reschedules_after_delay_and_keeps_error);
	tcase_add_test(tc, test_exchange_release_hands_back_without_counting_the_attempt);
	tcase_add_test(tc, test_exchange_writes_outcomes_and_leases_the_freed_slot_in_one_statement);
	suite_add_tcase(s, tc);

	tc = tcase("rescue");
	tcase_add_test(tc, test_rescue_takes_back_expired_leases_counting_them_lost);
	tcase_add_test(tc, test_rescue_of_a_last_attempt_makes_the_job_dead);
	tcase_add_test(tc, test_rescue_leaves_other_queues_and_types_alone);
	suite_add_tcase(s, tc);

	tc = tcase("heartbeat");
	tcase_add_test(tc, test_heartbeat_extends_only_leases_with_their_token_and_registers_the_worker);
	tcase_add_test(tc, test_heartbeat_does_not_return_a_cancelled_job);
	suite_add_tcase(s, tc);

	tc = tcase("session");
	tcase_add_test(tc, test_session_setup_listens_for_enqueues_and_cancels);
	tcase_add_test(tc, test_schema_version_is_the_highest_migration);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(stmt_suite());
}
