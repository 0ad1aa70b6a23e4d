/* daemon: see daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "sdnotify.h"
#include "spawn.h"
#include "stmts.h"
#include "xmalloc.h"

#define CHANNEL_ENQUEUE "pgjobd_enqueue"
#define CHANNEL_CANCEL "pgjobd_cancel"
#define HANDLER_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define RETRY_WRITE_SECONDS 1.0  /* after a statement error, before trying again */
#define FLUSH_TIMEOUT_MIN 5.0    /* at stop: how long unwritten outcomes may wait */
#define EXCHANGE_MAX_BYTES (8 << 20) /* outcomes JSON per statement, about */
#define WAKES 64                 /* retry times remembered; the poll finds the rest */
#define WAKE_SLACK 0.02          /* seconds past a retry's run_at before leasing */

/* A config and the jobs still running under it. */
struct conf {
	struct cfg *cfg;
	int refs;
};

enum kill_why { KILL_NONE, KILL_CANCEL, KILL_LEASE_LOST, KILL_SHUTDOWN };

struct job {
	TAILQ_ENTRY(job) link;
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
	enum kill_why kill;
	unsigned hb_gen;     /* heartbeat generation that last included it */
	/* The outcome, once finished. */
	const char *outcome; /* done, retry, dead, release */
	int64_t delay_ms;
	bool has_exit;
	int exit_code;
	int signal;
	char *result;
	char *error;
};
TAILQ_HEAD(jobq, job);

enum dstate {
	D_RUNNING,  /* leasing and running */
	D_DRAINING, /* stopped leasing; handlers get shutdown_timeout */
	D_KILLING,  /* handlers are being killed */
	D_FLUSHING, /* no handler left; writing outcomes, deregistering */
};

struct daemon {
	struct ev_loop *loop;
	const char *path;
	struct conf *conf;
	char name[320];
	char host[256];
	double started_at;
	struct db *db;
	enum dstate state;
	int exit_status;
	struct jobq running;  /* handlers alive */
	struct jobq finished; /* outcome not yet sent */
	struct jobq writing;  /* outcome in flight */
	int nrunning;
	bool exchanging;      /* stmt_exchange or SQL_OUTCOMES in flight */
	bool exchange_again;  /* something came up while it was */
	int lease_limit;      /* jobs it asked for (0: outcomes only) */
	struct conf *lease_conf; /* the config it leased for */
	bool rescuing, hb_inflight, deregistered, schema_checked;
	unsigned hb_gen;
	int signals;          /* SIGTERM/SIGINT received */
	bool status_dirty;
	uint64_t n_done, n_retry, n_dead, n_lost, n_cancelled;
	ev_timer poll, heartbeat, watchdog, status, drain, flush, write_retry;
	ev_timer wake;        /* lease when the next retry we scheduled is due */
	double wakes[WAKES];  /* those retries' due times (ev_time), ascending */
	int nwakes;
	ev_signal sigterm, sigint, sighup;
};

static void exchange(struct daemon *d);
static void check_stopped(struct daemon *d);

/* ---- small helpers ---- */

static void
conf_unref(struct conf *c)
{
	if (c && --c->refs == 0) {
		cfg_free(c->cfg);
		free(c);
	}
}

static struct cfg *
cur(struct daemon *d)
{
	return d->conf->cfg;
}

static void
job_free(struct job *j)
{
	free(j->type);
	free(j->queue);
	free(j->payload);
	cfg_free_words(j->argv);
	cfg_free_words(j->envp);
	free(j->result);
	free(j->error);
	conf_unref(j->conf);
	free(j);
}

static void
update_status(struct daemon *d)
{
	d->status_dirty = true;
}

static void
send_status(struct daemon *d)
{
	const char *what = d->state == D_RUNNING ? "" : d->state == D_DRAINING ? "draining; " : "stopping; ";

	sd_notifyf("STATUS=%s%srunning %d/%d; done %" PRIu64 ", retried %" PRIu64 ", dead %" PRIu64
		   ", lost %" PRIu64 ", cancelled %" PRIu64,
	    db_is_up(d->db) ? "" : "database unavailable; ", what, d->nrunning, cur(d)->concurrency,
	    d->n_done, d->n_retry, d->n_dead, d->n_lost, d->n_cancelled);
	d->status_dirty = false;
}

/* A statement's error on one line (it may hold DETAIL/CONTEXT lines). */
static const char *
pq_error(const PGresult *res, char *buf, size_t len)
{
	return log_oneline(buf, len, PQresultErrorMessage(res));
}

static double
ms_to_s(int64_t ms)
{
	return (double)ms / 1000.0;
}

/* ---- outcomes ---- */

/* Retry n waits min(backoff_max, backoff * 2^(n-1)), +-10% jitter. */
static int64_t
backoff_ms(const struct cfg_handler *h, int attempt)
{
	double ms = (double)h->backoff_ms;
	double jitter = 0.9 + 0.2 * ((double)random() / RAND_MAX);

	for (int i = 1; i < attempt && ms < (double)h->backoff_max_ms; i++)
		ms *= 2;
	if (ms > (double)h->backoff_max_ms)
		ms = (double)h->backoff_max_ms;
	return (int64_t)(ms * jitter);
}

