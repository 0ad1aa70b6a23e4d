/*
 * check_sql: the SQL API of CONTRACT section 3, driven through libpq
 * against the throwaway cluster of tests/with-pg.sh.
 *
 * The schema is installed once by the real binary (`pgjobd --migrate`,
 * PGJOBD_BIN) into database "pgjobd_sql"; every test then starts from
 * empty tables (a checked fixture truncates them in the test's child).
 *
 * Nothing here sleeps in place of synchronisation: concurrent sessions are
 * known to be blocked by asking pg_stat_activity, and notifications are
 * known to be complete when a later "sync" notification (sent after the
 * transaction under test committed) has arrived, because PostgreSQL
 * delivers notifications to a listener in commit order.
 */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAIN_DB "pgjobd_sql"
#define RACE_DB "pgjobd_sql_race"
/* What `pgjobd --migrate` prints, and the versions pgjobd.migrations then
 * holds (comma-separated): one per sql/NNN_*.sql file. */
#define MIGRATION_VERSIONS "1,2,3,4,5"
#define PAYLOAD_LIMIT 1048576 /* bytes of payload::text: 1 MiB */
#define DEADLINE_MS 20000     /* for any wait on another session */
#define MIGRATE_TIMEOUT_MS 30000

/* ---------------------------------------------------------------- helpers */

/* Run `pgjobd -c CONFIG --migrate` on the current database and assert
 * that it succeeds with the expected version line. */
static void
run_migrate(void)
{
	char *cfg = t_config("");
	const char *argv[] = {t_pgjobd(), "-c", cfg, "--migrate", NULL};
	char *out = NULL, *err = NULL;
	int rc = t_run(argv, &out, &err, MIGRATE_TIMEOUT_MS);

	ck_assert_msg(rc == 0, "%s --migrate exited %d; stderr:\n%s", argv[0], rc, err);
	ck_assert_str_eq(out, T_MIGRATED);
	unlink(cfg);
	free(cfg);
	free(out);
	free(err);
}

/* Unchecked fixture (runs in the parent, so PGDATABASE sticks for every
 * test's child): a fresh database with the schema installed by --migrate.
 * Done once however many test cases share it. */
static void
setup_database(void)
{
	static bool installed;

	if (installed) {
		setenv("PGDATABASE", MAIN_DB, 1);
		return;
	}
	t_use_fresh_db(MAIN_DB);
	run_migrate();
	installed = true;
}

/* Checked fixture: every test starts from empty tables and id 1. */
static void
clear_state(void)
{
	PGconn *c = t_connect();

	PQclear(t_exec(c,
	               "TRUNCATE pgjobd.live, pgjobd.live_attempts, pgjobd.history, "
	               "pgjobd.attempt_history, pgjobd.workers "
	               "RESTART IDENTITY",
	               NULL));
	PQfinish(c);
}

static long long
count_jobs(PGconn *c)
{
	return t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL);
}

/* The whole row of job ID as JSON text ("" when there is none), to prove
 * that a call changed nothing.  The caller frees it. */
static char *
job_row(PGconn *c, long long id)
{
	char ids[32];
	char *row;

	snprintf(ids, sizeof ids, "%lld", id);
	row = t_str(c,
	            "SELECT coalesce((SELECT row_to_json(j)::text FROM pgjobd.jobs j "
	            "WHERE j.id = $1::bigint), '')",
	            ids, NULL);
	ck_assert_ptr_nonnull(row);
	return row;
}

/* Enqueue a job of type "t" into QUEUE, due now; returns its id. */
static long long
enqueue_into(PGconn *c, const char *queue)
{
	return t_int(c, "SELECT pgjobd.enqueue('t', queue => $1)", queue, NULL);
}

/* Put job ID into STATE directly, the way a daemon would have: running
 * with a fresh lease, or finished a minute ago. */
static void
set_state(PGconn *c, long long id, const char *state)
{
	char ids[32];

	snprintf(ids, sizeof ids, "%lld", id);
	if (strcmp(state, "running") == 0)
		PQclear(t_exec(c,
		               "UPDATE pgjobd.jobs SET state = 'running', attempts = 1, "
		               "lease_token = nextval('pgjobd.lease_token_seq'), "
		               "lease_expires_at = now() + interval '1 min', worker = 'w', "
		               "started_at = now() WHERE id = $1::bigint",
		               ids, NULL));
	else if (strcmp(state, "ready") != 0)
		PQclear(t_exec(c,
		               "UPDATE pgjobd.jobs SET state = $2, attempts = 3, "
		               "started_at = now() - interval '2 min', "
		               "finished_at = now() - interval '1 min', worker = 'w' "
		               "WHERE id = $1::bigint",
		               ids, state, NULL));
}

