/*
 * check_fence: self-fencing (a handler whose lease could not be extended
 * for a whole lease is killed, whether or not the database is reachable).
 *
 * Daemon A loses its database completely: its backend and the postmaster
 * (so no reconnect can succeed either) are frozen with SIGSTOP, while
 * daemon B, connected before the freeze, keeps its own backend.  A must
 * kill its handlers about one lease after its last confirmed extension;
 * B rescues the expired leases and runs the jobs again.  The freeze is
 * always undone: by the test, or by a guard process started beforehand
 * should the test die first.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#define LEASE_S 2.0
#define FREEZE_GUARD_S 40 /* the guard resumes the server by then at the latest */

static char *
config(const char *name, const char *dir, const char *command)
{
	char *text, *path;

	ck_assert_int_ne(asprintf(&text,
			     "[pgjobd]\n"
			     "database = application_name=fence-%s\n"
			     "name = %s\n"
			     "lease = 2s\n"
			     "heartbeat = 400ms\n"
			     "poll_interval = 200ms\n"
			     "kill_grace = 1s\n"
			     "concurrency = 2\n"
			     "[handler.t]\n"
			     "command = %s\n"
			     "environment = DIR=%s\n",
			     name, name, command, dir),
	    -1);
	path = t_write_temp(".ini", text);
	free(text);
	return path;
}

static pid_t
postmaster_pid(void)
{
	char path[512], line[64];
	const char *dir = getenv("PGTEST_DIR");
	FILE *f;

	ck_assert_ptr_nonnull(dir);
	snprintf(path, sizeof path, "%s/data/postmaster.pid", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	fclose(f);
	return (pid_t)atoi(line);
}

/* A process that resumes PIDS after FREEZE_GUARD_S whatever becomes of us. */
static pid_t
start_guard(pid_t a, pid_t b)
{
	pid_t g = fork();

	ck_assert_int_ne(g, -1);
	if (g == 0) {
		setsid();
		sleep(FREEZE_GUARD_S);
		kill(a, SIGCONT);
		kill(b, SIGCONT);
		_exit(0);
	}
	return g;
}

static pid_t
handler_pid(const char *dir, long long id)
{
	char path[512], line[32] = "";
	FILE *f;

	snprintf(path, sizeof path, "%s/%lld", dir, id);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	return (pid_t)atoi(line);
}

START_TEST(test_handlers_are_killed_when_the_lease_cannot_be_extended)
{
	char dir[] = "/tmp/pgjobd-fence-XXXXXX", *cmd, *cfg_a, *cfg_b;
	struct t_daemon *a, *b;
	PGconn *c;
	pid_t backend, postmaster, guard, pids[2];
	int64_t frozen, killed;
	char *log;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0777);
	t_use_fresh_db("pgjobd_fence");
	t_migrate(NULL, NULL, NULL);
	cmd = "/bin/sh -c 'echo $$ > \"$DIR/$PGJOBD_JOB_ID\"; exec sleep 60'";
	cfg_a = config("a", dir, cmd);
	cfg_b = config("b", dir, "/bin/true");
	c = t_connect();
	a = t_daemon_start(cfg_a, NULL);
	t_daemon_wait_log(a, "ready:", 15000);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t'), pgjobd.enqueue('t')", NULL));
	t_wait_value(c, "2", 15000,
	    "SELECT count(*) FROM pgjobd.jobs WHERE state = 'running' AND worker = 'a'");
	for (int i = 0; i < 2; i++) {
		int64_t until = t_now_ms() + 10000;
		while ((pids[i] = handler_pid(dir, i + 1)) == 0 && t_now_ms() < until)
			usleep(20000);
		ck_assert_int_gt(pids[i], 0);
	}
	b = t_daemon_start(cfg_b, NULL);
	t_daemon_wait_log(b, "ready:", 15000);

	/* Freeze A's database while its backend is idle (holding no lock). */
	t_wait_value(c, "1", 10000,
	    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fence-a' "
	    "AND state = 'idle'");
	backend = (pid_t)t_int(c,
	    "SELECT pid FROM pg_stat_activity WHERE application_name = 'fence-a'", NULL);
	postmaster = postmaster_pid();
	guard = start_guard(backend, postmaster);
	ck_assert_int_eq(kill(postmaster, SIGSTOP), 0);
	ck_assert_int_eq(kill(backend, SIGSTOP), 0);
	frozen = t_now_ms();

	/* A kills both handlers about one lease later, without the database. */
	t_daemon_wait_log(a, "lease not extended for", 15000);
	for (int i = 0; i < 2; i++) {
		int64_t until = t_now_ms() + 10000;
		while (kill(pids[i], 0) == 0 && t_now_ms() < until)
			usleep(10000);
		ck_assert_msg(kill(pids[i], 0) == -1, "handler %d (pid %d) survived", i + 1,
		    (int)pids[i]);
	}
	killed = t_now_ms();
	fprintf(stderr, "fence: handlers gone %.3fs after the database froze (lease %.1fs)\n",
	    (double)(killed - frozen) / 1000.0, LEASE_S);

	/* B, still connected, reruns the jobs once their leases expire. */
	t_wait_value(c, "2", 20000,
	    "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done' AND worker = 'b'");
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.attempts WHERE outcome = 'lost'",
			     NULL), 2);

	kill(backend, SIGCONT);
	kill(postmaster, SIGCONT);
	kill(guard, SIGKILL);
	log = t_daemon_log(a);
	ck_assert_ptr_nonnull(strstr(log, "job 1 type=t attempt=1: lease not extended"));
	ck_assert_ptr_nonnull(strstr(log, "job 2 type=t attempt=1: lease not extended"));
	free(log);
	ck_assert_int_eq(t_daemon_stop(b), 0);
	ck_assert_int_eq(t_daemon_stop(a), 0);
	PQfinish(c);
	free(cfg_a);
	free(cfg_b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fence");
	TCase *tc = tcase_create("self_fencing");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_handlers_are_killed_when_the_lease_cannot_be_extended);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
