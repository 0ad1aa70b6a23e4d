/*
 * ctllib: helpers shared by the suites of `pgjobd ctl` (check_ctl,
 * check_ctl_admin): running the real binary against the throwaway cluster
 * and checking its one-line errors and its JSON.
 */
#ifndef PGJOBD_CTLLIB_H
#define PGJOBD_CTLLIB_H

#include <libpq-fe.h>
#include <stdarg.h>

/* Run `pgjobd ctl -d "" ARGS...` (AP: NULL-terminated); the connection
 * comes from the PG* environment.  Returns the exit status; *OUT and *ERR
 * are malloc'd.  *VERB names the run in messages. */
int vctl(char **out, char **err, const char **verb, va_list ap);
/* The same with ARGS..., NULL-terminated. */
int ctl(char **out, char **err, ...);
/* Like ctl(), but the exit status must be WANT_RC; returns stdout. */
char *ctl_ok(int want_rc, ...);
/* ERR is exactly one line "pgjobd ctl: ..." containing NEEDLE. */
void assert_one_line(const char *err, const char *needle);
/* ARGS must fail with exit status WANT_RC, nothing on stdout and one line
 * on stderr containing NEEDLE. */
void ctl_fails(int want_rc, const char *needle, ...);
void assert_has(const char *text, const char *needle);
/* An SQL answer about a JSON document DOC (parameter $1); malloc'd. */
char *json_q(PGconn *c, const char *doc, const char *sql);
/* SQL ($1: DOC) must answer WANT. */
void assert_json(PGconn *c, const char *doc, const char *sql, const char *want);
/* ARGS must succeed and print a JSON document on which SQL ($1) answers
 * WANT. */
void ctl_json(PGconn *c, const char *sql, const char *want, ...);

#endif
