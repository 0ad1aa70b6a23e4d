/* daemon: see daemon.h. */
#include "daemon.h"
#include "daemon_priv.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "db.h"
#include "exchange.h"
#include "heartbeat.h"
#include "job.h"
#include "log.h"
#include "maintain.h"
#include "metrics.h"
#include "metrics_http.h"
#include "migrate.h"
#include "rescue.h"
#include "schedule.h"
#include "sdnotify.h"
#include "stmts.h"
#include "strays.h"
#include "wake.h"
#include "xmalloc.h"

#define CHANNEL_CANCEL "pgjobd_cancel"   /* payload: a job id (sql/001_schema.sql) */
#define CHANNEL_ENQUEUE "pgjobd_enqueue" /* payload: a queue */
#define CHANNEL_SCHEDULE "pgjobd_schedule" /* payload: a queue (sql/005_schedules.sql) */
#define FLUSH_TIMEOUT_MIN 5.0 /* at stop: how long unwritten outcomes may wait */

static const char *const dstate_names[D_STATES] = {
	[D_STARTING] = "starting", [D_RUNNING] = "running", [D_DRAINING] = "draining",
	[D_KILLING] = "killing", [D_FLUSHING] = "flushing",
	[D_DEREGISTERING] = "deregistering", [D_DONE] = "done",
};

struct cfg *
daemon_cfg(struct daemon *d)
{
	return d->conf->cfg;
}

static double
ms_to_s(int64_t ms)
{
	return (double)ms / 1000.0;
}

/* Their series exist from the start, at zero. */
static void
declare_types(const struct cfg *c)
{
	for (int i = 0; i < c->nhandlers; i++)
		metrics_declare_type(c->handlers[i].type);
}

void
daemon_status_changed(struct daemon *d)
{
	d->status_dirty = true;
	metrics_handlers(d->nrunning, daemon_cfg(d)->concurrency);
}

static void
send_status(struct daemon *d)
{
	const char *what = d->state <= D_RUNNING ? "" : d->state == D_DRAINING ? "draining; " : "stopping; ";

	sd_notifyf("STATUS=%s%srunning %d/%d; done %" PRIu64 ", retried %" PRIu64 ", dead %" PRIu64
		   ", lost %" PRIu64 ", cancelled %" PRIu64,
	    db_is_up(d->db) ? "" : "database unavailable; ", what, d->nrunning, daemon_cfg(d)->concurrency,
	    d->n_done, d->n_retry, d->n_dead, d->n_lost, d->n_cancelled);
	d->status_dirty = false;
}

static void
on_rescue_over(void *arg)
{
	struct daemon *d = arg;

	d->want_lease = true; /* rescued jobs can be leased right away */
	daemon_advance(d);
}

static void
on_maintain_over(void *arg, bool promoted, bool more)
{
	struct daemon *d = arg;

	if (promoted)
		d->want_lease = true; /* scheduled jobs became due */
	if (more)
		d->want_maintain = true; /* the next batch, without waiting for the poll */
	daemon_advance(d);
}

static void
on_heartbeat_over(void *arg)
{
	daemon_advance(arg);
}

static void
on_schedule_due(void *arg)
{
	daemon_advance(arg);
}

