/*
 * check_cfg_ini: how a configuration file's lines are read (src/cfg_ini.c
 * in front of inih): continuation lines, lines far longer than inih's own
 * buffer (up to 65535 characters, and over 4 KiB in commands and
 * environments) read whole and read as short ones would be, overlong lines
 * and section headers refused on their line, NUL bytes, and CRLF, BOM and
 * ':' accepted.  Links only the cfg modules.
 */
#include "cfglib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_continuation_lines)
{
	struct cfg *cfg = c_load_ok("[pgjobd]\n"
	                          "queues = a,\n"
	                          "  b\n"
	                          "\t, c\n"
	                          "  ; a comment line does not end the value\n"
	                          "  d ; nor does an inline comment\n"
	                          "[handler.t]\n"
	                          "command = /bin/echo one \\\n"
	                          "  two \"three\n"
	                          "  four\" 'five\n"
	                          "    six'\n"
	                          "environment = A=1\n"
	                          "  B=2\n"
	                          "dead_exit_codes = 65,\n"
	                          "  75 76\n");
	const struct cfg_handler *h = cfg_handler(cfg, "t");

	ck_assert_int_eq(cfg->nqueues, 4);
	ck_assert_str_eq(cfg->queues[0], "a");
	ck_assert_str_eq(cfg->queues[1], "b");
	ck_assert_str_eq(cfg->queues[2], "c");
	ck_assert_str_eq(cfg->queues[3], "d");
	/* Lines join with a newline: backslash-newline vanishes, quotes keep it. */
	ck_assert_str_eq(h->argv[0], "/bin/echo");
	ck_assert_str_eq(h->argv[1], "one");
	ck_assert_str_eq(h->argv[2], "two");
	ck_assert_str_eq(h->argv[3], "three\nfour");
	ck_assert_str_eq(h->argv[4], "five\nsix");
	ck_assert_ptr_null(h->argv[5]);
	ck_assert_str_eq(h->environment[0], "A=1");
	ck_assert_str_eq(h->environment[1], "B=2");
	ck_assert_ptr_null(h->environment[2]);
	ck_assert(cfg_dead_exit(h, 65) && cfg_dead_exit(h, 75) && cfg_dead_exit(h, 76));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_command_may_start_on_a_continuation_line)
{
	struct cfg *cfg = c_load_ok("[handler.t]\ncommand =\n  /bin/echo\n  hi\n");
	const struct cfg_handler *h = cfg_handler(cfg, "t");

	ck_assert_str_eq(h->argv[0], "/bin/echo");
	ck_assert_str_eq(h->argv[1], "hi");
	cfg_free(cfg);
}
END_TEST

/* C repeated N times (malloc'd). */
static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A [pgjobd] file whose line 2 is "database = " padded with x to LEN characters. */
static char *
file_with_line_of(size_t len, const char *after)
{
	char *text, *pad = repeat('x', len - strlen("database = "));

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\ndatabase = %s\n%s", pad, after), 0);
	free(pad);
	return text;
}

START_TEST(test_overlong_line_is_reported_with_its_line)
{
	char *text = file_with_line_of(70000, "lease = 10x\n");
	char *errors = c_load_bad(text);

	/* The next line keeps its own number: the long one was not split in two. */
	ck_assert_str_eq(
	    errors, "FILE:2: line too long (at most 65535 characters)\n"
	            "FILE:3: lease: bad duration '10x' (use an integer with ms, s, m, h or d)\n");
	free(errors);
	free(text);

	text = file_with_line_of(65536, "");
	errors = c_load_bad(text);
	ck_assert_str_eq(errors, "FILE:2: line too long (at most 65535 characters)\n");
	free(errors);
	free(text);
}
END_TEST

START_TEST(test_line_of_65535_characters_is_accepted)
{
	/* Followed by a key that must not be swallowed as "the rest" of the long line. */
	char *text = file_with_line_of(65535, "concurrency = 7\n");
	struct cfg *cfg = c_load_ok(text);

	ck_assert_uint_eq(strlen(cfg->database), 65535 - strlen("database = "));
	ck_assert_int_eq(cfg->concurrency, 7);
	cfg_free(cfg);
	free(text);

	/* The same as the last line, without its newline. */
	text = file_with_line_of(65535, "");
	text[strlen(text) - 1] = '\0';
	cfg = c_load_ok(text);
	ck_assert_uint_eq(strlen(cfg->database), 65535 - strlen("database = "));
	cfg_free(cfg);
	free(text);
}
END_TEST

