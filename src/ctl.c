/*
 * ctl: see ctl.h.
 *
 * The command line, the connection and the dispatch, plus the helpers the
 * verbs share (ctl_verb.h).  One pass of getopt_long reads every option
 * wherever it stands (before or after the verb); the verb's row in the
 * verbs[] table then says which options and how many arguments it takes.
 * Each verb runs statements sql/stmt/ctl_*.sql with text parameters only
 * and hands the results to ctl_out for printing; result columns it reads
 * itself are read by name.
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
#include "ctl_verb.h"
#include "log.h"
#include "stmts.h"
#include "xmalloc.h"

#define CTL_DEFAULT_STALE_MS (2 * 60 * 1000)
#define CTL_DEFAULT_SINCE_MS (60 * 60 * 1000)

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
    {"tz", required_argument, NULL, OPT_TZ},
    {"missed", required_argument, NULL, OPT_MISSED},
    {"overlap", required_argument, NULL, OPT_OVERLAP},
    {NULL, 0, NULL, 0},
};

struct verb {
	const char *name;
	int (*run)(struct ctl *c, char **args);
	int min_args, max_args;
	const char *opts; /* letters of the options it takes besides the common ones */
};

void
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
	fputs("usage: pgjobd ctl [-c FILE | -d CONNINFO] [--json] [--full] VERB [ARGS]\n"
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
	      "                                       what needs attention; exit 1 if anything\n"
	      "  schedules                            every schedule and its last run\n"
	      "  schedule NAME CRON TYPE [PAYLOAD|-] [--queue Q] [--tz ZONE] [--priority N]\n"
	      "          [--max-attempts N] [--timeout DURATION] [--missed skip|once|all]\n"
	      "          [--overlap allow|skip]  create or replace a schedule\n"
	      "  unschedule NAME                      remove a schedule\n"
	      "  enable NAME                          resume a disabled schedule\n"
	      "  disable NAME                         pause a schedule\n"
	      "  retention [STATE KEEP]               how long finished jobs are kept; set\n"
	      "                                       one state's (KEEP: an interval, '14 days')\n"
	      "  maintain                             run the periodic upkeep once\n"
	      "  grants                               which roles may enqueue which types\n"
	      "  grant ROLE TYPE                      let ROLE enqueue TYPE (*: every type)\n"
	      "  revoke ROLE TYPE                     take that back\n"
	      "  -c, --config FILE        the database = of FILE; without -c or -d:\n"
	      "                           " CFG_DEFAULT_PATH " if readable, else PG*\n"
	      "  -d, --database CONNINFO  a libpq connection string or URI\n"
	      "      --json               one JSON document on stdout\n"
	      "      --full               do not shorten long table cells\n"
	      "Durations: an integer with ms, s, m, h or d; --stale 2m and --since 1h\n"
	      "by default.  Exit status: 0 done, 1 not done or needs attention,\n"
	      "64 usage, 78 configuration.\n",
	      f);
}

int
ctl_usage_error(const char *fmt, ...)
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
PGresult *
ctl_query(struct ctl *c, const char *sql, int n, const char *const *params)
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
const char *
ctl_value(const PGresult *res, int row, const char *name)
{
	int col = PQfnumber(res, name);

	if (col < 0 || row >= PQntuples(res) || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

void
ctl_print_json(struct buf *b)
{
	printf("%s\n", b->p ? b->p : "null");
	free(b->p);
	*b = (struct buf){0};
}

/* The whole of stdin (malloc'd), or NULL after printing why. */
char *
ctl_read_stdin(void)
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

const char *
ctl_payload(const char *arg, char **owned)
{
	*owned = NULL;
	if (arg && !strcmp(arg, "-"))
		return *owned = ctl_read_stdin();
	return arg ? arg : "{}";
}

int
ctl_parse_limits(struct ctl *c, struct ctl_limits *l)
{
	int64_t ms;
	int rc = 0;

	snprintf(l->priority_buf, sizeof l->priority_buf, "0");
	l->priority = l->priority_buf;
	l->max_attempts = l->timeout = NULL;
	if (c->opt[OPT_PRIORITY])
		rc = ctl_parse_int("--priority", c->opt[OPT_PRIORITY], INT32_MIN, INT32_MAX,
		                   l->priority_buf, sizeof l->priority_buf);
	/* Any integer: the SQL functions refuse what is below 1 themselves. */
	if (!rc && c->opt[OPT_MAX_ATTEMPTS] &&
	    !(rc = ctl_parse_int("--max-attempts", c->opt[OPT_MAX_ATTEMPTS], INT32_MIN, INT32_MAX,
	                         l->max_attempts_buf, sizeof l->max_attempts_buf)))
		l->max_attempts = l->max_attempts_buf;
	if (!rc && c->opt[OPT_TIMEOUT] &&
	    !(rc = ctl_parse_duration("--timeout", c->opt[OPT_TIMEOUT], &ms))) {
		snprintf(l->timeout_buf, sizeof l->timeout_buf, "%" PRId64, ms);
		l->timeout = l->timeout_buf;
	}
	return rc;
}

/* A job id: a positive integer, or a usage error. */
bool
ctl_parse_id(const char *s, long long *id)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	return *s && !*end && errno == 0 && *id > 0;
}

int
ctl_parse_int(const char *name, const char *s, long long min, long long max, char *out, size_t len)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return ctl_usage_error("%s: not an integer from %lld to %lld: %s", name, min, max,
		                       s);
	snprintf(out, len, "%lld", v);
	return 0;
}