static void
log_outcome(const struct job *j, const char *outcome, int64_t duration_ms, const char *detail)
{
	log_info("job %" PRId64 " type=%s queue=%s attempt=%d/%d outcome=%s duration=%.3fs%s%s",
	    j->id, j->type, j->queue, j->attempt, j->max_attempts, outcome, ms_to_s(duration_ms),
	    detail && *detail ? " " : "", detail ? detail : "");
}

/* A failed attempt: retry while attempts remain, else dead. */
static void
fail_job(struct job *j)
{
	if (j->attempt < j->max_attempts) {
		j->outcome = "retry";
		j->delay_ms = backoff_ms(j->h, j->attempt);
	} else {
		j->outcome = "dead";
	}
}

/* Arm the wake timer for the earliest remembered retry. */
static void
arm_wake(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->wake);
	if (d->nwakes == 0)
		return;
	ev_timer_set(&d->wake, d->wakes[0] > ev_time() ? d->wakes[0] - ev_time() : 0., 0.);
	ev_timer_start(d->loop, &d->wake);
}

/*
 * Retries are due at times we know: lease then instead of at the next poll.
 * Called when the outcome is accepted, so that the database's run_at
 * (now() + delay at that write) is already behind the wake-up.  Jobs
 * scheduled by others are found by the poll.
 */
static void
wake_at(struct daemon *d, int64_t delay_ms)
{
	double at = ev_time() + ms_to_s(delay_ms) + WAKE_SLACK;
	int i;

	if (d->nwakes == WAKES) {
		if (at >= d->wakes[WAKES - 1])
			return;
		d->nwakes--; /* forget the latest; the poll will find it */
	}
	for (i = d->nwakes; i > 0 && d->wakes[i - 1] > at; i--)
		d->wakes[i] = d->wakes[i - 1];
	d->wakes[i] = at;
	d->nwakes++;
	arm_wake(d);
}

static void
wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	int n = 0;

	(void)loop;
	(void)revents;
	while (n < d->nwakes && d->wakes[n] <= ev_time())
		n++;
	memmove(d->wakes, d->wakes + n, (size_t)(d->nwakes - n) * sizeof d->wakes[0]);
	d->nwakes -= n;
	arm_wake(d);
	exchange(d);
}

static void
count_outcome(struct daemon *d, const char *outcome)
{
	if (!strcmp(outcome, "done"))
		d->n_done++;
	else if (!strcmp(outcome, "retry"))
		d->n_retry++;
	else if (!strcmp(outcome, "dead"))
		d->n_dead++;
	update_status(d);
}

/* Queue J's outcome for the next exchange. */
static void
finish(struct daemon *d, struct job *j)
{
	TAILQ_INSERT_TAIL(&d->finished, j, link);
}

static void
spawn_done(const struct spawn_result *r, void *arg)
{
	struct job *j = arg;
	struct daemon *d = ev_userdata(EV_DEFAULT);
	char reason[256], detail[448];
	struct buf err = {0};

	j->sp = NULL;
	TAILQ_REMOVE(&d->running, j, link);
	d->nrunning--;
	update_status(d);

	if (r->exited)
		snprintf(detail, sizeof detail, "exit=%d", r->exit_code);
	else
		snprintf(detail, sizeof detail, "signal=%d", r->signal);
	if (r->out_total > r->out_len || r->err_total > r->err_len) {
		size_t n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " output=%" PRIu64 "+%" PRIu64 "B(tail kept)",
		    r->out_total, r->err_total);
	}

	if (j->kill == KILL_CANCEL || j->kill == KILL_LEASE_LOST) {
		/* cancel() recorded it; a lost lease belongs to someone else. */
		if (j->kill == KILL_CANCEL)
			d->n_cancelled++;
		else
			d->n_lost++;
		log_outcome(j, j->kill == KILL_CANCEL ? "cancelled" : "lost", r->duration_ms,
		    j->kill == KILL_CANCEL ? "(handler killed)" : "(lease gone; handler killed)");
		job_free(j);
		exchange(d);
		check_stopped(d);
		return;
	}

	j->has_exit = r->exited;
	j->exit_code = r->exit_code;
	j->signal = r->exited ? 0 : r->signal;
	j->result = xstrdup(r->out);
	reason[0] = '\0';
	if (j->kill == KILL_SHUTDOWN && !(r->exited && r->exit_code == 0)) {
		j->outcome = "release";
	} else if (r->killed == SPAWN_KILL_TIMEOUT) {
		snprintf(reason, sizeof reason, "timed out after %.3fs", ms_to_s(j->timeout_ms));
		fail_job(j);
	} else if (r->exited && r->exit_code == 0) {
		j->outcome = "done";
	} else if (r->exited && cfg_dead_exit(j->h, r->exit_code)) {
		snprintf(reason, sizeof reason, "exit code %d is in dead_exit_codes", r->exit_code);
		j->outcome = "dead";
	} else {
		if (r->exited)
			snprintf(reason, sizeof reason, "exit code %d", r->exit_code);
		else
			snprintf(reason, sizeof reason, "killed by signal %d (%s)", r->signal,
			    strsignal(r->signal));
		fail_job(j);
	}
	if (r->killed == SPAWN_KILL_STRAYS) {
		size_t n = strlen(reason);
		snprintf(reason + n, sizeof reason - n, "%sleft processes behind (killed)",
		    n ? "; " : "");
	}
	/* The attempt's error: why it failed, then the tail of stderr. */
	if (*reason) {
		buf_add(&err, reason, strlen(reason));
		if (r->err_len)
			buf_add(&err, "\n", 1);
	}
	buf_add(&err, r->err, r->err_len);
	j->error = err.p ? err.p : xstrdup("");
	if (!strcmp(j->outcome, "retry")) {
		size_t n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " retry_in=%.3fs", ms_to_s(j->delay_ms));
	}
	/* exit= and signal= already say the plain reasons. */
	if (*reason && (r->killed != SPAWN_KILL_NONE || !strcmp(j->outcome, "dead"))) {
		size_t n = strlen(detail);
		snprintf(detail + n, sizeof detail - n, " (%s)", reason);
	}
	log_outcome(j, j->outcome, r->duration_ms, detail);
	finish(d, j);
	exchange(d);
	check_stopped(d);
}

