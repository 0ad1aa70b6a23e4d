/*
 * spawnlib: helpers shared by the suites of src/spawn.c (check_spawn,
 * check_spawn_kill).  Every test drives the libev default loop until the
 * callback has fired, under a deadline timer that fails the test; nothing
 * sleeps in place of synchronisation.
 *
 * Handlers a failed test leaves behind are killed after the tests (a
 * ledger in memory shared with the Check runner, which becomes a child
 * subreaper): make every test case with sp_tcase().
 */
#ifndef PGJOBD_SPAWNLIB_H
#define PGJOBD_SPAWNLIB_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "spawn.h"

/* The loop of every test (libev's default loop), and the test's own temp
 * directory (made afresh by the fixture, removed with what is in it). */
extern struct ev_loop *sp_loop;
extern char sp_tmpdir[];

/* What the callback saw, copied out (the result dies with the callback). */
struct sp_run {
	struct spawn *sp;
	pid_t pid;
	int slot; /* in the ledger, -1: none */
	int calls;
	bool done;
	bool ready; /* set by the fifo reader of the trap tests */
	struct spawn_result r;
};

/* The spawn callback: copies the outcome into the struct sp_run ARG. */
void sp_done_cb(const struct spawn_result *r, void *arg);
/* An ev_timer callback that sets the bool its data points to. */
void sp_deadline_cb(struct ev_loop *l, ev_timer *w, int revents);
/* Run the loop until *FLAG, failing the test after SECS seconds. */
void sp_wait_until(const bool *flag, double secs, const char *what);
/* Wait (at most SECS) for RUN's outcome, and that it came exactly once. */
void sp_finish_run(struct sp_run *run, double secs);
void sp_run_free(struct sp_run *run);
/* A spec for ARGV: a PATH-only environment, 64 KiB of output, 2 s grace. */
struct spawn_spec sp_spec_of(char *const *argv);
/* Start SPEC into RUN (the test fails if it cannot) and note its group in
 * the ledger. */
void sp_start(const struct spawn_spec *spec, struct sp_run *run);
/* Start SPEC and wait for its outcome. */
void sp_run_spec(const struct spawn_spec *spec, struct sp_run *run, double secs);
/* NAME in the test's temp directory (one of 4 static buffers). */
char *sp_tmp_path(const char *name);
/* The contents of PATH (malloc'd, NUL-terminated), NULL if unreadable. */
char *sp_slurp(const char *path, size_t *len);

/* A test case NAME of S with the ledger, the per-test loop and temp
 * directory, and a 90 s timeout. */
TCase *sp_tcase(Suite *s, const char *name);

#endif
