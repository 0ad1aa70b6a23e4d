/*
 * check_daemon: the daemon's behaviour (CONTRACT sections 3-7) proven
 * against the real pgjobd binary (PGJOBD_BIN) and the throwaway cluster of
 * tests/with-pg.sh.  Every test makes its own database, migrates it with
 * `pgjobd --migrate`, starts one or two daemons, enqueues with SQL and waits
 * for what it expects with a deadline: no sleep stands in for
 * synchronisation.  Handlers are small sh scripts written inline in the
 * config; the ones that must be held running wait for a file the test
 * creates, and report their pid through a file so that the test can watch
 * the process itself.
 *
 * Durations are short (lease 2s, heartbeat 500ms, kill_grace 500ms) so that
 * the suite stays within a few minutes even under AddressSanitizer.  Every
 * clean stop asserts exit status 0: under ASan a leak report makes it
 * non-zero, so a leak in the daemon fails the test that caused it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* The [pgjobd] timings of a test config; a test adds the rest (name,
 * concurrency, shutdown_timeout, its handlers). */
#define TIMINGS(lease, heartbeat, poll)                                                            \
	"lease = " lease "\nheartbeat = " heartbeat "\npoll_interval = " poll "\n"                 \
	"kill_grace = 500ms\n"
#define FAST TIMINGS("2s", "500ms", "500ms")

#define READY_MS 20000 /* start to "ready:" (ASan, a busy machine) */
#define STOP_MS 30000
#define JOB_MS 20000   /* a short job, from enqueue to its outcome */

/* ---- what a failed test leaves behind ---- */

/*
 * Check runs each test in a forked child, _exit()s it when an assertion
 * fails (no atexit, no teardown) and then SIGKILLs its process group.  That
 * takes the daemons, but not their handlers (each leads a session of its
 * own) nor a cluster a test had stopped.  So what a test starts is recorded
 * in memory shared with the runner, and the next test's setup (and main, at
 * the end) clears up after a test that failed.
 */
#define NTRACK 32
struct leftovers {
	pid_t daemons[NTRACK];
	char logs[NTRACK][256]; /* their logs name their handlers' pids */
	pid_t groups[NTRACK];   /* handler process groups we know of */
	char pgctl[4096];       /* tests/pgctl.sh, while the cluster is stopped */
};
static struct leftovers *left;

static void
track_daemon(const struct t_daemon *d)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->daemons[i] == 0) {
			left->daemons[i] = d->pid;
			snprintf(left->logs[i], sizeof left->logs[i], "%s", d->log);
			return;
		}
	ck_abort_msg("too many daemons to track");
}

static void
untrack_daemon(pid_t pid)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->daemons[i] == pid)
			left->daemons[i] = 0;
}

static void
track_group(pid_t pid)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->groups[i] == 0) {
			left->groups[i] = pid;
			return;
		}
	ck_abort_msg("too many process groups to track");
}

static void
untrack_group(pid_t pid)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->groups[i] == pid)
			left->groups[i] = 0;
}

/* State letter of PID from /proc (0: no such process), and its parent. */
static char
proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], state = 0, *p;
	int pp = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything, even ')'. */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1, " %c %d", &state, &pp) != 2)
		return 0;
	if (ppid)
		*ppid = pp;
	return state;
}

/* Alive: exists and is not a zombie (an orphan's zombie may never be
 * reaped in a container whose init does not reap). */
static bool
alive(pid_t pid)
{
	char s = proc_state(pid, NULL);

	return s != 0 && s != 'Z' && s != 'X';
}

static bool
is_pgjobd(pid_t pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	if (!fgets(comm, sizeof comm, f))
		comm[0] = '\0';
	fclose(f);
	return !strcmp(comm, "pgjobd\n") && alive(pid);
}

/* SIGKILL the handlers a daemon's debug log says it started ("started
 * pid=N"), if still alive and still leading their own session. */
static void
kill_logged_handlers(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[1024], *p;

	while (f && fgets(line, sizeof line, f))
		if ((p = strstr(line, " started pid=")) != NULL) {
			pid_t pid = (pid_t)atoi(p + 13);
			if (pid > 0 && alive(pid) && getsid(pid) == pid)
				killpg(pid, SIGKILL);
		}
	if (f)
		fclose(f);
}

static void
cleanup(void)
{
	char cmd[4200];

	for (int i = 0; i < NTRACK; i++) {
		if (left->daemons[i] > 0) {
			if (is_pgjobd(left->daemons[i]))
				kill(left->daemons[i], SIGKILL);
			kill_logged_handlers(left->logs[i]);
			unlink(left->logs[i]);
			left->daemons[i] = 0;
		}
		if (left->groups[i] > 0 && getsid(left->groups[i]) == left->groups[i])
			killpg(left->groups[i], SIGKILL);
		left->groups[i] = 0;
	}
	/* The next test needs the cluster. */
	if (*left->pgctl) {
		snprintf(cmd, sizeof cmd, "/bin/sh '%s' start >/dev/null", left->pgctl);
		if (system(cmd) != 0)
			fprintf(stderr, "check_daemon: cannot start the cluster again\n");
		left->pgctl[0] = '\0';
	}
}

static void
setup(void)
{
	cleanup();
}

/* ---- small helpers ---- */

static char * PRINTF(1, 2)
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	return s;
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The last 6000 bytes of a daemon log, for failure messages. */
static const char *
log_tail(const char *log)
{
	size_t n = strlen(log);

	return n > 6000 ? log + n - 6000 : log;
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* A config: [pgjobd] with database = "" (libpq env) and TEXT. */
static char * PRINTF(1, 2)
config(const char *fmt, ...)
{
	va_list ap;
	char *text, *path;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&text, fmt, ap), 0);
	va_end(ap);
	path = t_config(text);
	free(text);
	return path;
}

static void
rewrite_config(const char *path, const char *text)
{
	char *full = xasprintf("[pgjobd]\ndatabase =\n%s", text);

	write_text(path, full);
	free(full);
}

static void
drop_config(char *path)
{
	unlink(path);
	free(path);
}

/* A fresh temp directory for a test's files (pid files, go-files). */
static char *
make_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *dir = xasprintf("%s/pgjobd-d-XXXXXX", t && *t ? t : "/tmp");

	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	return dir;
}

static void
remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char *p;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

