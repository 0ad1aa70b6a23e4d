/*
 * check_tail: the ring keeps exactly the last cap bytes whatever the
 * chunking, counts everything, stays small for small output, and
 * tail_text() always yields NUL-free valid UTF-8.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tail.h"
#include "testlib.h"

/* Deterministic bytes (xorshift), so a failure reproduces. */
static uint32_t rng_state;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* What the ring holds, oldest first, read from the public fields. */
static char *
held(const struct tail *t)
{
	char *s = malloc(t->len + 1);
	size_t i;

	if (!s)
		ck_abort_msg("out of memory");
	for (i = 0; i < t->len; i++)
		s[i] = t->buf[(t->start + i) % t->cap];
	return s;
}

/* tail_text() of the bytes P[0..N) appended in one go with CAP, compared
 * with EXPECT (a C string). */
static void
check_text(size_t cap, const char *p, size_t n, const char *expect)
{
	struct tail t;
	size_t len;
	char *s;

	tail_init(&t, cap);
	tail_append(&t, p, n);
	s = tail_text(&t, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, strlen(expect));
	ck_assert_msg(memcmp(s, expect, len + 1) == 0, "tail_text gave \"%s\", expected \"%s\"", s,
	              expect);
	free(s);
	tail_free(&t);
}

static const size_t caps[] = {1, 2, 3, 7, 64, 1000, 1024, 1025, 4096, 65536};

START_TEST(test_keeps_exactly_the_last_cap_bytes_for_any_chunking)
{
	/* Binary bytes, NUL and 0xFF included: the ring itself is 8-bit
	 * clean; only tail_text() rewrites. */
	enum { TOTAL = 300000 };
	char *ref = malloc(TOTAL);
	size_t c, i, off, n, want, maxchunk;
	struct tail t;
	char *h;
	int mode;

	ck_assert_ptr_nonnull(ref);
	rng_state = 2463534242u;
	for (i = 0; i < TOTAL; i++)
		ref[i] = (char)(rng() & 0xFF);
	for (c = 0; c < sizeof caps / sizeof caps[0]; c++) {
		for (mode = 0; mode < 5; mode++) {
			tail_init(&t, caps[c]);
			off = 0;
			while (off < TOTAL) {
				switch (mode) {
				case 0: n = 1; break;
				case 1: n = caps[c]; break;
				case 2: n = caps[c] + 1; break;
				case 3:
					maxchunk = 3 * caps[c] + 2;
					n = rng() % maxchunk;
					break;
				default: n = rng() % 70000; break;
				}
				if (n > TOTAL - off)
					n = TOTAL - off;
				tail_append(&t, ref + off, n);
				off += n;
				/* Check at every step, not only at the end (plain
				 * ifs: every ck_assert costs Check a write(2)). */
				want = off < caps[c] ? off : caps[c];
				if (t.total != off || t.len != want || t.alloc > caps[c])
					ck_abort_msg("cap %zu mode %d after %zu: total %ju len %zu "
					             "alloc %zu",
					             caps[c], mode, off, (uintmax_t)t.total, t.len,
					             t.alloc);
				if (mode == 0 && off % 997 != 0 && off != TOTAL)
					continue; /* byte-wise: compare now and then */
				h = held(&t);
				if (memcmp(h, ref + off - want, want) != 0)
					ck_abort_msg(
					    "cap %zu mode %d: wrong bytes after %zu appended",
					    caps[c], mode, off);
				free(h);
			}
			tail_free(&t);
		}
	}
	free(ref);
}
END_TEST

START_TEST(test_text_of_ascii_is_the_reference_tail)
{
	/* Printable ASCII passes tail_text() unchanged: compare the text
	 * with the reference's last cap bytes. */
	enum { TOTAL = 200000 };
	char *ref = malloc(TOTAL);
	size_t c, i, off, n, len, want;
	struct tail t;
	char *s;

	ck_assert_ptr_nonnull(ref);
	rng_state = 88172645u;
	for (i = 0; i < TOTAL; i++)
		ref[i] = (char)(' ' + rng() % 95);
	for (c = 0; c < sizeof caps / sizeof caps[0]; c++) {
		tail_init(&t, caps[c]);
		for (off = 0; off < TOTAL; off += n) {
			n = rng() % (2 * caps[c] + 3);
			if (n > TOTAL - off)
				n = TOTAL - off;
			tail_append(&t, ref + off, n);
		}
		want = caps[c] < TOTAL ? caps[c] : TOTAL;
		s = tail_text(&t, &len);
		ck_assert_ptr_nonnull(s);
		ck_assert_uint_eq(len, want);
		ck_assert_int_eq(s[len], '\0');
		ck_assert(memcmp(s, ref + TOTAL - want, want) == 0);
		free(s);
		tail_free(&t);
	}
	free(ref);
}
END_TEST

