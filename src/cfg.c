/*
 * cfg: the key tables of CONTRACT section 4, and loading a file with them.
 *
 * Loading happens in three passes over one struct load:
 *
 *   1. read: cfg_ini_read() hands over each section, key and continuation
 *      line with its line number; on_section(), on_key() and
 *      on_continuation() file each key's raw text under its section,
 *      joining continuation lines, and report unknown or repeated ones.
 *   2. fill: every key of every section is parsed from its raw text, or
 *      from its default text when absent or empty, by cfg_field_parse().
 *   3. check: the rules that tie keys together (heartbeat < lease / 2,
 *      backoff <= backoff_max, a handler's cap <= the global concurrency).
 *
 * Every error is collected with its line; the result is either a complete
 * struct cfg or the sorted list of all errors, never both.
 */
#include "cfg.h"

#include "cfg_field.h"
#include "cfg_ini.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define MAIN_SECTION "pgjobd"
#define HANDLER_PREFIX "handler."

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
	MK_METRICS_LISTEN,
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

/* [pgjobd].  database, name and metrics_listen are not reloadable:
 * see cfg_unreloadable_changes(). */
static const struct cfg_key main_keys[MK_COUNT] = {
    [MK_DATABASE] = {"database", KT_STRING, "", 0, -1, 0, CFG_OFF(database)},
    [MK_QUEUES] = {"queues", KT_QUEUES, "default", 0, -1, K_RELOAD, CFG_OFF(queues)},
    [MK_CONCURRENCY] = {"concurrency", KT_INT, "4", 1, 1024, K_RELOAD, CFG_OFF(concurrency)},
    [MK_LEASE] = {"lease", KT_DURATION, "60s", CFG_SECOND_MS, CFG_DAY_MS, K_RELOAD,
                  CFG_OFF(lease_ms)},
    [MK_HEARTBEAT] = {"heartbeat", KT_DURATION, "20s", 100, -1, K_RELOAD, CFG_OFF(heartbeat_ms)},
    [MK_POLL_INTERVAL] = {"poll_interval", KT_DURATION, "5s", 100, CFG_HOUR_MS, K_RELOAD,
                          CFG_OFF(poll_interval_ms)},
    [MK_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", KT_DURATION, "30s", 0, CFG_DAY_MS, K_RELOAD,
                             CFG_OFF(shutdown_timeout_ms)},
    [MK_KILL_GRACE] = {"kill_grace", KT_DURATION, "10s", 0, CFG_HOUR_MS, K_RELOAD,
                       CFG_OFF(kill_grace_ms)},
    [MK_OUTPUT_LIMIT] = {"output_limit", KT_SIZE, "64KiB", 0, 16 * CFG_MIB, K_RELOAD,
                         CFG_OFF(output_limit)},
    [MK_NAME] = {"name", KT_WORKER_NAME, "", 0, -1, 0, CFG_OFF(name)},
    [MK_METRICS_LISTEN] = {"metrics_listen", KT_LISTEN, "", 0, -1, 0, CFG_OFF(metrics_listen)},
};

