/* buf: see buf.h. */
#include "buf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_add(b, "", 0); /* allocates */
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = b->cap;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
buf_json_string(struct buf *b, const char *s)
{
	const char *run = s;

	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c != '"' && c != '\\' && c >= 0x20)
			continue;
		buf_add(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			buf_add(b, "\\", 1);
			buf_add(b, s, 1);
		} else {
			buf_printf(b, "\\u%04x", c);
		}
		run = s + 1;
	}
	buf_add(b, run, (size_t)(s - run));
	buf_add(b, "\"", 1);
}

void
buf_name_array(struct buf *b, char *const *names, int n)
{
	buf_add(b, "{", 1);
	for (int i = 0; i < n; i++)
		buf_printf(b, "%s\"%s\"", i ? "," : "", names[i]);
	buf_add(b, "}", 1);
}

void
buf_int_array(struct buf *b, const int *v, int n)
{
	buf_add(b, "{", 1);
	for (int i = 0; i < n; i++)
		buf_printf(b, "%s%d", i ? "," : "", v[i]);
	buf_add(b, "}", 1);
}

void
buf_int64_array(struct buf *b, const int64_t *v, int n)
{
	buf_add(b, "{", 1);
	for (int i = 0; i < n; i++)
		buf_printf(b, "%s%" PRId64, i ? "," : "", v[i]);
	buf_add(b, "}", 1);
}

char *
buf_take(struct buf *b)
{
	char *p;

	buf_add(b, "", 0);
	p = b->p;
	*b = (struct buf){0};
	return p;
}
