/* outcome: see outcome.h. */
#include "outcome.h"

#include <stdio.h>
#include <string.h>

const char *const outcome_names[OUTCOME_KINDS] = {
	[OUTCOME_DONE] = "done",
	[OUTCOME_RETRY] = "retry",
	[OUTCOME_DEAD] = "dead",
	[OUTCOME_RELEASE] = "release",
};

int64_t
outcome_backoff_ms(const struct cfg_handler *h, int attempt, double jitter)
{
	double ms = (double)h->backoff_ms;

	for (int i = 1; i < attempt && ms < (double)h->backoff_max_ms; i++)
		ms *= 2;
	if (ms > (double)h->backoff_max_ms)
		ms = (double)h->backoff_max_ms;
	return (int64_t)(ms * (0.9 + 0.2 * jitter));
}

/* Retry while attempts remain, else dead. */
static void
fail(const struct outcome_ctx *c, struct outcome *o)
{
	if (c->attempt < c->max_attempts) {
		o->kind = OUTCOME_RETRY;
		o->delay_ms = outcome_backoff_ms(c->h, c->attempt, c->jitter);
	} else {
		o->kind = OUTCOME_DEAD;
	}
}

void
outcome_failed(const struct outcome_ctx *c, const char *reason, struct outcome *o)
{
	*o = (struct outcome){0};
	snprintf(o->reason, sizeof o->reason, "%s", reason);
	fail(c, o);
}

void
outcome_unusable(const char *reason, struct outcome *o)
{
	*o = (struct outcome){.kind = OUTCOME_DEAD};
	snprintf(o->reason, sizeof o->reason, "%s", reason);
}

void
outcome_of_exit(const struct spawn_result *r, const struct outcome_ctx *c, struct outcome *o)
{
	bool ok = r->exited && r->exit_code == 0;

	*o = (struct outcome){
	    .has_exit = r->exited,
	    .exit_code = r->exit_code,
	    .signal = r->exited ? 0 : r->signal,
	};
	if (c->shutdown && !ok) {
		o->kind = OUTCOME_RELEASE;
	} else if (r->killed == SPAWN_KILL_TIMEOUT) {
		snprintf(o->reason, sizeof o->reason, "timed out after %.3fs",
		    (double)c->timeout_ms / 1000.0);
		fail(c, o);
	} else if (ok) {
		o->kind = OUTCOME_DONE;
	} else if (r->exited && cfg_dead_exit(c->h, r->exit_code)) {
		snprintf(o->reason, sizeof o->reason, "exit code %d is in dead_exit_codes",
		    r->exit_code);
		o->kind = OUTCOME_DEAD;
	} else {
		if (r->exited)
			snprintf(o->reason, sizeof o->reason, "exit code %d", r->exit_code);
		else
			snprintf(o->reason, sizeof o->reason, "killed by signal %d (%s)", r->signal,
			    strsignal(r->signal));
		fail(c, o);
	}
	if (r->killed == SPAWN_KILL_STRAYS) {
		size_t n = strlen(o->reason);
		snprintf(o->reason + n, sizeof o->reason - n, "%sleft processes behind (killed)",
		    n ? "; " : "");
	}
}
