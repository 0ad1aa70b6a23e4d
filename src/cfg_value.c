/* cfg_value: see cfg_value.h. */
#include "cfg_value.h"

#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define DURATION_HINT "use an integer with ms, s, m, h or d"
#define SIZE_HINT "use an integer with B, KiB or MiB"

void
cfg_words_push(struct cfg_words *w, char *s)
{
	if (w->n + 2 > w->cap) {
		w->cap = w->cap ? 2 * w->cap : 8;
		w->v = xreallocarray(w->v, w->cap, sizeof(*w->v));
	}
	w->v[w->n++] = s;
	w->v[w->n] = NULL;
}

char **
cfg_words_take(struct cfg_words *w)
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

size_t
cfg_count_words(char *const *v)
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

bool
cfg_is_blank(char c)
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
	    {"ms", 1},          {"s", CFG_SECOND_MS}, {"m", CFG_MINUTE_MS},
	    {"h", CFG_HOUR_MS}, {"d", CFG_DAY_MS},
	};

	return parse_with_unit(s, units, nitems(units), DURATION_HINT, ms, err);
}

int
cfg_parse_size(const char *s, size_t *bytes, const char **err)
{
	static const struct unit units[] = {
	    {"B", 1},
	    {"KiB", CFG_KIB},
	    {"MiB", CFG_MIB},
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

bool
cfg_parse_int(const char *s, int64_t *out)
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

bool
cfg_parse_bool(const char *s, bool *out)
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
	struct cfg_words words = {0};
	/* No word is longer than the whole input. */
	char *cur = xmalloc(strlen(s) + 1);
	size_t n = 0;
	bool in_word = false;
	const char *p = s;

	for (;;) {
		char c = *p;

		if (c == '\0' || cfg_is_blank(c)) {
			if (in_word)
				cfg_words_push(&words, xstrndup(cur, n));
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
	return cfg_words_take(&words);

fail:
	free(cur);
	cfg_free_words(cfg_words_take(&words));
	return NULL;
}

void
cfg_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct unit units[] = {
	    {"d", CFG_DAY_MS},    {"h", CFG_HOUR_MS}, {"m", CFG_MINUTE_MS},
	    {"s", CFG_SECOND_MS}, {"ms", 1},
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

bool
cfg_valid_env_name(const char *s, size_t n)
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

bool
cfg_valid_worker_name(const char *s)
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

/* A port of 1-65535 in decimal, nothing else. */
static bool
parse_port(const char *s, in_port_t *port)
{
	int64_t v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || !cfg_parse_int(s, &v) || v < 1 ||
	    v > 65535)
		return false;
	*port = htons((uint16_t)v);
	return true;
}

int
cfg_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **err)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	size_t n;

	memset(ss, 0, sizeof *ss);
	if (s[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (strlen(s) >= sizeof un->sun_path) {
			*err = "a unix socket path must be shorter than 108 bytes";
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s, strlen(s) + 1);
		*len = (socklen_t)sizeof *un;
		return 0;
	}
	if (s[0] == '[') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		const char *close = strchr(s, ']');
		n = close ? (size_t)(close - s - 1) : 0;
		if (!close || close[1] != ':' || n >= sizeof host) {
			*err = "use [IPV6]:PORT";
			return -1;
		}
		memcpy(host, s + 1, n);
		host[n] = '\0';
		in6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			*err = "not a numeric IPv6 address";
			return -1;
		}
		if (!parse_port(close + 2, &in6->sin6_port)) {
			*err = "the port must be 1-65535";
			return -1;
		}
		*len = (socklen_t)sizeof *in6;
		return 0;
	}
	colon = strchr(s, ':');
	if (!colon || strchr(colon + 1, ':')) {
		*err = colon ? "an IPv6 address needs brackets: [::1]:9464"
		             : "use IPV4:PORT, [IPV6]:PORT or an absolute path";
		return -1;
	}
	n = (size_t)(colon - s);
	if (n >= sizeof host) {
		*err = "not a numeric IPv4 address";
		return -1;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	in->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
		*err = "not a numeric IPv4 address (no host names: resolving one would block)";
		return -1;
	}
	if (!parse_port(colon + 1, &in->sin_port)) {
		*err = "the port must be 1-65535";
		return -1;
	}
	*len = (socklen_t)sizeof *in;
	return 0;
}
