/*
 * check_cfg_value: unit tests of src/cfg_value.c, the syntax of single
 * configuration values: durations, sizes and names with their bounds, and
 * the splitting of a command line into words (quotes and escapes, nothing
 * expanded).  Links only cfg_value; whole files are check_cfg_errors,
 * check_cfg_ini and check_cfg.
 */
#include "cfg_value.h"
#include "cfglib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Value syntax                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_duration_units)
{
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {
	    {"0", 0},         {"0s", 0},        {"250ms", 250},      {"5s", 5000},   {"2m", 120000},
	    {"3h", 10800000}, {"1d", 86400000}, {"30d", 2592000000}, {"007s", 7000},
	};

	for (size_t i = 0; i < nitems(ok); i++) {
		int64_t ms = -1;
		const char *err = NULL;

		ck_assert_msg(cfg_parse_duration(ok[i].s, &ms, &err) == 0, "'%s': %s", ok[i].s,
		              err);
		ck_assert_msg(ms == ok[i].ms, "'%s' gave %lld", ok[i].s, (long long)ms);
	}
}
END_TEST

START_TEST(test_duration_rejects_missing_unit)
{
	static const char *const bad[] = {
	    "10", "", "s", "10x", "10 s", " 10s", "10s ", "1.5s", "10S", "10sec", "+5s", "5s5",
	};

	for (size_t i = 0; i < nitems(bad); i++) {
		int64_t ms = -1;
		const char *err = NULL;

		ck_assert_msg(cfg_parse_duration(bad[i], &ms, &err) == -1, "'%s' accepted", bad[i]);
		ck_assert_str_eq(err, "use an integer with ms, s, m, h or d");
	}
}
END_TEST

START_TEST(test_duration_rejects_negative_and_overflow)
{
	int64_t ms;
	const char *err;

	ck_assert_int_eq(cfg_parse_duration("-5s", &ms, &err), -1);
	ck_assert_str_eq(err, "must not be negative");
	ck_assert_int_eq(cfg_parse_duration("106751991168d", &ms, &err), -1);
	ck_assert_str_eq(err, "too large");
	ck_assert_int_eq(cfg_parse_duration("99999999999999999999999ms", &ms, &err), -1);
	ck_assert_str_eq(err, "too large");
}
END_TEST

