/*
 * spawnlib: what the suites of src/spawn.c (check_spawn, check_spawn_kill)
 * share (spawnlib.h): the libev loop driven until a spawn's callback has
 * fired, under a deadline; the outcome copied out; the ledger that kills
 * what a failed test leaves behind; a temp directory per test.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawnlib.h"

struct ev_loop *sp_loop;
char sp_tmpdir[] = "/tmp/check_spawn.XXXXXX";

static char *const default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

/*
 * Handlers a failing test leaves behind: Check ends a failed test's
 * process with _exit(), and each handler leads its own group, so they
 * would live on (a TERM-immune sleep 1000 for instance).  The runner
 * process becomes a child subreaper, so such orphans are reparented to it
 * and, since it reaps nobody but its test processes, their pids stay
 * reserved; after the tests it SIGKILLs the groups the tests never saw
 * reaped (a ledger in shared memory) and reaps whatever came to it.
 */
struct ledger {
	int n;
	pid_t pid[256];
	bool reaped[256];
};
static struct ledger *ledger;

static void
ledger_open(void)
{
	ledger =
	    mmap(NULL, sizeof *ledger, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(ledger != MAP_FAILED);
	memset(ledger, 0, sizeof *ledger);
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

static void
ledger_close(void)
{
	int i;

	for (i = 0; i < ledger->n; i++)
		if (!ledger->reaped[i])
			killpg(ledger->pid[i], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	munmap(ledger, sizeof *ledger);
}

static char *
memdup0(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void
sp_done_cb(const struct spawn_result *r, void *arg)
{
	struct sp_run *run = arg;

	run->calls++;
	run->done = true;
	if (run->slot >= 0)
		ledger->reaped[run->slot] = true;
	run->sp = NULL; /* freed by spawn once we return */
	if (run->calls > 1)
		return; /* a second call fails the test in sp_finish_run() */
	run->r = *r;
	ck_assert_int_eq(r->out[r->out_len], '\0');
	ck_assert_int_eq(r->err[r->err_len], '\0');
	run->r.out = memdup0(r->out, r->out_len);
	run->r.err = memdup0(r->err, r->err_len);
}

void
sp_deadline_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	*(bool *)w->data = true;
}

/* Run the loop until *FLAG, failing the test after SECS seconds. */
void
sp_wait_until(const bool *flag, double secs, const char *what)
{
	bool expired = false;
	ev_timer t;

	ev_now_update(sp_loop);
	ev_timer_init(&t, sp_deadline_cb, secs, 0.);
	t.data = &expired;
	ev_timer_start(sp_loop, &t);
	while (!*flag && !expired)
		ev_run(sp_loop, EVRUN_ONCE);
	ev_timer_stop(sp_loop, &t);
	ck_assert_msg(*flag, "%s: not done after %.0f s", what, secs);
}

void
sp_finish_run(struct sp_run *run, double secs)
{
	sp_wait_until(&run->done, secs, "spawn");
	/* Let any duplicate callback show itself. */
	ev_run(sp_loop, EVRUN_NOWAIT);
	ck_assert_int_eq(run->calls, 1);
}

void
sp_run_free(struct sp_run *run)
{
	free(run->r.out);
	free(run->r.err);
}

struct spawn_spec
sp_spec_of(char *const *argv)
{
	struct spawn_spec s;

	memset(&s, 0, sizeof s);
	s.argv = argv;
	s.envp = default_env;
	s.output_limit = 64 * 1024;
	s.kill_grace_ms = 2000;
	return s;
}

void
sp_start(const struct spawn_spec *spec, struct sp_run *run)
{
	int errnum = 0;

	memset(run, 0, sizeof *run);
	run->sp = spawn_start(sp_loop, spec, sp_done_cb, run, &errnum);
	ck_assert_msg(run->sp != NULL, "spawn_start(%s): %s", spec->argv[0], strerror(errnum));
	run->pid = spawn_pid(run->sp);
	ck_assert_int_gt(run->pid, 0);
	run->slot = -1;
	if (ledger->n < (int)(sizeof ledger->pid / sizeof ledger->pid[0])) {
		run->slot = ledger->n++;
		ledger->pid[run->slot] = run->pid;
	}
}

/* Start SPEC and wait for its outcome. */
void
sp_run_spec(const struct spawn_spec *spec, struct sp_run *run, double secs)
{
	sp_start(spec, run);
	sp_finish_run(run, secs);
}

char *
sp_tmp_path(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", sp_tmpdir, name);
	return p;
}

/* The contents of PATH (malloc'd, NUL-terminated), NULL if unreadable. */
char *
sp_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			s = realloc(s, cap + 1);
			ck_assert_ptr_nonnull(s);
		}
		got = fread(s + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}


static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	/* spawn.h: the daemon ignores SIGPIPE (stdin writes to a handler
	 * that has gone). */
	signal(SIGPIPE, SIG_IGN);
	sp_loop = ev_default_loop(0);
	ck_assert_ptr_nonnull(sp_loop);
	strcpy(sp_tmpdir, "/tmp/check_spawn.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(sp_tmpdir));
}

static void
teardown(void)
{
	nftw(sp_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TCase *
sp_tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, ledger_open, ledger_close);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	suite_add_tcase(s, tc);
	return tc;
}
