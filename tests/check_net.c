/*
 * check_net: the daemon's connection to the database when the server is
 * not a unix socket on the same machine but a cluster on TCP: TLS with
 * verify-full (a wrong CA refused, with backoff), failover to a promoted
 * standby losing no job, and a read-only server left and retried with
 * backoff.  What a dead network does is check_net_dead's.
 *
 * The clusters, timings and helpers are tests/netlib.h's.  Measured
 * figures are printed on stderr ("figure: ...").
 */
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

/* ---- TLS ---- */

START_TEST(test_tls_verify_full_runs_jobs_and_a_wrong_ca_is_refused)
{
	int port = n_free_port();
	char *dir = n_cluster_new("tls", "127.0.0.1", port), *db_ok, *db_bad, *cfg, *log, *args;
	struct t_daemon *d;
	PGconn *c;
	int64_t took;

	n_sh("%s/tests/mkcerts.sh %s/certs", n_srcdir(), dir);
	ck_assert_int_ge(asprintf(&args, "ssl %s %s/certs/server.crt %s/certs/server.key", dir, dir, dir),
	    0);
	n_pgnet(args);
	free(args);
	n_cluster_do("start", dir);
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
	n_migrate(db_ok);
	c = n_connect_to(db_ok);

	/* The right CA: "localhost" (c-ares, from /etc/hosts) over TLS. */
	cfg = n_config(db_ok, TIMINGS "name = tls\n[handler.echo]\ncommand = /bin/echo tls\n");
	d = t_daemon_start(cfg, NULL);
	n_wait_log(d, "ready:", READY_MS);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo')", NULL));
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	/* pg_hba.conf lets in only hostssl: still, see the daemon's own session. */
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a"
				 " USING (pid) WHERE s.ssl AND a.pid <> pg_backend_pid()"
				 " AND a.backend_type = 'client backend'"),
	    1);
	n_stop_daemon(d);
	unlink(cfg);
	free(cfg);

	/* A CA that did not sign the server's certificate: refused, said so
	 * once, retried with backoff (0.5s, 1s, 2s, +-25%: the fourth attempt
	 * comes no sooner than 2.6s after the first), never a tight loop. */
	cfg = n_config(db_bad, TIMINGS "name = badca\n[handler.echo]\ncommand = /bin/echo tls\n");
	d = t_daemon_start(cfg, NULL);
	n_wait_log(d, "connection attempt 1\n", READY_MS);
	took = n_wait_log(d, "connection attempt 4\n", 20000);
	log = t_daemon_log(d);
	ck_assert_msg(strstr(log, "database connection failed") &&
			  strstr(log, "certificate verify failed"),
	    "no line names the certificate problem:\n%s", t_log_tail(log));
	ck_assert_msg(t_count_of(log, "retrying in the background") == 1,
	    "the refusal is not logged exactly once:\n%s", t_log_tail(log));
	ck_assert_msg(took >= 2500, "4 attempts within %lld ms: no backoff", (long long)took);
	ck_assert_msg(strstr(log, "ready:") == NULL, "a wrong CA was accepted:\n%s", t_log_tail(log));
	fprintf(stderr, "figure: wrong CA: attempts 1 to 4 took %lld ms\n", (long long)took);
	free(log);
	n_stop_daemon(d);
	unlink(cfg);
	free(cfg);
	PQfinish(c);
	n_cluster_do("stop", dir);
	free(db_ok);
	free(db_bad);
	free(dir);
}
END_TEST

/* ---- failover ---- */

