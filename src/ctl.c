/*
 * ctl: see ctl.h.
 *
 * One pass of getopt_long reads every option wherever it stands (before or
 * after the verb); the verb's row in the verbs[] table then says which
 * options and how many arguments it takes.  Each verb runs statements
 * sql/stmt/ctl_*.sql with text parameters and hands the results to ctl_out
 * for printing; result columns are read by name.
 */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "ctl_out.h"
#include "log.h"
#include "migrate.h"
#include "stmts.h"
#include "xmalloc.h"

enum { CTL_OK = 0, CTL_FAIL = 1 };

#define CTL_DEFAULT_STALE_MS (2 * 60 * 1000)
#define CTL_DEFAULT_SINCE_MS (60 * 60 * 1000)
#define CTL_DEFAULT_LIMIT "50"

/* Options; the letters double as the verbs' lists of what they accept. */
enum opt {
	OPT_CONFIG = 'c',
	OPT_DATABASE = 'd',
	OPT_HELP = 'h',
	OPT_JSON = 'j',
	OPT_FULL = 'f',
	OPT_QUEUE = 'q',
	OPT_TYPE = 't',
	OPT_STATE = 's',
	OPT_LIMIT = 'n',
	OPT_AT = 'a',
	OPT_IN = 'i',
	OPT_PRIORITY = 'p',
	OPT_MAX_ATTEMPTS = 'm',
	OPT_KEY = 'k',
	OPT_TIMEOUT = 'T',
	OPT_STALE = 'S',
	OPT_SINCE = 'W',
};

static const struct option longopts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"database", required_argument, NULL, OPT_DATABASE},
    {"help", no_argument, NULL, OPT_HELP},
    {"json", no_argument, NULL, OPT_JSON},
    {"full", no_argument, NULL, OPT_FULL},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"type", required_argument, NULL, OPT_TYPE},
    {"state", required_argument, NULL, OPT_STATE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"at", required_argument, NULL, OPT_AT},
    {"in", required_argument, NULL, OPT_IN},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"key", required_argument, NULL, OPT_KEY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"stale", required_argument, NULL, OPT_STALE},
    {"since", required_argument, NULL, OPT_SINCE},
    {NULL, 0, NULL, 0},
};

/* Every option's value as given (NULL: not given), indexed by its letter. */
struct ctl {
	const char *opt[128];
	PGconn *conn;
	bool json;
	size_t cell_max;
	int64_t stale_ms, since_ms;
};

struct verb {
	const char *name;
	int (*run)(struct ctl *c, char **args);
	int min_args, max_args;
	const char *opts; /* letters of the options it takes besides the common ones */
};

static void ctl_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, whatever line breaks the message carries. */
static void
ctl_errx(const char *fmt, ...)
{
	char *msg, line[4096];
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	fprintf(stderr, "pgjobd ctl: %s\n", log_oneline(line, sizeof line, msg ? msg : fmt));
	free(msg);
}

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pgjobd ctl [-c FILE | -d CONNINFO] [--json] [--full] VERB [ARGS]\n"
	    "  status [--stale DURATION]            workers and queues at a glance\n"
	    "  jobs [--queue Q] [--type T] [--state S] [--limit N]\n"
	    "                                       jobs, newest first (default 50)\n"
	    "  show ID                              a job and its attempts with their errors\n"
	    "  enqueue TYPE [PAYLOAD|-] [--queue Q] [--at TIME | --in DURATION]\n"
	    "          [--priority N] [--max-attempts N] [--key KEY] [--timeout DURATION]\n"
	    "                                       enqueue a job (- reads the payload from\n"
	    "                                       stdin) and print its id\n"
	    "  cancel ID                            cancel a ready or running job\n"
	    "  retry ID                             make a dead or cancelled job ready again\n"
	    "  migrate                              install or upgrade the SQL schema\n"
	    "  doctor [--stale DURATION] [--since DURATION]\n"
	    "                                       findings that need attention; exit 1 if any\n"
	    "  -c, --config FILE      use the database = of FILE (default " CFG_DEFAULT_PATH
	    " if readable, else libpq's PG* environment)\n"
	    "  -d, --database CONNINFO  libpq connection string or URI\n"
	    "      --json             one JSON document on stdout\n"
	    "      --full             do not shorten long table cells\n"
	    "Durations: an integer with ms, s, m, h or d.  --stale defaults to 2m, --since to 1h.\n"
	    "Exit status: 0 done, 1 not done or needs attention, 64 usage, 78 configuration.\n");
}

