/* strays: see strays.h. */
#include "strays.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

#define MAX_STRAYS 1024 /* per sweep; a fork bomb is the cgroup's business */
#define ENV_JOB "PGJOBD_JOB_ID="

/* A sweep: the strays it sent SIGTERM, waiting for kill_grace. */
struct sweep {
	LIST_ENTRY(sweep) link;
	struct ev_loop *loop;
	ev_timer grace;
	int fds[MAX_STRAYS]; /* pidfds */
	int n;
};
static LIST_HEAD(, sweep) sweeps = LIST_HEAD_INITIALIZER(sweeps);

void
strays_init(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		log_warn("cannot become a child subreaper: processes that handlers leave "
			 "behind outside their process group will not be killed");
}

/* The children of PID, from /proc (needs CONFIG_PROC_CHILDREN, which
 * Debian's kernels have); returns how many, at most MAX. */
static int
children(pid_t pid, pid_t *out, int max)
{
	char path[64];
	FILE *f;
	int n = 0;
	long v;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	while (n < max && fscanf(f, "%ld", &v) == 1)
		out[n++] = (pid_t)v;
	fclose(f);
	return n;
}

/* The job id in PID's environment, or -1 when there is none. */
static int64_t
job_of(pid_t pid)
{
	char path[64], *buf = NULL;
	size_t len = 0;
	int64_t id = -1;
	FILE *f;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while ((n = getdelim(&buf, &len, '\0', f)) > 0)
		if (!strncmp(buf, ENV_JOB, strlen(ENV_JOB))) {
			id = strtoll(buf + strlen(ENV_JOB), NULL, 10);
			break;
		}
	free(buf);
	fclose(f);
	return id;
}

static bool
is_running_leader(pid_t pid, const struct strays_running *running, int nrunning)
{
	for (int i = 0; i < nrunning; i++)
		if (running[i].pid == pid)
			return true;
	return false;
}

static bool
job_running(int64_t id, const struct strays_running *running, int nrunning)
{
	for (int i = 0; i < nrunning; i++)
		if (running[i].job_id == id)
			return true;
	return false;
}

/* Signal PID and, depth first, its descendants (children first listed,
 * so that a parent cannot fork a new one behind our back unseen for
 * long); each gets a pidfd kept in S when S has room. */
static void
signal_tree(pid_t pid, int sig, struct sweep *s, int depth)
{
	pid_t kids[256];
	int fd, nk;

	if (depth > 64)
		return;
	if ((fd = pidfd_open(pid, 0)) < 0)
		return; /* gone */
	nk = children(pid, kids, 256);
	if (pidfd_send_signal(fd, sig, NULL, 0) == 0 && s && s->n < MAX_STRAYS)
		s->fds[s->n++] = fd;
	else
		close(fd);
	for (int i = 0; i < nk; i++)
		signal_tree(kids[i], sig, s, depth + 1);
}

/* The roots of the strays to kill now: our children that are no running
 * handler and belong to no running job.  Returns how many. */
static int
find_roots(pid_t *roots, int max, const struct strays_running *running, int nrunning)
{
	pid_t kids[MAX_STRAYS];
	int nk = children(getpid(), kids, MAX_STRAYS), n = 0;

	for (int i = 0; i < nk && n < max; i++) {
		int64_t id;
		if (is_running_leader(kids[i], running, nrunning))
			continue;
		id = job_of(kids[i]);
		if (id >= 0 ? job_running(id, running, nrunning) : nrunning > 0)
			continue;
		log_notice("killing process %d left behind by job %" PRId64 " outside its process "
			   "group",
		    (int)kids[i], id);
		roots[n++] = kids[i];
	}
	return n;
}

static void
sweep_free(struct sweep *s)
{
	ev_timer_stop(s->loop, &s->grace);
	for (int i = 0; i < s->n; i++)
		close(s->fds[i]);
	LIST_REMOVE(s, link);
	free(s);
}

static void
grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sweep *s = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < s->n; i++)
		pidfd_send_signal(s->fds[i], SIGKILL, NULL, 0); /* ESRCH when gone */
	sweep_free(s);
}

void
strays_sweep(struct ev_loop *loop, const struct strays_running *running, int nrunning,
    int64_t kill_grace_ms)
{
	pid_t roots[MAX_STRAYS];
	int n = find_roots(roots, MAX_STRAYS, running, nrunning);
	struct sweep *s;

	if (n == 0)
		return;
	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	LIST_INSERT_HEAD(&sweeps, s, link);
	for (int i = 0; i < n; i++)
		signal_tree(roots[i], SIGTERM, s, 0);
	ev_timer_init(&s->grace, grace_cb, (double)kill_grace_ms / 1000.0, 0.);
	s->grace.data = s;
	ev_timer_start(loop, &s->grace);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
strays_finish(struct ev_loop *loop, int64_t kill_grace_ms)
{
	pid_t roots[MAX_STRAYS];
	int64_t until = now_ms() + kill_grace_ms;
	int n = find_roots(roots, MAX_STRAYS, NULL, 0);

	for (int i = 0; i < n; i++)
		signal_tree(roots[i], SIGTERM, NULL, 0);
	/* The loop no longer runs: reap here, until none is left or the
	 * grace is over. */
	while (n > 0 && now_ms() < until) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		n = find_roots(roots, MAX_STRAYS, NULL, 0);
		if (n > 0)
			usleep(20000);
	}
	for (int i = 0; i < n; i++)
		signal_tree(roots[i], SIGKILL, NULL, 0);
	while (!LIST_EMPTY(&sweeps)) {
		struct sweep *s = LIST_FIRST(&sweeps);
		for (int i = 0; i < s->n; i++)
			pidfd_send_signal(s->fds[i], SIGKILL, NULL, 0);
		sweep_free(s);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0 || (n > 0 && errno == EINTR))
		;
	(void)loop;
}