static void
touch(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);

	write_text(p, "");
	free(p);
}

/* Wait for DIR/NAME to hold a whole line with a pid; returns it. */
static pid_t
wait_pid_file(const char *dir, const char *name, int timeout_ms)
{
	char *path = xasprintf("%s/%s", dir, name);
	int64_t deadline = t_now_ms() + timeout_ms;

	for (;;) {
		char buf[64] = "";
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			buf[n] = '\0';
			if (n > 0 && buf[n - 1] == '\n' && atoi(buf) > 0) {
				free(path);
				return (pid_t)atoi(buf);
			}
		}
		if (t_now_ms() > deadline)
			ck_abort_msg("no pid in %s after %d ms", path, timeout_ms);
		poll(NULL, 0, 10);
	}
}

/* Wait until PID is gone (or a zombie); returns how long it took. */
static int64_t
wait_dead(pid_t pid, int timeout_ms)
{
	int64_t start = t_now_ms();

	while (alive(pid)) {
		if (t_now_ms() - start > timeout_ms)
			ck_abort_msg("process %d still alive after %d ms", (int)pid, timeout_ms);
		poll(NULL, 0, 5);
	}
	return t_now_ms() - start;
}

/* ---- the database ---- */

/* A fresh database NAME, migrated by the binary under test with CFG. */
static PGconn *
fresh_db(const char *name, const char *cfg)
{
	const char *argv[] = {t_pgjobd(), "-c", cfg, "--migrate", NULL};
	char *out, *err;
	int rc;

	t_use_fresh_db(name);
	rc = t_run(argv, &out, &err, 60000);
	ck_assert_msg(rc == 0, "--migrate exited %d: %s", rc, err);
	ck_assert_str_eq(out, T_MIGRATED);
	free(out);
	free(err);
	return t_connect();
}

static long long
enqueue(PGconn *c, const char *type, const char *payload)
{
	return t_int(c, "SELECT pgjobd.enqueue($1, $2::jsonb)", type, payload, NULL);
}

static long long PRINTF(2, 3)
qint(PGconn *c, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	long long v;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	v = t_int(c, sql, NULL);
	free(sql);
	return v;
}

/* A malloc'd string (NULL for SQL NULL). */
static char * PRINTF(2, 3)
qstr(PGconn *c, const char *fmt, ...)
{
	va_list ap;
	char *sql, *v;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	v = t_str(c, sql, NULL);
	free(sql);
	return v;
}

static void PRINTF(4, 5)
wait_value(PGconn *c, const char *want, int timeout_ms, const char *fmt, ...)
{
	va_list ap;
	char *sql;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	t_wait_value(c, want, timeout_ms, sql);
	free(sql);
}

/* Job ID satisfies COND (SQL over its pgjobd.jobs row); on failure the
 * message shows the row. */
static void PRINTF(3, 4)
expect_job(PGconn *c, long long id, const char *cond, ...)
{
	va_list ap;
	char *where, *row;

	va_start(ap, cond);
	ck_assert_int_ge(vasprintf(&where, cond, ap), 0);
	va_end(ap);
	if (qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE id = %lld AND (%s)", id, where) == 1) {
		free(where);
		return;
	}
	row = qstr(c, "SELECT left(row_to_json(j)::text, 2000) FROM pgjobd.jobs j WHERE id = %lld",
	    id);
	ck_abort_msg("job %lld is not: %s\nit is: %s", id, where, row ? row : "(no such job)");
}