/* A usage error: one line, exit EX_USAGE. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int
usage_error(const char *fmt, ...)
{
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	ctl_errx("%s (pgjobd ctl -h for usage)", msg ? msg : fmt);
	free(msg);
	return EX_USAGE;
}

/* A statement's failure as one line: the server's primary message (a
 * refusal by the SQL API names the argument), with a hint when the schema
 * is not installed at all. */
static void
query_error(struct ctl *c, const PGresult *res)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	bool missing = state && (!strcmp(state, "42P01") || !strcmp(state, "3F000"));

	ctl_errx("%s%s%s%s", msg ? msg : PQerrorMessage(c->conn), detail ? ": " : "",
	         detail ? detail : "",
	         missing ? " (is the schema installed? pgjobd ctl migrate)" : "");
}

/* Run SQL with N text parameters (NULL: SQL NULL).  Returns the result, or
 * NULL after printing the error. */
static PGresult *
query(struct ctl *c, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	query_error(c, res);
	PQclear(res);
	return NULL;
}

/* The value of column NAME in row ROW, NULL for SQL NULL. */
static const char *
value(const PGresult *res, int row, const char *name)
{
	int col = PQfnumber(res, name);

	if (col < 0 || row >= PQntuples(res) || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

static void
print_json(struct buf *b)
{
	printf("%s\n", b->p ? b->p : "null");
	free(b->p);
	*b = (struct buf){0};
}

/* A job id: a positive integer, or a usage error. */
static bool
parse_id(const char *s, long long *id)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	return *s && !*end && errno == 0 && *id > 0;
}

static int
parse_int_opt(const char *name, const char *s, long long min, long long max, char *out, size_t len)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return usage_error("%s: not an integer from %lld to %lld: %s", name, min, max, s);
	snprintf(out, len, "%lld", v);
	return 0;
}

static int
parse_duration_opt(const char *name, const char *s, int64_t *ms)
{
	const char *err;

	if (cfg_parse_duration(s, ms, &err) < 0)
		return usage_error("%s: %s: %s", name, err, s);
	return 0;
}

/* ---- the verbs ---- */

