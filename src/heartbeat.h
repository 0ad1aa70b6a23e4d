/*
 * heartbeat: the conversation that extends this daemon's leases and keeps
 * its worker row current (sql/stmt/heartbeat.sql), one at a time: idle or
 * in flight.  A running job whose lease the database no longer holds for
 * us (cancelled, or expired and taken over) is reported through the hook,
 * and the daemon kills its handler.
 */
#ifndef PGJOBD_HEARTBEAT_H
#define PGJOBD_HEARTBEAT_H

#include <stdbool.h>

#include "db.h"
#include "job.h"

enum heartbeat_state { HB_IDLE, HB_IN_FLIGHT };

struct heartbeat_hooks {
	/* Running job J's lease is gone. */
	void (*lost)(void *arg, struct job *j);
	/* Running job J's lease was last confirmed AGE seconds ago, a whole
	 * lease or more: it may have expired (heartbeat_fence). */
	void (*fenced)(void *arg, struct job *j, double age);
	/* The heartbeat is over (answered, failed, or the connection was lost). */
	void (*over)(void *arg);
};

/* Who this daemon is, for its worker row. */
struct worker_id {
	char name[320];
	char host[256];
	double started_at; /* epoch seconds */
};

struct heartbeat;

/* Fill in ID from CFG's name (default host:pid) and the clock. */
void heartbeat_identity(struct worker_id *id, const struct cfg *cfg);

struct heartbeat *heartbeat_new(struct db *db, struct jobq *jobs,
    const struct heartbeat_hooks *hooks, void *arg);
void heartbeat_free(struct heartbeat *hb);
enum heartbeat_state heartbeat_state(const struct heartbeat *hb);
/* Extend every lease held among the jobs (whatever their state: a
 * finished job holds its lease until its outcome is written) under CFG's
 * lease, and register ID with RUNNING handlers.  Only when idle; returns
 * whether it was sent. */
bool heartbeat_send(struct heartbeat *hb, const struct cfg *cfg, const struct worker_id *id,
    int running);

/*
 * Self-fencing: report every running job whose lease has not been
 * confirmed for LEASE_MS, measured from the send of the statement that
 * last extended (or granted) it on the monotonic clock, whether or not
 * the database is reachable.  The database's expiry is no earlier, so
 * killing those handlers bounds a double run to kill_grace plus the
 * period this is called at.
 */
void heartbeat_fence(struct heartbeat *hb, int64_t lease_ms);

#endif
