/*
 * check_net: the daemon's connection to the database when the network is
 * not a unix socket on the same machine: TLS with verify-full, failover to
 * a promoted standby, read-only servers, a DNS server that never answers
 * and a path that silently drops every packet (noticed; and, with a
 * second daemon on a direct connection, self-fencing: the cut-off daemon
 * kills its handlers and the other runs the jobs again).
 *
 * Each test makes its own cluster(s) on TCP with tests/pgnet.sh, under the
 * temp dir of tests/with-pg.sh, and stops them at the end; a failed test
 * leaves them to main(), which stops every net-* cluster after the run.
 * The tests that need root (mount and network namespaces) are left out,
 * and say so on stderr, when not run as root or without `ip netns`.
 *
 * Timings are short (lease 4s, heartbeat 1s): the bounds asserted are
 * derived from them the way src/db.c derives them.  Measured figures are
 * printed on stderr ("figure: ...").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

#define TIMINGS "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 500ms\n"
#define HEARTBEAT_MS 1000
#define ANSWER_BOUND_MS 2000 /* max(heartbeat, lease / 2), as src/db.c */
#define READY_MS 20000
#define JOB_MS 30000

/*
 * Names and addresses of the root-only tests, unique to this run (derived
 * from main()'s pid), so that two runs on one machine do not meet: the
 * namespace, the veth pair and its private /30 (10.213.0.0/16 is carved
 * into /30s), and the loopback address of the DNS server that never
 * answers.
 */
static struct {
	char ns[32], veth_host[16], veth_ns[16];
	char addr_host[20], addr_ns[20], dns[20];
} net;

static void
net_names(void)
{
	unsigned key = (unsigned)getpid(), i = key % 16384;

	snprintf(net.ns, sizeof net.ns, "pgjobd-%u", key);
	snprintf(net.veth_host, sizeof net.veth_host, "pgjh%u", key % 100000);
	snprintf(net.veth_ns, sizeof net.veth_ns, "pgjn%u", key % 100000);
	snprintf(net.addr_host, sizeof net.addr_host, "10.213.%u.%u", i >> 6, (i & 63) * 4 + 1);
	snprintf(net.addr_ns, sizeof net.addr_ns, "10.213.%u.%u", i >> 6, (i & 63) * 4 + 2);
	snprintf(net.dns, sizeof net.dns, "127.53.%u.%u", (i + 1) >> 8, (i + 1) & 255);
}

/* ---- helpers ---- */

static const char *
srcdir(void)
{
	const char *s = getenv("PGJOBD_SRCDIR");

	return s && *s ? s : ".";
}

static const char *
testdir(void)
{
	const char *s = getenv("PGTEST_DIR");

	ck_assert_msg(s != NULL, "run under tests/with-pg.sh");
	return s;
}

/* Run a shell command; the test fails unless it exits 0. */
static void PRINTF(1, 2)
sh(const char *fmt, ...)
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
static void
sh_quiet(const char *cmd)
{
	char *full;

	if (asprintf(&full, "(%s) >/dev/null 2>&1", cmd) < 0)
		return;
	if (system(full) < 0)
		perror("system");
	free(full);
}

/* A TCP port nothing listens on now (the kernel's pick). */
static int
free_port(void)
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
static char *
cluster_dir(const char *name)
{
	char *d;

	ck_assert_int_ge(asprintf(&d, "%s/net-%s", testdir(), name), 0);
	return d;
}

static void
pgnet(const char *args)
{
	sh("%s/tests/pgnet.sh %s", srcdir(), args);
}

static char *
cluster_new(const char *name, const char *addr, int port)
{
	char *d = cluster_dir(name), *args;

	ck_assert_int_ge(asprintf(&args, "init %s %s %d", d, addr, port), 0);
	pgnet(args);
	free(args);
	return d;
}

static void
cluster_do(const char *what, const char *dir)
{
	char *args;

	ck_assert_int_ge(asprintf(&args, "%s %s", what, dir), 0);
	pgnet(args);
	free(args);
}

static PGconn *
connect_to(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", conninfo, PQerrorMessage(c));
	return c;
}

static long long
qint(PGconn *c, const char *sql)
{
	return t_int(c, sql, NULL);
}

