/* schedule: see schedule.h. */
#include "schedule.h"

#include <stdlib.h>

#include "buf.h"
#include "log.h"
#include "stmts.h"
#include "xmalloc.h"

/* The columns of schedule_fire.sql's rows. */
enum { C_KIND, C_NAME, C_SLOT, C_JOB_ID, C_WAIT_MS, C_COUNT };
static const char *const columns[C_COUNT] = {
	[C_KIND] = "kind", [C_NAME] = "name", [C_SLOT] = "slot",
	[C_JOB_ID] = "job_id", [C_WAIT_MS] = "wait_ms",
};

const char *const schedule_state_names[SCHED_STATES] = {
	[SCHED_DUE] = "due", [SCHED_IN_FLIGHT] = "in flight", [SCHED_STALE] = "stale",
	[SCHED_WAITING] = "waiting", [SCHED_NONE] = "none",
};

struct schedule {
	enum schedule_state state;
	struct ev_loop *loop;
	struct db *db;
	ev_timer timer;
	void (*due)(void *arg);
	void *arg;
};

static void
set_state(struct schedule *s, enum schedule_state to)
{
	if (s->state != to)
		log_debug("schedule: %s -> %s", schedule_state_names[s->state],
		    schedule_state_names[to]);
	s->state = to;
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct schedule *s = w->data;

	(void)loop;
	(void)revents;
	if (s->state != SCHED_WAITING)
		return;
	set_state(s, SCHED_DUE);
	s->due(s->arg);
}

struct schedule *
schedule_new(struct ev_loop *loop, struct db *db, void (*due)(void *arg), void *arg)
{
	struct schedule *s = xcalloc(1, sizeof *s);

	s->state = SCHED_DUE;
	s->loop = loop;
	s->db = db;
	s->due = due;
	s->arg = arg;
	ev_init(&s->timer, timer_cb);
	s->timer.data = s;
	return s;
}

void
schedule_free(struct schedule *s)
{
	ev_timer_stop(s->loop, &s->timer);
	free(s);
}

enum schedule_state
schedule_state(const struct schedule *s)
{
	return s->state;
}

void
schedule_poke(struct schedule *s)
{
	switch (s->state) {
	case SCHED_IN_FLIGHT:
		set_state(s, SCHED_STALE);
		break;
	case SCHED_WAITING:
	case SCHED_NONE:
		ev_timer_stop(s->loop, &s->timer);
		set_state(s, SCHED_DUE);
		break;
	case SCHED_DUE:
	case SCHED_STALE:
	case SCHED_STATES:
		break;
	}
}

/* Log what the firing did; returns the wait row's wait_ms (-1: none). */
static double
read_answer(const PGresult *res, const int *col)
{
	double wait_ms = -1;

	for (int i = 0; i < PQntuples(res); i++) {
		const char *kind = PQgetvalue(res, i, col[C_KIND]);
		const char *name = PQgetvalue(res, i, col[C_NAME]);
		const char *slot = PQgetvalue(res, i, col[C_SLOT]);
		const char *job = PQgetvalue(res, i, col[C_JOB_ID]);

		switch (*kind) {
		case 'f':
			log_info("schedule %s slot %s: job %s enqueued", name, slot, job);
			break;
		case 's':
			log_notice("schedule %s slot %s: skipped, job %s is still ready or running "
				   "(overlap = skip)",
			    name, slot, job);
			break;
		case 'm':
			log_warnx("schedule %s: late since slot %s (no daemon fired it in time): "
				  "its missed policy applied",
			    name, slot);
			break;
		case 'e':
			log_errx("schedule %s slot %s: firing failed, again in a minute (see "
				 "last_error in pgjobd.schedules)",
			    name, slot);
			break;
		case 'n':
			if (!PQgetisnull(res, i, col[C_WAIT_MS]))
				wait_ms = strtod(PQgetvalue(res, i, col[C_WAIT_MS]), NULL);
			break;
		default:
			break;
		}
	}
	return wait_ms;
}

static void
fire_done(void *arg, PGresult *res)
{
	struct schedule *s = arg;
	bool stale = s->state == SCHED_STALE;
	char msg[512];
	int col[C_COUNT];
	double wait_ms;

	if (!res) {
		/* The connection was lost: whatever committed is recorded;
		 * ask again once reconnected. */
		set_state(s, SCHED_DUE);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || !db_columns(res, columns, C_COUNT, col)) {
		/* Asked again at the next poll or change, not in a loop. */
		log_errx("firing schedules failed: %s",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
		set_state(s, stale ? SCHED_DUE : SCHED_NONE);
	} else if ((wait_ms = read_answer(res, col)) < 0 || stale) {
		set_state(s, stale ? SCHED_DUE : SCHED_NONE);
	} else {
		/* The loop's cached time may be behind; the wait counts from now. */
		ev_now_update(s->loop);
		ev_timer_set(&s->timer, wait_ms / 1000.0, 0.);
		ev_timer_start(s->loop, &s->timer);
		set_state(s, SCHED_WAITING);
	}
	if (s->state == SCHED_DUE)
		s->due(s->arg);
}

bool
schedule_send(struct schedule *s, const struct cfg *cfg)
{
	struct buf qb = {0};
	const char *params[1];
	bool sent;

	if (s->state != SCHED_DUE || !db_is_up(s->db))
		return false;
	buf_name_array(&qb, cfg->queues, cfg->nqueues);
	params[0] = qb.p;
	sent = db_query(s->db, stmt_schedule_fire, 1, params, fire_done, s);
	if (sent)
		set_state(s, SCHED_IN_FLIGHT);
	free(qb.p);
	return sent;
}