/* Build the handler's argv and environment (CONTRACT section 5). */
static void
job_prepare(struct job *j, int nargs, const char *args)
{
	const struct cfg_handler *h = j->h;
	int n = 0, ne = 0;
	bool user_path = false;

	while (h->argv[n])
		n++;
	j->argv = xcalloc((size_t)(n + nargs + 1), sizeof *j->argv);
	for (int i = 0; i < n; i++)
		j->argv[i] = xstrdup(h->argv[i]);
	if (h->args_from_payload && nargs > 0) {
		/* Unescape the "\\" and "\n" of stmt_exchange, split on newlines. */
		const char *p = args ? args : "";
		for (int i = 0; i < nargs; i++) {
			struct buf a = {0};
			buf_add(&a, "", 0);
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
			j->argv[n++] = a.p;
		}
	}

	while (h->environment[ne])
		ne++;
	j->envp = xcalloc((size_t)ne + 7, sizeof *j->envp);
	n = 0;
	for (int i = 0; i < ne; i++) {
		if (!strncmp(h->environment[i], "PATH=", 5))
			user_path = true;
		j->envp[n++] = xstrdup(h->environment[i]);
	}
	if (!user_path)
		j->envp[n++] = xstrdup(HANDLER_PATH);
	if (asprintf(&j->envp[n++], "PGJOBD_JOB_ID=%" PRId64, j->id) < 0 ||
	    asprintf(&j->envp[n++], "PGJOBD_JOB_TYPE=%s", j->type) < 0 ||
	    asprintf(&j->envp[n++], "PGJOBD_QUEUE=%s", j->queue) < 0 ||
	    asprintf(&j->envp[n++], "PGJOBD_ATTEMPT=%d", j->attempt) < 0 ||
	    asprintf(&j->envp[n++], "PGJOBD_MAX_ATTEMPTS=%d", j->max_attempts) < 0)
		fatal("out of memory");
}

