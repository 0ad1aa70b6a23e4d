/*
 * storelib: what the suites of the storage (check_storage, check_plans,
 * check_counts) share: the exchange sent as the daemon sends it.
 */
#ifndef PGJOBD_STORELIB_H
#define PGJOBD_STORELIB_H

#include <libpq-fe.h>

/* The exchange (sql/stmt/exchange.sql) as the daemon sends it: worker "w",
 * queue "q", TYPES with FREE slots, at most 100 jobs, a 60 s lease,
 * OUTCOMES (JSON). */
PGresult *st_exchange(PGconn *c, const char *types, const char *free_, const char *outcomes);

#endif
