/*
 * check_sql: the SQL API of CONTRACT section 3 but enqueue (check_enqueue),
 * driven through libpq against the throwaway cluster of tests/with-pg.sh:
 * cancel() and retry() on jobs in every state (and the notification a
 * cancelled job's worker gets), queue_stats(), the relations' contract
 * columns and check constraints, and `pgjobd --migrate` run twice or by
 * two processes at once on a fresh database.
 *
 * Nothing here sleeps in place of synchronisation: notifications are known
 * to be complete by the sync notification of sqllib, and concurrent
 * migrations are waited for with a deadline.
 */
#include "sqllib.h"

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

#define RACE_DB "pgjobd_sql_race"
/* What `pgjobd --migrate` prints, and the versions pgjobd.migrations then
 * holds (comma-separated): one per sql/NNN_*.sql file. */
#define MIGRATION_VERSIONS "1,2,3,4,5,6,7"

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

/* ----------------------------------------------------------------- cancel */

START_TEST(test_cancel_ready_job_makes_it_cancelled)
{
	PGconn *c = t_connect();
	long long id = s_enqueue_into(c, "q");
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
		long long id = s_enqueue_into(c, "q");
		char *before, *after;

		s_set_state(c, id, states[i]);
		before = s_job_row(c, id);
		ck_assert_msg(!call_bool(c, "cancel", id), "cancel of a %s job returned true",
		              states[i]);
		after = s_job_row(c, id);
		ck_assert_msg(strcmp(before, after) == 0, "cancel changed a %s job:\n%s\n%s",
		              states[i], before, after);
		free(before);
		free(after);
	}
	ck_assert(!call_bool(c, "cancel", 1000000));
	ck_assert_int_eq(s_count_jobs(c), 3);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 0);
	PQfinish(c);
}
END_TEST

START_TEST(test_cancel_running_job_clears_lease_records_attempt_and_notifies_worker)
{
	PGconn *l = s_listener("pgjobd_cancel");
	PGconn *c = t_connect();
	long long id = s_enqueue_into(c, "q");
	char ids[32], *s;
	struct s_notes notes;

	snprintf(ids, sizeof ids, "%lld", id);
	s_set_state(c, id, "running");
	s_collect_notes(l, c, &notes); /* nothing so far */
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
	s_collect_notes(l, c, &notes);
	s_assert_one_note(&notes, "pgjobd_cancel", ids);

	/* Cancelling it again is refused and records nothing more. */
	ck_assert(!call_bool(c, "cancel", id));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 1);
	s_collect_notes(l, c, &notes);
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
	PGconn *l = s_listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct s_notes notes;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long long id = s_enqueue_into(c, cases[i].queue);
		char ids[32], sql[160], *s;

		snprintf(ids, sizeof ids, "%lld", id);
		s_set_state(c, id, cases[i].state);
		snprintf(sql, sizeof sql,
		         "UPDATE pgjobd.jobs SET run_at = %s WHERE id = $1::bigint",
		         cases[i].run_at);
		PQclear(t_exec(c, sql, ids, NULL));
		s_collect_notes(l, c, &notes); /* drop the enqueue's */

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
		s_collect_notes(l, c, &notes);
		s_assert_one_note(&notes, "pgjobd_enqueue", cases[i].queue);
	}
	PQfinish(c);
	PQfinish(l);
}
END_TEST

START_TEST(test_retry_of_ready_running_done_or_missing_job_returns_false_and_changes_nothing)
{
	static const char *const states[] = {"ready", "running", "done"};
	PGconn *l = s_listener("pgjobd_enqueue");
	PGconn *c = t_connect();
	struct s_notes notes;

	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		long long id = s_enqueue_into(c, "q");
		char *before, *after;

		s_set_state(c, id, states[i]);
		before = s_job_row(c, id);
		s_collect_notes(l, c, &notes); /* drop the enqueue's */
		ck_assert_msg(!call_bool(c, "retry", id), "retry of a %s job returned true",
		              states[i]);
		after = s_job_row(c, id);
		ck_assert_msg(strcmp(before, after) == 0, "retry changed a %s job:\n%s\n%s",
		              states[i], before, after);
		s_collect_notes(l, c, &notes);
		ck_assert_msg(notes.n == 0, "retry of a %s job notified %s", states[i],
		              notes.payload[0]);
		free(before);
		free(after);
	}
	ck_assert(!call_bool(c, "retry", 1000000));
	ck_assert_int_eq(s_count_jobs(c), 3);
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
		s_set_state(c, t_int(c, sql, queue, NULL), state);
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
	long long id = s_enqueue_into(c, "q");
	char ids[32], *before, *after;

	snprintf(ids, sizeof ids, "%lld", id);
	before = s_job_row(c, id);
	s_assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, state) VALUES ('t', 'bogus')", NULL),
	    "23514", "INSERT of state 'bogus'");
	s_assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, state) VALUES ('t', 'running')", NULL),
	    "23514", "INSERT of a running row without lease token");
	s_assert_error(
	    t_exec_any(c, "INSERT INTO pgjobd.jobs (type, lease_token) VALUES ('t', 1)", NULL),
	    "23514", "INSERT of a ready row with a lease token");
	s_assert_error(t_exec_any(c, "INSERT INTO pgjobd.jobs (type) VALUES ('a b')", NULL), "23514",
	             "INSERT of a bad type");
	s_assert_error(t_exec_any(c,
	                        "UPDATE pgjobd.jobs SET state = 'finished' WHERE id = $1::bigint",
	                        ids, NULL),
	             "23514", "UPDATE to state 'finished'");
	s_assert_error(t_exec_any(c, "UPDATE pgjobd.jobs SET state = 'running' WHERE id = $1::bigint",
	                        ids, NULL),
	             "23514", "UPDATE to running without lease token");
	s_assert_error(t_exec_any(c,
	                        "INSERT INTO pgjobd.attempts (job_id, attempt, outcome) "
	                        "VALUES ($1::bigint, 1, 'bogus')",
	                        ids, NULL),
	             "23514", "INSERT of attempt outcome 'bogus'");
	after = s_job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(s_count_jobs(c), 1);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts", NULL), 0);

	/* The same rows done right are accepted: the constraints are not blanket refusals. */
	s_set_state(c, id, "running");
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

	before = s_job_row(c, id);
	s_run_migrate();
	after = s_job_row(c, id);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(s_count_jobs(c), 1);
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

static Suite *
sql_suite(void)
{
	Suite *s = suite_create("sql");
	TCase *tc;

	tc = s_tcase("cancel_retry");
	tcase_add_test(tc, test_cancel_ready_job_makes_it_cancelled);
	tcase_add_test(tc,
	               test_cancel_of_finished_or_missing_job_returns_false_and_changes_nothing);
	tcase_add_test(tc,
	               test_cancel_running_job_clears_lease_records_attempt_and_notifies_worker);
	tcase_add_test(tc, test_retry_dead_or_cancelled_job_makes_it_ready_with_attempts_reset);
	tcase_add_test(
	    tc, test_retry_of_ready_running_done_or_missing_job_returns_false_and_changes_nothing);
	suite_add_tcase(s, tc);

	tc = s_tcase("schema");
	tcase_add_test(tc, test_queue_stats_counts_every_state_per_queue);
	tcase_add_test(tc, test_relations_have_contract_columns);
	tcase_add_test(tc, test_check_constraints_refuse_bad_rows_written_directly);
	suite_add_tcase(s, tc);

	tc = s_tcase("migrate");
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
