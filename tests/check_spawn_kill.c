/*
 * check_spawn_kill: the kill ladder always ends a spawn: a timeout kills
 * the whole process group, strays holding its stdout are killed, a stray
 * that escaped the group is abandoned, spawn_kill terminates and escalates
 * to SIGKILL after the grace (at once when asked again), and a timeout's
 * reason survives a later kill request.
 *
 * Every test drives the libev default loop until the callback has fired,
 * under a deadline timer that fails the test (tests/spawnlib.h); nothing
 * sleeps in place of synchronisation.  Only checking that an orphaned
 * grandchild has died polls /proc, because nobody tells us when the kernel
 * is done with it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawnlib.h"
#include "testlib.h"

/* A pid the handler wrote to PATH; waits (bounded) until it is there. */
static pid_t
read_pidfile(const char *path)
{
	int64_t until;
	struct timespec ts = {0, 10 * 1000 * 1000};
	char *s;
	long pid = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	until = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + 5000;
	for (;;) {
		s = sp_slurp(path, NULL);
		if (s && (pid = strtol(s, NULL, 10)) > 0) {
			free(s);
			return (pid_t)pid;
		}
		free(s);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ck_assert_msg(ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 < until, "no pid in %s",
		              path);
		ts.tv_sec = 0;
		ts.tv_nsec = 10 * 1000 * 1000;
		nanosleep(&ts, NULL);
	}
}

/* True once PID has died: gone, or a zombie nobody reaps (in a container
 * PID 1 may not be an init that reaps orphans). */
static bool
dead(pid_t pid)
{
	char path[64], *s, *p;
	bool z;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	s = sp_slurp(path, NULL);
	if (!s)
		return true;
	p = strrchr(s, ')');
	z = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	free(s);
	return z;
}

/* Polls: the kernel tears an orphan down on its own schedule. */
static void
assert_dies(pid_t pid)
{
	struct timespec ts;
	int i;

	for (i = 0; i < 500 && !dead(pid); i++) {
		ts.tv_sec = 0;
		ts.tv_nsec = 10 * 1000 * 1000;
		nanosleep(&ts, NULL);
	}
	ck_assert_msg(dead(pid), "process %d still alive", (int)pid);
}

/* The trap tests: the handler announces through a fifo that its TERM trap
 * is in place; only then may the test send SIGTERM. */
struct ready_watch {
	ev_io w;
	struct sp_run *run;
	int fd;
};

static void
ready_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct ready_watch *rw = w->data;
	char buf[64];

	(void)revents;
	if (read(rw->fd, buf, sizeof buf) > 0) {
		rw->run->ready = true;
		ev_io_stop(l, w);
	}
}

/* Ignores SIGTERM (sleep inherits SIG_IGN across exec), then says so. */
static char trap_term[] = "trap '' TERM; echo ready > \"$1\"; exec sleep 1000";

static void
ready_watch_start(struct ready_watch *rw, struct sp_run *run, const char *fifo)
{
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	/* O_RDWR: the fifo never reads as EOF, and the handler's open for
	 * writing never blocks. */
	rw->fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(rw->fd, 0);
	rw->run = run;
	ev_io_init(&rw->w, ready_cb, rw->fd, EV_READ);
	rw->w.data = rw;
	ev_io_start(sp_loop, &rw->w);
}

static void
ready_watch_stop(struct ready_watch *rw)
{
	ev_io_stop(sp_loop, &rw->w);
	close(rw->fd);
}


START_TEST(test_timeout_kills_whole_process_group)
{
	char *pidfile = sp_tmp_path("grandchild.pid");
	static char script[] = "sleep 1000 & echo $! > \"$1\"; wait";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;
	pid_t grandchild;

	s.timeout_ms = 200;
	s.kill_grace_ms = 5000;
	sp_run_spec(&s, &run, 20);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGTERM);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_TIMEOUT);
	ck_assert_int_ge(run.r.duration_ms, 200);
	ck_assert_int_lt(run.r.duration_ms, 5000); /* SIGTERM sufficed */
	grandchild = read_pidfile(pidfile);
	assert_dies(grandchild);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_strays_holding_stdout_are_killed)
{
	char *pidfile = sp_tmp_path("stray.pid");
	static char script[] = "sleep 1000 & echo $! > \"$1\"; exit 0";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	s.kill_grace_ms = 300;
	sp_run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_STRAYS);
	ck_assert_int_lt(run.r.duration_ms, 300 + 2000);
	assert_dies(read_pidfile(pidfile));
	sp_run_free(&run);
}
END_TEST

