/*
 * check_net_dead: a network that fails the daemon without a word does not
 * stop it: a DNS server that never answers does not stop the loop, a path
 * that silently drops every packet is noticed within the heartbeat and the
 * answer bound, and, with a second daemon on a direct connection, the
 * cut-off daemon fences itself (kills its handlers) and the other runs the
 * jobs again.
 *
 * These tests need root (mount and network namespaces, a veth pair, tc);
 * they are left out, and say so on stderr, when not run as root or without
 * `ip netns`.  The clusters, timings and helpers are tests/netlib.h's;
 * main() also removes the namespace a failed test left.  Measured figures
 * are printed on stderr ("figure: ...").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netlib.h"
#include "testlib.h"

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
	int port = n_free_port();
	char *dir = n_cluster_new("dns", "127.0.0.1", port), *db, *dbnum, *cfg, *hold, *extra, *script;
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

	n_cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=pgjobd-db.test port=%d dbname=postgres user=postgres",
			     port),
	    0);
	ck_assert_int_ge(asprintf(&dbnum, "host=127.0.0.1 port=%d dbname=postgres user=postgres",
			     port),
	    0);
	n_migrate(dbnum);
	hold = n_hold_handler(dir);
	ck_assert_int_ge(asprintf(&extra, TIMINGS "name = dns\n%s", hold), 0);
	cfg = n_config(db, extra);
	c = n_connect_to(dbnum);

	/* A name from /etc/hosts connects. */
	d = t_daemon_start_in(prefix, cfg, NULL);
	n_wait_log(d, "ready:", READY_MS);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold')", NULL));
	t_wait_value(c, "running", JOB_MS, "SELECT state FROM pgjobd.jobs");

	/* Now the name is only in DNS, whose server never answers, and the
	 * connection is cut: the reconnect's lookup hangs. */
	write_file(hosts, "127.0.0.1 localhost\n");
	PQclear(t_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
			  " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
	    NULL));
	n_wait_log(d, "connection attempt 2\n", 10000);
	hang_started = t_now_ms();
	pfd = (struct pollfd){.fd = udp, .events = POLLIN};
	ck_assert_msg(poll(&pfd, 1, 5000) == 1, "no DNS query arrived");

	/* Meanwhile the loop answers: a handler that ends is reaped, and
	 * SIGHUP reloads. */
	n_release(dir);
	t = n_wait_log(d, "outcome=done", 5000);
	fprintf(stderr, "figure: dns: handler reaped %lld ms after its release, lookup hanging\n",
	    (long long)t);
	ck_assert_int_eq(t_daemon_signal(d, SIGHUP, false, 0), 0);
	t = n_wait_log(d, "configuration reloaded", 5000);
	fprintf(stderr, "figure: dns: SIGHUP answered in %lld ms, lookup hanging\n", (long long)t);
	log = t_daemon_log(d);
	ck_assert_msg(strstr(log, "host name lookup timed out") == NULL &&
			  t_count_of(log, "connection attempt ") == 2,
	    "the lookup did not hang as the test wants:\n%s", t_log_tail(log));
	free(log);
	ck_assert_int_lt(t_now_ms() - hang_started, 15000);

	/* The name back in /etc/hosts: once the hanging lookup gives up (the
	 * attempt's deadline), the next attempt connects and the outcome is
	 * written. */
	write_file(hosts, "127.0.0.1 localhost\n127.0.0.1 pgjobd-db.test\n");
	t = n_wait_log(d, "database connection restored", 40000);
	fprintf(stderr, "figure: dns: reconnected %lld ms after the name came back\n", (long long)t);
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	n_stop_daemon(d);
	PQfinish(c);
	close(udp);
	n_cluster_do("stop", dir);
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
	n_sh_quiet(cmd);
	free(cmd);
}

