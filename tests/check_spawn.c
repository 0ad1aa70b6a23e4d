/*
 * check_spawn: handlers run as CONTRACT.md section 5 promises (own session,
 * exact environment, stdin delivered, only fds 0-2, default signals, the
 * cwd), and their outcome is reported right: exit code or signal, output
 * made valid text and kept to its limit (the tail, memory flat), exec
 * failure at spawn time, each of many concurrent spawns its own.  The kill
 * ladder is check_spawn_kill's.
 *
 * Every test drives the libev default loop until the callback has fired,
 * under a deadline timer that fails the test (tests/spawnlib.h); nothing
 * sleeps in place of synchronisation.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
	char *s = sp_slurp("/proc/self/statm", NULL);
	unsigned long size = 0, res = 0;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sscanf(s, "%lu %lu", &size, &res), 2);
	free(s);
	return res * (size_t)sysconf(_SC_PAGESIZE);
}


START_TEST(test_exit_zero_with_stdout_and_stderr_captured)
{
	char *argv[] = {"/bin/sh", "-c", "echo hello; echo oops >&2", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	sp_run_spec(&s, &run, 10);
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
	sp_run_free(&run);
}
END_TEST

START_TEST(test_exit_code_is_reported)
{
	char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	sp_run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 3);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_NONE);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_death_by_signal_is_reported)
{
	char *argv[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	sp_run_spec(&s, &run, 10);
	ck_assert(!run.r.exited);
	ck_assert_int_eq(run.r.signal, SIGKILL);
	ck_assert_int_eq(run.r.killed, SPAWN_KILL_NONE);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_output_is_made_valid_text)
{
	char *argv[] = {"/bin/sh", "-c", "printf 'a\\000b\\377c'", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	sp_run_spec(&s, &run, 10);
	ck_assert_str_eq(run.r.out, "a\xEF\xBF\xBD"
	                            "b\xEF\xBF\xBD"
	                            "c");
	ck_assert_uint_eq(run.r.out_total, 5);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_output_limit_zero_keeps_nothing_but_counts)
{
	char *argv[] = {"/bin/sh", "-c", "echo hello; echo world >&2", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	s.output_limit = 0;
	sp_run_spec(&s, &run, 10);
	ck_assert_str_eq(run.r.out, "");
	ck_assert_uint_eq(run.r.out_len, 0);
	ck_assert_uint_eq(run.r.out_total, 6);
	ck_assert_str_eq(run.r.err, "");
	ck_assert_uint_eq(run.r.err_total, 6);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_stdin_is_delivered_byte_for_byte)
{
	enum { N = 1024 * 1024 };
	char *path = sp_tmp_path("stdin.copy");
	char *argv[] = {"/bin/sh", "-c", "cat > \"$1\"", "sh", path, NULL};
	struct spawn_spec s = sp_spec_of(argv);
	char *input = malloc(N), *got;
	struct sp_run run;
	size_t i, len = 0;

	ck_assert_ptr_nonnull(input);
	/* Every byte value, NUL and 0xFF included, in no simple period. */
	for (i = 0; i < N; i++)
		input[i] = (char)(i * 7 + (i >> 8) + (i >> 16));
	s.input = input;
	s.input_len = N;
	sp_run_spec(&s, &run, 20);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	got = sp_slurp(path, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, N);
	ck_assert(memcmp(got, input, N) == 0);
	free(got);
	free(input);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_empty_input_is_immediate_eof)
{
	char *argv[] = {"/bin/cat", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	/* cat would wait forever if stdin were not closed at once. */
	sp_run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "");
	sp_run_free(&run);
}
END_TEST

START_TEST(test_handler_that_never_reads_stdin_does_not_wedge)
{
	enum { N = 4 * 1024 * 1024 };
	char *argv[] = {"/bin/sh", "-c", "echo done", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	char *input = calloc(1, N);
	struct sp_run run;

	/* Far more than a pipe holds: writes hit EAGAIN, then EPIPE. */
	ck_assert_ptr_nonnull(input);
	memset(input, '{', N);
	s.input = input;
	s.input_len = N;
	sp_run_spec(&s, &run, 10);
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "done\n");
	free(input);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_environment_is_exactly_envp)
{
	char *argv[] = {"/usr/bin/env", NULL};
	char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "PGJOBD_JOB_ID=42", "LANG=C.UTF-8",
	               "WITH_SPACE=a b", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;

	/* Something the daemon has that the handler must not see. */
	setenv("PGJOBD_SECRET_DSN", "postgresql://secret", 1);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	s.envp = env;
	sp_run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, "PATH=/usr/local/bin:/usr/bin:/bin\nPGJOBD_JOB_ID=42\n"
	                            "LANG=C.UTF-8\nWITH_SPACE=a b\n");
	sp_run_free(&run);
}
END_TEST