START_TEST(test_stray_that_escaped_the_group_is_abandoned)
{
	char *pidfile = sp_tmp_path("escaped.pid");
	/* setsid(1) in a non-interactive shell's background job is not a
	 * group leader, so it calls setsid() itself and execs: the pid
	 * written is the escaped sleep's.  The handler exits only once the
	 * escape is done, or the strays' SIGTERM would catch it still in
	 * the group. */
	static char script[] = "setsid /bin/sh -c 'echo $$ > \"$0\"; exec sleep 1000' \"$1\" & "
	                       "while ! [ -s \"$1\" ]; do :; done; exit 0";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;
	pid_t escaped;

	s.kill_grace_ms = 200;
	sp_run_spec(&s, &run, 10);
	escaped = read_pidfile(pidfile);
	kill(escaped, SIGKILL);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_STRAYS);
	/* SIGTERM, a grace, SIGKILL, a grace, then the pipes are given up. */
	ck_assert_int_ge(run.r.duration_ms, 2 * 200);
	ck_assert_int_lt(run.r.duration_ms, 2 * 200 + 3000);
	assert_dies(escaped);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_kill_request_terminates)
{
	char *argv[] = {"/bin/sleep", "1000", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	/* posix_spawn returned after the exec: sleep's SIGTERM is default. */
	sp_start(&s, &run);
	spawn_kill(run.sp, false);
	sp_finish_run(&run, 10);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGTERM);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_kill_escalates_to_sigkill_after_grace)
{
	char *fifo = sp_tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct ready_watch rw;
	struct sp_run run;

	s.kill_grace_ms = 300;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	sp_start(&s, &run);
	sp_wait_until(&run.ready, 10, "handler ready");
	spawn_kill(run.sp, false);
	sp_finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	ck_assert_int_ge(run.r.duration_ms, 300);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_kill_now_upgrades_a_pending_term)
{
	char *fifo = sp_tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct ready_watch rw;
	struct sp_run run;

	/* A grace far longer than the deadline: only the upgrade to an
	 * immediate SIGKILL can end this in time. */
	s.kill_grace_ms = 60 * 1000;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	sp_start(&s, &run);
	sp_wait_until(&run.ready, 10, "handler ready");
	spawn_kill(run.sp, false);
	spawn_kill(run.sp, false); /* idempotent: no second ladder */
	ev_run(sp_loop, EVRUN_NOWAIT);
	ck_assert(!run.done);
	spawn_kill(run.sp, true);
	sp_finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_timeout_reason_survives_a_later_kill_request)
{
	char *fifo = sp_tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct ready_watch rw;
	struct sp_run run;

	s.timeout_ms = 100;
	s.kill_grace_ms = 60 * 1000;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	sp_start(&s, &run);
	sp_wait_until(&run.ready, 10, "handler ready");
	/* Let the timeout fire (the TERM is ignored), then cancel. */
	{
		bool never = false;
		ev_timer t;

		ev_now_update(sp_loop);
		ev_timer_init(&t, sp_deadline_cb, 0.3, 0.);
		t.data = &never;
		ev_timer_start(sp_loop, &t);
		while (!never)
			ev_run(sp_loop, EVRUN_ONCE);
	}
	ck_assert(!run.done);
	spawn_kill(run.sp, true);
	sp_finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_TIMEOUT);
	sp_run_free(&run);
}
END_TEST

static Suite *
spawn_kill_suite(void)
{
	Suite *s = suite_create("spawn_kill");
	TCase *tc = sp_tcase(s, "spawn_kill");

	tcase_add_test(tc, test_timeout_kills_whole_process_group);
	tcase_add_test(tc, test_strays_holding_stdout_are_killed);
	tcase_add_test(tc, test_stray_that_escaped_the_group_is_abandoned);
	tcase_add_test(tc, test_kill_request_terminates);
	tcase_add_test(tc, test_kill_escalates_to_sigkill_after_grace);
	tcase_add_test(tc, test_kill_now_upgrades_a_pending_term);
	tcase_add_test(tc, test_timeout_reason_survives_a_later_kill_request);
	return s;
}

int
main(void)
{
	return t_run_suite(spawn_kill_suite());
}
