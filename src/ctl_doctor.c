/*
 * ctl_doctor: `pgjobd ctl doctor`, the checks that gate a deploy.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl_out.h"
#include "ctl_verb.h"
#include "migrate.h"
#include "stmts.h"
#include "xmalloc.h"

/*
 * doctor: the schema version against this binary's, then (when the schema
 * has everything the checks read) the findings of ctl_doctor.sql.  Every
 * finding is one line "KIND: detail"; none prints "ok".
 */
int
ctl_verb_doctor(struct ctl *c, char **args)
{
	char err[1024], stale[32], since[32], *schema = NULL;
	const char *params[] = {stale, since};
	int version = migrate_current(c->conn, err, sizeof err), latest = migrate_latest();
	PGresult *res = NULL;
	int nfindings;

	(void)args;
	if (version < 0) {
		ctl_errx("%s", err);
		return CTL_FAIL;
	}
	if (version < latest)
		schema = xasprintf("the database schema is at version %d, this pgjobd needs %d: "
		                   "run pgjobd ctl migrate",
		                   version, latest);
	else if (version > latest)
		schema = xasprintf("the database schema is at version %d, newer than this "
		                   "pgjobd's %d: upgrade this binary",
		                   version, latest);
	/* An older schema may lack what the checks read (workers.types). */
	if (version >= latest) {
		snprintf(stale, sizeof stale, "%" PRId64, c->stale_ms);
		snprintf(since, sizeof since, "%" PRId64, c->since_ms);
		if (!(res = ctl_query(c, stmt_ctl_doctor, 2, params))) {
			free(schema);
			return CTL_FAIL;
		}
	}
	nfindings = (schema != NULL) + (res ? PQntuples(res) : 0);
	if (c->json) {
		struct buf b = {0};
		buf_printf(&b,
		           "{\"ok\":%s,\"schema_version\":%d,\"binary_schema_version\":%d,"
		           "\"findings\":[",
		           nfindings ? "false" : "true", version, latest);
		if (schema) {
			buf_printf(&b, "{\"kind\":\"schema\",\"subject\":\"schema\",\"n\":1,"
			               "\"detail\":");
			buf_json_string(&b, schema);
			buf_add(&b, "}", 1);
		}
		for (int i = 0; res && i < PQntuples(res); i++) {
			if (i || schema)
				buf_add(&b, ",", 1);
			ctlout_json_object(&b, res, i);
		}
		buf_add(&b, "]}", 2);
		ctl_print_json(&b);
	} else {
		if (schema)
			printf("schema: %s\n", schema);
		for (int i = 0; res && i < PQntuples(res); i++)
			printf("%s: %s\n", ctl_value(res, i, "kind"), ctl_value(res, i, "detail"));
		if (!nfindings)
			printf("ok\n");
	}
	free(schema);
	PQclear(res);
	return nfindings ? CTL_FAIL : CTL_OK;
}
