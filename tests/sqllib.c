/*
 * sqllib: helpers shared by check_enqueue and check_sql (sqllib.h).
 */
#include "sqllib.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run `pgjobd -c CONFIG --migrate` on the current database and assert
 * that it succeeds with the expected version line. */
void
s_run_migrate(void)
{
	t_migrate(NULL, NULL, T_MIGRATED);
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
	s_run_migrate();
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

long long
s_count_jobs(PGconn *c)
{
	return t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL);
}

/* The whole row of job ID as JSON text ("" when there is none), to prove
 * that a call changed nothing.  The caller frees it. */
char *
s_job_row(PGconn *c, long long id)
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
long long
s_enqueue_into(PGconn *c, const char *queue)
{
	return t_int(c, "SELECT pgjobd.enqueue('t', queue => $1)", queue, NULL);
}

/* Put job ID into STATE directly, the way a daemon would have: running
 * with a fresh lease, or finished a minute ago. */
void
s_set_state(PGconn *c, long long id, const char *state)
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
void
s_assert_error(PGresult *r, const char *sqlstate, const char *what)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: not refused (status %s)", what,
	              PQresStatus(PQresultStatus(r)));
	ck_assert_msg(st && strcmp(st, sqlstate) == 0, "%s: SQLSTATE %s, expected %s: %s", what,
	              st ? st : "(none)", sqlstate, PQresultErrorMessage(r));
	PQclear(r);
}

/* ---------------------------------------------------------- notifications */


/* A listener for CHANNEL (and for the sync channel). */
PGconn *
s_listener(const char *channel)
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
void
s_collect_notes(PGconn *l, PGconn *sender, struct s_notes *out)
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
void
s_assert_one_note(const struct s_notes *notes, const char *channel, const char *payload)
{
	ck_assert_msg(notes->n == 1, "%d notifications, expected one on %s with \"%s\"%s%s %s",
	              notes->n, channel, payload, notes->n ? "; first: " : "",
	              notes->n ? notes->channel[0] : "", notes->n ? notes->payload[0] : "");
	ck_assert_str_eq(notes->channel[0], channel);
	ck_assert_str_eq(notes->payload[0], payload);
}

/* ------------------------------------------------------------------ suite */

TCase *
s_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup_database, NULL);
	tcase_add_checked_fixture(tc, clear_state, NULL);
	tcase_set_timeout(tc, 60);
	return tc;
}
