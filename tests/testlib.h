/*
 * testlib: helpers shared by the Check suites that talk to the throwaway
 * cluster of tests/with-pg.sh (PGHOST etc. in the environment) and run the
 * real pgjobd binary (PGJOBD_BIN).  Every helper fails the current test
 * with a message instead of returning an error.
 */
#ifndef PGJOBD_TESTLIB_H
#define PGJOBD_TESTLIB_H

#include <check.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What `pgjobd --migrate` prints once the schema is at the newest version
 * (sql/007_*.sql). */
#define T_SCHEMA_LATEST "7"
#define T_MIGRATED "schema version " T_SCHEMA_LATEST "\n"

/* Create database NAME afresh (dropping an old one) and make it the
 * default for t_connect() and for every pgjobd started afterwards. */
void t_use_fresh_db(const char *name);
/* Connect to the current test database; aborts the test on failure. */
PGconn *t_connect(void);
/* Run SQL with text parameters (NULL-terminated list) and return the
 * result; the test fails unless it is PGRES_COMMAND_OK or TUPLES_OK. */
PGresult *t_exec(PGconn *c, const char *sql, ...);
/* Same, but returns the result whatever its status (to test refusals). */
PGresult *t_exec_any(PGconn *c, const char *sql, ...);
/* First column of the first row as an integer / a malloc'd string (NULL
 * for SQL NULL). */
long long t_int(PGconn *c, const char *sql, ...);
char *t_str(PGconn *c, const char *sql, ...);

/* Path of the binary under test (PGJOBD_BIN, default build/pgjobd). */
const char *t_pgjobd(void);
/* Write TEXT to a new temp file and return its malloc'd path. */
char *t_write_temp(const char *suffix, const char *text);
/* A config file with [pgjobd] database = "" (libpq env) and EXTRA appended. */
char *t_config(const char *extra);

/* `pgjobd -c CONFIG --migrate [--to TO]` on the current database (CONFIG
 * NULL: one of t_config(""); TO NULL: the newest version); fails unless it
 * exits 0 and, when EXPECT is not NULL, prints EXPECT. */
void t_migrate(const char *config, const char *to, const char *expect);
/* Database NAME made afresh (t_use_fresh_db), migrated to the newest
 * version with CONFIG (NULL: as t_migrate), and connected to. */
PGconn *t_fresh_schema(const char *name, const char *config);

/* Run ARGV to completion (at most TIMEOUT_MS), capturing stdout and
 * stderr into malloc'd strings; returns the exit status (128+N when killed
 * by signal N).  Kills it and fails the test on timeout. */
int t_run(const char *const argv[], char **out, char **err, int timeout_ms);

/* A pgjobd daemon started in the background; its stderr goes to a file. */
struct t_daemon {
	pid_t pid;
	char *log;      /* path of its stderr */
	char *config;
};
/* Start `pgjobd -c CONFIG` with EXTRA_ENV ("NAME=VALUE" strings, NULL-
 * terminated, may be NULL) added to the environment. */
struct t_daemon *t_daemon_start(const char *config, char *const *extra_env);
/* The same, run by the programs of PREFIX (NULL-terminated): for instance
 * {"/usr/sbin/ip", "netns", "exec", "NS", NULL}.  Each must exec the next,
 * so that the pid is the daemon's. */
struct t_daemon *t_daemon_start_in(const char *const *prefix, const char *config,
    char *const *extra_env);
/* Wait for the daemon's log to contain NEEDLE (fails after TIMEOUT_MS). */
void t_daemon_wait_log(struct t_daemon *d, const char *needle, int timeout_ms);
/* Send SIG; then, when WAIT, wait up to TIMEOUT_MS for exit and return its
 * status (128+N when killed by N). */
int t_daemon_signal(struct t_daemon *d, int sig, bool wait, int timeout_ms);
/* Wait for it to exit (it must within TIMEOUT_MS) and free it. */
int t_daemon_wait(struct t_daemon *d, int timeout_ms);
/* The daemon's log so far (malloc'd). */
char *t_daemon_log(struct t_daemon *d);
/* Stop it (SIGTERM, then SIGKILL if needed), free, return exit status. */
int t_daemon_stop(struct t_daemon *d);

/* Poll SQL until its first column equals WANT (text), or fail after
 * TIMEOUT_MS showing the last value.  No sleeping in between but a 20 ms
 * poll interval. */
void t_wait_value(PGconn *c, const char *want, int timeout_ms, const char *sql);

/* A malloc'd copy of a NULL-terminated vector (free with t_free_vec). */
char **t_dup_vec(const char *const *v);
void t_free_vec(char **v);

/* Run every test of S (verbosity from CK_VERBOSITY), free the runner and
 * return the exit status for main(): 1 when any test failed. */
int t_run_suite(Suite *s);

/* Milliseconds on the monotonic clock. */
int64_t t_now_ms(void);

/* How many times NEEDLE occurs in HAY. */
int t_count_of(const char *hay, const char *needle);
/* The last 6000 bytes of a daemon log, for failure messages. */
const char *t_log_tail(const char *log);

#endif
