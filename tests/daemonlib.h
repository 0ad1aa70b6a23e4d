/*
 * daemonlib: helpers shared by the suites that drive the real pgjobd
 * daemon (check_daemon, check_jobs): configs with short timings (the
 * database per test is testlib's t_fresh_schema), queries with printf-style SQL, expectations
 * on jobs and their attempts, and daemons started and stopped cleanly.
 *
 * What a test starts (daemons, handler process groups, a stopped cluster)
 * is recorded in memory shared with the Check runner, so that the next
 * test's setup clears up after a test that failed: use d_tcase() for every
 * test case and d_run_suite() to run the suite.
 */
#ifndef PGJOBD_DAEMONLIB_H
#define PGJOBD_DAEMONLIB_H

#include <check.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "testlib.h"

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* The [pgjobd] timings of a test config; a test adds the rest (name,
 * concurrency, shutdown_timeout, its handlers). */
#define TIMINGS(lease, heartbeat, poll)                                                            \
	"lease = " lease "\nheartbeat = " heartbeat "\npoll_interval = " poll "\n"                 \
	"kill_grace = 500ms\n"
#define FAST TIMINGS("2s", "500ms", "500ms")

#define READY_MS 20000 /* start to "ready:" (ASan, a busy machine) */
#define STOP_MS 30000
#define JOB_MS 20000   /* a short job, from enqueue to its outcome */

/* ---- what a failed test leaves behind ---- */

/* Record a daemon (d_start does) / forget it once it is reaped. */
void d_track_daemon(const struct t_daemon *d);
void d_untrack_daemon(pid_t pid);
/* Record a handler's process group / forget it once it is gone. */
void d_track_group(pid_t pid);
void d_untrack_group(pid_t pid);
/* tests/pgctl.sh PGCTL has stopped the cluster (NULL: started again), so
 * that the next test's setup starts it should this test fail. */
void d_cluster_stopped(const char *pgctl);

/* ---- small helpers ---- */

/* Exists and is not a zombie. */
bool d_alive(pid_t pid);
char *d_asprintf(const char *fmt, ...) PRINTF(1, 2);
/* A config: [pgjobd] with database = "" (libpq env) and TEXT. */
char *d_config(const char *fmt, ...) PRINTF(1, 2);
/* Remove and free a config of d_config(). */
void d_drop_config(char *path);
/* A fresh temp directory for a test's files (pid files, go-files), and
 * its removal (with the files in it; frees DIR). */
char *d_make_dir(void);
void d_remove_dir(char *dir);
/* Wait for DIR/NAME to hold a whole line with a pid; returns it. */
pid_t d_wait_pid_file(const char *dir, const char *name, int timeout_ms);
/* Wait until PID is gone (or a zombie); returns how long it took. */
int64_t d_wait_dead(pid_t pid, int timeout_ms);

/* ---- the database ---- */

/* pgjobd.enqueue(TYPE, PAYLOAD): the job's id. */
long long d_enqueue(PGconn *c, const char *type, const char *payload);
/* First column of the first row of the SQL, as an integer / a malloc'd
 * string (NULL for SQL NULL). */
long long d_qint(PGconn *c, const char *fmt, ...) PRINTF(2, 3);
char *d_qstr(PGconn *c, const char *fmt, ...) PRINTF(2, 3);
/* Run the SQL (printf-style); it must succeed. */
void d_run(PGconn *c, const char *fmt, ...) PRINTF(2, 3);
/* t_wait_value with printf-style SQL. */
void d_wait_value(PGconn *c, const char *want, int timeout_ms, const char *fmt, ...)
    PRINTF(4, 5);
/* Job ID satisfies COND (SQL over its pgjobd.jobs row); on failure the
 * message shows the row. */
void d_expect_job(PGconn *c, long long id, const char *cond, ...) PRINTF(3, 4);
/* Wait for job ID to reach STATE. */
void d_wait_state(PGconn *c, long long id, const char *state, int timeout_ms);
/* The job's attempt history, "attempt:outcome[:worker]" joined by ",",
 * is WANT. */
void d_expect_history(PGconn *c, long long id, bool workers, const char *want);

/* ---- daemons ---- */

/* Start a daemon with CFG and ENV (see t_daemon_start) and wait until it
 * is ready. */
struct t_daemon *d_start(const char *cfg, char *const *env);
/* Send SIG (0: none), wait up to TIMEOUT_MS for D to exit, require status
 * 0 (a LeakSanitizer report makes it non-zero) and a well-formed log, free
 * D, and return its log. */
char *d_expect_clean_exit(struct t_daemon *d, int sig, int timeout_ms);
/* SIGTERM, and d_expect_clean_exit within STOP_MS. */
void d_stop(struct t_daemon *d);

/* ---- the suite ---- */

/* A test case NAME of S with a TIMEOUT (seconds) whose every test starts by
 * clearing up after the one before. */
TCase *d_tcase(Suite *s, const char *name, int timeout);
/* Run S (failure messages may carry daemon logs) and clear up after it:
 * the exit status for main(). */
int d_run_suite(Suite *s);

#endif
