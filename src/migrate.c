/* migrate: see migrate.h. */
#include "migrate.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stmts.h"

int
migrate_latest(void)
{
	int v = 0;

	for (int i = 0; i < nmigrations; i++)
		if (migrations[i].version > v)
			v = migrations[i].version;
	return v;
}

static void
set_err(char *err, size_t errlen, const char *what, const PGresult *res, PGconn *conn)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	size_t n;

	snprintf(err, errlen, "%s: %s", what, msg && *msg ? msg : "unknown error");
	n = strlen(err);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}

/* Run one parameterless command; true when it returned OK_STATUS. */
static bool
exec_ok(PGconn *conn, const char *sql, ExecStatusType ok_status, const char *what, char *err,
    size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == ok_status;

	if (!ok)
		set_err(err, errlen, what, res, conn);
	PQclear(res);
	return ok;
}

/* The version from pgjobd.migrations, 0 when the schema or table is missing. */
static int
read_version(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, stmt_schema_version);
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		v = atoi(PQgetvalue(res, 0, 0));
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* undefined_table, invalid_schema_name: nothing installed yet */
		if (state && (!strcmp(state, "42P01") || !strcmp(state, "3F000")))
			v = 0;
		else
			set_err(err, errlen, "reading the schema version", res, conn);
	}
	PQclear(res);
	return v;
}

int
migrate_current(struct pg_conn *conn, char *err, size_t errlen)
{
	return read_version(conn, err, errlen);
}

/* The downgrade that takes version V back to V - 1, or NULL. */
static const struct migration *
find_downgrade(int v)
{
	for (int i = 0; i < ndowngrades; i++)
		if (downgrades[i].version == v)
			return &downgrades[i];
	return NULL;
}

/* Run SQL with the one parameter VERSION; true when it returned OK_STATUS. */
static bool
exec_version(PGconn *conn, const char *sql, int version, const char *what, char *err,
    size_t errlen)
{
	char vbuf[16];
	const char *params[1] = {vbuf};
	PGresult *res;
	bool ok;

	snprintf(vbuf, sizeof vbuf, "%d", version);
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		set_err(err, errlen, what, res, conn);
	PQclear(res);
	return ok;
}

/* Apply the migrations newer than VERSION up to TARGET; the new version or -1. */
static int
upgrade(PGconn *conn, int version, int target, char *err, size_t errlen)
{
	for (int i = 0; i < nmigrations; i++) {
		const struct migration *m = &migrations[i];
		char vbuf[16];
		const char *params[2] = {vbuf, m->name};
		PGresult *res;

		if (m->version <= version || m->version > target)
			continue;
		if (!exec_ok(conn, m->sql, PGRES_COMMAND_OK, m->name, err, errlen))
			return -1;
		snprintf(vbuf, sizeof vbuf, "%d", m->version);
		res = PQexecParams(conn, stmt_migrate_record,
		    2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			set_err(err, errlen, "recording the migration", res, conn);
			PQclear(res);
			return -1;
		}
		PQclear(res);
		version = m->version;
	}
	return version;
}

/* Undo the migrations from VERSION down to TARGET + 1, newest first. */
static int
downgrade(PGconn *conn, int version, int target, char *err, size_t errlen)
{
	for (; version > target; version--) {
		const struct migration *d = find_downgrade(version);

		if (!d) {
			snprintf(err, errlen, "no downgrade from schema version %d is known", version);
			return -1;
		}
		if (!exec_ok(conn, d->sql, PGRES_COMMAND_OK, d->name, err, errlen) ||
		    !exec_version(conn, stmt_migrate_unrecord, version, "unrecording the migration",
			err, errlen))
			return -1;
	}
	return version;
}

int
migrate_apply(struct pg_conn *conn, char *err, size_t errlen)
{
	return migrate_to(conn, migrate_latest(), err, errlen);
}

int
migrate_to(struct pg_conn *conn, int target, char *err, size_t errlen)
{
	int version;

	if (!exec_ok(conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN", err, errlen))
		return -1;
	if (!exec_ok(conn, stmt_migrate_prepare, PGRES_COMMAND_OK, "preparing the migration", err,
		errlen))
		goto fail;
	version = read_version(conn, err, errlen);
	if (version < 0)
		goto fail;
	if (target > migrate_latest())
		target = migrate_latest();
	if (target >= version)
		version = upgrade(conn, version, target, err, errlen);
	else
		version = downgrade(conn, version, target, err, errlen);
	if (version < 0)
		goto fail;
	if (!exec_ok(conn, "COMMIT", PGRES_COMMAND_OK, "COMMIT", err, errlen))
		goto fail;
	return version;
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
