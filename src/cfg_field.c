/* cfg_field: see cfg_field.h. */
#include "cfg_field.h"

#include "cfg_value.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
format_bound(const struct cfg_key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == KT_DURATION) {
		cfg_format_duration(v, buf, len);
	} else if (k->type == KT_SIZE && v != 0 && v % CFG_MIB == 0) {
		snprintf(buf, len, "%lldMiB", (long long)(v / CFG_MIB));
	} else if (k->type == KT_SIZE && v != 0 && v % CFG_KIB == 0) {
		snprintf(buf, len, "%lldKiB", (long long)(v / CFG_KIB));
	} else if (k->type == KT_SIZE && v != 0) {
		snprintf(buf, len, "%lldB", (long long)v);
	} else {
		snprintf(buf, len, "%lld", (long long)v);
	}
}

static bool
check_range(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line, int64_t v)
{
	char lo[32], hi[32];

	if (v >= k->min && (k->max < 0 || v <= k->max))
		return true;
	format_bound(k, k->min, lo, sizeof(lo));
	if (k->max < 0) {
		cfg_error(errs, line, "%s: '%s' is below the minimum (%s)", k->name, text, lo);
	} else {
		format_bound(k, k->max, hi, sizeof(hi));
		cfg_error(errs, line, "%s: '%s' is out of range (%s to %s)", k->name, text, lo, hi);
	}
	return false;
}