/* Assert that R is an error with SQLSTATE; frees R. */
static void
assert_error(PGresult *r, const char *sqlstate, const char *what)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: not refused (status %s)", what,
	              PQresStatus(PQresultStatus(r)));
	ck_assert_msg(st && strcmp(st, sqlstate) == 0, "%s: SQLSTATE %s, expected %s: %s", what,
	              st ? st : "(none)", sqlstate, PQresultErrorMessage(r));
	PQclear(r);
}

/* Call pgjobd.cancel or pgjobd.retry (FN) on ID; returns its boolean. */
static bool
call_bool(PGconn *c, const char *fn, long long id)
{
	char sql[64], ids[32];
	char *v;
	bool b;

	snprintf(sql, sizeof sql, "SELECT pgjobd.%s($1::bigint)", fn);
	snprintf(ids, sizeof ids, "%lld", id);
	v = t_str(c, sql, ids, NULL);
	ck_assert_msg(v != NULL, "pgjobd.%s(%lld) returned NULL", fn, id);
	ck_assert_msg(strcmp(v, "t") == 0 || strcmp(v, "f") == 0, "pgjobd.%s: %s", fn, v);
	b = strcmp(v, "t") == 0;
	free(v);
	return b;
}

/* ---------------------------------------------------------- notifications */

#define MAX_NOTES 32
#define SYNC_CHANNEL "pgjobd_test_sync"

struct notes {
	int n;
	char channel[MAX_NOTES][64];
	char payload[MAX_NOTES][160];
};

/* A listener for CHANNEL (and for the sync channel). */
static PGconn *
listener(const char *channel)
{
	PGconn *l = t_connect();
	char sql[128];

	snprintf(sql, sizeof sql, "LISTEN \"%s\"", channel);
	PQclear(t_exec(l, sql, NULL));
	PQclear(t_exec(l, "LISTEN \"" SYNC_CHANNEL "\"", NULL));
	return l;
}

/*
 * Collect every notification L receives from now until the sync
 * notification that SENDER sends after the transactions under test have
 * committed.  Notifications reach a listener in commit order, so once
 * the sync one is in, every earlier one is too: "none" and "exactly one"
 * are decided without waiting for a quiet period.
 */
static void
collect_notes(PGconn *l, PGconn *sender, struct notes *out)
{
	static int seq;
	char token[32];
	bool synced = false;
	int64_t deadline = t_now_ms() + DEADLINE_MS;

	out->n = 0;
	snprintf(token, sizeof token, "%d.%d", (int)getpid(), ++seq);
	PQclear(t_exec(sender, "SELECT pg_notify('" SYNC_CHANNEL "', $1)", token, NULL));
	while (!synced) {
		PGnotify *nt;

		/* A round trip makes the listener's backend flush what it has. */
		PQclear(t_exec(l, "SELECT 1", NULL));
		ck_assert_msg(PQconsumeInput(l) == 1, "listener: %s", PQerrorMessage(l));
		while ((nt = PQnotifies(l)) != NULL) {
			if (strcmp(nt->relname, SYNC_CHANNEL) == 0) {
				synced = synced || strcmp(nt->extra, token) == 0;
			} else {
				ck_assert_msg(!synced, "notification after the sync one: %s %s",
				              nt->relname, nt->extra);
				ck_assert_msg(out->n < MAX_NOTES, "more than %d notifications",
				              MAX_NOTES);
				snprintf(out->channel[out->n], sizeof out->channel[0], "%s",
				         nt->relname);
				snprintf(out->payload[out->n], sizeof out->payload[0], "%s",
				         nt->extra);
				out->n++;
			}
			PQfreemem(nt);
		}
		if (!synced) {
			struct pollfd p = {PQsocket(l), POLLIN, 0};
			int64_t left = deadline - t_now_ms();

			ck_assert_msg(left > 0, "no sync notification within %d ms", DEADLINE_MS);
			(void)poll(&p, 1, left < 50 ? (int)left : 50);
		}
	}
}

