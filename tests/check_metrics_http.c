/*
 * check_metrics_http: GET /metrics of the real daemon (PGJOBD_BIN) against
 * the throwaway cluster, every answer checked by the strict reader of
 * tests/promtext.c: the numbers after known jobs, 404 and 405, a unix
 * socket, a database restart and a lost lease counted, an address in use
 * fatal at start, and clients that misbehave (a request sent byte by byte,
 * a client that never reads, a thousand connections at once) while jobs
 * and other scrapes go on.  Every wait is for a condition, with a
 * deadline.  The exposition itself is check_metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "promtext.h"
#include "testlib.h"

#define READY_MS 20000
#define JOB_MS 20000
#define HTTP_MS 10000
#define FLOOD 1000
#define SERVER_CONNECTIONS 32 /* metrics_http.c's CONNECTIONS */

/* ---- HTTP clients ---- */

/* A port free now on 127.0.0.1 (the kernel's choice). */
static int
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A connected socket to 127.0.0.1:PORT from address FROM (NULL: any);
 * non-blocking when NB, then maybe still connecting; RCVBUF > 0: that
 * receive buffer. */
static int
tcp_connect(int port, const char *from, bool nb, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nb ? SOCK_NONBLOCK : 0), 0);

	ck_assert_int_ge(fd, 0);
	/* Before connecting, so that the window is small from the start. */
	if (rcvbuf > 0)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
	if (from) {
		struct sockaddr_in me = {.sin_family = AF_INET};
		inet_pton(AF_INET, from, &me.sin_addr);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
	}
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		ck_assert_msg(nb && errno == EINPROGRESS, "connect: %s", strerror(errno));
	return fd;
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void
send_all(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);
		ck_assert_msg(w > 0, "write: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

/* Everything until EOF, within HTTP_MS; the status in *STATUS, the body
 * returned (malloc'd). */
static char *
read_response(int fd, int *status)
{
	int64_t deadline = t_now_ms() + HTTP_MS;
	size_t len = 0;
	char *buf = calloc(1, 1), *body;

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = deadline - t_now_ms();
		char chunk[65536];
		ssize_t n;

		ck_assert_msg(left > 0 && poll(&p, 1, (int)left) == 1, "no response within %d ms",
		              HTTP_MS);
		n = read(fd, chunk, sizeof chunk);
		if (n <= 0)
			break;
		buf = realloc(buf, len + (size_t)n + 1);
		memcpy(buf + len, chunk, (size_t)n);
		len += (size_t)n;
		buf[len] = '\0';
	}
	close(fd);
	ck_assert_msg(sscanf(buf, "HTTP/1.%*d %d", status) == 1, "not HTTP: %s", buf);
	body = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body = strdup(body + 4);
	free(buf);
	return body;
}

static char *
request(int fd, const char *method, const char *path, int *status)
{
	char req[256];

	snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", method,
	         path);
	send_all(fd, req);
	return read_response(fd, status);
}

/* GET /metrics from FROM (NULL: any address), asserting 200 and valid text. */
static char *
scrape_from(int port, const char *from)
{
	int status;
	char *body = request(tcp_connect(port, from, false, 0), "GET", "/metrics", &status);

	ck_assert_int_eq(status, 200);
	prom_assert_text(body);
	return body;
}

static char *
scrape(int port)
{
	return scrape_from(port, NULL);
}

/* Scrape until SERIES reads WANT, or fail after TIMEOUT_MS. */
static void
wait_metric(int port, const char *series, double want, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	double v;

	for (;;) {
		char *body = scrape(port);
		v = prom_metric(body, series);
		free(body);
		if (v == want)
			return;
		ck_assert_msg(t_now_ms() < deadline, "%s is %g, not %g, after %d ms", series, v,
		              want, timeout_ms);
		poll(NULL, 0, 20);
	}
}

/* ---- the daemon ---- */

struct env {
	struct t_daemon *d;
	PGconn *c;
	int port;
	char *config;
};