START_TEST(test_lines_around_inih_buffer_size_are_whole)
{
	/* Debian's inih reads 200-byte lines: 199 goes in as is, longer ones beside it. */
	static const size_t lens[] = {198, 199, 200, 201, 399, 400, 401, 4096};

	for (size_t i = 0; i < nitems(lens); i++) {
		char *text = file_with_line_of(lens[i], "concurrency = 7\n");
		struct cfg *cfg = c_load_ok(text);

		ck_assert_uint_eq(strlen(cfg->database), lens[i] - strlen("database = "));
		ck_assert_ptr_null(strchr(cfg->database, 'c'));
		ck_assert_int_eq(cfg->concurrency, 7);
		cfg_free(cfg);
		free(text);
	}
}
END_TEST

START_TEST(test_overlong_section_header_hides_its_keys)
{
	char *text, *errors, *pad = repeat('h', 65536);

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\n[handler.%s]\ncommand = /bin/true\n", pad), 0);
	errors = c_load_bad(text);
	/* Not "unknown key 'command' in [pgjobd]": the key went nowhere. */
	ck_assert_str_eq(errors, "FILE:2: line too long (at most 65535 characters)\n");
	free(errors);
	free(text);
	free(pad);
}
END_TEST

START_TEST(test_long_handler_type_is_refused_on_its_line)
{
	char *text, *errors, *want, *pad = repeat('h', 250);

	ck_assert_int_ge(asprintf(&text, "[pgjobd]\n[handler.%s]\ncommand = /bin/true\n", pad), 0);
	errors = c_load_bad(text);
	ck_assert_int_ge(asprintf(&want,
	                          "FILE:2: unknown section [handler.%s]: a handler type is 1-128 "
	                          "characters of A-Z a-z 0-9 _ . : -\n",
	                          pad),
	                 0);
	/* Its command is not filed under [pgjobd]. */
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(text);
	free(pad);
}
END_TEST

START_TEST(test_command_line_over_4kib_keeps_its_argv)
{
	/* 400 words of 12 characters and two quoted ones: about 5,300 characters. */
	char *line = strdup("command = /bin/echo 'one two' \"three\\\"four\"");
	char *text;
	struct cfg *cfg;
	const struct cfg_handler *h;

	for (int i = 0; i < 400; i++) {
		char *next;

		ck_assert_int_ge(asprintf(&next, "%s arg-%03d-xxxx", line, i), 0);
		free(line);
		line = next;
	}
	ck_assert_uint_gt(strlen(line), 5000);
	ck_assert_int_ge(asprintf(&text, "[handler.t]\n%s\ntimeout = 5s\n", line), 0);
	cfg = c_load_ok(text);
	h = cfg_handler(cfg, "t");
	ck_assert_str_eq(h->argv[0], "/bin/echo");
	ck_assert_str_eq(h->argv[1], "one two");
	ck_assert_str_eq(h->argv[2], "three\"four");
	for (int i = 0; i < 400; i++) {
		char want[32];

		snprintf(want, sizeof(want), "arg-%03d-xxxx", i);
		ck_assert_str_eq(h->argv[3 + i], want);
	}
	ck_assert_ptr_null(h->argv[403]);
	ck_assert_int_eq(h->timeout_ms, 5000);
	cfg_free(cfg);
	free(text);
	free(line);
}
END_TEST