static void
wait_state(PGconn *c, long long id, const char *state, int timeout_ms)
{
	wait_value(c, state, timeout_ms, "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);
}

/* The job's attempt history as "attempt:outcome[:worker]" joined by ",". */
static char *
history(PGconn *c, long long id, bool workers)
{
	return qstr(c,
	    "SELECT coalesce(string_agg(attempt || ':' || outcome %s, ',' ORDER BY attempt, id), '')"
	    "  FROM pgjobd.attempts WHERE job_id = %lld",
	    workers ? "|| ':' || coalesce(worker, '?')" : "", id);
}

static void
expect_history(PGconn *c, long long id, bool workers, const char *want)
{
	char *got = history(c, id, workers);

	ck_assert_msg(!strcmp(got, want), "job %lld: attempts %s, want %s", id, got, want);
	free(got);
}

/* ---- daemons ---- */

static struct t_daemon *
start(const char *cfg, char *const *env)
{
	struct t_daemon *d = t_daemon_start(cfg, env);

	track_daemon(d);
	t_daemon_wait_log(d, "ready: worker", READY_MS);
	return d;
}

/* "Logs: one line per event": every line of LOG starts with a timestamp
 * ("2024-01-31T12:34:56.789 level: ..."), none is empty or a continuation. */
static void
expect_one_line_per_event(const char *log)
{
	for (const char *l = log; *l; l = strchr(l, '\n') + 1) {
		const char *end = strchr(l, '\n');
		ck_assert_msg(end != NULL, "unterminated last log line: %s", l);
		ck_assert_msg(end - l > 24 && isdigit((unsigned char)l[0]) && l[4] == '-' &&
			l[10] == 'T' && l[23] == ' ',
		    "log line is not an event of its own: \"%.*s\"\nin:\n%s", (int)(end - l), l,
		    log_tail(log));
	}
}

/* Send SIG (0: none), wait up to TIMEOUT_MS for D to exit, require status
 * 0 (a LeakSanitizer report makes it non-zero) and a well-formed log, free
 * D, and return its log. */
static char *
expect_clean_exit(struct t_daemon *d, int sig, int timeout_ms)
{
	pid_t pid = d->pid;
	int rc = t_daemon_signal(d, sig, true, timeout_ms);
	char *log = t_daemon_log(d);

	untrack_daemon(pid);
	ck_assert_msg(rc == 0, "daemon %d exited with status %d; log:\n%s", (int)pid, rc,
	    log_tail(log));
	expect_one_line_per_event(log);
	t_daemon_stop(d); /* already reaped: only frees */
	return log;
}

static void
stop(struct t_daemon *d)
{
	free(expect_clean_exit(d, SIGTERM, STOP_MS));
}

static void
expect_log(struct t_daemon *d, const char *needle)
{
	char *log = t_daemon_log(d);

	ck_assert_msg(strstr(log, needle) != NULL, "daemon log has no \"%s\":\n%s", needle,
	    log_tail(log));
	free(log);
}

/* ---- outcomes ---- */

START_TEST(test_success_stores_stdout_as_result)
{
	char *cfg = config(FAST "[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = fresh_db("pgjobd_d_success", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "echo", "{\"hello\": \"world\", \"n\": [1, 2, 3]}");

	wait_state(c, id, "done", JOB_MS);
	expect_job(c, id, "result = payload::text AND attempts = 1 AND exit_code = 0"
	    " AND finished_at >= started_at AND last_error IS NULL");
	expect_history(c, id, false, "1:done");
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
				 " exit_code = 0 AND signal IS NULL AND error IS NULL", id), 1);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_failure_retries_with_growing_backoff_then_dead)
{
	char *cfg = config(FAST "[handler.fail]\n"
				"command = /bin/sh -c 'echo oops >&2; exit 1'\n"
				"max_attempts = 4\nbackoff = 200ms\nbackoff_max = 10s\n");
	PGconn *c = fresh_db("pgjobd_d_retry", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "fail", "{}");
	char idtext[32], *err;
	int gap[4] = {0};
	PGresult *r;

	wait_state(c, id, "dead", JOB_MS);
	ck_assert_int_eq(qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", id), 4);
	expect_history(c, id, false, "1:retry,2:retry,3:retry,4:dead");
	err = qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "exit code 1") && strstr(err, "oops"), "last_error: %s", err);
	free(err);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
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
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_dead_exit_code_is_dead_at_once)
{
	char *cfg = config(FAST "[handler.bad]\ncommand = /bin/sh -c 'exit 42'\n"
				"max_attempts = 5\nbackoff = 100ms\ndead_exit_codes = 42\n");
	PGconn *c = fresh_db("pgjobd_d_deadcode", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "bad", "{}");
	char *err;

	wait_state(c, id, "dead", JOB_MS);
	ck_assert_int_eq(qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", id), 1);
	ck_assert_int_eq(qint(c, "SELECT exit_code FROM pgjobd.jobs WHERE id = %lld", id), 42);
	expect_history(c, id, false, "1:dead");
	err = qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "dead_exit_codes") != NULL, "last_error: %s", err);
	free(err);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_timeout_kills_handler_and_its_background_grandchild)
{
	char *dir = make_dir();
	char *cfg = config(FAST "[handler.hang]\n"
				"command = /bin/sh -c 'sleep 1000 & echo $! > %s/pid; wait'\n"
				"timeout = 1s\nmax_attempts = 1\n",
	    dir);
	PGconn *c = fresh_db("pgjobd_d_timeout", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "hang", "{}");
	pid_t grandchild;
	char *err;

	grandchild = wait_pid_file(dir, "pid", JOB_MS);
	track_group(grandchild);
	ck_assert_msg(alive(grandchild), "the background sleep is not running");
	wait_state(c, id, "dead", JOB_MS);
	/* The group got SIGTERM: the grandchild went with the handler. */
	wait_dead(grandchild, 3000);
	expect_history(c, id, false, "1:dead");
	err = qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_msg(strstr(err, "timed out") != NULL, "last_error: %s", err);
	free(err);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

/* ---- what is leased, and in which order ---- */

START_TEST(test_run_at_in_the_future_is_honoured)
{
	char *cfg = config(FAST "[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = fresh_db("pgjobd_d_runat", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = t_int(c, "SELECT pgjobd.enqueue('echo', '{}', 'default',"
				" now() + interval '2 s')", NULL);

	expect_job(c, id, "state = 'ready' AND run_at > now()");
	wait_state(c, id, "done", JOB_MS);
	/* Not before run_at, and found by the poll (500ms) soon after. */
	expect_job(c, id, "started_at >= run_at AND started_at < run_at + interval '3 s'");
	expect_history(c, id, false, "1:done");
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_jobs_start_in_priority_then_run_at_then_id_order)
{
	char *cfg = config(FAST "concurrency = 1\n[handler.t]\ncommand = /bin/true\n");
	PGconn *c = fresh_db("pgjobd_d_order", cfg);
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
	want = xasprintf("%lld,%lld,%lld,%lld,%lld,%lld", id[3], id[5], id[2], id[1], id[4], id[0]);
	d = start(cfg, NULL);
	wait_value(c, "6", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
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
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_unmapped_type_is_never_leased)
{
	char *cfg = config(FAST "[handler.known]\ncommand = /bin/true\n");
	PGconn *c = fresh_db("pgjobd_d_unmapped", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long stranger = enqueue(c, "unknown", "{}");
	long long first = enqueue(c, "known", "{}"), second;

	wait_state(c, first, "done", JOB_MS);
	/* A second lease round, the stranger still first in line. */
	second = enqueue(c, "known", "{}");
	wait_state(c, second, "done", JOB_MS);
	expect_job(c, stranger, "state = 'ready' AND attempts = 0 AND worker IS NULL"
	    " AND started_at IS NULL");
	expect_history(c, stranger, false, "");
	stop(d);
	expect_job(c, stranger, "state = 'ready' AND attempts = 0");
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_type_concurrency_cap_holds_while_other_types_run)
{
	/* Short handlers, so that the capped type changes hands often while
	 * the other type's outcomes keep the connection busy. */
	char *cfg = config(FAST "concurrency = 4\n"
				"[handler.capped]\ncommand = /bin/sleep 0.05\nconcurrency = 1\n"
				"[handler.free]\ncommand = /bin/sleep 0.01\n");
	PGconn *c = fresh_db("pgjobd_d_cap", cfg);
	struct t_daemon *d = start(cfg, NULL);
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
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts a JOIN pgjobd.attempts b"
				 " ON a.id < b.id AND tstzrange(a.started_at, a.finished_at) &&"
				 " tstzrange(b.started_at, b.finished_at)"
				 " JOIN pgjobd.jobs ja ON ja.id = a.job_id JOIN pgjobd.jobs jb"
				 " ON jb.id = b.job_id WHERE ja.type = 'capped' AND jb.type = 'capped'"),
	    0);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

/* ---- several daemons, crashes, fencing ---- */

START_TEST(test_two_daemons_never_run_a_job_twice)
{
	char *cfg_a = config(FAST "name = w-a\nconcurrency = 4\n[handler.fast]\ncommand = /bin/true\n");
	char *cfg_b = config(FAST "name = w-b\nconcurrency = 4\n[handler.fast]\ncommand = /bin/true\n");
	PGconn *c = fresh_db("pgjobd_d_two", cfg_a);
	struct t_daemon *a = start(cfg_a, NULL), *b = start(cfg_b, NULL);

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('fast', jsonb_build_object('i', g))"
			  "  FROM generate_series(1, 2000) g", NULL));
	wait_value(c, "2000", 150000, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	stop(a);
	stop(b);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE attempts = 1"), 2000);
	/* Exactly one attempt row per job, and it is the done one. */
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts"), 2000);
	ck_assert_int_eq(qint(c, "SELECT count(DISTINCT job_id) FROM pgjobd.attempts"
				 " WHERE outcome = 'done' AND attempt = 1"), 2000);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts a JOIN pgjobd.jobs j"
				 " ON j.id = a.job_id WHERE a.worker = j.worker"), 2000);
	/* Both worked. */
	ck_assert_int_eq(qint(c, "SELECT count(DISTINCT worker) FROM pgjobd.attempts"
				 " WHERE worker IN ('w-a', 'w-b')"), 2);
	ck_assert_int_gt(qint(c, "SELECT min(n) FROM (SELECT count(*) AS n FROM pgjobd.attempts"
				 " GROUP BY worker) s"), 0);
	PQfinish(c);
	drop_config(cfg_a);
	drop_config(cfg_b);
}
END_TEST

