/*
 * check_daemon: the daemon process itself (CONTRACT sections 3-7) proven
 * against the real pgjobd binary (PGJOBD_BIN) and the throwaway cluster of
 * tests/with-pg.sh: several daemons on one queue never run a job twice and
 * fence each other's stale outcomes, a killed daemon's jobs are rescued,
 * cancel() reaches a running handler, SIGTERM drains and SIGHUP reloads,
 * database outages lose no job, and the worker row lives as long as the
 * daemon.  What becomes of each job is check_jobs.
 *
 * Every test makes its own database, migrates it with `pgjobd --migrate`,
 * starts one or two daemons, enqueues with SQL and waits for what it
 * expects with a deadline: no sleep stands in for synchronisation.
 * Handlers are small sh scripts written inline in the config; the ones that
 * must be held running wait for a file the test creates, and report their
 * pid through a file so that the test can watch the process itself.
 *
 * Durations are short (lease 2s, heartbeat 500ms, kill_grace 500ms) so that
 * the suite stays within a few minutes even under AddressSanitizer.  Every
 * clean stop asserts exit status 0: under ASan a leak report makes it
 * non-zero, so a leak in the daemon fails the test that caused it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemonlib.h"

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void
rewrite_config(const char *path, const char *text)
{
	char *full = d_asprintf("[pgjobd]\ndatabase =\n%s", text);

	write_text(path, full);
	free(full);
}

static void
touch(const char *dir, const char *name)
{
	char *p = d_asprintf("%s/%s", dir, name);

	write_text(p, "");
	free(p);
}

static void
expect_log(struct t_daemon *d, const char *needle)
{
	char *log = t_daemon_log(d);

	ck_assert_msg(strstr(log, needle) != NULL, "daemon log has no \"%s\":\n%s", needle,
	    t_log_tail(log));
	free(log);
}

/* ---- several daemons, crashes, fencing ---- */

START_TEST(test_two_daemons_never_run_a_job_twice)
{
	char *cfg_a = d_config(FAST "name = w-a\nconcurrency = 4\n[handler.fast]\ncommand = /bin/true\n");
	char *cfg_b = d_config(FAST "name = w-b\nconcurrency = 4\n[handler.fast]\ncommand = /bin/true\n");
	PGconn *c = t_fresh_schema("pgjobd_d_two", cfg_a);
	struct t_daemon *a = d_start(cfg_a, NULL), *b = d_start(cfg_b, NULL);

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('fast', jsonb_build_object('i', g))"
			  "  FROM generate_series(1, 2000) g", NULL));
	d_wait_value(c, "2000", 150000, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	d_stop(a);
	d_stop(b);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE attempts = 1"), 2000);
	/* Exactly one attempt row per job, and it is the done one. */
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts"), 2000);
	ck_assert_int_eq(d_qint(c, "SELECT count(DISTINCT job_id) FROM pgjobd.attempts"
				 " WHERE outcome = 'done' AND attempt = 1"), 2000);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts a JOIN pgjobd.jobs j"
				 " ON j.id = a.job_id WHERE a.worker = j.worker"), 2000);
	/* Both worked. */
	ck_assert_int_eq(d_qint(c, "SELECT count(DISTINCT worker) FROM pgjobd.attempts"
				 " WHERE worker IN ('w-a', 'w-b')"), 2);
	ck_assert_int_gt(d_qint(c, "SELECT min(n) FROM (SELECT count(*) AS n FROM pgjobd.attempts"
				 " GROUP BY worker) s"), 0);
	PQfinish(c);
	d_drop_config(cfg_a);
	d_drop_config(cfg_b);
}
END_TEST

/* A handler that, on its first attempt only, writes its pid to DIR/pid and
 * sleeps "forever"; later attempts print "second" and succeed. */
#define FIRST_ATTEMPT_HANGS                                                                        \
	"command = /bin/sh -c 'if [ \"$PGJOBD_ATTEMPT\" = 1 ]; then echo $$ > %s/pid;"            \
	" exec sleep 1000; fi; echo second'\n"

