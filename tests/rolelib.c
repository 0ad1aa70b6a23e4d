/*
 * rolelib: helpers shared by the suites of the roles (check_roles,
 * check_roles_migrate), rolelib.h; on top of testlib and daemonlib.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemonlib.h"
#include "rolelib.h"

/* The README's lines (Privileges), made idempotent for a shared cluster. */
static const char logins_sql[] =
	"DO $$ DECLARE r text[]; BEGIN "
	"FOREACH r SLICE 1 IN ARRAY ARRAY[['t_app', 'pgjobd_enqueue'], "
	"  ['t_reader', 'pgjobd_reader'], ['t_op', 'pgjobd_operator'], "
	"  ['t_worker', 'pgjobd_daemon']] LOOP "
	"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r[1]) THEN "
	"    EXECUTE format('CREATE ROLE %I LOGIN IN ROLE %I', r[1], r[2]); "
	"  END IF; "
	"END LOOP; "
	"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't_nobody') THEN "
	"  CREATE ROLE t_nobody LOGIN; "
	"END IF; "
	"END $$";

/* A config whose conninfo is DATABASE ("": libpq's environment). */
static char *
db_config(const char *database)
{
	char *text, *cfg;

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\ndatabase = %s\n", database ? database : ""), 0);
	cfg = t_write_temp(".ini", text);
	free(text);
	return cfg;
}

int
r_run_migrate(const char *database, const char *to, char **out, char **err)
{
	char *cfg = db_config(database);
	const char *argv[] = {t_pgjobd(), "-c", cfg, "--migrate", to ? "--to" : NULL, to, NULL};
	int rc;

	rc = t_run(argv, out, err, 60000);
	unlink(cfg);
	free(cfg);
	return rc;
}

void
r_migrate_ok(const char *database, const char *to, const char *expect)
{
	char *cfg = db_config(database);

	t_migrate(cfg, to, expect);
	unlink(cfg);
	free(cfg);
}

PGconn *
r_fresh(const char *name)
{
	PGconn *c = t_fresh_schema(name, NULL);

	PQclear(t_exec(c, logins_sql, NULL));
	return c;
}

/* Connect to the current database as USER, with SEARCH_PATH when given. */
PGconn *
r_login(const char *user, const char *search_path)
{
	char ci[256];
	PGconn *c;

	if (search_path)
		snprintf(ci, sizeof ci, "user=%s options='-csearch_path=%s'", user, search_path);
	else
		snprintf(ci, sizeof ci, "user=%s", user);
	c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		ck_abort_msg("cannot connect as %s: %s", user, PQerrorMessage(c));
	return c;
}

void
r_expect_state(PGconn *c, const char *state, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	PGresult *r;
	const char *got;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	r = PQexec(c, sql);
	got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	ck_assert_msg(got && !strcmp(got, state), "%s as %s: want SQLSTATE %s, got %s (%s)", sql,
	    PQuser(c), state, got ? got : "success", PQresultErrorMessage(r));
	PQclear(r);
	free(sql);
}

void
r_expect_str(PGconn *c, const char *want, const char *fmt, ...)
{
	va_list ap;
	char *sql, *v;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&sql, fmt, ap), 0);
	va_end(ap);
	v = d_qstr(c, "%s", sql);
	ck_assert_msg(v && !strcmp(v, want), "%s: got %s, want %s", sql, v ? v : "NULL", want);
	free(v);
	free(sql);
}

long long
r_enqueue_as(PGconn *c, const char *type)
{
	return t_int(c, "SELECT pgjobd.enqueue($1)", type, NULL);
}
