/*
 * job: one leased job's life in the daemon, from its lease row to its
 * outcome: its struct, the handler's argv and environment (CONTRACT
 * section 5), starting and killing the handler, and turning the finished
 * process into an outcome (outcome.h) with its result and error text.
 *
 * A job is in exactly one state; the daemon keeps every job it holds a
 * lease for on one list (struct jobq), whatever the state.
 */
#ifndef PGJOBD_JOB_H
#define PGJOBD_JOB_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "cfg.h"
#include "outcome.h"
#include "spawn.h"

/* A config and the jobs still running under it: a reload swaps in a new
 * one, and each job keeps the one it was leased with. */
struct conf {
	struct cfg *cfg;
	int refs;
};
struct conf *conf_new(struct cfg *cfg);
struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

enum job_state {
	JOB_RUNNING,  /* its handler is alive */
	JOB_FINISHED, /* outcome decided, waiting for the next exchange */
	JOB_WRITING,  /* outcome in flight in an exchange */
	JOB_STATES
};
extern const char *const job_state_names[JOB_STATES];

/* Why the daemon killed a handler.  CANCEL and LEASE_LOST mean the lease
 * is no longer ours: no outcome is written for it. */
enum job_kill { KILL_NONE, KILL_CANCEL, KILL_LEASE_LOST, KILL_SHUTDOWN };

/* A lease row of the exchange statement, as text; NULL columns are NULL. */
struct job_lease {
	int64_t id, token;
	const char *type, *queue, *payload;
	int attempt;
	const char *max_attempts; /* NULL: the handler's */
	const char *timeout_ms;   /* NULL: the handler's */
	int nargs;
	const char *args;         /* payload args, "\n"-joined and escaped */
	const char *args_error;   /* why payload args are unusable */
	const char *idempotency_key; /* cron:NAME:SLOT for a schedule's job */
	double sent_at;           /* job_clock() when the lease was asked for */
	double pickup_delay_ms;   /* lease time minus run_at, the database's clock */
};

struct job {
	TAILQ_ENTRY(job) link;
	enum job_state state;
	int64_t id;
	int64_t token;
	char *type;
	char *queue;
	char *payload;
	int attempt;
	int max_attempts;
	int64_t timeout_ms;
	struct conf *conf;
	const struct cfg_handler *h;
	struct spawn *sp;
	char **argv;
	char **envp;
	char *args_error;    /* payload args unusable: why */
	enum job_kill kill;
	unsigned hb_gen;     /* heartbeat generation that last included it */
	/* job_clock() when the statement that last extended the lease (or
	 * granted it) was sent: the database's expiry is at least LEASE past
	 * this, so killing the handler LEASE past it fences us off in time,
	 * reachable database or not. */
	double lease_confirmed;
	struct outcome out;  /* JOB_FINISHED, JOB_WRITING */
	char *result;        /* stdout tail; NULL: keep the job's */
	char *error;         /* reason, then the stderr tail */
};
TAILQ_HEAD(jobq, job);

/* How a handler's end concerns the database. */
enum job_end {
	JOB_END_OUTCOME,   /* an outcome to write: the job is JOB_FINISHED */
	JOB_END_CANCELLED, /* cancel() recorded it; nothing to write */
	JOB_END_LOST,      /* the lease went to someone else; nothing to write */
};

/* A job for lease L, run with CONF's handler for its type (the exchange
 * leases only mapped types), which the job holds a reference to; its argv
 * and environment are built here. */
struct job *job_new(const struct job_lease *l, struct conf *conf);
void job_free(struct job *j);

/* Start the handler; CB runs once when it has finished.  Returns false when
 * it could not start (or its payload args are unusable): the job is then
 * JOB_FINISHED with its outcome, and CB never runs. */
bool job_start(struct job *j, struct ev_loop *loop, spawn_done_cb *cb, void *arg);
/* Signal the handler's group (SIGTERM, then SIGKILL; at once when NOW).
 * A cancel or a lost lease overrides a shutdown kill, not the reverse. */
void job_kill(struct job *j, enum job_kill why, bool now);
/* From the spawn's callback: the handler finished as R.  JITTER in [0, 1]
 * places a retry's backoff. */
enum job_end job_finish(struct job *j, const struct spawn_result *r, double jitter);
/* Hand the job back without running it (leased as a stop began). */
void job_release(struct job *j);
/* True while the lease is ours to extend and to write an outcome with. */
bool job_holds_lease(const struct job *j);
/* Seconds on the monotonic clock (a wall clock set back must not let a
 * lease outlive itself). */
double job_clock(void);

#endif