static void
start_job(struct daemon *d, struct job *j, int nargs, const char *args, const char *args_error)
{
	struct spawn_spec spec;
	int err = 0;

	job_prepare(j, nargs, args);
	if (args_error && j->h->args_from_payload) {
		/* Bad data never gets better by retrying. */
		j->outcome = "dead";
		j->error = xstrdup(args_error);
		log_outcome(j, "dead", 0, args_error);
		finish(d, j);
		return;
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
	j->sp = spawn_start(d->loop, &spec, spawn_done, j, &err);
	if (!j->sp) {
		char msg[512];
		snprintf(msg, sizeof msg, "cannot start %s: %s", j->argv[0], strerror(err));
		j->error = xstrdup(msg);
		fail_job(j);
		log_outcome(j, j->outcome, 0, msg);
		finish(d, j);
		return;
	}
	TAILQ_INSERT_TAIL(&d->running, j, link);
	d->nrunning++;
	update_status(d);
	log_debug("job %" PRId64 " type=%s attempt=%d/%d started pid=%d", j->id, j->type,
	    j->attempt, j->max_attempts, (int)spawn_pid(j->sp));
}

/* Put the outcome batch back in front of the queue, in order. */
static void
requeue_writing(struct daemon *d)
{
	struct job *j;

	while ((j = TAILQ_LAST(&d->writing, jobq)) != NULL) {
		TAILQ_REMOVE(&d->writing, j, link);
		TAILQ_INSERT_HEAD(&d->finished, j, link);
	}
}

static int
running_of_type(struct daemon *d, const char *type)
{
	struct job *j;
	int n = 0;

	TAILQ_FOREACH(j, &d->running, link)
		if (!strcmp(j->type, type))
			n++;
	return n;
}

/* The outcomes of the batch in flight: accepted ('o' rows) or refused. */
static void
outcomes_written(struct daemon *d, PGresult *res)
{
	struct job *j;

	while ((j = TAILQ_FIRST(&d->writing)) != NULL) {
		bool accepted = false;
		for (int i = 0; i < PQntuples(res) && !accepted; i++)
			accepted = *PQgetvalue(res, i, 0) == 'o' &&
				   strtoll(PQgetvalue(res, i, 1), NULL, 10) == j->id;
		/* Counted once written: a refused outcome did not happen. */
		if (accepted) {
			count_outcome(d, j->outcome);
			if (!strcmp(j->outcome, "retry"))
				wake_at(d, j->delay_ms);
		} else {
			log_warnx("job %" PRId64 " outcome %s refused: its lease is no longer current "
				  "(expired and taken over, or cancelled)",
			    j->id, j->outcome);
		}
		TAILQ_REMOVE(&d->writing, j, link);
		job_free(j);
	}
}

/* The jobs leased ('l' rows), run with the config they were leased for;
 * returns how many. */
static int
jobs_leased(struct daemon *d, PGresult *res, struct conf *conf)
{
	int n = 0;

	for (int i = 0; i < PQntuples(res); i++) {
		struct job *j;

		if (*PQgetvalue(res, i, 0) != 'l')
			continue;
		n++;
		j = xcalloc(1, sizeof *j);
		j->id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		j->token = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		j->type = xstrdup(PQgetvalue(res, i, 3));
		j->queue = xstrdup(PQgetvalue(res, i, 4));
		j->attempt = atoi(PQgetvalue(res, i, 5));
		j->conf = conf;
		conf->refs++;
		j->h = cfg_handler(conf->cfg, j->type);
		j->max_attempts = PQgetisnull(res, i, 6) ? j->h->max_attempts : atoi(PQgetvalue(res, i, 6));
		j->timeout_ms = PQgetisnull(res, i, 7) ? j->h->timeout_ms
						       : strtoll(PQgetvalue(res, i, 7), NULL, 10);
		j->payload = xstrdup(PQgetvalue(res, i, 8));
		if (d->state != D_RUNNING) {
			/* Leased while a stop began: hand it straight back. */
			j->outcome = "release";
			TAILQ_INSERT_TAIL(&d->finished, j, link);
			continue;
		}
		start_job(d, j, atoi(PQgetvalue(res, i, 9)),
		    PQgetisnull(res, i, 10) ? NULL : PQgetvalue(res, i, 10),
		    PQgetisnull(res, i, 11) ? NULL : PQgetvalue(res, i, 11));
	}
	return n;
}

static void
exchange_done(void *arg, PGresult *res)
{
	struct daemon *d = arg;
	struct conf *conf = d->lease_conf;
	bool had_outcomes = !TAILQ_EMPTY(&d->writing);
	char msg[512];
	int leased;

	d->exchanging = false;
	d->lease_conf = NULL;
	if (!res) {
		/* Connection lost: maybe committed, maybe not.  Sending the
		 * outcomes again is safe: a repeat finds the token cleared and
		 * changes nothing.  A lease whose reply was lost expires. */
		requeue_writing(d);
		conf_unref(conf);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_errx("%s failed, will retry: %s",
		    had_outcomes ? "writing job outcomes" : "leasing jobs", pq_error(res, msg, sizeof msg));
		requeue_writing(d);
		conf_unref(conf);
		if (had_outcomes) {
			ev_timer_set(&d->write_retry, RETRY_WRITE_SECONDS, 0.);
			ev_timer_start(d->loop, &d->write_retry);
		}
		return;
	}
	outcomes_written(d, res);
	leased = conf ? jobs_leased(d, res, conf) : 0;
	conf_unref(conf);
	/* Again when outcomes finished meanwhile, when a NOTIFY came in while
	 * this was in flight, or after a full batch (more may be waiting); a
	 * short batch took all there was. */
	if (!TAILQ_EMPTY(&d->finished) || d->exchange_again ||
	    (d->lease_limit > 0 && leased >= d->lease_limit))
		exchange(d);
	check_stopped(d);
}

/*
 * The JSON array of the outcomes at the head of d->finished, up to about
 * EXCHANGE_MAX_BYTES (at least one); returns how many it holds, and in
 * *ALL whether that is all of them.
 */
static int
outcomes_json(struct daemon *d, struct buf *out, bool *all)
{
	struct job *j;
	int n = 0;

	buf_add(out, "[", 1);
	TAILQ_FOREACH(j, &d->finished, link) {
		if (n > 0 && out->len > EXCHANGE_MAX_BYTES)
			break;
		buf_printf(out, "%s{\"id\":%" PRId64 ",\"token\":%" PRId64 ",\"outcome\":\"%s\"",
		    n ? "," : "", j->id, j->token, j->outcome);
		buf_printf(out, ",\"delay_ms\":%" PRId64, j->delay_ms);
		if (j->has_exit)
			buf_printf(out, ",\"exit_code\":%d", j->exit_code);
		if (j->signal)
			buf_printf(out, ",\"signal\":%d", j->signal);
		if (j->result) {
			buf_add(out, ",\"result\":", 10);
			buf_json_string(out, j->result);
		}
		if (j->error && *j->error) {
			buf_add(out, ",\"error\":", 9);
			buf_json_string(out, j->error);
		}
		buf_add(out, "}", 1);
		n++;
	}
	buf_add(out, "]", 1);
	*all = j == NULL;
	return n;
}

/*
 * The one statement that changes jobs: the outcomes finished since the last
 * one, and a lease of as many jobs as there are free slots (per type within
 * its cap), in one transaction; outcomes alone when nothing may be leased
 * (stopping, or no slot free).  One at a time: what comes up meanwhile goes
 * into the next.
 */
static void
exchange(struct daemon *d)
{
	struct cfg *c = cur(d);
	int free_slots = c->concurrency - d->nrunning, ntypes = 0, nout;
	bool all;
	char **types, lease_ms[32], limit[32];
	struct buf out = {0}, tb = {0}, fb = {0}, qb = {0};
	struct job *j;
	const char *params[7];

	if (!db_is_up(d->db) || ev_is_active(&d->write_retry))
		return;
	if (d->exchanging || d->rescuing) {
		d->exchange_again = true;
		return;
	}
	d->exchange_again = false;
	types = xcalloc((size_t)c->nhandlers + 1, sizeof *types);
	buf_add(&fb, "{", 1);
	for (int i = 0; d->state == D_RUNNING && free_slots > 0 && i < c->nhandlers; i++) {
		const struct cfg_handler *h = &c->handlers[i];
		int n = free_slots;
		if (h->concurrency > 0 && h->concurrency - running_of_type(d, h->type) < n)
			n = h->concurrency - running_of_type(d, h->type);
		if (n <= 0)
			continue;
		buf_printf(&fb, "%s%d", ntypes ? "," : "", n);
		types[ntypes++] = h->type;
	}
	buf_add(&fb, "}", 1);

	nout = outcomes_json(d, &out, &all);
	if (!all)
		ntypes = 0; /* outcomes left behind: lease after them, next time */

	if (ntypes > 0) {
		buf_name_array(&tb, types, ntypes);
		buf_name_array(&qb, c->queues, c->nqueues);
		snprintf(limit, sizeof limit, "%d", free_slots);
		snprintf(lease_ms, sizeof lease_ms, "%" PRId64, c->lease_ms);
		params[0] = d->name;
		params[1] = qb.p;
		params[2] = tb.p;
		params[3] = fb.p;
		params[4] = limit;
		params[5] = lease_ms;
		params[6] = out.p;
		if (db_query(d->db, stmt_exchange, 7, params, exchange_done, d)) {
			d->exchanging = true;
			d->lease_limit = free_slots;
			d->lease_conf = d->conf;
			d->conf->refs++;
		}
	} else if (nout > 0) {
		snprintf(lease_ms, sizeof lease_ms, "%" PRId64, c->lease_ms);
		params[0] = d->name;
		params[1] = "{}";
		params[2] = "{}";
		params[3] = "{}";
		params[4] = "0";
		params[5] = lease_ms;
		params[6] = out.p;
		if (db_query(d->db, stmt_exchange, 7, params, exchange_done, d)) {
			d->exchanging = true;
			d->lease_limit = 0;
		}
	}
	/* What it carries is in flight now. */
	for (int i = 0; d->exchanging && i < nout; i++) {
		j = TAILQ_FIRST(&d->finished);
		TAILQ_REMOVE(&d->finished, j, link);
		TAILQ_INSERT_TAIL(&d->writing, j, link);
	}
	free(types);
	free(out.p);
	free(tb.p);
	free(fb.p);
	free(qb.p);
}

static void
write_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	exchange(w->data);
}