static void
deregister_done(void *arg, PGresult *res)
{
	struct daemon *d = arg;
	char msg[512];

	if (!res) {
		d->dereg = DEREG_NOT_SENT; /* lost: again once reconnected */
		return;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("removing the worker row failed: %s",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
	d->dereg = DEREG_DONE;
	daemon_advance(d);
}

/* ---- the one dispatch ---- */

/* The lease one exchange may take now: per type, the free slots within its
 * cap; TYPES and FREE have room for every handler. */
static int
lease_request(struct daemon *d, char **types, int *free_slots, int *limit)
{
	struct cfg *c = daemon_cfg(d);
	int n = 0;

	*limit = c->concurrency - d->nrunning;
	for (int i = 0; d->state == D_RUNNING && *limit > 0 && i < c->nhandlers; i++) {
		const struct cfg_handler *h = &c->handlers[i];
		int f = *limit;
		if (h->concurrency > 0 && h->concurrency - daemon_running_of_type(d, h->type) < f)
			f = h->concurrency - daemon_running_of_type(d, h->type);
		if (f <= 0)
			continue;
		types[n] = h->type;
		free_slots[n++] = f;
	}
	return n;
}

static void
send_exchange(struct daemon *d)
{
	struct cfg *c = daemon_cfg(d);
	char **types = xcalloc((size_t)c->nhandlers + 1, sizeof *types);
	int *free_slots = xcalloc((size_t)c->nhandlers + 1, sizeof *free_slots);
	struct exchange_req req = {.worker = d->id.name, .conf = d->conf,
	    .types = types, .free = free_slots};

	/* Every exchange leases into the free slots; without outcomes to
	 * write, one is sent only when a reason to lease came up. */
	if (d->want_lease || daemon_count_jobs(d, JOB_FINISHED) > 0) {
		req.ntypes = lease_request(d, types, free_slots, &req.limit);
		if (exchange_send(d->ex, &req) || req.ntypes == 0)
			d->want_lease = false;
	}
	free(types);
	free(free_slots);
}

/* The state the facts call for, or the current one. */
static enum dstate
next_state(struct daemon *d)
{
	switch (d->state) {
	case D_STARTING:
	case D_RUNNING:
		if (d->signals > 0)
			return D_DRAINING;
		return d->schema_ok ? D_RUNNING : D_STARTING;
	case D_DRAINING:
		if (d->nrunning == 0)
			return D_FLUSHING;
		return d->kill_due ? D_KILLING : D_DRAINING;
	case D_KILLING:
		return d->nrunning == 0 ? D_FLUSHING : D_KILLING;
	case D_FLUSHING:
		/* With the database away and nothing to write there is nothing
		 * to wait for; the worker row then stays behind, its last_seen
		 * showing when it stopped. */
		if (d->flush_expired)
			return D_DONE;
		if (daemon_unwritten(d) > 0)
			return D_FLUSHING;
		return db_is_up(d->db) ? D_DEREGISTERING : D_DONE;
	case D_DEREGISTERING:
		return d->flush_expired || d->dereg == DEREG_DONE || !db_is_up(d->db)
			   ? D_DONE
			   : D_DEREGISTERING;
	case D_DONE:
	case D_STATES:
		break;
	}
	return D_DONE;
}

static void
enter(struct daemon *d, enum dstate s)
{
	struct cfg *c = daemon_cfg(d);
	double t;
	int n;

	log_debug("daemon: %s -> %s", dstate_names[d->state], dstate_names[s]);
	d->state = s;
	daemon_status_changed(d);
	switch (s) {
	case D_RUNNING:
		log_notice("ready: worker %s, queues served: %d, handlers: %d, concurrency %d",
		    d->id.name, c->nqueues, c->nhandlers, c->concurrency);
		sd_notifyf("READY=1\nMAINPID=%d", (int)getpid());
		break;
	case D_DRAINING:
		sd_notifyf("STOPPING=1");
		ev_timer_stop(d->loop, &d->poll);
		log_notice("stopping: %d handler(s) running, waiting up to %.3fs (signal again to "
			   "skip the wait)",
		    d->nrunning, ms_to_s(c->shutdown_timeout_ms));
		ev_timer_set(&d->drain, ms_to_s(c->shutdown_timeout_ms), 0.);
		ev_timer_start(d->loop, &d->drain);
		break;
	case D_KILLING:
		ev_timer_stop(d->loop, &d->drain);
		daemon_kill_all(d, false);
		break;
	case D_FLUSHING:
		ev_timer_stop(d->loop, &d->drain);
		t = ms_to_s(c->kill_grace_ms);
		ev_timer_set(&d->flush, t > FLUSH_TIMEOUT_MIN ? t : FLUSH_TIMEOUT_MIN, 0.);
		ev_timer_start(d->loop, &d->flush);
		break;
	case D_DONE:
		if ((n = daemon_unwritten(d)) > 0)
			log_errx("stopping with %d outcome(s) unwritten (database unavailable): their "
				 "leases will expire and the jobs run again",
			    n);
		ev_break(d->loop, EVBREAK_ALL);
		break;
	default:
		break;
	}
}

/*
 * Called after every event: first the lifecycle moves as far as the facts
 * allow, then each conversation that is idle and has work is sent.  The
 * rescue goes before the exchange, so that the jobs it frees can be leased
 * in the same round; the worker row goes last, after its outcomes.
 */
void
daemon_advance(struct daemon *d)
{
	enum dstate s;

	while (d->state != D_DONE && (s = next_state(d)) != d->state)
		enter(d, s);
	if (d->state == D_DONE || !db_is_up(d->db))
		return;
	if (d->want_maintain && d->state == D_RUNNING && maintain_send(d->maintain))
		d->want_maintain = false;
	if (d->want_rescue && d->state == D_RUNNING && rescue_state(d->rescue) == RESCUE_IDLE) {
		rescue_send(d->rescue, daemon_cfg(d));
		d->want_rescue = false;
	}
	/* Before the exchange: it may lease the jobs just fired. */
	if (d->state == D_RUNNING && schedule_state(d->sched) == SCHED_DUE)
		schedule_send(d->sched, daemon_cfg(d));
	if (exchange_state(d->ex) == EX_IDLE && rescue_state(d->rescue) == RESCUE_IDLE &&
	    d->state != D_STARTING)
		send_exchange(d);
	if (d->want_heartbeat && d->state < D_DEREGISTERING &&
	    heartbeat_send(d->hb, daemon_cfg(d), &d->id, d->nrunning))
		d->want_heartbeat = false;
	/* No heartbeat may re-register the row once it is being removed. */
	if (d->state == D_DEREGISTERING && d->dereg == DEREG_NOT_SENT &&
	    heartbeat_state(d->hb) == HB_IDLE) {
		const char *params[1] = {d->id.name};
		if (db_query(d->db, stmt_deregister, 1, params, deregister_done, d))
			d->dereg = DEREG_IN_FLIGHT;
	}
}

/* ---- the database's events ---- */

static void
db_up(void *arg, int schema_version)
{
	struct daemon *d = arg;
	int need = migrate_latest();

	if (schema_version < need) {
		log_errx("the database schema is at version %d, this pgjobd needs %d: "
			 "run `pgjobd -c %s --migrate`",
		    schema_version, need, d->path);
		d->exit_status = 1;
		if (d->state == D_STARTING) {
			d->state = D_DONE; /* at start: nothing runs yet */
			ev_break(d->loop, EVBREAK_ALL);
		} else { /* downgraded under a running daemon: stop as on SIGTERM */
			raise(SIGTERM);
		}
		return;
	}
	if (schema_version > need && !d->schema_ok)
		log_warnx("the database schema is at version %d, newer than this pgjobd's %d",
		    schema_version, need);
	d->schema_ok = true;
	metrics_db_up(true);
	/* Registers the worker, re-checks leases after an outage. */
	d->want_heartbeat = d->want_rescue = d->want_maintain = d->want_lease = true;
	schedule_poke(d->sched);
	daemon_status_changed(d);
	daemon_advance(d);
}

static void
db_down(void *arg)
{
	/* Every statement in flight has had its callback, with NULL. */
	metrics_db_up(false);
	daemon_status_changed(arg);
}

static void
db_notify(void *arg, const char *channel, const char *payload)
{
	struct daemon *d = arg;
	struct cfg *c = daemon_cfg(d);

	if (!strcmp(channel, CHANNEL_CANCEL)) {
		struct job *j = daemon_find_running(d, strtoll(payload, NULL, 10));
		if (j && j->kill != KILL_CANCEL) {
			log_notice("job %" PRId64 " type=%s attempt=%d: cancelled, killing its handler",
			    j->id, j->type, j->attempt);
			job_kill(j, KILL_CANCEL, false);
		}
		return;
	}
	for (int i = 0; i < c->nqueues; i++)
		if (!strcmp(payload, c->queues[i])) {
			if (!strcmp(channel, CHANNEL_SCHEDULE))
				schedule_poke(d->sched);
			else
				d->want_lease = true;
			daemon_advance(d);
			return;
		}
}

/* ---- timers ---- */

static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	d->want_rescue = d->want_maintain = d->want_lease = true;
	schedule_poke(d->sched); /* the safety net for schedules, too */
	daemon_advance(d);
}

static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	d->want_heartbeat = true;
	daemon_advance(d);
}

