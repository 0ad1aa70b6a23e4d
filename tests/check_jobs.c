/*
 * check_jobs: what becomes of a job run by the real pgjobd binary
 * (CONTRACT sections 3-5) against the throwaway cluster of tests/with-pg.sh:
 * its outcome (result, retries with growing backoff, dead exit codes,
 * timeouts that take the whole process group, a handler that cannot
 * start), which jobs are leased and in which order (run_at, priority,
 * unmapped types, per-type concurrency), and what its handler sees (stdin,
 * environment, descriptors, argv from the payload, output kept to a tail in
 * flat memory).  The daemon process itself is check_daemon.
 *
 * Each test makes its own database, migrates it with `pgjobd --migrate`,
 * starts a daemon, enqueues with SQL and waits for what it expects with a
 * deadline: no sleep stands in for synchronisation.  Every clean stop
 * asserts exit status 0: under ASan a leak report makes it non-zero, so a
 * leak in the daemon fails the test that caused it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemonlib.h"

/* ---- outcomes ---- */

START_TEST(test_success_stores_stdout_as_result)
{
	char *cfg = d_config(FAST "[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = t_fresh_schema("pgjobd_d_success", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "echo", "{\"hello\": \"world\", \"n\": [1, 2, 3]}");

	d_wait_state(c, id, "done", JOB_MS);
	d_expect_job(c, id, "result = payload::text AND attempts = 1 AND exit_code = 0"
	    " AND finished_at >= started_at AND last_error IS NULL");
	d_expect_history(c, id, false, "1:done");
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
				 " exit_code = 0 AND signal IS NULL AND error IS NULL", id), 1);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_failure_retries_with_growing_backoff_then_dead)
{
	char *cfg = d_config(FAST "[handler.fail]\n"
				"command = /bin/sh -c 'echo oops >&2; exit 1'\n"
				"max_attempts = 4\nbackoff = 200ms\nbackoff_max = 10s\n");
	PGconn *c = t_fresh_schema("pgjobd_d_retry", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "fail", "{}");
	char idtext[32], *err;
	int gap[4] = {0};
	PGresult *r;

	d_wait_state(c, id, "dead", JOB_MS);
	ck_assert_int_eq(d_qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", id), 4);
	d_expect_history(c, id, false, "1:retry,2:retry,3:retry,4:dead");
	err = d_qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "exit code 1") && strstr(err, "oops"), "last_error: %s", err);
	free(err);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
				 " exit_code = 1 AND error LIKE '%%oops%%'", id), 4);

	/* Retry n waits backoff * 2^(n-1) +-10%: 200, 400, 800 ms.  The gap
	 * between two starts is that wait plus the handler's run and a few
	 * round trips: at least 90% of the wait, and growing. */
	snprintf(idtext, sizeof idtext, "%lld", id);
	r = t_exec(c, "SELECT (extract(epoch FROM started_at - lag(started_at) OVER w) * 1000)::int"
		      "  FROM pgjobd.attempts WHERE job_id = $1::bigint"
		      "  WINDOW w AS (ORDER BY attempt) ORDER BY attempt",
	    idtext, NULL);
	ck_assert_int_eq(PQntuples(r), 4);
	for (int i = 1; i < 4; i++) {
		int want = 200 << (i - 1);
		gap[i] = atoi(PQgetvalue(r, i, 0));
		ck_assert_msg(gap[i] >= want * 9 / 10 && gap[i] < want * 11 / 10 + 1000,
		    "gap before attempt %d is %d ms, want about %d", i + 1, gap[i], want);
	}
	PQclear(r);
	ck_assert_msg(gap[2] > gap[1] && gap[3] > gap[2], "gaps do not grow: %d, %d, %d ms", gap[1],
	    gap[2], gap[3]);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_dead_exit_code_is_dead_at_once)
{
	char *cfg = d_config(FAST "[handler.bad]\ncommand = /bin/sh -c 'exit 42'\n"
				"max_attempts = 5\nbackoff = 100ms\ndead_exit_codes = 42\n");
	PGconn *c = t_fresh_schema("pgjobd_d_deadcode", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "bad", "{}");
	char *err;

	d_wait_state(c, id, "dead", JOB_MS);
	ck_assert_int_eq(d_qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", id), 1);
	ck_assert_int_eq(d_qint(c, "SELECT exit_code FROM pgjobd.jobs WHERE id = %lld", id), 42);
	d_expect_history(c, id, false, "1:dead");
	err = d_qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "dead_exit_codes") != NULL, "last_error: %s", err);
	free(err);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_timeout_kills_handler_and_its_background_grandchild)
{
	char *dir = d_make_dir();
	char *cfg = d_config(FAST "[handler.hang]\n"
				"command = /bin/sh -c 'sleep 1000 & echo $! > %s/pid; wait'\n"
				"timeout = 1s\nmax_attempts = 1\n",
	    dir);
	PGconn *c = t_fresh_schema("pgjobd_d_timeout", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = d_enqueue(c, "hang", "{}");
	pid_t grandchild;
	char *err;

	grandchild = d_wait_pid_file(dir, "pid", JOB_MS);
	d_track_group(grandchild);
	ck_assert_msg(d_alive(grandchild), "the background sleep is not running");
	d_wait_state(c, id, "dead", JOB_MS);
	/* The group got SIGTERM: the grandchild went with the handler. */
	d_wait_dead(grandchild, 3000);
	d_expect_history(c, id, false, "1:dead");
	err = d_qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "timed out") != NULL, "last_error: %s", err);
	free(err);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
	d_remove_dir(dir);
}
END_TEST