static void
rescue_done(void *arg, PGresult *res)
{
	struct daemon *d = arg;
	char msg[512];

	d->rescuing = false;
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
		log_errx("rescuing expired leases failed: %s", pq_error(res, msg, sizeof msg));
	else if (res)
		for (int i = 0; i < PQntuples(res); i++)
			log_notice("job %s type=%s attempt=%s outcome=lost: lease of worker %s "
				   "expired; job is %s",
			    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			    PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
	if (res)
		exchange(d);
}

/* Expired leases first, so that their jobs can be leased right after. */
static void
rescue(struct daemon *d)
{
	struct cfg *c = cur(d);
	struct buf qb = {0}, tb = {0}, mb = {0};
	char **types = xcalloc((size_t)c->nhandlers + 1, sizeof *types);
	const char *params[3];

	if (d->state != D_RUNNING || !db_is_up(d->db) || d->rescuing || c->nhandlers == 0) {
		free(types);
		return;
	}
	buf_add(&mb, "{", 1);
	for (int i = 0; i < c->nhandlers; i++) {
		types[i] = c->handlers[i].type;
		buf_printf(&mb, "%s%d", i ? "," : "", c->handlers[i].max_attempts);
	}
	buf_add(&mb, "}", 1);
	buf_name_array(&qb, c->queues, c->nqueues);
	buf_name_array(&tb, types, c->nhandlers);
	params[0] = qb.p;
	params[1] = tb.p;
	params[2] = mb.p;
	if (db_query(d->db, stmt_rescue, 3, params, rescue_done, d))
		d->rescuing = true;
	free(types);
	free(qb.p);
	free(tb.p);
	free(mb.p);
}

static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	rescue(d);
	exchange(d);
}

