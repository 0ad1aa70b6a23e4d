/* rescue: see rescue.h. */
#include "rescue.h"

#include <stdlib.h>

#include "buf.h"
#include "log.h"
#include "stmts.h"
#include "xmalloc.h"

enum { C_ID, C_TYPE, C_ATTEMPTS, C_WORKER, C_STATE, C_COUNT };
static const char *const columns[C_COUNT] = {
	[C_ID] = "id", [C_TYPE] = "type", [C_ATTEMPTS] = "attempts",
	[C_WORKER] = "worker", [C_STATE] = "state",
};

struct rescue {
	enum rescue_state state;
	struct db *db;
	void (*over)(void *arg);
	void *arg;
};

struct rescue *
rescue_new(struct db *db, void (*over)(void *arg), void *arg)
{
	struct rescue *r = xcalloc(1, sizeof *r);

	r->state = RESCUE_IDLE;
	r->db = db;
	r->over = over;
	r->arg = arg;
	return r;
}

void
rescue_free(struct rescue *r)
{
	free(r);
}

enum rescue_state
rescue_state(const struct rescue *r)
{
	return r->state;
}

static void
rescue_done(void *arg, PGresult *res)
{
	struct rescue *r = arg;
	char msg[512];
	int col[C_COUNT];

	r->state = RESCUE_IDLE;
	if (res && (PQresultStatus(res) != PGRES_TUPLES_OK || !db_columns(res, columns, C_COUNT, col)))
		log_errx("rescuing expired leases failed: %s",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
	else if (res)
		for (int i = 0; i < PQntuples(res); i++)
			log_notice("job %s type=%s attempt=%s outcome=lost: lease of worker %s "
				   "expired; job is %s",
			    PQgetvalue(res, i, col[C_ID]), PQgetvalue(res, i, col[C_TYPE]),
			    PQgetvalue(res, i, col[C_ATTEMPTS]), PQgetvalue(res, i, col[C_WORKER]),
			    PQgetvalue(res, i, col[C_STATE]));
	r->over(r->arg);
}

bool
rescue_send(struct rescue *r, const struct cfg *cfg)
{
	struct buf qb = {0}, tb = {0}, mb = {0};
	char **types;
	int *max;
	const char *params[3];
	bool sent;

	if (r->state != RESCUE_IDLE || !db_is_up(r->db) || cfg->nhandlers == 0)
		return false;
	types = xcalloc((size_t)cfg->nhandlers, sizeof *types);
	max = xcalloc((size_t)cfg->nhandlers, sizeof *max);
	for (int i = 0; i < cfg->nhandlers; i++) {
		types[i] = cfg->handlers[i].type;
		max[i] = cfg->handlers[i].max_attempts;
	}
	buf_name_array(&qb, cfg->queues, cfg->nqueues);
	buf_name_array(&tb, types, cfg->nhandlers);
	buf_int_array(&mb, max, cfg->nhandlers);
	params[0] = qb.p;
	params[1] = tb.p;
	params[2] = mb.p;
	sent = db_query(r->db, stmt_rescue, 3, params, rescue_done, r);
	if (sent)
		r->state = RESCUE_IN_FLIGHT;
	free(types);
	free(max);
	free(qb.p);
	free(tb.p);
	free(mb.p);
	return sent;
}
