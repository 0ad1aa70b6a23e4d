/*
 * cfg: load and validate the INI file of CONTRACT section 4.
 *
 * Loading happens in three passes over one struct load:
 *
 *   1. read: inih drives the file through cfg_reader(), which hands it one
 *      whole line at a time and classifies that line exactly as inih is
 *      about to (blank, comment, continuation, section, key, bad).  The
 *      reader reports syntax errors and over-long lines itself, because
 *      Debian's prebuilt inih gives the handler no line numbers and reports
 *      only its first syntax error.  on_value() then stores each key's raw
 *      text, joining indented continuation lines, per section.
 *   2. fill: every key of every section is parsed from its raw text, or
 *      from its default text when absent or empty, by the same parser.
 *   3. check: the rules that tie keys together (heartbeat < lease / 2,
 *      backoff <= backoff_max, a handler's cap <= the global concurrency).
 *
 * Every error is collected with its line; the result is either a complete
 * struct cfg or the sorted list of all errors, never both.
 */
/* vasprintf(), reallocarray(); the Makefile defines it too. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define SECOND_MS ((int64_t)1000)
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS (60 * MINUTE_MS)
#define DAY_MS (24 * HOUR_MS)
#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)

#define MAIN_SECTION "pgjobd"
#define HANDLER_PREFIX "handler."

#define DURATION_HINT "use an integer with ms, s, m, h or d"
#define SIZE_HINT "use an integer with B, KiB or MiB"
#define NAME_HINT "1-128 characters of A-Z a-z 0-9 _ . : -"

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
};

enum {
	K_RELOAD = 1 << 0,         /* a SIGHUP applies a new value */
	K_EMPTY_IS_VALUE = 1 << 1, /* "key =" means the empty value, not the default */
};

struct key {
	const char *name;
	enum key_type type;
	const char *def; /* parsed like a user's value; NULL: the key is required */
	int64_t min;     /* ints: the value; durations: ms; sizes: bytes */
	int64_t max;     /* same unit; -1: no upper bound */
	unsigned flags;
	size_t off; /* of the field in struct cfg or struct cfg_handler */
};

/* Indices into the tables, so the cross-key checks need no lookup by name. */
enum {
	MK_DATABASE,
	MK_QUEUES,
	MK_CONCURRENCY,
	MK_LEASE,
	MK_HEARTBEAT,
	MK_POLL_INTERVAL,
	MK_SHUTDOWN_TIMEOUT,
	MK_KILL_GRACE,
	MK_OUTPUT_LIMIT,
	MK_NAME,
	MK_COUNT
};

enum {
	HK_COMMAND,
	HK_TIMEOUT,
	HK_MAX_ATTEMPTS,
	HK_BACKOFF,
	HK_BACKOFF_MAX,
	HK_CONCURRENCY,
	HK_DEAD_EXIT_CODES,
	HK_WORKING_DIRECTORY,
	HK_ENVIRONMENT,
	HK_ARGS_FROM_PAYLOAD,
	HK_COUNT
};

#define CFG_OFF(f) offsetof(struct cfg, f)
#define HANDLER_OFF(f) offsetof(struct cfg_handler, f)

/* [pgjobd].  database and name are not reloadable: see cfg_unreloadable_changes(). */
static const struct key main_keys[MK_COUNT] = {
    [MK_DATABASE] = {"database", KT_STRING, "", 0, -1, 0, CFG_OFF(database)},
    [MK_QUEUES] = {"queues", KT_QUEUES, "default", 0, -1, K_RELOAD, CFG_OFF(queues)},
    [MK_CONCURRENCY] = {"concurrency", KT_INT, "4", 1, 1024, K_RELOAD, CFG_OFF(concurrency)},
    [MK_LEASE] = {"lease", KT_DURATION, "60s", SECOND_MS, DAY_MS, K_RELOAD, CFG_OFF(lease_ms)},
    [MK_HEARTBEAT] = {"heartbeat", KT_DURATION, "20s", 100, -1, K_RELOAD, CFG_OFF(heartbeat_ms)},
    [MK_POLL_INTERVAL] = {"poll_interval", KT_DURATION, "5s", 100, HOUR_MS, K_RELOAD,
                          CFG_OFF(poll_interval_ms)},
    [MK_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", KT_DURATION, "30s", 0, DAY_MS, K_RELOAD,
                             CFG_OFF(shutdown_timeout_ms)},
    [MK_KILL_GRACE] = {"kill_grace", KT_DURATION, "10s", 0, HOUR_MS, K_RELOAD,
                       CFG_OFF(kill_grace_ms)},
    [MK_OUTPUT_LIMIT] = {"output_limit", KT_SIZE, "64KiB", 0, 16 * MIB, K_RELOAD,
                         CFG_OFF(output_limit)},
    [MK_NAME] = {"name", KT_WORKER_NAME, "", 0, -1, 0, CFG_OFF(name)},
};

/* [handler.TYPE]. */
static const struct key handler_keys[HK_COUNT] = {
    [HK_COMMAND] = {"command", KT_COMMAND, NULL, 0, -1, K_RELOAD, HANDLER_OFF(argv)},
    [HK_TIMEOUT] = {"timeout", KT_DURATION, "1h", 0, 30 * DAY_MS, K_RELOAD,
                    HANDLER_OFF(timeout_ms)},
    [HK_MAX_ATTEMPTS] = {"max_attempts", KT_INT, "5", 1, 1000, K_RELOAD, HANDLER_OFF(max_attempts)},
    [HK_BACKOFF] = {"backoff", KT_DURATION, "10s", 0, DAY_MS, K_RELOAD, HANDLER_OFF(backoff_ms)},
    [HK_BACKOFF_MAX] = {"backoff_max", KT_DURATION, "1h", 0, 30 * DAY_MS, K_RELOAD,
                        HANDLER_OFF(backoff_max_ms)},
    /* The upper bound is the global concurrency, checked in check_handler(). */
    [HK_CONCURRENCY] = {"concurrency", KT_CAP, "", 1, -1, K_RELOAD, HANDLER_OFF(concurrency)},
    /* Empty must be expressible: "no exit code means dead, always retry". */
    [HK_DEAD_EXIT_CODES] = {"dead_exit_codes", KT_EXIT_CODES, "65", 1, 255,
                            K_RELOAD | K_EMPTY_IS_VALUE, HANDLER_OFF(dead_exit)},
    [HK_WORKING_DIRECTORY] = {"working_directory", KT_DIRECTORY, "/", 0, -1, K_RELOAD,
                              HANDLER_OFF(working_directory)},
    [HK_ENVIRONMENT] = {"environment", KT_ENVIRONMENT, "", 0, -1, K_RELOAD,
                        HANDLER_OFF(environment)},
    [HK_ARGS_FROM_PAYLOAD] = {"args_from_payload", KT_BOOL, "no", 0, -1, K_RELOAD,
                              HANDLER_OFF(args_from_payload)},
};