START_TEST(test_size_units)
{
	size_t n;
	const char *err;

	ck_assert_int_eq(cfg_parse_size("0", &n, &err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(cfg_parse_size("1B", &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(cfg_parse_size("64KiB", &n, &err), 0);
	ck_assert_uint_eq(n, 65536);
	ck_assert_int_eq(cfg_parse_size("16MiB", &n, &err), 0);
	ck_assert_uint_eq(n, 16777216);
}
END_TEST

START_TEST(test_size_rejects_other_units)
{
	static const char *const bad[] = {"64", "64k", "64K", "64KB", "64kib", "1GiB", "", "B"};

	for (size_t i = 0; i < nitems(bad); i++) {
		size_t n;
		const char *err = NULL;

		ck_assert_msg(cfg_parse_size(bad[i], &n, &err) == -1, "'%s' accepted", bad[i]);
		ck_assert_str_eq(err, "use an integer with B, KiB or MiB");
	}
}
END_TEST

START_TEST(test_valid_name)
{
	char longest[CFG_NAME_MAX + 2];

	ck_assert(cfg_valid_name("default"));
	ck_assert(cfg_valid_name("A-z_0.9:x"));
	ck_assert(!cfg_valid_name(""));
	ck_assert(!cfg_valid_name("a b"));
	ck_assert(!cfg_valid_name("a/b"));
	ck_assert(!cfg_valid_name("caf\xc3\xa9"));
	memset(longest, 'n', CFG_NAME_MAX);
	longest[CFG_NAME_MAX] = '\0';
	ck_assert(cfg_valid_name(longest));
	longest[CFG_NAME_MAX] = 'n';
	longest[CFG_NAME_MAX + 1] = '\0';
	ck_assert(!cfg_valid_name(longest));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Word splitting                                                       */
/* ------------------------------------------------------------------ */

/* Split S and compare with the NULL-terminated WANT. */
static void
assert_words(const char *s, const char *const *want)
{
	const char *err = NULL;
	char **got = cfg_split_words(s, &err);
	size_t i;

	ck_assert_msg(got != NULL, "split of [%s] failed: %s", s, err);
	for (i = 0; want[i] != NULL; i++) {
		ck_assert_msg(got[i] != NULL, "[%s]: word %zu missing, want [%s]", s, i, want[i]);
		ck_assert_msg(strcmp(got[i], want[i]) == 0, "[%s]: word %zu is [%s], want [%s]", s,
		              i, got[i], want[i]);
	}
	ck_assert_msg(got[i] == NULL, "[%s]: extra word [%s]", s, got[i]);
	cfg_free_words(got);
}

START_TEST(test_split_words_quotes_and_escapes)
{
	assert_words("/bin/echo  a\tb", (const char *const[]){"/bin/echo", "a", "b", NULL});
	assert_words("'a b' \"c d\"", (const char *const[]){"a b", "c d", NULL});
	assert_words("x'a'\"b\"c", (const char *const[]){"xabc", NULL});
	assert_words("'' \"\"", (const char *const[]){"", "", NULL});
	assert_words("a\\ b", (const char *const[]){"a b", NULL});
	assert_words("\\'x\\\"", (const char *const[]){"'x\"", NULL});
	assert_words("'\\n \"'", (const char *const[]){"\\n \"", NULL});
	/* In double quotes a backslash escapes only $ ` " \ and newline. */
	assert_words("\"\\$ \\` \\\" \\\\ \\n \\a\"",
	             (const char *const[]){"$ ` \" \\ \\n \\a", NULL});
	/* Backslash-newline vanishes, inside double quotes and outside. */
	assert_words("a\\\nb \"c\\\nd\"", (const char *const[]){"ab", "cd", NULL});
	assert_words("a \\\n b", (const char *const[]){"a", "b", NULL});
	/* A plain newline separates words, unless quoted. */
	assert_words("a\nb 'c\nd'", (const char *const[]){"a", "b", "c\nd", NULL});
}
END_TEST

START_TEST(test_split_words_unterminated_quote_is_error)
{
	static const struct {
		const char *s, *err;
	} bad[] = {
	    {"'abc", "unterminated ' quote"},     {"a 'b\"", "unterminated ' quote"},
	    {"\"abc", "unterminated \" quote"},   {"\"abc\\\"", "unterminated \" quote"},
	    {"\"abc\\", "unterminated \" quote"}, {"abc\\", "trailing backslash"},
	};

	for (size_t i = 0; i < nitems(bad); i++) {
		const char *err = NULL;

		ck_assert_msg(cfg_split_words(bad[i].s, &err) == NULL, "[%s] accepted", bad[i].s);
		ck_assert_str_eq(err, bad[i].err);
	}
}
END_TEST

START_TEST(test_split_words_expands_nothing)
{
	assert_words("$HOME ~ ~/x * ?.c `id` $(id) ${A:-b} a;b a|b >f #c",
	             (const char *const[]){"$HOME", "~", "~/x", "*", "?.c", "`id`", "$(id)",
	                                   "${A:-b}", "a;b", "a|b", ">f", "#c", NULL});
	assert_words("\"$HOME\"", (const char *const[]){"$HOME", NULL});
}
END_TEST

START_TEST(test_split_words_empty_input_gives_no_words)
{
	assert_words("", (const char *const[]){NULL});
	assert_words(" \t\n ", (const char *const[]){NULL});
}
END_TEST

static Suite *
cfg_value_suite(void)
{
	Suite *s = suite_create("cfg_value");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_test(tc, test_duration_units);
	tcase_add_test(tc, test_duration_rejects_missing_unit);
	tcase_add_test(tc, test_duration_rejects_negative_and_overflow);
	tcase_add_test(tc, test_size_units);
	tcase_add_test(tc, test_size_rejects_other_units);
	tcase_add_test(tc, test_valid_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("words");
	tcase_add_test(tc, test_split_words_quotes_and_escapes);
	tcase_add_test(tc, test_split_words_unterminated_quote_is_error);
	tcase_add_test(tc, test_split_words_expands_nothing);
	tcase_add_test(tc, test_split_words_empty_input_gives_no_words);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(cfg_value_suite());
}
