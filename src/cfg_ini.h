/*
 * cfg_ini: reading an INI file through inih, with a line number on every
 * section, key and continuation line, and the list of errors found while
 * loading, each "FILE:LINE: message".
 *
 * It knows the syntax only: which sections and keys exist is the caller's
 * business, told through the callbacks of struct cfg_ini_ops.
 */
#ifndef PGJOBD_CFG_INI_H
#define PGJOBD_CFG_INI_H

#include <stdbool.h>
#include <stddef.h>

/* The longest line a file may hold, without its newline. */
#define CFG_LINE_MAX 65535

struct cfg_error {
	int line;
	int seq; /* order of discovery: keeps the sort stable within a line */
	char *msg;
};

/* Errors in order of discovery; a zeroed struct is empty and ready. */
struct cfg_errors {
	struct cfg_error *v;
	size_t n, cap;
};

/*
 * Record an error at LINE (0: the file as a whole).  Control characters
 * (the '\n' that joins continuation lines, a tab in a value) are shown
 * escaped, so that each error stays on one output line.
 */
void cfg_error(struct cfg_errors *e, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool cfg_errors_on(const struct cfg_errors *e, int line);
/* Sort by line and join into "PATH:LINE: message\n" lines (malloc'd). */
char *cfg_errors_format(struct cfg_errors *e, const char *path);
void cfg_errors_free(struct cfg_errors *e);

/*
 * What the reader hands its caller, in file order, each with its line.
 * Names and values come trimmed and without their inline comment (a ';'
 * after a blank); CUT says one was cut off, so that a message can explain
 * a quote that seems unterminated.
 */
struct cfg_ini_ops {
	/* A [NAME] header; NAME is NULL for a header that cannot be read,
	 * whose keys must go nowhere. */
	void (*section)(void *user, const char *name, int line);
	void (*key)(void *user, const char *name, const char *value, int line, bool cut);
	/* An indented line that continues the value of the last key. */
	void (*continuation)(void *user, const char *value, int line, bool cut);
};

/*
 * Read PATH, calling OPS with USER, and add every syntax error to ERRS.
 * Returns -1 when the file could not be opened or read to its end (the
 * caller then has only part of it), else 0.
 */
int cfg_ini_read(const char *path, const struct cfg_ini_ops *ops, void *user,
                 struct cfg_errors *errs);

#endif