START_TEST(test_only_fds_0_1_2_are_inherited)
{
	char *argv[] = {"/bin/ls", "-1", "/proc/self/fd", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run, other;
	char *sleeper[] = {"/bin/sleep", "1000", NULL};
	struct spawn_spec o = sp_spec_of(sleeper);
	int leak, high;

	/* Descriptors a careless library would leave inheritable. */
	leak = open("/dev/null", O_RDONLY);
	ck_assert_int_ge(leak, 0);
	high = dup2(leak, 100);
	ck_assert_int_eq(high, 100);
	/* And the pipes of another spawn running at the same time. */
	sp_start(&o, &other);

	sp_run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	/* ls opens the directory it lists with the lowest free number: 3
	 * exactly when nothing but 0, 1, 2 came along.  Anything inherited
	 * would be listed, and would push ls's own to 4 or beyond. */
	ck_assert_str_eq(run.r.out, "0\n1\n2\n3\n");

	spawn_kill(other.sp, true);
	sp_finish_run(&other, 10);
	close(leak);
	close(high);
	sp_run_free(&run);
	sp_run_free(&other);
}
END_TEST

START_TEST(test_exec_failure_is_reported_at_spawn_time)
{
	char *missing[] = {"/nonexistent/handler", NULL};
	char *noexec_path = sp_tmp_path("not-executable");
	char *noexec[] = {noexec_path, NULL};
	char *pwd[] = {"/bin/pwd", NULL};
	struct spawn_spec s;
	struct sp_run run;
	int errnum, before, fd;

	fd = open(noexec_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);

	memset(&run, 0, sizeof run);
	before = count_fds();

	s = sp_spec_of(missing);
	errnum = 0;
	ck_assert_ptr_null(spawn_start(sp_loop, &s, sp_done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, ENOENT);

	/* Root too needs an x bit to exec. */
	s = sp_spec_of(noexec);
	errnum = 0;
	ck_assert_ptr_null(spawn_start(sp_loop, &s, sp_done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, EACCES);

	s = sp_spec_of(pwd);
	s.cwd = "/nonexistent/dir";
	errnum = 0;
	ck_assert_ptr_null(spawn_start(sp_loop, &s, sp_done_cb, &run, &errnum));
	ck_assert_int_eq(errnum, ENOENT);

	/* No callback, and every pipe closed again. */
	ev_run(sp_loop, EVRUN_NOWAIT);
	ck_assert_int_eq(run.calls, 0);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_cwd_is_set)
{
	char *argv[] = {"/bin/pwd", "-P", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	char real[PATH_MAX + 1], expect[PATH_MAX + 2];
	struct sp_run run;

	ck_assert_ptr_nonnull(realpath(sp_tmpdir, real));
	snprintf(expect, sizeof expect, "%s\n", real);
	s.cwd = sp_tmpdir;
	sp_run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_str_eq(run.r.out, expect);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_handler_runs_in_its_own_session_and_group)
{
	char *argv[] = {"/bin/cat", "/proc/self/stat", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;
	int pid, ppid, pgrp, sid;
	pid_t expect;
	char state;
	const char *p;

	sp_start(&s, &run);
	expect = spawn_pid(run.sp);
	sp_finish_run(&run, 10);
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
	sp_run_free(&run);
}
END_TEST

START_TEST(test_signal_mask_empty_and_dispositions_default)
{
	char *argv[] = {"/bin/grep", "^Sig", "/proc/self/status", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;
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

	sp_run_spec(&s, &run, 10);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_msg(strstr(run.r.out, "SigBlk:\t0000000000000000\n") != NULL, "%s", run.r.out);
	ck_assert_msg(strstr(run.r.out, "SigIgn:\t0000000000000000\n") != NULL, "%s", run.r.out);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_huge_output_keeps_tail_and_memory_flat)
{
	char *argv[] = {"/bin/sh", "-c", "yes | head -c 104857600", NULL};
	struct spawn_spec s = sp_spec_of(argv);
	struct sp_run run;
	size_t before, after;

	s.output_limit = 64 * 1024;
	before = rss_bytes();
	sp_run_spec(&s, &run, 60);
	after = rss_bytes();
	ck_assert(run.r.exited);
	ck_assert_int_eq(run.r.exit_code, 0);
	ck_assert_uint_eq(run.r.out_total, 104857600);
	ck_assert_uint_eq(run.r.out_len, 64 * 1024);
	ck_assert_int_eq(run.r.out[0], 'y');
	ck_assert_int_eq(run.r.out[64 * 1024 - 1], '\n');
	ck_assert_msg(after < before + 4 * 1024 * 1024, "RSS grew from %zu to %zu", before, after);
	sp_run_free(&run);
}
END_TEST

START_TEST(test_many_concurrent_spawns_each_report_their_own)
{
	enum { N = 24 };
	struct sp_run runs[N];
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
		s = sp_spec_of(argv[i]);
		sp_start(&s, &runs[i]);
	}
	/* Run the sp_loop until every callback has fired. */
	{
		bool expired = false;
		ev_timer t;

		ev_now_update(sp_loop);
		ev_timer_init(&t, sp_deadline_cb, 20., 0.);
		t.data = &expired;
		ev_timer_start(sp_loop, &t);
		while (!all && !expired) {
			ev_run(sp_loop, EVRUN_ONCE);
			for (done = 0, i = 0; i < N; i++)
				done += runs[i].done;
			all = done == N;
		}
		ev_timer_stop(sp_loop, &t);
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
		sp_run_free(&runs[i]);
	}
}
END_TEST

static Suite *
spawn_suite(void)
{
	Suite *s = suite_create("spawn");
	TCase *tc = sp_tcase(s, "spawn");

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
	tcase_add_test(tc, test_huge_output_keeps_tail_and_memory_flat);
	tcase_add_test(tc, test_many_concurrent_spawns_each_report_their_own);
	return s;
}

int
main(void)
{
	return t_run_suite(spawn_suite());
}
