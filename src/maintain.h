/*
 * maintain: the conversation that keeps the storage in shape
 * (sql/stmt/maintain.sql, pgjobd.maintain()): promotes due scheduled jobs,
 * expires jobs past their expires_at, creates history partitions ahead of
 * need and drops the days whose retention has passed.  Sent on the poll
 * timer by every daemon, idle or in flight; the first daemon of the moment
 * does the work and the others are told it was skipped, so there is no
 * leader.  Leasing does not depend on it.
 */
#ifndef PGJOBD_MAINTAIN_H
#define PGJOBD_MAINTAIN_H

#include <stdbool.h>

#include "db.h"

enum maintain_state { MAINTAIN_IDLE, MAINTAIN_IN_FLIGHT };

struct maintain;

/* OVER runs when a round is over; PROMOTED: due jobs became ready. */
struct maintain *maintain_new(struct db *db, void (*over)(void *arg, bool promoted), void *arg);
void maintain_free(struct maintain *m);
enum maintain_state maintain_state(const struct maintain *m);
/* One round; only when idle.  Returns whether it was sent. */
bool maintain_send(struct maintain *m);

#endif
