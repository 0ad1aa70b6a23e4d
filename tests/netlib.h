/*
 * netlib: helpers shared by the suites of the daemon's connection to the
 * database over a network (check_net, check_net_dead).
 *
 * Each test makes its own cluster(s) on TCP with tests/pgnet.sh, under the
 * temp dir of tests/with-pg.sh (PGTEST_DIR/net-NAME), and stops them at the
 * end; a failed test leaves them to n_run_suite(), which stops every net-*
 * cluster after the run.  Every helper fails the test instead of returning
 * an error.
 *
 * Timings are short (lease 4s, heartbeat 1s): the bounds asserted are
 * derived from them the way src/db.c derives them.
 */
#ifndef PGJOBD_NETLIB_H
#define PGJOBD_NETLIB_H

#include <check.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "testlib.h"

#define PRINTF(f, a) __attribute__((format(printf, f, a)))

#define TIMINGS "lease = 4s\nheartbeat = 1s\npoll_interval = 1s\nkill_grace = 500ms\n"
#define HEARTBEAT_MS 1000
#define ANSWER_BOUND_MS 2000 /* max(heartbeat, lease / 2), as src/db.c */
#define READY_MS 20000
#define JOB_MS 30000

/* PGJOBD_SRCDIR, default ".". */
const char *n_srcdir(void);
/* Run a shell command; the test fails unless it exits 0. */
void n_sh(const char *fmt, ...) PRINTF(1, 2);
/* The same, its failure ignored (clean-up of what may not exist). */
void n_sh_quiet(const char *cmd);
/* A TCP port nothing listens on now (the kernel's pick). */
int n_free_port(void);
/* PGTEST_DIR/net-NAME (malloc'd): a cluster's directory. */
char *n_cluster_dir(const char *name);
/* tests/pgnet.sh ARGS. */
void n_pgnet(const char *args);
/* A new cluster NAME listening on ADDR:PORT (not started); its directory
 * (malloc'd). */
char *n_cluster_new(const char *name, const char *addr, int port);
/* tests/pgnet.sh WHAT DIR (start, stop, promote, ...). */
void n_cluster_do(const char *what, const char *dir);
PGconn *n_connect_to(const char *conninfo);
long long n_qint(PGconn *c, const char *sql);
/* A config with `database = DATABASE` and EXTRA (the rest of [pgjobd] and
 * the handlers). */
char *n_config(const char *database, const char *extra);
/* `pgjobd --migrate` on DATABASE. */
void n_migrate(const char *database);
/* A handler that runs until the file DIR/release exists (the test holds
 * jobs running with it), as a config section (malloc'd).  At most 2
 * minutes: one left by a failed test ends on its own. */
char *n_hold_handler(const char *dir);
/* Let the handlers of n_hold_handler(DIR) end. */
void n_release(const char *dir);
/* Wait for NEEDLE in the daemon's log; the milliseconds it took. */
int64_t n_wait_log(struct t_daemon *d, const char *needle, int timeout_ms);
/* Stop D; it must exit 0. */
void n_stop_daemon(struct t_daemon *d);

/* Run every test of S (t_run_suite), then stop what failed tests left:
 * the clusters and the handlers they held.  The exit status for main(). */
int n_run_suite(Suite *s);

#endif
