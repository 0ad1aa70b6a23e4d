/*
 * daemon_jobs: the daemon's side of the jobs it holds: a handler's end
 * (job_finish, then what it leaves behind), the exchange's leases and
 * written outcomes, and lost or fenced leases.  Each hook records facts and
 * calls daemon_advance(); see daemon_priv.h.
 */
#include "daemon_priv.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "strays.h"
#include "xmalloc.h"

int
daemon_count_jobs(struct daemon *d, enum job_state state)
{
	struct job *j;
	int n = 0;

	TAILQ_FOREACH(j, &d->jobs, link)
		n += j->state == state;
	return n;
}

int
daemon_unwritten(struct daemon *d)
{
	return daemon_count_jobs(d, JOB_FINISHED) + daemon_count_jobs(d, JOB_WRITING);
}

int
daemon_running_of_type(struct daemon *d, const char *type)
{
	struct job *j;
	int n = 0;

	TAILQ_FOREACH(j, &d->jobs, link)
		n += j->state == JOB_RUNNING && !strcmp(j->type, type);
	return n;
}

struct job *
daemon_find_running(struct daemon *d, int64_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, &d->jobs, link)
		if (j->id == id && j->state == JOB_RUNNING)
			return j;
	return NULL;
}

void
daemon_kill_all(struct daemon *d, bool now)
{
	struct job *j;

	TAILQ_FOREACH(j, &d->jobs, link)
		if (j->state == JOB_RUNNING)
			job_kill(j, KILL_SHUTDOWN, now);
}

/* ---- jobs: the handlers' ends and the exchange's results ---- */

/* Kill what finished handlers left behind outside their process group. */
static void
sweep_strays(struct daemon *d)
{
	struct strays_running *running = xcalloc((size_t)d->nrunning + 1, sizeof *running);
	struct job *j;
	int n = 0;

	TAILQ_FOREACH(j, &d->jobs, link)
		if (j->state == JOB_RUNNING && j->sp && n < d->nrunning)
			running[n++] = (struct strays_running){spawn_pid(j->sp), j->id};
	strays_sweep(d->loop, running, n, daemon_cfg(d)->kill_grace_ms);
	free(running);
}

static void
spawn_done(const struct spawn_result *r, void *arg)
{
	struct job *j = arg;
	struct daemon *d = ev_userdata(EV_DEFAULT);

	d->nrunning--;
	metrics_handler_duration(j->type, (double)r->duration_ms / 1000.0);
	switch (job_finish(j, r, (double)random() / RAND_MAX)) {
	case JOB_END_OUTCOME:
		break; /* JOB_FINISHED: the next exchange writes it */
	case JOB_END_CANCELLED:
		d->n_cancelled++;
		metrics_job_finished(j->type, METRICS_CANCELLED);
		TAILQ_REMOVE(&d->jobs, j, link);
		job_free(j);
		break;
	case JOB_END_LOST:
		d->n_lost++;
		metrics_job_finished(j->type, METRICS_LOST);
		TAILQ_REMOVE(&d->jobs, j, link);
		job_free(j);
		break;
	}
	sweep_strays(d);
	d->want_lease = true; /* a slot is free */
	daemon_status_changed(d);
	daemon_advance(d);
}

void
daemon_on_leased(void *arg, const struct job_lease *l, struct conf *conf)
{
	struct daemon *d = arg;
	struct job *j = job_new(l, conf);

	TAILQ_INSERT_TAIL(&d->jobs, j, link);
	metrics_pickup_delay(l->pickup_delay_ms / 1000.0);
	if (d->state != D_RUNNING)
		job_release(j); /* leased while a stop began: hand it straight back */
	else if (job_start(j, d->loop, spawn_done, j))
		d->nrunning++;
	else if (!j->args_error) /* unusable args are the job's fault, not a spawn's */
		metrics_spawn_failure(j->type);
	daemon_status_changed(d);
}

void
daemon_on_written(void *arg, struct job *j, bool accepted)
{
	struct daemon *d = arg;

	/* Counted once written: a refused outcome did not happen. */
	metrics_job_finished(j->type, accepted ? outcome_names[j->out.kind] : METRICS_REFUSED);
	if (!accepted) {
		log_warnx("job %" PRId64 " outcome %s refused: its lease is no longer current "
			  "(expired and taken over, or cancelled)",
		    j->id, outcome_names[j->out.kind]);
	} else if (j->out.kind == OUTCOME_DONE) {
		d->n_done++;
	} else if (j->out.kind == OUTCOME_RETRY) {
		d->n_retry++;
		wake_after(&d->wake, j->out.delay_ms);
	} else if (j->out.kind == OUTCOME_DEAD) {
		d->n_dead++;
	}
	daemon_status_changed(d);
	job_free(j);
}

void
daemon_on_exchange_over(void *arg, bool full)
{
	struct daemon *d = arg;

	if (full)
		d->want_lease = true; /* a full batch: more may be waiting */
	daemon_advance(d);
}

void
daemon_on_lease_lost(void *arg, struct job *j)
{
	(void)arg;
	metrics_lease_lost();
	log_warnx("job %" PRId64 " type=%s attempt=%d: lease lost, killing its handler", j->id,
	    j->type, j->attempt);
	job_kill(j, KILL_LEASE_LOST, false);
}

void
daemon_on_fenced(void *arg, struct job *j, double age)
{
	(void)arg;
	metrics_lease_lost();
	log_warnx("job %" PRId64 " type=%s attempt=%d: lease not extended for %.3fs "
		  "(database unreachable), killing its handler before another worker runs the job",
	    j->id, j->type, j->attempt, age);
	job_kill(j, KILL_LEASE_LOST, false);
}
