/*
 * check_enqueue: pgjobd.enqueue() of CONTRACT section 3, driven through
 * libpq against the throwaway cluster of tests/with-pg.sh: what it stores
 * from named and positional arguments, every bad argument refused with
 * nothing written and every boundary one accepted, idempotency keys (also
 * raced from 8 sessions at once), and the notification it sends.  The
 * rest of the SQL API is check_sql.
 *
 * Nothing here sleeps in place of synchronisation: concurrent sessions are
 * known to be blocked by asking pg_stat_activity, and notifications are
 * known to be complete by the sync notification of sqllib.
 */
#include "sqllib.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_LIMIT 1048576 /* bytes of payload::text: 1 MiB */

/* ---------------------------------------------------------------- enqueue */

START_TEST(test_enqueue_defaults_give_ready_default_job_due_now)
{
	PGconn *c = t_connect();
	long long id, id2;
	char *s, ids[32];

	PQclear(t_exec(c, "BEGIN", NULL));
	id = t_int(c, "SELECT pgjobd.enqueue('t')", NULL);
	snprintf(ids, sizeof ids, "%lld", id);
	ck_assert_int_eq(t_int(c, "SELECT id FROM pgjobd.jobs", NULL), id);
	s = t_str(c,
	          "SELECT format('type=%L queue=%L payload=%L state=%L priority=%L attempts=%L "
	          "max_attempts=%L idempotency_key=%L timeout=%L', type, queue, payload, state, "
	          "priority, attempts, max_attempts, idempotency_key, timeout) "
	          "FROM pgjobd.jobs WHERE id = $1::bigint",
	          ids, NULL);
	ck_assert_str_eq(s, "type='t' queue='default' payload='{}' state='ready' priority='0' "
	                    "attempts='0' max_attempts=NULL idempotency_key=NULL timeout=NULL");
	free(s);
	/* In the enqueueing transaction, so now() is the db clock at enqueue. */
	s = t_str(c,
	          "SELECT format('run_at_near_now=%s created_at_near_now=%s untouched=%s', "
	          "abs(extract(epoch FROM run_at - now())) < 1, "
	          "abs(extract(epoch FROM created_at - now())) < 1, "
	          "num_nulls(started_at, finished_at, worker, exit_code, last_error, result) = 6) "
	          "FROM pgjobd.jobs WHERE id = $1::bigint",
	          ids, NULL);
	ck_assert_str_eq(s, "run_at_near_now=t created_at_near_now=t untouched=t");
	free(s);
	PQclear(t_exec(c, "COMMIT", NULL));

	/* An explicit NULL run_at also means now; every call is a new job. */
	id2 = t_int(c, "SELECT pgjobd.enqueue('t', run_at => NULL)", NULL);
	ck_assert_int_ne(id2, id);
	snprintf(ids, sizeof ids, "%lld", id2);
	ck_assert_int_eq(t_int(c,
	                       "SELECT count(*) FROM pgjobd.jobs WHERE id = $1::bigint "
	                       "AND run_at <= now() AND run_at > now() - interval '1 minute'",
	                       ids, NULL),
	                 1);
	ck_assert_int_eq(s_count_jobs(c), 2);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_stores_every_named_argument)
{
	PGconn *c = t_connect();
	long long id;
	char *s, ids[32];

	PQclear(t_exec(c, "BEGIN", NULL));
	id = t_int(c,
	           "SELECT pgjobd.enqueue('t', '{\"a\":1}', queue => 'q', priority => -5, "
	           "run_at => now() + interval '1 hour', max_attempts => 3, "
	           "idempotency_key => 'k', timeout => '30s')",
	           NULL);
	snprintf(ids, sizeof ids, "%lld", id);
	s = t_str(c,
	          "SELECT format('type=%L queue=%L payload=%L state=%L priority=%L attempts=%L "
	          "max_attempts=%L idempotency_key=%L timeout=%L run_at_in_1h=%L', type, queue, "
	          "payload, state, priority, attempts, max_attempts, idempotency_key, timeout, "
	          "run_at = now() + interval '1 hour') FROM pgjobd.jobs WHERE id = $1::bigint",
	          ids, NULL);
	ck_assert_str_eq(s, "type='t' queue='q' payload='{\"a\": 1}' state='ready' priority='-5' "
	                    "attempts='0' max_attempts='3' idempotency_key='k' timeout='00:00:30' "
	                    "run_at_in_1h='t'");
	free(s);
	PQclear(t_exec(c, "COMMIT", NULL));
	ck_assert_int_eq(s_count_jobs(c), 1);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_positional_arguments_follow_contract_order)
{
	PGconn *c = t_connect();
	char *s;

	/* type, payload, queue, run_at, priority, max_attempts, idempotency_key, timeout */
	PQclear(t_exec(c, "BEGIN", NULL));
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t2', '{\"b\":2}', 'q2', now() + interval '2 hours', "
	               "7, 4, 'k2', '5 min')",
	               NULL));
	s = t_str(c,
	          "SELECT format('type=%L queue=%L payload=%L priority=%L max_attempts=%L "
	          "idempotency_key=%L timeout=%L run_at_in_2h=%L', type, queue, payload, priority, "
	          "max_attempts, idempotency_key, timeout, run_at = now() + interval '2 hours') "
	          "FROM pgjobd.jobs",
	          NULL);
	ck_assert_str_eq(s,
	                 "type='t2' queue='q2' payload='{\"b\": 2}' priority='7' max_attempts='4' "
	                 "idempotency_key='k2' timeout='00:05:00' run_at_in_2h='t'");
	free(s);
	PQclear(t_exec(c, "COMMIT", NULL));
	PQfinish(c);
}
END_TEST

