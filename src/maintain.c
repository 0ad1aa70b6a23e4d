/* maintain: see maintain.h. */
#include "maintain.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stmts.h"
#include "xmalloc.h"

#define MAINTAIN_BATCH 10000 /* rows moved, made ready and expired, each per round at most */
#define STR_(x) #x
#define STR(x) STR_(x)

enum { C_PROMOTED, C_EXPIRED, C_CREATED, C_DROPPED, C_SKIPPED, C_COUNT };
static const char *const columns[C_COUNT] = {
	[C_PROMOTED] = "promoted", [C_EXPIRED] = "expired", [C_CREATED] = "created",
	[C_DROPPED] = "dropped", [C_SKIPPED] = "skipped",
};

struct maintain {
	enum maintain_state state;
	struct db *db;
	void (*over)(void *arg, bool promoted, bool more);
	void *arg;
};

struct maintain *
maintain_new(struct db *db, void (*over)(void *arg, bool promoted, bool more), void *arg)
{
	struct maintain *m = xcalloc(1, sizeof *m);

	m->state = MAINTAIN_IDLE;
	m->db = db;
	m->over = over;
	m->arg = arg;
	return m;
}

void
maintain_free(struct maintain *m)
{
	free(m);
}

enum maintain_state
maintain_state(const struct maintain *m)
{
	return m->state;
}

static void
maintain_done(void *arg, PGresult *res)
{
	struct maintain *m = arg;
	char msg[512];
	int col[C_COUNT];
	bool promoted = false, more = false;
	long long n_promoted, n_expired;

	m->state = MAINTAIN_IDLE;
	if (res && (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		       !db_columns(res, columns, C_COUNT, col))) {
		log_errx("storage maintenance failed: %s",
		    log_oneline(msg, sizeof msg, PQresultErrorMessage(res)));
	} else if (res && strcmp(PQgetvalue(res, 0, col[C_SKIPPED]), "t") != 0) {
		n_promoted = atoll(PQgetvalue(res, 0, col[C_PROMOTED]));
		n_expired = atoll(PQgetvalue(res, 0, col[C_EXPIRED]));
		promoted = n_promoted > 0;
		/* A full batch: more may be waiting (a backlog of pgjobd.later
		 * after every daemon was stopped). */
		more = n_promoted >= MAINTAIN_BATCH || n_expired >= MAINTAIN_BATCH;
		if (n_expired > 0 ||
		    atoll(PQgetvalue(res, 0, col[C_CREATED])) > 0 ||
		    atoll(PQgetvalue(res, 0, col[C_DROPPED])) > 0)
			log_info("storage maintenance: %s promoted, %s expired, %s day(s) of "
				 "partitions created, %s day(s) of history dropped",
			    PQgetvalue(res, 0, col[C_PROMOTED]), PQgetvalue(res, 0, col[C_EXPIRED]),
			    PQgetvalue(res, 0, col[C_CREATED]), PQgetvalue(res, 0, col[C_DROPPED]));
	}
	m->over(m->arg, promoted, more);
}

bool
maintain_send(struct maintain *m)
{
	const char *params[1] = {STR(MAINTAIN_BATCH)};

	if (m->state != MAINTAIN_IDLE || !db_is_up(m->db))
		return false;
	if (!db_query(m->db, stmt_maintain, 1, params, maintain_done, m))
		return false;
	m->state = MAINTAIN_IN_FLIGHT;
	return true;
}