#define KEYS_MAX ((int)MK_COUNT > (int)HK_COUNT ? (int)MK_COUNT : (int)HK_COUNT)

/*
 * Out of memory while loading a config is not worth a recovery path in
 * every caller: like tmux's xmalloc, give up at once.
 */
static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

static void *
xreallocarray(void *p, size_t n, size_t size)
{
	p = reallocarray(p, n ? n : 1, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		abort();
	return p;
}

static char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* A NULL-terminated vector of malloc'd strings that grows as words arrive. */
struct vec {
	char **v;
	size_t n, cap;
};

static void
vec_push(struct vec *w, char *s)
{
	if (w->n + 2 > w->cap) {
		w->cap = w->cap ? 2 * w->cap : 8;
		w->v = xreallocarray(w->v, w->cap, sizeof(*w->v));
	}
	w->v[w->n++] = s;
	w->v[w->n] = NULL;
}

/* Hand over the vector, which is never NULL even when empty. */
static char **
vec_take(struct vec *w)
{
	char **v = w->v;

	if (v == NULL) {
		v = xmalloc(sizeof(*v));
		v[0] = NULL;
	}
	w->v = NULL;
	w->n = w->cap = 0;
	return v;
}

static size_t
count_words(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

void
cfg_free_words(char **words)
{
	if (words == NULL)
		return;
	for (char **w = words; *w != NULL; w++)
		free(*w);
	free(words);
}

/* ------------------------------------------------------------------ */
/* Value parsers                                                        */
/* ------------------------------------------------------------------ */

/* Blanks that separate words and list items; '\n' joins continuation lines. */
static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parse the leading digits of S into *N (saturating at INT64_MAX, which
 * every caller reports as too large) and return the first other char.
 */
static const char *
parse_digits(const char *s, int64_t *n, bool *overflow)
{
	*n = 0;
	*overflow = false;
	for (; is_digit(*s); s++) {
		int d = *s - '0';

		if (*n > (INT64_MAX - d) / 10) {
			*overflow = true;
			*n = INT64_MAX;
		} else if (!*overflow) {
			*n = *n * 10 + d;
		}
	}
	return s;
}

struct unit {
	const char *name;
	int64_t mult;
};

/* An integer with one of UNITS, or a bare 0; shared by durations and sizes. */
static int
parse_with_unit(const char *s, const struct unit *units, size_t nunits, const char *hint,
                int64_t *out, const char **err)
{
	int64_t n;
	bool overflow;
	const char *rest;

	if (s[0] == '-' && is_digit(s[1])) {
		*err = "must not be negative";
		return -1;
	}
	if (!is_digit(s[0])) {
		*err = hint;
		return -1;
	}
	rest = parse_digits(s, &n, &overflow);
	if (*rest == '\0' && n == 0 && !overflow) {
		*out = 0;
		return 0;
	}
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(rest, units[i].name) != 0)
			continue;
		if (overflow || n > INT64_MAX / units[i].mult) {
			*err = "too large";
			return -1;
		}
		*out = n * units[i].mult;
		return 0;
	}
	*err = hint;
	return -1;
}

int
cfg_parse_duration(const char *s, int64_t *ms, const char **err)
{
	static const struct unit units[] = {
	    {"ms", 1}, {"s", SECOND_MS}, {"m", MINUTE_MS}, {"h", HOUR_MS}, {"d", DAY_MS},
	};

	return parse_with_unit(s, units, nitems(units), DURATION_HINT, ms, err);
}

int
cfg_parse_size(const char *s, size_t *bytes, const char **err)
{
	static const struct unit units[] = {
	    {"B", 1},
	    {"KiB", KIB},
	    {"MiB", MIB},
	};
	int64_t n;

	if (parse_with_unit(s, units, nitems(units), SIZE_HINT, &n, err) < 0)
		return -1;
	if ((uint64_t)n > SIZE_MAX) {
		*err = "too large";
		return -1;
	}
	*bytes = (size_t)n;
	return 0;
}

/*
 * A decimal integer, optionally negative, saturated to the int64 range so
 * that a huge value is reported as out of range rather than as garbage.
 */
static bool
parse_int(const char *s, int64_t *out)
{
	bool neg = false, overflow;
	const char *rest;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (!is_digit(*s))
		return false;
	rest = parse_digits(s, out, &overflow);
	if (*rest != '\0')
		return false;
	if (neg)
		*out = -*out;
	return true;
}

