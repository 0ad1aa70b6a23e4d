/*
 * tail: keep the last CAP bytes of a stream, and count the rest.
 *
 * A handler may write gigabytes; the daemon keeps a fixed-size ring per
 * stream and memory stays flat.  tail_text() turns what is kept into text
 * PostgreSQL accepts: valid UTF-8 without NUL bytes (a tail may start in
 * the middle of a character; handlers may write binary).
 */
#ifndef PGJOBD_TAIL_H
#define PGJOBD_TAIL_H

#include <stddef.h>
#include <stdint.h>

struct tail {
	char *buf;      /* ring, allocated as it fills, at most cap bytes */
	size_t cap;
	size_t alloc;
	size_t len;     /* bytes held (<= cap) */
	size_t start;   /* index of the oldest byte */
	uint64_t total; /* bytes ever appended */
};

void tail_init(struct tail *t, size_t cap);
void tail_append(struct tail *t, const char *p, size_t n);
/* A malloc'd NUL-terminated copy of what is held, as valid UTF-8: leading
 * continuation bytes of a cut character are dropped; invalid sequences
 * and NUL bytes become U+FFFD.  *LEN gets its length. */
char *tail_text(const struct tail *t, size_t *len);
void tail_free(struct tail *t);

#endif