/* Bad input, each refused with SQLSTATE 22023 naming the argument. */
static const struct refusal {
	const char *what;
	const char *arg; /* the message must name it */
	const char *sql;
} refusals[] = {
    {"empty type", "type", "SELECT pgjobd.enqueue('')"},
    {"129-char type", "type", "SELECT pgjobd.enqueue(repeat('a', 129))"},
    {"type with a space", "type", "SELECT pgjobd.enqueue('a b')"},
    {"type with a slash", "type", "SELECT pgjobd.enqueue('a/b')"},
    {"type ending in a newline", "type", "SELECT pgjobd.enqueue(E'ab\\n')"},
    {"type with a non-ASCII letter", "type", "SELECT pgjobd.enqueue('caf\xc3\xa9')"},
    {"NULL type", "type", "SELECT pgjobd.enqueue(NULL)"},
    {"empty queue", "queue", "SELECT pgjobd.enqueue('t', queue => '')"},
    {"129-char queue", "queue", "SELECT pgjobd.enqueue('t', queue => repeat('q', 129))"},
    {"queue with a bad character", "queue", "SELECT pgjobd.enqueue('t', queue => 'q*')"},
    {"queue with a space", "queue", "SELECT pgjobd.enqueue('t', queue => 'q q')"},
    {"NULL queue", "queue", "SELECT pgjobd.enqueue('t', queue => NULL)"},
    {"max_attempts 0", "max_attempts", "SELECT pgjobd.enqueue('t', max_attempts => 0)"},
    {"max_attempts -1", "max_attempts", "SELECT pgjobd.enqueue('t', max_attempts => -1)"},
    {"negative timeout", "timeout", "SELECT pgjobd.enqueue('t', timeout => '-1 second')"},
    {"timeout of 1 month -31 days", "timeout",
     "SELECT pgjobd.enqueue('t', timeout => '1 month -31 days')"},
    /* to_jsonb(repeat('x', N))::text is N + 2 bytes: the quotes. */
    {"payload of 1048577 bytes", "payload",
     "SELECT pgjobd.enqueue('t', to_jsonb(repeat('x', 1048575)))"},
    {"payload of 1048578 bytes in 524290 characters", "payload",
     "SELECT pgjobd.enqueue('t', to_jsonb(repeat('\xc3\xa9', 524288)))"},
    {"NULL payload", "payload", "SELECT pgjobd.enqueue('t', NULL)"},
    {"NULL priority", "priority", "SELECT pgjobd.enqueue('t', priority => NULL)"},
    {"empty idempotency_key", "idempotency_key",
     "SELECT pgjobd.enqueue('t', idempotency_key => '')"},
};
#define NREFUSALS ((int)(sizeof refusals / sizeof refusals[0]))

