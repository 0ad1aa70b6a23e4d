/*
 * tail: see tail.h.
 *
 * Invariant: while the ring is not full (len < cap) the bytes held are
 * linear, buf[0 .. len), and start is 0.  Only once len reaches cap does
 * the ring wrap, and by then alloc == cap.  So growing is a plain realloc
 * and a handler that prints one line costs one small allocation, not cap.
 */
#include "tail.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* First allocation; doubled from there up to cap. */
#define TAIL_MIN_ALLOC 1024

void
tail_init(struct tail *t, size_t cap)
{
	memset(t, 0, sizeof *t);
	t->cap = cap;
}

/* Make the buffer hold at least NEED bytes (NEED <= cap), doubling. */
static bool
grow(struct tail *t, size_t need)
{
	size_t a = t->alloc ? t->alloc : TAIL_MIN_ALLOC;
	char *nb;

	while (a < need)
		a = a > t->cap / 2 ? t->cap : a * 2;
	if (a > t->cap)
		a = t->cap;
	nb = realloc(t->buf, a);
	if (!nb)
		return false;
	t->buf = nb;
	t->alloc = a;
	return true;
}

/* Keep P[0 .. N) as the newest bytes (total is counted by the caller). */
static void
put(struct tail *t, const char *p, size_t n)
{
	size_t need, pos, first, drop;

	if (n > t->cap) {
		/* Only the last cap bytes of P can survive. */
		p += n - t->cap;
		n = t->cap;
	}
	if (n == 0)
		return;
	need = t->len + n < t->cap ? t->len + n : t->cap;
	if (need > t->alloc && !grow(t, need)) {
		/* Out of memory: keep a shorter tail in what is already there
		 * rather than fail; the count stays exact.  Once cap == alloc
		 * this cannot recurse again. */
		t->cap = t->alloc;
		put(t, p, n);
		return;
	}
	if (t->len + n <= t->cap) {
		/* Not full yet, hence linear from buf[0]. */
		memcpy(t->buf + t->len, p, n);
		t->len += n;
		return;
	}
	/* Full (alloc == cap): write after the newest byte, wrapping, and
	 * move start past the oldest bytes just overwritten. */
	pos = (t->start + t->len) % t->cap;
	first = t->cap - pos < n ? t->cap - pos : n;
	memcpy(t->buf + pos, p, first);
	memcpy(t->buf, p + first, n - first);
	drop = t->len + n - t->cap;
	t->len = t->cap;
	t->start = (t->start + drop) % t->cap;
}

void
tail_append(struct tail *t, const char *p, size_t n)
{
	t->total += n;
	put(t, p, n);
}

/*
 * Length of the well-formed UTF-8 sequence at S (N bytes left), or 0 when
 * it is ill-formed; then *BAD gets the length of its maximal subpart (at
 * least 1), which becomes one U+FFFD (Unicode 15 §3.9, "U+FFFD Substitution
 * of Maximal Subparts", which is what browsers and PostgreSQL-friendly
 * tools do).  NUL counts as ill-formed: PostgreSQL text cannot hold it.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t need, i;

	*bad = 1;
	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates D800..DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		/* 80..C1 (stray continuation, overlong 2-byte lead), F5..FF. */
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need;
}

char *
tail_text(const struct tail *t, size_t *len)
{
	const unsigned char *in;
	unsigned char *lin = NULL;
	char *out;
	size_t n = t->len, i = 0, o = 0, k, bad, first;

	*len = 0;
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	if (n > 0) {
		lin = malloc(n);
		if (!lin)
			return NULL;
		first = t->cap - t->start < n ? t->cap - t->start : n;
		memcpy(lin, t->buf + t->start, first);
		memcpy(lin + first, t->buf, n - first);
	}
	in = lin;
	/* Worst case: every byte becomes the three bytes of U+FFFD. */
	out = malloc(3 * n + 1);
	if (!out) {
		free(lin);
		return NULL;
	}
	/* The tail may begin inside a character whose lead byte was dropped:
	 * skip what can only be its continuation bytes (at most 3), but only
	 * when something was dropped, so a stream that really starts with a
	 * stray continuation byte still shows it as U+FFFD. */
	if (t->total > n)
		while (i < n && i < 3 && (in[i] & 0xC0) == 0x80)
			i++;
	while (i < n) {
		k = utf8_seq(in + i, n - i, &bad);
		if (k > 0) {
			memcpy(out + o, in + i, k);
			o += k;
			i += k;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i += bad;
		}
	}
	out[o] = '\0';
	free(lin);
	*len = o;
	return out;
}

void
tail_free(struct tail *t)
{
	free(t->buf);
	t->buf = NULL;
	t->alloc = 0;
	t->len = 0;
	t->start = 0;
}
