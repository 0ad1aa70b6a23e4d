/*
 * schedule: the conversation that fires recurring jobs (cron schedules,
 * sql/005_schedules.sql) for the queues this daemon serves.  Each answer
 * of sql/stmt/schedule_fire.sql says how long until the next slot, and a
 * timer is armed for it, so a slot's job is enqueued on time whatever
 * poll_interval is.  There is no leader: every daemon asks, and the
 * database's row locks make each slot one job.
 *
 *   DUE --send--> IN_FLIGHT --answer--> WAITING (timer) --timer--> DUE
 *                     |  \--answer, no slot ahead--> NONE
 *                     \--poke--> STALE --answer--> DUE
 *
 * A poke (a schedule of our queues changed, the poll ticked, we
 * reconnected) makes WAITING or NONE due at once; in flight, it asks
 * again after the answer, which may predate the change.
 */
#ifndef PGJOBD_SCHEDULE_H
#define PGJOBD_SCHEDULE_H

#include <ev.h>
#include <stdbool.h>

#include "cfg.h"
#include "db.h"

enum schedule_state {
	SCHED_DUE,       /* to be asked what is due and when the next slot is */
	SCHED_IN_FLIGHT, /* asked */
	SCHED_STALE,     /* asked, and poked since: ask again after the answer */
	SCHED_WAITING,   /* the timer is armed for the next slot */
	SCHED_NONE,      /* no slot ahead (or the question failed): wait for a poke */
	SCHED_STATES
};
extern const char *const schedule_state_names[SCHED_STATES];

struct schedule;

/* DUE runs whenever the conversation became SCHED_DUE by itself (its
 * timer, or an answer that came stale), so that the daemon sends it. */
struct schedule *schedule_new(struct ev_loop *loop, struct db *db, void (*due)(void *arg),
    void *arg);
void schedule_free(struct schedule *s);
enum schedule_state schedule_state(const struct schedule *s);
/* Something changed: ask again as soon as possible. */
void schedule_poke(struct schedule *s);
/* Fire what is due for CFG's queues; only when SCHED_DUE.  Returns whether
 * it was sent. */
bool schedule_send(struct schedule *s, const struct cfg *cfg);

#endif