/* ---- what is leased, and in which order ---- */

START_TEST(test_run_at_in_the_future_is_honoured)
{
	char *cfg = d_config(FAST "[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = t_fresh_schema("pgjobd_d_runat", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long id = t_int(c, "SELECT pgjobd.enqueue('echo', '{}', 'default',"
				" now() + interval '2 s')", NULL);

	d_expect_job(c, id, "state = 'ready' AND run_at > now()");
	d_wait_state(c, id, "done", JOB_MS);
	/* Not before run_at, and found by the poll (500ms) soon after. */
	d_expect_job(c, id, "started_at >= run_at AND started_at < run_at + interval '3 s'");
	d_expect_history(c, id, false, "1:done");
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_jobs_start_in_priority_then_run_at_then_id_order)
{
	char *cfg = d_config(FAST "concurrency = 1\n[handler.t]\ncommand = /bin/true\n");
	PGconn *c = t_fresh_schema("pgjobd_d_order", cfg);
	char *now = t_str(c, "SELECT now()::text", NULL);
	const char *ins = "SELECT pgjobd.enqueue('t', '{}', 'default',"
			  " $1::timestamptz - $2::interval, $3::int)";
	long long id[6];
	char *want, *got;
	struct t_daemon *d;

	/* Enqueued before the daemon starts, in an order that is none of
	 * the three keys. */
	id[0] = t_int(c, ins, now, "1 min", "5", NULL);  /* last: priority 5 */
	id[1] = t_int(c, ins, now, "1 min", "1", NULL);  /* 4th */
	id[2] = t_int(c, ins, now, "2 min", "1", NULL);  /* 3rd: earlier run_at */
	id[3] = t_int(c, ins, now, "0 min", "-1", NULL); /* 1st: priority -1 */
	id[4] = t_int(c, ins, now, "1 min", "1", NULL);  /* 5th: same run_at, higher id */
	id[5] = t_int(c, ins, now, "9 min", "0", NULL);  /* 2nd */
	free(now);
	want = d_asprintf("%lld,%lld,%lld,%lld,%lld,%lld", id[3], id[5], id[2], id[1], id[4], id[0]);
	d = d_start(cfg, NULL);
	d_wait_value(c, "6", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	got = t_str(c, "SELECT string_agg(id::text, ',' ORDER BY started_at) FROM pgjobd.jobs",
	    NULL);
	ck_assert_str_eq(got, want);
	free(got);
	/* The attempts agree (one each, in the same order). */
	got = t_str(c, "SELECT string_agg(job_id::text, ',' ORDER BY started_at)"
		       "  FROM pgjobd.attempts WHERE outcome = 'done' AND attempt = 1", NULL);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_unmapped_type_is_never_leased)
{
	char *cfg = d_config(FAST "[handler.known]\ncommand = /bin/true\n");
	PGconn *c = t_fresh_schema("pgjobd_d_unmapped", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long stranger = d_enqueue(c, "unknown", "{}");
	long long first = d_enqueue(c, "known", "{}"), second;

	d_wait_state(c, first, "done", JOB_MS);
	/* A second lease round, the stranger still first in line. */
	second = d_enqueue(c, "known", "{}");
	d_wait_state(c, second, "done", JOB_MS);
	d_expect_job(c, stranger, "state = 'ready' AND attempts = 0 AND worker IS NULL"
	    " AND started_at IS NULL");
	d_expect_history(c, stranger, false, "");
	d_stop(d);
	d_expect_job(c, stranger, "state = 'ready' AND attempts = 0");
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_type_concurrency_cap_holds_while_other_types_run)
{
	/* Short handlers, so that the capped type changes hands often while
	 * the other type's outcomes keep the connection busy. */
	char *cfg = d_config(FAST "concurrency = 4\n"
				"[handler.capped]\ncommand = /bin/sleep 0.05\nconcurrency = 1\n"
				"[handler.free]\ncommand = /bin/sleep 0.01\n");
	PGconn *c = t_fresh_schema("pgjobd_d_cap", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	int64_t deadline = t_now_ms() + 60000;
	int max_capped = 0, samples = 0;
	bool parallel = false;

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('capped', '{}') FROM generate_series(1, 20)", NULL));
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('free', '{}') FROM generate_series(1, 100)", NULL));
	/* Sample as fast as the database answers until everything is done. */
	for (;;) {
		PGresult *r = t_exec(c,
		    "SELECT count(*) FILTER (WHERE type = 'capped' AND state = 'running'),"
		    "       count(*) FILTER (WHERE type = 'free' AND state = 'running'),"
		    "       count(*) FILTER (WHERE state = 'done')"
		    "  FROM pgjobd.jobs", NULL);
		int capped = atoi(PQgetvalue(r, 0, 0)), other = atoi(PQgetvalue(r, 0, 1));
		int done = atoi(PQgetvalue(r, 0, 2));

		PQclear(r);
		samples++;
		if (capped > max_capped)
			max_capped = capped;
		if (capped == 1 && other >= 1)
			parallel = true;
		if (done == 120)
			break;
		ck_assert_msg(t_now_ms() < deadline, "only %d of 120 jobs done after 60s", done);
	}
	ck_assert_msg(max_capped <= 1, "%d capped jobs were running at once", max_capped);
	ck_assert_msg(parallel, "never saw the other type run beside the capped one (%d samples)",
	    samples);
	/* The capped type's attempts never overlapped, as written down. */
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts a JOIN pgjobd.attempts b"
				 " ON a.id < b.id AND tstzrange(a.started_at, a.finished_at) &&"
				 " tstzrange(b.started_at, b.finished_at)"
				 " JOIN pgjobd.jobs ja ON ja.id = a.job_id JOIN pgjobd.jobs jb"
				 " ON jb.id = b.job_id WHERE ja.type = 'capped' AND jb.type = 'capped'"),
	    0);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

/* ---- what a handler sees ---- */

START_TEST(test_handler_stdin_is_the_payload_byte_for_byte)
{
	char *cfg = d_config(FAST "output_limit = 1MiB\n[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = t_fresh_schema("pgjobd_d_stdin", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	/* Unicode (2-, 3- and 4-byte), escapes, control characters, and a
	 * payload larger than a pipe holds (written without blocking while
	 * the handler echoes it). */
	long long small = d_enqueue(c, "echo",
	    "{\"s\": \"h\u00e9llo \u2713 \U0001F600 \\\"q\\\" back\\\\slash\\nnl\\ttab \\u0001\","
	    " \"n\": [1, 2.5, -0, 1e3, null, true, false], \"e\": {}, \"\": \"\"}");
	long long big = t_int(c, "SELECT pgjobd.enqueue('echo', jsonb_build_object('big',"
				 " repeat('\u00e9\u2713x', 100000), 'tail', E'\\\\end'))", NULL);

	d_wait_state(c, small, "done", JOB_MS);
	d_wait_state(c, big, "done", JOB_MS);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE result = payload::text"
				 " AND octet_length(result) = octet_length(payload::text)"), 2);
	ck_assert_int_gt(d_qint(c, "SELECT octet_length(result) FROM pgjobd.jobs WHERE id = %lld",
			     big), 600000);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* TEXT's lines, sorted, joined by newlines (malloc'd). */
static char *
sorted_lines(const char *text)
{
	char *copy = strdup(text), *lines[64], *save = NULL, *out;
	size_t n = 0, len = 1;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		ck_assert_uint_lt(n, 64);
		lines[n++] = l;
		len += strlen(l) + 1;
	}
	qsort(lines, n, sizeof *lines, cmp_str);
	out = calloc(1, len);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(copy);
	return out;
}


START_TEST(test_handler_environment_is_exactly_the_contract)
{
	char *cfg = d_config(FAST "queues = q-1\n[handler.env]\ncommand = /usr/bin/env\n"
				"environment = LANG=C.UTF-8 MODE=fast\nmax_attempts = 7\n");
	PGconn *c = t_fresh_schema("pgjobd_d_env", cfg);
	/* None of these may reach the handler (nor ASAN_OPTIONS, PGHOST,
	 * PGDATABASE ... of the test's own environment). */
	char *extra[] = {"NOTIFY_SOCKET=/nonexistent", "PGPASSWORD=secret", "FOO=bar", NULL};
	struct t_daemon *d = d_start(cfg, extra);
	long long id = t_int(c, "SELECT pgjobd.enqueue('env', '{}', 'q-1', NULL, 0, 3)", NULL);
	char *result, *want, *got;

	d_wait_state(c, id, "done", JOB_MS);
	result = d_qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", id);
	got = sorted_lines(result);
	want = d_asprintf("LANG=C.UTF-8\n"
			 "MODE=fast\n"
			 "PATH=/usr/local/bin:/usr/bin:/bin\n"
			 "PGJOBD_ATTEMPT=1\n"
			 "PGJOBD_JOB_ID=%lld\n"
			 "PGJOBD_JOB_TYPE=env\n"
			 "PGJOBD_MAX_ATTEMPTS=3\n"
			 "PGJOBD_QUEUE=q-1\n",
	    id);
	ck_assert_str_eq(got, want);
	free(result);
	free(got);
	free(want);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_handler_has_no_descriptor_but_stdio)
{
	char *cfg = d_config(FAST "[handler.fds]\ncommand = /bin/ls -1 /proc/self/fd\n"
				"[handler.kinds]\ncommand = /bin/sh -c 'ls -l /proc/$$/fd'\n");
	PGconn *c = t_fresh_schema("pgjobd_d_fds", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long fds = d_enqueue(c, "fds", "{}"), kinds = d_enqueue(c, "kinds", "{}");
	char *result;

	/* ls opens exactly one descriptor, /proc/self/fd itself, at the
	 * lowest free number: 3 when only 0, 1 and 2 were inherited. */
	d_wait_state(c, fds, "done", JOB_MS);
	result = d_qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", fds);
	ck_assert_str_eq(result, "0\n1\n2\n3\n");
	free(result);
	/* The shell's 0, 1 and 2 are pipes (its own, from the daemon), and
	 * it has nothing else open (ls runs in a child of it). */
	d_wait_state(c, kinds, "done", JOB_MS);
	result = d_qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", kinds);
	ck_assert_msg(t_count_of(result, " -> pipe:[") == 3 && t_count_of(result, " -> ") == 3,
	    "the shell's descriptors:\n%s", result);
	free(result);
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

/* A "Vm...:" value of /proc/PID/status, in KiB. */
static long
vm_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, 10);
	fclose(f);
	ck_assert_int_ge(v, 0);
	return v;
}

START_TEST(test_huge_output_keeps_the_tail_and_memory_flat)
{
	/* The size comes from the payload's args: a small warm-up run first,
	 * so that what one job costs anyway is in the baseline. */
	char *cfg = d_config(FAST "output_limit = 64KiB\n"
				"[handler.flood]\ncommand = /bin/sh -c 'yes | head -c \"$1\"' sh\n"
				"args_from_payload = yes\n");
	PGconn *c = t_fresh_schema("pgjobd_d_flood", cfg);
	/* ASan holds freed memory in quarantine (256 MiB by default), which
	 * reads as growth here in proportion to what the daemon allocates and
	 * frees meanwhile; keep it small.  A plain build ignores it. */
	const char *asan = getenv("ASAN_OPTIONS");
	char asan_opts[512];
	struct t_daemon *d;
	long long warm, id;
	long hwm0, rss0, hwm1, rss1;

	/* In this test's own process (Check forks one per test): the daemon
	 * inherits it. */
	snprintf(asan_opts, sizeof asan_opts, "%s%squarantine_size_mb=1", asan ? asan : "",
	    asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", asan_opts, 1);
	d = d_start(cfg, NULL);
	warm = d_enqueue(c, "flood", "{\"args\": [\"100000\"]}");

	d_wait_state(c, warm, "done", JOB_MS);
	ck_assert_int_eq(d_qint(c, "SELECT length(result) FROM pgjobd.jobs WHERE id = %lld", warm),
	    65536);
	hwm0 = vm_kib(d->pid, "VmHWM");
	rss0 = vm_kib(d->pid, "VmRSS");
	id = d_enqueue(c, "flood", "{\"args\": [\"104857600\"]}");
	d_wait_state(c, id, "done", 120000);
	hwm1 = vm_kib(d->pid, "VmHWM");
	rss1 = vm_kib(d->pid, "VmRSS");
	ck_assert_msg(hwm1 - hwm0 < 8192 && rss1 - rss0 < 8192,
	    "daemon memory grew: VmHWM %ld -> %ld KiB, VmRSS %ld -> %ld KiB", hwm0, hwm1, rss0, rss1);
	/* Only the tail is kept: exactly output_limit bytes of "y\n". */
	d_expect_job(c, id, "length(result) = 65536 AND result = repeat('y' || chr(10), 32768)");
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_args_from_payload_are_appended_to_argv)
{
	char *cfg = d_config(FAST "[handler.args]\ncommand = /usr/bin/printf '<%%s>'\n"
				"args_from_payload = yes\n"
				"[handler.noargs]\ncommand = /usr/bin/printf '<%%s>' fixed\n");
	PGconn *c = t_fresh_schema("pgjobd_d_args", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	/* Spaces, a newline, backslashes (one before an n), unicode, empty. */
	long long id = d_enqueue(c, "args",
	    "{\"args\": [\"a b\", \"c\\nd\", \"back\\\\slash\", \"lit\\\\nnot-newline\","
	    " \"\u00fcn\u00ef\", \"\"], \"other\": 1}");
	/* Without args_from_payload the payload's args are ignored. */
	long long plain = d_enqueue(c, "noargs", "{\"args\": [\"x\"]}");
	/* With it, a payload without "args" adds nothing. */
	long long none = d_enqueue(c, "args", "{\"x\": 1}");

	d_wait_state(c, id, "done", JOB_MS);
	d_wait_state(c, plain, "done", JOB_MS);
	d_wait_state(c, none, "done", JOB_MS);
	d_expect_job(c, id, "result ="
	    " E'<a b><c\\nd><back\\\\slash><lit\\\\nnot-newline><\u00fcn\u00ef><>'");
	d_expect_job(c, plain, "result = '<fixed>'");
	d_expect_job(c, none, "result = '<>'");
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_args_not_an_array_of_strings_is_dead)
{
	char *cfg = d_config(FAST "[handler.args]\ncommand = /bin/echo\nargs_from_payload = yes\n"
				"max_attempts = 5\nbackoff = 100ms\n");
	PGconn *c = t_fresh_schema("pgjobd_d_badargs", cfg);
	struct t_daemon *d = d_start(cfg, NULL);
	long long scalar = d_enqueue(c, "args", "{\"args\": \"not an array\"}");
	long long number = d_enqueue(c, "args", "{\"args\": [\"ok\", 1]}");
	long long object = d_enqueue(c, "args", "{\"args\": {\"a\": \"b\"}}");
	long long ids[] = {scalar, number, object};

	for (int i = 0; i < 3; i++) {
		char *err;
		d_wait_state(c, ids[i], "dead", JOB_MS);
		ck_assert_int_eq(d_qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", ids[i]),
		    1);
		d_expect_history(c, ids[i], false, "1:dead");
		err = d_qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", ids[i]);
		ck_assert_msg(strstr(err, "args") != NULL, "last_error: %s", err);
		free(err);
	}
	d_stop(d);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

START_TEST(test_handler_that_cannot_start_retries_then_dead)
{
	/* The program exists when the config is checked, and is gone when
	 * the job runs. */
	char *prog = t_write_temp(".sh", "#!/bin/sh\nexit 0\n");
	char *cfg, *err, *want;
	PGconn *c;
	struct t_daemon *d;
	long long id;

	ck_assert_int_eq(chmod(prog, 0755), 0);
	cfg = d_config(FAST "[handler.gone]\ncommand = %s\nmax_attempts = 2\nbackoff = 100ms\n", prog);
	c = t_fresh_schema("pgjobd_d_nostart", cfg);
	d = d_start(cfg, NULL);
	ck_assert_int_eq(unlink(prog), 0);
	id = d_enqueue(c, "gone", "{}");
	d_wait_state(c, id, "dead", JOB_MS);
	d_expect_history(c, id, false, "1:retry,2:dead");
	want = d_asprintf("cannot start %s: No such file or directory", prog);
	err = d_qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_str_eq(err, want);
	free(err);
	ck_assert_int_eq(d_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
				 " error LIKE 'cannot start %%' AND exit_code IS NULL", id), 2);
	d_stop(d);
	free(want);
	free(prog);
	PQfinish(c);
	d_drop_config(cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc;

	tc = d_tcase(s, "outcomes", 120);
	tcase_add_test(tc, test_success_stores_stdout_as_result);
	tcase_add_test(tc, test_failure_retries_with_growing_backoff_then_dead);
	tcase_add_test(tc, test_dead_exit_code_is_dead_at_once);
	tcase_add_test(tc, test_timeout_kills_handler_and_its_background_grandchild);
	tcase_add_test(tc, test_handler_that_cannot_start_retries_then_dead);

	tc = d_tcase(s, "leasing", 120);
	tcase_add_test(tc, test_run_at_in_the_future_is_honoured);
	tcase_add_test(tc, test_jobs_start_in_priority_then_run_at_then_id_order);
	tcase_add_test(tc, test_unmapped_type_is_never_leased);
	tcase_add_test(tc, test_type_concurrency_cap_holds_while_other_types_run);

	tc = d_tcase(s, "handler", 180);
	tcase_add_test(tc, test_handler_stdin_is_the_payload_byte_for_byte);
	tcase_add_test(tc, test_handler_environment_is_exactly_the_contract);
	tcase_add_test(tc, test_handler_has_no_descriptor_but_stdio);
	tcase_add_test(tc, test_huge_output_keeps_the_tail_and_memory_flat);
	tcase_add_test(tc, test_args_from_payload_are_appended_to_argv);
	tcase_add_test(tc, test_args_not_an_array_of_strings_is_dead);

	return d_run_suite(s);
}