/* Assert NOTES holds exactly the one notification CHANNEL/PAYLOAD. */
static void
assert_one_note(const struct notes *notes, const char *channel, const char *payload)
{
	ck_assert_msg(notes->n == 1, "%d notifications, expected one on %s with \"%s\"%s%s %s",
	              notes->n, channel, payload, notes->n ? "; first: " : "",
	              notes->n ? notes->channel[0] : "", notes->n ? notes->payload[0] : "");
	ck_assert_str_eq(notes->channel[0], channel);
	ck_assert_str_eq(notes->payload[0], payload);
}

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
	ck_assert_int_eq(count_jobs(c), 2);
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
	ck_assert_int_eq(count_jobs(c), 1);
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
	assert_error(r, "22023", f->what);
	ck_assert_msg(count_jobs(c) == 0, "%s: a job was written", f->what);
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
	ck_assert_msg(count_jobs(c) == 1, "%s: no job written", a->what);
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
	before = job_row(c, id);
	again = t_int(c,
	              "SELECT pgjobd.enqueue('u', '{\"v\":2}', queue => 'q', priority => 9, "
	              "max_attempts => 7, idempotency_key => 'k')",
	              NULL);
	ck_assert_int_eq(again, id);
	after = job_row(c, id);
	ck_assert_str_eq(after, before);
	free(after);
	ck_assert_int_eq(count_jobs(c), 1);
	ck_assert_int_eq(t_int(c, "SELECT (payload->>'v')::int FROM pgjobd.jobs", NULL), 1);

	/* Still deduplicated once the first job has finished: it still exists. */
	set_state(c, id, "done");
	free(before);
	before = job_row(c, id);
	again = t_int(c,
	              "SELECT pgjobd.enqueue('t', '{\"v\":3}', queue => 'q', "
	              "idempotency_key => 'k')",
	              NULL);
	ck_assert_int_eq(again, id);
	after = job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(count_jobs(c), 1);
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
	ck_assert_int_eq(count_jobs(c), 2);
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
	ck_assert_int_eq(count_jobs(c), 3);
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
	ck_assert_int_eq(count_jobs(c), 1);
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
	ck_assert_int_eq(count_jobs(mon), 4);
	PQfinish(mon);
}
END_TEST

/* ----------------------------------------------------------------- notify */

START_TEST(test_enqueue_notifies_once_per_queue_per_transaction_and_only_when_due)
{
	PGconn *l = listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct notes notes;

	/* 100 jobs into one queue: one notification, payload the queue. */
	PQclear(t_exec(c, "BEGIN", NULL));
	for (int i = 0; i < 100; i++)
		(void)enqueue_into(c, "qa");
	PQclear(t_exec(c, "COMMIT", NULL));
	collect_notes(l, c, &notes);
	assert_one_note(&notes, "pgjobd_enqueue", "qa");

	/* Two queues in one transaction: one notification each. */
	PQclear(t_exec(c, "BEGIN", NULL));
	for (int i = 0; i < 50; i++) {
		(void)enqueue_into(c, "qa");
		(void)enqueue_into(c, "qb");
	}
	PQclear(t_exec(c, "COMMIT", NULL));
	collect_notes(l, c, &notes);
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
	collect_notes(l, c, &notes);
	ck_assert_msg(notes.n == 0, "a scheduled job notified %s \"%s\"", notes.channel[0],
	              notes.payload[0]);

	/* A job whose run_at has already passed is due now. */
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('t', queue => 'qp', "
	               "run_at => now() - interval '1 minute')",
	               NULL));
	collect_notes(l, c, &notes);
	assert_one_note(&notes, "pgjobd_enqueue", "qp");

	/* A rolled-back enqueue wakes nobody. */
	PQclear(t_exec(c, "BEGIN", NULL));
	(void)enqueue_into(c, "qr");
	PQclear(t_exec(c, "ROLLBACK", NULL));
	collect_notes(l, c, &notes);
	ck_assert_msg(notes.n == 0, "a rolled-back enqueue notified %s \"%s\"", notes.channel[0],
	              notes.payload[0]);

	ck_assert_int_eq(count_jobs(c), 202);
	PQfinish(c);
	PQfinish(l);
}
END_TEST

/* ----------------------------------------------------------------- cancel */