START_TEST(test_counts_total_past_cap)
{
	struct tail t;
	char block[4096];
	int i;

	memset(block, 'x', sizeof block);
	tail_init(&t, 100);
	for (i = 0; i < 1000; i++)
		tail_append(&t, block, sizeof block);
	tail_append(&t, block, 0);
	ck_assert_uint_eq(t.total, 1000u * sizeof block);
	ck_assert_uint_eq(t.len, 100);
	ck_assert_uint_eq(t.alloc, 100);
	tail_free(&t);
}
END_TEST

START_TEST(test_small_output_allocates_little)
{
	struct tail t;

	tail_init(&t, 64 * 1024);
	ck_assert_ptr_null(t.buf);
	ck_assert_uint_eq(t.alloc, 0);
	tail_append(&t, "hello\n", 6);
	ck_assert_uint_le(t.alloc, 1024);
	tail_append(&t, "", 0);
	ck_assert_uint_le(t.alloc, 1024);
	/* Grows by doubling, never past cap. */
	{
		char big[5000];

		memset(big, 'a', sizeof big);
		tail_append(&t, big, sizeof big);
		ck_assert_uint_ge(t.alloc, 5006);
		ck_assert_uint_le(t.alloc, 8192);
	}
	tail_free(&t);
}
END_TEST

