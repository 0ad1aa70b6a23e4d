/* wake: see wake.h. */
#include "wake.h"

#include <string.h>

#define WAKE_SLACK 0.02 /* seconds past a retry's run_at before leasing */

static void
arm(struct wake *w)
{
	ev_timer_stop(w->loop, &w->timer);
	if (w->n == 0)
		return;
	ev_timer_set(&w->timer, w->at[0] > ev_time() ? w->at[0] - ev_time() : 0., 0.);
	ev_timer_start(w->loop, &w->timer);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct wake *w = t->data;
	int n = 0;

	(void)loop;
	(void)revents;
	while (n < w->n && w->at[n] <= ev_time())
		n++;
	memmove(w->at, w->at + n, (size_t)(w->n - n) * sizeof w->at[0]);
	w->n -= n;
	arm(w);
	w->cb(w->arg);
}

void
wake_init(struct wake *w, struct ev_loop *loop, void (*cb)(void *arg), void *arg)
{
	memset(w, 0, sizeof *w);
	w->loop = loop;
	w->cb = cb;
	w->arg = arg;
	ev_init(&w->timer, timer_cb);
	w->timer.data = w;
}

void
wake_after(struct wake *w, int64_t delay_ms)
{
	double at = ev_time() + (double)delay_ms / 1000.0 + WAKE_SLACK;
	int i;

	if (w->n == WAKE_MAX) {
		if (at >= w->at[WAKE_MAX - 1])
			return;
		w->n--; /* forget the latest; the poll will find it */
	}
	for (i = w->n; i > 0 && w->at[i - 1] > at; i--)
		w->at[i] = w->at[i - 1];
	w->at[i] = at;
	w->n++;
	arm(w);
}

void
wake_stop(struct wake *w)
{
	ev_timer_stop(w->loop, &w->timer);
	w->n = 0;
}
