/*
 * rescue: the conversation that takes back leases their holders stopped
 * extending (sql/stmt/rescue.sql), for the queues and types this daemon
 * serves; idle or in flight.  Each rescued job is logged (outcome=lost).
 */
#ifndef PGJOBD_RESCUE_H
#define PGJOBD_RESCUE_H

#include <stdbool.h>

#include "cfg.h"
#include "db.h"

enum rescue_state { RESCUE_IDLE, RESCUE_IN_FLIGHT };

struct rescue;

/* OVER runs when a rescue is over (answered, failed, or lost). */
struct rescue *rescue_new(struct db *db, void (*over)(void *arg), void *arg);
void rescue_free(struct rescue *r);
enum rescue_state rescue_state(const struct rescue *r);
/* Rescue expired leases of CFG's queues and types; only when idle.
 * Returns whether it was sent. */
bool rescue_send(struct rescue *r, const struct cfg *cfg);

#endif
