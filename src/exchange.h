/*
 * exchange: the daemon's conversation that changes jobs
 * (sql/stmt/exchange.sql).  One exchange at a time carries the outcomes
 * finished since the last one and, in the same transaction, leases into
 * the slots they free.  States: idle, in flight, or backing off after a
 * statement error with outcomes aboard (so a database that refuses writes
 * is not hammered).  The daemon decides when to send (daemon_advance);
 * this module builds the statement, reads its rows by name, and reports
 * through the hooks it was handed.
 */
#ifndef PGJOBD_EXCHANGE_H
#define PGJOBD_EXCHANGE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "job.h"

enum exchange_state { EX_IDLE, EX_IN_FLIGHT, EX_BACKING_OFF };

struct exchange_hooks {
	/* J's outcome was written (ACCEPTED) or refused (its lease is no
	 * longer current).  J is off the list; the hook owns it. */
	void (*written)(void *arg, struct job *j, bool accepted);
	/* A job was leased, to be run under CONF. */
	void (*leased)(void *arg, const struct job_lease *l, struct conf *conf);
	/* The exchange is over and the state is idle or backing off; FULL:
	 * it leased as many jobs as it asked for, so more may be waiting. */
	void (*over)(void *arg, bool full);
};

/* What one exchange may lease; ntypes 0: outcomes only. */
struct exchange_req {
	const char *worker;
	struct conf *conf;   /* the config the leases run under */
	char **types;        /* types with a free slot */
	int *free;           /* and their free slots */
	int ntypes;
	int limit;           /* jobs in all */
};

struct exchange;

/* JOBS: the daemon's list; the exchange takes the JOB_FINISHED ones. */
struct exchange *exchange_new(struct ev_loop *loop, struct db *db, struct jobq *jobs,
    const struct exchange_hooks *hooks, void *arg);
void exchange_free(struct exchange *x);
enum exchange_state exchange_state(const struct exchange *x);
/* Send one exchange (only when idle): the finished outcomes, up to about
 * 8 MiB of them, and REQ's lease when every outcome fits.  Returns false
 * when nothing was sent (nothing to do, or the connection is down). */
bool exchange_send(struct exchange *x, const struct exchange_req *req);

#endif
