/*
 * wake: lease again when a retry this daemon scheduled is due, instead of
 * at the next poll.  Remembers up to WAKE_MAX due times (the earliest
 * ones); the poll finds whatever it forgot, and jobs scheduled by others.
 */
#ifndef PGJOBD_WAKE_H
#define PGJOBD_WAKE_H

#include <ev.h>
#include <stdint.h>

#define WAKE_MAX 64

struct wake {
	struct ev_loop *loop;
	ev_timer timer;
	double at[WAKE_MAX]; /* ev_time() of each, ascending */
	int n;
	void (*cb)(void *arg);
	void *arg;
};

void wake_init(struct wake *w, struct ev_loop *loop, void (*cb)(void *arg), void *arg);
/* Call CB once DELAY_MS from now (plus a little slack: the database's
 * run_at, now() + delay at the outcome's write, is then behind us). */
void wake_after(struct wake *w, int64_t delay_ms);
void wake_stop(struct wake *w);

#endif
