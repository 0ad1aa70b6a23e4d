/*
 * ctllib: see ctllib.h.
 */
#include "ctllib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

/* Run `pgjobd ctl -d "" ARGS...`: the connection comes from the PG*
 * environment of the throwaway cluster.  Returns the exit status; *OUT and
 * *ERR are malloc'd.  *VERB names the run in messages. */
int
vctl(char **out, char **err, const char **verb, va_list ap)
{
	const char *argv[32] = {t_pgjobd(), "ctl", "-d", ""};
	int n = 4;

	while ((argv[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_int_lt(n, 31);
	}
	*verb = argv[4];
	return t_run(argv, out, err, 30000);
}

/* ARGS: NULL-terminated. */
int
ctl(char **out, char **err, ...)
{
	const char *verb;
	va_list ap;
	int rc;

	va_start(ap, err);
	rc = vctl(out, err, &verb, ap);
	va_end(ap);
	return rc;
}

/* Like ctl(), but the exit status must be WANT_RC; returns stdout. */
char *
ctl_ok(int want_rc, ...)
{
	const char *verb;
	char *out, *err;
	va_list ap;
	int rc;

	va_start(ap, want_rc);
	rc = vctl(&out, &err, &verb, ap);
	va_end(ap);
	ck_assert_msg(rc == want_rc, "ctl %s...: exit %d, want %d\nstdout: %s\nstderr: %s",
	              verb ? verb : "", rc, want_rc, out, err);
	free(err);
	return out;
}

/* ERR is exactly one line "pgjobd ctl: ..." containing NEEDLE. */
void
assert_one_line(const char *err, const char *needle)
{
	size_t n = strlen(err);

	ck_assert_msg(n > 0 && err[n - 1] == '\n' && strchr(err, '\n') == err + n - 1,
	              "not one line: [%s]", err);
	ck_assert_msg(!strncmp(err, "pgjobd ctl: ", 12), "no prefix: %s", err);
	ck_assert_msg(strstr(err, needle) != NULL, "no \"%s\" in: %s", needle, err);
}

/* ARGS must fail with exit status WANT_RC, nothing on stdout and one line
 * on stderr containing NEEDLE. */
void
ctl_fails(int want_rc, const char *needle, ...)
{
	const char *verb;
	char *out, *err;
	va_list ap;
	int rc;

	va_start(ap, needle);
	rc = vctl(&out, &err, &verb, ap);
	va_end(ap);
	ck_assert_msg(rc == want_rc, "ctl %s...: exit %d, want %d\nstderr: %s", verb ? verb : "",
	              rc, want_rc, err);
	assert_one_line(err, needle);
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
}

void
assert_has(const char *text, const char *needle)
{
	ck_assert_msg(strstr(text, needle) != NULL, "no \"%s\" in:\n%s", needle, text);
}

/* An SQL answer about a JSON document DOC (parameter $1). */
char *
json_q(PGconn *c, const char *doc, const char *sql)
{
	return t_str(c, sql, doc, NULL);
}

void
assert_json(PGconn *c, const char *doc, const char *sql, const char *want)
{
	char *got = json_q(c, doc, sql);

	ck_assert_msg(got && !strcmp(got, want), "%s on %s: got %s, want %s", sql, doc,
	              got ? got : "NULL", want);
	free(got);
}

/* ARGS must succeed and print a JSON document on which SQL ($1) answers
 * WANT. */
void
ctl_json(PGconn *c, const char *sql, const char *want, ...)
{
	const char *verb;
	char *out, *err;
	va_list ap;
	int rc;

	va_start(ap, want);
	rc = vctl(&out, &err, &verb, ap);
	va_end(ap);
	ck_assert_msg(rc == 0, "ctl %s...: exit %d\nstderr: %s", verb ? verb : "", rc, err);
	assert_json(c, out, sql, want);
	free(out);
	free(err);
}
