/* testlib: see testlib.h. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int
t_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

int64_t
t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
t_count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

const char *
t_log_tail(const char *log)
{
	size_t n = strlen(log);

	return n > 6000 ? log + n - 6000 : log;
}

void
t_use_fresh_db(const char *name)
{
	char sql[256];
	PGconn *c;

	setenv("PGDATABASE", "postgres", 1);
	c = t_connect();
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
	PQclear(t_exec(c, sql, NULL));
	snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
	PQclear(t_exec(c, sql, NULL));
	PQfinish(c);
	setenv("PGDATABASE", name, 1);
}

static void
quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

PGconn *
t_connect(void)
{
	PGconn *c = PQconnectdb("");

	if (PQstatus(c) != CONNECTION_OK)
		ck_abort_msg("cannot connect to the test cluster: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

static PGresult *
vexec(PGconn *c, const char *sql, va_list ap)
{
	const char *params[32];
	int n = 0;
	const char *p;

	while ((p = va_arg(ap, const char *)) != NULL) {
		ck_assert_int_lt(n, 32);
		params[n++] = p;
	}
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

PGresult *
t_exec_any(PGconn *c, const char *sql, ...)
{
	va_list ap;
	PGresult *r;

	va_start(ap, sql);
	r = vexec(c, sql, ap);
	va_end(ap);
	return r;
}

PGresult *
t_exec(PGconn *c, const char *sql, ...)
{
	va_list ap;
	PGresult *r;

	va_start(ap, sql);
	r = vexec(c, sql, ap);
	va_end(ap);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		ck_abort_msg("SQL failed: %.300s%s\n%.2000s", sql, strlen(sql) > 300 ? "..." : "",
		             PQresultErrorMessage(r));
	return r;
}

long long
t_int(PGconn *c, const char *sql, ...)
{
	va_list ap;
	PGresult *r;
	long long v;

	va_start(ap, sql);
	r = vexec(c, sql, ap);
	va_end(ap);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 || PQgetisnull(r, 0, 0))
		ck_abort_msg("expected an integer from: %s\n%s", sql, PQresultErrorMessage(r));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

char *
t_str(PGconn *c, const char *sql, ...)
{
	va_list ap;
	PGresult *r;
	char *v = NULL;

	va_start(ap, sql);
	r = vexec(c, sql, ap);
	va_end(ap);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		ck_abort_msg("expected a row from: %s\n%s", sql, PQresultErrorMessage(r));
	if (!PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

const char *
t_pgjobd(void)
{
	const char *b = getenv("PGJOBD_BIN");

	return b && *b ? b : "build/pgjobd";
}

char *
t_write_temp(const char *suffix, const char *text)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;
	size_t len = strlen(text);

	if (asprintf(&path, "%s/pgjobd-t-XXXXXX%s", dir && *dir ? dir : "/tmp", suffix) < 0)
		ck_abort_msg("asprintf");
	fd = mkstemps(path, (int)strlen(suffix));
	if (fd < 0)
		ck_abort_msg("mkstemps: %s", strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		ck_abort_msg("write: %s", strerror(errno));
	close(fd);
	return path;
}

char *
t_config(const char *extra)
{
	char *text, *path;

	if (asprintf(&text, "[pgjobd]\ndatabase =\n%s", extra ? extra : "") < 0)
		ck_abort_msg("asprintf");
	path = t_write_temp(".ini", text);
	free(text);
	return path;
}

void
t_migrate(const char *config, const char *to, const char *expect)
{
	char *own = config ? NULL : t_config("");
	const char *argv[] = {t_pgjobd(), "-c", config ? config : own, "--migrate",
	                      to ? "--to" : NULL, to, NULL};
	char *out = NULL, *err = NULL;
	int rc = t_run(argv, &out, &err, 30000);

	ck_assert_msg(rc == 0, "--migrate --to %s exited %d; stderr:\n%s", to ? to : "-", rc, err);
	if (expect)
		ck_assert_str_eq(out, expect);
	if (own) {
		unlink(own);
		free(own);
	}
	free(out);
	free(err);
}

PGconn *
t_fresh_schema(const char *name, const char *config)
{
	t_use_fresh_db(name);
	t_migrate(config, NULL, T_MIGRATED);
	return t_connect();
}

/* Append what is readable on FD to *BUF; false at EOF. */
static bool
slurp(int fd, char **buf, size_t *len)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof chunk);

	if (n <= 0)
		return n < 0 && (errno == EINTR || errno == EAGAIN);
	*buf = realloc(*buf, *len + (size_t)n + 1);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

char **
t_dup_vec(const char *const *v)
{
	size_t n = 0;
	char **copy;

	while (v[n])
		n++;
	copy = calloc(n + 1, sizeof *copy);
	for (size_t i = 0; i < n; i++)
		copy[i] = strdup(v[i]);
	return copy;
}

