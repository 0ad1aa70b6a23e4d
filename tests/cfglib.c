/*
 * cfglib: helpers shared by the suites of the configuration files
 * (check_cfg, check_cfg_errors, check_cfg_ini): temp files and loading
 * them with cfg_load() (cfglib.h).
 */
#include "cfglib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write TEXT (LEN bytes) to a new temp file; returns its malloc'd path. */
char *
c_write_temp_len(const char *text, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	ck_assert_int_ge(asprintf(&path, "%s/check_cfg.XXXXXX", dir), 0);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp in %s failed", dir);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	return path;
}

static char *
write_temp(const char *text)
{
	return c_write_temp_len(text, strlen(text));
}

/* Load TEXT from a temp file; *path gets the file's name (already unlinked). */
static struct cfg *
load_text(const char *text, char **path, char **errors)
{
	struct cfg *cfg;

	*path = write_temp(text);
	cfg = cfg_load(*path, errors);
	unlink(*path);
	return cfg;
}

/* Load TEXT, which must be valid; returns the cfg (the test frees it). */
struct cfg *
c_load_ok(const char *text)
{
	char *path, *errors;
	struct cfg *cfg = load_text(text, &path, &errors);

	ck_assert_msg(cfg != NULL, "expected a valid config, got:\n%s", errors ? errors : "");
	ck_assert_ptr_null(errors);
	free(path);
	return cfg;
}

/* Load TEXT, which must be invalid; returns every error with FILE for the path. */
char *
c_load_bad(const char *text)
{
	char *path, *errors, *out, *o;
	const char *p;
	size_t plen;
	struct cfg *cfg = load_text(text, &path, &errors);

	ck_assert_msg(cfg == NULL, "expected errors for:\n%s", text);
	ck_assert_ptr_nonnull(errors);
	/* Replace each occurrence of the path by "FILE" to compare with literals. */
	plen = strlen(path);
	out = malloc(strlen(errors) + 1);
	o = out;
	for (p = errors; *p != '\0';) {
		if (strncmp(p, path, plen) == 0) {
			o = stpcpy(o, "FILE");
			p += plen;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	free(errors);
	free(path);
	return out;
}