START_TEST(test_cancel_ready_job_makes_it_cancelled)
{
	PGconn *c = t_connect();
	long long id = enqueue_into(c, "q");
	char ids[32], *s;

	snprintf(ids, sizeof ids, "%lld", id);
	ck_assert(call_bool(c, "cancel", id));
	s = t_str(c,
	          "SELECT format('state=%s finished=%s', state, finished_at IS NOT NULL) "
	          "FROM pgjobd.jobs WHERE id = $1::bigint",
	          ids, NULL);
	ck_assert_str_eq(s, "state=cancelled finished=t");
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_cancel_of_finished_or_missing_job_returns_false_and_changes_nothing)
{
	static const char *const states[] = {"done", "dead", "cancelled"};
	PGconn *c = t_connect();

	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		long long id = enqueue_into(c, "q");
		char *before, *after;

		set_state(c, id, states[i]);
		before = job_row(c, id);
		ck_assert_msg(!call_bool(c, "cancel", id), "cancel of a %s job returned true",
		              states[i]);
		after = job_row(c, id);
		ck_assert_msg(strcmp(before, after) == 0, "cancel changed a %s job:\n%s\n%s",
		              states[i], before, after);
		free(before);
		free(after);
	}
	ck_assert(!call_bool(c, "cancel", 1000000));
	ck_assert_int_eq(count_jobs(c), 3);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 0);
	PQfinish(c);
}
END_TEST

START_TEST(test_cancel_running_job_clears_lease_records_attempt_and_notifies_worker)
{
	PGconn *l = listener("pgjobd_cancel");
	PGconn *c = t_connect();
	long long id = enqueue_into(c, "q");
	char ids[32], *s;
	struct notes notes;

	snprintf(ids, sizeof ids, "%lld", id);
	set_state(c, id, "running");
	collect_notes(l, c, &notes); /* nothing so far */
	ck_assert_int_eq(notes.n, 0);

	ck_assert(call_bool(c, "cancel", id));
	s = t_str(c,
	          "SELECT format('state=%s lease_token=%s lease_expires_at=%s finished=%s', state, "
	          "coalesce(lease_token::text, 'NULL'), coalesce(lease_expires_at::text, 'NULL'), "
	          "finished_at IS NOT NULL) FROM pgjobd.jobs WHERE id = $1::bigint",
	          ids, NULL);
	ck_assert_str_eq(s, "state=cancelled lease_token=NULL lease_expires_at=NULL finished=t");
	free(s);
	s = t_str(c,
	          "SELECT string_agg(format('job=%s attempt=%s worker=%s outcome=%s', job_id, "
	          "attempt, worker, outcome), '; ') FROM pgjobd.attempts",
	          NULL);
	{
		char expect[96];

		snprintf(expect, sizeof expect, "job=%lld attempt=1 worker=w outcome=cancelled",
		         id);
		ck_assert_str_eq(s, expect);
	}
	free(s);
	collect_notes(l, c, &notes);
	assert_one_note(&notes, "pgjobd_cancel", ids);

	/* Cancelling it again is refused and records nothing more. */
	ck_assert(!call_bool(c, "cancel", id));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 1);
	collect_notes(l, c, &notes);
	ck_assert_int_eq(notes.n, 0);
	PQfinish(c);
	PQfinish(l);
}
END_TEST

/* ------------------------------------------------------------------ retry */

START_TEST(test_retry_dead_or_cancelled_job_makes_it_ready_with_attempts_reset)
{
	static const struct {
		const char *state, *queue, *run_at;
	} cases[] = {
	    /* run_at far off either way, so that it must have been reset */
	    {"dead", "qd", "now() + interval '1 day'"},
	    {"cancelled", "qc", "now() - interval '1 day'"},
	};
	PGconn *l = listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct notes notes;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long long id = enqueue_into(c, cases[i].queue);
		char ids[32], sql[160], *s;

		snprintf(ids, sizeof ids, "%lld", id);
		set_state(c, id, cases[i].state);
		snprintf(sql, sizeof sql,
		         "UPDATE pgjobd.jobs SET run_at = %s WHERE id = $1::bigint",
		         cases[i].run_at);
		PQclear(t_exec(c, sql, ids, NULL));
		collect_notes(l, c, &notes); /* drop the enqueue's */

		ck_assert_msg(call_bool(c, "retry", id), "retry of a %s job returned false",
		              cases[i].state);
		s = t_str(c,
		          "SELECT format('state=%s attempts=%s run_at_now=%s', state, attempts, "
		          "run_at <= now() AND run_at > now() - interval '1 minute') "
		          "FROM pgjobd.jobs WHERE id = $1::bigint",
		          ids, NULL);
		ck_assert_msg(strcmp(s, "state=ready attempts=0 run_at_now=t") == 0,
		              "after retry of a %s job: %s", cases[i].state, s);
		free(s);
		collect_notes(l, c, &notes);
		assert_one_note(&notes, "pgjobd_enqueue", cases[i].queue);
	}
	PQfinish(c);
	PQfinish(l);
}
END_TEST

