/*
 * ctl_admin: the verbs of `pgjobd ctl` over the SQL API's administration
 * functions, each one call of it: schedules, schedule, unschedule, enable,
 * disable (sql/005_schedules.sql), retention (sql/003_storage.sql),
 * maintain (sql/006_attempt_counts.sql), grants, grant and revoke
 * (sql/004_roles.sql).  The functions validate every
 * argument themselves; ctl only shapes the command line into their
 * parameters and prints what they answer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_out.h"
#include "ctl_verb.h"
#include "stmts.h"

/* RES as {"KEY":[rows]} for --json, else as a table. */
static void
print_rows(struct ctl *c, const PGresult *res, const char *key)
{
	if (c->json) {
		struct buf b = {0};
		buf_printf(&b, "{\"%s\":", key);
		ctlout_json_array(&b, res);
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else {
		ctlout_table(stdout, res, c->cell_max);
	}
}

/* RES's one row as a JSON object for --json, else as a record. */
static void
print_row(struct ctl *c, const PGresult *res)
{
	if (c->json) {
		struct buf b = {0};
		ctlout_json_object(&b, res, 0);
		ctl_print_json(&b);
	} else {
		ctlout_record(stdout, res, 0);
	}
}

/* A verb that prints the rows of STMT (no parameters) under KEY. */
static int
list_verb(struct ctl *c, const char *stmt, const char *key)
{
	PGresult *res;

	if (!(res = ctl_query(c, stmt, 0, NULL)))
		return CTL_FAIL;
	print_rows(c, res, key);
	PQclear(res);
	return CTL_OK;
}

int
ctl_verb_schedules(struct ctl *c, char **args)
{
	(void)args;
	return list_verb(c, stmt_ctl_schedules, "schedules");
}

int
ctl_verb_schedule(struct ctl *c, char **args)
{
	struct ctl_limits lim;
	const char *params[11];
	char *payload;
	PGresult *res;
	int rc;

	if ((rc = ctl_parse_limits(c, &lim)))
		return rc;
	if (!(params[3] = ctl_payload(args[3], &payload)))
		return CTL_FAIL;

	params[0] = args[0];
	params[1] = args[1];
	params[2] = args[2];
	params[4] = c->opt[OPT_QUEUE] ? c->opt[OPT_QUEUE] : "default";
	params[5] = c->opt[OPT_TZ] ? c->opt[OPT_TZ] : "UTC";
	params[6] = lim.priority;
	params[7] = lim.max_attempts;
	params[8] = lim.timeout;
	params[9] = c->opt[OPT_MISSED] ? c->opt[OPT_MISSED] : "once";
	params[10] = c->opt[OPT_OVERLAP] ? c->opt[OPT_OVERLAP] : "allow";
	res = ctl_query(c, stmt_ctl_schedule, 11, params);
	free(payload);
	if (!res)
		return CTL_FAIL;
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"name\":", 8);
		buf_json_string(&b, args[0]);
		buf_add(&b, ",\"next_run\":", 12);
		buf_json_string(&b, ctl_value(res, 0, "next_run"));
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else {
		printf("schedule %s: next run %s\n", args[0], ctl_value(res, 0, "next_run"));
	}
	PQclear(res);
	return CTL_OK;
}

/*
 * unschedule, enable, disable: STMT with the name (and ENABLE, when not
 * NULL) returns whether the schedule exists (column "done").  PAST is the
 * verb's past tense.
 */
static int
change_schedule(struct ctl *c, const char *name, const char *stmt, const char *enable,
                const char *past)
{
	const char *params[] = {name, enable};
	PGresult *res;
	bool done;

	if (!(res = ctl_query(c, stmt, enable ? 2 : 1, params)))
		return CTL_FAIL;
	done = ctl_value(res, 0, "done") && *ctl_value(res, 0, "done") == 't';
	PQclear(res);
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"name\":", 8);
		buf_json_string(&b, name);
		buf_printf(&b, ",\"%s\":%s}", past, done ? "true" : "false");
		ctl_print_json(&b);
	} else if (done) {
		printf("schedule %s %s\n", name, past);
	}
	if (!done)
		ctl_errx("no schedule %s", name);
	return done ? CTL_OK : CTL_FAIL;
}

int
ctl_verb_unschedule(struct ctl *c, char **args)
{
	return change_schedule(c, args[0], stmt_ctl_unschedule, NULL, "removed");
}

int
ctl_verb_enable(struct ctl *c, char **args)
{
	return change_schedule(c, args[0], stmt_ctl_schedule_enable, "true", "enabled");
}

int
ctl_verb_disable(struct ctl *c, char **args)
{
	return change_schedule(c, args[0], stmt_ctl_schedule_enable, "false", "disabled");
}

/* retention: the table; retention STATE KEEP: set one and print its row. */
int
ctl_verb_retention(struct ctl *c, char **args)
{
	const char *params[] = {args[0], args[1]};
	PGresult *res;

	if (args[0] && !args[1])
		return ctl_usage_error("retention: STATE needs KEEP");
	res = args[0] ? ctl_query(c, stmt_ctl_set_retention, 2, params)
	              : ctl_query(c, stmt_ctl_retention, 0, NULL);
	if (!res)
		return CTL_FAIL;
	print_rows(c, res, "retention");
	PQclear(res);
	return CTL_OK;
}

int
ctl_verb_maintain(struct ctl *c, char **args)
{
	PGresult *res;

	(void)args;
	if (!(res = ctl_query(c, stmt_ctl_maintain, 0, NULL)))
		return CTL_FAIL;
	print_row(c, res);
	PQclear(res);
	return CTL_OK;
}

int
ctl_verb_grants(struct ctl *c, char **args)
{
	(void)args;
	return list_verb(c, stmt_ctl_grants, "grants");
}

/* grant ROLE TYPE: done whether or not the right was there before (said
 * so); revoke ROLE TYPE: not done when there was no such right. */
static int
change_grant(struct ctl *c, char **args, bool grant)
{
	const char *params[] = {args[0], args[1]};
	PGresult *res;
	bool done;

	if (!(res = ctl_query(c, grant ? stmt_ctl_grant : stmt_ctl_revoke, 2, params)))
		return CTL_FAIL;
	done = ctl_value(res, 0, "done") && *ctl_value(res, 0, "done") == 't';
	PQclear(res);
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"role\":", 8);
		buf_json_string(&b, args[0]);
		buf_add(&b, ",\"type\":", 8);
		buf_json_string(&b, args[1]);
		buf_printf(&b, ",\"%s\":%s}", grant ? "granted" : "revoked", done ? "true" : "false");
		ctl_print_json(&b);
	} else if (grant) {
		printf("%s may enqueue %s%s\n", args[0], args[1], done ? "" : " (already)");
	} else if (done) {
		printf("%s may no longer enqueue %s\n", args[0], args[1]);
	}
	if (!grant && !done) {
		ctl_errx("no grant of %s to %s", args[1], args[0]);
		return CTL_FAIL;
	}
	return CTL_OK;
}

int
ctl_verb_grant(struct ctl *c, char **args)
{
	return change_grant(c, args, true);
}

int
ctl_verb_revoke(struct ctl *c, char **args)
{
	return change_grant(c, args, false);
}
