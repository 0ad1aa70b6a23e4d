/* job: see job.h. */
#include "job.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#define HANDLER_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

const char *const job_state_names[JOB_STATES] = {
	[JOB_RUNNING] = "running",
	[JOB_FINISHED] = "finished",
	[JOB_WRITING] = "writing",
};

struct conf *
conf_new(struct cfg *cfg)
{
	struct conf *c = xcalloc(1, sizeof *c);

	c->cfg = cfg;
	c->refs = 1;
	return c;
}

struct conf *
conf_ref(struct conf *c)
{
	c->refs++;
	return c;
}

void
conf_unref(struct conf *c)
{
	if (c && --c->refs == 0) {
		cfg_free(c->cfg);
		free(c);
	}
}

static double
ms_to_s(int64_t ms)
{
	return (double)ms / 1000.0;
}

/* One log line per job event, naming id, type, attempt, outcome and
 * duration (CONTRACT section 7). */
static void
log_outcome(const struct job *j, const char *outcome, int64_t duration_ms, const char *detail)
{
	log_info("job %" PRId64 " type=%s queue=%s attempt=%d/%d outcome=%s duration=%.3fs%s%s",
	    j->id, j->type, j->queue, j->attempt, j->max_attempts, outcome, ms_to_s(duration_ms),
	    detail && *detail ? " " : "", detail ? detail : "");
}

/* The payload's args, as the exchange sends them: "\n"-joined, with "\\"
 * and "\n" escaped; appended to ARGV from index N on. */
static void
add_payload_args(char **argv, int n, int nargs, const char *args)
{
	const char *p = args ? args : "";

	for (int i = 0; i < nargs; i++) {
		struct buf a = {0};
		for (; *p && *p != '\n'; p++) {
			if (*p == '\\' && p[1] == 'n') {
				buf_add(&a, "\n", 1);
				p++;
			} else if (*p == '\\' && p[1] == '\\') {
				buf_add(&a, "\\", 1);
				p++;
			} else {
				buf_add(&a, p, 1);
			}
		}
		if (*p == '\n')
			p++;
		argv[n++] = buf_take(&a);
	}
}

/*
 * A schedule's job carries its slot in its idempotency key,
 * cron:NAME:2026-12-01T02:30:00Z (pgjobd._slot_key in
 * sql/005_schedules.sql; names have no ':').  Adds PGJOBD_SCHEDULE and
 * PGJOBD_SCHEDULED_AT to ENVP from N on for such a key; returns the new N.
 */
#define SLOT_LEN 20 /* 2026-12-01T02:30:00Z */
static int
add_schedule_env(char **envp, int n, const char *key)
{
	size_t len = key ? strlen(key) : 0;
	const char *slot;

	int name_len;

	if (len < 5 + 1 + 1 + SLOT_LEN || strncmp(key, "cron:", 5))
		return n;
	slot = key + len - SLOT_LEN;
	name_len = (int)(slot - 1 - (key + 5));
	if (slot[-1] != ':' || slot[4] != '-' || slot[10] != 'T' || slot[19] != 'Z' ||
	    memchr(key + 5, ':', (size_t)name_len))
		return n;
	envp[n++] = xasprintf("PGJOBD_SCHEDULE=%.*s", name_len, key + 5);
	envp[n++] = xasprintf("PGJOBD_SCHEDULED_AT=%s", slot);
	return n;
}

/* The handler's argv and environment (CONTRACT section 5). */
static void
prepare(struct job *j, int nargs, const char *args, const char *key)
{
	const struct cfg_handler *h = j->h;
	int n = 0, ne = 0;
	bool user_path = false;

	if (!h->args_from_payload)
		nargs = 0;
	while (h->argv[n])
		n++;
	j->argv = xcalloc((size_t)(n + nargs + 1), sizeof *j->argv);
	for (int i = 0; i < n; i++)
		j->argv[i] = xstrdup(h->argv[i]);
	add_payload_args(j->argv, n, nargs, args);

	while (h->environment[ne])
		ne++;
	j->envp = xcalloc((size_t)ne + 9, sizeof *j->envp);
	n = 0;
	for (int i = 0; i < ne; i++) {
		if (!strncmp(h->environment[i], "PATH=", 5))
			user_path = true;
		j->envp[n++] = xstrdup(h->environment[i]);
	}
	if (!user_path)
		j->envp[n++] = xstrdup(HANDLER_PATH);
	j->envp[n++] = xasprintf("PGJOBD_JOB_ID=%" PRId64, j->id);
	j->envp[n++] = xasprintf("PGJOBD_JOB_TYPE=%s", j->type);
	j->envp[n++] = xasprintf("PGJOBD_QUEUE=%s", j->queue);
	j->envp[n++] = xasprintf("PGJOBD_ATTEMPT=%d", j->attempt);
	j->envp[n++] = xasprintf("PGJOBD_MAX_ATTEMPTS=%d", j->max_attempts);
	add_schedule_env(j->envp, n, key);
}

