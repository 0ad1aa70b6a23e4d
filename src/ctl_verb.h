/*
 * ctl_verb: what the verbs of `pgjobd ctl` share, private to ctl*.c.
 *
 * ctl.c parses the command line into a struct ctl, connects, and calls the
 * verb's function from its verbs[] table; the verbs (ctl_verbs.c,
 * ctl_doctor.c, ctl_admin.c) run their sql/stmt/ctl_*.sql statements through
 * ctl_query() and print with ctl_out.  A new verb is a function here, a
 * row in verbs[] and its statements.
 */
#ifndef PGJOBD_CTL_VERB_H
#define PGJOBD_CTL_VERB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Exit statuses besides EX_USAGE and EX_CONFIG (see ctl.h). */
enum { CTL_OK = 0, CTL_FAIL = 1 };

/* Options, by letter; the verbs[] table lists each verb's letters. */
enum ctl_opt {
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
	OPT_TZ = 'z',
	OPT_MISSED = 'M',
	OPT_OVERLAP = 'O',
};

struct ctl {
	const char *opt[128]; /* each option's value as given, NULL: not given */
	PGconn *conn;
	bool json;        /* --json */
	size_t cell_max;  /* table cells cut to this; 0: --full */
	int64_t stale_ms; /* --stale, default 2m */
	int64_t since_ms; /* --since, default 1h */
};

/* One line "pgjobd ctl: ..." on stderr, whatever line breaks it carries. */
void ctl_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same plus a pointer to -h; returns EX_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run SQL with N text parameters (NULL: SQL NULL).  Returns the result, or
 * NULL after printing the server's message as one line. */
PGresult *ctl_query(struct ctl *c, const char *sql, int n, const char *const *params);
/* The value of column NAME in row ROW; NULL for SQL NULL or no such row. */
const char *ctl_value(const PGresult *res, int row, const char *name);
/* Print B and a newline on stdout; B is emptied. */
void ctl_print_json(struct buf *b);

/* The whole of stdin (malloc'd), or NULL after saying why. */
char *ctl_read_stdin(void);
/* A job's payload argument ARG: "-" is stdin (malloc'd into *OWNED, to be
 * freed), none is "{}".  NULL after saying why stdin could not be read. */
const char *ctl_payload(const char *arg, char **owned);

/* The limits a job takes that enqueue and schedule share, as the SQL
 * parameters' text: --priority (default 0), --max-attempts and --timeout
 * (in ms; each NULL when not given). */
struct ctl_limits {
	const char *priority, *max_attempts, *timeout;
	char priority_buf[32], max_attempts_buf[32], timeout_buf[32];
};
/* Fill L from C's options; returns 0, or EX_USAGE after saying why. */
int ctl_parse_limits(struct ctl *c, struct ctl_limits *l);

/* A job id: a positive integer. */
bool ctl_parse_id(const char *s, long long *id);
/* Option NAME's integer S in [MIN, MAX] into OUT as text; returns 0, or
 * EX_USAGE after saying why. */
int ctl_parse_int(const char *name, const char *s, long long min, long long max, char *out,
                  size_t len);
/* Option NAME's duration S (cfg's syntax) in ms; returns 0, or EX_USAGE. */
int ctl_parse_duration(const char *name, const char *s, int64_t *ms);

/* The verbs: ARGS holds the verb's arguments, as many as verbs[] allows.
 * Each returns the exit status. */
int ctl_verb_status(struct ctl *c, char **args);
int ctl_verb_jobs(struct ctl *c, char **args);
int ctl_verb_show(struct ctl *c, char **args);
int ctl_verb_enqueue(struct ctl *c, char **args);
int ctl_verb_cancel(struct ctl *c, char **args);
int ctl_verb_retry(struct ctl *c, char **args);
int ctl_verb_migrate(struct ctl *c, char **args);
int ctl_verb_doctor(struct ctl *c, char **args);
int ctl_verb_schedules(struct ctl *c, char **args);
int ctl_verb_schedule(struct ctl *c, char **args);
int ctl_verb_unschedule(struct ctl *c, char **args);
int ctl_verb_enable(struct ctl *c, char **args);
int ctl_verb_disable(struct ctl *c, char **args);
int ctl_verb_retention(struct ctl *c, char **args);
int ctl_verb_maintain(struct ctl *c, char **args);
int ctl_verb_grants(struct ctl *c, char **args);
int ctl_verb_grant(struct ctl *c, char **args);
int ctl_verb_revoke(struct ctl *c, char **args);

#endif