START_TEST(test_enqueue_refuses_bad_argument_and_writes_nothing)
{
	const struct refusal *f = &refusals[_i];
	PGconn *c = t_connect();
	PGresult *r = t_exec_any(c, f->sql, NULL);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: accepted (status %s)", f->what,
	              PQresStatus(PQresultStatus(r)));
	ck_assert_msg(msg && strstr(msg, f->arg), "%s: the message does not name \"%s\": %s",
	              f->what, f->arg, msg ? msg : "(none)");
	s_assert_error(r, "22023", f->what);
	ck_assert_msg(s_count_jobs(c) == 0, "%s: a job was written", f->what);
	PQfinish(c);
}
END_TEST

START_TEST(test_payload_sizes_in_refusals_are_just_over_the_limit)
{
	PGconn *c = t_connect();

	/* The refusals above are meant to be off by one byte, not by much. */
	ck_assert_int_eq(
	    t_int(c, "SELECT octet_length(to_jsonb(repeat('x', 1048575))::text)", NULL),
	    PAYLOAD_LIMIT + 1);
	ck_assert_int_eq(
	    t_int(c, "SELECT octet_length(to_jsonb(repeat('\xc3\xa9', 524288))::text)", NULL),
	    PAYLOAD_LIMIT + 2);
	PQfinish(c);
}
END_TEST

/* Boundary inputs, each accepted and stored as given. */
static const struct acceptance {
	const char *what;
	const char *sql;    /* enqueues one job */
	const char *check;  /* a text about the stored job */
	const char *expect; /* what CHECK must return */
} acceptances[] = {
    {"128-char type and queue",
     "SELECT pgjobd.enqueue(repeat('a', 128), queue => repeat('q', 128))",
     "SELECT format('%s %s', length(type), length(queue)) FROM pgjobd.jobs", "128 128"},
    {"1-char type and queue", "SELECT pgjobd.enqueue('a', queue => 'q')",
     "SELECT type || ' ' || queue FROM pgjobd.jobs", "a q"},
    {"every allowed character in type and queue",
     "SELECT pgjobd.enqueue('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-', "
     "queue => '-:._9876543210zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA')",
     "SELECT type || ' ' || queue FROM pgjobd.jobs",
     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:- "
     "-:._9876543210zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA"},
    {"max_attempts 1", "SELECT pgjobd.enqueue('t', max_attempts => 1)",
     "SELECT max_attempts::text FROM pgjobd.jobs", "1"},
    {"timeout 0", "SELECT pgjobd.enqueue('t', timeout => '0')",
     "SELECT (timeout = interval '0')::text FROM pgjobd.jobs", "true"},
    {"payload of exactly 1048576 bytes",
     "SELECT pgjobd.enqueue('t', to_jsonb(repeat('x', 1048574)))",
     "SELECT octet_length(payload::text)::text FROM pgjobd.jobs", "1048576"},
    {"payload of exactly 1048576 bytes in 2-byte characters",
     "SELECT pgjobd.enqueue('t', to_jsonb(repeat('\xc3\xa9', 524287)))",
     "SELECT octet_length(payload::text)::text FROM pgjobd.jobs", "1048576"},
    {"negative priority", "SELECT pgjobd.enqueue('t', priority => -2147483648)",
     "SELECT priority::text FROM pgjobd.jobs", "-2147483648"},
};
#define NACCEPTANCES ((int)(sizeof acceptances / sizeof acceptances[0]))

START_TEST(test_enqueue_accepts_boundary_argument)
{
	const struct acceptance *a = &acceptances[_i];
	PGconn *c = t_connect();
	PGresult *r = t_exec_any(c, a->sql, NULL);
	char *s;

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: refused: %s", a->what,
	              PQresultErrorMessage(r));
	PQclear(r);
	ck_assert_msg(s_count_jobs(c) == 1, "%s: no job written", a->what);
	s = t_str(c, a->check, NULL);
	ck_assert_msg(s && strcmp(s, a->expect) == 0, "%s: stored %s, expected %s", a->what,
	              s ? s : "NULL", a->expect);
	free(s);
	PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------ idempotency */