START_TEST(test_failover_to_promoted_standby_loses_no_job)
{
	int p1 = n_free_port(), p2 = n_free_port();
	char *primary = n_cluster_new("primary", "127.0.0.1", p1), *standby = n_cluster_dir("standby");
	char *args, *db, *db2, *cfg, *cfg2, *hold, *log, *extra, *extra2;
	struct t_daemon *d, *d2;
	PGconn *c;
	int64_t stopped, restored;

	ck_assert_int_ne(p1, p2);
	n_cluster_do("start", primary);
	ck_assert_int_ge(asprintf(&args, "standby %s %d %s", standby, p2, primary), 0);
	n_pgnet(args);
	free(args);
	n_cluster_do("start", standby);
	ck_assert_int_ge(asprintf(&db,
			     "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=postgres user=postgres "
			     "target_session_attrs=read-write",
			     p1, p2),
	    0);
	ck_assert_int_ge(asprintf(&db2, "host=127.0.0.1 port=%d dbname=postgres user=postgres", p2),
	    0);
	n_migrate(db);
	hold = n_hold_handler(primary);
	ck_assert_int_ge(asprintf(&extra, "lease = 6s\nheartbeat = 1s\npoll_interval = 1s\n"
					  "kill_grace = 500ms\nname = failover\nconcurrency = 4\n%s",
			     hold),
	    0);
	cfg = n_config(db, extra);
	c = n_connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('hold') FROM generate_series(1, 8)", NULL));
	PQfinish(c);
	d = t_daemon_start(cfg, NULL);
	n_wait_log(d, "ready:", READY_MS);
	/* Four in flight, and the standby has seen them leased. */
	c = n_connect_to(db2);
	t_wait_value(c, "4", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running'");
	PQfinish(c);
	/* A second daemon given only the standby (any session): a server in
	 * recovery is left, said once, retried with backoff until promoted. */
	ck_assert_int_ge(asprintf(&extra2, "lease = 6s\nheartbeat = 1s\npoll_interval = 1s\n"
					   "kill_grace = 500ms\nname = standby\nconcurrency = 4\n%s",
			     hold),
	    0);
	cfg2 = n_config(db2, extra2);
	d2 = t_daemon_start(cfg2, NULL);
	n_wait_log(d2, "connection attempt 3\n", READY_MS);
	log = t_daemon_log(d2);
	ck_assert_msg(t_count_of(log, "database server is read-only or in recovery: the server reports "
				    "in_hot_standby") == 1 &&
			  t_count_of(log, "retrying in the background") == 1 && !strstr(log, "ready:"),
	    "a standby is not refused exactly once:\n%s", t_log_tail(log));
	free(log);

	n_cluster_do("stop", primary);
	stopped = t_now_ms();
	n_cluster_do("promote", standby);
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
	n_release(primary);
	c = n_connect_to(db2);
	t_wait_value(c, "8", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* No job lost: each done exactly once; a rerun of one in flight would
	 * count as 'lost', nothing else may have happened. */
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM (SELECT job_id FROM pgjobd.attempts"
				 " WHERE outcome = 'done' GROUP BY job_id HAVING count(*) = 1) s"),
	    8);
	ck_assert_int_eq(n_qint(c, "SELECT count(*) FROM pgjobd.attempts"
				 " WHERE outcome NOT IN ('done', 'lost')"),
	    0);
	log = t_daemon_log(d);
	/* Lost, then refused while the standby was read-only: a line each
	 * change, not one per attempt. */
	ck_assert_msg(t_count_of(log, "retrying in the background") <= 2,
	    "the outage is logged per attempt:\n%s", t_log_tail(log));
	fprintf(stderr, "figure: failover: %d connection attempts in all\n",
	    t_count_of(log, "connection attempt "));
	free(log);
	n_stop_daemon(d);
	n_stop_daemon(d2);
	PQfinish(c);
	n_cluster_do("stop", standby);
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
	int port = n_free_port();
	char *dir = n_cluster_new("ro", "127.0.0.1", port), *db, *cfg, *log, *needle;
	struct t_daemon *d;
	PGconn *c;
	int64_t took;

	n_cluster_do("start", dir);
	ck_assert_int_ge(asprintf(&db, "host=127.0.0.1 port=%d dbname=postgres user=postgres", port),
	    0);
	n_migrate(db);
	c = n_connect_to(db);
	cfg = n_config(db, TIMINGS "name = ro\n[handler.echo]\ncommand = /bin/echo ro\n");
	d = t_daemon_start(cfg, NULL);
	n_wait_log(d, "ready:", READY_MS);

	/* Turned read-only under a working daemon: its next statement gets
	 * SQLSTATE 25006, and every later connection is refused at once
	 * (the server reports default_transaction_read_only = on). */
	PQclear(t_exec(c, "ALTER SYSTEM SET default_transaction_read_only = on", NULL));
	PQclear(t_exec(c, "SELECT pg_reload_conf()", NULL));
	n_wait_log(d, "database server is read-only or in recovery", 10000);
	log = t_daemon_log(d);
	ck_assert_int_ge(asprintf(&needle, "connection attempt %d\n",
			     t_count_of(log, "connection attempt ") + 3),
	    0);
	free(log);
	took = n_wait_log(d, needle, 20000);
	free(needle);
	log = t_daemon_log(d);
	ck_assert_msg(t_count_of(log, "database server is read-only or in recovery") == 1,
	    "read-only is not logged exactly once:\n%s", t_log_tail(log));
	ck_assert_msg(t_count_of(log, "database connection restored") == 0,
	    "a read-only server counted as restored:\n%s", t_log_tail(log));
	/* Three more attempts: 0.5s + 1s + 2s of backoff, -25% jitter: not
	 * reset by the connections that came up read-only. */
	ck_assert_msg(took >= 2500, "3 attempts within %lld ms: no backoff", (long long)took);
	fprintf(stderr, "figure: read-only: 3 further attempts took %lld ms\n", (long long)took);
	free(log);

	/* Writable again: the daemon comes back and works. */
	PQclear(t_exec(c, "ALTER SYSTEM RESET default_transaction_read_only", NULL));
	PQclear(t_exec(c, "SELECT pg_reload_conf()", NULL));
	PQfinish(c);
	c = n_connect_to(db);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo')", NULL));
	t_daemon_wait_log(d, "database connection restored", 60000);
	t_wait_value(c, "done", JOB_MS, "SELECT state FROM pgjobd.jobs");
	n_stop_daemon(d);
	PQfinish(c);
	n_cluster_do("stop", dir);
	unlink(cfg);
	free(cfg);
	free(db);
	free(dir);
}
END_TEST

static Suite *
net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("net");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_tls_verify_full_runs_jobs_and_a_wrong_ca_is_refused);
	tcase_add_test(tc, test_failover_to_promoted_standby_loses_no_job);
	tcase_add_test(tc, test_read_only_server_is_left_and_retried_with_backoff);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return n_run_suite(net_suite());
}