START_TEST(test_cap_zero_keeps_nothing_but_counts)
{
	struct tail t;
	size_t len = 99;
	char *s;

	tail_init(&t, 0);
	tail_append(&t, "abc", 3);
	tail_append(&t, "defgh", 5);
	ck_assert_uint_eq(t.total, 8);
	ck_assert_uint_eq(t.len, 0);
	ck_assert_ptr_null(t.buf);
	s = tail_text(&t, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(s, "");
	free(s);
	tail_free(&t);
}
END_TEST

START_TEST(test_empty_tail_text_is_empty_string)
{
	struct tail t;
	size_t len = 99;
	char *s;

	tail_init(&t, 10);
	s = tail_text(&t, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(s, "");
	free(s);
	tail_free(&t);
}
END_TEST

START_TEST(test_text_drops_continuation_bytes_of_a_cut_character)
{
	/* "é" is C3 A9, "€" E2 82 AC, "😀" F0 9F 98 80: cut in the middle,
	 * the orphaned continuation bytes vanish. */
	check_text(4, "x\xC3\xA9yz", 5, "\xC3\xA9yz");
	check_text(3, "x\xC3\xA9yz", 5, "yz");
	check_text(3, "\xE2\x82\xAC!", 4, "!");
	check_text(2, "\xE2\x82\xAC!", 4, "!");
	check_text(4, "\xF0\x9F\x98\x80!", 5, "!");
	check_text(3, "\xF0\x9F\x98\x80!", 5, "!");
	check_text(4, "a\xF0\x9F\x98\x80", 5, "\xF0\x9F\x98\x80");
	check_text(3, "a\xF0\x9F\x98\x80", 5, "");
	/* At most three: a fourth continuation byte is garbage, shown. */
	check_text(5, "a\x80\x80\x80\x80z", 6, "\xEF\xBF\xBDz");
	/* Nothing dropped: a leading continuation byte is the handler's
	 * own garbage and shows as U+FFFD. */
	check_text(10, "\xA9z", 2, "\xEF\xBF\xBDz");
}
END_TEST

START_TEST(test_text_replaces_invalid_utf8)
{
	const char *r = "\xEF\xBF\xBD";
	char expect[64];

	/* Valid multibyte text passes unchanged (2, 3, 4 bytes; the edges
	 * U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF). */
	check_text(100, "\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF",
	           18, "\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF");
	/* Stray continuation byte, lone lead bytes, impossible bytes. */
	check_text(100, "a\x80z", 3, "a\xEF\xBF\xBDz");
	check_text(100, "a\xFFz\xFE", 4, "a\xEF\xBF\xBDz\xEF\xBF\xBD");
	check_text(100, "a\xF5\x80\x80\x80", 5,
	           "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
	/* Overlongs: C0/C1 leads, E0 80..9F, F0 80..8F. */
	snprintf(expect, sizeof expect, "%s%s", r, r);
	check_text(100, "\xC0\xAF", 2, expect);
	check_text(100, "\xC1\xBF", 2, expect);
	snprintf(expect, sizeof expect, "%s%s%s", r, r, r);
	check_text(100, "\xE0\x80\xAF", 3, expect);
	snprintf(expect, sizeof expect, "%s%s%s%s", r, r, r, r);
	check_text(100, "\xF0\x80\x80\xAF", 4, expect);
	/* Surrogates ED A0..BF. */
	snprintf(expect, sizeof expect, "%s%s%s", r, r, r);
	check_text(100, "\xED\xA0\x80", 3, expect);
	check_text(100, "\xED\xBF\xBF", 3, expect);
	check_text(100, "\xED\x9F\xBF", 3, "\xED\x9F\xBF"); /* U+D7FF is fine */
	/* Above U+10FFFF: F4 90.. */
	snprintf(expect, sizeof expect, "%s%s%s%s", r, r, r, r);
	check_text(100, "\xF4\x90\x80\x80", 4, expect);
	/* Truncated sequences: one U+FFFD per maximal subpart. */
	snprintf(expect, sizeof expect, "%sz", r);
	check_text(100, "\xE2\x82z", 3, expect);
	check_text(100, "\xF0\x9F\x98z", 4, expect);
	check_text(100, "\xC3z", 2, expect);
	check_text(100, "ab\xF0\x9F\x98", 5, "ab\xEF\xBF\xBD");
	check_text(100, "ab\xE2", 3, "ab\xEF\xBF\xBD");
}
END_TEST

START_TEST(test_text_replaces_nul_bytes)
{
	check_text(100, "a\0b\0", 4,
	           "a\xEF\xBF\xBD"
	           "b\xEF\xBF\xBD");
	check_text(2, "\0\0\0\0", 4, "\xEF\xBF\xBD\xEF\xBF\xBD");
}
END_TEST

/* Whatever goes in, what comes out is NUL-free valid UTF-8 (checked by an
 * independent, simple decoder) -- random bytes, random caps. */
static int
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, j;
	uint32_t cp;

	while (i < n) {
		if (s[i] == 0)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xE0) == 0xC0) {
			k = 2;
			cp = s[i] & 0x1F;
		} else if ((s[i] & 0xF0) == 0xE0) {
			k = 3;
			cp = s[i] & 0x0F;
		} else if ((s[i] & 0xF8) == 0xF0) {
			k = 4;
			cp = s[i] & 0x07;
		} else {
			return 0;
		}
		if (i + k > n)
			return 0;
		for (j = 1; j < k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += k;
	}
	return 1;
}

START_TEST(test_text_is_always_valid_utf8_without_nul)
{
	char buf[3000];
	struct tail t;
	size_t i, len, round;
	char *s;

	rng_state = 123456789u;
	for (round = 0; round < 2000; round++) {
		size_t n = rng() % sizeof buf;

		for (i = 0; i < n; i++) {
			/* Mostly plausible UTF-8 bytes, so sequences get
			 * started and cut in interesting places. */
			uint32_t x = rng();
			buf[i] = (char)(x % 4 == 0 ? 0x80 | (x >> 8 & 0x3F) : x >> 8 & 0xFF);
		}
		tail_init(&t, 1 + rng() % 2000);
		tail_append(&t, buf, n);
		s = tail_text(&t, &len);
		if (!s || strlen(s) != len || !valid_utf8((const unsigned char *)s, len))
			ck_abort_msg("round %zu: bad text", round);
		free(s);
		tail_free(&t);
	}
}
END_TEST

static Suite *
tail_suite(void)
{
	Suite *s = suite_create("tail");
	TCase *tc = tcase_create("tail");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_keeps_exactly_the_last_cap_bytes_for_any_chunking);
	tcase_add_test(tc, test_text_of_ascii_is_the_reference_tail);
	tcase_add_test(tc, test_counts_total_past_cap);
	tcase_add_test(tc, test_small_output_allocates_little);
	tcase_add_test(tc, test_cap_zero_keeps_nothing_but_counts);
	tcase_add_test(tc, test_empty_tail_text_is_empty_string);
	tcase_add_test(tc, test_text_drops_continuation_bytes_of_a_cut_character);
	tcase_add_test(tc, test_text_replaces_invalid_utf8);
	tcase_add_test(tc, test_text_replaces_nul_bytes);
	tcase_add_test(tc, test_text_is_always_valid_utf8_without_nul);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(tail_suite());
}
