/*
 * cfglib: helpers shared by the Check suites of src/cfg.c, the INI
 * configuration (check_cfg_value, check_cfg_errors, check_cfg_ini,
 * check_cfg).  Files are written to $TMPDIR (or /tmp); "FILE" in an
 * expected message stands for the temp file's path.
 */
#ifndef PGJOBD_CFGLIB_H
#define PGJOBD_CFGLIB_H

#include "cfg.h"
#include "testlib.h"

#include <stddef.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* The smallest handler section, for files about other keys. */
#define H "[handler.t]\ncommand = /bin/true\n"

/* Write TEXT (LEN bytes) to a new temp file; returns its malloc'd path. */
char *c_write_temp_len(const char *text, size_t len);
/* Load TEXT, which must be valid; returns the cfg (the test frees it). */
struct cfg *c_load_ok(const char *text);
/* Load TEXT, which must be invalid; returns every error with FILE for the path. */
char *c_load_bad(const char *text);

#endif