START_TEST(test_retry_of_ready_running_done_or_missing_job_returns_false_and_changes_nothing)
{
	static const char *const states[] = {"ready", "running", "done"};
	PGconn *l = listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct notes notes;

	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		long long id = enqueue_into(c, "q");
		char *before, *after;

		set_state(c, id, states[i]);
		before = job_row(c, id);
		collect_notes(l, c, &notes); /* drop the enqueue's */
		ck_assert_msg(!call_bool(c, "retry", id), "retry of a %s job returned true",
		              states[i]);
		after = job_row(c, id);
		ck_assert_msg(strcmp(before, after) == 0, "retry changed a %s job:\n%s\n%s",
		              states[i], before, after);
		collect_notes(l, c, &notes);
		ck_assert_msg(notes.n == 0, "retry of a %s job notified %s", states[i],
		              notes.payload[0]);
		free(before);
		free(after);
	}
	ck_assert(!call_bool(c, "retry", 1000000));
	ck_assert_int_eq(count_jobs(c), 3);
	PQfinish(c);
	PQfinish(l);
}
END_TEST

/* ------------------------------------------------------------ queue_stats */

/* N jobs in QUEUE with RUN_AT (SQL), then put into STATE. */
static void
make_jobs(PGconn *c, const char *queue, int n, const char *run_at, const char *state)
{
	char sql[192];

	snprintf(sql, sizeof sql, "SELECT pgjobd.enqueue('t', queue => $1, run_at => %s)", run_at);
	for (int i = 0; i < n; i++)
		set_state(c, t_int(c, sql, queue, NULL), state);
}

START_TEST(test_queue_stats_counts_every_state_per_queue)
{
	PGconn *c = t_connect();
	const char *past = "now() - interval '1 hour'"; /* older than any due job */
	const char *future = "now() + interval '1 hour'";
	char *s;

	make_jobs(c, "qa", 1, "now() - interval '10 minutes'", "ready");
	make_jobs(c, "qa", 2, "now()", "ready");
	make_jobs(c, "qa", 2, future, "ready");
	make_jobs(c, "qa", 1, past, "running");
	make_jobs(c, "qa", 4, past, "done");
	make_jobs(c, "qa", 1, past, "dead");
	make_jobs(c, "qa", 2, past, "cancelled");
	make_jobs(c, "qb", 1, future, "ready");
	make_jobs(c, "qb", 1, past, "running");
	make_jobs(c, "qb", 1, past, "done");
	make_jobs(c, "qb", 2, past, "dead");

	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.queue_stats", NULL), 2);
	s = t_str(c,
	          "SELECT string_agg(format('%s: ready=%s scheduled=%s running=%s done=%s dead=%s "
	          "cancelled=%s', queue, ready, scheduled, running, done, dead, cancelled), "
	          "'; ' ORDER BY queue) FROM pgjobd.queue_stats",
	          NULL);
	ck_assert_str_eq(s, "qa: ready=3 scheduled=2 running=1 done=4 dead=1 cancelled=2; "
	                    "qb: ready=0 scheduled=1 running=1 done=1 dead=2 cancelled=0");
	free(s);
	/* The oldest due ready job is 10 minutes old (not the older finished ones). */
	s = t_str(c,
	          "SELECT format('%s %s', oldest_ready_age >= interval '10 minutes', "
	          "oldest_ready_age < interval '11 minutes') FROM pgjobd.queue_stats "
	          "WHERE queue = 'qa'",
	          NULL);
	ck_assert_str_eq(s, "t t");
	free(s);
	s = t_str(c,
	          "SELECT (oldest_ready_age IS NULL)::text FROM pgjobd.queue_stats "
	          "WHERE queue = 'qb'",
	          NULL);
	ck_assert_str_eq(s, "true");
	free(s);
	PQfinish(c);
}
END_TEST

/* ----------------------------------------------------------------- schema */

