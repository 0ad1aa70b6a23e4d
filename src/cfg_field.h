/*
 * cfg_field: one key's text into its typed field of struct cfg or struct
 * cfg_handler, with the key's bounds and every error at the value's line.
 * The key tables themselves are in cfg.c; this header says what a table
 * row holds.  Shared by the cfg modules only.
 */
#ifndef PGJOBD_CFG_FIELD_H
#define PGJOBD_CFG_FIELD_H

#include "cfg_ini.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a key's value is, and so which parser turns its text into a field. */
enum key_type {
	KT_STRING,      /* char *, any text */
	KT_WORKER_NAME, /* char *, empty or 1-128 printable non-blank characters */
	KT_QUEUES,      /* char **, comma-separated names */
	KT_INT,         /* int within [min, max] */
	KT_CAP,         /* int, empty = 0 (no cap), else >= min */
	KT_DURATION,    /* int64_t milliseconds within [min, max] */
	KT_SIZE,        /* size_t bytes within [min, max] */
	KT_BOOL,        /* bool */
	KT_COMMAND,     /* char **argv, argv[0] an executable regular file */
	KT_ENVIRONMENT, /* char **, NAME=VALUE words */
	KT_EXIT_CODES,  /* uint8_t[32] bitmap of 1-255 */
	KT_DIRECTORY,   /* char *, an absolute path to a directory */
	KT_LISTEN,      /* char *, empty or an address cfg_parse_listen() accepts */
};

enum {
	K_RELOAD = 1 << 0,         /* a SIGHUP applies a new value */
	K_EMPTY_IS_VALUE = 1 << 1, /* "key =" means the empty value, not the default */
};

struct cfg_key {
	const char *name;
	enum key_type type;
	const char *def; /* parsed like a user's value; NULL: the key is required */
	int64_t min;     /* ints: the value; durations: ms; sizes: bytes */
	int64_t max;     /* same unit; -1: no upper bound */
	unsigned flags;
	size_t off; /* of the field in struct cfg or struct cfg_handler */
};

/*
 * Parse TEXT (a user's value or a key's default) for key K into its field
 * in BASE.  Reports errors at LINE into ERRS (CUT: an inline comment was
 * cut off the value, which may explain a broken quote) and returns whether
 * the field was set; on failure the field is left untouched (zero), so
 * cfg_free() is safe.
 */
bool cfg_field_parse(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
                     bool cut, void *base);

#endif
