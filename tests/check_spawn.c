/*
 * check_spawn: handlers run as CONTRACT.md section 5 promises (own session,
 * exact environment, stdin delivered, only fds 0-2, default signals), their
 * outcome is reported right, and the kill ladder (timeout, spawn_kill,
 * strays, escaped strays) always ends the spawn.
 *
 * Every test drives the libev default loop until the callback has fired,
 * under a deadline timer that fails the test; nothing sleeps in place of
 * synchronisation.  Only checking that an orphaned grandchild has died
 * polls /proc, because nobody tells us when the kernel is done with it.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "testlib.h"

static struct ev_loop *loop;
static char tmpdir[] = "/tmp/check_spawn.XXXXXX";

static char *const default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

/* What the callback saw, copied out (the result dies with the callback). */
struct run {
	struct spawn *sp;
	pid_t pid;
	int slot; /* in the ledger, -1: none */
	int calls;
	bool done;
	bool ready; /* set by the fifo reader of the trap tests */
	struct spawn_result r;
};

/*
 * Handlers a failing test leaves behind: Check ends a failed test's
 * process with _exit(), and each handler leads its own group, so they
 * would live on (a TERM-immune sleep 1000 for instance).  The runner
 * process becomes a child subreaper, so such orphans are reparented to it
 * and, since it reaps nobody but its test processes, their pids stay
 * reserved; after the tests it SIGKILLs the groups the tests never saw
 * reaped (a ledger in shared memory) and reaps whatever came to it.
 */
struct ledger {
	int n;
	pid_t pid[256];
	bool reaped[256];
};
static struct ledger *ledger;