START_TEST(test_killed_daemons_job_is_rescued_after_lease_expiry)
{
	char *dir = d_make_dir();
	char *cfg_a = d_config(FAST "name = w-a\n[handler.slow]\n" FIRST_ATTEMPT_HANGS, dir);
	char *cfg_b = d_config(FAST "name = w-b\n[handler.slow]\n" FIRST_ATTEMPT_HANGS, dir);
	PGconn *c = t_fresh_schema("pgjobd_d_rescue", cfg_a);
	struct t_daemon *a = d_start(cfg_a, NULL), *b;
	long long id = d_enqueue(c, "slow", "{}");
	pid_t handler;
	int rc;

	handler = d_wait_pid_file(dir, "pid", JOB_MS);
	d_track_group(handler);
	d_wait_state(c, id, "running", JOB_MS);
	d_untrack_daemon(a->pid);
	rc = t_daemon_signal(a, SIGKILL, true, 10000);
	ck_assert_int_eq(rc, 128 + SIGKILL);
	t_daemon_stop(a);
	/* Its handler, in a session of its own, outlives it. */
	ck_assert(d_alive(handler));

	b = d_start(cfg_b, NULL);
	d_wait_state(c, id, "done", JOB_MS);
	d_expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	d_expect_job(c, id, "attempts = 2 AND worker = 'w-b' AND result = 'second' || chr(10)");
	expect_log(b, "outcome=lost");
	d_stop(b);
	killpg(handler, SIGKILL);
	d_wait_dead(handler, 5000);
	d_untrack_group(handler);
	PQfinish(c);
	d_drop_config(cfg_a);
	d_drop_config(cfg_b);
	d_remove_dir(dir);
}
END_TEST

START_TEST(test_stale_outcome_is_refused)
{
	/* Both daemons run a handler that waits for DIR/go.ATTEMPT.  A's
	 * heartbeat (14s) and poll (1h) stay out of the way: it neither
	 * notices the lost lease nor rescues the job itself. */
	char *dir = d_make_dir();
	char *h = d_asprintf("[handler.wait]\ncommand = /bin/sh -c 'while [ ! -e %s/go.$PGJOBD_ATTEMPT ];"
			    " do sleep 0.02; done; echo attempt $PGJOBD_ATTEMPT'\n", dir);
	char *cfg_a = d_config(TIMINGS("30s", "14s", "1h") "name = w-a\nconcurrency = 1\n%s", h);
	char *cfg_b = d_config(TIMINGS("2s", "500ms", "200ms") "name = w-b\n%s", h);
	PGconn *c = t_fresh_schema("pgjobd_d_fence", cfg_a);
	struct t_daemon *a = d_start(cfg_a, NULL), *b;
	long long id = d_enqueue(c, "wait", "{}"), token_a, token_b;
	char *log;

	d_wait_value(c, "running w-a 1", JOB_MS,
	    "SELECT state || ' ' || worker || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", id);
	token_a = d_qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	/* A's lease expires (as if A had been cut off), B rescues the job
	 * and runs it under a new lease. */
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET lease_expires_at = now() - interval '1 s'"
			  " WHERE state = 'running'", NULL));
	b = d_start(cfg_b, NULL);
	d_wait_value(c, "running w-b 2", JOB_MS,
	    "SELECT state || ' ' || worker || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", id);
	token_b = d_qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_int_ne(token_a, token_b);

	/* A's handler finishes: its outcome carries a stale token. */
	touch(dir, "go.1");
	t_daemon_wait_log(a, "refused", JOB_MS);
	d_expect_job(c, id, "state = 'running' AND worker = 'w-b' AND attempts = 2 AND"
	    " lease_token = %lld AND result IS NULL", token_b);
	d_expect_history(c, id, true, "1:lost:w-a");

	touch(dir, "go.2");
	d_wait_state(c, id, "done", JOB_MS);
	d_expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	d_expect_job(c, id, "result = 'attempt 2' || chr(10)");
	/* A's totals do not count the refused outcome as done. */
	log = d_expect_clean_exit(a, SIGTERM, STOP_MS);
	ck_assert_msg(strstr(log, "stopped: done 0,") != NULL, "A's log:\n%s", t_log_tail(log));
	free(log);
	d_stop(b);
	d_expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	free(h);
	PQfinish(c);
	d_drop_config(cfg_a);
	d_drop_config(cfg_b);
	d_remove_dir(dir);
}
END_TEST