int
ctl_parse_duration(const char *name, const char *s, int64_t *ms)
{
	const char *err;

	if (cfg_parse_duration(s, ms, &err) < 0)
		return ctl_usage_error("%s: %s: %s", name, err, s);
	return 0;
}

/* The verbs: name, function, arguments (least, most), the letters of the
 * options each takes besides those every verb takes (c, d, h, j, f). */
static const struct verb verbs[] = {
    {"status", ctl_verb_status, 0, 0, "S"},         /* --stale */
    {"jobs", ctl_verb_jobs, 0, 0, "qtsn"},          /* --queue --type --state --limit */
    {"show", ctl_verb_show, 1, 1, ""},              /* ID */
    {"enqueue", ctl_verb_enqueue, 1, 2, "qaipmkT"}, /* TYPE [PAYLOAD|-] */
    {"cancel", ctl_verb_cancel, 1, 1, ""},          /* ID */
    {"retry", ctl_verb_retry, 1, 1, ""},            /* ID */
    {"migrate", ctl_verb_migrate, 0, 0, ""},
    {"doctor", ctl_verb_doctor, 0, 0, "SW"}, /* --stale --since */
    {"schedules", ctl_verb_schedules, 0, 0, ""},
    /* NAME CRON TYPE [PAYLOAD|-] --queue --tz --priority --max-attempts
     * --timeout --missed --overlap */
    {"schedule", ctl_verb_schedule, 3, 4, "qzpmTMO"},
    {"unschedule", ctl_verb_unschedule, 1, 1, ""}, /* NAME */
    {"enable", ctl_verb_enable, 1, 1, ""},         /* NAME */
    {"disable", ctl_verb_disable, 1, 1, ""},       /* NAME */
    {"retention", ctl_verb_retention, 0, 2, ""},   /* [STATE KEEP] */
    {"maintain", ctl_verb_maintain, 0, 0, ""},
    {"grants", ctl_verb_grants, 0, 0, ""},
    {"grant", ctl_verb_grant, 2, 2, ""},   /* ROLE TYPE */
    {"revoke", ctl_verb_revoke, 2, 2, ""}, /* ROLE TYPE */
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
			return ctl_usage_error("unknown option or missing value: %s",
			                       argv[optind - 1]);
		if (ch == OPT_HELP) {
			usage(stdout);
			return 0;
		}
		c.opt[ch] = optarg ? optarg : "";
	}
	args = argv + optind;
	nargs = argc - optind;
	if (nargs == 0)
		return ctl_usage_error("no verb given");
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcmp(verbs[i].name, args[0]))
			v = &verbs[i];
	if (!v)
		return ctl_usage_error("unknown verb: %s", args[0]);
	args++, nargs--;
	if (nargs < v->min_args)
		return ctl_usage_error("%s: missing argument", v->name);
	if (nargs > v->max_args)
		return ctl_usage_error("%s: unexpected argument: %s", v->name, args[v->max_args]);
	for (int o = 0; o < 128; o++)
		if (c.opt[o] && !strchr("cdjf", o) && !strchr(v->opts, o))
			return ctl_usage_error("%s does not take --%s", v->name, long_name(o));
	if (c.opt[OPT_CONFIG] && c.opt[OPT_DATABASE])
		return ctl_usage_error("-c and -d exclude each other");
	c.json = c.opt[OPT_JSON] != NULL;
	if (c.opt[OPT_FULL])
		c.cell_max = 0;
	c.stale_ms = CTL_DEFAULT_STALE_MS;
	c.since_ms = CTL_DEFAULT_SINCE_MS;
	if (c.opt[OPT_STALE] && (rc = ctl_parse_duration("--stale", c.opt[OPT_STALE], &c.stale_ms)))
		return rc;
	if (c.opt[OPT_SINCE] && (rc = ctl_parse_duration("--since", c.opt[OPT_SINCE], &c.since_ms)))
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