/* Comma-separated queue names, blanks around the commas allowed. */
static bool
parse_queues(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
             char ***out)
{
	struct cfg_words q = {0};
	bool ok = true, empty_seen = false;
	const char *p = text;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char *name;

		while (n > 0 && cfg_is_blank(*p)) {
			p++;
			n--;
		}
		while (n > 0 && cfg_is_blank(p[n - 1]))
			n--;
		name = xstrndup(p, n);
		if (n == 0) {
			if (!empty_seen)
				cfg_error(errs, line, "%s: empty queue name in '%s'", k->name,
				          text);
			empty_seen = true;
			ok = false;
			free(name);
		} else if (!cfg_valid_name(name)) {
			cfg_error(errs, line, "%s: bad queue name '%s' (" CFG_NAME_HINT ")",
			          k->name, name);
			ok = false;
			free(name);
		} else {
			bool dup = false;

			for (size_t i = 0; i < q.n; i++)
				dup |= strcmp(q.v[i], name) == 0;
			if (dup) {
				cfg_error(errs, line, "%s: '%s' is listed twice", k->name, name);
				ok = false;
				free(name);
			} else {
				cfg_words_push(&q, name);
			}
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (ok && q.n == 0) {
		cfg_error(errs, line, "%s: no queue given", k->name);
		ok = false;
	}
	if (!ok) {
		cfg_free_words(cfg_words_take(&q));
		return false;
	}
	*out = cfg_words_take(&q);
	return true;
}

/* Integers separated by commas and/or blanks; empty: none. */
static bool
parse_exit_codes(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
                 uint8_t *bitmap)
{
	bool ok = true, empty_seen = false;
	const char *p = text;

	memset(bitmap, 0, 32);
	/* isspace()'s set in the C locale. */
	if (text[strspn(text, " \t\n\v\f\r")] == '\0')
		return true;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		bool any = false;

		while (p < end) {
			const char *w;
			char *word;
			int64_t v;

			while (p < end && cfg_is_blank(*p))
				p++;
			if (p == end)
				break;
			w = p;
			while (p < end && !cfg_is_blank(*p))
				p++;
			any = true;
			word = xstrndup(w, (size_t)(p - w));
			if (!cfg_parse_int(word, &v)) {
				cfg_error(errs, line,
				          "%s: bad exit code '%s' (use integers %lld to %lld)",
				          k->name, word, (long long)k->min, (long long)k->max);
				ok = false;
			} else if (!check_range(errs, k, word, line, v)) {
				ok = false;
			} else {
				bitmap[v / 8] |= (uint8_t)(1u << (v % 8));
			}
			free(word);
		}
		if (!any && !empty_seen) {
			cfg_error(errs, line, "%s: empty item between commas in '%s'", k->name,
			          text);
			empty_seen = true;
			ok = false;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return ok;
}

static const char *
comment_hint(bool cut)
{
	return cut ? " (note: a ';' after a blank starts a comment, even inside quotes)" : "";
}

/* The checks of a handler's program, each failing one its own message. */
static bool
check_program(struct cfg_errors *errs, const struct cfg_key *k, const char *path, int line)
{
	struct stat st;

	if (path[0] != '/') {
		cfg_error(errs, line, "%s: '%s' is not an absolute path (there is no PATH search)",
		          k->name, path);
		return false;
	}
	if (stat(path, &st) < 0) {
		cfg_error(errs, line, "%s: '%s': %s", k->name, path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_error(errs, line, "%s: '%s' is not a regular file", k->name, path);
		return false;
	}
	if (access(path, X_OK) < 0) {
		cfg_error(errs, line, "%s: '%s' is not executable: %s", k->name, path,
		          strerror(errno));
		return false;
	}
	return true;
}

static bool
parse_command(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
              bool cut, char ***out)
{
	const char *err;
	char **argv = cfg_split_words(text, &err);

	if (argv == NULL) {
		cfg_error(errs, line, "%s: %s in '%s'%s", k->name, err, text, comment_hint(cut));
		return false;
	}
	if (argv[0] == NULL) {
		cfg_error(errs, line, "%s: no program in '%s'", k->name, text);
		cfg_free_words(argv);
		return false;
	}
	if (!check_program(errs, k, argv[0], line)) {
		cfg_free_words(argv);
		return false;
	}
	*out = argv;
	return true;
}

static bool
parse_environment(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
                  bool cut, char ***out)
{
	const char *err;
	char **words = cfg_split_words(text, &err);
	bool ok = true;

	if (words == NULL) {
		cfg_error(errs, line, "%s: %s in '%s'%s", k->name, err, text, comment_hint(cut));
		return false;
	}
	for (size_t i = 0; words[i] != NULL; i++) {
		const char *w = words[i];
		const char *eq = strchr(w, '=');
		size_t n = eq ? (size_t)(eq - w) : 0;

		if (eq == NULL) {
			cfg_error(errs, line, "%s: '%s' is not NAME=VALUE", k->name, w);
			ok = false;
		} else if (!cfg_valid_env_name(w, n)) {
			cfg_error(errs, line,
			          "%s: bad variable name in '%s' (letters, digits and _, not "
			          "starting with a digit)",
			          k->name, w);
			ok = false;
		} else if (strncmp(w, "PGJOBD_", 7) == 0) {
			cfg_error(errs, line,
			          "%s: '%.*s' is reserved (names starting with PGJOBD_ are set by "
			          "pgjobd)",
			          k->name, (int)n, w);
			ok = false;
		} else {
			for (size_t j = 0; j < i; j++) {
				if (strncmp(words[j], w, n + 1) == 0) {
					cfg_error(errs, line, "%s: '%.*s' is set twice", k->name,
					          (int)n, w);
					ok = false;
					break;
				}
			}
		}
	}
	if (!ok) {
		cfg_free_words(words);
		return false;
	}
	*out = words;
	return true;
}

static bool
parse_directory(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
                char **out)
{
	struct stat st;

	if (text[0] != '/') {
		cfg_error(errs, line, "%s: '%s' is not an absolute path", k->name, text);
		return false;
	}
	if (stat(text, &st) < 0) {
		cfg_error(errs, line, "%s: '%s': %s", k->name, text, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		cfg_error(errs, line, "%s: '%s' is not a directory", k->name, text);
		return false;
	}
	*out = xstrdup(text);
	return true;
}

bool
cfg_field_parse(struct cfg_errors *errs, const struct cfg_key *k, const char *text, int line,
                bool cut, void *base)
{
	void *field = (char *)base + k->off;
	const char *err;
	int64_t v;

	switch (k->type) {
	case KT_STRING: *(char **)field = xstrdup(text); return true;
	case KT_WORKER_NAME:
		if (!cfg_valid_worker_name(text)) {
			cfg_error(errs, line,
			          "%s: bad worker name '%s' (at most %d printable characters, no "
			          "blanks)",
			          k->name, text, CFG_NAME_MAX);
			return false;
		}
		*(char **)field = xstrdup(text);
		return true;
	case KT_QUEUES: return parse_queues(errs, k, text, line, (char ***)field);
	case KT_CAP:
		if (text[0] == '\0') {
			*(int *)field = 0;
			return true;
		}
		/* FALLTHROUGH */
	case KT_INT:
		if (!cfg_parse_int(text, &v)) {
			cfg_error(errs, line, "%s: bad integer '%s'", k->name, text);
			return false;
		}
		if (!check_range(errs, k, text, line, v))
			return false;
		*(int *)field = (int)v;
		return true;
	case KT_DURATION:
		if (cfg_parse_duration(text, &v, &err) < 0) {
			cfg_error(errs, line, "%s: bad duration '%s' (%s)", k->name, text, err);
			return false;
		}
		if (!check_range(errs, k, text, line, v))
			return false;
		*(int64_t *)field = v;
		return true;
	case KT_SIZE: {
		size_t n;

		if (cfg_parse_size(text, &n, &err) < 0) {
			cfg_error(errs, line, "%s: bad size '%s' (%s)", k->name, text, err);
			return false;
		}
		if (!check_range(errs, k, text, line, n > INT64_MAX ? INT64_MAX : (int64_t)n))
			return false;
		*(size_t *)field = n;
		return true;
	}
	case KT_BOOL:
		if (!cfg_parse_bool(text, (bool *)field)) {
			cfg_error(errs, line, "%s: bad boolean '%s' (use yes or no)", k->name,
			          text);
			return false;
		}
		return true;
	case KT_COMMAND: return parse_command(errs, k, text, line, cut, (char ***)field);
	case KT_ENVIRONMENT: return parse_environment(errs, k, text, line, cut, (char ***)field);
	case KT_EXIT_CODES: return parse_exit_codes(errs, k, text, line, (uint8_t *)field);
	case KT_DIRECTORY: return parse_directory(errs, k, text, line, (char **)field);
	case KT_LISTEN: {
		struct sockaddr_storage ss;
		socklen_t len;

		if (*text && cfg_parse_listen(text, &ss, &len, &err) < 0) {
			cfg_error(errs, line, "%s: bad address '%s' (%s)", k->name, text, err);
			return false;
		}
		*(char **)field = xstrdup(text);
		return true;
	}
	}
	abort();
}