/* A config with `database = DATABASE` and EXTRA (the rest of [pgjobd] and
 * the handlers). */
static char *
config(const char *database, const char *extra)
{
	char *text, *path;

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\ndatabase = %s\n%s", database, extra), 0);
	path = t_write_temp(".ini", text);
	free(text);
	return path;
}

static void
migrate(const char *database)
{
	char *cfg = config(database, "");

	t_migrate(cfg, NULL, NULL);
	unlink(cfg);
	free(cfg);
}

/* A handler that runs until the file DIR/release exists (the test holds
 * jobs running with it), as a config section.  At most 2 minutes: one
 * left by a failed test ends on its own. */
static char *
hold_handler(const char *dir)
{
	char *s;

	ck_assert_int_ge(asprintf(&s, "[handler.hold]\ncommand = /bin/sh -c 'i=0; while [ ! -e %s/release ] "
				      "&& [ $i -lt 2400 ]; do sleep 0.05; i=$((i + 1)); done; echo held'\n",
			     dir),
	    0);
	return s;
}

static void
release(const char *dir)
{
	sh("touch %s/release", dir);
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The last lines of a log, for failure messages. */
static const char *
tail_of(const char *log)
{
	size_t n = strlen(log);

	return n > 3000 ? log + n - 3000 : log;
}

/* Wait for NEEDLE in the daemon's log; the milliseconds it took. */
static int64_t
wait_log(struct t_daemon *d, const char *needle, int timeout_ms)
{
	int64_t t0 = t_now_ms();

	t_daemon_wait_log(d, needle, timeout_ms);
	return t_now_ms() - t0;
}

static void
stop_daemon(struct t_daemon *d)
{
	ck_assert_int_eq(t_daemon_stop(d), 0);
}

/* ---- TLS ---- */

START_TEST(test_tls_verify_full_runs_jobs_and_a_wrong_ca_is_refused)
{
	int port = free_port();
	char *dir = cluster_new("tls", "127.0.0.1", port), *db_ok, *db_bad, *cfg, *log, *args;
	struct t_daemon *d;
	PGconn *c;
	int64_t took;

	sh("%s/tests/mkcerts.sh %s/certs", srcdir(), dir);
	ck_assert_int_ge(asprintf(&args, "ssl %s %s/certs/server.crt %s/certs/server.key", dir, dir, dir),
	    0);
	pgnet(args);
	free(args);
	cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db_ok,
			     "host=localhost port=%d dbname=postgres user=postgres "
			     "sslmode=verify-full sslrootcert=%s/certs/ca.pem",
			     port, dir),
	    0);
	ck_assert_int_ge(asprintf(&db_bad,
			     "host=localhost port=%d dbname=postgres user=postgres "
			     "sslmode=verify-full sslrootcert=%s/certs/other-ca.pem",
			     port, dir),
	    0);
	migrate(db_ok);
	c = connect_to(db_ok);

	/* The right CA: "localhost" (c-ares, from /etc/hosts) over TLS. */
	cfg = config(db_ok, TIMINGS "name = tls\n[handler.echo]\ncommand = /bin/echo tls\n");
	d = t_daemon_start(cfg, NULL);
	wait_log(d, "ready:", READY_MS);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo')", NULL));
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	/* pg_hba.conf lets in only hostssl: still, see the daemon's own session. */
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a"
				 " USING (pid) WHERE s.ssl AND a.pid <> pg_backend_pid()"
				 " AND a.backend_type = 'client backend'"),
	    1);
	stop_daemon(d);
	unlink(cfg);
	free(cfg);

	/* A CA that did not sign the server's certificate: refused, said so
	 * once, retried with backoff (0.5s, 1s, 2s, +-25%: the fourth attempt
	 * comes no sooner than 2.6s after the first), never a tight loop. */
	cfg = config(db_bad, TIMINGS "name = badca\n[handler.echo]\ncommand = /bin/echo tls\n");
	d = t_daemon_start(cfg, NULL);
	wait_log(d, "connection attempt 1\n", READY_MS);
	took = wait_log(d, "connection attempt 4\n", 20000);
	log = t_daemon_log(d);
	ck_assert_msg(strstr(log, "database connection failed") &&
			  strstr(log, "certificate verify failed"),
	    "no line names the certificate problem:\n%s", tail_of(log));
	ck_assert_msg(count_of(log, "retrying in the background") == 1,
	    "the refusal is not logged exactly once:\n%s", tail_of(log));
	ck_assert_msg(took >= 2500, "4 attempts within %lld ms: no backoff", (long long)took);
	ck_assert_msg(strstr(log, "ready:") == NULL, "a wrong CA was accepted:\n%s", tail_of(log));
	fprintf(stderr, "figure: wrong CA: attempts 1 to 4 took %lld ms\n", (long long)took);
	free(log);
	stop_daemon(d);
	unlink(cfg);
	free(cfg);
	PQfinish(c);
	cluster_do("stop", dir);
	free(db_ok);
	free(db_bad);
	free(dir);
}
END_TEST

