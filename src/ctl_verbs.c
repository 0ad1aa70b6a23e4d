/*
 * ctl_verbs: the verbs of `pgjobd ctl` that are one call of the SQL API or
 * one read of its relations: status, jobs, show, enqueue, cancel, retry,
 * migrate.  doctor has a file of its own (ctl_doctor.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_out.h"
#include "ctl_verb.h"
#include "migrate.h"
#include "stmts.h"

#define CTL_DEFAULT_LIMIT "50"

int
ctl_verb_status(struct ctl *c, char **args)
{
	char stale[32];
	const char *params[] = {stale};
	PGresult *workers, *queues;

	(void)args;
	snprintf(stale, sizeof stale, "%" PRId64, c->stale_ms);
	if (!(workers = ctl_query(c, stmt_ctl_workers, 1, params)))
		return CTL_FAIL;
	if (!(queues = ctl_query(c, stmt_ctl_queues, 0, NULL))) {
		PQclear(workers);
		return CTL_FAIL;
	}
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"workers\":", 11);
		ctlout_json_array(&b, workers);
		buf_add(&b, ",\"queues\":", 10);
		ctlout_json_array(&b, queues);
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else {
		printf("WORKERS\n");
		ctlout_table(stdout, workers, c->cell_max);
		printf("\nQUEUES\n");
		ctlout_table(stdout, queues, c->cell_max);
	}
	PQclear(workers);
	PQclear(queues);
	return CTL_OK;
}

int
ctl_verb_jobs(struct ctl *c, char **args)
{
	char limit[32];
	const char *params[] = {c->opt[OPT_QUEUE], c->opt[OPT_TYPE], c->opt[OPT_STATE], limit};
	PGresult *res;
	int rc;

	(void)args;
	rc = ctl_parse_int("--limit", c->opt[OPT_LIMIT] ? c->opt[OPT_LIMIT] : CTL_DEFAULT_LIMIT, 1,
	                   INT64_MAX, limit, sizeof limit);
	if (rc)
		return rc;
	if (!(res = ctl_query(c, stmt_ctl_jobs, 4, params)))
		return CTL_FAIL;
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"jobs\":", 8);
		ctlout_json_array(&b, res);
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else {
		ctlout_table(stdout, res, c->cell_max);
	}
	PQclear(res);
	return CTL_OK;
}

int
ctl_verb_show(struct ctl *c, char **args)
{
	const char *params[] = {args[0]};
	PGresult *job, *attempts;
	long long id;

	if (!ctl_parse_id(args[0], &id))
		return ctl_usage_error("not a job id: %s", args[0]);
	if (!(job = ctl_query(c, stmt_ctl_show_job, 1, params)))
		return CTL_FAIL;
	if (PQntuples(job) == 0) {
		PQclear(job);
		ctl_errx("no job %lld", id);
		return CTL_FAIL;
	}
	if (!(attempts = ctl_query(c, stmt_ctl_show_attempts, 1, params))) {
		PQclear(job);
		return CTL_FAIL;
	}
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"job\":", 7);
		ctlout_json_object(&b, job, 0);
		buf_add(&b, ",\"attempts\":", 12);
		ctlout_json_array(&b, attempts);
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else {
		/* Records, not a table: an attempt's error is the reason and
		 * then the tail of stderr, worth reading whole. */
		ctlout_record(stdout, job, 0);
		for (int i = 0; i < PQntuples(attempts); i++) {
			printf("\nATTEMPT %s\n", ctl_value(attempts, i, "attempt"));
			ctlout_record(stdout, attempts, i);
		}
		if (PQntuples(attempts) == 0)
			printf("\nno finished attempts\n");
	}
	PQclear(job);
	PQclear(attempts);
	return CTL_OK;
}

int
ctl_verb_enqueue(struct ctl *c, char **args)
{
	struct ctl_limits lim;
	char in[32];
	const char *params[9];
	char *payload;
	PGresult *res;
	int64_t ms;
	int rc;

	if (c->opt[OPT_AT] && c->opt[OPT_IN])
		return ctl_usage_error("--at and --in exclude each other");
	rc = ctl_parse_limits(c, &lim);
	if (!rc && c->opt[OPT_IN] && !(rc = ctl_parse_duration("--in", c->opt[OPT_IN], &ms)))
		snprintf(in, sizeof in, "%" PRId64, ms);
	if (rc)
		return rc;
	if (!(params[1] = ctl_payload(args[1], &payload)))
		return CTL_FAIL;

	params[0] = args[0];
	params[2] = c->opt[OPT_QUEUE] ? c->opt[OPT_QUEUE] : "default";
	params[3] = c->opt[OPT_AT];
	params[4] = c->opt[OPT_IN] ? in : NULL;
	params[5] = lim.priority;
	params[6] = lim.max_attempts;
	params[7] = c->opt[OPT_KEY];
	params[8] = lim.timeout;
	res = ctl_query(c, stmt_ctl_enqueue, 9, params);
	free(payload);
	if (!res)
		return CTL_FAIL;
	if (c->json)
		printf("{\"id\":%s}\n", ctl_value(res, 0, "id"));
	else
		printf("%s\n", ctl_value(res, 0, "id"));
	PQclear(res);
	return CTL_OK;
}

/*
 * cancel and retry: STMT returns whether it happened (column "done"); when
 * it did not, the job's state says why.  PAST is the verb's past tense.
 */
static int
change_state(struct ctl *c, const char *arg, const char *stmt, const char *past)
{
	const char *params[] = {arg};
	PGresult *res, *st;
	long long id;
	bool done;
	const char *state;

	if (!ctl_parse_id(arg, &id))
		return ctl_usage_error("not a job id: %s", arg);
	if (!(res = ctl_query(c, stmt, 1, params)))
		return CTL_FAIL;
	done = ctl_value(res, 0, "done") && *ctl_value(res, 0, "done") == 't';
	PQclear(res);
	if (!(st = ctl_query(c, stmt_ctl_job_state, 1, params)))
		return CTL_FAIL;
	state = ctl_value(st, 0, "state");
	if (c->json) {
		struct buf b = {0};
		buf_printf(&b, "{\"id\":%lld,\"%s\":%s,\"state\":", id, past,
		           done ? "true" : "false");
		if (state)
			buf_json_string(&b, state);
		else
			buf_add(&b, "null", 4);
		buf_add(&b, "}", 1);
		ctl_print_json(&b);
	} else if (done) {
		printf("job %lld %s\n", id, past);
	}
	if (!done && state)
		ctl_errx("job %lld is %s: not %s", id, state, past);
	else if (!done)
		ctl_errx("no job %lld", id);
	PQclear(st);
	return done ? CTL_OK : CTL_FAIL;
}

int
ctl_verb_cancel(struct ctl *c, char **args)
{
	return change_state(c, args[0], stmt_ctl_cancel, "cancelled");
}

int
ctl_verb_retry(struct ctl *c, char **args)
{
	return change_state(c, args[0], stmt_ctl_retry, "retried");
}

int
ctl_verb_migrate(struct ctl *c, char **args)
{
	char err[1024];
	int version;

	(void)args;
	version = migrate_apply(c->conn, err, sizeof err);
	if (version < 0) {
		ctl_errx("migration failed: %s", err);
		return CTL_FAIL;
	}
	if (c->json)
		printf("{\"schema_version\":%d}\n", version);
	else
		printf("schema version %d\n", version);
	return CTL_OK;
}