START_TEST(test_enqueue_same_queue_and_key_returns_first_job_and_changes_nothing)
{
	PGconn *c = t_connect();
	long long id, again;
	char *before, *after;

	id = t_int(c,
	           "SELECT pgjobd.enqueue('t', '{\"v\":1}', queue => 'q', priority => 1, "
	           "run_at => now() + interval '1 hour', max_attempts => 2, "
	           "idempotency_key => 'k', timeout => '10s')",
	           NULL);
	before = s_job_row(c, id);
	again = t_int(c,
	              "SELECT pgjobd.enqueue('u', '{\"v\":2}', queue => 'q', priority => 9, "
	              "max_attempts => 7, idempotency_key => 'k')",
	              NULL);
	ck_assert_int_eq(again, id);
	after = s_job_row(c, id);
	ck_assert_str_eq(after, before);
	free(after);
	ck_assert_int_eq(s_count_jobs(c), 1);
	ck_assert_int_eq(t_int(c, "SELECT (payload->>'v')::int FROM pgjobd.jobs", NULL), 1);

	/* Still deduplicated once the first job has finished: it still exists. */
	s_set_state(c, id, "done");
	free(before);
	before = s_job_row(c, id);
	again = t_int(c,
	              "SELECT pgjobd.enqueue('t', '{\"v\":3}', queue => 'q', "
	              "idempotency_key => 'k')",
	              NULL);
	ck_assert_int_eq(again, id);
	after = s_job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(s_count_jobs(c), 1);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_same_key_in_another_queue_is_a_new_job)
{
	PGconn *c = t_connect();
	long long a, b;

	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'qa', idempotency_key => 'k')", NULL);
	b = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'qb', idempotency_key => 'k')", NULL);
	ck_assert_int_ne(a, b);
	ck_assert_int_eq(s_count_jobs(c), 2);
	ck_assert_int_eq(t_int(c,
	                       "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key = 'k' "
	                       "AND queue IN ('qa', 'qb')",
	                       NULL),
	                 2);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_without_key_never_deduplicates)
{
	PGconn *c = t_connect();
	long long a, b, d;

	a = t_int(c, "SELECT pgjobd.enqueue('t', '{\"same\":1}', queue => 'q')", NULL);
	b = t_int(c, "SELECT pgjobd.enqueue('t', '{\"same\":1}', queue => 'q')", NULL);
	d = t_int(c,
	          "SELECT pgjobd.enqueue('t', '{\"same\":1}', queue => 'q', "
	          "idempotency_key => NULL)",
	          NULL);
	ck_assert_int_ne(a, b);
	ck_assert_int_ne(b, d);
	ck_assert_int_ne(a, d);
	ck_assert_int_eq(s_count_jobs(c), 3);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_key_is_free_again_once_first_job_is_deleted)
{
	PGconn *c = t_connect();
	long long a, b;
	char ids[32];

	a = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'k')", NULL);
	snprintf(ids, sizeof ids, "%lld", a);
	PQclear(t_exec(c, "DELETE FROM pgjobd.jobs WHERE id = $1::bigint", ids, NULL));
	b = t_int(c, "SELECT pgjobd.enqueue('t', queue => 'q', idempotency_key => 'k')", NULL);
	ck_assert_int_ne(a, b);
	ck_assert_int_eq(s_count_jobs(c), 1);
	PQfinish(c);
}
END_TEST

#define NCONC 8

/* The one result of the enqueue sent on C: the job id.  Fails when it
 * is not in before DEADLINE (t_now_ms() time). */
static long long
take_id(PGconn *c, int64_t deadline)
{
	PGresult *r;
	long long id;

	for (;;) {
		struct pollfd p = {PQsocket(c), POLLIN, 0};
		int64_t left = deadline - t_now_ms();

		ck_assert_msg(PQconsumeInput(c) == 1, "enqueue: %s", PQerrorMessage(c));
		if (!PQisBusy(c))
			break;
		ck_assert_msg(left > 0,
		              "an enqueue was still blocked %d ms after the first one's "
		              "transaction ended",
		              DEADLINE_MS);
		(void)poll(&p, 1, (int)left);
	}
	r = PQgetResult(c);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1,
	              "enqueue failed: %s", PQresultErrorMessage(r));
	id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));
	return id;
}

/*
 * Wait until exactly one of the PENDING sessions has its enqueue done and
 * every other pending one is blocked on a lock (asked of MON), and return
 * the finished one.  Two finished while all are still in open
 * transactions would mean two jobs for one key.
 */
