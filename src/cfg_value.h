/*
 * cfg_value: the pure parsers of the config's value syntax.  No file, no
 * key table, no error list: each takes a string and says what it holds.
 * cfg.c and cfg_field.c build on them; the unit tests call them directly.
 */
#ifndef PGJOBD_CFG_VALUE_H
#define PGJOBD_CFG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CFG_NAME_MAX 128 /* type and queue names: 1-128 of [A-Za-z0-9_.:-] */
#define CFG_NAME_HINT "1-128 characters of A-Z a-z 0-9 _ . : -"

#define CFG_SECOND_MS ((int64_t)1000)
#define CFG_MINUTE_MS (60 * CFG_SECOND_MS)
#define CFG_HOUR_MS (60 * CFG_MINUTE_MS)
#define CFG_DAY_MS (24 * CFG_HOUR_MS)
#define CFG_KIB ((int64_t)1024)
#define CFG_MIB (1024 * CFG_KIB)

/*
 * Each returns 0 on success and -1 with a static message in *err on
 * failure.  Durations: an integer with ms, s, m, h or d, or a bare 0.
 * Sizes: an integer with B, KiB or MiB, or a bare 0.
 */
int cfg_parse_duration(const char *s, int64_t *ms, const char **err);
int cfg_parse_size(const char *s, size_t *bytes, const char **err);

/*
 * A listening address: IPV4:PORT or [IPV6]:PORT with a numeric address
 * (no name lookup, which would block) and a port of 1-65535, or an
 * absolute path for a unix socket.  Sets *SS and *LEN.
 */
int cfg_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **err);

/* The shortest exact spelling of a duration, for messages: 90000 -> "90s". */
void cfg_format_duration(int64_t ms, char *buf, size_t len);

/*
 * A decimal integer, optionally negative, saturated to the int64 range so
 * that a huge value is reported as out of range rather than as garbage.
 */
bool cfg_parse_int(const char *s, int64_t *out);
/* yes/true/on/1 or no/false/off/0, any case. */
bool cfg_parse_bool(const char *s, bool *out);

/* Blanks that separate words and list items; '\n' joins continuation lines. */
bool cfg_is_blank(char c);

/* A type or queue name: 1-128 characters of [A-Za-z0-9_.:-]. */
bool cfg_valid_name(const char *s);
/* A worker name: at most 128 printable ASCII characters, no blanks. */
bool cfg_valid_worker_name(const char *s);
/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, N bytes of S. */
bool cfg_valid_env_name(const char *s, size_t n);

/*
 * Split S into words as sh does (blanks separate words; 'single' quotes
 * keep everything; "double" quotes keep everything but \ before $ ` " \
 * and newline; a backslash outside quotes quotes the next character), but
 * expand nothing.  Returns a NULL-terminated malloc'd vector (free with
 * cfg_free_words) or NULL with a message in *err.
 */
char **cfg_split_words(const char *s, const char **err);
void cfg_free_words(char **words);
size_t cfg_count_words(char *const *words);

/* A NULL-terminated vector of malloc'd strings that grows as words arrive. */
struct cfg_words {
	char **v;
	size_t n, cap;
};

/* Append S, which the vector then owns. */
void cfg_words_push(struct cfg_words *w, char *s);
/* Hand over the vector, which is never NULL even when empty. */
char **cfg_words_take(struct cfg_words *w);

#endif
