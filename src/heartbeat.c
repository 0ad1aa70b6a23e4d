/* heartbeat: see heartbeat.h. */
#include "heartbeat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "stmts.h"
#include "xmalloc.h"

struct heartbeat {
	enum heartbeat_state state;
	struct db *db;
	struct jobq *jobs;
	const struct heartbeat_hooks *hooks;
	void *arg;
	unsigned gen; /* of the one in flight: the jobs it carried have it */
	double sent_at; /* job_clock() when it was sent */
};

struct heartbeat *
heartbeat_new(struct db *db, struct jobq *jobs, const struct heartbeat_hooks *hooks, void *arg)
{
	struct heartbeat *hb = xcalloc(1, sizeof *hb);

	hb->state = HB_IDLE;
	hb->db = db;
	hb->jobs = jobs;
	hb->hooks = hooks;
	hb->arg = arg;
	return hb;
}

void
heartbeat_free(struct heartbeat *hb)
{
	free(hb);
}

enum heartbeat_state
heartbeat_state(const struct heartbeat *hb)
{
	return hb->state;
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void
heartbeat_done(void *arg, PGresult *res)
{
	static const char *const columns[] = {"id"};
	struct heartbeat *hb = arg;
	char msg[512];
	struct job *j, *next;
	int64_t *held;
	int n, col;

	hb->state = HB_IDLE;
	if (!res) {
		hb->hooks->over(hb->arg);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || !db_columns(res, columns, 1, &col)) {
		log_errx("heartbeat failed: %s",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
		hb->hooks->over(hb->arg);
		return;
	}
	n = PQntuples(res);
	held = xcalloc((size_t)n, sizeof *held);
	for (int i = 0; i < n; i++)
		held[i] = strtoll(PQgetvalue(res, i, col), NULL, 10);
	qsort(held, (size_t)n, sizeof *held, cmp_id);
	/* A handler whose lease is gone is killed at once: the job has been
	 * cancelled, or has expired and may already run elsewhere.  Jobs
	 * finished meanwhile need nothing: their outcome will be refused. */
	for (j = TAILQ_FIRST(hb->jobs); j; j = next) {
		next = TAILQ_NEXT(j, link);
		if (j->hb_gen != hb->gen || !job_holds_lease(j))
			continue;
		if (bsearch(&j->id, held, (size_t)n, sizeof *held, cmp_id))
			j->lease_confirmed = hb->sent_at;
		else if (j->state == JOB_RUNNING)
			hb->hooks->lost(hb->arg, j);
	}
	free(held);
	hb->hooks->over(hb->arg);
}

bool
heartbeat_send(struct heartbeat *hb, const struct cfg *cfg, const struct worker_id *id,
    int running)
{
	struct buf ids = {0}, tokens = {0}, qb = {0}, tb = {0};
	char lease_ms[32], pid[16], started[32], conc[16], nrunning[16];
	const char *params[12];
	char **types;
	struct job *j;
	bool sent;

	if (hb->state != HB_IDLE || !db_is_up(hb->db))
		return false;
	hb->gen++;
	buf_add(&ids, "{", 1);
	buf_add(&tokens, "{", 1);
	TAILQ_FOREACH(j, hb->jobs, link) {
		if (!job_holds_lease(j))
			continue;
		j->hb_gen = hb->gen;
		buf_printf(&ids, "%s%" PRId64, ids.len > 1 ? "," : "", j->id);
		buf_printf(&tokens, "%s%" PRId64, tokens.len > 1 ? "," : "", j->token);
	}
	buf_add(&ids, "}", 1);
	buf_add(&tokens, "}", 1);
	buf_name_array(&qb, cfg->queues, cfg->nqueues);
	types = xcalloc((size_t)cfg->nhandlers + 1, sizeof *types);
	for (int i = 0; i < cfg->nhandlers; i++)
		types[i] = cfg->handlers[i].type;
	buf_name_array(&tb, types, cfg->nhandlers);
	free(types);
	snprintf(lease_ms, sizeof lease_ms, "%" PRId64, cfg->lease_ms);
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	snprintf(started, sizeof started, "%.6f", id->started_at);
	snprintf(conc, sizeof conc, "%d", cfg->concurrency);
	snprintf(nrunning, sizeof nrunning, "%d", running);
	params[0] = ids.p;
	params[1] = tokens.p;
	params[2] = lease_ms;
	params[3] = id->name;
	params[4] = id->host;
	params[5] = pid;
	params[6] = started;
	params[7] = conc;
	params[8] = nrunning;
	params[9] = qb.p;
	params[10] = PGJOBD_VERSION;
	params[11] = tb.p;
	sent = db_query(hb->db, stmt_heartbeat, 12, params, heartbeat_done, hb);
	if (sent) {
		hb->state = HB_IN_FLIGHT;
		hb->sent_at = job_clock();
	}
	free(ids.p);
	free(tokens.p);
	free(qb.p);
	free(tb.p);
	return sent;
}

void
heartbeat_identity(struct worker_id *id, const struct cfg *cfg)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	id->started_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	srandom((unsigned)(ts.tv_nsec ^ getpid()));
	if (gethostname(id->host, sizeof id->host) != 0)
		snprintf(id->host, sizeof id->host, "localhost");
	id->host[sizeof id->host - 1] = '\0';
	if (*cfg->name)
		snprintf(id->name, sizeof id->name, "%s", cfg->name);
	else
		snprintf(id->name, sizeof id->name, "%s:%d", id->host, (int)getpid());
}

void
heartbeat_fence(struct heartbeat *hb, int64_t lease_ms)
{
	double now = job_clock();
	struct job *j, *next;

	for (j = TAILQ_FIRST(hb->jobs); j; j = next) {
		int64_t ms = j->conf->cfg->lease_ms < lease_ms ? j->conf->cfg->lease_ms : lease_ms;
		next = TAILQ_NEXT(j, link);
		if (j->state == JOB_RUNNING && job_holds_lease(j) &&
		    now - j->lease_confirmed >= (double)ms / 1000.0)
			hb->hooks->fenced(hb->arg, j, now - j->lease_confirmed);
	}
}