/* [handler.TYPE]. */
static const struct cfg_key handler_keys[HK_COUNT] = {
    [HK_COMMAND] = {"command", KT_COMMAND, NULL, 0, -1, K_RELOAD, HANDLER_OFF(argv)},
    [HK_TIMEOUT] = {"timeout", KT_DURATION, "1h", 0, 30 * CFG_DAY_MS, K_RELOAD,
                    HANDLER_OFF(timeout_ms)},
    [HK_MAX_ATTEMPTS] = {"max_attempts", KT_INT, "5", 1, 1000, K_RELOAD, HANDLER_OFF(max_attempts)},
    [HK_BACKOFF] = {"backoff", KT_DURATION, "10s", 0, CFG_DAY_MS, K_RELOAD,
                    HANDLER_OFF(backoff_ms)},
    [HK_BACKOFF_MAX] = {"backoff_max", KT_DURATION, "1h", 0, 30 * CFG_DAY_MS, K_RELOAD,
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

struct load {
	const char *path;
	struct cfg_errors errors;

	/* The sections found so far. */
	struct section main;
	bool main_seen;
	struct section **handlers;
	size_t nhandlers, hcap;

	/* Where keys go: NULL before any section or inside a rejected one. */
	struct section *cur;
	bool cur_skip; /* in a rejected section: its keys are ignored */
	const struct cfg_key *cur_keys;
	size_t cur_nkeys;

	/* The value an indented line continues; NULL: ignore such lines. */
	struct raw *cont;
	const struct cfg_key *cont_key;
};

/* ------------------------------------------------------------------ */
/* Pass 1: filing the raw text                                          */
/* ------------------------------------------------------------------ */

static const struct cfg_key *
find_key(const struct cfg_key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
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
	sec->type = xstrdup(type);
	sec->title = xasprintf("[" HANDLER_PREFIX "%s]", type);
	return sec;
}

/* A [NAME] line: make its section the one that receives keys. */
static void
on_section(void *user, const char *name, int line)
{
	struct load *ld = user;
	size_t plen = strlen(HANDLER_PREFIX);

	ld->cont = NULL;
	ld->cur_skip = false;
	if (name == NULL) {
		skip_section(ld);
		return;
	}
	if (strcmp(name, MAIN_SECTION) == 0) {
		if (ld->main_seen) {
			cfg_error(&ld->errors, line, "duplicate section [%s] (first on line %d)",
			          name, ld->main.line);
			skip_section(ld);
			return;
		}
		ld->main_seen = true;
		ld->main.line = line;
		ld->cur = &ld->main;
		ld->cur_keys = main_keys;
		ld->cur_nkeys = nitems(main_keys);
		return;
	}
	if (strncmp(name, HANDLER_PREFIX, plen) != 0) {
		cfg_error(&ld->errors, line, "unknown section [%s]", name);
		skip_section(ld);
		return;
	}
	if (!cfg_valid_name(name + plen)) {
		cfg_error(&ld->errors, line,
		          "unknown section [%s]: a handler type is " CFG_NAME_HINT, name);
		skip_section(ld);
		return;
	}
	for (size_t i = 0; i < ld->nhandlers; i++) {
		if (strcmp(ld->handlers[i]->type, name + plen) == 0) {
			cfg_error(&ld->errors, line, "duplicate section [%s] (first on line %d)",
			          name, ld->handlers[i]->line);
			skip_section(ld);
			return;
		}
	}
	if (ld->nhandlers == ld->hcap) {
		ld->hcap = ld->hcap ? 2 * ld->hcap : 8;
		ld->handlers = xreallocarray(ld->handlers, ld->hcap, sizeof(*ld->handlers));
	}
	ld->cur = new_section(name + plen, line);
	ld->handlers[ld->nhandlers++] = ld->cur;
	ld->cur_keys = handler_keys;
	ld->cur_nkeys = nitems(handler_keys);
}

/* A "key = value" line. */
static void
on_key(void *user, const char *name, const char *value, int line, bool cut)
{
	struct load *ld = user;
	const struct cfg_key *k;
	struct raw *r;

	ld->cont = NULL;
	if (ld->cur_skip)
		return;
	if (ld->cur == NULL) {
		cfg_error(&ld->errors, line,
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
		cfg_error(&ld->errors, line, "unknown key '%s' in %s%s%s%s", name, ld->cur->title,
		          other ? " (it belongs in " : "", other ? other : "", other ? ")" : "");
		return;
	}
	r = &ld->cur->raw[k - ld->cur_keys];
	if (r->value != NULL) {
		cfg_error(&ld->errors, line, "%s: given twice (first on line %d)", k->name,
		          r->line);
		return;
	}
	r->value = xstrdup(value);
	r->line = line;
	r->cut = cut;
	ld->cont = r;
	ld->cont_key = k;
}

/* An indented line: more words for the key above it. */
static void
on_continuation(void *user, const char *value, int line, bool cut)
{
	struct load *ld = user;
	const struct cfg_key *k = ld->cont_key;
	struct raw *r = ld->cont;
	size_t old, n;
	char sep;
	bool need_sep;

	if (r == NULL)
		return;
	switch (k->type) {
	case KT_COMMAND:
	case KT_ENVIRONMENT:
		/* A newline, so that a quote may span lines and "\\" at the end joins words. */
		sep = '\n';
		break;
	case KT_QUEUES: sep = ','; break;
	case KT_EXIT_CODES: sep = ' '; break;
	default:
		cfg_error(&ld->errors, line,
		          "%s: unexpected indented line (only command, environment, queues and "
		          "dead_exit_codes continue on indented lines)",
		          k->name);
		return;
	}
	n = strlen(value);
	old = strlen(r->value);
	/* "a," + "b" and "a" + ",b" need no extra comma: an empty item would be an error. */
	need_sep = old > 0 && !(sep == ',' && (r->value[old - 1] == ',' || value[0] == ','));
	r->value = xreallocarray(r->value, old + n + 2, 1);
	if (need_sep)
		r->value[old++] = sep;
	memcpy(r->value + old, value, n);
	r->value[old + n] = '\0';
	r->cut |= cut;
}

static const struct cfg_ini_ops ops = {on_section, on_key, on_continuation};

/* ------------------------------------------------------------------ */
/* Pass 2: values                                                       */
/* ------------------------------------------------------------------ */

/* The user's non-empty value, or else what stands in for it. */
static bool
given(const struct raw *r)
{
	return r->value != NULL && r->value[0] != '\0';
}

/* Parse every key of SEC into BASE; OK[i] says whether key i got a value. */
static void
fill_section(struct load *ld, const struct cfg_key *keys, size_t nkeys, const struct section *sec,
             void *base, bool *ok)
{
	for (size_t i = 0; i < nkeys; i++) {
		const struct cfg_key *k = &keys[i];
		const struct raw *r = &sec->raw[i];

		if (r->value != NULL && (r->value[0] != '\0' || (k->flags & K_EMPTY_IS_VALUE))) {
			ok[i] = cfg_field_parse(&ld->errors, k, r->value, r->line, r->cut, base);
		} else if (k->def != NULL) {
			/* A default that fails is a bug here; still report it, on the header. */
			ok[i] = cfg_field_parse(&ld->errors, k, k->def, sec->line, false, base);
		} else {
			cfg_error(&ld->errors, sec->line, "%s has no %s", sec->title, k->name);
			ok[i] = false;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Pass 3: rules between keys                                           */
/* ------------------------------------------------------------------ */

/* The text behind key I's value: what the user wrote, or the default. */
static const char *
shown(const struct cfg_key *keys, const struct section *sec, size_t i)
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
			cfg_error(&ld->errors, sec->raw[MK_HEARTBEAT].line,
			          "heartbeat: '%s' must be less than lease / 2 (lease is %s)",
			          shown(main_keys, sec, MK_HEARTBEAT),
			          shown(main_keys, sec, MK_LEASE));
		} else {
			cfg_error(&ld->errors, sec->raw[MK_LEASE].line,
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
			cfg_error(&ld->errors, sec->raw[HK_BACKOFF_MAX].line,
			          "backoff_max: '%s' must not be less than backoff (%s)",
			          shown(handler_keys, sec, HK_BACKOFF_MAX),
			          shown(handler_keys, sec, HK_BACKOFF));
		} else {
			cfg_error(&ld->errors, sec->raw[HK_BACKOFF].line,
			          "backoff: '%s' must not exceed backoff_max (%s by default); "
			          "raise backoff_max too",
			          shown(handler_keys, sec, HK_BACKOFF),
			          handler_keys[HK_BACKOFF_MAX].def);
		}
	}
	/* A cap of 0 means none; when [pgjobd] concurrency is bad there is nothing to compare. */
	if (ok[HK_CONCURRENCY] && main_ok[MK_CONCURRENCY] && h->concurrency > cfg->concurrency) {
		cfg_error(&ld->errors, sec->raw[HK_CONCURRENCY].line,
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
	cfg->nqueues = (int)cfg_count_words(cfg->queues);

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
	cfg_errors_free(&ld->errors);
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

	if (errors != NULL)
		*errors = NULL;
	ld.main.title = xstrdup("[" MAIN_SECTION "]");
	/* Half a file would only add errors that are not there. */
	if (cfg_ini_read(path, &ops, &ld, &ld.errors) == 0)
		cfg = build(&ld);
	if (ld.errors.n > 0) {
		cfg_free(cfg);
		cfg = NULL;
		if (errors != NULL)
			*errors = cfg_errors_format(&ld.errors, path);
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
	free(cfg->metrics_listen);
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
		const struct cfg_key *k = &main_keys[i];
		const char *a, *b;
		int w;

		if (k->flags & K_RELOAD)
			continue;
		/* Only text keys are not reloadable; a new one of another type needs code here. */
		if (k->type != KT_STRING && k->type != KT_WORKER_NAME && k->type != KT_LISTEN)
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
