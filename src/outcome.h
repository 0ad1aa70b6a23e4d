/*
 * outcome: what a finished handler means for its job (CONTRACT section 6),
 * as pure policy: a finished process plus its handler and attempt in; the
 * outcome, the retry delay and the reason out.  No I/O, no clock, no
 * allocation: the jitter is an argument, so the policy can be tested.
 */
#ifndef PGJOBD_OUTCOME_H
#define PGJOBD_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "spawn.h"

enum outcome_kind {
	OUTCOME_DONE,    /* exit 0 */
	OUTCOME_RETRY,   /* failed, attempts remain: ready again after delay_ms */
	OUTCOME_DEAD,    /* failed for good */
	OUTCOME_RELEASE, /* handed back at shutdown: the attempt is not counted */
	OUTCOME_KINDS
};

/* The names the exchange statement reads ("done", "retry", ...). */
extern const char *const outcome_names[OUTCOME_KINDS];

struct outcome {
	enum outcome_kind kind;
	int64_t delay_ms;  /* OUTCOME_RETRY */
	bool has_exit;     /* exit_code is valid */
	int exit_code;
	int signal;        /* 0: none */
	char reason[256];  /* why it failed, for the attempt's error; may be "" */
};

/* Everything the policy looks at besides the process itself. */
struct outcome_ctx {
	const struct cfg_handler *h;
	int attempt;       /* 1-based */
	int max_attempts;
	int64_t timeout_ms;
	bool shutdown;     /* the daemon killed it to stop */
	double jitter;     /* in [0, 1]: where the backoff falls within +-10% */
};

/* The outcome of a handler that finished as R. */
void outcome_of_exit(const struct spawn_result *r, const struct outcome_ctx *c, struct outcome *o);
/* A failed attempt that never ran (cannot start, unusable payload args):
 * retry while attempts remain, else dead; REASON becomes o->reason. */
void outcome_failed(const struct outcome_ctx *c, const char *reason, struct outcome *o);
/* Payload that no attempt can use (its "args" are not strings): dead at
 * once, since retrying never makes bad data good. */
void outcome_unusable(const char *reason, struct outcome *o);
/* Retry n waits min(backoff_max, backoff * 2^(n-1)), +-10% jitter. */
int64_t outcome_backoff_ms(const struct cfg_handler *h, int attempt, double jitter);

#endif