static bool
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < nitems(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool
cfg_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > CFG_NAME_MAX)
		return false;
	/* Explicit ranges: isalnum() would follow the locale. */
	for (; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
		      c == '.' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

char **
cfg_split_words(const char *s, const char **err)
{
	struct vec words = {0};
	/* No word is longer than the whole input. */
	char *cur = xmalloc(strlen(s) + 1);
	size_t n = 0;
	bool in_word = false;
	const char *p = s;

	for (;;) {
		char c = *p;

		if (c == '\0' || is_blank(c)) {
			if (in_word)
				vec_push(&words, xstrndup(cur, n));
			in_word = false;
			n = 0;
			if (c == '\0')
				break;
			p++;
			continue;
		}
		/* As in sh, backslash-newline vanishes: it neither starts nor ends a word. */
		if (c == '\\' && p[1] == '\n') {
			p += 2;
			continue;
		}
		in_word = true;
		if (c == '\\') {
			if (p[1] == '\0') {
				*err = "trailing backslash";
				goto fail;
			}
			cur[n++] = p[1];
			p += 2;
		} else if (c == '\'') {
			const char *q = strchr(p + 1, '\'');

			if (q == NULL) {
				*err = "unterminated ' quote";
				goto fail;
			}
			memcpy(cur + n, p + 1, (size_t)(q - p - 1));
			n += (size_t)(q - p - 1);
			p = q + 1;
		} else if (c == '"') {
			for (p++;; p++) {
				if (*p == '\0') {
					*err = "unterminated \" quote";
					goto fail;
				}
				if (*p == '"')
					break;
				/* Check p[1] first: strchr() finds the terminating NUL too. */
				if (*p == '\\' && p[1] != '\0' &&
				    strchr("$`\"\\\n", p[1]) != NULL) {
					p++;
					if (*p != '\n')
						cur[n++] = *p;
					continue;
				}
				cur[n++] = *p;
			}
			p++;
		} else {
			cur[n++] = c;
			p++;
		}
	}
	free(cur);
	return vec_take(&words);

fail:
	free(cur);
	cfg_free_words(vec_take(&words));
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

struct error {
	int line;
	int seq; /* order of discovery: keeps the sort stable within a line */
	char *msg;
};

/* The raw text of one key, as given in the file. */
struct raw {
	char *value; /* NULL: not given */
	int line;
	bool cut; /* an inline comment was cut off one of its lines */
};

struct section {
	int line;    /* of its [header]; 0 for an absent [pgjobd] */
	char *type;  /* handler sections: TYPE; NULL for [pgjobd] */
	char *title; /* "[pgjobd]" or "[handler.TYPE]", for messages */
	struct raw raw[KEYS_MAX];
};

/* What inih makes of the line it is about to process. */
enum line_kind {
	LINE_BLANK,
	LINE_COMMENT,
	LINE_CONTINUATION,
	LINE_SECTION,
	LINE_KEY,
	LINE_BAD, /* already reported by the reader */
};

struct load {
	const char *path;

	struct error *errors;
	size_t nerrors, errcap;

	/* The reader. */
	FILE *fp;
	char *buf;
	size_t bufsize;
	int lineno;
	int num; /* buffer size inih asks for on ordinary reads */
	enum line_kind kind;
	bool cut;      /* the current line had an inline comment */
	bool prev_key; /* inih has a key that an indented line would continue */
	bool read_failed;

	/* The sections found so far. */
	struct section main;
	bool main_seen;
	struct section **handlers;
	size_t nhandlers, hcap;

	/* Where keys go: NULL before any section or inside a rejected one. */
	struct section *cur;
	bool cur_skip; /* in a rejected section: its keys are ignored */
	const struct key *cur_keys;
	size_t cur_nkeys;

	/* The value an indented line continues; NULL: ignore such lines. */
	struct raw *cont;
	const struct key *cont_key;
};

/*
 * Record an error at LINE.  Control characters (the '\n' that joins
 * continuation lines, a tab in a value) are shown escaped, so that each
 * error stays on one output line.
 */
static void __attribute__((format(printf, 3, 4)))
add_error(struct load *ld, int line, const char *fmt, ...)
{
	va_list ap;
	char *raw, *msg, *o;

	va_start(ap, fmt);
	if (vasprintf(&raw, fmt, ap) < 0)
		abort();
	va_end(ap);
	msg = xmalloc(4 * strlen(raw) + 1);
	o = msg;
	for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
		if (*p == '\n')
			o += sprintf(o, "\\n");
		else if (*p == '\t')
			o += sprintf(o, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			o += sprintf(o, "\\x%02x", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	free(raw);

	if (ld->nerrors == ld->errcap) {
		ld->errcap = ld->errcap ? 2 * ld->errcap : 8;
		ld->errors = xreallocarray(ld->errors, ld->errcap, sizeof(*ld->errors));
	}
	ld->errors[ld->nerrors].line = line;
	ld->errors[ld->nerrors].seq = (int)ld->nerrors;
	ld->errors[ld->nerrors].msg = msg;
	ld->nerrors++;
}

static bool
has_error_on(const struct load *ld, int line)
{
	for (size_t i = 0; i < ld->nerrors; i++) {
		if (ld->errors[i].line == line)
			return true;
	}
	return false;
}

static int
cmp_errors(const void *a, const void *b)
{
	const struct error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort the errors by line and join them into "FILE:LINE: message\n" lines. */
static char *
format_errors(struct load *ld)
{
	size_t len = 1, plen = strlen(ld->path);
	char *out, *o;

	qsort(ld->errors, ld->nerrors, sizeof(*ld->errors), cmp_errors);
	for (size_t i = 0; i < ld->nerrors; i++)
		len += plen + strlen(ld->errors[i].msg) + 16;
	out = xmalloc(len);
	o = out;
	for (size_t i = 0; i < ld->nerrors; i++) {
		o += sprintf(o, "%s:%d: %s\n", ld->path, ld->errors[i].line, ld->errors[i].msg);
	}
	*o = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Pass 1: reading                                                      */
/* ------------------------------------------------------------------ */

/*
 * inih's own scan for CHARS or an inline comment: a ';' after whitespace
 * (Debian builds inih with inline comments on, prefix ";").
 */
static const char *
find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	       !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static const char *
skip_space(const char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Length of S[0..n) without trailing whitespace. */
static size_t
rtrim_len(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n;
}

static void
syntax_error(struct load *ld)
{
	add_error(ld, ld->lineno, "syntax error: expected 'key = value' or '[section]'");
	ld->kind = LINE_BAD;
	ld->cont = NULL;
}

static void
skip_section(struct load *ld)
{
	ld->cur = NULL;
	ld->cur_skip = true;
}

static struct section *
new_section(const char *type, int line)
{
	struct section *sec = xcalloc(1, sizeof(*sec));

	sec->line = line;
	if (type != NULL) {
		sec->type = xstrdup(type);
		if (asprintf(&sec->title, "[" HANDLER_PREFIX "%s]", type) < 0)
			abort();
	} else {
		sec->title = xstrdup("[" MAIN_SECTION "]");
	}
	return sec;
}

/* A [NAME] line: make its section the one that receives keys. */
static void
open_section(struct load *ld, const char *name)
{
	size_t plen = strlen(HANDLER_PREFIX);

	ld->cont = NULL;
	ld->cur_skip = false;
	if (strcmp(name, MAIN_SECTION) == 0) {
		if (ld->main_seen) {
			add_error(ld, ld->lineno, "duplicate section [%s] (first on line %d)", name,
			          ld->main.line);
			skip_section(ld);
			return;
		}
		ld->main_seen = true;
		ld->main.line = ld->lineno;
		ld->cur = &ld->main;
		ld->cur_keys = main_keys;
		ld->cur_nkeys = nitems(main_keys);
		return;
	}
	if (strncmp(name, HANDLER_PREFIX, plen) != 0) {
		add_error(ld, ld->lineno, "unknown section [%s]", name);
		skip_section(ld);
		return;
	}
	if (!cfg_valid_name(name + plen)) {
		add_error(ld, ld->lineno, "unknown section [%s]: a handler type is " NAME_HINT,
		          name);
		skip_section(ld);
		return;
	}
	for (size_t i = 0; i < ld->nhandlers; i++) {
		if (strcmp(ld->handlers[i]->type, name + plen) == 0) {
			add_error(ld, ld->lineno, "duplicate section [%s] (first on line %d)", name,
			          ld->handlers[i]->line);
			skip_section(ld);
			return;
		}
	}
	if (ld->nhandlers == ld->hcap) {
		ld->hcap = ld->hcap ? 2 * ld->hcap : 8;
		ld->handlers = xreallocarray(ld->handlers, ld->hcap, sizeof(*ld->handlers));
	}
	ld->cur = new_section(name + plen, ld->lineno);
	ld->handlers[ld->nhandlers++] = ld->cur;
	ld->cur_keys = handler_keys;
	ld->cur_nkeys = nitems(handler_keys);
}

/* A line starting with '[': inih wants a ']' before any inline comment. */
static void
classify_section(struct load *ld, const char *start)
{
	const char *end = find_chars_or_comment(start + 1, "]");
	const char *name, *after;
	size_t n;
	char *sname;

	if (*end != ']') {
		/* Keys below belong to no section we know: ignore them, do not misfile them. */
		syntax_error(ld);
		skip_section(ld);
		return;
	}
	ld->kind = LINE_SECTION;
	ld->prev_key = false;
	name = skip_space(start + 1);
	n = rtrim_len(name, (size_t)(end - name));
	sname = xstrndup(name, n);
	open_section(ld, sname);
	free(sname);
	/* inih ignores what follows ']'; a stray word there is more likely a typo. */
	after = skip_space(end + 1);
	if (*after != '\0' && *after != ';')
		syntax_error(ld);
}

/* Classify the line in BUF as inih r55 is about to (see ini.c). */
static void
classify(struct load *ld, const char *line)
{
	const char *start = skip_space(line);
	const char *end;

	ld->cut = false;
	if (*start == '\0') {
		ld->kind = LINE_BLANK;
	} else if (*start == ';' || *start == '#') {
		ld->kind = LINE_COMMENT;
	} else if (ld->prev_key && start > line) {
		/* inih tests this before '[': an indented [x] continues a value. */
		ld->kind = LINE_CONTINUATION;
		ld->cut = *find_chars_or_comment(start, NULL) == ';';
	} else if (*start == '[') {
		classify_section(ld, start);
	} else {
		end = find_chars_or_comment(start, "=:");
		if (*end != '=' && *end != ':') {
			/* inih keeps its previous key: so do we, but we drop continuations. */
			syntax_error(ld);
			return;
		}
		ld->cut = *find_chars_or_comment(end + 1, NULL) == ';';
		if (rtrim_len(start, (size_t)(end - start)) == 0) {
			/* "= value": inih would hand us an empty name and forget its key. */
			ld->prev_key = false;
			syntax_error(ld);
			return;
		}
		ld->kind = LINE_KEY;
		ld->prev_key = true;
	}
}

/*
 * The ini_reader: hands inih whole lines read with getline().  Debian's
 * inih reads into a fixed 200-byte stack buffer and would silently split a
 * longer line into several "lines" (so line numbers would drift and half a
 * value would become a key); instead a line that does not fit is reported
 * here and inih gets an empty line in its place, which it skips.
 */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct load *ld = stream;
	ssize_t len;

	/*
	 * Newer inih releases, given a line that fills the buffer without a
	 * '\n', read on with a smaller buffer to discard "the rest of the
	 * line".  Lines are never cut here, so there is no rest: say so
	 * without consuming the next line.
	 */
	if (ld->num == 0)
		ld->num = num;
	if (num != ld->num || num < 2)
		return NULL;

	errno = 0;
	len = getline(&ld->buf, &ld->bufsize, ld->fp);
	if (len < 0) {
		if (ferror(ld->fp)) {
			add_error(ld, 0, "cannot read: %s", strerror(errno ? errno : EIO));
			ld->read_failed = true;
		}
		return NULL;
	}
	ld->lineno++;
	if (len > 0 && ld->buf[len - 1] == '\n')
		ld->buf[--len] = '\0';
	/* inih skips a UTF-8 byte order mark on line 1; doing it here keeps columns honest. */
	if (ld->lineno == 1 && len >= 3 && memcmp(ld->buf, "\xEF\xBB\xBF", 3) == 0) {
		memmove(ld->buf, ld->buf + 3, (size_t)len - 2);
		len -= 3;
	}

	if (strlen(ld->buf) != (size_t)len) {
		add_error(ld, ld->lineno, "line contains a NUL byte");
	} else if (len >= num) {
		add_error(ld, ld->lineno,
		          "line too long (at most %d characters; continue a long value on "
		          "indented lines)",
		          num - 1);
		/* A header we cannot read: its keys must not land in the previous section. */
		if (*skip_space(ld->buf) == '[')
			skip_section(ld);
	} else {
		classify(ld, ld->buf);
		memcpy(str, ld->buf, (size_t)len + 1);
		return str;
	}
	ld->kind = LINE_BAD;
	ld->cont = NULL;
	str[0] = '\0';
	return str;
}

static const struct key *
find_key(const struct key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* A "key = value" line. */
static void
set_key(struct load *ld, const char *name, const char *value)
{
	const struct key *k;
	struct raw *r;

	ld->cont = NULL;
	if (ld->cur_skip)
		return;
	if (ld->cur == NULL) {
		add_error(ld, ld->lineno,
		          "key '%s' is not in a section (keys go under [" MAIN_SECTION
		          "] or [" HANDLER_PREFIX "TYPE])",
		          name);
		return;
	}
	k = find_key(ld->cur_keys, ld->cur_nkeys, name);
	if (k == NULL) {
		const char *other = NULL;

		/* A key of the other section is a common slip: say where it belongs. */
		if (ld->cur_keys == main_keys && find_key(handler_keys, nitems(handler_keys), name))
			other = "[" HANDLER_PREFIX "TYPE]";
		else if (ld->cur_keys == handler_keys &&
		         find_key(main_keys, nitems(main_keys), name))
			other = "[" MAIN_SECTION "]";
		add_error(ld, ld->lineno, "unknown key '%s' in %s%s%s%s", name, ld->cur->title,
		          other ? " (it belongs in " : "", other ? other : "", other ? ")" : "");
		return;
	}
	r = &ld->cur->raw[k - ld->cur_keys];
	if (r->value != NULL) {
		add_error(ld, ld->lineno, "%s: given twice (first on line %d)", k->name, r->line);
		return;
	}
	r->value = xstrdup(value);
	r->line = ld->lineno;
	r->cut = ld->cut;
	ld->cont = r;
	ld->cont_key = k;
}

/* An indented line: more words for the key above it. */
static void
continue_key(struct load *ld, const char *value)
{
	const struct key *k = ld->cont_key;
	struct raw *r = ld->cont;
	size_t old, n;
	char sep;
	bool need_sep;

	if (r == NULL)
		return;
	switch (k->type) {
	case KT_COMMAND:
	case KT_ENVIRONMENT:
		/* A newline, so that a quote may span lines and "\" at the end joins words. */
		sep = '\n';
		break;
	case KT_QUEUES: sep = ','; break;
	case KT_EXIT_CODES: sep = ' '; break;
	default:
		add_error(ld, ld->lineno,
		          "%s: unexpected indented line (only command, environment, queues and "
		          "dead_exit_codes continue on indented lines)",
		          k->name);
		return;
	}
	/* inih r55 keeps inline comments on continuation lines; later releases cut them. */
	n = rtrim_len(value, (size_t)(find_chars_or_comment(value, NULL) - value));
	old = strlen(r->value);
	/* "a," + "b" and "a" + ",b" need no extra comma: an empty item would be an error. */
	need_sep = old > 0 && !(sep == ',' && (r->value[old - 1] == ',' || value[0] == ','));
	r->value = xreallocarray(r->value, old + n + 2, 1);
	if (need_sep)
		r->value[old++] = sep;
	memcpy(r->value + old, value, n);
	r->value[old + n] = '\0';
	r->cut |= ld->cut;
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;

	/* The reader tracks sections itself: inih cuts their names at 49 bytes. */
	(void)section;
	if (ld->kind == LINE_KEY)
		set_key(ld, name, value);
	else if (ld->kind == LINE_CONTINUATION)
		continue_key(ld, value);
	/* Errors are ours to report, with their lines: never fail inih's count. */
	return 1;
}

/* ------------------------------------------------------------------ */
/* Pass 2: values                                                       */
/* ------------------------------------------------------------------ */

/* The shortest exact spelling of a duration, for messages: 90000 -> "90s". */
static void
format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct unit units[] = {
	    {"d", DAY_MS}, {"h", HOUR_MS}, {"m", MINUTE_MS}, {"s", SECOND_MS}, {"ms", 1},
	};

	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < nitems(units); i++) {
		if (ms % units[i].mult == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].mult),
			         units[i].name);
			return;
		}
	}
}

static void
format_bound(const struct key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == KT_DURATION) {
		format_duration(v, buf, len);
	} else if (k->type == KT_SIZE && v != 0 && v % MIB == 0) {
		snprintf(buf, len, "%lldMiB", (long long)(v / MIB));
	} else if (k->type == KT_SIZE && v != 0 && v % KIB == 0) {
		snprintf(buf, len, "%lldKiB", (long long)(v / KIB));
	} else if (k->type == KT_SIZE && v != 0) {
		snprintf(buf, len, "%lldB", (long long)v);
	} else {
		snprintf(buf, len, "%lld", (long long)v);
	}
}

static bool
check_range(struct load *ld, const struct key *k, const char *text, int line, int64_t v)
{
	char lo[32], hi[32];

	if (v >= k->min && (k->max < 0 || v <= k->max))
		return true;
	format_bound(k, k->min, lo, sizeof(lo));
	if (k->max < 0) {
		add_error(ld, line, "%s: '%s' is below the minimum (%s)", k->name, text, lo);
	} else {
		format_bound(k, k->max, hi, sizeof(hi));
		add_error(ld, line, "%s: '%s' is out of range (%s to %s)", k->name, text, lo, hi);
	}
	return false;
}

/* Comma-separated queue names, blanks around the commas allowed. */
static bool
parse_queues(struct load *ld, const struct key *k, const char *text, int line, char ***out)
{
	struct vec q = {0};
	bool ok = true, empty_seen = false;
	const char *p = text;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char *name;

		while (n > 0 && is_blank(*p)) {
			p++;
			n--;
		}
		while (n > 0 && is_blank(p[n - 1]))
			n--;
		name = xstrndup(p, n);
		if (n == 0) {
			if (!empty_seen)
				add_error(ld, line, "%s: empty queue name in '%s'", k->name, text);
			empty_seen = true;
			ok = false;
			free(name);
		} else if (!cfg_valid_name(name)) {
			add_error(ld, line, "%s: bad queue name '%s' (" NAME_HINT ")", k->name,
			          name);
			ok = false;
			free(name);
		} else {
			bool dup = false;

			for (size_t i = 0; i < q.n; i++)
				dup |= strcmp(q.v[i], name) == 0;
			if (dup) {
				add_error(ld, line, "%s: '%s' is listed twice", k->name, name);
				ok = false;
				free(name);
			} else {
				vec_push(&q, name);
			}
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (ok && q.n == 0) {
		add_error(ld, line, "%s: no queue given", k->name);
		ok = false;
	}
	if (!ok) {
		cfg_free_words(vec_take(&q));
		return false;
	}
	*out = vec_take(&q);
	return true;
}

/* Integers separated by commas and/or blanks; empty: none. */
static bool
parse_exit_codes(struct load *ld, const struct key *k, const char *text, int line, uint8_t *bitmap)
{
	bool ok = true, empty_seen = false;
	const char *p = text;

	memset(bitmap, 0, 32);
	if (*skip_space(text) == '\0')
		return true;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		bool any = false;

		while (p < end) {
			const char *w;
			char *word;
			int64_t v;

			while (p < end && is_blank(*p))
				p++;
			if (p == end)
				break;
			w = p;
			while (p < end && !is_blank(*p))
				p++;
			any = true;
			word = xstrndup(w, (size_t)(p - w));
			if (!parse_int(word, &v)) {
				add_error(ld, line,
				          "%s: bad exit code '%s' (use integers %lld to %lld)",
				          k->name, word, (long long)k->min, (long long)k->max);
				ok = false;
			} else if (!check_range(ld, k, word, line, v)) {
				ok = false;
			} else {
				bitmap[v / 8] |= (uint8_t)(1u << (v % 8));
			}
			free(word);
		}
		if (!any && !empty_seen) {
			add_error(ld, line, "%s: empty item between commas in '%s'", k->name, text);
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
check_program(struct load *ld, const struct key *k, const char *path, int line)
{
	struct stat st;

	if (path[0] != '/') {
		add_error(ld, line, "%s: '%s' is not an absolute path (there is no PATH search)",
		          k->name, path);
		return false;
	}
	if (stat(path, &st) < 0) {
		add_error(ld, line, "%s: '%s': %s", k->name, path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		add_error(ld, line, "%s: '%s' is not a regular file", k->name, path);
		return false;
	}
	if (access(path, X_OK) < 0) {
		add_error(ld, line, "%s: '%s' is not executable: %s", k->name, path,
		          strerror(errno));
		return false;
	}
	return true;
}

static bool
parse_command(struct load *ld, const struct key *k, const char *text, int line, bool cut,
              char ***out)
{
	const char *err;
	char **argv = cfg_split_words(text, &err);

	if (argv == NULL) {
		add_error(ld, line, "%s: %s in '%s'%s", k->name, err, text, comment_hint(cut));
		return false;
	}
	if (argv[0] == NULL) {
		add_error(ld, line, "%s: no program in '%s'", k->name, text);
		cfg_free_words(argv);
		return false;
	}
	if (!check_program(ld, k, argv[0], line)) {
		cfg_free_words(argv);
		return false;
	}
	*out = argv;
	return true;
}

static bool
valid_env_name(const char *s, size_t n)
{
	if (n == 0 || is_digit(s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_'))
			return false;
	}
	return true;
}

static bool
parse_environment(struct load *ld, const struct key *k, const char *text, int line, bool cut,
                  char ***out)
{
	const char *err;
	char **words = cfg_split_words(text, &err);
	bool ok = true;

	if (words == NULL) {
		add_error(ld, line, "%s: %s in '%s'%s", k->name, err, text, comment_hint(cut));
		return false;
	}
	for (size_t i = 0; words[i] != NULL; i++) {
		const char *w = words[i];
		const char *eq = strchr(w, '=');
		size_t n = eq ? (size_t)(eq - w) : 0;

		if (eq == NULL) {
			add_error(ld, line, "%s: '%s' is not NAME=VALUE", k->name, w);
			ok = false;
		} else if (!valid_env_name(w, n)) {
			add_error(ld, line,
			          "%s: bad variable name in '%s' (letters, digits and _, not "
			          "starting with a digit)",
			          k->name, w);
			ok = false;
		} else if (strncmp(w, "PGJOBD_", 7) == 0) {
			add_error(ld, line,
			          "%s: '%.*s' is reserved (names starting with PGJOBD_ are set by "
			          "pgjobd)",
			          k->name, (int)n, w);
			ok = false;
		} else {
			for (size_t j = 0; j < i; j++) {
				if (strncmp(words[j], w, n + 1) == 0) {
					add_error(ld, line, "%s: '%.*s' is set twice", k->name,
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
parse_directory(struct load *ld, const struct key *k, const char *text, int line, char **out)
{
	struct stat st;

	if (text[0] != '/') {
		add_error(ld, line, "%s: '%s' is not an absolute path", k->name, text);
		return false;
	}
	if (stat(text, &st) < 0) {
		add_error(ld, line, "%s: '%s': %s", k->name, text, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		add_error(ld, line, "%s: '%s' is not a directory", k->name, text);
		return false;
	}
	*out = xstrdup(text);
	return true;
}

static bool
valid_worker_name(const char *s)
{
	size_t n = strlen(s);

	if (n > CFG_NAME_MAX)
		return false;
	/* Printable ASCII without blanks: it is shown in logs and in pgjobd.workers. */
	for (; *s != '\0'; s++) {
		if (*s < 0x21 || *s > 0x7e)
			return false;
	}
	return true;
}

/*
 * Parse TEXT (a user's value or a key's default) for key K into its field
 * in BASE.  Reports errors at LINE and returns whether the field was set;
 * on failure the field is left untouched (zero), so cfg_free() is safe.
 */
static bool
parse_value(struct load *ld, const struct key *k, const char *text, int line, bool cut, void *base)
{
	void *field = (char *)base + k->off;
	const char *err;
	int64_t v;

	switch (k->type) {
	case KT_STRING: *(char **)field = xstrdup(text); return true;
	case KT_WORKER_NAME:
		if (!valid_worker_name(text)) {
			add_error(ld, line,
			          "%s: bad worker name '%s' (at most %d printable characters, no "
			          "blanks)",
			          k->name, text, CFG_NAME_MAX);
			return false;
		}
		*(char **)field = xstrdup(text);
		return true;
	case KT_QUEUES: return parse_queues(ld, k, text, line, (char ***)field);
	case KT_CAP:
		if (text[0] == '\0') {
			*(int *)field = 0;
			return true;
		}
		/* FALLTHROUGH */
	case KT_INT:
		if (!parse_int(text, &v)) {
			add_error(ld, line, "%s: bad integer '%s'", k->name, text);
			return false;
		}
		if (!check_range(ld, k, text, line, v))
			return false;
		*(int *)field = (int)v;
		return true;
	case KT_DURATION:
		if (cfg_parse_duration(text, &v, &err) < 0) {
			add_error(ld, line, "%s: bad duration '%s' (%s)", k->name, text, err);
			return false;
		}
		if (!check_range(ld, k, text, line, v))
			return false;
		*(int64_t *)field = v;
		return true;
	case KT_SIZE: {
		size_t n;

		if (cfg_parse_size(text, &n, &err) < 0) {
			add_error(ld, line, "%s: bad size '%s' (%s)", k->name, text, err);
			return false;
		}
		if (!check_range(ld, k, text, line, n > INT64_MAX ? INT64_MAX : (int64_t)n))
			return false;
		*(size_t *)field = n;
		return true;
	}
	case KT_BOOL:
		if (!parse_bool(text, (bool *)field)) {
			add_error(ld, line, "%s: bad boolean '%s' (use yes or no)", k->name, text);
			return false;
		}
		return true;
	case KT_COMMAND: return parse_command(ld, k, text, line, cut, (char ***)field);
	case KT_ENVIRONMENT: return parse_environment(ld, k, text, line, cut, (char ***)field);
	case KT_EXIT_CODES: return parse_exit_codes(ld, k, text, line, (uint8_t *)field);
	case KT_DIRECTORY: return parse_directory(ld, k, text, line, (char **)field);
	}
	abort();
}

/* The user's non-empty value, or else what stands in for it. */
static bool
given(const struct raw *r)
{
	return r->value != NULL && r->value[0] != '\0';
}

/* Parse every key of SEC into BASE; OK[i] says whether key i got a value. */
static void
fill_section(struct load *ld, const struct key *keys, size_t nkeys, const struct section *sec,
             void *base, bool *ok)
{
	for (size_t i = 0; i < nkeys; i++) {
		const struct key *k = &keys[i];
		const struct raw *r = &sec->raw[i];

		if (r->value != NULL && (r->value[0] != '\0' || (k->flags & K_EMPTY_IS_VALUE))) {
			ok[i] = parse_value(ld, k, r->value, r->line, r->cut, base);
		} else if (k->def != NULL) {
			/* A default that fails is a bug here; still report it, on the header. */
			ok[i] = parse_value(ld, k, k->def, sec->line, false, base);
		} else {
			add_error(ld, sec->line, "%s has no %s", sec->title, k->name);
			ok[i] = false;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Pass 3: rules between keys                                           */
/* ------------------------------------------------------------------ */

/* The text behind key I's value: what the user wrote, or the default. */
static const char *
shown(const struct key *keys, const struct section *sec, size_t i)
{
	return given(&sec->raw[i]) ? sec->raw[i].value : keys[i].def;
}

static void
check_main(struct load *ld, const struct cfg *cfg, const bool *ok)
{
	const struct section *sec = &ld->main;

	/*
	 * Two heartbeats must fit in a lease, or a single late one lets the
	 * lease expire under a running handler.  Written as hb >= lease - hb:
	 * heartbeat has no upper bound, so 2 * hb could overflow.
	 */
	if (ok[MK_LEASE] && ok[MK_HEARTBEAT] &&
	    cfg->heartbeat_ms >= cfg->lease_ms - cfg->heartbeat_ms) {
		if (given(&sec->raw[MK_HEARTBEAT])) {
			add_error(ld, sec->raw[MK_HEARTBEAT].line,
			          "heartbeat: '%s' must be less than lease / 2 (lease is %s)",
			          shown(main_keys, sec, MK_HEARTBEAT),
			          shown(main_keys, sec, MK_LEASE));
		} else {
			add_error(ld, sec->raw[MK_LEASE].line,
			          "lease: '%s' must be more than twice heartbeat (%s by default); "
			          "set a shorter heartbeat",
			          shown(main_keys, sec, MK_LEASE), main_keys[MK_HEARTBEAT].def);
		}
	}
}

static void
check_handler(struct load *ld, const struct cfg *cfg, const bool *main_ok,
              const struct cfg_handler *h, const struct section *sec, const bool *ok)
{
	if (ok[HK_BACKOFF] && ok[HK_BACKOFF_MAX] && h->backoff_max_ms < h->backoff_ms) {
		if (given(&sec->raw[HK_BACKOFF_MAX])) {
			add_error(ld, sec->raw[HK_BACKOFF_MAX].line,
			          "backoff_max: '%s' must not be less than backoff (%s)",
			          shown(handler_keys, sec, HK_BACKOFF_MAX),
			          shown(handler_keys, sec, HK_BACKOFF));
		} else {
			add_error(ld, sec->raw[HK_BACKOFF].line,
			          "backoff: '%s' must not exceed backoff_max (%s by default); "
			          "raise backoff_max too",
			          shown(handler_keys, sec, HK_BACKOFF),
			          handler_keys[HK_BACKOFF_MAX].def);
		}
	}
	/* A cap of 0 means none; when [pgjobd] concurrency is bad there is nothing to compare. */
	if (ok[HK_CONCURRENCY] && main_ok[MK_CONCURRENCY] && h->concurrency > cfg->concurrency) {
		add_error(ld, sec->raw[HK_CONCURRENCY].line,
		          "concurrency: '%s' must not exceed [" MAIN_SECTION "] concurrency (%d)",
		          shown(handler_keys, sec, HK_CONCURRENCY), cfg->concurrency);
	}
}

static int
cmp_handlers(const void *a, const void *b)
{
	const struct cfg_handler *x = a, *y = b;

	return strcmp(x->type, y->type);
}

/* Passes 2 and 3: a struct cfg from the raw values, complete unless errors were added. */
static struct cfg *
build(struct load *ld)
{
	struct cfg *cfg = xcalloc(1, sizeof(*cfg));
	bool main_ok[MK_COUNT], ok[HK_COUNT];

	cfg->path = xstrdup(ld->path);
	fill_section(ld, main_keys, nitems(main_keys), &ld->main, cfg, main_ok);
	check_main(ld, cfg, main_ok);
	cfg->nqueues = (int)count_words(cfg->queues);

	cfg->handlers = xcalloc(ld->nhandlers, sizeof(*cfg->handlers));
	for (size_t i = 0; i < ld->nhandlers; i++) {
		const struct section *sec = ld->handlers[i];
		struct cfg_handler *h = &cfg->handlers[i];

		/* Counted before it is filled, so cfg_free() frees a half-filled one. */
		cfg->nhandlers++;
		h->type = xstrdup(sec->type);
		fill_section(ld, handler_keys, nitems(handler_keys), sec, h, ok);
		check_handler(ld, cfg, main_ok, h, sec, ok);
	}
	if (cfg->nhandlers > 0)
		qsort(cfg->handlers, (size_t)cfg->nhandlers, sizeof(*cfg->handlers), cmp_handlers);
	return cfg;
}

static void
free_section(struct section *sec)
{
	for (size_t i = 0; i < nitems(sec->raw); i++)
		free(sec->raw[i].value);
	free(sec->type);
	free(sec->title);
}

static void
load_free(struct load *ld)
{
	for (size_t i = 0; i < ld->nerrors; i++)
		free(ld->errors[i].msg);
	free(ld->errors);
	free(ld->buf);
	free_section(&ld->main);
	for (size_t i = 0; i < ld->nhandlers; i++) {
		free_section(ld->handlers[i]);
		free(ld->handlers[i]);
	}
	free(ld->handlers);
}

struct cfg *
cfg_load(const char *path, char **errors)
{
	struct load ld = {.path = path};
	struct cfg *cfg = NULL;
	int rc;

	if (errors != NULL)
		*errors = NULL;
	ld.main.title = xstrdup("[" MAIN_SECTION "]");
	/* Close-on-exec: the daemon that reloads this file spawns handlers. */
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		add_error(&ld, 0, "cannot open: %s", strerror(errno));
	} else {
		rc = ini_parse_stream(cfg_reader, &ld, on_value, &ld);
		fclose(ld.fp);
		ld.fp = NULL;
		/* A line inih refused that the reader let through: still say where. */
		if (rc > 0 && !has_error_on(&ld, rc))
			add_error(&ld, rc, "syntax error: expected 'key = value' or '[section]'");
		else if (rc < 0)
			add_error(&ld, 0, "cannot parse: inih failed (%d)", rc);
		/* Half a file would only add errors that are not there. */
		if (!ld.read_failed)
			cfg = build(&ld);
	}
	if (ld.nerrors > 0) {
		cfg_free(cfg);
		cfg = NULL;
		if (errors != NULL)
			*errors = format_errors(&ld);
	}
	load_free(&ld);
	return cfg;
}

void
cfg_free(struct cfg *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < cfg->nhandlers; i++) {
		struct cfg_handler *h = &cfg->handlers[i];

		free(h->type);
		cfg_free_words(h->argv);
		free(h->working_directory);
		cfg_free_words(h->environment);
	}
	free(cfg->handlers);
	free(cfg->path);
	free(cfg->database);
	cfg_free_words(cfg->queues);
	free(cfg->name);
	free(cfg);
}

static int
cmp_type(const void *key, const void *elem)
{
	const struct cfg_handler *h = elem;

	return strcmp(key, h->type);
}

const struct cfg_handler *
cfg_handler(const struct cfg *cfg, const char *type)
{
	/* bsearch() with a NULL base is undefined even for zero elements. */
	if (cfg->nhandlers == 0)
		return NULL;
	return bsearch(type, cfg->handlers, (size_t)cfg->nhandlers, sizeof(*cfg->handlers),
	               cmp_type);
}

bool
cfg_dead_exit(const struct cfg_handler *h, int code)
{
	if (code < 1 || code > 255)
		return false;
	return (h->dead_exit[code / 8] >> (code % 8)) & 1;
}

int
cfg_unreloadable_changes(const struct cfg *old, const struct cfg *new_, char *buf, size_t len)
{
	size_t used = 0;
	int n = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < nitems(main_keys); i++) {
		const struct key *k = &main_keys[i];
		const char *a, *b;
		int w;

		if (k->flags & K_RELOAD)
			continue;
		/* Only text keys are not reloadable; a new one of another type needs code here. */
		if (k->type != KT_STRING && k->type != KT_WORKER_NAME)
			abort();
		a = *(char *const *)((const char *)old + k->off);
		b = *(char *const *)((const char *)new_ + k->off);
		if (strcmp(a ? a : "", b ? b : "") == 0)
			continue;
		/* No values: a database conninfo may hold a password. */
		if (used + 1 < len) {
			w = snprintf(buf + used, len - used, "%s%s changed", n > 0 ? "\n" : "",
			             k->name);
			if (w > 0)
				used += (size_t)w < len - used ? (size_t)w : len - used - 1;
		}
		n++;
	}
	return n;
}

const char *const *
cfg_key_names(void)
{
	/* Filled on first use from the tables; [pgjobd] keys first, each name once. */
	static const char *names[nitems(main_keys) + nitems(handler_keys) + 1];
	size_t n = 0;

	if (names[0] != NULL)
		return names;
	for (size_t i = 0; i < nitems(main_keys); i++)
		names[n++] = main_keys[i].name;
	for (size_t i = 0; i < nitems(handler_keys); i++) {
		if (find_key(main_keys, nitems(main_keys), handler_keys[i].name) == NULL)
			names[n++] = handler_keys[i].name;
	}
	names[n] = NULL;
	return names;
}
