/*
 * check_notify: the systemd notification protocol, proven without systemd.
 * The test binds its own AF_UNIX datagram socket, hands it to the real
 * daemon as NOTIFY_SOCKET (with WATCHDOG_USEC), and reads what arrives.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testlib.h"

struct listener {
	int fd;
	char path[108];
};

static void
listener_open(struct listener *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *dir = getenv("TMPDIR");

	snprintf(l->path, sizeof l->path, "%s/pgjobd-notify-%d.sock", dir && *dir ? dir : "/tmp",
	    (int)getpid());
	unlink(l->path);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", l->path);
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(l->fd, 0);
	ck_assert_int_eq(bind(l->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void
listener_close(struct listener *l)
{
	close(l->fd);
	unlink(l->path);
}

/* The next datagram, waiting at most TIMEOUT_MS; NULL when none came. */
static char *
next_message(struct listener *l, int timeout_ms, int64_t *at_ms)
{
	struct pollfd p = {l->fd, POLLIN, 0};
	char buf[2048];
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	n = recv(l->fd, buf, sizeof buf - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	if (at_ms)
		*at_ms = t_now_ms();
	return strdup(buf);
}

/* Read datagrams until one contains LINE (as a whole line); fails after
 * TIMEOUT_MS. */
static void
expect_line(struct listener *l, const char *line, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;

	for (;;) {
		int64_t left = deadline - t_now_ms();
		char *m = next_message(l, left > 0 ? (int)left : 0, NULL);
		char *p;

		if (!m)
			ck_abort_msg("no \"%s\" within %d ms", line, timeout_ms);
		for (p = strtok(m, "\n"); p; p = strtok(NULL, "\n"))
			if (!strcmp(p, line)) {
				free(m);
				return;
			}
		free(m);
	}
}

/* A config for database DB; the poll is an hour away, so that only a
 * NOTIFY can start a job promptly. */
static char *
config_for(const char *db)
{
	char *text, *path;

	ck_assert_int_ne(asprintf(&text,
			     "[pgjobd]\n"
			     "database = dbname=%s\n"
			     "poll_interval = 1h\n"
			     "heartbeat = 200ms\n"
			     "lease = 2s\n"
			     "[handler.echo]\n"
			     "command = /bin/cat\n",
			     db),
	    -1);
	path = t_write_temp(".ini", text);
	free(text);
	return path;
}

START_TEST(test_ready_only_after_connection_and_listen)
{
	struct listener l;
	char env_sock[160];
	char *env[] = {env_sock, NULL};
	char *cfg;
	struct t_daemon *d;
	PGconn *c;
	char *m;

	listener_open(&l);
	snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", l.path);
	/* The database does not exist yet: the daemon must keep retrying and
	 * must not say READY. */
	setenv("PGDATABASE", "postgres", 1);
	c = t_connect();
	PQclear(t_exec(c, "DROP DATABASE IF EXISTS pgjobd_notify WITH (FORCE)", NULL));
	cfg = config_for("pgjobd_notify");
	d = t_daemon_start(cfg, env);
	t_daemon_wait_log(d, "retrying in the background", 10000);
	while ((m = next_message(&l, 0, NULL)) != NULL) {
		ck_assert_msg(strstr(m, "READY=1") == NULL, "READY before the database: %s", m);
		free(m);
	}
	/* Now make it, migrated, under its name at once (a daemon that
	 * connected to it half-migrated would rightly stop: the schema is
	 * older than it needs); READY follows the connection. */
	PQclear(t_exec(c, "DROP DATABASE IF EXISTS pgjobd_notify_new WITH (FORCE)", NULL));
	PQclear(t_exec(c, "CREATE DATABASE pgjobd_notify_new", NULL));
	{
		char *new_cfg = config_for("pgjobd_notify_new");
		t_migrate(new_cfg, NULL, NULL);
		unlink(new_cfg);
		free(new_cfg);
	}
	PQclear(t_exec(c, "ALTER DATABASE pgjobd_notify_new RENAME TO pgjobd_notify", NULL));
	PQfinish(c);
	expect_line(&l, "READY=1", 30000);
	/* At READY the daemon listens: with the poll at 1h, only NOTIFY can
	 * make it run a job this fast. */
	setenv("PGDATABASE", "pgjobd_notify", 1);
	c = t_connect();
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo', '{\"n\": 1}')", NULL));
	t_wait_value(c, "done", 10000, "SELECT state FROM pgjobd.jobs");
	PQfinish(c);
	ck_assert_int_eq(t_daemon_stop(d), 0);
	listener_close(&l);
	unlink(cfg);
	free(cfg);
}
END_TEST

START_TEST(test_status_watchdog_reload_and_stopping)
{
	struct listener l;
	char env_sock[160], env_wd[] = "WATCHDOG_USEC=400000";
	char *env[] = {env_sock, env_wd, NULL};
	char *cfg, *m;
	struct t_daemon *d;
	int64_t at[8];
	int pings = 0;
	bool status = false;

	listener_open(&l);
	snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", l.path);
	t_use_fresh_db("pgjobd_notify2");
	cfg = config_for("pgjobd_notify2");
	t_migrate(cfg, NULL, NULL);
	d = t_daemon_start(cfg, env);
	expect_line(&l, "READY=1", 30000);
	/* WATCHDOG=1 every 200 ms (half of 400 ms); STATUS within a second. */
	while (pings < 6) {
		int64_t when;
		m = next_message(&l, 2000, &when);
		ck_assert_msg(m != NULL, "no message for 2 s (pings so far: %d)", pings);
		if (!strcmp(m, "WATCHDOG=1"))
			at[pings++] = when;
		else if (!strncmp(m, "STATUS=", 7)) {
			ck_assert_msg(strstr(m, "running 0/4") != NULL, "status: %s", m);
			status = true;
		}
		free(m);
	}
	ck_assert_msg(status, "no STATUS= among the first messages");
	for (int i = 2; i < pings; i++) {
		int64_t gap = at[i] - at[i - 1];
		ck_assert_msg(gap >= 120 && gap <= 320, "watchdog gap %lld ms, want ~200",
		    (long long)gap);
	}
	/* SIGHUP: RELOADING=1, then READY=1. */
	t_daemon_signal(d, SIGHUP, false, 0);
	expect_line(&l, "RELOADING=1", 5000);
	expect_line(&l, "READY=1", 5000);
	/* SIGTERM: STOPPING=1, then a clean exit. */
	t_daemon_signal(d, SIGTERM, false, 0);
	expect_line(&l, "STOPPING=1", 5000);
	ck_assert_int_eq(t_daemon_stop(d), 0);
	listener_close(&l);
	unlink(cfg);
	free(cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_ready_only_after_connection_and_listen);
	tcase_add_test(tc, test_status_watchdog_reload_and_stopping);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