START_TEST(test_relations_have_contract_columns)
{
	static const struct {
		const char *relation, *columns;
	} rels[] = {
	    {"jobs", "id,queue,type,payload,state,priority,run_at,attempts,max_attempts,"
	             "idempotency_key,created_at,started_at,finished_at,worker,exit_code,"
	             "last_error,result"},
	    {"attempts",
	     "job_id,attempt,worker,started_at,finished_at,outcome,exit_code,signal,error"},
	    {"queue_stats", "queue,ready,scheduled,running,done,dead,cancelled,oldest_ready_age"},
	    {"workers", "name,host,pid,started_at,last_seen,concurrency,running"},
	};
	PGconn *c = t_connect();

	for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
		/* The contract's columns that information_schema does not list. */
		char *missing = t_str(c,
		                      "SELECT coalesce(string_agg(want, ','), '') "
		                      "FROM unnest(string_to_array($2, ',')) AS want "
		                      "WHERE NOT EXISTS (SELECT FROM information_schema.columns "
		                      "WHERE table_schema = 'pgjobd' AND table_name = $1 "
		                      "AND column_name = want)",
		                      rels[i].relation, rels[i].columns, NULL);

		ck_assert_msg(strcmp(missing, "") == 0, "pgjobd.%s lacks columns: %s",
		              rels[i].relation, missing);
		free(missing);
		/* ... and the relation is readable. */
		{
			char sql[96];

			snprintf(sql, sizeof sql, "SELECT count(*) FROM pgjobd.%s",
			         rels[i].relation);
			ck_assert_int_eq(t_int(c, sql, NULL), 0);
		}
	}
	PQfinish(c);
}
END_TEST

START_TEST(test_check_constraints_refuse_bad_rows_written_directly)
{
	PGconn *c = t_connect();
	long long id = enqueue_into(c, "q");
	char ids[32], *before, *after;

	snprintf(ids, sizeof ids, "%lld", id);
	before = job_row(c, id);
	assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, state) VALUES ('t', 'bogus')", NULL),
	    "23514", "INSERT of state 'bogus'");
	assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, state) VALUES ('t', 'running')", NULL),
	    "23514", "INSERT of a running row without lease token");
	assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, lease_token) VALUES ('t', 1)", NULL),
	    "23514", "INSERT of a ready row with a lease token");
	assert_error(t_exec_any(c, "INSERT INTO pgjobd.jobs (type) VALUES ('a b')", NULL), "23514",
	             "INSERT of a bad type");
	assert_error(t_exec_any(c,
	                        "UPDATE pgjobd.jobs SET state = 'finished' WHERE id = $1::bigint",
	                        ids, NULL),
	             "23514", "UPDATE to state 'finished'");
	assert_error(t_exec_any(c, "UPDATE pgjobd.jobs SET state = 'running' WHERE id = $1::bigint",
	                        ids, NULL),
	             "23514", "UPDATE to running without lease token");
	assert_error(t_exec_any(c,
	                        "INSERT INTO pgjobd.attempts (job_id, attempt, outcome) "
	                        "VALUES ($1::bigint, 1, 'bogus')",
	                        ids, NULL),
	             "23514", "INSERT of attempt outcome 'bogus'");
	after = job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(count_jobs(c), 1);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 0);

	/* The same rows done right are accepted: the constraints are not blanket refusals. */
	set_state(c, id, "running");
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.attempts (job_id, attempt, outcome) "
	               "VALUES ($1::bigint, 1, 'lost')",
	               ids, NULL));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'", NULL),
	                 1);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

/* ------------------------------------------------------------- migrations */