/* The namespace with its end of the veth pair up, the host's end up. */
static void
netns_up(void)
{
	netns_cleanup();
	n_sh("ip netns add %s && ip link add %s type veth peer name %s && ip link set %s netns %s"
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
	n_sh("tc qdisc add dev %s root pfifo limit 0 && ip netns exec %s tc qdisc add dev %s root"
	   " pfifo limit 0",
	    net.veth_host, net.ns, net.veth_ns);
}

static void
path_restore(void)
{
	n_sh("tc qdisc del dev %s root && ip netns exec %s tc qdisc del dev %s root", net.veth_host,
	    net.ns, net.veth_ns);
}

START_TEST(test_dead_path_is_noticed_within_heartbeat_and_answer_bound)
{
	int port = n_free_port();
	char *dir, *db, *cfg, *hold, *extra, *log;
	const char *prefix[] = {"/usr/sbin/ip", "netns", "exec", net.ns, NULL};
	struct t_daemon *d;
	PGconn *c;
	int64_t cut, noticed;

	netns_up();
	dir = n_cluster_new("path", net.addr_host, port);
	n_cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=%s port=%d dbname=postgres user=postgres",
			     net.addr_host, port),
	    0);
	n_migrate(db);
	hold = n_hold_handler(dir);
	ck_assert_int_ge(asprintf(&extra, TIMINGS "name = path\nconcurrency = 8\n%s", hold), 0);
	cfg = n_config(db, extra);
	c = n_connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold') FROM generate_series(1, 8)", NULL));
	d = t_daemon_start_in(prefix, cfg, NULL);
	n_wait_log(d, "ready:", READY_MS);
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
	n_release(dir);
	PQfinish(c);
	c = n_connect_to(db);
	t_wait_value(c, "8", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"),
	    0);
	n_stop_daemon(d);
	PQfinish(c);
	n_cluster_do("stop", dir);
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
	int port = n_free_port();
	char *dir, *db, *direct, *cfg_a, *cfg_b, *extra, *needle, *cut_at;
	char pids_dir[] = "/tmp/pgjobd-net-fence-XXXXXX";
	const char *prefix[] = {"/usr/sbin/ip", "netns", "exec", net.ns, NULL};
	struct t_daemon *a, *b;
	PGconn *c;
	pid_t pids[2];
	int64_t cut, gone[2], until;

	ck_assert_ptr_nonnull(mkdtemp(pids_dir));
	netns_up();
	dir = n_cluster_new("cut", net.addr_host, port);
	n_cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=%s port=%d dbname=postgres user=postgres",
			     net.addr_host, port),
	    0);
	ck_assert_int_ge(asprintf(&direct, "host=%s port=%d dbname=postgres user=postgres", dir,
			     port),
	    0);
	n_migrate(direct);
	ck_assert_int_ge(asprintf(&extra,
			     "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 1s\n"
			     "name = a\nconcurrency = 2\n[handler.t]\n"
			     "command = /bin/sh -c 'echo $$ > \"$DIR/$PGJOBD_JOB_ID\"; exec sleep 60'\n"
			     "environment = DIR=%s\n",
			     pids_dir),
	    0);
	cfg_a = n_config(db, extra);
	free(extra);
	cfg_b = n_config(direct, "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 1s\n"
			       "name = b\nconcurrency = 2\n[handler.t]\ncommand = /bin/true\n");
	c = n_connect_to(direct);

	a = t_daemon_start_in(prefix, cfg_a, NULL);
	n_wait_log(a, "ready:", READY_MS);
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
	n_wait_log(b, "ready:", READY_MS);
	/* B is polling, and the jobs are A's: it leases nothing. */
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'"
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
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE attempt = 1"
				 " AND outcome = 'lost' AND worker = 'a'"),
	    2);
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pgjobd.attempts WHERE attempt = 2"
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
	n_stop_daemon(b);
	n_stop_daemon(a);
	PQfinish(c);
	n_cluster_do("stop", dir);
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

static bool
have_root_tools(const char *what, const char *probe)
{
	if (geteuid() != 0) {
		fprintf(stderr, "check_net_dead: SKIPPED %s: needs root\n", what);
		return false;
	}
	if (system(probe) != 0) {
		fprintf(stderr, "check_net_dead: SKIPPED %s: `%s` failed\n", what, probe);
		return false;
	}
	return true;
}

static Suite *
net_dead_suite(void)
{
	Suite *s = suite_create("net_dead");
	TCase *tc = tcase_create("net_dead");

	tcase_set_timeout(tc, 180);
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
	st = n_run_suite(net_dead_suite());
	/* What a failed test left besides its clusters: the namespace. */
	if (geteuid() == 0)
		netns_cleanup();
	return st;
}
