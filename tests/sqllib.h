/*
 * sqllib: helpers shared by the suites of the SQL API (check_enqueue,
 * check_sql), driven through libpq against the throwaway cluster of
 * tests/with-pg.sh.
 *
 * The schema is installed once per suite by the real binary (`pgjobd
 * --migrate`, PGJOBD_BIN) into database MAIN_DB; every test of a case made
 * by s_tcase() then starts from empty tables (a checked fixture truncates
 * them in the test's child).
 *
 * Notifications are known to be complete when a later "sync" notification
 * (sent after the transaction under test committed) has arrived, because
 * PostgreSQL delivers notifications to a listener in commit order.
 */
#ifndef PGJOBD_SQLLIB_H
#define PGJOBD_SQLLIB_H

#include "testlib.h"

#define MAIN_DB "pgjobd_sql"
#define DEADLINE_MS 20000     /* for any wait on another session */
#define MIGRATE_TIMEOUT_MS 30000

/* Run `pgjobd -c CONFIG --migrate` on the current database and assert
 * that it succeeds with the expected version line. */
void s_run_migrate(void);
long long s_count_jobs(PGconn *c);
/* The whole row of job ID as JSON text ("" when there is none), to prove
 * that a call changed nothing.  The caller frees it. */
char *s_job_row(PGconn *c, long long id);
/* Enqueue a job of type "t" into QUEUE, due now; returns its id. */
long long s_enqueue_into(PGconn *c, const char *queue);
/* Put job ID into STATE directly, the way a daemon would have: running
 * with a fresh lease, or finished a minute ago. */
void s_set_state(PGconn *c, long long id, const char *state);
/* Assert that R is an error with SQLSTATE; frees R. */
void s_assert_error(PGresult *r, const char *sqlstate, const char *what);

/* ---- notifications ---- */

#define MAX_NOTES 32
#define SYNC_CHANNEL "pgjobd_test_sync"

struct s_notes {
	int n;
	char channel[MAX_NOTES][64];
	char payload[MAX_NOTES][160];
};
/* A listener for CHANNEL (and for the sync channel). */
PGconn *s_listener(const char *channel);
/* Collect every notification L receives from now until the sync
 * notification that SENDER sends after the transactions under test have
 * committed: "none" and "exactly one" are decided without waiting for a
 * quiet period. */
void s_collect_notes(PGconn *l, PGconn *sender, struct s_notes *out);
/* Assert NOTES holds exactly the one notification CHANNEL/PAYLOAD. */
void s_assert_one_note(const struct s_notes *notes, const char *channel, const char *payload);

/* A test case NAME: the schema installed once, each test from empty
 * tables, 60 seconds each. */
TCase *s_tcase(const char *name);

#endif