/* A fresh database, migrated, and a daemon serving metrics on a free
 * port (or LISTEN when given) with EXTRA handlers. */
static void
start(struct env *e, const char *db, const char *listen_on, const char *extra)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char *text, addr[64], *env[2] = {NULL, NULL};

	t_use_fresh_db(db);
	e->port = free_port();
	snprintf(addr, sizeof addr, "127.0.0.1:%d", e->port);
	ck_assert_int_ne(asprintf(&text,
	                          "lease = 2s\nheartbeat = 200ms\npoll_interval = 500ms\n"
	                          "kill_grace = 500ms\nmetrics_listen = %s\n"
	                          "[handler.ok]\ncommand = /bin/cat\n"
	                          "[handler.bad]\ncommand = /bin/false\nmax_attempts = 1\n%s",
	                          listen_on ? listen_on : addr, extra ? extra : ""),
	                 -1);
	e->config = t_config(text);
	free(text);
	t_migrate(e->config, NULL, NULL);
	/* ASan holds freed memory in quarantine (256 MiB by default): that
	 * would read as growth in the RSS checks.  Ignored by a plain build. */
	ck_assert_int_ne(asprintf(&env[0], "ASAN_OPTIONS=%s%squarantine_size_mb=1",
	                          asan ? asan : "", asan && *asan ? ":" : ""),
	                 -1);
	e->d = t_daemon_start(e->config, env);
	free(env[0]);
	t_daemon_wait_log(e->d, "ready:", READY_MS);
	e->c = t_connect();
}

static void
stop(struct env *e)
{
	PQfinish(e->c);
	ck_assert_int_eq(t_daemon_stop(e->d), 0);
	unlink(e->config);
	free(e->config);
}

static void
enqueue(struct env *e, const char *type, int n)
{
	for (int i = 0; i < n; i++)
		PQclear(t_exec(e->c, "SELECT pgjobd.enqueue($1, '{}')", type, NULL));
}