/* A handler that, on its first attempt only, writes its pid to DIR/pid and
 * sleeps "forever"; later attempts print "second" and succeed. */
#define FIRST_ATTEMPT_HANGS                                                                        \
	"command = /bin/sh -c 'if [ \"$PGJOBD_ATTEMPT\" = 1 ]; then echo $$ > %s/pid;"            \
	" exec sleep 1000; fi; echo second'\n"

START_TEST(test_killed_daemons_job_is_rescued_after_lease_expiry)
{
	char *dir = make_dir();
	char *cfg_a = config(FAST "name = w-a\n[handler.slow]\n" FIRST_ATTEMPT_HANGS, dir);
	char *cfg_b = config(FAST "name = w-b\n[handler.slow]\n" FIRST_ATTEMPT_HANGS, dir);
	PGconn *c = fresh_db("pgjobd_d_rescue", cfg_a);
	struct t_daemon *a = start(cfg_a, NULL), *b;
	long long id = enqueue(c, "slow", "{}");
	pid_t handler;
	int rc;

	handler = wait_pid_file(dir, "pid", JOB_MS);
	track_group(handler);
	wait_state(c, id, "running", JOB_MS);
	untrack_daemon(a->pid);
	rc = t_daemon_signal(a, SIGKILL, true, 10000);
	ck_assert_int_eq(rc, 128 + SIGKILL);
	t_daemon_stop(a);
	/* Its handler, in a session of its own, outlives it. */
	ck_assert(alive(handler));

	b = start(cfg_b, NULL);
	wait_state(c, id, "done", JOB_MS);
	expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	expect_job(c, id, "attempts = 2 AND worker = 'w-b' AND result = 'second' || chr(10)");
	expect_log(b, "outcome=lost");
	stop(b);
	killpg(handler, SIGKILL);
	wait_dead(handler, 5000);
	untrack_group(handler);
	PQfinish(c);
	drop_config(cfg_a);
	drop_config(cfg_b);
	remove_dir(dir);
}
END_TEST

START_TEST(test_stale_outcome_is_refused)
{
	/* Both daemons run a handler that waits for DIR/go.ATTEMPT.  A's
	 * heartbeat (14s) and poll (1h) stay out of the way: it neither
	 * notices the lost lease nor rescues the job itself. */
	char *dir = make_dir();
	char *h = xasprintf("[handler.wait]\ncommand = /bin/sh -c 'while [ ! -e %s/go.$PGJOBD_ATTEMPT ];"
			    " do sleep 0.02; done; echo attempt $PGJOBD_ATTEMPT'\n", dir);
	char *cfg_a = config(TIMINGS("30s", "14s", "1h") "name = w-a\nconcurrency = 1\n%s", h);
	char *cfg_b = config(TIMINGS("2s", "500ms", "200ms") "name = w-b\n%s", h);
	PGconn *c = fresh_db("pgjobd_d_fence", cfg_a);
	struct t_daemon *a = start(cfg_a, NULL), *b;
	long long id = enqueue(c, "wait", "{}"), token_a, token_b;
	char *log;

	wait_value(c, "running w-a 1", JOB_MS,
	    "SELECT state || ' ' || worker || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", id);
	token_a = qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	/* A's lease expires (as if A had been cut off), B rescues the job
	 * and runs it under a new lease. */
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET lease_expires_at = now() - interval '1 s'"
			  " WHERE state = 'running'", NULL));
	b = start(cfg_b, NULL);
	wait_value(c, "running w-b 2", JOB_MS,
	    "SELECT state || ' ' || worker || ' ' || attempts FROM pgjobd.jobs WHERE id = %lld", id);
	token_b = qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_int_ne(token_a, token_b);

	/* A's handler finishes: its outcome carries a stale token. */
	touch(dir, "go.1");
	t_daemon_wait_log(a, "refused", JOB_MS);
	expect_job(c, id, "state = 'running' AND worker = 'w-b' AND attempts = 2 AND"
	    " lease_token = %lld AND result IS NULL", token_b);
	expect_history(c, id, true, "1:lost:w-a");

	touch(dir, "go.2");
	wait_state(c, id, "done", JOB_MS);
	expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	expect_job(c, id, "result = 'attempt 2' || chr(10)");
	/* A's totals do not count the refused outcome as done. */
	log = expect_clean_exit(a, SIGTERM, STOP_MS);
	ck_assert_msg(strstr(log, "stopped: done 0,") != NULL, "A's log:\n%s", log_tail(log));
	free(log);
	stop(b);
	expect_history(c, id, true, "1:lost:w-a,2:done:w-b");
	free(h);
	PQfinish(c);
	drop_config(cfg_a);
	drop_config(cfg_b);
	remove_dir(dir);
}
END_TEST