/* ---- heartbeats ---- */

static struct job *
find_job(struct jobq *q, int64_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, q, link)
		if (j->id == id)
			return j;
	return NULL;
}

static void
kill_job(struct job *j, enum kill_why why, bool now)
{
	if (j->kill == KILL_NONE || why == KILL_CANCEL || why == KILL_LEASE_LOST)
		j->kill = why;
	if (j->sp)
		spawn_kill(j->sp, now);
}

static void
heartbeat_done(void *arg, PGresult *res)
{
	struct daemon *d = arg;
	char msg[512];
	struct job *j;
	unsigned gen = d->hb_gen;

	d->hb_inflight = false;
	if (!res)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_errx("heartbeat failed: %s", pq_error(res, msg, sizeof msg));
		return;
	}
	/* A handler whose lease is gone is killed at once: the job has been
	 * cancelled, or has expired and may already run elsewhere. */
	TAILQ_FOREACH(j, &d->running, link) {
		bool held = false;
		if (j->hb_gen != gen || j->kill == KILL_CANCEL || j->kill == KILL_LEASE_LOST)
			continue;
		for (int i = 0; i < PQntuples(res) && !held; i++)
			held = strtoll(PQgetvalue(res, i, 0), NULL, 10) == j->id;
		if (!held) {
			log_warnx("job %" PRId64 " type=%s attempt=%d: lease lost, killing its handler",
			    j->id, j->type, j->attempt);
			kill_job(j, KILL_LEASE_LOST, false);
		}
	}
	check_stopped(d);
}

static void
add_leases(struct buf *ids, struct buf *tokens, struct jobq *q, unsigned gen)
{
	struct job *j;

	TAILQ_FOREACH(j, q, link) {
		if (j->kill == KILL_CANCEL || j->kill == KILL_LEASE_LOST)
			continue;
		j->hb_gen = gen;
		buf_printf(ids, "%s%" PRId64, ids->len > 1 ? "," : "", j->id);
		buf_printf(tokens, "%s%" PRId64, tokens->len > 1 ? "," : "", j->token);
	}
}

static void
heartbeat(struct daemon *d)
{
	struct cfg *c = cur(d);
	struct buf ids = {0}, tokens = {0}, qb = {0}, tb = {0};
	char lease_ms[32], pid[16], started[32], conc[16], running[16];
	char **types;
	const char *params[12];

	if (!db_is_up(d->db) || d->hb_inflight || d->deregistered)
		return;
	d->hb_gen++;
	buf_add(&ids, "{", 1);
	buf_add(&tokens, "{", 1);
	/* Finished jobs whose outcome is not yet written still hold a lease. */
	add_leases(&ids, &tokens, &d->running, d->hb_gen);
	add_leases(&ids, &tokens, &d->finished, d->hb_gen);
	add_leases(&ids, &tokens, &d->writing, d->hb_gen);
	buf_add(&ids, "}", 1);
	buf_add(&tokens, "}", 1);
	buf_name_array(&qb, c->queues, c->nqueues);
	snprintf(lease_ms, sizeof lease_ms, "%" PRId64, c->lease_ms);
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	snprintf(started, sizeof started, "%.6f", d->started_at);
	snprintf(conc, sizeof conc, "%d", c->concurrency);
	snprintf(running, sizeof running, "%d", d->nrunning);
	params[0] = ids.p;
	params[1] = tokens.p;
	params[2] = lease_ms;
	params[3] = d->name;
	params[4] = d->host;
	params[5] = pid;
	params[6] = started;
	params[7] = conc;
	params[8] = running;
	params[9] = qb.p;
	params[10] = PGJOBD_VERSION;
	types = xcalloc((size_t)c->nhandlers + 1, sizeof *types);
	for (int i = 0; i < c->nhandlers; i++)
		types[i] = c->handlers[i].type;
	buf_name_array(&tb, types, c->nhandlers);
	free(types);
	params[11] = tb.p;
	if (db_query(d->db, stmt_heartbeat, 12, params, heartbeat_done, d))
		d->hb_inflight = true;
	free(tb.p);
	free(ids.p);
	free(tokens.p);
	free(qb.p);
}