START_TEST(test_environment_line_over_4kib_keeps_its_values)
{
	char *a = repeat('a', 2000), *b = repeat('b', 3000), *text, *want;
	struct cfg *cfg;
	const struct cfg_handler *h;

	ck_assert_int_ge(asprintf(&text,
	                          "[handler.t]\ncommand = /bin/true\n"
	                          "environment = A=%s 'B=%s c' C=3 ; a comment\n",
	                          a, b),
	                 0);
	cfg = c_load_ok(text);
	h = cfg_handler(cfg, "t");
	ck_assert_uint_eq(strlen(h->environment[0]), 2 + 2000);
	ck_assert_str_eq(h->environment[0] + 2, a);
	ck_assert_int_ge(asprintf(&want, "B=%s c", b), 0);
	ck_assert_str_eq(h->environment[1], want);
	ck_assert_str_eq(h->environment[2], "C=3");
	ck_assert_ptr_null(h->environment[3]);
	cfg_free(cfg);
	free(want);
	free(text);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_error_after_long_lines_names_its_line)
{
	char *pad = repeat('d', 5000), *names = strdup("q0"), *text, *errors;

	/* A long key line, then a long continuation line of about 6,000 characters. */
	for (int i = 1; i < 1000; i++) {
		char *next;

		ck_assert_int_ge(asprintf(&next, "%s,q%d", names, i), 0);
		free(names);
		names = next;
	}
	ck_assert_int_ge(asprintf(&text,
	                          "[pgjobd]\ndatabase = %s\nqueues = a,\n  %s\n\n"
	                          "lease = 10x\n",
	                          pad, names),
	                 0);
	errors = c_load_bad(text);
	ck_assert_str_eq(
	    errors, "FILE:6: lease: bad duration '10x' (use an integer with ms, s, m, h or d)\n");
	free(errors);
	free(text);

	/* The same file, valid: every queue of the long line is there. */
	ck_assert_int_ge(
	    asprintf(&text, "[pgjobd]\ndatabase = %s\nqueues = a,\n  %s\n", pad, names), 0);
	{
		struct cfg *cfg = c_load_ok(text);

		ck_assert_str_eq(cfg->database, pad);
		ck_assert_int_eq(cfg->nqueues, 1001);
		ck_assert_str_eq(cfg->queues[0], "a");
		ck_assert_str_eq(cfg->queues[1], "q0");
		ck_assert_str_eq(cfg->queues[1000], "q999");
		cfg_free(cfg);
	}
	free(text);
	free(names);
	free(pad);
}
END_TEST

START_TEST(test_long_continuation_lines_continue_a_command)
{
	char *x = repeat('x', 4500), *y = repeat('y', 4500), *text;
	struct cfg *cfg;
	const struct cfg_handler *h;

	/* A quote spans the two long lines; the inline comment is cut off. */
	ck_assert_int_ge(asprintf(&text,
	                          "[handler.t]\ncommand = /bin/echo\n  '%s\n\t%s' z ; note\n"
	                          "timeout = 1s\n",
	                          x, y),
	                 0);
	cfg = c_load_ok(text);
	h = cfg_handler(cfg, "t");
	ck_assert_str_eq(h->argv[0], "/bin/echo");
	ck_assert_uint_eq(strlen(h->argv[1]), 4500 + 1 + 4500);
	ck_assert_int_eq(strncmp(h->argv[1], x, 4500), 0);
	ck_assert_int_eq(h->argv[1][4500], '\n');
	ck_assert_str_eq(h->argv[1] + 4501, y);
	ck_assert_str_eq(h->argv[2], "z");
	ck_assert_ptr_null(h->argv[3]);
	ck_assert_int_eq(h->timeout_ms, 1000);
	cfg_free(cfg);
	free(text);
	free(x);
	free(y);
}
END_TEST