/* ---- failover ---- */

START_TEST(test_failover_to_promoted_standby_loses_no_job)
{
	int p1 = free_port(), p2 = free_port();
	char *primary = cluster_new("primary", "127.0.0.1", p1), *standby = cluster_dir("standby");
	char *args, *db, *db2, *cfg, *cfg2, *hold, *log, *extra, *extra2;
	struct t_daemon *d, *d2;
	PGconn *c;
	int64_t stopped, restored;

	ck_assert_int_ne(p1, p2);
	cluster_do("start", primary);
	ck_assert_int_ge(asprintf(&args, "standby %s %d %s", standby, p2, primary), 0);
	pgnet(args);
	free(args);
	cluster_do("start", standby);
	ck_assert_int_ge(asprintf(&db,
			     "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=postgres user=postgres "
			     "target_session_attrs=read-write",
			     p1, p2),
	    0);
	ck_assert_int_ge(asprintf(&db2, "host=127.0.0.1 port=%d dbname=postgres user=postgres", p2),
	    0);
	migrate(db);
	hold = hold_handler(primary);
	ck_assert_int_ge(asprintf(&extra, "lease = 6s\nheartbeat = 1s\npoll_interval = 1s\n"
					  "kill_grace = 500ms\nname = failover\nconcurrency = 4\n%s",
			     hold),
	    0);
	cfg = config(db, extra);
	c = connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold') FROM generate_series(1, 8)", NULL));
	PQfinish(c);
	d = t_daemon_start(cfg, NULL);
	wait_log(d, "ready:", READY_MS);
	/* Four in flight, and the standby has seen them leased. */
	c = connect_to(db2);
	t_wait_value(c, "4", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'");
	PQfinish(c);
	/* A second daemon given only the standby (any session): a server in
	 * recovery is left, said once, retried with backoff until promoted. */
	ck_assert_int_ge(asprintf(&extra2, "lease = 6s\nheartbeat = 1s\npoll_interval = 1s\n"
					   "kill_grace = 500ms\nname = standby\nconcurrency = 4\n%s",
			     hold),
	    0);
	cfg2 = config(db2, extra2);
	d2 = t_daemon_start(cfg2, NULL);
	wait_log(d2, "connection attempt 3\n", READY_MS);
	log = t_daemon_log(d2);
	ck_assert_msg(count_of(log, "database server is read-only or in recovery: the server reports "
				    "in_hot_standby") == 1 &&
			  count_of(log, "retrying in the background") == 1 && !strstr(log, "ready:"),
	    "a standby is not refused exactly once:\n%s", tail_of(log));
	free(log);

	cluster_do("stop", primary);
	stopped = t_now_ms();
	cluster_do("promote", standby);
	ck_assert_int_ge(asprintf(&args, "database connection restored (127.0.0.1:%d)", p2), 0);
	t_daemon_wait_log(d, args, 30000);
	free(args);
	restored = t_now_ms();
	fprintf(stderr, "figure: failover: primary stopped to working on the promoted standby: %lld ms\n",
	    (long long)(restored - stopped));
	ck_assert_msg(restored - stopped < 10000, "failover took %lld ms",
	    (long long)(restored - stopped));

	/* The other daemon finds the promoted standby at its next attempt. */
	t_daemon_wait_log(d2, "database connection restored", 40000);
	release(primary);
	c = connect_to(db2);
	t_wait_value(c, "8", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* No job lost: each done exactly once; a rerun of one in flight would
	 * count as 'lost', nothing else may have happened. */
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM (SELECT job_id FROM pgjobd.attempts"
				 " WHERE outcome = 'done' GROUP BY job_id HAVING count(*) = 1) s"),
	    8);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"),
	    0);
	log = t_daemon_log(d);
	/* Lost, then refused while the standby was read-only: a line each
	 * change, not one per attempt. */
	ck_assert_msg(count_of(log, "retrying in the background") <= 2,
	    "the outage is logged per attempt:\n%s", tail_of(log));
	fprintf(stderr, "figure: failover: %d connection attempts in all\n",
	    count_of(log, "connection attempt "));
	free(log);
	stop_daemon(d);
	stop_daemon(d2);
	PQfinish(c);
	cluster_do("stop", standby);
	unlink(cfg);
	unlink(cfg2);
	free(cfg);
	free(cfg2);
	free(extra);
	free(extra2);
	free(hold);
	free(db);
	free(db2);
	free(primary);
	free(standby);
}
END_TEST