static int
await_winner(PGconn *mon, PGconn *c[], const bool pending[], const char *pids)
{
	int64_t deadline = t_now_ms() + DEADLINE_MS;
	int npending = 0;

	for (int i = 0; i < NCONC; i++)
		npending += pending[i];
	for (;;) {
		struct pollfd p[NCONC];
		int done = 0, winner = -1, np = 0;
		long long waiting;

		for (int i = 0; i < NCONC; i++) {
			if (!pending[i])
				continue;
			ck_assert_msg(PQconsumeInput(c[i]) == 1, "session %d: %s", i,
			              PQerrorMessage(c[i]));
			if (!PQisBusy(c[i])) {
				done++;
				winner = i;
			} else {
				p[np++] = (struct pollfd){PQsocket(c[i]), POLLIN, 0};
			}
		}
		ck_assert_msg(done <= 1, "%d concurrent enqueues of one key finished at once",
		              done);
		waiting = t_int(mon,
		                "SELECT count(*) FROM pg_stat_activity "
		                "WHERE pid = ANY($1::int[]) AND wait_event_type = 'Lock'",
		                pids, NULL);
		if (done == 1 && waiting == npending - 1)
			return winner;
		ck_assert_msg(t_now_ms() < deadline,
		              "after %d ms: %d of %d enqueues done, %lld waiting", DEADLINE_MS,
		              done, npending, waiting);
		(void)poll(p, (nfds_t)np, 20);
	}
}

/*
 * NCONC sessions each BEGIN and enqueue KEY at once; one inserts, the
 * others block on its uncommitted row.  When ROLLBACK_FIRST, the first
 * inserter rolls back, so one of the waiters must insert instead.  Then
 * the inserter commits and every session must get its id.
 */
static void
race_enqueue(PGconn *mon, const char *key, bool rollback_first)
{
	PGconn *c[NCONC];
	bool pending[NCONC];
	char pids[NCONC * 12 + 3] = "{";
	long long id = -1, rolled_back = -1;
	int winner = -1;
	int64_t deadline;
	char *s;

	for (int i = 0; i < NCONC; i++) {
		c[i] = t_connect();
		pending[i] = true;
		snprintf(pids + strlen(pids), sizeof pids - strlen(pids), "%s%d", i ? "," : "",
		         PQbackendPID(c[i]));
		PQclear(t_exec(c[i], "BEGIN", NULL));
	}
	strcat(pids, "}");
	for (int i = 0; i < NCONC; i++) {
		char payload[32];
		const char *params[2] = {key, payload};

		snprintf(payload, sizeof payload, "{\"session\": %d}", i);
		ck_assert(PQsendQueryParams(c[i],
		                            "SELECT pgjobd.enqueue('t', $2::jsonb, "
		                            "queue => 'qc', idempotency_key => $1)",
		                            2, NULL, params, NULL, NULL, 0) == 1);
	}
	for (;;) {
		winner = await_winner(mon, c, pending, pids);
		id = take_id(c[winner], t_now_ms() + DEADLINE_MS);
		pending[winner] = false;
		if (rollback_first && rolled_back < 0) {
			rolled_back = id;
			PQclear(t_exec(c[winner], "ROLLBACK", NULL));
			continue;
		}
		PQclear(t_exec(c[winner], "COMMIT", NULL));
		break;
	}
	deadline = t_now_ms() + DEADLINE_MS;
	for (int i = 0; i < NCONC; i++) {
		if (!pending[i])
			continue;
		ck_assert_msg(take_id(c[i], deadline) == id,
		              "key %s: session %d got another id than %lld", key, i, id);
		PQclear(t_exec(c[i], "COMMIT", NULL));
	}
	ck_assert_int_ne(id, rolled_back);
	s = t_str(mon,
	          "SELECT format('rows=%s id=%s session=%s', count(*), min(id), "
	          "min(payload->>'session')) FROM pgjobd.jobs "
	          "WHERE queue = 'qc' AND idempotency_key = $1",
	          key, NULL);
	{
		char expect[96];

		snprintf(expect, sizeof expect, "rows=1 id=%lld session=%d", id, winner);
		ck_assert_str_eq(s, expect);
	}
	free(s);
	for (int i = 0; i < NCONC; i++)
		PQfinish(c[i]);
}

START_TEST(test_enqueue_same_key_from_8_sessions_at_once_makes_one_job)
{
	PGconn *mon = t_connect();

	race_enqueue(mon, "k0", false);
	race_enqueue(mon, "k1", true);
	race_enqueue(mon, "k2", false);
	race_enqueue(mon, "k3", true);
	ck_assert_int_eq(s_count_jobs(mon), 4);
	PQfinish(mon);
}
END_TEST

