/*
 * check_strays: no process a handler leaves behind outlives its job.  The
 * handler double-forks a grandchild that calls setsid (leaving the
 * handler's process group and session), ignores SIGTERM and sends its
 * output away, so neither the group kill nor the pipes can find it; the
 * daemon, a child subreaper, must kill it when the job ends: after exit 0,
 * after a timeout, after a cancel, and at shutdown.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

/* Leaves a TERM-ignoring, setsid'd grandchild whose pid it writes to
 * $DIR/$PGJOBD_JOB_ID, then does what $1 says: exit, or sleep. */
#define STRAY_SCRIPT                                                                            \
	"#!/bin/sh\n"                                                                           \
	"( setsid sh -c 'trap \"\" TERM; echo $$ > \"$DIR/$PGJOBD_JOB_ID.tmp\";'\\\n"           \
	"'  mv \"$DIR/$PGJOBD_JOB_ID.tmp\" \"$DIR/$PGJOBD_JOB_ID\"; exec sleep 300'"           \
	" </dev/null >/dev/null 2>&1 & )\n"                                                     \
	"while [ ! -e \"$DIR/$PGJOBD_JOB_ID\" ]; do sleep 0.01; done\n"                        \
	"[ \"$1\" = sleep ] && exec sleep 300\n"                                                \
	"exit 0\n"

static char dir[64];
static PGconn *conn;
static struct t_daemon *daemon_;

static char *
config(const char *mode)
{
	char *script, *text, *path;

	script = t_write_temp(".sh", STRAY_SCRIPT);
	chmod(script, 0755);
	ck_assert_int_ne(asprintf(&text,
			     "[pgjobd]\ndatabase =\nkill_grace = 500ms\nshutdown_timeout = 300ms\n"
			     "poll_interval = 200ms\n"
			     "[handler.t]\ncommand = %s %s\ntimeout = 1s\nmax_attempts = 1\n"
			     "environment = DIR=%s\n"
			     "[handler.e]\ncommand = %s exit\nenvironment = DIR=%s\n",
			     script, mode, dir, script, dir),
	    -1);
	path = t_write_temp(".ini", text);
	free(text);
	free(script);
	return path;
}

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/pgjobd-strays-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0777);
	t_use_fresh_db("pgjobd_strays");
	t_migrate(NULL, NULL, NULL);
	conn = t_connect();
}

static void
start(const char *mode)
{
	char *cfg = config(mode);

	daemon_ = t_daemon_start(cfg, NULL);
	t_daemon_wait_log(daemon_, "ready:", 15000);
	free(cfg);
	PQclear(t_exec(conn, "SELECT pgjobd.enqueue('t')", NULL));
}

/* The grandchild of job ID, once it has written its pid. */
static pid_t
stray_of(int id)
{
	char path[128], line[32] = "";
	int64_t until = t_now_ms() + 15000;
	FILE *f = NULL;

	snprintf(path, sizeof path, "%s/%d", dir, id);
	while (!(f = fopen(path, "r")) && t_now_ms() < until)
		usleep(10000);
	ck_assert_msg(f != NULL, "the handler never started its grandchild");
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	fclose(f);
	ck_assert_int_gt(atoi(line), 1);
	return (pid_t)atoi(line);
}

static void
assert_gone(pid_t pid)
{
	int64_t until = t_now_ms() + 10000;

	while (kill(pid, 0) == 0 && t_now_ms() < until)
		usleep(10000);
	ck_assert_msg(kill(pid, 0) == -1, "the grandchild %d survived its job", (int)pid);
}

START_TEST(test_stray_of_a_job_that_exited_0_is_killed)
{
	pid_t pid;

	setup();
	start("exit");
	pid = stray_of(1);
	t_wait_value(conn, "done", 15000, "SELECT state FROM pgjobd.jobs WHERE id = 1");
	assert_gone(pid);
	t_daemon_wait_log(daemon_, "left behind by job 1", 5000);
	ck_assert_int_eq(t_daemon_stop(daemon_), 0);
}
END_TEST

START_TEST(test_stray_of_a_job_that_timed_out_is_killed)
{
	pid_t pid;

	setup();
	start("sleep");
	pid = stray_of(1);
	t_wait_value(conn, "dead", 15000, "SELECT state FROM pgjobd.jobs WHERE id = 1");
	assert_gone(pid);
	ck_assert_int_eq(t_daemon_stop(daemon_), 0);
}
END_TEST

START_TEST(test_stray_of_a_cancelled_job_is_killed)
{
	pid_t pid;

	setup();
	start("sleep");
	pid = stray_of(1);
	ck_assert_int_eq(t_int(conn, "SELECT pgjobd.cancel(1)::int", NULL), 1);
	assert_gone(pid);
	ck_assert_int_eq(t_daemon_stop(daemon_), 0);
}
END_TEST

START_TEST(test_stray_of_a_running_job_is_killed_at_shutdown)
{
	pid_t pid;

	setup();
	start("sleep");
	pid = stray_of(1);
	ck_assert_int_eq(kill(pid, 0), 0); /* alive while its job runs */
	ck_assert_int_eq(t_daemon_signal(daemon_, SIGTERM, true, 20000), 0);
	assert_gone(pid);
}
END_TEST

START_TEST(test_a_running_jobs_stray_survives_another_jobs_end)
{
	pid_t first, second;

	setup();
	start("sleep");
	PQclear(t_exec(conn, "UPDATE pgjobd.jobs SET timeout = interval '1 h' WHERE id = 1", NULL));
	first = stray_of(1);
	/* Job 2 leaves a grandchild too and exits: the sweep at its end kills
	 * its own grandchild, not that of job 1, which still runs. */
	PQclear(t_exec(conn, "SELECT pgjobd.enqueue('e')", NULL));
	second = stray_of(2);
	t_wait_value(conn, "done", 15000, "SELECT state FROM pgjobd.jobs WHERE id = 2");
	assert_gone(second);
	ck_assert_int_eq(kill(first, 0), 0);
	ck_assert_int_eq(t_int(conn, "SELECT pgjobd.cancel(1)::int", NULL), 1);
	assert_gone(first);
	ck_assert_int_eq(t_daemon_stop(daemon_), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("strays");
	TCase *tc = tcase_create("subreaper");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_stray_of_a_job_that_exited_0_is_killed);
	tcase_add_test(tc, test_stray_of_a_job_that_timed_out_is_killed);
	tcase_add_test(tc, test_stray_of_a_cancelled_job_is_killed);
	tcase_add_test(tc, test_stray_of_a_running_job_is_killed_at_shutdown);
	tcase_add_test(tc, test_a_running_jobs_stray_survives_another_jobs_end);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