void
t_free_vec(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

int
t_run(const char *const cargv[], char **out, char **err, int timeout_ms)
{
	char **argv = t_dup_vec(cargv);
	int po[2], pe[2], status;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char *bo = calloc(1, 1), *be = calloc(1, 1);
	size_t lo = 0, le = 0;
	bool open_o = true, open_e = true;
	int64_t deadline = t_now_ms() + timeout_ms;

	ck_assert(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		ck_abort_msg("cannot start %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	while (open_o || open_e) {
		struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
		int64_t left = deadline - t_now_ms();

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			ck_abort_msg("%s did not finish within %d ms; stderr:\n%s", argv[0], timeout_ms, be);
		}
		if (!open_o)
			p[0].fd = -1;
		if (!open_e)
			p[1].fd = -1;
		if (poll(p, 2, (int)left) < 0)
			continue;
		if (open_o && p[0].revents)
			open_o = slurp(po[0], &bo, &lo);
		if (open_e && p[1].revents)
			open_e = slurp(pe[0], &be, &le);
	}
	close(po[0]);
	close(pe[0]);
	t_free_vec(argv);
	if (waitpid(pid, &status, 0) < 0)
		ck_abort_msg("waitpid: %s", strerror(errno));
	if (out)
		*out = bo;
	else
		free(bo);
	if (err)
		*err = be;
	else
		free(be);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return strdup("");
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

struct t_daemon *
t_daemon_start(const char *config, char *const *extra_env)
{
	return t_daemon_start_in(NULL, config, extra_env);
}

struct t_daemon *
t_daemon_start_in(const char *const *prefix, const char *config, char *const *extra_env)
{
	struct t_daemon *d = calloc(1, sizeof *d);
	posix_spawn_file_actions_t fa;
	const char *cargv[32];
	char **argv;
	char **env;
	int n = 0, m = 0, fd;

	while (prefix && prefix[n] && n < 26) {
		cargv[n] = prefix[n];
		n++;
	}
	cargv[n++] = t_pgjobd();
	cargv[n++] = "-d";
	cargv[n++] = "-c";
	cargv[n++] = config;
	cargv[n] = NULL;
	argv = t_dup_vec(cargv);
	n = 0;

	d->config = strdup(config);
	d->log = t_write_temp(".log", "");
	/* EXTRA_ENV first, then the environment without the names it sets:
	 * an extra variable overrides the inherited one of the same name. */
	while (environ[n])
		n++;
	while (extra_env && extra_env[m])
		m++;
	env = calloc((size_t)(n + m + 1), sizeof *env);
	if (m)
		memcpy(env, extra_env, (size_t)m * sizeof *env);
	for (int i = 0, k = m; i < n; i++) {
		bool shadowed = false;

		for (int j = 0; j < m && !shadowed; j++) {
			const char *eq = strchr(extra_env[j], '=');
			size_t len = eq ? (size_t)(eq - extra_env[j]) + 1 : strlen(extra_env[j]);

			shadowed = strncmp(environ[i], extra_env[j], len) == 0;
		}
		if (!shadowed)
			env[k++] = environ[i];
	}
	fd = open(d->log, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 2);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&d->pid, argv[0], &fa, NULL, argv, env) != 0)
		ck_abort_msg("cannot start %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(fd);
	free(env);
	t_free_vec(argv);
	return d;
}

char *
t_daemon_log(struct t_daemon *d)
{
	return read_file(d->log);
}

void
t_daemon_wait_log(struct t_daemon *d, const char *needle, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;

	for (;;) {
		char *log = read_file(d->log);
		bool found = strstr(log, needle) != NULL;
		if (found) {
			free(log);
			return;
		}
		if (t_now_ms() > deadline)
			ck_abort_msg("daemon log has no \"%s\" after %d ms:\n%s", needle, timeout_ms, log);
		free(log);
		poll(NULL, 0, 20);
	}
}

static void
daemon_free(struct t_daemon *d)
{
	unlink(d->log);
	free(d->log);
	free(d->config);
	free(d);
}

int
t_daemon_signal(struct t_daemon *d, int sig, bool wait, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	int status;

	kill(d->pid, sig);
	if (!wait)
		return 0;
	for (;;) {
		pid_t r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid)
			break;
		if (t_now_ms() > deadline) {
			char *log = read_file(d->log);
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			d->pid = 0;
			ck_abort_msg("daemon did not exit within %d ms of signal %d; log:\n%s",
			    timeout_ms, sig, log);
		}
		poll(NULL, 0, 10);
	}
	d->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
t_daemon_wait(struct t_daemon *d, int timeout_ms)
{
	int rc = t_daemon_signal(d, 0, true, timeout_ms);

	daemon_free(d);
	return rc;
}

int
t_daemon_stop(struct t_daemon *d)
{
	int rc = d->pid ? t_daemon_signal(d, SIGTERM, true, 60000) : 0;

	daemon_free(d);
	return rc;
}

void
t_wait_value(PGconn *c, const char *want, int timeout_ms, const char *sql)
{
	int64_t deadline = t_now_ms() + timeout_ms;

	for (;;) {
		PGresult *r = PQexec(c, sql);
		const char *v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0
				    ? PQgetvalue(r, 0, 0)
				    : PQresultErrorMessage(r);
		bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !strcmp(v, want);

		if (ok) {
			PQclear(r);
			return;
		}
		if (t_now_ms() > deadline) {
			char *copy = strdup(v);
			PQclear(r);
			ck_abort_msg("after %d ms, %s\n gives \"%s\", want \"%s\"", timeout_ms, sql, copy,
			    want);
		}
		PQclear(r);
		poll(NULL, 0, 20);
	}
}