/* ---- read-only ---- */

START_TEST(test_read_only_server_is_left_and_retried_with_backoff)
{
	int port = free_port();
	char *dir = cluster_new("ro", "127.0.0.1", port), *db, *cfg, *log, *needle;
	struct t_daemon *d;
	PGconn *c;
	int64_t took;

	cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=127.0.0.1 port=%d dbname=postgres user=postgres", port),
	    0);
	migrate(db);
	c = connect_to(db);
	cfg = config(db, TIMINGS "name = ro\n[handler.echo]\ncommand = /bin/echo ro\n");
	d = t_daemon_start(cfg, NULL);
	wait_log(d, "ready:", READY_MS);

	/* Turned read-only under a working daemon: its next statement gets
	 * SQLSTATE 25006, and every later connection is refused at once
	 * (the server reports default_transaction_read_only = on). */
	PQclear(t_exec(c, "ALTER SYSTEM SET default_transaction_read_only = on", NULL));
	PQclear(t_exec(c, "SELECT pg_reload_conf()", NULL));
	wait_log(d, "database server is read-only or in recovery", 10000);
	log = t_daemon_log(d);
	ck_assert_int_ge(asprintf(&needle, "connection attempt %d\n",
			     count_of(log, "connection attempt ") + 3),
	    0);
	free(log);
	took = wait_log(d, needle, 20000);
	free(needle);
	log = t_daemon_log(d);
	ck_assert_msg(count_of(log, "database server is read-only or in recovery") == 1,
	    "read-only is not logged exactly once:\n%s", tail_of(log));
	ck_assert_msg(count_of(log, "database connection restored") == 0,
	    "a read-only server counted as restored:\n%s", tail_of(log));
	/* Three more attempts: 0.5s + 1s + 2s of backoff, -25% jitter: not
	 * reset by the connections that came up read-only. */
	ck_assert_msg(took >= 2500, "3 attempts within %lld ms: no backoff", (long long)took);
	fprintf(stderr, "figure: read-only: 3 further attempts took %lld ms\n", (long long)took);
	free(log);

	/* Writable again: the daemon comes back and works. */
	PQclear(t_exec(c, "ALTER SYSTEM RESET default_transaction_read_only", NULL));
	PQclear(t_exec(c, "SELECT pg_reload_conf()", NULL));
	PQfinish(c);
	c = connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo')", NULL));
	t_daemon_wait_log(d, "database connection restored", 60000);
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	stop_daemon(d);
	PQfinish(c);
	cluster_do("stop", dir);
	unlink(cfg);
	free(cfg);
	free(db);
	free(dir);
}
END_TEST

/* ---- name resolution (root: a mount namespace with its own /etc files) ---- */