/* The daemon's resident set in KiB, and its open descriptors. */
static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int
open_fds(pid_t pid)
{
	char path[64];
	int n = 0;
	FILE *p;

	snprintf(path, sizeof path, "ls /proc/%d/fd | wc -l", (int)pid);
	ck_assert_ptr_nonnull(p = popen(path, "r"));
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

START_TEST(test_scrape_counts_jobs_by_type_and_outcome)
{
	struct env e;
	char *body, *gone = t_write_temp(".sh", "#!/bin/sh\nexit 0\n");
	char extra[512];
	int status;

	chmod(gone, 0755);
	snprintf(extra, sizeof extra, "[handler.gone]\ncommand = %s\nmax_attempts = 1\n", gone);
	start(&e, "metrics_counts", NULL, extra);
	/* Executable when the config was read, not when the job starts. */
	chmod(gone, 0644);
	enqueue(&e, "ok", 3);
	enqueue(&e, "bad", 1);
	enqueue(&e, "gone", 1);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 3, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"bad\",outcome=\"dead\"}", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"gone\",outcome=\"dead\"}", 1,
	            JOB_MS);
	body = scrape(e.port);
	ck_assert_double_eq(
	    prom_metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"dead\"}"), 0);
	ck_assert_double_eq(
	    prom_metric(body, "pgjobd_jobs_finished_total{type=\"bad\",outcome=\"done\"}"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_handler_duration_seconds_count{type=\"ok\"}"), 3);
	ck_assert_double_eq(prom_metric(body, "pgjobd_handler_duration_seconds_count{type=\"bad\"}"), 1);
	ck_assert_double_eq(prom_metric(body, "pgjobd_handler_duration_seconds_count{type=\"gone\"}"),
	                    0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_spawn_failures_total{type=\"gone\"}"), 1);
	ck_assert_double_eq(prom_metric(body, "pgjobd_spawn_failures_total{type=\"ok\"}"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_pickup_delay_seconds_count"), 5);
	ck_assert_double_eq(prom_metric(body, "pgjobd_leases_lost_total"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_db_reconnects_total"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_db_up"), 1);
	ck_assert_double_gt(prom_metric(body, "pgjobd_exchange_duration_seconds_count"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_handlers_running"), 0);
	ck_assert_double_eq(prom_metric(body, "pgjobd_slots"), 4);
	free(body);
	/* What the database says agrees. */
	ck_assert_int_eq(
	    t_int(e.c, "SELECT count(*) FROM pgjobd.jobs WHERE type = 'ok' AND state = 'done'",
	          NULL),
	    3);
	body = request(tcp_connect(e.port, NULL, false, 0), "GET", "/", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = request(tcp_connect(e.port, NULL, false, 0), "GET", "/metrics/x", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = request(tcp_connect(e.port, NULL, false, 0), "POST", "/metrics", &status);
	ck_assert_int_eq(status, 405);
	free(body);
	stop(&e);
	unlink(gone);
	free(gone);
}
END_TEST

START_TEST(test_serves_on_a_unix_socket_and_removes_it_at_stop)
{
	struct env e;
	char path[108], listen_on[128], *body;
	const char *dir = getenv("TMPDIR");
	struct stat st;
	int status;

	snprintf(path, sizeof path, "%s/pgjobd-metrics-%d.sock", dir && *dir ? dir : "/tmp",
	         (int)getpid());
	snprintf(listen_on, sizeof listen_on, "%s", path);
	start(&e, "metrics_unix", listen_on, NULL);
	enqueue(&e, "ok", 1);
	t_wait_value(e.c, "1", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	for (int64_t deadline = t_now_ms() + JOB_MS;;) {
		body = request(unix_connect(path), "GET", "/metrics", &status);
		ck_assert_int_eq(status, 200);
		prom_assert_text(body);
		if (prom_metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}") == 1)
			break;
		free(body);
		ck_assert_msg(t_now_ms() < deadline, "the job is not counted");
		poll(NULL, 0, 20);
	}
	free(body);
	stop(&e);
	ck_assert_int_lt(lstat(path, &st), 0);
}
END_TEST

START_TEST(test_request_sent_byte_by_byte_delays_no_job_or_scrape)
{
	static const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: slow\r\nConnection: close\r\n\r\n";
	struct env e;
	char *body, sql[256], *seen;
	int slow, status;

	start(&e, "metrics_slow", NULL, NULL);
	slow = tcp_connect(e.port, NULL, false, 0);
	for (size_t i = 0; i < sizeof req - 2; i++) {
		char c[2] = {req[i], '\0'};
		send_all(slow, c);
		/* Half a request is waiting: others are served meanwhile. */
		free(scrape(e.port));
		if (i == 3) {
			enqueue(&e, "ok", 1);
			wait_metric(e.port,
			            "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 1,
			            JOB_MS);
			/* And the heartbeat goes on. */
			seen = t_str(e.c, "SELECT last_seen::text FROM pgjobd.workers", NULL);
			snprintf(
			    sql, sizeof sql,
			    "SELECT (max(last_seen) > '%s'::timestamptz)::text FROM pgjobd.workers",
			    seen);
			t_wait_value(e.c, "true", JOB_MS, sql);
			free(seen);
		}
	}
	send_all(slow, "\n");
	body = read_response(slow, &status);
	ck_assert_int_eq(status, 200);
	prom_assert_text(body);
	ck_assert_double_eq(
	    prom_metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}"), 1);
	free(body);
	stop(&e);
}
END_TEST

START_TEST(test_client_that_never_reads_blocks_nothing)
{
	struct buf types = {0};
	struct env e;
	char *body, *req;
	long rss0;
	int lazy, small = 1024;
	size_t size;

	/* Many types make a response of tens of KiB, more than the socket
	 * buffers on both sides hold. */
	for (int i = 0; i < 60; i++)
		buf_printf(&types, "[handler.type%02d]\ncommand = /bin/cat\n", i);
	start(&e, "metrics_lazy", NULL, types.p);
	free(types.p);
	body = scrape(e.port);
	size = strlen(body);
	free(body);
	ck_assert_uint_gt(size, 32 * 1024);
	rss0 = rss_kib(e.d->pid);
	lazy = tcp_connect(e.port, NULL, false, small);
	/* A hundred requests in one go, keep-alive, and nothing read back. */
	req = calloc(100, 64);
	for (int i = 0; i < 100; i++)
		strcat(req, "GET /metrics HTTP/1.1\r\nHost: lazy\r\n\r\n");
	send_all(lazy, req);
	free(req);
	enqueue(&e, "ok", 2);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 2, JOB_MS);
	free(scrape(e.port));
	/* Bounded: one response in flight for it, not a hundred.  Measured on
	 * the plain build only: under ASan, RSS is mostly the sanitizer's own
	 * (redzones, shadow memory, allocator caches) and grows with every
	 * allocation whatever the daemon keeps; there the test proves the rest
	 * (jobs and other scrapes go on) and LeakSanitizer that nothing leaks. */
	if (!strstr(t_pgjobd(), "/asan/"))
		ck_assert_int_lt(rss_kib(e.d->pid), rss0 + (long)(100 * size / 1024) / 2);
	close(lazy);
	stop(&e);
}
END_TEST

/* True once FD has seen EOF or a reset; reads what came before. */
static bool
closed_by_peer(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN);
}

START_TEST(test_thousand_connections_are_capped_and_jobs_go_on)
{
	static const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n";
	struct rlimit rl;
	struct env e;
	int *fds = calloc(FLOOD, sizeof *fds), fds0, done;
	bool *over = calloc(FLOOD, sizeof *over), *sent = calloc(FLOOD, sizeof *sent);
	long rss0;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < FLOOD + 100) {
		ck_assert_msg(rl.rlim_max >= FLOOD + 100, "RLIMIT_NOFILE hard limit too low");
		rl.rlim_cur = rl.rlim_max;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	start(&e, "metrics_flood", NULL, NULL);
	free(scrape(e.port));
	fds0 = open_fds(e.d->pid);
	rss0 = rss_kib(e.d->pid);
	for (int i = 0; i < FLOOD; i++)
		fds[i] = tcp_connect(e.port, NULL, true, 0);
	/* The flood holds, sending nothing: the daemon goes on running jobs... */
	enqueue(&e, "ok", 3);
	t_wait_value(e.c, "3", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* ...another address still gets its scrape (one address holds only a
	 * few connections)... */
	free(scrape_from(e.port, "127.0.0.2"));
	/* ...and holds no more connections than its cap. */
	ck_assert_int_le(open_fds(e.d->pid), fds0 + SERVER_CONNECTIONS);
	/*
	 * Then every connection asks: each is answered and closed, or was
	 * refused.  (Sending matters: a connection the kernel's full accept
	 * queue dropped looks open to the client until it sends.)
	 */
	for (int64_t deadline = t_now_ms() + 60000;;) {
		done = 0;
		for (int i = 0; i < FLOOD; i++) {
			if (!sent[i] && !over[i]) {
				ssize_t w =
				    send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				sent[i] = w == (ssize_t)sizeof req - 1;
				over[i] = w < 0 && errno != EAGAIN && errno != ENOTCONN;
			}
			over[i] = over[i] || (sent[i] && closed_by_peer(fds[i]));
			done += over[i];
		}
		if (done == FLOOD)
			break;
		ck_assert_int_le(open_fds(e.d->pid), fds0 + SERVER_CONNECTIONS);
		ck_assert_msg(t_now_ms() < deadline, "%d of %d connections still open",
		              FLOOD - done, FLOOD);
		poll(NULL, 0, 50);
	}
	/* RSS on the plain build only (see the client that never reads). */
	if (!strstr(t_pgjobd(), "/asan/"))
		ck_assert_int_lt(rss_kib(e.d->pid), rss0 + 16 * 1024);
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	free(fds);
	free(over);
	free(sent);
	free(scrape(e.port));
	stop(&e);
}
END_TEST

START_TEST(test_address_in_use_is_fatal_at_start)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char *text, *cfg, want[96];
	struct t_daemon *d;

	t_use_fresh_db("metrics_in_use");
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	ck_assert_int_ne(
	    asprintf(&text, "metrics_listen = 127.0.0.1:%d\n[handler.ok]\ncommand = /bin/cat\n",
	             ntohs(sa.sin_port)),
	    -1);
	cfg = t_config(text);
	t_migrate(cfg, NULL, NULL);
	d = t_daemon_start(cfg, NULL);
	snprintf(want, sizeof want, "metrics_listen 127.0.0.1:%d: Address already in use",
	         ntohs(sa.sin_port));
	t_daemon_wait_log(d, want, 20000);
	ck_assert_int_eq(t_daemon_wait(d, 20000), 1);
	close(fd);
	free(text);
	unlink(cfg);
	free(cfg);
}
END_TEST

/* A crash of the server (pg_ctl -m immediate) while the daemon runs. */
START_TEST(test_database_restart_counts_one_reconnect)
{
	const char *src = getenv("PGJOBD_SRCDIR");
	char *path, *out, *err;
	struct env e;

	start(&e, "metrics_reconnect", NULL, NULL);
	wait_metric(e.port, "pgjobd_db_up", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_db_reconnects_total", 0, JOB_MS);
	/* The throwaway cluster runs with synchronous_commit = off: without a
	 * checkpoint the crash could take the migration with it. */
	PQclear(t_exec(e.c, "CHECKPOINT", NULL));
	PQfinish(e.c);
	ck_assert_int_ne(asprintf(&path, "%s/tests/pgctl.sh", src && *src ? src : "."), -1);
	{
		const char *argv[] = {"/bin/sh", path, "restart", NULL};
		ck_assert_msg(t_run(argv, &out, &err, 90000) == 0, "pgctl.sh restart: %s", err);
	}
	free(out);
	free(err);
	free(path);
	wait_metric(e.port, "pgjobd_db_reconnects_total", 1, 60000);
	wait_metric(e.port, "pgjobd_db_up", 1, JOB_MS);
	/* And jobs run again. */
	e.c = t_connect();
	enqueue(&e, "ok", 1);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 1, JOB_MS);
	stop(&e);
}
END_TEST

START_TEST(test_lost_lease_is_counted_and_running_handlers_shown)
{
	struct env e;

	start(&e, "metrics_lost", NULL, "[handler.hold]\ncommand = /bin/sleep 60\n");
	enqueue(&e, "hold", 1);
	wait_metric(e.port, "pgjobd_handlers_running", 1, JOB_MS);
	/* Another worker's lease now, as after an expiry and a rescue. */
	PQclear(t_exec(e.c, "UPDATE pgjobd.jobs SET lease_token = lease_token + 1000000", NULL));
	wait_metric(e.port, "pgjobd_leases_lost_total", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"hold\",outcome=\"lost\"}", 1,
	            JOB_MS);
	wait_metric(e.port, "pgjobd_handlers_running", 0, JOB_MS);
	stop(&e);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics_http");
	TCase *td = tcase_create("daemon");

	tcase_set_timeout(td, 180);
	tcase_add_test(td, test_scrape_counts_jobs_by_type_and_outcome);
	tcase_add_test(td, test_serves_on_a_unix_socket_and_removes_it_at_stop);
	tcase_add_test(td, test_address_in_use_is_fatal_at_start);
	tcase_add_test(td, test_database_restart_counts_one_reconnect);
	tcase_add_test(td, test_lost_lease_is_counted_and_running_handlers_shown);
	tcase_add_test(td, test_request_sent_byte_by_byte_delays_no_job_or_scrape);
	tcase_add_test(td, test_client_that_never_reads_blocks_nothing);
	tcase_add_test(td, test_thousand_connections_are_capped_and_jobs_go_on);
	suite_add_tcase(s, td);
	return t_run_suite(s);
}