static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	heartbeat(w->data);
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
		if (!d->schema_checked)
			ev_break(d->loop, EVBREAK_ALL); /* at start: nothing runs yet */
		else /* downgraded under a running daemon: stop as on SIGTERM */
			raise(SIGTERM);
		return;
	}
	if (schema_version > need && !d->schema_checked)
		log_warnx("the database schema is at version %d, newer than this pgjobd's %d",
		    schema_version, need);
	if (!d->schema_checked) {
		d->schema_checked = true;
		log_notice("ready: worker %s, queues served: %d, handlers: %d, concurrency %d",
		    d->name, cur(d)->nqueues, cur(d)->nhandlers, cur(d)->concurrency);
		sd_notifyf("READY=1\nMAINPID=%d", (int)getpid());
	}
	update_status(d);
	heartbeat(d); /* registers the worker, re-checks leases after an outage */
	rescue(d);
	exchange(d);
	check_stopped(d);
}

static void
db_down(void *arg)
{
	/* Every statement in flight has had its callback, with NULL. */
	update_status(arg);
}

static void
db_notify(void *arg, const char *channel, const char *payload)
{
	struct daemon *d = arg;
	struct cfg *c = cur(d);

	if (!strcmp(channel, CHANNEL_CANCEL)) {
		struct job *j = find_job(&d->running, strtoll(payload, NULL, 10));
		if (j && j->kill != KILL_CANCEL) {
			log_notice("job %" PRId64 " type=%s attempt=%d: cancelled, killing its handler",
			    j->id, j->type, j->attempt);
			kill_job(j, KILL_CANCEL, false);
		}
		return;
	}
	for (int i = 0; i < c->nqueues; i++)
		if (!strcmp(payload, c->queues[i])) {
			exchange(d);
			return;
		}
}

/* ---- stopping ---- */

/* Stop once every outcome is written and the worker row is gone; with the
 * database away and nothing to write, there is nothing to wait for (the
 * worker row then stays behind, its last_seen showing when it stopped). */
static void
stop_loop_if_done(struct daemon *d)
{
	if (d->state != D_FLUSHING || !TAILQ_EMPTY(&d->finished) || !TAILQ_EMPTY(&d->writing))
		return;
	if (d->deregistered || !db_is_up(d->db))
		ev_break(d->loop, EVBREAK_ALL);
}

static void
deregister_done(void *arg, PGresult *res)
{
	struct daemon *d = arg;
	char msg[512];

	if (!res) {
		d->hb_inflight = false; /* lost: try again once reconnected */
		return;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("removing the worker row failed: %s", pq_error(res, msg, sizeof msg));
	d->deregistered = true;
	stop_loop_if_done(d);
}

static void
check_stopped(struct daemon *d)
{
	const char *params[1] = {d->name};

	if ((d->state != D_DRAINING && d->state != D_KILLING && d->state != D_FLUSHING) ||
	    d->nrunning > 0)
		return;
	if (d->state != D_FLUSHING) {
		double t = ms_to_s(cur(d)->kill_grace_ms);
		d->state = D_FLUSHING;
		ev_timer_stop(d->loop, &d->drain);
		ev_timer_set(&d->flush, t > FLUSH_TIMEOUT_MIN ? t : FLUSH_TIMEOUT_MIN, 0.);
		ev_timer_start(d->loop, &d->flush);
		update_status(d);
	}
	exchange(d);
	/* The worker row goes last, after its outcomes. */
	if (TAILQ_EMPTY(&d->finished) && TAILQ_EMPTY(&d->writing) && !d->deregistered &&
	    !d->hb_inflight && db_is_up(d->db)) {
		d->hb_inflight = true; /* no heartbeat may re-register it */
		if (!db_query(d->db, stmt_deregister, 1, params, deregister_done, d))
			d->hb_inflight = false;
	}
	stop_loop_if_done(d);
}

static void
kill_all(struct daemon *d, bool now)
{
	struct job *j;

	d->state = D_KILLING;
	ev_timer_stop(d->loop, &d->drain);
	TAILQ_FOREACH(j, &d->running, link)
		kill_job(j, KILL_SHUTDOWN, now);
	update_status(d);
}

static void
drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	log_notice("shutdown_timeout passed: killing %d handler(s); their jobs go back to ready",
	    d->nrunning);
	kill_all(d, false);
}

static void
flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct job *j;
	int n = 0;

	(void)revents;
	TAILQ_FOREACH(j, &d->finished, link)
		n++;
	TAILQ_FOREACH(j, &d->writing, link)
		n++;
	if (n)
		log_errx("stopping with %d outcome(s) unwritten (database unavailable): their "
			 "leases will expire and the jobs run again",
		    n);
	ev_break(loop, EVBREAK_ALL);
}

