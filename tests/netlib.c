/*
 * netlib: helpers shared by the suites of the daemon's connection over a
 * network (check_net, check_net_dead): shell commands, clusters on TCP made
 * with tests/pgnet.sh, configs, handlers held running, daemon logs
 * (netlib.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netlib.h"

const char *
n_srcdir(void)
{
	const char *s = getenv("PGJOBD_SRCDIR");

	return s && *s ? s : ".";
}

static const char *
n_testdir(void)
{
	const char *s = getenv("PGTEST_DIR");

	ck_assert_msg(s != NULL, "run under tests/with-pg.sh");
	return s;
}

/* Run a shell command; the test fails unless it exits 0. */
void
n_sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd, *out = NULL, *err = NULL;
	int st;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	st = t_run(argv, &out, &err, 120000);
	ck_assert_msg(st == 0, "`%s` exited %d:\n%s%s", cmd, st, out, err);
	free(cmd);
	free(out);
	free(err);
}

/* The same, its failure ignored (clean-up of what may not exist). */
void
n_sh_quiet(const char *cmd)
{
	char *full;

	if (asprintf(&full, "(%s) >/dev/null 2>&1", cmd) < 0)
		return;
	if (system(full) < 0)
		perror("system");
	free(full);
}

/* A TCP port nothing listens on now (the kernel's pick). */
int
n_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* PGTEST_DIR/net-NAME (malloc'd): a cluster's directory. */
char *
n_cluster_dir(const char *name)
{
	char *d;

	ck_assert_int_ge(asprintf(&d, "%s/net-%s", n_testdir(), name), 0);
	return d;
}

void
n_pgnet(const char *args)
{
	n_sh("%s/tests/pgnet.sh %s", n_srcdir(), args);
}

char *
n_cluster_new(const char *name, const char *addr, int port)
{
	char *d = n_cluster_dir(name), *args;

	ck_assert_int_ge(asprintf(&args, "init %s %s %d", d, addr, port), 0);
	n_pgnet(args);
	free(args);
	return d;
}

void
n_cluster_do(const char *what, const char *dir)
{
	char *args;

	ck_assert_int_ge(asprintf(&args, "%s %s", what, dir), 0);
	n_pgnet(args);
	free(args);
}

PGconn *
n_connect_to(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", conninfo, PQerrorMessage(c));
	return c;
}

long long
n_qint(PGconn *c, const char *sql)
{
	return t_int(c, sql, NULL);
}

/* A config with `database = DATABASE` and EXTRA (the rest of [pgjobd] and
 * the handlers). */
char *
n_config(const char *database, const char *extra)
{
	char *text, *path;

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\ndatabase = %s\n%s", database, extra), 0);
	path = t_write_temp(".ini", text);
	free(text);
	return path;
}

void
n_migrate(const char *database)
{
	char *cfg = n_config(database, "");

	t_migrate(cfg, NULL, NULL);
	unlink(cfg);
	free(cfg);
}

/* A handler that runs until the file DIR/release exists (the test holds
 * jobs running with it), as a config section.  At most 2 minutes: one
 * left by a failed test ends on its own. */
char *
n_hold_handler(const char *dir)
{
	char *s;

	ck_assert_int_ge(asprintf(&s, "[handler.hold]\ncommand = /bin/sh -c 'i=0; while [ ! -e %s/release ] "
				      "&& [ $i -lt 2400 ]; do sleep 0.05; i=$((i + 1)); done; echo held'\n",
			     dir),
	    0);
	return s;
}

void
n_release(const char *dir)
{
	n_sh("touch %s/release", dir);
}

/* Wait for NEEDLE in the daemon's log; the milliseconds it took. */
int64_t
n_wait_log(struct t_daemon *d, const char *needle, int timeout_ms)
{
	int64_t t0 = t_now_ms();

	t_daemon_wait_log(d, needle, timeout_ms);
	return t_now_ms() - t0;
}

void
n_stop_daemon(struct t_daemon *d)
{
	ck_assert_int_eq(t_daemon_stop(d), 0);
}

int
n_run_suite(Suite *s)
{
	int st = t_run_suite(s);
	const char *dir = getenv("PGTEST_DIR");
	char *cmd;

	/* What a failed test left: held handlers, clusters. */
	if (dir && asprintf(&cmd, "for d in %s/net-*; do touch \"$d/release\"; [ -d \"$d/data\" ] && "
				  "%s/tests/pgnet.sh kill \"$d\"; done",
		       dir, n_srcdir()) >= 0) {
		n_sh_quiet(cmd);
		free(cmd);
	}
	return st;
}
