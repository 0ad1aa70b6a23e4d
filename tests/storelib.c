/* storelib: see storelib.h. */
#include "storelib.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "stmts.h"
#include "testlib.h"

PGresult *
st_exchange(PGconn *c, const char *types, const char *free_, const char *outcomes)
{
	return t_exec(c, stmt_exchange, "w", "{q}", types, free_, "100", "60000", outcomes, NULL);
}

void
st_assert_stats_match_rows(PGconn *c, const char *after)
{
	char *want = t_str(c,
	                   "SELECT coalesce(string_agg(format('%s r%s s%s u%s d%s x%s c%s e%s', queue, "
	                   "ready, scheduled, running, done, dead, cancelled, expired), ' ' "
	                   "ORDER BY queue), '') FROM (SELECT queue, "
	                   "count(*) FILTER (WHERE state = 'ready' AND run_at <= now()) AS ready, "
	                   "count(*) FILTER (WHERE state = 'ready' AND run_at > now()) AS scheduled, "
	                   "count(*) FILTER (WHERE state = 'running') AS running, "
	                   "count(*) FILTER (WHERE state = 'done') AS done, "
	                   "count(*) FILTER (WHERE state = 'dead') AS dead, "
	                   "count(*) FILTER (WHERE state = 'cancelled') AS cancelled, "
	                   "count(*) FILTER (WHERE state = 'expired') AS expired "
	                   "FROM pgjobd.jobs GROUP BY queue) s",
	                   NULL);
	char *got = t_str(c,
	                  "SELECT coalesce(string_agg(format('%s r%s s%s u%s d%s x%s c%s e%s', queue, "
	                  "ready, scheduled, running, done, dead, cancelled, expired), ' ' "
	                  "ORDER BY queue), '') FROM pgjobd.queue_stats",
	                  NULL);

	ck_assert_msg(strcmp(got, want) == 0, "after %s: queue_stats says\n%s\nthe rows say\n%s",
	              after, got, want);
	free(want);
	free(got);
}
