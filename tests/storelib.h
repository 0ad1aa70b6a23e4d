/*
 * storelib: what the suites of the storage (check_storage, check_plans,
 * check_counts, check_later) share: the exchange sent as the daemon sends
 * it, and queue_stats checked against the rows.
 */
#ifndef PGJOBD_STORELIB_H
#define PGJOBD_STORELIB_H

#include <libpq-fe.h>

/* The exchange (sql/stmt/exchange.sql) as the daemon sends it: worker "w",
 * queue "q", TYPES with FREE slots, at most 100 jobs, a 60 s lease,
 * OUTCOMES (JSON). */
PGresult *st_exchange(PGconn *c, const char *types, const char *free_, const char *outcomes);
/* Fail unless pgjobd.queue_stats (from the counters) says what a count of
 * the rows of pgjobd.jobs says, naming AFTER (what was just done). */
void st_assert_stats_match_rows(PGconn *c, const char *after);

#endif