static void
write_file(const char *path, const char *text)
{
	/* In place (same inode): the daemon sees it through a bind mount. */
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_dns_server_that_never_answers_does_not_stop_the_loop)
{
	int port = free_port();
	char *dir = cluster_new("dns", "127.0.0.1", port), *db, *dbnum, *cfg, *hold, *extra, *script;
	char *hosts, *resolv, *nss, *log, *text;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct t_daemon *d;
	struct pollfd pfd;
	PGconn *c;
	int64_t hang_started, t;
	int udp;

	/* The DNS server: a UDP socket that takes queries and never answers. */
	inet_pton(AF_INET, net.dns, &a.sin_addr);
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(udp, 0);
	ck_assert_msg(bind(udp, (struct sockaddr *)&a, sizeof a) == 0, "bind %s:53: %s", net.dns,
	    strerror(errno));
	ck_assert_int_ge(asprintf(&hosts, "%s/hosts", dir), 0);
	ck_assert_int_ge(asprintf(&resolv, "%s/resolv.conf", dir), 0);
	ck_assert_int_ge(asprintf(&nss, "%s/nsswitch.conf", dir), 0);
	write_file(hosts, "127.0.0.1 localhost\n127.0.0.1 pgjobd-db.test\n");
	ck_assert_int_ge(asprintf(&text, "nameserver %s\noptions timeout:30 attempts:1\n", net.dns), 0);
	write_file(resolv, text);
	free(text);
	write_file(nss, "hosts: files dns\n");
	ck_assert_int_ge(asprintf(&script,
			     "mount --bind %s /etc/hosts && mount --bind %s /etc/resolv.conf && "
			     "mount --bind %s /etc/nsswitch.conf && exec \"$0\" \"$@\"",
			     hosts, resolv, nss),
	    0);
	const char *prefix[] = {"/usr/bin/unshare", "-m", "/bin/sh", "-c", script, NULL};

	cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=pgjobd-db.test port=%d dbname=postgres user=postgres",
			     port),
	    0);
	ck_assert_int_ge(asprintf(&dbnum, "host=127.0.0.1 port=%d dbname=postgres user=postgres",
			     port),
	    0);
	migrate(dbnum);
	hold = hold_handler(dir);
	ck_assert_int_ge(asprintf(&extra, TIMINGS "name = dns\n%s", hold), 0);
	cfg = config(db, extra);
	c = connect_to(dbnum);

	/* A name from /etc/hosts connects. */
	d = t_daemon_start_in(prefix, cfg, NULL);
	wait_log(d, "ready:", READY_MS);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold')", NULL));
	t_wait_value(c, "running", JOB_MS, "SELECT state FROM pgjobd.jobs");

	/* Now the name is only in DNS, whose server never answers, and the
	 * connection is cut: the reconnect's lookup hangs. */
	write_file(hosts, "127.0.0.1 localhost\n");
	PQclear(t_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
			  " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
	    NULL));
	wait_log(d, "connection attempt 2\n", 10000);
	hang_started = t_now_ms();
	pfd = (struct pollfd){.fd = udp, .events = POLLIN};
	ck_assert_msg(poll(&pfd, 1, 5000) == 1, "no DNS query arrived");

	/* Meanwhile the loop answers: a handler that ends is reaped, and
	 * SIGHUP reloads. */
	release(dir);
	t = wait_log(d, "outcome=done", 5000);
	fprintf(stderr, "figure: dns: handler reaped %lld ms after its release, lookup hanging\n",
	    (long long)t);
	ck_assert_int_eq(t_daemon_signal(d, SIGHUP, false, 0), 0);
	t = wait_log(d, "configuration reloaded", 5000);
	fprintf(stderr, "figure: dns: SIGHUP answered in %lld ms, lookup hanging\n", (long long)t);
	log = t_daemon_log(d);
	ck_assert_msg(strstr(log, "host name lookup timed out") == NULL &&
			  count_of(log, "connection attempt ") == 2,
	    "the lookup did not hang as the test wants:\n%s", tail_of(log));
	free(log);
	ck_assert_int_lt(t_now_ms() - hang_started, 15000);

	/* The name back in /etc/hosts: once the hanging lookup gives up (the
	 * attempt's deadline), the next attempt connects and the outcome is
	 * written. */
	write_file(hosts, "127.0.0.1 localhost\n127.0.0.1 pgjobd-db.test\n");
	t = wait_log(d, "database connection restored", 40000);
	fprintf(stderr, "figure: dns: reconnected %lld ms after the name came back\n", (long long)t);
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	stop_daemon(d);
	PQfinish(c);
	close(udp);
	cluster_do("stop", dir);
	unlink(cfg);
	free(cfg);
	free(extra);
	free(hold);
	free(script);
	free(hosts);
	free(resolv);
	free(nss);
	free(db);
	free(dbnum);
	free(dir);
}
END_TEST

