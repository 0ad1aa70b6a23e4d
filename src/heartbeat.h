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

#endif