static void
sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)loop;
	(void)revents;
	d->signals++;
	if (d->signals == 1) {
		sd_notifyf("STOPPING=1");
		d->state = D_DRAINING;
		ev_timer_stop(d->loop, &d->poll);
		log_notice("stopping: %d handler(s) running, waiting up to %.3fs (signal again to "
			   "skip the wait)",
		    d->nrunning, ms_to_s(cur(d)->shutdown_timeout_ms));
		ev_timer_set(&d->drain, ms_to_s(cur(d)->shutdown_timeout_ms), 0.);
		ev_timer_start(d->loop, &d->drain);
	} else if (d->state == D_DRAINING || d->state == D_KILLING) {
		log_notice("signalled again: killing %d handler(s)%s", d->nrunning,
		    d->state == D_KILLING ? " with SIGKILL" : "");
		kill_all(d, d->state == D_KILLING);
	}
	update_status(d);
	check_stopped(d);
}

/* ---- reload ---- */

static void
apply_timers(struct daemon *d)
{
	struct cfg *c = cur(d);

	ev_timer_set(&d->poll, ms_to_s(c->poll_interval_ms), ms_to_s(c->poll_interval_ms));
	ev_timer_set(&d->heartbeat, ms_to_s(c->heartbeat_ms), ms_to_s(c->heartbeat_ms));
	if (d->state == D_RUNNING)
		ev_timer_again(d->loop, &d->poll);
	ev_timer_again(d->loop, &d->heartbeat);
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
		d->conf = xcalloc(1, sizeof *d->conf);
		d->conf->cfg = c;
		d->conf->refs = 1;
		conf_unref(old);
		apply_timers(d);
		log_notice("configuration reloaded: queues %d, handlers %d, concurrency %d",
		    c->nqueues, c->nhandlers, c->concurrency);
	}
	sd_notifyf("READY=1");
	update_status(d);
	exchange(d);
}

/* ---- timers without a better home ---- */

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

int
daemon_main(const char *path, struct cfg *cfg)
{
	static const struct db_events events = {db_up, db_down, db_notify};
	struct daemon *d = xcalloc(1, sizeof *d);
	struct job *j;
	struct timespec ts;
	uint64_t wd;
	int status;

	d->loop = EV_DEFAULT;
	ev_set_userdata(d->loop, d);
	d->path = path;
	d->conf = xcalloc(1, sizeof *d->conf);
	d->conf->cfg = cfg;
	d->conf->refs = 1;
	TAILQ_INIT(&d->running);
	TAILQ_INIT(&d->finished);
	TAILQ_INIT(&d->writing);
	clock_gettime(CLOCK_REALTIME, &ts);
	d->started_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	srandom((unsigned)(ts.tv_nsec ^ getpid()));
	if (gethostname(d->host, sizeof d->host) != 0)
		snprintf(d->host, sizeof d->host, "localhost");
	d->host[sizeof d->host - 1] = '\0';
	if (*cfg->name)
		snprintf(d->name, sizeof d->name, "%s", cfg->name);
	else
		snprintf(d->name, sizeof d->name, "%s:%d", d->host, (int)getpid());

	/* A handler that stops reading its stdin must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	sd_init();

	ev_signal_init(&d->sigterm, sigterm_cb, SIGTERM);
	ev_signal_init(&d->sigint, sigterm_cb, SIGINT);
	ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	ev_signal_start(d->loop, &d->sighup);

	ev_init(&d->poll, poll_cb);
	ev_init(&d->heartbeat, heartbeat_cb);
	ev_init(&d->drain, drain_cb);
	ev_init(&d->flush, flush_cb);
	ev_init(&d->write_retry, write_retry_cb);
	ev_init(&d->wake, wake_cb);
	d->wake.data = d;
	d->poll.data = d->heartbeat.data = d->drain.data = d->flush.data = d;
	d->write_retry.data = d;
	apply_timers(d);
	ev_timer_init(&d->status, status_cb, 1., 1.);
	d->status.data = d;
	ev_timer_start(d->loop, &d->status);
	if ((wd = sd_watchdog_usec()) > 0) {
		/* Pinged from the loop itself: a wedged loop stops the pings. */
		ev_timer_init(&d->watchdog, watchdog_cb, (double)wd / 2e6, (double)wd / 2e6);
		ev_timer_start(d->loop, &d->watchdog);
		sd_notifyf("WATCHDOG=1");
	}
	if (cfg->nhandlers == 0)
		log_warnx("%s: no [handler.TYPE] section: this daemon will lease nothing", path);
	log_info("pgjobd %s starting: worker %s, config %s", PGJOBD_VERSION, d->name, path);

	d->db = db_new(d->loop, cfg->database, stmt_session,
	    &(struct db_timing){.heartbeat_ms = cfg->heartbeat_ms, .lease_ms = cfg->lease_ms}, &events, d);
	ev_run(d->loop, 0);

	/* Stopped: the loop only ends with no handler running. */
	db_free(d->db);
	while ((j = TAILQ_FIRST(&d->finished)) != NULL) {
		TAILQ_REMOVE(&d->finished, j, link);
		job_free(j);
	}
	while ((j = TAILQ_FIRST(&d->writing)) != NULL) {
		TAILQ_REMOVE(&d->writing, j, link);
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
