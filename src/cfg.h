/*
 * cfg: the INI configuration of CONTRACT section 4.
 *
 * A file is parsed with inih into a fresh struct cfg and validated as a
 * whole; the caller swaps it in only when cfg_load() reports no error, so a
 * bad reload leaves the running config untouched.  The keys live in one
 * table per section (name, type, default, bounds, reloadable) in cfg.c.
 * Below it: cfg_ini (the file through inih, the error list), cfg_field
 * (one key's text into its field) and cfg_value (the pure value parsers).
 *
 * This module knows nothing of the database, the event loop or logging:
 * errors are returned as text, one "FILE:LINE: message" per line.
 */
#ifndef PGJOBD_CFG_H
#define PGJOBD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg_value.h"

#define CFG_DEFAULT_PATH "/etc/pgjobd/pgjobd.ini"

struct cfg_handler {
	char *type;              /* TYPE of [handler.TYPE] */
	char **argv;             /* command words, NULL-terminated, argv[0] absolute */
	int64_t timeout_ms;      /* 0: none */
	int max_attempts;
	int64_t backoff_ms;
	int64_t backoff_max_ms;
	int concurrency;         /* 0: no cap of its own */
	uint8_t dead_exit[32];   /* bitmap of exit codes 1-255 that mean dead */
	char *working_directory;
	char **environment;      /* "NAME=VALUE", NULL-terminated */
	bool args_from_payload;
};

struct cfg {
	char *path;
	char *database;          /* "" : libpq defaults */
	char **queues;           /* NULL-terminated, at least one */
	int nqueues;
	int concurrency;
	int64_t lease_ms;
	int64_t heartbeat_ms;
	int64_t poll_interval_ms;
	int64_t shutdown_timeout_ms;
	int64_t kill_grace_ms;
	size_t output_limit;
	char *name;              /* "" : host:pid, filled in by the daemon */
	char *metrics_listen;    /* "" : off; else HOST:PORT or /path (cfg_parse_listen) */
	struct cfg_handler *handlers; /* sorted by type */
	int nhandlers;
};

/*
 * Parse and validate PATH.  On success returns a new cfg and sets *errors
 * to NULL.  On failure returns NULL and sets *errors to a malloc'd string
 * holding every error found, each "FILE:LINE: message\n" (LINE is 0 when
 * the file itself cannot be read).  The caller frees *errors.
 */
struct cfg *cfg_load(const char *path, char **errors);
void cfg_free(struct cfg *cfg);

/* The handler for TYPE, or NULL when this daemon does not run TYPE. */
const struct cfg_handler *cfg_handler(const struct cfg *cfg, const char *type);
bool cfg_dead_exit(const struct cfg_handler *h, int code);

/*
 * Keys whose new value a SIGHUP cannot apply (database, name): writes one
 * line per such key that differs between OLD and NEW into BUF (at most
 * LEN bytes, NUL-terminated) and returns how many differ.
 */
int cfg_unreloadable_changes(const struct cfg *old, const struct cfg *new_, char *buf, size_t len);

/* Each key of both sections, for the test that the man page lists them all. */
const char *const *cfg_key_names(void);

/* The value parsers (cfg_parse_duration, cfg_parse_size, cfg_split_words,
 * cfg_free_words, cfg_valid_name) are declared in cfg_value.h. */

#endif
