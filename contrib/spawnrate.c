/*
 * spawnrate: the machine's own limits, as references for contrib/bench.sh.
 *
 *   spawnrate [-n N] [-c C] [PROGRAM [ARG...]]
 *	posix_spawn PROGRAM (default /bin/true) N times (default 5000) with
 *	at most C (default 4) children in flight, reaping each with waitpid.
 *	This is the ceiling for a daemon that runs one process per job.
 *	Prints one line of key=value pairs:
 *	  spawns=N concurrency=C wall_s=.. spawns_per_s=.. spawn_ms=..
 *	  cpu_us_per_spawn=..
 *	cpu_us_per_spawn is this process's own user+system time
 *	(getrusage RUSAGE_SELF, children excluded) per spawn: the least a
 *	parent pays to start and reap one child.  spawn_ms is wall time per
 *	spawn at C=1 (one child start to its reaping), i.e. 1000/spawns_per_s
 *	only when C is 1.
 *
 *   spawnrate -L N
 *	NOTIFY round trip: a second connection LISTENs on pgjobd_enqueue
 *	while the first calls pgjobd.enqueue('bench-probe', queue =>
 *	'bench-probe') N times (autocommit, 5 ms apart); each sample is the
 *	time from sending the enqueue to the LISTEN connection receiving
 *	its notification.  Also times a trivial query (SELECT 1) round trip.
 *	Connects with libpq defaults (PG* environment).  Prints
 *	  notify_n=N notify_p50_ms=.. notify_p99_ms=.. query_p50_ms=..
 *	The probe jobs stay in queue "bench-probe", which no daemon serves.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, int err)
{
	fprintf(stderr, "spawnrate: %s: %s\n", what, strerror(err));
	exit(1);
}

static int
spawn_rate(long n, int c, char **argv)
{
	static char *const def_argv[] = {"/bin/true", NULL};
	char *const *av = argv && argv[0] ? argv : def_argv;
	long started = 0, reaped = 0;
	int inflight = 0;
	struct rusage ru;
	double t0, wall, cpu;

	t0 = now_s();
	while (reaped < n) {
		while (inflight < c && started < n) {
			pid_t pid;
			int rc = posix_spawn(&pid, av[0], NULL, NULL, av, environ);
			if (rc != 0)
				die(av[0], rc);
			started++;
			inflight++;
		}
		int st;
		pid_t pid = waitpid(-1, &st, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			die("waitpid", errno);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawnrate: %s did not exit 0\n", av[0]);
			return 1;
		}
		inflight--;
		reaped++;
	}
	wall = now_s() - t0;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage", errno);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("spawns=%ld concurrency=%d wall_s=%.3f spawns_per_s=%.0f spawn_ms=%.3f "
	       "cpu_us_per_spawn=%.1f\n",
	    n, c, wall, (double)n / wall, wall * 1000.0 * c / (double)n, cpu * 1e6 / (double)n);
	return 0;
}

static PGconn *
connect_or_die(void)
{
	PGconn *conn = PQconnectdb("");

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "spawnrate: cannot connect: %s", PQerrorMessage(conn));
		exit(1);
	}
	return conn;
}

static void
exec_or_die(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "spawnrate: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The value below which a fraction Q of the sorted samples lie. */
static double
pct(const double *v, long n, double q)
{
	long i = (long)(q * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

static int
notify_rtt(long n)
{
	PGconn *snd = connect_or_die(), *lst = connect_or_die();
	double *rtt = calloc((size_t)n, sizeof *rtt), *q = calloc((size_t)n, sizeof *q);
	static const char enqueue[] =
	    "SELECT pgjobd.enqueue('bench-probe', '{}', queue => 'bench-probe')";

	if (!rtt || !q)
		die("calloc", errno);
	exec_or_die(lst, "LISTEN pgjobd_enqueue");
	for (long i = 0; i < n; i++) {
		double t0 = now_s(), got = 0;
		bool done = false;

		if (!PQsendQuery(snd, enqueue)) {
			fprintf(stderr, "spawnrate: %s", PQerrorMessage(snd));
			return 1;
		}
		/* Wait for both: the enqueue's result and the notification. */
		while (!done || got == 0) {
			struct pollfd pfd[2] = {
				{.fd = PQsocket(snd), .events = done ? 0 : POLLIN},
				{.fd = PQsocket(lst), .events = got ? 0 : POLLIN},
			};
			if (poll(pfd, 2, 10000) <= 0)
				die("poll (no notification within 10s?)", errno ? errno : ETIMEDOUT);
			if (pfd[1].revents) {
				PGnotify *nf;
				PQconsumeInput(lst);
				while ((nf = PQnotifies(lst)) != NULL) {
					if (!strcmp(nf->extra, "bench-probe") && got == 0)
						got = now_s();
					PQfreemem(nf);
				}
			}
			if (pfd[0].revents) {
				PQconsumeInput(snd);
				while (!PQisBusy(snd)) {
					PGresult *res = PQgetResult(snd);
					if (!res) {
						done = true;
						break;
					}
					if (PQresultStatus(res) != PGRES_TUPLES_OK) {
						fprintf(stderr, "spawnrate: %s", PQerrorMessage(snd));
						return 1;
					}
					PQclear(res);
				}
			}
		}
		rtt[i] = got - t0;
		t0 = now_s();
		exec_or_die(lst, "SELECT 1");
		q[i] = now_s() - t0;
		usleep(5000);
	}
	qsort(rtt, (size_t)n, sizeof *rtt, cmp_double);
	qsort(q, (size_t)n, sizeof *q, cmp_double);
	printf("notify_n=%ld notify_p50_ms=%.3f notify_p99_ms=%.3f query_p50_ms=%.3f\n", n,
	    pct(rtt, n, 0.5) * 1e3, pct(rtt, n, 0.99) * 1e3, pct(q, n, 0.5) * 1e3);
	free(rtt);
	free(q);
	PQfinish(snd);
	PQfinish(lst);
	return 0;
}

static long
num(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min) {
		fprintf(stderr, "spawnrate: bad number: %s\n", s);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	long n = 5000, probes = 0;
	int c = 4, ch;

	while ((ch = getopt(argc, argv, "+n:c:L:")) != -1) {
		switch (ch) {
		case 'n': n = num(optarg, 1); break;
		case 'c': c = (int)num(optarg, 1); break;
		case 'L': probes = num(optarg, 1); break;
		default:
			fprintf(stderr, "usage: spawnrate [-n N] [-c C] [PROGRAM [ARG...]]\n"
					"       spawnrate -L N\n");
			return 2;
		}
	}
	if (probes)
		return notify_rtt(probes);
	return spawn_rate(n, c, argv + optind);
}