START_TEST(test_long_lines_are_read_as_short_ones)
{
	char *c = repeat('c', 5000), *sp = repeat(' ', 5000), *k = repeat('k', 300), *text;
	char *errors, *want;
	struct cfg *cfg;

	/*
	 * A long comment, blank line, inline comment and header comment change
	 * nothing; after a header, an indented line is a key, not more of name.
	 */
	ck_assert_int_ge(asprintf(&text,
	                          "; %s\n%s\n[pgjobd] ; %s\nname: w1 ; %s\n"
	                          "[handler.t] ; %s\n  command = /bin/true\n",
	                          c, sp, c, c, c),
	                 0);
	cfg = c_load_ok(text);
	ck_assert_str_eq(cfg->name, "w1");
	ck_assert_ptr_nonnull(cfg_handler(cfg, "t"));
	cfg_free(cfg);
	free(text);

	/*
	 * A long line without '=', a long "= value" (after which an indented
	 * line is a key: inih forgot name) and a long unknown key, each on its line.
	 */
	ck_assert_int_ge(asprintf(&text,
	                          "[pgjobd]\nname = w\n%s\n= %s\n  concurrency = 3x\n%s = 1\n"
	                          "lease = 10x\n",
	                          c, c, k),
	                 0);
	errors = c_load_bad(text);
	ck_assert_int_ge(asprintf(&want,
	                          "FILE:3: syntax error: expected 'key = value' or '[section]'\n"
	                          "FILE:4: syntax error: expected 'key = value' or '[section]'\n"
	                          "FILE:5: concurrency: bad integer '3x'\n"
	                          "FILE:6: unknown key '%s' in [pgjobd]\n"
	                          "FILE:7: lease: bad duration '10x' (use an integer with ms, s, "
	                          "m, h or d)\n",
	                          k),
	                 0);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(text);
	free(c);
	free(sp);
	free(k);
}
END_TEST

START_TEST(test_nul_byte_is_reported)
{
	static const char text[] = "[pgjobd]\nname = a\0b\n";
	char *path = c_write_temp_len(text, sizeof(text) - 1);
	char *errors = NULL, *want;

	ck_assert_ptr_null(cfg_load(path, &errors));
	ck_assert_int_ge(asprintf(&want, "%s:2: line contains a NUL byte\n", path), 0);
	ck_assert_str_eq(errors, want);
	unlink(path);
	free(want);
	free(errors);
	free(path);
}
END_TEST

START_TEST(test_crlf_bom_and_colon_are_accepted)
{
	struct cfg *cfg = c_load_ok("\xEF\xBB\xBF[pgjobd]\r\nconcurrency = 3\r\nname: w1\r\n"
	                          "[handler.t]\r\ncommand = /bin/true\r\n");

	ck_assert_int_eq(cfg->concurrency, 3);
	ck_assert_str_eq(cfg->name, "w1");
	ck_assert_str_eq(cfg_handler(cfg, "t")->argv[0], "/bin/true");
	cfg_free(cfg);
}
END_TEST

START_TEST(test_long_handler_type_is_kept_whole)
{
	/* inih cuts section names at 49 bytes; the reader must not. */
	static const char type[] = "a123456789b123456789c123456789d123456789e123456789f123456789";
	char *text;
	struct cfg *cfg;

	ck_assert_int_ge(asprintf(&text, "[handler.%s]\ncommand = /bin/true\n", type), 0);
	cfg = c_load_ok(text);
	ck_assert_ptr_nonnull(cfg_handler(cfg, type));
	ck_assert_str_eq(cfg->handlers[0].type, type);
	cfg_free(cfg);
	free(text);
}
END_TEST

static Suite *
cfg_ini_suite(void)
{
	Suite *s = suite_create("cfg_ini");
	TCase *tc;

	tc = tcase_create("lines");
	tcase_add_test(tc, test_continuation_lines);
	tcase_add_test(tc, test_command_may_start_on_a_continuation_line);
	tcase_add_test(tc, test_overlong_line_is_reported_with_its_line);
	tcase_add_test(tc, test_line_of_65535_characters_is_accepted);
	tcase_add_test(tc, test_lines_around_inih_buffer_size_are_whole);
	tcase_add_test(tc, test_overlong_section_header_hides_its_keys);
	tcase_add_test(tc, test_long_handler_type_is_refused_on_its_line);
	tcase_add_test(tc, test_command_line_over_4kib_keeps_its_argv);
	tcase_add_test(tc, test_environment_line_over_4kib_keeps_its_values);
	tcase_add_test(tc, test_error_after_long_lines_names_its_line);
	tcase_add_test(tc, test_long_continuation_lines_continue_a_command);
	tcase_add_test(tc, test_long_lines_are_read_as_short_ones);
	tcase_add_test(tc, test_nul_byte_is_reported);
	tcase_add_test(tc, test_crlf_bom_and_colon_are_accepted);
	tcase_add_test(tc, test_long_handler_type_is_kept_whole);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(cfg_ini_suite());
}