static void
fence_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	heartbeat_fence(d->hb, daemon_cfg(d)->lease_ms);
}

static void
wake_cb(void *arg)
{
	struct daemon *d = arg;

	d->want_lease = true;
	daemon_advance(d);
}

static void
drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	log_notice("shutdown_timeout passed: killing %d handler(s); their jobs go back to ready",
	    d->nrunning);
	d->kill_due = true;
	daemon_advance(d);
}

static void
flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	d->flush_expired = true;
	daemon_advance(d);
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	sd_notifyf("WATCHDOG=1");
}

static void
status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	if (d->status_dirty)
		send_status(d);
}

static void
apply_timers(struct daemon *d)
{
	struct cfg *c = daemon_cfg(d);

	ev_timer_set(&d->poll, ms_to_s(c->poll_interval_ms), ms_to_s(c->poll_interval_ms));
	ev_timer_set(&d->heartbeat, ms_to_s(c->heartbeat_ms), ms_to_s(c->heartbeat_ms));
	ev_timer_set(&d->fence, ms_to_s(c->heartbeat_ms) / 4, ms_to_s(c->heartbeat_ms) / 4);
	ev_timer_again(d->loop, &d->fence);
	if (d->state <= D_RUNNING)
		ev_timer_again(d->loop, &d->poll);
	ev_timer_again(d->loop, &d->heartbeat);
}

