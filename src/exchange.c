/* exchange: see exchange.h. */
#include "exchange.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "stmts.h"
#include "xmalloc.h"

#define RETRY_WRITE_SECONDS 1.0      /* after a statement error, before trying again */
#define EXCHANGE_MAX_BYTES (8 << 20) /* outcomes JSON per statement, about */

/* The columns of exchange.sql's rows. */
enum { C_KIND, C_ID, C_TOKEN, C_TYPE, C_QUEUE, C_ATTEMPT, C_MAX_ATTEMPTS, C_TIMEOUT_MS,
	C_PAYLOAD, C_NARGS, C_ARGS, C_ARGS_ERROR, C_PICKUP_DELAY_MS, C_IDEMPOTENCY_KEY, C_COUNT };
static const char *const columns[C_COUNT] = {
	[C_KIND] = "kind", [C_ID] = "id", [C_TOKEN] = "token", [C_TYPE] = "type",
	[C_QUEUE] = "queue", [C_ATTEMPT] = "attempt", [C_MAX_ATTEMPTS] = "max_attempts",
	[C_TIMEOUT_MS] = "timeout_ms", [C_PAYLOAD] = "payload", [C_NARGS] = "nargs",
	[C_ARGS] = "args", [C_ARGS_ERROR] = "args_error",
	[C_PICKUP_DELAY_MS] = "pickup_delay_ms",
	[C_IDEMPOTENCY_KEY] = "idempotency_key",
};

struct exchange {
	enum exchange_state state;
	struct ev_loop *loop;
	struct db *db;
	struct jobq *jobs;
	const struct exchange_hooks *hooks;
	void *arg;
	int limit;           /* jobs the one in flight asked for (0: none) */
	double sent_at;      /* job_clock() when it was sent */
	struct conf *conf;   /* the config it leased for */
	ev_timer backoff;
};

static void
backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct exchange *x = w->data;

	(void)loop;
	(void)revents;
	x->state = EX_IDLE;
	x->hooks->over(x->arg, false);
}

struct exchange *
exchange_new(struct ev_loop *loop, struct db *db, struct jobq *jobs,
    const struct exchange_hooks *hooks, void *arg)
{
	struct exchange *x = xcalloc(1, sizeof *x);

	x->state = EX_IDLE;
	x->loop = loop;
	x->db = db;
	x->jobs = jobs;
	x->hooks = hooks;
	x->arg = arg;
	ev_init(&x->backoff, backoff_cb);
	x->backoff.data = x;
	return x;
}

void
exchange_free(struct exchange *x)
{
	if (!x)
		return;
	ev_timer_stop(x->loop, &x->backoff);
	conf_unref(x->conf);
	free(x);
}

enum exchange_state
exchange_state(const struct exchange *x)
{
	return x->state;
}

/* Jobs whose outcome was aboard go back to waiting for the next one. */
static void
requeue_writing(struct exchange *x)
{
	struct job *j;

	TAILQ_FOREACH(j, x->jobs, link)
		if (j->state == JOB_WRITING)
			j->state = JOB_FINISHED;
}

/* The outcomes aboard: accepted ('o' rows) or refused. */
static void
outcomes_written(struct exchange *x, PGresult *res, const int *col)
{
	struct job *j, *next;

	for (j = TAILQ_FIRST(x->jobs); j; j = next) {
		bool accepted = false;
		next = TAILQ_NEXT(j, link);
		if (j->state != JOB_WRITING)
			continue;
		for (int i = 0; i < PQntuples(res) && !accepted; i++)
			accepted = *PQgetvalue(res, i, col[C_KIND]) == 'o' &&
				   strtoll(PQgetvalue(res, i, col[C_ID]), NULL, 10) == j->id;
		TAILQ_REMOVE(x->jobs, j, link);
		x->hooks->written(x->arg, j, accepted);
	}
}

static const char *
value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* The jobs leased ('l' rows); returns how many. */
static int
jobs_leased(struct exchange *x, PGresult *res, const int *col, struct conf *conf)
{
	int n = 0;

	for (int i = 0; i < PQntuples(res); i++) {
		struct job_lease l;

		if (*PQgetvalue(res, i, col[C_KIND]) != 'l')
			continue;
		n++;
		l = (struct job_lease){
		    .id = strtoll(PQgetvalue(res, i, col[C_ID]), NULL, 10),
		    .token = strtoll(PQgetvalue(res, i, col[C_TOKEN]), NULL, 10),
		    .type = PQgetvalue(res, i, col[C_TYPE]),
		    .queue = PQgetvalue(res, i, col[C_QUEUE]),
		    .attempt = atoi(PQgetvalue(res, i, col[C_ATTEMPT])),
		    .max_attempts = value(res, i, col[C_MAX_ATTEMPTS]),
		    .timeout_ms = value(res, i, col[C_TIMEOUT_MS]),
		    .payload = PQgetvalue(res, i, col[C_PAYLOAD]),
		    .nargs = atoi(PQgetvalue(res, i, col[C_NARGS])),
		    .args = value(res, i, col[C_ARGS]),
		    .args_error = value(res, i, col[C_ARGS_ERROR]),
		    .idempotency_key = value(res, i, col[C_IDEMPOTENCY_KEY]),
		    .sent_at = x->sent_at,
		    .pickup_delay_ms = strtod(PQgetvalue(res, i, col[C_PICKUP_DELAY_MS]), NULL),
		};
		x->hooks->leased(x->arg, &l, conf);
	}
	return n;
}