START_TEST(test_cancel_kills_running_handler_within_a_second)
{
	char *dir = d_make_dir();
	char *cfg = d_config(FAST "[handler.sleep]\n"
				"command = /bin/sh -c 'echo $$ > %s/pid; exec sleep 1000'\n",
	    dir);
	PGconn *c = t_fresh_schema("pgjobd_d_cancel", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "sleep", "{}");
	char *finished, *after;
	int64_t t0, took;
	pid_t handler;

	handler = d_wait_pid_file(dir, "pid", JOB_MS);
	d_track_group(handler);
	d_wait_state(c, id, "running", JOB_MS);
	ck_assert(d_alive(handler));
	t0 = t_now_ms();
	ck_assert_int_eq(d_qint(c, "SELECT pgjobd.cancel(%lld)::int", id), 1);
	d_wait_dead(handler, 1500);
	took = t_now_ms() - t0;
	ck_assert_msg(took <= 1500, "handler died %" PRId64 " ms after the cancel", took);
	d_untrack_group(handler);

	/* The daemon saw it and wrote nothing after cancel() did. */
	t_daemon_wait_log(d, "outcome=cancelled", JOB_MS);
	finished = d_qstr(c, "SELECT finished_at::text FROM pgjobd.jobs WHERE id = %lld", id);
	d_stop(d);
	d_expect_job(c, id, "state = 'cancelled' AND attempts = 1 AND lease_token IS NULL");
	d_expect_history(c, id, false, "1:cancelled");
	after = d_qstr(c, "SELECT finished_at::text FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_str_eq(after, finished);
	free(finished);
	free(after);
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

/* ---- signals ---- */

START_TEST(test_sigterm_drain_lets_running_handler_finish)
{
	char *cfg = d_config(FAST "shutdown_timeout = 10s\n"
				"[handler.sec]\ncommand = /bin/sh -c 'sleep 1; echo finished'\n");
	PGconn *c = t_fresh_schema("pgjobd_d_drain", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "sec", "{}"), late;

	d_wait_state(c, id, "running", JOB_MS);
	t_daemon_signal(d, SIGTERM, false, 0);
	t_daemon_wait_log(d, "stopping:", 5000);
	/* Leasing has stopped: a job enqueued now waits. */
	late = d_enqueue(c, "sec", "{}");
	free(d_expect_clean_exit(d, 0, 15000));
	d_expect_job(c, id, "state = 'done' AND result = 'finished' || chr(10)");
	d_expect_history(c, id, false, "1:done");
	d_expect_job(c, late, "state = 'ready' AND attempts = 0");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

/* A handler that writes its pid to DIR/pid and sleeps. */
#define SLEEPER "[handler.sleep]\ncommand = /bin/sh -c 'echo $$ > %s/pid; exec sleep 1000'\n"

START_TEST(test_sigterm_drain_timeout_kills_and_hands_job_back)
{
	char *dir = d_make_dir();
	char *cfg = d_config(FAST "shutdown_timeout = 500ms\n" SLEEPER, dir);
	PGconn *c = t_fresh_schema("pgjobd_d_draintimeout", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "sleep", "{}");
	pid_t handler;

	handler = d_wait_pid_file(dir, "pid", JOB_MS);
	d_track_group(handler);
	d_wait_state(c, id, "running", JOB_MS);
	free(d_expect_clean_exit(d, SIGTERM, 10000));
	ck_assert(!d_alive(handler));
	d_untrack_group(handler);
	/* Handed back, the attempt not counted, no attempt row. */
	d_expect_job(c, id, "state = 'ready' AND attempts = 0 AND lease_token IS NULL");
	d_expect_history(c, id, false, "");
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

START_TEST(test_second_sigterm_skips_the_wait)
{
	char *dir = d_make_dir();
	char *cfg = d_config(FAST "shutdown_timeout = 60s\n" SLEEPER, dir);
	PGconn *c = t_fresh_schema("pgjobd_d_twice", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "sleep", "{}");
	int64_t t0;
	pid_t handler;

	handler = d_wait_pid_file(dir, "pid", JOB_MS);
	d_track_group(handler);
	d_wait_state(c, id, "running", JOB_MS);
	t0 = t_now_ms();
	t_daemon_signal(d, SIGTERM, false, 0);
	t_daemon_wait_log(d, "stopping:", 5000);
	ck_assert(d_alive(handler));
	free(d_expect_clean_exit(d, SIGTERM, 10000));
	ck_assert_msg(t_now_ms() - t0 < 10000, "stopping took %" PRId64 " ms", t_now_ms() - t0);
	ck_assert(!d_alive(handler));
	d_untrack_group(handler);
	d_expect_job(c, id, "state = 'ready' AND attempts = 0");
	d_expect_history(c, id, false, "");
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

START_TEST(test_sighup_good_config_adds_handler_and_spares_running_ones)
{
	char *dir = d_make_dir();
	char *old = d_asprintf(FAST "[handler.old]\ncommand = /bin/sh -c 'while [ ! -e %s/go ];"
				   " do sleep 0.02; done; echo old'\n", dir);
	char *cfg = d_config("%s", old), *more;
	PGconn *c = t_fresh_schema("pgjobd_d_hupgood", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long o = d_enqueue(c, "old", "{}"), x;

	d_wait_state(c, o, "running", JOB_MS);
	more = d_asprintf("%s[handler.x]\ncommand = /bin/echo new type\n", old);
	rewrite_config(cfg, more);
	t_daemon_signal(d, SIGHUP, false, 0);
	t_daemon_wait_log(d, "configuration reloaded", 5000);
	x = d_enqueue(c, "x", "{}");
	d_wait_state(c, x, "done", JOB_MS);
	d_expect_job(c, x, "result = 'new type' || chr(10)");
	/* The old handler was left alone. */
	d_expect_job(c, o, "state = 'running' AND attempts = 1");
	touch(dir, "go");
	d_wait_state(c, o, "done", JOB_MS);
	d_expect_job(c, o, "result = 'old' || chr(10)");
	d_expect_history(c, o, false, "1:done");
	d_stop(d);
	free(old);
	free(more);
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

START_TEST(test_sighup_bad_config_is_logged_and_old_one_kept)
{
	const char *good = FAST "[handler.old]\ncommand = /bin/echo old\n";
	char *cfg = d_config("%s", good), *bad, *where;
	PGconn *c = t_fresh_schema("pgjobd_d_hupbad", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id;
	int line;

	/* Line 1 [pgjobd], 2 database, then GOOD's lines, then the bad key. */
	bad = d_asprintf("%sbogus_key = 1\n", good);
	line = 3 + t_count_of(good, "\n");
	rewrite_config(cfg, bad);
	t_daemon_signal(d, SIGHUP, false, 0);
	t_daemon_wait_log(d, "reload failed", 5000);
	where = d_asprintf("%s:%d: ", cfg, line);
	expect_log(d, where);
	free(where);
	/* Still running, with the old config. */
	ck_assert_int_eq(waitpid(d->pid, NULL, WNOHANG), 0);
	id = d_enqueue(c, "old", "{}");
	d_wait_state(c, id, "done", JOB_MS);
	d_expect_job(c, id, "result = 'old' || chr(10)");
	d_stop(d);
	free(bad);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

/* ---- the database goes away ---- */

static void
pgctl(const char *what)
{
	const char *src = getenv("PGJOBD_SRCDIR");
	char *path = d_asprintf("%s/tests/pgctl.sh", src && *src ? src : ".");
	const char *argv[] = {"/bin/sh", path, what, NULL};
	char *err;
	int rc = t_run(argv, NULL, &err, 90000);

	ck_assert_msg(rc == 0, "pgctl.sh %s: %s", what, err);
	d_cluster_stopped(!strcmp(what, "stop") ? path : NULL);
	free(err);
	free(path);
}

START_TEST(test_database_restart_loses_no_job)
{
	/* Two long handlers run across the outage; short ones keep the
	 * connection busy with leases and outcomes when the server dies.
	 * The outage (a second or two) is shorter than the lease: the leases
	 * the daemon knows of survive it, and no job is done twice. */
	char *cfg = d_config(TIMINGS("10s", "500ms", "500ms") "concurrency = 6\n"
				"[handler.long]\ncommand = /bin/sh -c 'sleep 1.5; echo long'\n"
				"[handler.work]\ncommand = /bin/sh -c 'sleep 0.02; echo ok'\n");
	PGconn *c = t_fresh_schema("pgjobd_d_restart", cfg);
	struct t_daemon *d;
	char *log;

	/* synchronous_commit = off (the throwaway cluster's setting) lets a
	 * crash lose commits the daemon was told had happened; this test is
	 * about the daemon, not about that. */
	PQclear(t_exec(c, "ALTER DATABASE pgjobd_d_restart SET synchronous_commit = on", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('long', '{}', priority => -1)"
			  "  FROM generate_series(1, 2) g", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('work', jsonb_build_object('i', g))"
			  "  FROM generate_series(1, 300) g", NULL));
	d = d_start(cfg, NULL);
	d_wait_value(c, "t", JOB_MS,
	    "SELECT count(*) FILTER (WHERE type = 'long' AND state = 'running') = 2 AND"
	    " count(*) FILTER (WHERE state = 'done') >= 20 FROM pgjobd.jobs");
	PQfinish(c);
	pgctl("restart"); /* -m immediate: a crash */
	c = t_connect();
	ck_assert_int_gt(d_qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE state <> 'done'"), 0);
	d_wait_value(c, "302", 60000, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* Every job done exactly once.  One case may cost an attempt, and
	 * only that one: a lease that committed just before the crash whose
	 * reply never reached the daemon.  Its job runs again after the lease
	 * expires, counted 'lost' (at-least-once); at most one lease batch
	 * (concurrency 6) can be caught like that, and nothing else may fail. */
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM (SELECT job_id FROM pgjobd.attempts"
				 " WHERE outcome = 'done' GROUP BY job_id HAVING count(*) = 1) s"), 302);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"), 0);
	ck_assert_int_le(d_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE outcome = 'lost'"), 6);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.jobs j WHERE attempts = 1 +"
				 " (SELECT count(*) FROM pgjobd.attempts a"
				 "   WHERE a.job_id = j.id AND a.outcome = 'lost')"), 302);
	t_daemon_wait_log(d, "database connection restored", 5000);
	log = t_daemon_log(d);
	ck_assert_msg(t_count_of(log, "retrying in the background") == 1,
	    "the outage is not logged exactly once:\n%s", t_log_tail(log));
	ck_assert_msg(t_count_of(log, "database connection restored") == 1,
	    "the recovery is not logged exactly once:\n%s", t_log_tail(log));
	free(log);
	d_stop(d);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_database_down_at_start_is_waited_for)
{
	char *cfg = d_config(FAST "[handler.echo]\ncommand = /bin/echo up\n");
	PGconn *c = t_fresh_schema("pgjobd_d_downatstart", cfg);
	struct t_daemon *d;
	long long id = d_enqueue(c, "echo", "{}");

	PQfinish(c);
	pgctl("stop");
	d = t_daemon_start(cfg, NULL);
	d_track_daemon(d);
	t_daemon_wait_log(d, "retrying in the background", READY_MS);
	ck_assert_int_eq(waitpid(d->pid, NULL, WNOHANG), 0);
	pgctl("start");
	t_daemon_wait_log(d, "ready: worker", 60000);
	c = t_connect();
	d_wait_state(c, id, "done", JOB_MS);
	d_expect_job(c, id, "result = 'up' || chr(10)");
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_failed_outcome_write_is_retried_and_the_lease_held)
{
	char *cfg = d_config(FAST "[handler.echo]\ncommand = /bin/echo hi\n");
	PGconn *c = t_fresh_schema("pgjobd_d_writefail", cfg);
	struct t_daemon *d;
	char *log;
	long long id, token;

	/* While public.block has a row, no job may become done: the
	 * daemon's outcome statement fails (with a multi-line message). */
	PQclear(t_exec(c, "CREATE TABLE public.block AS SELECT 1 AS x", NULL));
	PQclear(t_exec(c, "CREATE FUNCTION public.boom() RETURNS trigger LANGUAGE plpgsql AS $$"
			  " BEGIN IF NEW.state = 'done' AND EXISTS (SELECT 1 FROM public.block) THEN"
			  "   RAISE EXCEPTION 'outcome blocked' USING DETAIL = 'by the test';"
			  " END IF; RETURN NEW; END $$", NULL));
	PQclear(t_exec(c, "CREATE TRIGGER boom BEFORE INSERT ON pgjobd.history FOR EACH ROW"
			  " EXECUTE FUNCTION public.boom()", NULL));
	d = d_start(cfg, NULL);
	id = d_enqueue(c, "echo", "{}");
	t_daemon_wait_log(d, "writing job outcomes failed", JOB_MS);
	token = d_qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	/* Past the lease (2s): retried every second, the lease extended by
	 * the heartbeat meanwhile, nothing rescued or run again. */
	d_wait_value(c, "t", JOB_MS,
	    "SELECT now() > started_at + interval '3 s' FROM pgjobd.jobs WHERE id = %lld", id);
	d_expect_job(c, id, "state = 'running' AND attempts = 1 AND lease_token = %lld AND"
	    " lease_expires_at > now()", token);
	log = t_daemon_log(d);
	ck_assert_msg(t_count_of(log, "writing job outcomes failed") >= 2, "log:\n%s", t_log_tail(log));
	free(log);
	PQclear(t_exec(c, "DELETE FROM public.block", NULL));
	d_wait_state(c, id, "done", JOB_MS);
	d_expect_history(c, id, false, "1:done");
	d_expect_job(c, id, "result = 'hi' || chr(10)");
	d_stop(d); /* and every log line was one event */
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST


START_TEST(test_worker_row_while_running_and_gone_after_stop)
{
	char *dir = d_make_dir();
	char *cfg = d_config(FAST "concurrency = 3\n[handler.wait]\n"
				"command = /bin/sh -c 'while [ ! -e %s/go ]; do sleep 0.02; done'\n",
	    dir);
	PGconn *c = t_fresh_schema("pgjobd_d_workers", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	char host[256], *want;
	long long id;

	ck_assert_int_eq(gethostname(host, sizeof host), 0);
	host[sizeof host - 1] = '\0';
	/* No name in the config: host:pid. */
	want = d_asprintf("%s:%d|%s|%d|3|0", host, (int)d->pid, host, (int)d->pid);
	d_wait_value(c, want, 5000,
	    "SELECT name || '|' || host || '|' || pid || '|' || concurrency || '|' || running"
	    "  FROM pgjobd.workers");
	free(want);
	id = d_enqueue(c, "wait", "{}");
	d_wait_state(c, id, "running", JOB_MS);
	/* The next heartbeat shows it running. */
	d_wait_value(c, "1", 5000, "SELECT running FROM pgjobd.workers");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.workers WHERE"
				 " last_seen >= started_at AND queues = '{default}'"), 1);
	touch(dir, "go");
	d_wait_state(c, id, "done", JOB_MS);
	d_stop(d);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc;

	tc = d_tcase(s, "fencing", 240);
	tcase_add_test(tc, test_two_daemons_never_run_a_job_twice);
	tcase_add_test(tc, test_killed_daemons_job_is_rescued_after_lease_expiry);
	tcase_add_test(tc, test_stale_outcome_is_refused);
	tcase_add_test(tc, test_cancel_kills_running_handler_within_a_second);

	tc = d_tcase(s, "signals", 120);
	tcase_add_test(tc, test_sigterm_drain_lets_running_handler_finish);
	tcase_add_test(tc, test_sigterm_drain_timeout_kills_and_hands_job_back);
	tcase_add_test(tc, test_second_sigterm_skips_the_wait);
	tcase_add_test(tc, test_sighup_good_config_adds_handler_and_spares_running_ones);
	tcase_add_test(tc, test_sighup_bad_config_is_logged_and_old_one_kept);

	tc = d_tcase(s, "database", 180);
	tcase_add_test(tc, test_database_restart_loses_no_job);
	tcase_add_test(tc, test_database_down_at_start_is_waited_for);
	tcase_add_test(tc, test_failed_outcome_write_is_retried_and_the_lease_held);

	tc = d_tcase(s, "worker", 120);
	tcase_add_test(tc, test_worker_row_while_running_and_gone_after_stop);

	return d_run_suite(s);
}