struct job *
job_new(const struct job_lease *l, struct conf *conf)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->state = JOB_RUNNING;
	j->id = l->id;
	j->token = l->token;
	j->type = xstrdup(l->type);
	j->queue = xstrdup(l->queue);
	j->payload = xstrdup(l->payload);
	j->attempt = l->attempt;
	j->lease_confirmed = l->sent_at;
	j->conf = conf_ref(conf);
	j->h = cfg_handler(conf->cfg, j->type);
	j->max_attempts = l->max_attempts ? atoi(l->max_attempts) : j->h->max_attempts;
	j->timeout_ms = l->timeout_ms ? strtoll(l->timeout_ms, NULL, 10) : j->h->timeout_ms;
	if (l->args_error && j->h->args_from_payload)
		j->args_error = xstrdup(l->args_error);
	prepare(j, l->nargs, l->args, l->idempotency_key);
	return j;
}

void
job_free(struct job *j)
{
	free(j->type);
	free(j->queue);
	free(j->payload);
	free(j->args_error);
	cfg_free_words(j->argv);
	cfg_free_words(j->envp);
	free(j->result);
	free(j->error);
	conf_unref(j->conf);
	free(j);
}

static struct outcome_ctx
ctx_of(const struct job *j, double jitter)
{
	return (struct outcome_ctx){
	    .h = j->h,
	    .attempt = j->attempt,
	    .max_attempts = j->max_attempts,
	    .timeout_ms = j->timeout_ms,
	    .shutdown = j->kill == KILL_SHUTDOWN,
	    .jitter = jitter,
	};
}

bool
job_start(struct job *j, struct ev_loop *loop, spawn_done_cb *cb, void *arg)
{
	struct spawn_spec spec;
	int err = 0;

	if (j->args_error) {
		outcome_unusable(j->args_error, &j->out);
		j->error = xstrdup(j->args_error);
		j->state = JOB_FINISHED;
		log_outcome(j, outcome_names[j->out.kind], 0, j->args_error);
		return false;
	}
	spec = (struct spawn_spec){
	    .argv = j->argv,
	    .envp = j->envp,
	    .cwd = j->h->working_directory,
	    .input = j->payload,
	    .input_len = strlen(j->payload),
	    .output_limit = j->conf->cfg->output_limit,
	    .timeout_ms = j->timeout_ms,
	    .kill_grace_ms = j->conf->cfg->kill_grace_ms,
	};
	j->sp = spawn_start(loop, &spec, cb, arg, &err);
	if (!j->sp) {
		char msg[512];
		struct outcome_ctx c = ctx_of(j, (double)random() / RAND_MAX);
		snprintf(msg, sizeof msg, "cannot start %s: %s", j->argv[0], strerror(err));
		outcome_failed(&c, msg, &j->out);
		j->error = xstrdup(msg);
		j->state = JOB_FINISHED;
		log_outcome(j, outcome_names[j->out.kind], 0, msg);
		return false;
	}
	log_debug("job %" PRId64 " type=%s attempt=%d/%d started pid=%d", j->id, j->type,
	    j->attempt, j->max_attempts, (int)spawn_pid(j->sp));
	return true;
}

void
job_kill(struct job *j, enum job_kill why, bool now)
{
	if (j->kill == KILL_NONE || why == KILL_CANCEL || why == KILL_LEASE_LOST)
		j->kill = why;
	if (j->sp)
		spawn_kill(j->sp, now);
}

void
job_release(struct job *j)
{
	j->out = (struct outcome){.kind = OUTCOME_RELEASE};
	j->state = JOB_FINISHED;
}

double
job_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool
job_holds_lease(const struct job *j)
{
	return j->kill != KILL_CANCEL && j->kill != KILL_LEASE_LOST;
}

enum job_end
job_finish(struct job *j, const struct spawn_result *r, double jitter)
{
	struct outcome_ctx c = ctx_of(j, jitter);
	char detail[448];
	struct buf err = {0};
	size_t n;

	j->sp = NULL;
	if (r->exited)
		snprintf(detail, sizeof detail, "exit=%d", r->exit_code);
	else
		snprintf(detail, sizeof detail, "signal=%d", r->signal);
	if (r->out_total > r->out_len || r->err_total > r->err_len) {
		n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " output=%" PRIu64 "+%" PRIu64 "B(tail kept)",
		    r->out_total, r->err_total);
	}
	if (!job_holds_lease(j)) {
		/* cancel() recorded it; a lost lease belongs to someone else. */
		bool cancelled = j->kill == KILL_CANCEL;
		log_outcome(j, cancelled ? "cancelled" : "lost", r->duration_ms,
		    cancelled ? "(handler killed)" : "(lease gone; handler killed)");
		return cancelled ? JOB_END_CANCELLED : JOB_END_LOST;
	}

	outcome_of_exit(r, &c, &j->out);
	j->state = JOB_FINISHED;
	j->result = xstrdup(r->out);
	/* The attempt's error: why it failed, then the tail of stderr. */
	if (*j->out.reason) {
		buf_add(&err, j->out.reason, strlen(j->out.reason));
		if (r->err_len)
			buf_add(&err, "\n", 1);
	}
	buf_add(&err, r->err, r->err_len);
	j->error = buf_take(&err);
	if (j->out.kind == OUTCOME_RETRY) {
		n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " retry_in=%.3fs", ms_to_s(j->out.delay_ms));
	}
	/* exit= and signal= already say the plain reasons. */
	if (*j->out.reason && (r->killed != SPAWN_KILL_NONE || j->out.kind == OUTCOME_DEAD)) {
		n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " (%s)", j->out.reason);
	}
	log_outcome(j, outcome_names[j->out.kind], r->duration_ms, detail);
	return JOB_END_OUTCOME;
}
