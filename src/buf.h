/*
 * buf: a growing NUL-terminated string, for the text parameters of the
 * daemon's statements: JSON documents and PostgreSQL array literals.
 * A zeroed struct buf is empty and ready; free(b.p) when done.
 */
#ifndef PGJOBD_BUF_H
#define PGJOBD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	char *p;
	size_t len, cap;
};

void buf_add(struct buf *b, const char *s, size_t n);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string of S, which is valid UTF-8 without NUL (tail_text
 * guarantees that of handler output). */
void buf_json_string(struct buf *b, const char *s);
/* A PostgreSQL array literal of N names.  Quoted, since a name may be
 * "NULL"; names are [A-Za-z0-9_.:-] only, so nothing needs escaping. */
void buf_name_array(struct buf *b, char *const *names, int n);
/* Array literals of N integers: {1,2,3}. */
void buf_int_array(struct buf *b, const int *v, int n);
void buf_int64_array(struct buf *b, const int64_t *v, int n);
/* Take the string (never NULL: "" when nothing was added). */
char *buf_take(struct buf *b);

#endif