/* ---- a dead path (root: a network namespace and a veth pair) ---- */

static void
netns_cleanup(void)
{
	char *cmd;

	if (asprintf(&cmd, "ip netns del %s; ip link del %s", net.ns, net.veth_host) < 0)
		return;
	sh_quiet(cmd);
	free(cmd);
}

/* The namespace with its end of the veth pair up, the host's end up. */
static void
netns_up(void)
{
	netns_cleanup();
	sh("ip netns add %s && ip link add %s type veth peer name %s && ip link set %s netns %s"
	   " && ip addr add %s/30 dev %s && ip link set %s up && ip netns exec %s sh -c"
	   " 'ip addr add %s/30 dev %s && ip link set %s up && ip link set lo up'",
	    net.ns, net.veth_host, net.veth_ns, net.veth_ns, net.ns, net.addr_host, net.veth_host,
	    net.veth_host, net.ns, net.addr_ns, net.veth_ns, net.veth_ns);
}

/* Every packet on the veth pair dropped, both ways, silently: a FIFO of
 * length 0.  Only the namespace is cut off: the host reaches its own end's
 * address over loopback. */
static void
path_cut(void)
{
	sh("tc qdisc add dev %s root pfifo limit 0 && ip netns exec %s tc qdisc add dev %s root"
	   " pfifo limit 0",
	    net.veth_host, net.ns, net.veth_ns);
}

static void
path_restore(void)
{
	sh("tc qdisc del dev %s root && ip netns exec %s tc qdisc del dev %s root", net.veth_host,
	    net.ns, net.veth_ns);
}

START_TEST(test_dead_path_is_noticed_within_heartbeat_and_answer_bound)
{
	int port = free_port();
	char *dir, *db, *cfg, *hold, *extra, *log;
	const char *prefix[] = {"/usr/sbin/ip", "netns", "exec", net.ns, NULL};
	struct t_daemon *d;
	PGconn *c;
	int64_t cut, noticed;

	netns_up();
	dir = cluster_new("path", net.addr_host, port);
	cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=%s port=%d dbname=postgres user=postgres",
			     net.addr_host, port),
	    0);
	migrate(db);
	hold = hold_handler(dir);
	ck_assert_int_ge(asprintf(&extra, TIMINGS "name = path\nconcurrency = 8\n%s", hold), 0);
	cfg = config(db, extra);
	c = connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold') FROM generate_series(1, 8)", NULL));
	d = t_daemon_start_in(prefix, cfg, NULL);
	wait_log(d, "ready:", READY_MS);
	t_wait_value(c, "8", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'");

	path_cut();
	cut = t_now_ms();
	t_daemon_wait_log(d, "database connection lost", 20000);
	noticed = t_now_ms() - cut;
	log = t_daemon_log(d);
	fprintf(stderr, "figure: dead path noticed after %lld ms (heartbeat %d ms, bound %d ms): %s\n",
	    (long long)noticed, HEARTBEAT_MS, ANSWER_BOUND_MS,
	    strstr(log, "no answer within") ? "no answer" : "TCP timeout");
	free(log);
	ck_assert_msg(noticed <= HEARTBEAT_MS + ANSWER_BOUND_MS + 1000,
	    "the dead path was noticed after %lld ms", (long long)noticed);

	/* The path back: the daemon reconnects and every job ends done. */
	path_restore();
	t_daemon_wait_log(d, "database connection restored", 30000);
	release(dir);
	PQfinish(c);
	c = connect_to(db);
	t_wait_value(c, "8", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"),
	    0);
	stop_daemon(d);
	PQfinish(c);
	cluster_do("stop", dir);
	netns_cleanup();
	unlink(cfg);
	free(cfg);
	free(extra);
	free(hold);
	free(db);
	free(dir);
}
END_TEST

#define FENCE_LEASE_MS 4000
#define FENCE_GRACE_MS 1000 /* kill_grace of daemon A */

/* The pid a handler of job ID wrote to DIR/ID, or 0 while there is none. */
static pid_t
handler_pid(const char *dir, int id)
{
	char *path, line[32] = "";
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/%d", dir, id), 0);
	f = fopen(path, "r");
	free(path);
	if (!f)
		return 0;
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	return (pid_t)atoi(line);
}