/* ----------------------------------------------------------------- notify */

START_TEST(test_enqueue_notifies_once_per_queue_per_transaction_and_only_when_due)
{
	PGconn *l = s_listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct s_notes notes;

	/* 100 jobs into one queue: one notification, payload the queue. */
	PQclear(t_exec(c, "BEGIN", NULL));
	for (int i = 0; i < 100; i++)
		(void)s_enqueue_into(c, "qa");
	PQclear(t_exec(c, "COMMIT", NULL));
	s_collect_notes(l, c, &notes);
	s_assert_one_note(&notes, "pgjobd_enqueue", "qa");

	/* Two queues in one transaction: one notification each. */
	PQclear(t_exec(c, "BEGIN", NULL));
	for (int i = 0; i < 50; i++) {
		(void)s_enqueue_into(c, "qa");
		(void)s_enqueue_into(c, "qb");
	}
	PQclear(t_exec(c, "COMMIT", NULL));
	s_collect_notes(l, c, &notes);
	ck_assert_int_eq(notes.n, 2);
	ck_assert_str_eq(notes.channel[0], "pgjobd_enqueue");
	ck_assert_str_eq(notes.channel[1], "pgjobd_enqueue");
	ck_assert_msg(
	    (strcmp(notes.payload[0], "qa") == 0 && strcmp(notes.payload[1], "qb") == 0) ||
	        (strcmp(notes.payload[0], "qb") == 0 && strcmp(notes.payload[1], "qa") == 0),
	    "payloads %s, %s; expected qa and qb", notes.payload[0], notes.payload[1]);

	/* A job for later wakes nobody: the daemons' timers find it. */
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t', queue => 'qa', "
	               "run_at => now() + interval '1 hour')",
	               NULL));
	s_collect_notes(l, c, &notes);
	ck_assert_msg(notes.n == 0, "a scheduled job notified %s \"%s\"", notes.channel[0],
	              notes.payload[0]);

	/* A job whose run_at has already passed is due now. */
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t', queue => 'qp', "
	               "run_at => now() - interval '1 minute')",
	               NULL));
	s_collect_notes(l, c, &notes);
	s_assert_one_note(&notes, "pgjobd_enqueue", "qp");

	/* A rolled-back enqueue wakes nobody. */
	PQclear(t_exec(c, "BEGIN", NULL));
	(void)s_enqueue_into(c, "qr");
	PQclear(t_exec(c, "ROLLBACK", NULL));
	s_collect_notes(l, c, &notes);
	ck_assert_msg(notes.n == 0, "a rolled-back enqueue notified %s \"%s\"", notes.channel[0],
	              notes.payload[0]);

	ck_assert_int_eq(s_count_jobs(c), 202);
	PQfinish(c);
	PQfinish(l);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *
enqueue_suite(void)
{
	Suite *s = suite_create("enqueue");
	TCase *tc;

	tc = s_tcase("enqueue");
	tcase_add_test(tc, test_enqueue_defaults_give_ready_default_job_due_now);
	tcase_add_test(tc, test_enqueue_stores_every_named_argument);
	tcase_add_test(tc, test_enqueue_positional_arguments_follow_contract_order);
	tcase_add_loop_test(tc, test_enqueue_refuses_bad_argument_and_writes_nothing, 0, NREFUSALS);
	tcase_add_test(tc, test_payload_sizes_in_refusals_are_just_over_the_limit);
	tcase_add_loop_test(tc, test_enqueue_accepts_boundary_argument, 0, NACCEPTANCES);
	suite_add_tcase(s, tc);

	tc = s_tcase("idempotency");
	tcase_add_test(tc, test_enqueue_same_queue_and_key_returns_first_job_and_changes_nothing);
	tcase_add_test(tc, test_enqueue_same_key_in_another_queue_is_a_new_job);
	tcase_add_test(tc, test_enqueue_without_key_never_deduplicates);
	tcase_add_test(tc, test_enqueue_key_is_free_again_once_first_job_is_deleted);
	tcase_add_test(tc, test_enqueue_same_key_from_8_sessions_at_once_makes_one_job);
	suite_add_tcase(s, tc);

	tc = s_tcase("notify");
	tcase_add_test(tc, test_enqueue_notifies_once_per_queue_per_transaction_and_only_when_due);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(enqueue_suite());
}