static int
verb_status(struct ctl *c, char **args)
{
	char stale[32];
	const char *params[] = {stale};
	PGresult *workers, *queues;

	(void)args;
	snprintf(stale, sizeof stale, "%" PRId64, c->stale_ms);
	if (!(workers = query(c, stmt_ctl_workers, 1, params)))
		return CTL_FAIL;
	if (!(queues = query(c, stmt_ctl_queues, 0, NULL))) {
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
		print_json(&b);
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

static int
verb_jobs(struct ctl *c, char **args)
{
	char limit[32];
	const char *params[] = {c->opt[OPT_QUEUE], c->opt[OPT_TYPE], c->opt[OPT_STATE], limit};
	PGresult *res;
	int rc;

	(void)args;
	rc = parse_int_opt("--limit", c->opt[OPT_LIMIT] ? c->opt[OPT_LIMIT] : CTL_DEFAULT_LIMIT, 1,
	                   INT64_MAX, limit, sizeof limit);
	if (rc)
		return rc;
	if (!(res = query(c, stmt_ctl_jobs, 4, params)))
		return CTL_FAIL;
	if (c->json) {
		struct buf b = {0};
		buf_add(&b, "{\"jobs\":", 8);
		ctlout_json_array(&b, res);
		buf_add(&b, "}", 1);
		print_json(&b);
	} else {
		ctlout_table(stdout, res, c->cell_max);
	}
	PQclear(res);
	return CTL_OK;
}

static int
verb_show(struct ctl *c, char **args)
{
	const char *params[] = {args[0]};
	PGresult *job, *attempts;
	long long id;

	if (!parse_id(args[0], &id))
		return usage_error("not a job id: %s", args[0]);
	if (!(job = query(c, stmt_ctl_show_job, 1, params)))
		return CTL_FAIL;
	if (PQntuples(job) == 0) {
		PQclear(job);
		ctl_errx("no job %lld", id);
		return CTL_FAIL;
	}
	if (!(attempts = query(c, stmt_ctl_show_attempts, 1, params))) {
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
		print_json(&b);
	} else {
		/* Records, not a table: an attempt's error is the reason and
		 * then the tail of stderr, worth reading whole. */
		ctlout_record(stdout, job, 0);
		for (int i = 0; i < PQntuples(attempts); i++) {
			printf("\nATTEMPT %s\n",
			       PQgetvalue(attempts, i, PQfnumber(attempts, "attempt")));
			ctlout_record(stdout, attempts, i);
		}
		if (PQntuples(attempts) == 0)
			printf("\nno finished attempts\n");
	}
	PQclear(job);
	PQclear(attempts);
	return CTL_OK;
}

/* The whole of stdin (malloc'd), or NULL after printing why. */
static char *
read_stdin(void)
{
	struct buf b = {0};
	char chunk[8192];
	size_t n;

	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		buf_add(&b, chunk, n);
	if (ferror(stdin)) {
		ctl_errx("reading the payload from stdin: %s", strerror(errno));
		free(b.p);
		return NULL;
	}
	return buf_take(&b);
}

static int
verb_enqueue(struct ctl *c, char **args)
{
	char priority[32] = "0", max_attempts[32], in[32], timeout[32];
	const char *params[9];
	char *payload = NULL;
	PGresult *res;
	int64_t ms;
	int rc = 0;

	if (c->opt[OPT_AT] && c->opt[OPT_IN])
		return usage_error("--at and --in exclude each other");
	if (c->opt[OPT_PRIORITY])
		rc = parse_int_opt("--priority", c->opt[OPT_PRIORITY], INT32_MIN, INT32_MAX,
		                   priority, sizeof priority);
	/* Any integer: pgjobd.enqueue refuses what is below 1 itself. */
	if (!rc && c->opt[OPT_MAX_ATTEMPTS])
		rc = parse_int_opt("--max-attempts", c->opt[OPT_MAX_ATTEMPTS], INT32_MIN, INT32_MAX,
		                   max_attempts, sizeof max_attempts);
	if (!rc && c->opt[OPT_IN] && !(rc = parse_duration_opt("--in", c->opt[OPT_IN], &ms)))
		snprintf(in, sizeof in, "%" PRId64, ms);
	if (!rc && c->opt[OPT_TIMEOUT] &&
	    !(rc = parse_duration_opt("--timeout", c->opt[OPT_TIMEOUT], &ms)))
		snprintf(timeout, sizeof timeout, "%" PRId64, ms);
	if (rc)
		return rc;
	if (args[1] && !strcmp(args[1], "-") && !(payload = read_stdin()))
		return CTL_FAIL;

	params[0] = args[0];
	params[1] = payload ? payload : args[1] ? args[1] : "{}";
	params[2] = c->opt[OPT_QUEUE] ? c->opt[OPT_QUEUE] : "default";
	params[3] = c->opt[OPT_AT];
	params[4] = c->opt[OPT_IN] ? in : NULL;
	params[5] = priority;
	params[6] = c->opt[OPT_MAX_ATTEMPTS] ? max_attempts : NULL;
	params[7] = c->opt[OPT_KEY];
	params[8] = c->opt[OPT_TIMEOUT] ? timeout : NULL;
	res = query(c, stmt_ctl_enqueue, 9, params);
	free(payload);
	if (!res)
		return CTL_FAIL;
	if (c->json)
		printf("{\"id\":%s}\n", value(res, 0, "id"));
	else
		printf("%s\n", value(res, 0, "id"));
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

	if (!parse_id(arg, &id))
		return usage_error("not a job id: %s", arg);
	if (!(res = query(c, stmt, 1, params)))
		return CTL_FAIL;
	done = value(res, 0, "done") && *value(res, 0, "done") == 't';
	PQclear(res);
	if (!(st = query(c, stmt_ctl_job_state, 1, params)))
		return CTL_FAIL;
	state = value(st, 0, "state");
	if (c->json) {
		struct buf b = {0};
		buf_printf(&b, "{\"id\":%lld,\"%s\":%s,\"state\":", id, past,
		           done ? "true" : "false");
		if (state)
			buf_json_string(&b, state);
		else
			buf_add(&b, "null", 4);
		buf_add(&b, "}", 1);
		print_json(&b);
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

static int
verb_cancel(struct ctl *c, char **args)
{
	return change_state(c, args[0], stmt_ctl_cancel, "cancelled");
}

static int
verb_retry(struct ctl *c, char **args)
{
	return change_state(c, args[0], stmt_ctl_retry, "retried");
}

static int
verb_migrate(struct ctl *c, char **args)
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

/*
 * doctor: the schema version against this binary's, then (when the schema
 * has everything the checks read) the findings of ctl_doctor.sql.  Every
 * finding is one line "KIND: detail"; none prints "ok".
 */
static int
verb_doctor(struct ctl *c, char **args)
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
		if (!(res = query(c, stmt_ctl_doctor, 2, params))) {
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
		print_json(&b);
	} else {
		if (schema)
			printf("schema: %s\n", schema);
		for (int i = 0; res && i < PQntuples(res); i++)
			printf("%s: %s\n", value(res, i, "kind"), value(res, i, "detail"));
		if (!nfindings)
			printf("ok\n");
	}
	free(schema);
	PQclear(res);
	return nfindings ? CTL_FAIL : CTL_OK;
}

/* Options every verb takes: c, d, h, j, f. */
static const struct verb verbs[] = {
    {"status", verb_status, 0, 0, "S"},  {"jobs", verb_jobs, 0, 0, "qtsn"},
    {"show", verb_show, 1, 1, ""},       {"enqueue", verb_enqueue, 1, 2, "qaipmkT"},
    {"cancel", verb_cancel, 1, 1, ""},   {"retry", verb_retry, 1, 1, ""},
    {"migrate", verb_migrate, 0, 0, ""}, {"doctor", verb_doctor, 0, 0, "SW"},
};

/*
 * The connection string: -d as given; else the database = of -c FILE, or
 * of the default config when it is readable; else "" (libpq defaults).
 * Returns malloc'd conninfo, or NULL after printing the config's errors
 * (the caller exits EX_CONFIG).
 */
static char *
conninfo(struct ctl *c)
{
	const char *path = c->opt[OPT_CONFIG];
	char *errors = NULL, *info;
	struct cfg *cfg;

	if (c->opt[OPT_DATABASE])
		return xstrdup(c->opt[OPT_DATABASE]);
	if (!path && access(CFG_DEFAULT_PATH, R_OK) == 0)
		path = CFG_DEFAULT_PATH;
	if (!path)
		return xstrdup("");
	if (!(cfg = cfg_load(path, &errors))) {
		fputs(errors, stderr);
		free(errors);
		return NULL;
	}
	info = xstrdup(cfg->database);
	cfg_free(cfg);
	return info;
}

static PGconn *
connect_db(const char *info)
{
	/* Ours come after the user's conninfo (expanded from dbname) and
	 * win: UTF8, so that ctl_out's JSON is valid whatever the locale. */
	const char *keys[] = {"dbname", "application_name", "client_encoding", NULL};
	const char *vals[] = {info, "pgjobd ctl", "UTF8", NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	PGresult *res;

	if (PQstatus(conn) != CONNECTION_OK) {
		ctl_errx("cannot connect to the database: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	res = PQexec(conn, stmt_ctl_session);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		ctl_errx("setting up the session: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

/* The long name of option letter O. */
static const char *
long_name(int o)
{
	for (const struct option *l = longopts; l->name; l++)
		if (l->val == o)
			return l->name;
	return "?";
}

int
ctl_main(int argc, char **argv)
{
	struct ctl c = {.cell_max = CTLOUT_CELL_MAX};
	const struct verb *v = NULL;
	char *info, **args;
	int ch, nargs, rc;

	opterr = 0; /* our own one-line messages */
	optind = 0; /* a fresh getopt state, whatever ran before */
	while ((ch = getopt_long(argc, argv, "c:d:h", longopts, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return usage_error("unknown option or missing value: %s", argv[optind - 1]);
		if (ch == OPT_HELP) {
			usage(stdout);
			return 0;
		}
		c.opt[ch] = optarg ? optarg : "";
	}
	args = argv + optind;
	nargs = argc - optind;
	if (nargs == 0)
		return usage_error("no verb given");
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(verbs[i].name, args[0]))
			v = &verbs[i];
	if (!v)
		return usage_error("unknown verb: %s", args[0]);
	args++, nargs--;
	if (nargs < v->min_args)
		return usage_error("%s: missing argument", v->name);
	if (nargs > v->max_args)
		return usage_error("%s: unexpected argument: %s", v->name, args[v->max_args]);
	for (int o = 0; o < 128; o++)
		if (c.opt[o] && !strchr("cdjf", o) && !strchr(v->opts, o))
			return usage_error("%s does not take --%s", v->name, long_name(o));
	if (c.opt[OPT_CONFIG] && c.opt[OPT_DATABASE])
		return usage_error("-c and -d exclude each other");
	c.json = c.opt[OPT_JSON] != NULL;
	if (c.opt[OPT_FULL])
		c.cell_max = 0;
	c.stale_ms = CTL_DEFAULT_STALE_MS;
	c.since_ms = CTL_DEFAULT_SINCE_MS;
	if (c.opt[OPT_STALE] && (rc = parse_duration_opt("--stale", c.opt[OPT_STALE], &c.stale_ms)))
		return rc;
	if (c.opt[OPT_SINCE] && (rc = parse_duration_opt("--since", c.opt[OPT_SINCE], &c.since_ms)))
		return rc;

	if (!(info = conninfo(&c)))
		return EX_CONFIG;
	c.conn = connect_db(info);
	free(info);
	if (!c.conn)
		return CTL_FAIL;
	rc = v->run(&c, args);
	PQfinish(c.conn);
	return rc;
}