/* ---- signals ---- */

static void
sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	if (++d->signals > 1 && (d->state == D_DRAINING || d->state == D_KILLING)) {
		log_notice("signalled again: killing %d handler(s)%s", d->nrunning,
		    d->state == D_KILLING ? " with SIGKILL" : "");
		if (d->state == D_KILLING)
			daemon_kill_all(d, true);
		d->kill_due = true;
	}
	daemon_status_changed(d);
	daemon_advance(d);
}

static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char *errors = NULL, diff[1024];
	struct cfg *c;

	(void)loop;
	(void)revents;
	sd_notifyf("RELOADING=1");
	c = cfg_load(d->path, &errors);
	if (!c) {
		/* One log line per error; the old config stays in force. */
		for (char *line = strtok(errors, "\n"); line; line = strtok(NULL, "\n"))
			log_errx("reload: %s", line);
		log_errx("reload failed: keeping the configuration in force");
		free(errors);
	} else {
		struct conf *old = d->conf;
		if (cfg_unreloadable_changes(old->cfg, c, diff, sizeof diff) > 0)
			log_warnx("reload: %s (restart to apply)", diff);
		/* database and name need a restart; keep the ones in force. */
		free(c->database);
		c->database = xstrdup(old->cfg->database);
		free(c->name);
		c->name = xstrdup(old->cfg->name);
		d->conf = conf_new(c);
		conf_unref(old);
		declare_types(c);
		apply_timers(d);
		db_set_timing(d->db, &(struct db_timing){c->heartbeat_ms, c->lease_ms});
		log_notice("configuration reloaded: queues %d, handlers %d, concurrency %d",
		    c->nqueues, c->nhandlers, c->concurrency);
	}
	sd_notifyf("READY=1");
	d->want_lease = true;
	schedule_poke(d->sched); /* the queues may have changed */
	daemon_status_changed(d);
	daemon_advance(d);
}

/* ---- start and stop ---- */

