/*
 * maintain: the conversation that keeps the storage in shape
 * (sql/stmt/maintain.sql, pgjobd.maintain()): moves jobs coming due from
 * pgjobd.later into pgjobd.live, promotes due scheduled jobs, expires jobs
 * past their expires_at, creates history partitions ahead of need and
 * drops the days whose retention has passed.  Sent on the poll timer by
 * every daemon, idle or in flight, and again at once after a full batch;
 * the first daemon of the moment does the work and the others are told
 * it was skipped, so there is no leader.  Leasing of jobs in pgjobd.live
 * does not depend on it; jobs scheduled beyond pgjobd._later_horizon()
 * reach pgjobd.live by it.
 */
#ifndef PGJOBD_MAINTAIN_H
#define PGJOBD_MAINTAIN_H

#include <stdbool.h>

#include "db.h"

enum maintain_state { MAINTAIN_IDLE, MAINTAIN_IN_FLIGHT };

struct maintain;

/* OVER runs when a round is over; PROMOTED: jobs became ready or moved;
 * MORE: a batch was full, another round should follow. */
struct maintain *maintain_new(struct db *db, void (*over)(void *arg, bool promoted, bool more),
    void *arg);
void maintain_free(struct maintain *m);
enum maintain_state maintain_state(const struct maintain *m);
/* One round; only when idle.  Returns whether it was sent. */
bool maintain_send(struct maintain *m);

#endif