START_TEST(test_migrate_twice_keeps_data_and_records_each_migration_once)
{
	PGconn *c = t_connect();
	long long id =
	    t_int(c, "SELECT pgjobd.enqueue('t', '{\"keep\": true}', queue => 'q')", NULL);
	char *before, *after, *s;

	before = job_row(c, id);
	run_migrate();
	after = job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(count_jobs(c), 1);
	s = t_str(c,
	          "SELECT string_agg(version::text, ',' ORDER BY version) FROM pgjobd.migrations",
	          NULL);
	ck_assert_str_eq(s, MIGRATION_VERSIONS);
	free(s);
	/* Still a working API after the no-op migration. */
	ck_assert_int_gt(t_int(c, "SELECT pgjobd.enqueue('t')", NULL), id);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

/* A child process whose stdout and stderr are collected. */
struct proc {
	pid_t pid;
	int fd[2];    /* stdout, stderr; -1 at EOF */
	char *buf[2]; /* what they said, NUL-terminated */
	size_t len[2];
	int status;
};

static void
proc_start(struct proc *p, char *const argv[])
{
	int po[2], pe[2];
	posix_spawn_file_actions_t fa;

	ck_assert(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	ck_assert_msg(posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ) == 0,
	              "cannot start %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	p->fd[0] = po[0];
	p->fd[1] = pe[0];
	for (int i = 0; i < 2; i++) {
		p->buf[i] = calloc(1, 1);
		p->len[i] = 0;
	}
}

/* Collect the output of the N processes P until they exit (each status
 * as t_run reports it); kill them all and fail after TIMEOUT_MS. */
static void
proc_wait_all(struct proc *p, int n, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pf[8];
		int open = 0;
		int64_t left = deadline - t_now_ms();

		ck_assert_int_le(n, 4);
		for (int i = 0; i < n; i++)
			for (int k = 0; k < 2; k++) {
				pf[i * 2 + k] = (struct pollfd){p[i].fd[k], POLLIN, 0};
				open += p[i].fd[k] >= 0;
			}
		if (open == 0)
			break;
		if (left <= 0) {
			for (int i = 0; i < n; i++) {
				kill(p[i].pid, SIGKILL);
				waitpid(p[i].pid, NULL, 0);
			}
			ck_abort_msg("pgjobd --migrate did not finish within %d ms", timeout_ms);
		}
		if (poll(pf, (nfds_t)(n * 2), (int)left) < 0)
			continue;
		for (int i = 0; i < n; i++)
			for (int k = 0; k < 2; k++) {
				char chunk[4096];
				ssize_t got;

				if (p[i].fd[k] < 0 || !pf[i * 2 + k].revents)
					continue;
				got = read(p[i].fd[k], chunk, sizeof chunk);
				if (got < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				if (got <= 0) {
					close(p[i].fd[k]);
					p[i].fd[k] = -1;
					continue;
				}
				p[i].buf[k] = realloc(p[i].buf[k], p[i].len[k] + (size_t)got + 1);
				memcpy(p[i].buf[k] + p[i].len[k], chunk, (size_t)got);
				p[i].len[k] += (size_t)got;
				p[i].buf[k][p[i].len[k]] = '\0';
			}
	}
	for (int i = 0; i < n; i++) {
		int st;

		ck_assert_msg(waitpid(p[i].pid, &st, 0) == p[i].pid, "waitpid: %s",
		              strerror(errno));
		p[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

START_TEST(test_two_concurrent_migrations_of_a_fresh_database_both_succeed)
{
	char *cfg = t_config("");
	char **argv = t_dup_vec((const char *const[]){t_pgjobd(), "-c", cfg, "--migrate", NULL});

	for (int round = 0; round < 5; round++) {
		struct proc p[2];
		PGconn *holder = NULL, *mon;
		char *s;

		t_use_fresh_db(RACE_DB);
		mon = t_connect();
		/*
		 * On even rounds, make the overlap certain rather than likely:
		 * hold a SHARE lock on this database's pg_namespace, which any
		 * CREATE SCHEMA has to wait for, until both migrations are
		 * seen waiting on a lock (the first on it, the second on
		 * whatever serializes migrations, or on it too).
		 */
		if (round % 2 == 0) {
			holder = t_connect();
			PQclear(t_exec(holder, "BEGIN", NULL));
			PQclear(t_exec(holder, "LOCK TABLE pg_catalog.pg_namespace IN SHARE MODE",
			               NULL));
		}
		proc_start(&p[0], argv);
		proc_start(&p[1], argv);
		if (holder) {
			int64_t deadline = t_now_ms() + DEADLINE_MS;
			char pids[64];

			snprintf(pids, sizeof pids, "{%d,%d}", PQbackendPID(mon),
			         PQbackendPID(holder));
			while (
			    t_int(mon,
			          "SELECT count(*) FROM pg_stat_activity "
			          "WHERE datname = current_database() AND wait_event_type = 'Lock' "
			          "AND NOT pid = ANY($1::int[])",
			          pids, NULL) < 2) {
				int st;

				for (int i = 0; i < 2; i++)
					ck_assert_msg(waitpid(p[i].pid, &st, WNOHANG) == 0,
					              "round %d: a migration ended while the "
					              "schema was locked",
					              round);
				ck_assert_msg(
				    t_now_ms() < deadline,
				    "round %d: the two migrations were never both waiting", round);
				(void)poll(NULL, 0, 10); /* the poll interval of this check */
			}
			PQclear(t_exec(holder, "ROLLBACK", NULL));
			PQfinish(holder);
		}
		proc_wait_all(p, 2, MIGRATE_TIMEOUT_MS);
		for (int i = 0; i < 2; i++) {
			ck_assert_msg(p[i].status == 0,
			              "round %d: migration %d exited %d; stderr:\n%s", round, i,
			              p[i].status, p[i].buf[1]);
			ck_assert_msg(strcmp(p[i].buf[0], T_MIGRATED) == 0,
			              "round %d: migration %d printed \"%s\"", round, i,
			              p[i].buf[0]);
			free(p[i].buf[0]);
			free(p[i].buf[1]);
		}
		s = t_str(mon,
		          "SELECT string_agg(version::text, ',' ORDER BY version) "
		          "FROM pgjobd.migrations",
		          NULL);
		ck_assert_msg(s && strcmp(s, MIGRATION_VERSIONS) == 0,
		              "round %d: pgjobd.migrations holds versions %s", round,
		              s ? s : "NULL");
		free(s);
		ck_assert_int_eq(t_int(mon, "SELECT pgjobd.enqueue('t')", NULL), 1);
		PQfinish(mon);
	}
	setenv("PGDATABASE", MAIN_DB, 1);
	unlink(cfg);
	free(cfg);
	t_free_vec(argv);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static TCase *
tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup_database, NULL);
	tcase_add_checked_fixture(tc, clear_state, NULL);
	tcase_set_timeout(tc, 60);
	return tc;
}

static Suite *
sql_suite(void)
{
	Suite *s = suite_create("sql");
	TCase *tc;

	tc = tcase("enqueue");
	tcase_add_test(tc, test_enqueue_defaults_give_ready_default_job_due_now);
	tcase_add_test(tc, test_enqueue_stores_every_named_argument);
	tcase_add_test(tc, test_enqueue_positional_arguments_follow_contract_order);
	tcase_add_loop_test(tc, test_enqueue_refuses_bad_argument_and_writes_nothing, 0, NREFUSALS);
	tcase_add_test(tc, test_payload_sizes_in_refusals_are_just_over_the_limit);
	tcase_add_loop_test(tc, test_enqueue_accepts_boundary_argument, 0, NACCEPTANCES);
	suite_add_tcase(s, tc);

	tc = tcase("idempotency");
	tcase_add_test(tc, test_enqueue_same_queue_and_key_returns_first_job_and_changes_nothing);
	tcase_add_test(tc, test_enqueue_same_key_in_another_queue_is_a_new_job);
	tcase_add_test(tc, test_enqueue_without_key_never_deduplicates);
	tcase_add_test(tc, test_enqueue_key_is_free_again_once_first_job_is_deleted);
	tcase_add_test(tc, test_enqueue_same_key_from_8_sessions_at_once_makes_one_job);
	suite_add_tcase(s, tc);

	tc = tcase("notify");
	tcase_add_test(tc, test_enqueue_notifies_once_per_queue_per_transaction_and_only_when_due);
	suite_add_tcase(s, tc);

	tc = tcase("cancel_retry");
	tcase_add_test(tc, test_cancel_ready_job_makes_it_cancelled);
	tcase_add_test(tc,
	               test_cancel_of_finished_or_missing_job_returns_false_and_changes_nothing);
	tcase_add_test(tc,
	               test_cancel_running_job_clears_lease_records_attempt_and_notifies_worker);
	tcase_add_test(tc, test_retry_dead_or_cancelled_job_makes_it_ready_with_attempts_reset);
	tcase_add_test(
	    tc, test_retry_of_ready_running_done_or_missing_job_returns_false_and_changes_nothing);
	suite_add_tcase(s, tc);

	tc = tcase("schema");
	tcase_add_test(tc, test_queue_stats_counts_every_state_per_queue);
	tcase_add_test(tc, test_relations_have_contract_columns);
	tcase_add_test(tc, test_check_constraints_refuse_bad_rows_written_directly);
	suite_add_tcase(s, tc);

	tc = tcase("migrate");
	tcase_add_test(tc, test_migrate_twice_keeps_data_and_records_each_migration_once);
	tcase_add_test(tc, test_two_concurrent_migrations_of_a_fresh_database_both_succeed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(sql_suite());
}