static void
start_watchers(struct daemon *d)
{
	uint64_t wd;

	ev_signal_init(&d->sigterm, sigterm_cb, SIGTERM);
	ev_signal_init(&d->sigint, sigterm_cb, SIGINT);
	ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	ev_signal_start(d->loop, &d->sighup);

	ev_init(&d->poll, poll_cb);
	ev_init(&d->heartbeat, heartbeat_cb);
	ev_init(&d->fence, fence_cb);
	d->fence.data = d;
	ev_init(&d->drain, drain_cb);
	ev_init(&d->flush, flush_cb);
	d->poll.data = d->heartbeat.data = d->drain.data = d->flush.data = d;
	wake_init(&d->wake, d->loop, wake_cb, d);
	apply_timers(d);
	ev_timer_init(&d->status, status_cb, 1., 1.);
	d->status.data = d;
	ev_timer_start(d->loop, &d->status);
	if ((wd = sd_watchdog_usec()) > 0) {
		/* Pinged from the loop itself: a wedged loop stops the pings. */
		ev_timer_init(&d->watchdog, watchdog_cb, (double)wd / 2e6, (double)wd / 2e6);
		d->watchdog.data = d;
		ev_timer_start(d->loop, &d->watchdog);
		sd_notifyf("WATCHDOG=1");
	}
}

int
daemon_main(const char *path, struct cfg *cfg)
{
	static const struct db_events events = {db_up, db_down, db_notify};
	static const struct exchange_hooks ex_hooks = {daemon_on_written, daemon_on_leased, daemon_on_exchange_over};
	static const struct heartbeat_hooks hb_hooks = {daemon_on_lease_lost, daemon_on_fenced, on_heartbeat_over};
	struct daemon *d = xcalloc(1, sizeof *d);
	struct job *j;
	int status;

	d->loop = EV_DEFAULT;
	ev_set_userdata(d->loop, d);
	d->path = path;
	d->conf = conf_new(cfg);
	d->state = D_STARTING;
	TAILQ_INIT(&d->jobs);
	heartbeat_identity(&d->id, cfg);
	/* Asked for and not possible: better no daemon than a blind one. */
	if (*cfg->metrics_listen && !(d->http = metrics_http_start(d->loop, cfg->metrics_listen))) {
		conf_unref(d->conf);
		ev_loop_destroy(d->loop);
		free(d);
		return 1;
	}
	declare_types(cfg);

	/* A handler that stops reading its stdin must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	strays_init();
	sd_init();
	start_watchers(d);
	if (cfg->nhandlers == 0)
		log_warnx("%s: no [handler.TYPE] section: this daemon will lease nothing", path);
	log_info("pgjobd %s starting: worker %s, config %s", PGJOBD_VERSION, d->id.name, path);

	d->db = db_new(d->loop, cfg->database, stmt_session,
	    &(struct db_timing){.heartbeat_ms = cfg->heartbeat_ms, .lease_ms = cfg->lease_ms}, &events, d);
	d->ex = exchange_new(d->loop, d->db, &d->jobs, &ex_hooks, d);
	d->hb = heartbeat_new(d->db, &d->jobs, &hb_hooks, d);
	d->rescue = rescue_new(d->db, on_rescue_over, d);
	d->maintain = maintain_new(d->db, on_maintain_over, d);
	d->sched = schedule_new(d->loop, d->db, on_schedule_due, d);
	ev_run(d->loop, 0);

	/* Stopped: the loop only ends with no handler running.  Callbacks
	 * that db_free runs (with NULL) find the daemon done. */
	d->state = D_DONE;
	strays_finish(d->loop, daemon_cfg(d)->kill_grace_ms);
	db_free(d->db);
	exchange_free(d->ex);
	heartbeat_free(d->hb);
	rescue_free(d->rescue);
	maintain_free(d->maintain);
	schedule_free(d->sched);
	metrics_http_stop(d->http);
	metrics_reset();
	wake_stop(&d->wake);
	while ((j = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, j, link);
		job_free(j);
	}
	log_notice("stopped: done %" PRIu64 ", retried %" PRIu64 ", dead %" PRIu64
		   ", lost %" PRIu64 ", cancelled %" PRIu64,
	    d->n_done, d->n_retry, d->n_dead, d->n_lost, d->n_cancelled);
	sd_close();
	status = d->exit_status;
	conf_unref(d->conf);
	ev_loop_destroy(d->loop);
	free(d);
	return status;
}
