/*
 * daemonlib: helpers shared by check_daemon and check_jobs (daemonlib.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemonlib.h"

/* ---- what a failed test leaves behind ---- */

/*
 * Check runs each test in a forked child, _exit()s it when an assertion
 * fails (no atexit, no teardown) and then SIGKILLs its process group.  That
 * takes the daemons, but not their handlers (each leads a session of its
 * own) nor a cluster a test had stopped.  So what a test starts is recorded
 * in memory shared with the runner, and the next test's setup (and d_run_suite,
 * at the end) clears up after a test that failed.
 */
#define NTRACK 32
struct leftovers {
	pid_t daemons[NTRACK];
	char logs[NTRACK][256]; /* their logs name their handlers' pids */
	pid_t groups[NTRACK];   /* handler process groups we know of */
	char pgctl[4096];       /* tests/pgctl.sh, while the cluster is stopped */
};
static struct leftovers *left;

void
d_track_daemon(const struct t_daemon *d)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->daemons[i] == 0) {
			left->daemons[i] = d->pid;
			snprintf(left->logs[i], sizeof left->logs[i], "%s", d->log);
			return;
		}
	ck_abort_msg("too many daemons to track");
}

void
d_untrack_daemon(pid_t pid)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->daemons[i] == pid)
			left->daemons[i] = 0;
}

void
d_track_group(pid_t pid)
{
	for (int i = 0; i < NTRACK; i++)
		if (left->groups[i] == 0) {
			left->groups[i] = pid;
			return;
		}
	ck_abort_msg("too many process groups to track");
}

void
d_untrack_group(pid_t pid)
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
bool
d_alive(pid_t pid)
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
	return !strcmp(comm, "pgjobd\n") && d_alive(pid);
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
			if (pid > 0 && d_alive(pid) && getsid(pid) == pid)
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
			fprintf(stderr, "daemonlib: cannot start the cluster again\n");
		left->pgctl[0] = '\0';
	}
}

static void
setup(void)
{
	cleanup();
}

/* ---- small helpers ---- */

char * PRINTF(1, 2)
d_asprintf(const char *fmt, ...)
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

/* A config: [pgjobd] with database = "" (libpq env) and TEXT. */
char * PRINTF(1, 2)
d_config(const char *fmt, ...)
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

void
d_drop_config(char *path)
{
	unlink(path);
	free(path);
}

/* A fresh temp directory for a test's files (pid files, go-files). */
char *
d_make_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *dir = d_asprintf("%s/pgjobd-d-XXXXXX", t && *t ? t : "/tmp");

	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	return dir;
}

void
d_remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char *p;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = d_asprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

/* Wait for DIR/NAME to hold a whole line with a pid; returns it. */
pid_t
d_wait_pid_file(const char *dir, const char *name, int timeout_ms)
{
	char *path = d_asprintf("%s/%s", dir, name);
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
int64_t
d_wait_dead(pid_t pid, int timeout_ms)
{
	int64_t start = t_now_ms();

	while (d_alive(pid)) {
		if (t_now_ms() - start > timeout_ms)
			ck_abort_msg("process %d still alive after %d ms", (int)pid, timeout_ms);
		poll(NULL, 0, 5);
	}
	return t_now_ms() - start;
}

/* ---- the database ---- */

long long
d_enqueue(PGconn *c, const char *type, const char *payload)
{
	return t_int(c, "SELECT pgjobd.enqueue($1, $2::jsonb)", type, payload, NULL);
}

long long PRINTF(2, 3)
d_qint(PGconn *c, const char *fmt, ...)
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

/* Run the SQL that FMT makes; it must succeed. */
void PRINTF(2, 3)
d_run(PGconn *c, const char *fmt, ...)
{
	va_list ap;
	char *sql;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	PQclear(t_exec(c, sql, NULL));
	free(sql);
}

/* A malloc'd string (NULL for SQL NULL). */
char * PRINTF(2, 3)
d_qstr(PGconn *c, const char *fmt, ...)
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

void PRINTF(4, 5)
d_wait_value(PGconn *c, const char *want, int timeout_ms, const char *fmt, ...)
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
void PRINTF(3, 4)
d_expect_job(PGconn *c, long long id, const char *cond, ...)
{
	va_list ap;
	char *where, *row;

	va_start(ap, cond);
	ck_assert_int_ge(vasprintf(&where, cond, ap), 0);
	va_end(ap);
	if (d_qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE id = %lld AND (%s)", id, where) == 1) {
		free(where);
		return;
	}
	row = d_qstr(c, "SELECT left(row_to_json(j)::text, 2000) FROM pgjobd.jobs j WHERE id = %lld",
	    id);
	ck_abort_msg("job %lld is not: %s\nit is: %s", id, where, row ? row : "(no such job)");
}

void
d_wait_state(PGconn *c, long long id, const char *state, int timeout_ms)
{
	d_wait_value(c, state, timeout_ms, "SELECT state FROM pgjobd.jobs WHERE id = %lld", id);
}

/* The job's attempt history as "attempt:outcome[:worker]" joined by ",". */
static char *
history(PGconn *c, long long id, bool workers)
{
	return d_qstr(c,
	    "SELECT coalesce(string_agg(attempt || ':' || outcome %s, ',' ORDER BY attempt, id), '')"
	    "  FROM pgjobd.attempts WHERE job_id = %lld",
	    workers ? "|| ':' || coalesce(worker, '?')" : "", id);
}

void
d_expect_history(PGconn *c, long long id, bool workers, const char *want)
{
	char *got = history(c, id, workers);

	ck_assert_msg(!strcmp(got, want), "job %lld: attempts %s, want %s", id, got, want);
	free(got);
}

/* ---- daemons ---- */

struct t_daemon *
d_start(const char *cfg, char *const *env)
{
	struct t_daemon *d = t_daemon_start(cfg, env);

	d_track_daemon(d);
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
		    t_log_tail(log));
	}
}

/* Send SIG (0: none), wait up to TIMEOUT_MS for D to exit, require status
 * 0 (a LeakSanitizer report makes it non-zero) and a well-formed log, free
 * D, and return its log. */
char *
d_expect_clean_exit(struct t_daemon *d, int sig, int timeout_ms)
{
	pid_t pid = d->pid;
	int rc = t_daemon_signal(d, sig, true, timeout_ms);
	char *log = t_daemon_log(d);

	d_untrack_daemon(pid);
	ck_assert_msg(rc == 0, "daemon %d exited with status %d; log:\n%s", (int)pid, rc,
	    t_log_tail(log));
	expect_one_line_per_event(log);
	t_daemon_stop(d); /* already reaped: only frees */
	return log;
}

void
d_stop(struct t_daemon *d)
{
	free(d_expect_clean_exit(d, SIGTERM, STOP_MS));
}

void
d_cluster_stopped(const char *pgctl)
{
	snprintf(left->pgctl, sizeof left->pgctl, "%s", pgctl ? pgctl : "");
}

/* ---- the suite ---- */

TCase *
d_tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

int
d_run_suite(Suite *s)
{
	int failed;

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
