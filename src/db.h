/*
 * db: the daemon's database connection, non-blocking libpq on libev.
 *
 * Modelled on libusual's pgsocket (under pgbouncer's pgqd): PQconnectStart
 * + PQconnectPoll, one wait at a time with the watcher re-armed on the
 * current PQsocket() (libev's "disappearing file descriptors"), PQflush > 0
 * -> wait for write and still read, PQconsumeInput then PQisBusy /
 * PQgetResult until NULL, notifications drained after every read, and a
 * reconnect after a jittered, capped backoff.
 *
 * One connection carries everything: leases, heartbeats, outcomes and
 * LISTEN.  Every statement is a short single-statement transaction, so the
 * server delivers notifications between them without delay; a second
 * connection would double the backends a fleet of daemons holds and add a
 * second reconnect path for no gain in latency.
 *
 * Before each connection attempt the host= names are resolved without
 * blocking (resolve.c) and libpq is given the addresses (conninfo.c).
 *
 * A dead path is noticed within about the heartbeat: TCP keepalives and
 * tcp_user_timeout come from the daemon's timings (unless `database =` sets
 * them), and a statement that gets no answer within max(heartbeat,
 * lease / 2) counts as a lost connection.  A server that is read-only or in
 * recovery (SQLSTATE 25006; 57P01-57P04: shutting down, starting up) is
 * left, and another attempt made after the backoff: with a host list and
 * target_session_attrs=read-write, that finds the new primary after a
 * failover.
 *
 * Statements are queued and sent one at a time, in order.  A statement's
 * callback runs exactly once: with its result, or with NULL when the
 * connection was lost first (then the statement may or may not have been
 * committed; every daemon statement is written to be safe to repeat).
 */
#ifndef PGJOBD_DB_H
#define PGJOBD_DB_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct db;

struct db_events {
	/* Connected and listening; SCHEMA_VERSION read from pgjobd.migrations
	 * (0: not installed). */
	void (*up)(void *arg, int schema_version);
	/* The connection is gone; pending callbacks have run with NULL. */
	void (*down)(void *arg);
	void (*notify)(void *arg, const char *channel, const char *payload);
};

typedef void db_cb(void *arg, PGresult *res);

/* The daemon's timings, from which the connection's bounds are derived. */
struct db_timing {
	int64_t heartbeat_ms;
	int64_t lease_ms;
};

/* SETUP_SQL: sent on every new connection before anything else (its
 * settings and LISTENs); copied.  TIMING: copied. */
struct db *db_new(struct ev_loop *loop, const char *conninfo, const char *setup_sql,
    const struct db_timing *timing, const struct db_events *events, void *arg);
/* New timings (a reload): the answer bound applies from the next
 * statement, keepalives from the next connection. */
void db_set_timing(struct db *db, const struct db_timing *timing);
/* Close the connection; pending callbacks run with NULL. */
void db_free(struct db *db);
bool db_is_up(const struct db *db);
/* When the connection was last lost (ev_now() time), 0 while up or before
 * the first connection: for self-fencing, which must stop handlers before
 * the leases they run under can expire unextended. */
ev_tstamp db_down_since(const struct db *db);
/* Queue SQL with NPARAMS text parameters (copied).  SQL must be a constant
 * (static storage): it is prepared once per connection, keyed by its
 * address, and executed by name after.  Returns false and queues nothing
 * when the connection is not up. */
bool db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb *cb,
    void *arg);

/*
 * Result columns by name: sets IDX[i] to the number of column NAMES[i] of
 * RES for each of the N names.  Returns false (and logs which) when one is
 * missing: a statement file and its reader disagree.
 */
bool db_columns(const PGresult *res, const char *const *names, int n, int *idx);

#endif