START_TEST(test_cancel_kills_running_handler_within_a_second)
{
	char *dir = make_dir();
	char *cfg = config(FAST "[handler.sleep]\n"
				"command = /bin/sh -c 'echo $$ > %s/pid; exec sleep 1000'\n",
	    dir);
	PGconn *c = fresh_db("pgjobd_d_cancel", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "sleep", "{}");
	char *finished, *after;
	int64_t t0, took;
	pid_t handler;

	handler = wait_pid_file(dir, "pid", JOB_MS);
	track_group(handler);
	wait_state(c, id, "running", JOB_MS);
	ck_assert(alive(handler));
	t0 = t_now_ms();
	ck_assert_int_eq(qint(c, "SELECT pgjobd.cancel(%lld)::int", id), 1);
	wait_dead(handler, 1500);
	took = t_now_ms() - t0;
	ck_assert_msg(took <= 1500, "handler died %" PRId64 " ms after the cancel", took);
	untrack_group(handler);

	/* The daemon saw it and wrote nothing after cancel() did. */
	t_daemon_wait_log(d, "outcome=cancelled", JOB_MS);
	finished = qstr(c, "SELECT finished_at::text FROM pgjobd.jobs WHERE id = %lld", id);
	stop(d);
	expect_job(c, id, "state = 'cancelled' AND attempts = 1 AND lease_token IS NULL");
	expect_history(c, id, false, "1:cancelled");
	after = qstr(c, "SELECT finished_at::text FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_str_eq(after, finished);
	free(finished);
	free(after);
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

/* ---- signals ---- */

START_TEST(test_sigterm_drain_lets_running_handler_finish)
{
	char *cfg = config(FAST "shutdown_timeout = 10s\n"
				"[handler.sec]\ncommand = /bin/sh -c 'sleep 1; echo finished'\n");
	PGconn *c = fresh_db("pgjobd_d_drain", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "sec", "{}"), late;

	wait_state(c, id, "running", JOB_MS);
	t_daemon_signal(d, SIGTERM, false, 0);
	t_daemon_wait_log(d, "stopping:", 5000);
	/* Leasing has stopped: a job enqueued now waits. */
	late = enqueue(c, "sec", "{}");
	free(expect_clean_exit(d, 0, 15000));
	expect_job(c, id, "state = 'done' AND result = 'finished' || chr(10)");
	expect_history(c, id, false, "1:done");
	expect_job(c, late, "state = 'ready' AND attempts = 0");
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

/* A handler that writes its pid to DIR/pid and sleeps. */
#define SLEEPER "[handler.sleep]\ncommand = /bin/sh -c 'echo $$ > %s/pid; exec sleep 1000'\n"

START_TEST(test_sigterm_drain_timeout_kills_and_hands_job_back)
{
	char *dir = make_dir();
	char *cfg = config(FAST "shutdown_timeout = 500ms\n" SLEEPER, dir);
	PGconn *c = fresh_db("pgjobd_d_draintimeout", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "sleep", "{}");
	pid_t handler;

	handler = wait_pid_file(dir, "pid", JOB_MS);
	track_group(handler);
	wait_state(c, id, "running", JOB_MS);
	free(expect_clean_exit(d, SIGTERM, 10000));
	ck_assert(!alive(handler));
	untrack_group(handler);
	/* Handed back, the attempt not counted, no attempt row. */
	expect_job(c, id, "state = 'ready' AND attempts = 0 AND lease_token IS NULL");
	expect_history(c, id, false, "");
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

START_TEST(test_second_sigterm_skips_the_wait)
{
	char *dir = make_dir();
	char *cfg = config(FAST "shutdown_timeout = 60s\n" SLEEPER, dir);
	PGconn *c = fresh_db("pgjobd_d_twice", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id = enqueue(c, "sleep", "{}");
	int64_t t0;
	pid_t handler;

	handler = wait_pid_file(dir, "pid", JOB_MS);
	track_group(handler);
	wait_state(c, id, "running", JOB_MS);
	t0 = t_now_ms();
	t_daemon_signal(d, SIGTERM, false, 0);
	t_daemon_wait_log(d, "stopping:", 5000);
	ck_assert(alive(handler));
	free(expect_clean_exit(d, SIGTERM, 10000));
	ck_assert_msg(t_now_ms() - t0 < 10000, "stopping took %" PRId64 " ms", t_now_ms() - t0);
	ck_assert(!alive(handler));
	untrack_group(handler);
	expect_job(c, id, "state = 'ready' AND attempts = 0");
	expect_history(c, id, false, "");
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

START_TEST(test_sighup_good_config_adds_handler_and_spares_running_ones)
{
	char *dir = make_dir();
	char *old = xasprintf(FAST "[handler.old]\ncommand = /bin/sh -c 'while [ ! -e %s/go ];"
				   " do sleep 0.02; done; echo old'\n", dir);
	char *cfg = config("%s", old), *more;
	PGconn *c = fresh_db("pgjobd_d_hupgood", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long o = enqueue(c, "old", "{}"), x;

	wait_state(c, o, "running", JOB_MS);
	more = xasprintf("%s[handler.x]\ncommand = /bin/echo new type\n", old);
	rewrite_config(cfg, more);
	t_daemon_signal(d, SIGHUP, false, 0);
	t_daemon_wait_log(d, "configuration reloaded", 5000);
	x = enqueue(c, "x", "{}");
	wait_state(c, x, "done", JOB_MS);
	expect_job(c, x, "result = 'new type' || chr(10)");
	/* The old handler was left alone. */
	expect_job(c, o, "state = 'running' AND attempts = 1");
	touch(dir, "go");
	wait_state(c, o, "done", JOB_MS);
	expect_job(c, o, "result = 'old' || chr(10)");
	expect_history(c, o, false, "1:done");
	stop(d);
	free(old);
	free(more);
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

START_TEST(test_sighup_bad_config_is_logged_and_old_one_kept)
{
	const char *good = FAST "[handler.old]\ncommand = /bin/echo old\n";
	char *cfg = config("%s", good), *bad, *where;
	PGconn *c = fresh_db("pgjobd_d_hupbad", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long id;
	int line;

	/* Line 1 [pgjobd], 2 database, then GOOD's lines, then the bad key. */
	bad = xasprintf("%sbogus_key = 1\n", good);
	line = 3 + count_of(good, "\n");
	rewrite_config(cfg, bad);
	t_daemon_signal(d, SIGHUP, false, 0);
	t_daemon_wait_log(d, "reload failed", 5000);
	where = xasprintf("%s:%d: ", cfg, line);
	expect_log(d, where);
	free(where);
	/* Still running, with the old config. */
	ck_assert_int_eq(waitpid(d->pid, NULL, WNOHANG), 0);
	id = enqueue(c, "old", "{}");
	wait_state(c, id, "done", JOB_MS);
	expect_job(c, id, "result = 'old' || chr(10)");
	stop(d);
	free(bad);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

/* ---- the database goes away ---- */

static void
pgctl(const char *what)
{
	const char *src = getenv("PGJOBD_SRCDIR");
	char *path = xasprintf("%s/tests/pgctl.sh", src && *src ? src : ".");
	const char *argv[] = {"/bin/sh", path, what, NULL};
	char *err;
	int rc = t_run(argv, NULL, &err, 90000);

	ck_assert_msg(rc == 0, "pgctl.sh %s: %s", what, err);
	if (!strcmp(what, "stop"))
		snprintf(left->pgctl, sizeof left->pgctl, "%s", path);
	else
		left->pgctl[0] = '\0';
	free(err);
	free(path);
}

START_TEST(test_database_restart_loses_no_job)
{
	/* Two long handlers run across the outage; short ones keep the
	 * connection busy with leases and outcomes when the server dies.
	 * The outage (a second or two) is shorter than the lease: the leases
	 * the daemon knows of survive it, and no job is done twice. */
	char *cfg = config(TIMINGS("10s", "500ms", "500ms") "concurrency = 6\n"
				"[handler.long]\ncommand = /bin/sh -c 'sleep 1.5; echo long'\n"
				"[handler.work]\ncommand = /bin/sh -c 'sleep 0.02; echo ok'\n");
	PGconn *c = fresh_db("pgjobd_d_restart", cfg);
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
	d = start(cfg, NULL);
	wait_value(c, "t", JOB_MS,
	    "SELECT count(*) FILTER (WHERE type = 'long' AND state = 'running') = 2 AND"
	    " count(*) FILTER (WHERE state = 'done') >= 20 FROM pgjobd.jobs");
	PQfinish(c);
	pgctl("restart"); /* -m immediate: a crash */
	c = t_connect();
	ck_assert_int_gt(qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE state <> 'done'"), 0);
	wait_value(c, "302", 60000, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* Every job done exactly once.  One case may cost an attempt, and
	 * only that one: a lease that committed just before the crash whose
	 * reply never reached the daemon.  Its job runs again after the lease
	 * expires, counted 'lost' (at-least-once); at most one lease batch
	 * (concurrency 6) can be caught like that, and nothing else may fail. */
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM (SELECT job_id FROM pgjobd.attempts"
				 " WHERE outcome = 'done' GROUP BY job_id HAVING count(*) = 1) s"), 302);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"), 0);
	ck_assert_int_le(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE outcome = 'lost'"), 6);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.jobs j WHERE attempts = 1 +"
				 " (SELECT count(*) FROM pgjobd.attempts a"
				 "   WHERE a.job_id = j.id AND a.outcome = 'lost')"), 302);
	t_daemon_wait_log(d, "database connection restored", 5000);
	log = t_daemon_log(d);
	ck_assert_msg(count_of(log, "retrying in the background") == 1,
	    "the outage is not logged exactly once:\n%s", log_tail(log));
	ck_assert_msg(count_of(log, "database connection restored") == 1,
	    "the recovery is not logged exactly once:\n%s", log_tail(log));
	free(log);
	stop(d);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_database_down_at_start_is_waited_for)
{
	char *cfg = config(FAST "[handler.echo]\ncommand = /bin/echo up\n");
	PGconn *c = fresh_db("pgjobd_d_downatstart", cfg);
	struct t_daemon *d;
	long long id = enqueue(c, "echo", "{}");

	PQfinish(c);
	pgctl("stop");
	d = t_daemon_start(cfg, NULL);
	track_daemon(d);
	t_daemon_wait_log(d, "retrying in the background", READY_MS);
	ck_assert_int_eq(waitpid(d->pid, NULL, WNOHANG), 0);
	pgctl("start");
	t_daemon_wait_log(d, "ready: worker", 60000);
	c = t_connect();
	wait_state(c, id, "done", JOB_MS);
	expect_job(c, id, "result = 'up' || chr(10)");
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_failed_outcome_write_is_retried_and_the_lease_held)
{
	char *cfg = config(FAST "[handler.echo]\ncommand = /bin/echo hi\n");
	PGconn *c = fresh_db("pgjobd_d_writefail", cfg);
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
	d = start(cfg, NULL);
	id = enqueue(c, "echo", "{}");
	t_daemon_wait_log(d, "writing job outcomes failed", JOB_MS);
	token = qint(c, "SELECT lease_token FROM pgjobd.jobs WHERE id = %lld", id);
	/* Past the lease (2s): retried every second, the lease extended by
	 * the heartbeat meanwhile, nothing rescued or run again. */
	wait_value(c, "t", JOB_MS,
	    "SELECT now() > started_at + interval '3 s' FROM pgjobd.jobs WHERE id = %lld", id);
	expect_job(c, id, "state = 'running' AND attempts = 1 AND lease_token = %lld AND"
	    " lease_expires_at > now()", token);
	log = t_daemon_log(d);
	ck_assert_msg(count_of(log, "writing job outcomes failed") >= 2, "log:\n%s", log_tail(log));
	free(log);
	PQclear(t_exec(c, "DELETE FROM public.block", NULL));
	wait_state(c, id, "done", JOB_MS);
	expect_history(c, id, false, "1:done");
	expect_job(c, id, "result = 'hi' || chr(10)");
	stop(d); /* and every log line was one event */
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

/* ---- what a handler sees ---- */

START_TEST(test_handler_stdin_is_the_payload_byte_for_byte)
{
	char *cfg = config(FAST "output_limit = 1MiB\n[handler.echo]\ncommand = /bin/cat\n");
	PGconn *c = fresh_db("pgjobd_d_stdin", cfg);
	struct t_daemon *d = start(cfg, NULL);
	/* Unicode (2-, 3- and 4-byte), escapes, control characters, and a
	 * payload larger than a pipe holds (written without blocking while
	 * the handler echoes it). */
	long long small = enqueue(c, "echo",
	    "{\"s\": \"h\u00e9llo \u2713 \U0001F600 \\\"q\\\" back\\\\slash\\nnl\\ttab \\u0001\","
	    " \"n\": [1, 2.5, -0, 1e3, null, true, false], \"e\": {}, \"\": \"\"}");
	long long big = t_int(c, "SELECT pgjobd.enqueue('echo', jsonb_build_object('big',"
				 " repeat('\u00e9\u2713x', 100000), 'tail', E'\\\\end'))", NULL);

	wait_state(c, small, "done", JOB_MS);
	wait_state(c, big, "done", JOB_MS);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE result = payload::text"
				 " AND octet_length(result) = octet_length(payload::text)"), 2);
	ck_assert_int_gt(qint(c, "SELECT octet_length(result) FROM pgjobd.jobs WHERE id = %lld",
			     big), 600000);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
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
	char *cfg = config(FAST "queues = q-1\n[handler.env]\ncommand = /usr/bin/env\n"
				"environment = LANG=C.UTF-8 MODE=fast\nmax_attempts = 7\n");
	PGconn *c = fresh_db("pgjobd_d_env", cfg);
	/* None of these may reach the handler (nor ASAN_OPTIONS, PGHOST,
	 * PGDATABASE ... of the test's own environment). */
	char *extra[] = {"NOTIFY_SOCKET=/nonexistent", "PGPASSWORD=secret", "FOO=bar", NULL};
	struct t_daemon *d = start(cfg, extra);
	long long id = t_int(c, "SELECT pgjobd.enqueue('env', '{}', 'q-1', NULL, 0, 3)", NULL);
	char *result, *want, *got;

	wait_state(c, id, "done", JOB_MS);
	result = qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", id);
	got = sorted_lines(result);
	want = xasprintf("LANG=C.UTF-8\n"
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
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_handler_has_no_descriptor_but_stdio)
{
	char *cfg = config(FAST "[handler.fds]\ncommand = /bin/ls -1 /proc/self/fd\n"
				"[handler.kinds]\ncommand = /bin/sh -c 'ls -l /proc/$$/fd'\n");
	PGconn *c = fresh_db("pgjobd_d_fds", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long fds = enqueue(c, "fds", "{}"), kinds = enqueue(c, "kinds", "{}");
	char *result;

	/* ls opens exactly one descriptor, /proc/self/fd itself, at the
	 * lowest free number: 3 when only 0, 1 and 2 were inherited. */
	wait_state(c, fds, "done", JOB_MS);
	result = qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", fds);
	ck_assert_str_eq(result, "0\n1\n2\n3\n");
	free(result);
	/* The shell's 0, 1 and 2 are pipes (its own, from the daemon), and
	 * it has nothing else open (ls runs in a child of it). */
	wait_state(c, kinds, "done", JOB_MS);
	result = qstr(c, "SELECT result FROM pgjobd.jobs WHERE id = %lld", kinds);
	ck_assert_msg(count_of(result, " -> pipe:[") == 3 && count_of(result, " -> ") == 3,
	    "the shell's descriptors:\n%s", result);
	free(result);
	stop(d);
	PQfinish(c);
	drop_config(cfg);
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
	char *cfg = config(FAST "output_limit = 64KiB\n"
				"[handler.flood]\ncommand = /bin/sh -c 'yes | head -c \"$1\"' sh\n"
				"args_from_payload = yes\n");
	PGconn *c = fresh_db("pgjobd_d_flood", cfg);
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
	d = start(cfg, NULL);
	warm = enqueue(c, "flood", "{\"args\": [\"100000\"]}");

	wait_state(c, warm, "done", JOB_MS);
	ck_assert_int_eq(qint(c, "SELECT length(result) FROM pgjobd.jobs WHERE id = %lld", warm),
	    65536);
	hwm0 = vm_kib(d->pid, "VmHWM");
	rss0 = vm_kib(d->pid, "VmRSS");
	id = enqueue(c, "flood", "{\"args\": [\"104857600\"]}");
	wait_state(c, id, "done", 120000);
	hwm1 = vm_kib(d->pid, "VmHWM");
	rss1 = vm_kib(d->pid, "VmRSS");
	ck_assert_msg(hwm1 - hwm0 < 8192 && rss1 - rss0 < 8192,
	    "daemon memory grew: VmHWM %ld -> %ld KiB, VmRSS %ld -> %ld KiB", hwm0, hwm1, rss0, rss1);
	/* Only the tail is kept: exactly output_limit bytes of "y\n". */
	expect_job(c, id, "length(result) = 65536 AND result = repeat('y' || chr(10), 32768)");
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_args_from_payload_are_appended_to_argv)
{
	char *cfg = config(FAST "[handler.args]\ncommand = /usr/bin/printf '<%%s>'\n"
				"args_from_payload = yes\n"
				"[handler.noargs]\ncommand = /usr/bin/printf '<%%s>' fixed\n");
	PGconn *c = fresh_db("pgjobd_d_args", cfg);
	struct t_daemon *d = start(cfg, NULL);
	/* Spaces, a newline, backslashes (one before an n), unicode, empty. */
	long long id = enqueue(c, "args",
	    "{\"args\": [\"a b\", \"c\\nd\", \"back\\\\slash\", \"lit\\\\nnot-newline\","
	    " \"\u00fcn\u00ef\", \"\"], \"other\": 1}");
	/* Without args_from_payload the payload's args are ignored. */
	long long plain = enqueue(c, "noargs", "{\"args\": [\"x\"]}");
	/* With it, a payload without "args" adds nothing. */
	long long none = enqueue(c, "args", "{\"x\": 1}");

	wait_state(c, id, "done", JOB_MS);
	wait_state(c, plain, "done", JOB_MS);
	wait_state(c, none, "done", JOB_MS);
	expect_job(c, id, "result ="
	    " E'<a b><c\\nd><back\\\\slash><lit\\\\nnot-newline><\u00fcn\u00ef><>'");
	expect_job(c, plain, "result = '<fixed>'");
	expect_job(c, none, "result = '<>'");
	stop(d);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_args_not_an_array_of_strings_is_dead)
{
	char *cfg = config(FAST "[handler.args]\ncommand = /bin/echo\nargs_from_payload = yes\n"
				"max_attempts = 5\nbackoff = 100ms\n");
	PGconn *c = fresh_db("pgjobd_d_badargs", cfg);
	struct t_daemon *d = start(cfg, NULL);
	long long scalar = enqueue(c, "args", "{\"args\": \"not an array\"}");
	long long number = enqueue(c, "args", "{\"args\": [\"ok\", 1]}");
	long long object = enqueue(c, "args", "{\"args\": {\"a\": \"b\"}}");
	long long ids[] = {scalar, number, object};

	for (int i = 0; i < 3; i++) {
		char *err;
		wait_state(c, ids[i], "dead", JOB_MS);
		ck_assert_int_eq(qint(c, "SELECT attempts FROM pgjobd.jobs WHERE id = %lld", ids[i]),
		    1);
		expect_history(c, ids[i], false, "1:dead");
		err = qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", ids[i]);
		ck_assert_msg(strstr(err, "args") != NULL, "last_error: %s", err);
		free(err);
	}
	stop(d);
	PQfinish(c);
	drop_config(cfg);
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
	cfg = config(FAST "[handler.gone]\ncommand = %s\nmax_attempts = 2\nbackoff = 100ms\n", prog);
	c = fresh_db("pgjobd_d_nostart", cfg);
	d = start(cfg, NULL);
	ck_assert_int_eq(unlink(prog), 0);
	id = enqueue(c, "gone", "{}");
	wait_state(c, id, "dead", JOB_MS);
	expect_history(c, id, false, "1:retry,2:dead");
	want = xasprintf("cannot start %s: No such file or directory", prog);
	err = qstr(c, "SELECT last_error FROM pgjobd.jobs WHERE id = %lld", id);
	ck_assert_str_eq(err, want);
	free(err);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE job_id = %lld AND"
				 " error LIKE 'cannot start %%' AND exit_code IS NULL", id), 2);
	stop(d);
	free(want);
	free(prog);
	PQfinish(c);
	drop_config(cfg);
}
END_TEST

START_TEST(test_worker_row_while_running_and_gone_after_stop)
{
	char *dir = make_dir();
	char *cfg = config(FAST "concurrency = 3\n[handler.wait]\n"
				"command = /bin/sh -c 'while [ ! -e %s/go ]; do sleep 0.02; done'\n",
	    dir);
	PGconn *c = fresh_db("pgjobd_d_workers", cfg);
	struct t_daemon *d = start(cfg, NULL);
	char host[256], *want;
	long long id;

	ck_assert_int_eq(gethostname(host, sizeof host), 0);
	host[sizeof host - 1] = '\0';
	/* No name in the config: host:pid. */
	want = xasprintf("%s:%d|%s|%d|3|0", host, (int)d->pid, host, (int)d->pid);
	wait_value(c, want, 5000,
	    "SELECT name || '|' || host || '|' || pid || '|' || concurrency || '|' || running"
	    "  FROM pgjobd.workers");
	free(want);
	id = enqueue(c, "wait", "{}");
	wait_state(c, id, "running", JOB_MS);
	/* The next heartbeat shows it running. */
	wait_value(c, "1", 5000, "SELECT running FROM pgjobd.workers");
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.workers WHERE"
				 " last_seen >= started_at AND queues = '{default}'"), 1);
	touch(dir, "go");
	wait_state(c, id, "done", JOB_MS);
	stop(d);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.workers"), 0);
	PQfinish(c);
	drop_config(cfg);
	remove_dir(dir);
}
END_TEST

static TCase *
tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

int
main(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc;
	int failed;

	tc = tcase(s, "outcomes", 120);
	tcase_add_test(tc, test_success_stores_stdout_as_result);
	tcase_add_test(tc, test_failure_retries_with_growing_backoff_then_dead);
	tcase_add_test(tc, test_dead_exit_code_is_dead_at_once);
	tcase_add_test(tc, test_timeout_kills_handler_and_its_background_grandchild);
	tcase_add_test(tc, test_handler_that_cannot_start_retries_then_dead);

	tc = tcase(s, "leasing", 120);
	tcase_add_test(tc, test_run_at_in_the_future_is_honoured);
	tcase_add_test(tc, test_jobs_start_in_priority_then_run_at_then_id_order);
	tcase_add_test(tc, test_unmapped_type_is_never_leased);
	tcase_add_test(tc, test_type_concurrency_cap_holds_while_other_types_run);
	tcase_add_test(tc, test_worker_row_while_running_and_gone_after_stop);

	tc = tcase(s, "fencing", 240);
	tcase_add_test(tc, test_two_daemons_never_run_a_job_twice);
	tcase_add_test(tc, test_killed_daemons_job_is_rescued_after_lease_expiry);
	tcase_add_test(tc, test_stale_outcome_is_refused);
	tcase_add_test(tc, test_cancel_kills_running_handler_within_a_second);

	tc = tcase(s, "signals", 120);
	tcase_add_test(tc, test_sigterm_drain_lets_running_handler_finish);
	tcase_add_test(tc, test_sigterm_drain_timeout_kills_and_hands_job_back);
	tcase_add_test(tc, test_second_sigterm_skips_the_wait);
	tcase_add_test(tc, test_sighup_good_config_adds_handler_and_spares_running_ones);
	tcase_add_test(tc, test_sighup_bad_config_is_logged_and_old_one_kept);

	tc = tcase(s, "database", 180);
	tcase_add_test(tc, test_database_restart_loses_no_job);
	tcase_add_test(tc, test_database_down_at_start_is_waited_for);
	tcase_add_test(tc, test_failed_outcome_write_is_retried_and_the_lease_held);

	tc = tcase(s, "handler", 180);
	tcase_add_test(tc, test_handler_stdin_is_the_payload_byte_for_byte);
	tcase_add_test(tc, test_handler_environment_is_exactly_the_contract);
	tcase_add_test(tc, test_handler_has_no_descriptor_but_stdio);
	tcase_add_test(tc, test_huge_output_keeps_the_tail_and_memory_flat);
	tcase_add_test(tc, test_args_from_payload_are_appended_to_argv);
	tcase_add_test(tc, test_args_not_an_array_of_strings_is_dead);

	/* Failure messages carry daemon logs: more than Check's default 4K. */
	check_set_max_msg_size(64 * 1024);
	left = mmap(NULL, sizeof *left, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (left == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(left, 0, sizeof *left);
	failed = t_run_suite(s);
	cleanup();
	munmap(left, sizeof *left);
	return failed ? 1 : 0;
}