static void
ledger_open(void)
{
	ledger =
	    mmap(NULL, sizeof *ledger, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(ledger != MAP_FAILED);
	memset(ledger, 0, sizeof *ledger);
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

static void
ledger_close(void)
{
	int i;

	for (i = 0; i < ledger->n; i++)
		if (!ledger->reaped[i])
			killpg(ledger->pid[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	munmap(ledger, sizeof *ledger);
}

static char *
memdup0(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void
done_cb(const struct spawn_result *r, void *arg)
{
	struct run *run = arg;

	run->calls++;
	run->done = true;
	if (run->slot >= 0)
		ledger->reaped[run->slot] = true;
	run->sp = NULL; /* freed by spawn once we return */
	if (run->calls > 1)
		return; /* a second call fails the test in finish_run() */
	run->r = *r;
	ck_assert_int_eq(r->out[r->out_len], '\0');
	ck_assert_int_eq(r->err[r->err_len], '\0');
	run->r.out = memdup0(r->out, r->out_len);
	run->r.err = memdup0(r->err, r->err_len);
}

static void
deadline_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	*(bool *)w->data = true;
}

/* Run the loop until *FLAG, failing the test after SECS seconds. */
static void
wait_until(const bool *flag, double secs, const char *what)
{
	bool expired = false;
	ev_timer t;

	ev_now_update(loop);
	ev_timer_init(&t, deadline_cb, secs, 0.);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (!*flag && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	ck_assert_msg(*flag, "%s: not done after %.0f s", what, secs);
}

static void
finish_run(struct run *run, double secs)
{
	wait_until(&run->done, secs, "spawn");
	/* Let any duplicate callback show itself. */
	ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(run->calls, 1);
}

static void
run_free(struct run *run)
{
	free(run->r.out);
	free(run->r.err);
}

static struct spawn_spec
spec_of(char *const *argv)
{
	struct spawn_spec s;

	memset(&s, 0, sizeof s);
	s.argv = argv;
	s.envp = default_env;
	s.output_limit = 64 * 1024;
	s.kill_grace_ms = 2000;
	return s;
}

static void
start(const struct spawn_spec *spec, struct run *run)
{
	int errnum = 0;

	memset(run, 0, sizeof *run);
	run->sp = spawn_start(loop, spec, done_cb, run, &errnum);
	ck_assert_msg(run->sp != NULL, "spawn_start(%s): %s", spec->argv[0], strerror(errnum));
	run->pid = spawn_pid(run->sp);
	ck_assert_int_gt(run->pid, 0);
	run->slot = -1;
	if (ledger->n < (int)(sizeof ledger->pid / sizeof ledger->pid[0])) {
		run->slot = ledger->n++;
		ledger->pid[run->slot] = run->pid;
	}
}

/* Start SPEC and wait for its outcome. */
static void
run_spec(const struct spawn_spec *spec, struct run *run, double secs)
{
	start(spec, run);
	finish_run(run, secs);
}

static char *
tmp_path(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	return p;
}

/* The contents of PATH (malloc'd, NUL-terminated), NULL if unreadable. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			s = realloc(s, cap + 1);
			ck_assert_ptr_nonnull(s);
		}
		got = fread(s + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

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
		s = slurp(path, NULL);
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
	s = slurp(path, NULL);
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

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static size_t
rss_bytes(void)
{
	char *s = slurp("/proc/self/statm", NULL);
	unsigned long size = 0, res = 0;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sscanf(s, "%lu %lu", &size, &res), 2);
	free(s);
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* The trap tests: the handler announces through a fifo that its TERM trap
 * is in place; only then may the test send SIGTERM. */
struct ready_watch {
	ev_io w;
	struct run *run;
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
ready_watch_start(struct ready_watch *rw, struct run *run, const char *fifo)
{
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	/* O_RDWR: the fifo never reads as EOF, and the handler's open for
	 * writing never blocks. */
	rw->fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(rw->fd, 0);
	rw->run = run;
	ev_io_init(&rw->w, ready_cb, rw->fd, EV_READ);
	rw->w.data = rw;
	ev_io_start(loop, &rw->w);
}

static void
ready_watch_stop(struct ready_watch *rw)
{
	ev_io_stop(loop, &rw->w);
	close(rw->fd);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	/* spawn.h: the daemon ignores SIGPIPE (stdin writes to a handler
	 * that has gone). */
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(0);
	ck_assert_ptr_nonnull(loop);
	strcpy(tmpdir, "/tmp/check_spawn.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

START_TEST(test_exit_zero_with_stdout_and_stderr_captured)
{
	char *argv[] = {"/bin/sh", "-c", "echo hello; echo oops >&2", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_NONE);
	ck_assert_str_eq(run.r.out, "hello\n");
	ck_assert_uint_eq(run.r.out_len, 6);
	ck_assert_uint_eq(run.r.out_total, 6);
	ck_assert_str_eq(run.r.err, "oops\n");
	ck_assert_uint_eq(run.r.err_total, 5);
	ck_assert_int_ge(run.r.duration_ms, 0);
	ck_assert_int_lt(run.r.duration_ms, 5000);
	run_free(&run);
}
END_TEST

START_TEST(test_exit_code_is_reported)
{
	char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 3);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_NONE);
	run_free(&run);
}
END_TEST

START_TEST(test_death_by_signal_is_reported)
{
	char *argv[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	run_spec(&s, &run, 10);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_NONE);
	run_free(&run);
}
END_TEST

START_TEST(test_output_is_made_valid_text)
{
	char *argv[] = {"/bin/sh", "-c", "printf 'a\\000b\\377c'", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	run_spec(&s, &run, 10);
	ck_assert_str_eq(run.r.out, "a\xEF\xBF\xBD"
	                            "b\xEF\xBF\xBD"
	                            "c");
	ck_assert_uint_eq(run.r.out_total, 5);
	run_free(&run);
}
END_TEST

START_TEST(test_output_limit_zero_keeps_nothing_but_counts)
{
	char *argv[] = {"/bin/sh", "-c", "echo hello; echo world >&2", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	s.output_limit = 0;
	run_spec(&s, &run, 10);
	ck_assert_str_eq(run.r.out, "");
	ck_assert_uint_eq(run.r.out_len, 0);
	ck_assert_uint_eq(run.r.out_total, 6);
	ck_assert_str_eq(run.r.err, "");
	ck_assert_uint_eq(run.r.err_total, 6);
	run_free(&run);
}
END_TEST

START_TEST(test_stdin_is_delivered_byte_for_byte)
{
	enum { N = 1024 * 1024 };
	char *path = tmp_path("stdin.copy");
	char *argv[] = {"/bin/sh", "-c", "cat > \"$1\"", "sh", path, NULL};
	struct spawn_spec s = spec_of(argv);
	char *input = malloc(N), *got;
	struct run run;
	size_t i, len = 0;

	ck_assert_ptr_nonnull(input);
	/* Every byte value, NUL and 0xFF included, in no simple period. */
	for (i = 0; i < N; i++)
		input[i] = (char)(i * 7 + (i >> 8) + (i >> 16));
	s.input = input;
	s.input_len = N;
	run_spec(&s, &run, 20);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	got = slurp(path, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, N);
	ck_assert(memcmp(got, input, N) == 0);
	free(got);
	free(input);
	run_free(&run);
}
END_TEST

START_TEST(test_empty_input_is_immediate_eof)
{
	char *argv[] = {"/bin/cat", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	/* cat would wait forever if stdin were not closed at once. */
	run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "");
	run_free(&run);
}
END_TEST

START_TEST(test_handler_that_never_reads_stdin_does_not_wedge)
{
	enum { N = 4 * 1024 * 1024 };
	char *argv[] = {"/bin/sh", "-c", "echo done", NULL};
	struct spawn_spec s = spec_of(argv);
	char *input = calloc(1, N);
	struct run run;

	/* Far more than a pipe holds: writes hit EAGAIN, then EPIPE. */
	ck_assert_ptr_nonnull(input);
	memset(input, '{', N);
	s.input = input;
	s.input_len = N;
	run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "done\n");
	free(input);
	run_free(&run);
}
END_TEST

START_TEST(test_environment_is_exactly_envp)
{
	char *argv[] = {"/usr/bin/env", NULL};
	char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "PGJOBD_JOB_ID=42", "LANG=C.UTF-8",
	               "WITH_SPACE=a b", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	/* Something the daemon has that the handler must not see. */
	setenv("PGJOBD_SECRET_DSN", "postgresql://secret", 1);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	s.envp = env;
	run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "PATH=/usr/local/bin:/usr/bin:/bin\nPGJOBD_JOB_ID=42\n"
	                            "LANG=C.UTF-8\nWITH_SPACE=a b\n");
	run_free(&run);
}
END_TEST

START_TEST(test_only_fds_0_1_2_are_inherited)
{
	char *argv[] = {"/bin/ls", "-1", "/proc/self/fd", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run, other;
	char *sleeper[] = {"/bin/sleep", "1000", NULL};
	struct spawn_spec o = spec_of(sleeper);
	int leak, high;

	/* Descriptors a careless library would leave inheritable. */
	leak = open("/dev/null", O_RDONLY);
	ck_assert_int_ge(leak, 0);
	high = dup2(leak, 100);
	ck_assert_int_eq(high, 100);
	/* And the pipes of another spawn running at the same time. */
	start(&o, &other);

	run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	/* ls opens the directory it lists with the lowest free number: 3
	 * exactly when nothing but 0, 1, 2 came along.  Anything inherited
	 * would be listed, and would push ls's own to 4 or beyond. */
	ck_assert_str_eq(run.r.out, "0\n1\n2\n3\n");

	spawn_kill(other.sp, true);
	finish_run(&other, 10);
	close(leak);
	close(high);
	run_free(&run);
	run_free(&other);
}
END_TEST

START_TEST(test_exec_failure_is_reported_at_spawn_time)
{
	char *missing[] = {"/nonexistent/handler", NULL};
	char *noexec_path = tmp_path("not-executable");
	char *noexec[] = {noexec_path, NULL};
	char *pwd[] = {"/bin/pwd", NULL};
	struct spawn_spec s;
	struct run run;
	int errnum, before, fd;

	fd = open(noexec_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);

	memset(&run, 0, sizeof run);
	before = count_fds();

	s = spec_of(missing);
	errnum = 0;
	ck_assert_ptr_null(spawn_start(loop, &s, done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, ENOENT);

	/* Root too needs an x bit to exec. */
	s = spec_of(noexec);
	errnum = 0;
	ck_assert_ptr_null(spawn_start(loop, &s, done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, EACCES);

	s = spec_of(pwd);
	s.cwd = "/nonexistent/dir";
	errnum = 0;
	ck_assert_ptr_null(spawn_start(loop, &s, done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, ENOENT);

	/* No callback, and every pipe closed again. */
	ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(run.calls, 0);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_cwd_is_set)
{
	char *argv[] = {"/bin/pwd", "-P", NULL};
	struct spawn_spec s = spec_of(argv);
	char real[PATH_MAX + 1], expect[PATH_MAX + 2];
	struct run run;

	ck_assert_ptr_nonnull(realpath(tmpdir, real));
	snprintf(expect, sizeof expect, "%s\n", real);
	s.cwd = tmpdir;
	run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, expect);
	run_free(&run);
}
END_TEST

START_TEST(test_handler_runs_in_its_own_session_and_group)
{
	char *argv[] = {"/bin/cat", "/proc/self/stat", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;
	int pid, ppid, pgrp, sid;
	pid_t expect;
	char state;
	const char *p;

	start(&s, &run);
	expect = spawn_pid(run.sp);
	finish_run(&run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	/* "pid (comm) state ppid pgrp session ..." */
	ck_assert_int_eq(sscanf(run.r.out, "%d", &pid), 1);
	p = strrchr(run.r.out, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid), 4);
	ck_assert_int_eq(pid, expect);
	ck_assert_int_eq(ppid, getpid());
	ck_assert_int_eq(pgrp, pid);
	ck_assert_int_eq(sid, pid);
	ck_assert_int_ne(sid, getsid(0));
	run_free(&run);
}
END_TEST

START_TEST(test_signal_mask_empty_and_dispositions_default)
{
	char *argv[] = {"/bin/grep", "^Sig", "/proc/self/status", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;
	sigset_t set;

	/* The daemon's own settings must not reach the handler: blocked
	 * signals, ignored ones (SIGPIPE is, from setup()), and SIGINT
	 * both blocked and ignored. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);

	run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_msg(strstr(run.r.out, "SigBlk:\t0000000000000000\n") != NULL, "%s", run.r.out);
	ck_assert_msg(strstr(run.r.out, "SigIgn:\t0000000000000000\n") != NULL, "%s", run.r.out);
	run_free(&run);
}
END_TEST

START_TEST(test_timeout_kills_whole_process_group)
{
	char *pidfile = tmp_path("grandchild.pid");
	static char script[] = "sleep 1000 & echo $! > \"$1\"; wait";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;
	pid_t grandchild;

	s.timeout_ms = 200;
	s.kill_grace_ms = 5000;
	run_spec(&s, &run, 20);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGTERM);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_TIMEOUT);
	ck_assert_int_ge(run.r.duration_ms, 200);
	ck_assert_int_lt(run.r.duration_ms, 5000); /* SIGTERM sufficed */
	grandchild = read_pidfile(pidfile);
	assert_dies(grandchild);
	run_free(&run);
}
END_TEST

START_TEST(test_strays_holding_stdout_are_killed)
{
	char *pidfile = tmp_path("stray.pid");
	static char script[] = "sleep 1000 & echo $! > \"$1\"; exit 0";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	s.kill_grace_ms = 300;
	run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_STRAYS);
	ck_assert_int_lt(run.r.duration_ms, 300 + 2000);
	assert_dies(read_pidfile(pidfile));
	run_free(&run);
}
END_TEST

START_TEST(test_stray_that_escaped_the_group_is_abandoned)
{
	char *pidfile = tmp_path("escaped.pid");
	/* setsid(1) in a non-interactive shell's background job is not a
	 * group leader, so it calls setsid() itself and execs: the pid
	 * written is the escaped sleep's.  The handler exits only once the
	 * escape is done, or the strays' SIGTERM would catch it still in
	 * the group. */
	static char script[] = "setsid /bin/sh -c 'echo $$ > \"$0\"; exec sleep 1000' \"$1\" & "
	                       "while ! [ -s \"$1\" ]; do :; done; exit 0";
	char *argv[] = {"/bin/sh", "-c", script, "sh", pidfile, NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;
	pid_t escaped;

	s.kill_grace_ms = 200;
	run_spec(&s, &run, 10);
	escaped = read_pidfile(pidfile);
	kill(escaped, SIGKILL);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_STRAYS);
	/* SIGTERM, a grace, SIGKILL, a grace, then the pipes are given up. */
	ck_assert_int_ge(run.r.duration_ms, 2 * 200);
	ck_assert_int_lt(run.r.duration_ms, 2 * 200 + 3000);
	assert_dies(escaped);
	run_free(&run);
}
END_TEST

START_TEST(test_huge_output_keeps_tail_and_memory_flat)
{
	char *argv[] = {"/bin/sh", "-c", "yes | head -c 104857600", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;
	size_t before, after;

	s.output_limit = 64 * 1024;
	before = rss_bytes();
	run_spec(&s, &run, 60);
	after = rss_bytes();
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_uint_eq(run.r.out_total, 104857600);
	ck_assert_uint_eq(run.r.out_len, 64 * 1024);
	ck_assert_int_eq(run.r.out[0], 'y');
	ck_assert_int_eq(run.r.out[64 * 1024 - 1], '\n');
	ck_assert_msg(after < before + 4 * 1024 * 1024, "RSS grew from %zu to %zu", before, after);
	run_free(&run);
}
END_TEST

START_TEST(test_kill_request_terminates)
{
	char *argv[] = {"/bin/sleep", "1000", NULL};
	struct spawn_spec s = spec_of(argv);
	struct run run;

	/* posix_spawn returned after the exec: sleep's SIGTERM is default. */
	start(&s, &run);
	spawn_kill(run.sp, false);
	finish_run(&run, 10);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGTERM);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	run_free(&run);
}
END_TEST

START_TEST(test_kill_escalates_to_sigkill_after_grace)
{
	char *fifo = tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = spec_of(argv);
	struct ready_watch rw;
	struct run run;

	s.kill_grace_ms = 300;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	start(&s, &run);
	wait_until(&run.ready, 10, "handler ready");
	spawn_kill(run.sp, false);
	finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	ck_assert_int_ge(run.r.duration_ms, 300);
	run_free(&run);
}
END_TEST

START_TEST(test_kill_now_upgrades_a_pending_term)
{
	char *fifo = tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = spec_of(argv);
	struct ready_watch rw;
	struct run run;

	/* A grace far longer than the deadline: only the upgrade to an
	 * immediate SIGKILL can end this in time. */
	s.kill_grace_ms = 60 * 1000;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	start(&s, &run);
	wait_until(&run.ready, 10, "handler ready");
	spawn_kill(run.sp, false);
	spawn_kill(run.sp, false); /* idempotent: no second ladder */
	ev_run(loop, EVRUN_NOWAIT);
	ck_assert(!run.done);
	spawn_kill(run.sp, true);
	finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_REQUEST);
	run_free(&run);
}
END_TEST

START_TEST(test_timeout_reason_survives_a_later_kill_request)
{
	char *fifo = tmp_path("ready");
	char *argv[] = {"/bin/sh", "-c", trap_term, "sh", fifo, NULL};
	struct spawn_spec s = spec_of(argv);
	struct ready_watch rw;
	struct run run;

	s.timeout_ms = 100;
	s.kill_grace_ms = 60 * 1000;
	ready_watch_start(&rw, &run, fifo); /* before the handler opens it */
	start(&s, &run);
	wait_until(&run.ready, 10, "handler ready");
	/* Let the timeout fire (the TERM is ignored), then cancel. */
	{
		bool never = false;
		ev_timer t;

		ev_now_update(loop);
		ev_timer_init(&t, deadline_cb, 0.3, 0.);
		t.data = &never;
		ev_timer_start(loop, &t);
		while (!never)
			ev_run(loop, EVRUN_ONCE);
	}
	ck_assert(!run.done);
	spawn_kill(run.sp, true);
	finish_run(&run, 10);
	ready_watch_stop(&rw);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_TIMEOUT);
	run_free(&run);
}
END_TEST

START_TEST(test_many_concurrent_spawns_each_report_their_own)
{
	enum { N = 24 };
	struct run runs[N];
	char num[N][16];
	char *argv[N][6];
	struct spawn_spec s;
	bool all = false;
	int i, done;

	for (i = 0; i < N; i++) {
		snprintf(num[i], sizeof num[i], "%d", i);
		argv[i][0] = "/bin/sh";
		argv[i][1] = "-c";
		argv[i][2] = "echo out$1; echo err$1 >&2; exit $1";
		argv[i][3] = "sh";
		argv[i][4] = num[i];
		argv[i][5] = NULL;
		s = spec_of(argv[i]);
		start(&s, &runs[i]);
	}
	/* Run the loop until every callback has fired. */
	{
		bool expired = false;
		ev_timer t;

		ev_now_update(loop);
		ev_timer_init(&t, deadline_cb, 20., 0.);
		t.data = &expired;
		ev_timer_start(loop, &t);
		while (!all && !expired) {
			ev_run(loop, EVRUN_ONCE);
			for (done = 0, i = 0; i < N; i++)
				done += runs[i].done;
			all = done == N;
		}
		ev_timer_stop(loop, &t);
	}
	ck_assert(all);
	for (i = 0; i < N; i++) {
		char want[32];

		ck_assert_int_eq(runs[i].calls, 1);
		ck_assert_int_eq(runs[i].r.exit_code, i);
		snprintf(want, sizeof want, "out%d\n", i);
		ck_assert_str_eq(runs[i].r.out, want);
		snprintf(want, sizeof want, "err%d\n", i);
		ck_assert_str_eq(runs[i].r.err, want);
		run_free(&runs[i]);
	}
}
END_TEST

static Suite *
spawn_suite(void)
{
	Suite *s = suite_create("spawn");
	TCase *tc = tcase_create("spawn");

	tcase_add_unchecked_fixture(tc, ledger_open, ledger_close);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_exit_zero_with_stdout_and_stderr_captured);
	tcase_add_test(tc, test_exit_code_is_reported);
	tcase_add_test(tc, test_death_by_signal_is_reported);
	tcase_add_test(tc, test_output_is_made_valid_text);
	tcase_add_test(tc, test_output_limit_zero_keeps_nothing_but_counts);
	tcase_add_test(tc, test_stdin_is_delivered_byte_for_byte);
	tcase_add_test(tc, test_empty_input_is_immediate_eof);
	tcase_add_test(tc, test_handler_that_never_reads_stdin_does_not_wedge);
	tcase_add_test(tc, test_environment_is_exactly_envp);
	tcase_add_test(tc, test_only_fds_0_1_2_are_inherited);
	tcase_add_test(tc, test_exec_failure_is_reported_at_spawn_time);
	tcase_add_test(tc, test_cwd_is_set);
	tcase_add_test(tc, test_handler_runs_in_its_own_session_and_group);
	tcase_add_test(tc, test_signal_mask_empty_and_dispositions_default);
	tcase_add_test(tc, test_timeout_kills_whole_process_group);
	tcase_add_test(tc, test_strays_holding_stdout_are_killed);
	tcase_add_test(tc, test_stray_that_escaped_the_group_is_abandoned);
	tcase_add_test(tc, test_huge_output_keeps_tail_and_memory_flat);
	tcase_add_test(tc, test_kill_request_terminates);
	tcase_add_test(tc, test_kill_escalates_to_sigkill_after_grace);
	tcase_add_test(tc, test_kill_now_upgrades_a_pending_term);
	tcase_add_test(tc, test_timeout_reason_survives_a_later_kill_request);
	tcase_add_test(tc, test_many_concurrent_spawns_each_report_their_own);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(spawn_suite());
}
