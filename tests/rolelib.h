/*
 * rolelib: helpers shared by the suites of the roles of sql/004_roles.sql
 * (check_roles, check_roles_migrate), proven with real logins against the
 * throwaway cluster.
 *
 * The login roles are cluster-wide, so they are made once if missing (the
 * plain and the ASan run share the cluster); every test makes its own
 * database.  The cluster trusts local connections: a login is "user=NAME".
 */
#ifndef PGJOBD_ROLELIB_H
#define PGJOBD_ROLELIB_H

#include <libpq-fe.h>

#include "testlib.h"

#define ENQUEUE_SIG "pgjobd.enqueue(text, jsonb, text, timestamptz, int, int, text, interval, " \
                    "timestamptz)"

/* `pgjobd --migrate [--to TO]` with DATABASE as the conninfo (NULL: the
 * current database, from libpq's environment); returns its exit status,
 * stdout in *OUT and stderr in *ERR (malloc'd). */
int r_run_migrate(const char *database, const char *to, char **out, char **err);
/* The same, which must exit 0 and print EXPECT. */
void r_migrate_ok(const char *database, const char *to, const char *expect);
/* A fresh database NAME at the latest version, the login roles in place
 * (the README's lines, Privileges: t_app, t_reader, t_op, t_worker and
 * t_nobody); a superuser connection to it. */
PGconn *r_fresh(const char *name);
/* Connect to the current database as USER, with SEARCH_PATH when given. */
PGconn *r_login(const char *user, const char *search_path);
/* SQL (with printf formatting) must fail with SQLSTATE STATE. */
void r_expect_state(PGconn *c, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define r_denied(c, ...) r_expect_state(c, "42501", __VA_ARGS__)
/* The first column of the SQL (printf formatting) is WANT. */
void r_expect_str(PGconn *c, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* pgjobd.enqueue(TYPE) on C: the job's id. */
long long r_enqueue_as(PGconn *c, const char *type);

#endif