static void
exchange_done(void *arg, PGresult *res)
{
	struct exchange *x = arg;
	struct conf *conf = x->conf;
	bool had_outcomes = false, full;
	char msg[512];
	int col[C_COUNT], leased = 0;
	struct job *j;

	x->conf = NULL;
	x->state = EX_IDLE;
	if (res)
		metrics_exchange_duration(job_clock() - x->sent_at);
	TAILQ_FOREACH(j, x->jobs, link)
		had_outcomes |= j->state == JOB_WRITING;
	if (!res) {
		/* Connection lost: maybe committed, maybe not.  Sending the
		 * outcomes again is safe: a repeat finds the token cleared and
		 * changes nothing.  A lease whose reply was lost expires. */
		requeue_writing(x);
		conf_unref(conf);
		x->hooks->over(x->arg, false);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || !db_columns(res, columns, C_COUNT, col)) {
		log_errx("%s failed, will retry: %s",
		    had_outcomes ? "writing job outcomes" : "leasing jobs",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
		requeue_writing(x);
		conf_unref(conf);
		if (had_outcomes) {
			x->state = EX_BACKING_OFF;
			ev_timer_set(&x->backoff, RETRY_WRITE_SECONDS, 0.);
			ev_timer_start(x->loop, &x->backoff);
		}
		x->hooks->over(x->arg, false);
		return;
	}
	outcomes_written(x, res, col);
	if (conf)
		leased = jobs_leased(x, res, col, conf);
	full = x->limit > 0 && leased >= x->limit;
	conf_unref(conf);
	x->hooks->over(x->arg, full);
}

/*
 * The JSON array of the finished outcomes, in list order, up to about
 * EXCHANGE_MAX_BYTES (at least one), marking each JOB_WRITING; returns
 * whether that is all of them.
 */
static bool
outcomes_json(struct exchange *x, struct buf *out, int *n)
{
	struct job *j;

	*n = 0;
	buf_add(out, "[", 1);
	TAILQ_FOREACH(j, x->jobs, link) {
		const struct outcome *o = &j->out;
		if (j->state != JOB_FINISHED)
			continue;
		if (*n > 0 && out->len > EXCHANGE_MAX_BYTES)
			break;
		buf_printf(out, "%s{\"id\":%" PRId64 ",\"token\":%" PRId64 ",\"outcome\":\"%s\"",
		    *n ? "," : "", j->id, j->token, outcome_names[o->kind]);
		buf_printf(out, ",\"delay_ms\":%" PRId64, o->delay_ms);
		if (o->has_exit)
			buf_printf(out, ",\"exit_code\":%d", o->exit_code);
		if (o->signal)
			buf_printf(out, ",\"signal\":%d", o->signal);
		if (j->result) {
			buf_add(out, ",\"result\":", 10);
			buf_json_string(out, j->result);
		}
		if (j->error && *j->error) {
			buf_add(out, ",\"error\":", 9);
			buf_json_string(out, j->error);
		}
		buf_add(out, "}", 1);
		j->state = JOB_WRITING;
		(*n)++;
	}
	buf_add(out, "]", 1);
	for (; j; j = TAILQ_NEXT(j, link))
		if (j->state == JOB_FINISHED)
			return false;
	return true;
}

bool
exchange_send(struct exchange *x, const struct exchange_req *req)
{
	struct conf *conf = req->conf;
	struct buf out = {0}, tb = {0}, fb = {0}, qb = {0};
	char lease_ms[32], limit[32];
	const char *params[7];
	int nout, ntypes = req->ntypes;
	bool sent;

	if (x->state != EX_IDLE || !db_is_up(x->db))
		return false;
	if (!outcomes_json(x, &out, &nout))
		ntypes = 0; /* outcomes left behind: lease after them, next time */
	if (nout == 0 && ntypes == 0) {
		free(out.p);
		return false;
	}
	buf_name_array(&tb, req->types, ntypes);
	buf_int_array(&fb, req->free, ntypes);
	buf_name_array(&qb, conf->cfg->queues, conf->cfg->nqueues);
	snprintf(limit, sizeof limit, "%d", ntypes ? req->limit : 0);
	snprintf(lease_ms, sizeof lease_ms, "%" PRId64, conf->cfg->lease_ms);
	params[0] = req->worker;
	params[1] = qb.p;
	params[2] = tb.p;
	params[3] = fb.p;
	params[4] = limit;
	params[5] = lease_ms;
	params[6] = out.p;
	sent = db_query(x->db, stmt_exchange, 7, params, exchange_done, x);
	if (sent) {
		x->state = EX_IN_FLIGHT;
		x->sent_at = job_clock();
		x->limit = ntypes ? req->limit : 0;
		x->conf = ntypes ? conf_ref(conf) : NULL;
	} else {
		requeue_writing(x);
	}
	free(out.p);
	free(tb.p);
	free(fb.p);
	free(qb.p);
	return sent;
}
