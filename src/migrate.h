/*
 * migrate: the schema migrations compiled into the binary (build/migrations.c,
 * generated from sql/NNN_name.sql by src/mksql.sh), and the downgrades that
 * undo them (build/downgrades.c, from sql/down/NNN_name.sql).
 *
 * Both calls are blocking and meant for start-up and `pgjobd --migrate`
 * only, before the event loop runs.
 */
#ifndef PGJOBD_MIGRATE_H
#define PGJOBD_MIGRATE_H

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const int nmigrations;
/* downgrades[i] takes version downgrades[i].version back to one below. */
extern const struct migration downgrades[];
extern const int ndowngrades;

struct pg_conn;

/* The schema version this binary needs: the highest compiled migration. */
int migrate_latest(void);

/*
 * Apply every migration newer than the database's, in order, in one
 * transaction under an advisory lock (so concurrent runs serialize and the
 * second finds nothing to do).  Returns the resulting version, or -1 with
 * the reason in ERR.
 */
int migrate_apply(struct pg_conn *conn, char *err, size_t errlen);

/*
 * The same, to version TARGET: newer migrations up to TARGET only (a
 * TARGET beyond the latest means the latest), or, when the database is
 * newer than TARGET, the downgrades from its version down to TARGET,
 * newest first; all in one transaction under the same lock.  Returns the
 * resulting version, or -1 with the reason in ERR (nothing changed).
 */
int migrate_to(struct pg_conn *conn, int target, char *err, size_t errlen);

/* The database's schema version (0: not installed), or -1 with ERR. */
int migrate_current(struct pg_conn *conn, char *err, size_t errlen);

#endif