/* Self-fencing with the network path cut: daemon A, in the namespace,
 * loses every packet to the database; daemon B, on the host's unix socket,
 * keeps its connection.  A kills its handlers (group and all) once their
 * leases went a whole lease unextended, B runs the jobs again once the
 * database expires the leases: the two runs of a job overlap by at most
 * kill_grace + heartbeat. */
START_TEST(test_cut_path_kills_handlers_and_a_direct_daemon_reruns_the_jobs)
{
	int port = free_port();
	char *dir, *db, *direct, *cfg_a, *cfg_b, *extra, *needle, *cut_at;
	char pids_dir[] = "/tmp/pgjobd-net-fence-XXXXXX";
	const char *prefix[] = {"/usr/sbin/ip", "netns", "exec", net.ns, NULL};
	struct t_daemon *a, *b;
	PGconn *c;
	pid_t pids[2];
	int64_t cut, gone[2], until;

	ck_assert_ptr_nonnull(mkdtemp(pids_dir));
	netns_up();
	dir = cluster_new("cut", net.addr_host, port);
	cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=%s port=%d dbname=postgres user=postgres",
			     net.addr_host, port),
	    0);
	ck_assert_int_ge(asprintf(&direct, "host=%s port=%d dbname=postgres user=postgres", dir,
			     port),
	    0);
	migrate(direct);
	ck_assert_int_ge(asprintf(&extra,
			     "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 1s\n"
			     "name = a\nconcurrency = 2\n[handler.t]\n"
			     "command = /bin/sh -c 'echo $$ > \"$DIR/$PGJOBD_JOB_ID\"; exec sleep 60'\n"
			     "environment = DIR=%s\n",
			     pids_dir),
	    0);
	cfg_a = config(db, extra);
	free(extra);
	cfg_b = config(direct, "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 1s\n"
			       "name = b\nconcurrency = 2\n[handler.t]\ncommand = /bin/true\n");
	c = connect_to(direct);

	a = t_daemon_start_in(prefix, cfg_a, NULL);
	wait_log(a, "ready:", READY_MS);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t'), pgjobd.enqueue('t')", NULL));
	t_wait_value(c, "2", JOB_MS,
	    "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running' AND worker = 'a'");
	for (int i = 0; i < 2; i++) {
		until = t_now_ms() + 10000;
		while ((pids[i] = handler_pid(pids_dir, i + 1)) == 0 && t_now_ms() < until)
			usleep(20000);
		ck_assert_msg(pids[i] > 0, "job %d's handler wrote no pid", i + 1);
	}
	b = t_daemon_start(cfg_b, NULL);
	wait_log(b, "ready:", READY_MS);
	/* B is polling, and the jobs are A's: it leases nothing. */
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'"
				 " AND worker = 'a'"),
	    2);

	path_cut();
	cut = t_now_ms();
	/* The database's clock at the cut, to set its started_at against. */
	cut_at = t_str(c, "SELECT clock_timestamp()::text", NULL);
	t_daemon_wait_log(a, "database connection lost", 20000);
	fprintf(stderr, "figure: cut path: A noticed the dead path %lld ms after the cut\n",
	    (long long)(t_now_ms() - cut));

	/* A kills both handlers without the database, and says why. */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_ge(asprintf(&needle, "job %d type=t attempt=1: lease not extended for",
				     i + 1),
		    0);
		t_daemon_wait_log(a, needle, 20000);
		free(needle);
	}
	gone[0] = gone[1] = 0;
	until = t_now_ms() + 10000;
	while ((!gone[0] || !gone[1]) && t_now_ms() < until) {
		for (int i = 0; i < 2; i++)
			if (!gone[i] && kill(pids[i], 0) == -1)
				gone[i] = t_now_ms();
		usleep(5000);
	}
	for (int i = 0; i < 2; i++)
		ck_assert_msg(gone[i] != 0, "job %d's handler (pid %d) survived the fence", i + 1,
		    (int)pids[i]);

	/* B reruns both once the database expires the leases. */
	t_wait_value(c, "2", JOB_MS,
	    "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done' AND worker = 'b'");
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE attempt = 1"
				 " AND outcome = 'lost' AND worker = 'a'"),
	    2);
	ck_assert_int_eq(qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE attempt = 2"
				 " AND outcome = 'done' AND worker = 'b'"),
	    2);
	for (int i = 0; i < 2; i++) {
		char id[16];
		long long rerun, gap;

		snprintf(id, sizeof id, "%d", i + 1);
		rerun = t_int(c,
		    "SELECT (extract(epoch FROM started_at - $2::timestamptz) * 1000)::bigint"
		    " FROM pgjobd.attempts WHERE job_id = $1 AND attempt = 2",
		    id, cut_at, NULL);
		/* B's start minus A's kill: negative when both ran at once. */
		gap = rerun - (gone[i] - cut);
		fprintf(stderr,
		    "figure: cut path: job %d: handler gone %lld ms after the cut, rerun started"
		    " %lld ms after the cut, rerun minus kill %lld ms (lease %d ms, bound"
		    " -%d ms)\n",
		    i + 1, (long long)(gone[i] - cut), rerun, gap, FENCE_LEASE_MS,
		    FENCE_GRACE_MS + HEARTBEAT_MS);
		ck_assert_msg(-gap <= FENCE_GRACE_MS + HEARTBEAT_MS,
		    "job %d ran twice at once for %lld ms", i + 1, -gap);
	}
	/* The path back: A reconnects and stops cleanly, as does B. */
	path_restore();
	t_daemon_wait_log(a, "database connection restored", 30000);
	stop_daemon(b);
	stop_daemon(a);
	PQfinish(c);
	cluster_do("stop", dir);
	netns_cleanup();
	for (int i = 0; i < 2; i++) {
		char *path;

		ck_assert_int_ge(asprintf(&path, "%s/%d", pids_dir, i + 1), 0);
		unlink(path);
		free(path);
	}
	rmdir(pids_dir);
	unlink(cfg_a);
	unlink(cfg_b);
	free(cfg_a);
	free(cfg_b);
	free(cut_at);
	free(db);
	free(direct);
	free(dir);
}
END_TEST

