/*
 * daemon_priv: what daemon.c and daemon_jobs.c share, and nothing else
 * includes: the daemon's state and its one dispatch.
 */
#ifndef PGJOBD_DAEMON_PRIV_H
#define PGJOBD_DAEMON_PRIV_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "exchange.h"
#include "heartbeat.h"
#include "job.h"
#include "maintain.h"
#include "rescue.h"
#include "wake.h"

enum dstate {
	D_STARTING,      /* not yet connected to a database with our schema */
	D_RUNNING,       /* leasing and running */
	D_DRAINING,      /* stopped leasing; handlers get shutdown_timeout */
	D_KILLING,       /* handlers are being killed */
	D_FLUSHING,      /* no handler left; writing the last outcomes */
	D_DEREGISTERING, /* removing the worker row */
	D_DONE,          /* the loop ends */
	D_STATES
};

enum dereg_state { DEREG_NOT_SENT, DEREG_IN_FLIGHT, DEREG_DONE };

struct daemon {
	struct ev_loop *loop;
	const char *path;
	struct conf *conf;   /* in force; jobs keep the one they were leased with */
	struct worker_id id;
	struct db *db;
	struct exchange *ex;
	struct heartbeat *hb;
	struct rescue *rescue;
	struct maintain *maintain;
	struct metrics_http *http; /* NULL: metrics_listen is off */
	struct schedule *sched;
	enum dstate state;
	enum dereg_state dereg;
	int exit_status;
	struct jobq jobs;    /* every job we hold a lease for, in any state */
	int nrunning;        /* of them JOB_RUNNING */

	/* Facts advance() reads; events set them. */
	bool schema_ok;      /* connected once to a schema we can use */
	int signals;         /* SIGTERM/SIGINT received */
	bool kill_due;       /* shutdown_timeout passed, or signalled again */
	bool flush_expired;  /* unwritten outcomes waited long enough */
	bool want_lease;     /* a reason to lease came up since the last exchange */
	bool want_rescue;    /* the poll ticked, or we (re)connected */
	bool want_maintain;  /* the poll ticked, we (re)connected, or a round was full */
	bool want_heartbeat; /* the heartbeat ticked, or we (re)connected */

	bool status_dirty;
	uint64_t n_done, n_retry, n_dead, n_lost, n_cancelled;
	ev_timer poll, heartbeat, fence, watchdog, status, drain, flush;
	struct wake wake;
	ev_signal sigterm, sigint, sighup;
};

/* daemon.c: the one dispatch (see daemon.h), the config in force, and a
 * change the next STATUS= line should show. */
void daemon_advance(struct daemon *d);
struct cfg *daemon_cfg(struct daemon *d);
void daemon_status_changed(struct daemon *d);

/* daemon_jobs.c: the jobs it holds, and the hooks of the exchange and the
 * heartbeat that concern them. */
int daemon_count_jobs(struct daemon *d, enum job_state state);
int daemon_unwritten(struct daemon *d);
int daemon_running_of_type(struct daemon *d, const char *type);
struct job *daemon_find_running(struct daemon *d, int64_t id);
void daemon_kill_all(struct daemon *d, bool now);
void daemon_on_leased(void *arg, const struct job_lease *l, struct conf *conf);
void daemon_on_written(void *arg, struct job *j, bool accepted);
void daemon_on_exchange_over(void *arg, bool full);
void daemon_on_lease_lost(void *arg, struct job *j);
void daemon_on_fenced(void *arg, struct job *j, double age);

#endif