/* ---- suite ---- */

static bool
have_root_tools(const char *what, const char *probe)
{
	if (geteuid() != 0) {
		fprintf(stderr, "check_net: SKIPPED %s: needs root\n", what);
		return false;
	}
	if (system(probe) != 0) {
		fprintf(stderr, "check_net: SKIPPED %s: `%s` failed\n", what, probe);
		return false;
	}
	return true;
}

static Suite *
net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("net");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_tls_verify_full_runs_jobs_and_a_wrong_ca_is_refused);
	tcase_add_test(tc, test_failover_to_promoted_standby_loses_no_job);
	tcase_add_test(tc, test_read_only_server_is_left_and_retried_with_backoff);
	if (have_root_tools("test_dns_server_that_never_answers_does_not_stop_the_loop",
		"unshare -m true >/dev/null 2>&1"))
		tcase_add_test(tc, test_dns_server_that_never_answers_does_not_stop_the_loop);
	if (have_root_tools("test_dead_path_is_noticed_within_heartbeat_and_answer_bound",
		"ip netns list >/dev/null 2>&1 && command -v tc >/dev/null"))
		tcase_add_test(tc, test_dead_path_is_noticed_within_heartbeat_and_answer_bound);
	if (have_root_tools("test_cut_path_kills_handlers_and_a_direct_daemon_reruns_the_jobs",
		"ip netns list >/dev/null 2>&1 && command -v tc >/dev/null"))
		tcase_add_test(tc, test_cut_path_kills_handlers_and_a_direct_daemon_reruns_the_jobs);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	int st;

	net_names();
	st = t_run_suite(net_suite());
	const char *dir = getenv("PGTEST_DIR");
	char *cmd;

	/* What a failed test left: held handlers, clusters, the namespace. */
	if (dir && asprintf(&cmd, "for d in %s/net-*; do touch \"$d/release\"; [ -d \"$d/data\" ] && "
				  "%s/tests/pgnet.sh kill \"$d\"; done",
		       dir, srcdir()) >= 0) {
		sh_quiet(cmd);
		free(cmd);
	}
	if (geteuid() == 0)
		netns_cleanup();
	return st;
}
