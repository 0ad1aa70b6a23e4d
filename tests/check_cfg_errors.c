/*
 * check_cfg_errors: bad configuration files (src/cfg.c).  The core is
 * bad_files[]: one small bad file per rule of CONTRACT section 4, each with
 * the exact first error it must produce, also when every line is padded
 * long.  Then: a missing file or a directory, every error reported in line
 * order with its line, several errors of one value, and the keys of a
 * rejected section ignored.  Links only the cfg modules.
 */
#include "cfglib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of ERRORS, without its '\n' (malloc'd). */
static char *
first_line(const char *errors)
{
	return strndup(errors, strcspn(errors, "\n"));
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* ------------------------------------------------------------------ */
/* Bad files: the first error of each, exactly                          */
/* ------------------------------------------------------------------ */

static const struct {
	const char *ini;
	const char *first_error;
} bad_files[] = {
    /* [pgjobd] values */
    {"[pgjobd]\nlease = 10x\n",
     "FILE:2: lease: bad duration '10x' (use an integer with ms, s, m, h or d)"},
    {"[pgjobd]\nlease = 60\n",
     "FILE:2: lease: bad duration '60' (use an integer with ms, s, m, h or d)"},
    {"[pgjobd]\nlease = -5s\n", "FILE:2: lease: bad duration '-5s' (must not be negative)"},
    {"[pgjobd]\nlease = 99999999999999999999d\n",
     "FILE:2: lease: bad duration '99999999999999999999d' (too large)"},
    {"[pgjobd]\nlease = 500ms\n", "FILE:2: lease: '500ms' is out of range (1s to 1d)"},
    {"[pgjobd]\nlease = 25h\nheartbeat = 1s\n", "FILE:2: lease: '25h' is out of range (1s to 1d)"},
    {"[pgjobd]\nconcurrency = 0\n", "FILE:2: concurrency: '0' is out of range (1 to 1024)"},
    {"[pgjobd]\nconcurrency = 1025\n", "FILE:2: concurrency: '1025' is out of range (1 to 1024)"},
    {"[pgjobd]\nconcurrency = four\n", "FILE:2: concurrency: bad integer 'four'"},
    {"[pgjobd]\nconcurrency = 4.5\n", "FILE:2: concurrency: bad integer '4.5'"},
    {"[pgjobd]\nheartbeat = 50ms\n", "FILE:2: heartbeat: '50ms' is below the minimum (100ms)"},
    {"[pgjobd]\nheartbeat = 30s\n",
     "FILE:2: heartbeat: '30s' must be less than lease / 2 (lease is 60s)"},
    {"[pgjobd]\nheartbeat = 20s\nlease = 40s\n",
     "FILE:2: heartbeat: '20s' must be less than lease / 2 (lease is 40s)"},
    {"[pgjobd]\nlease = 30s\n",
     "FILE:2: lease: '30s' must be more than twice heartbeat (20s by default); set a shorter "
     "heartbeat"},
    {"[pgjobd]\nlease = 30s\nheartbeat =\n",
     "FILE:2: lease: '30s' must be more than twice heartbeat (20s by default); set a shorter "
     "heartbeat"},
    {"[pgjobd]\npoll_interval = 50ms\n",
     "FILE:2: poll_interval: '50ms' is out of range (100ms to 1h)"},
    {"[pgjobd]\npoll_interval = 61m\n",
     "FILE:2: poll_interval: '61m' is out of range (100ms to 1h)"},
    {"[pgjobd]\nshutdown_timeout = 2d\n",
     "FILE:2: shutdown_timeout: '2d' is out of range (0 to 1d)"},
    {"[pgjobd]\nkill_grace = 2h\n", "FILE:2: kill_grace: '2h' is out of range (0 to 1h)"},
    {"[pgjobd]\noutput_limit = 17MiB\n",
     "FILE:2: output_limit: '17MiB' is out of range (0 to 16MiB)"},
    {"[pgjobd]\noutput_limit = 64k\n",
     "FILE:2: output_limit: bad size '64k' (use an integer with B, KiB or MiB)"},
    {"[pgjobd]\nname = a b\n",
     "FILE:2: name: bad worker name 'a b' (at most 128 printable characters, no blanks)"},
    {"[pgjobd]\nname = "
     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\n",
     "FILE:2: name: bad worker name "
     "'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn' "
     "(at most 128 printable characters, no blanks)"},
    {"[pgjobd]\nqueues = a,,b\n", "FILE:2: queues: empty queue name in 'a,,b'"},
    {"[pgjobd]\nqueues = ,\n", "FILE:2: queues: empty queue name in ','"},
    {"[pgjobd]\nqueues = a, b c\n",
     "FILE:2: queues: bad queue name 'b c' (1-128 characters of A-Z a-z 0-9 _ . : -)"},
    {"[pgjobd]\nqueues = a/b\n",
     "FILE:2: queues: bad queue name 'a/b' (1-128 characters of A-Z a-z 0-9 _ . : -)"},
    {"[pgjobd]\nqueues = a, b, a\n", "FILE:2: queues: 'a' is listed twice"},
    {"[pgjobd]\nqueues = a\n  b c\n",
     "FILE:2: queues: bad queue name 'b c' (1-128 characters of A-Z a-z 0-9 _ . : -)"},

    /* Structure */
    {"[pgjobd]\nfoo = 1\n", "FILE:2: unknown key 'foo' in [pgjobd]"},
    {"[pgjobd]\nLease = 60s\n", "FILE:2: unknown key 'Lease' in [pgjobd]"},
    {"[pgjobd]\ncommand = /bin/true\n",
     "FILE:2: unknown key 'command' in [pgjobd] (it belongs in [handler.TYPE])"},
    {H "lease = 1s\n", "FILE:3: unknown key 'lease' in [handler.t] (it belongs in [pgjobd])"},
    {"lease = 1s\n[pgjobd]\n",
     "FILE:1: key 'lease' is not in a section (keys go under [pgjobd] or [handler.TYPE])"},
    {"[pgjobd]\nlease = 60s\n\nlease = 60s\n", "FILE:4: lease: given twice (first on line 2)"},
    {"[pgjobd]\nname =\nname = x\n", "FILE:3: name: given twice (first on line 2)"},
    {H "timeout = 1h\ntimeout = 2h\n", "FILE:4: timeout: given twice (first on line 3)"},
    {"[pgjobs]\n", "FILE:1: unknown section [pgjobs]"},
    {"[handler]\n", "FILE:1: unknown section [handler]"},
    {"[]\n", "FILE:1: unknown section []"},
    {"[handler.a b]\ncommand = /bin/true\n",
     "FILE:1: unknown section [handler.a b]: a handler type is 1-128 characters of A-Z a-z "
     "0-9 _ . : -"},
    {"[handler.]\n",
     "FILE:1: unknown section [handler.]: a handler type is 1-128 characters of A-Z a-z 0-9 _ "
     ". : -"},
    {H "[handler.t]\ncommand = /bin/true\n",
     "FILE:3: duplicate section [handler.t] (first on line 1)"},
    {"[pgjobd]\n[pgjobd]\n", "FILE:2: duplicate section [pgjobd] (first on line 1)"},
    {"[pgjobd]\nlease\n", "FILE:2: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd]\nlease ; = 60s\n", "FILE:2: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd\n", "FILE:1: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd ; ]\n", "FILE:1: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd] x\n", "FILE:1: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd]\n= 5\n", "FILE:2: syntax error: expected 'key = value' or '[section]'"},
    {"[pgjobd]\nlease = 60s\n  5s\n",
     "FILE:3: lease: unexpected indented line (only command, environment, queues and "
     "dead_exit_codes continue on indented lines)"},

    /* [handler.TYPE]: command */
    {"[handler.t]\ntimeout = 1h\n", "FILE:1: [handler.t] has no command"},
    {"[handler.t]\ncommand =\n", "FILE:1: [handler.t] has no command"},
    {"[pgjobd]\n\n[handler.t]\n", "FILE:3: [handler.t] has no command"},
    {"[handler.t]\ncommand = true\n",
     "FILE:2: command: 'true' is not an absolute path (there is no PATH search)"},
    {"[handler.t]\ncommand = ''\n",
     "FILE:2: command: '' is not an absolute path (there is no PATH search)"},
    {"[handler.t]\ncommand = /nonexistent/x --flag\n",
     "FILE:2: command: '/nonexistent/x': No such file or directory"},
    {"[handler.t]\ncommand = /etc\n", "FILE:2: command: '/etc' is not a regular file"},
    {"[handler.t]\ncommand = /etc/passwd\n",
     "FILE:2: command: '/etc/passwd' is not executable: Permission denied"},
    {"[handler.t]\ncommand = /bin/sh -c 'echo\n",
     "FILE:2: command: unterminated ' quote in '/bin/sh -c 'echo'"},
    {"[handler.t]\ncommand = /bin/echo \"a\n",
     "FILE:2: command: unterminated \" quote in '/bin/echo \"a'"},
    {"[handler.t]\ncommand = /bin/echo a\\\n",
     "FILE:2: command: trailing backslash in '/bin/echo a\\'"},
    {"[handler.t]\ncommand = /bin/sh -c 'a ; b'\n",
     "FILE:2: command: unterminated ' quote in '/bin/sh -c 'a' (note: a ';' after a blank "
     "starts a comment, even inside quotes)"},
    {"[handler.t]\ncommand = /bin/sh -c 'a\n  b\n",
     "FILE:2: command: unterminated ' quote in '/bin/sh -c 'a\\nb'"},

    /* [handler.TYPE]: other keys */
    {H "timeout = 31d\n", "FILE:3: timeout: '31d' is out of range (0 to 30d)"},
    {H "timeout = 1y\n",
     "FILE:3: timeout: bad duration '1y' (use an integer with ms, s, m, h or d)"},
    {H "max_attempts = 0\n", "FILE:3: max_attempts: '0' is out of range (1 to 1000)"},
    {H "max_attempts = 1001\n", "FILE:3: max_attempts: '1001' is out of range (1 to 1000)"},
    {H "backoff = 2d\n", "FILE:3: backoff: '2d' is out of range (0 to 1d)"},
    {H "backoff_max = 31d\n", "FILE:3: backoff_max: '31d' is out of range (0 to 30d)"},
    {H "backoff = 10s\nbackoff_max = 5s\n",
     "FILE:4: backoff_max: '5s' must not be less than backoff (10s)"},
    {H "backoff_max = 5s\n", "FILE:3: backoff_max: '5s' must not be less than backoff (10s)"},
    {H "backoff = 2h\n",
     "FILE:3: backoff: '2h' must not exceed backoff_max (1h by default); raise backoff_max too"},
    {"[pgjobd]\nconcurrency = 4\n" H "concurrency = 8\n",
     "FILE:5: concurrency: '8' must not exceed [pgjobd] concurrency (4)"},
    {H "concurrency = 5\n", "FILE:3: concurrency: '5' must not exceed [pgjobd] concurrency (4)"},
    {H "concurrency = 0\n", "FILE:3: concurrency: '0' is below the minimum (1)"},
    {H "concurrency = x\n", "FILE:3: concurrency: bad integer 'x'"},
    {H "dead_exit_codes = 0\n", "FILE:3: dead_exit_codes: '0' is out of range (1 to 255)"},
    {H "dead_exit_codes = 65 256\n", "FILE:3: dead_exit_codes: '256' is out of range (1 to 255)"},
    {H "dead_exit_codes = 65, x\n",
     "FILE:3: dead_exit_codes: bad exit code 'x' (use integers 1 to 255)"},
    {H "dead_exit_codes = 65,,75\n",
     "FILE:3: dead_exit_codes: empty item between commas in '65,,75'"},
    {H "dead_exit_codes = 65,\n", "FILE:3: dead_exit_codes: empty item between commas in '65,'"},
    {H "working_directory = tmp\n", "FILE:3: working_directory: 'tmp' is not an absolute path"},
    {H "working_directory = /nonexistent\n",
     "FILE:3: working_directory: '/nonexistent': No such file or directory"},
    {H "working_directory = /etc/passwd\n",
     "FILE:3: working_directory: '/etc/passwd' is not a directory"},
    {H "environment = FOO\n", "FILE:3: environment: 'FOO' is not NAME=VALUE"},
    {H "environment = 1A=x\n",
     "FILE:3: environment: bad variable name in '1A=x' (letters, digits and _, not starting "
     "with a digit)"},
    {H "environment = =x\n",
     "FILE:3: environment: bad variable name in '=x' (letters, digits and _, not starting "
     "with a digit)"},
    {H "environment = A-B=x\n",
     "FILE:3: environment: bad variable name in 'A-B=x' (letters, digits and _, not starting "
     "with a digit)"},
    {H "environment = PGJOBD_JOB_ID=1\n",
     "FILE:3: environment: 'PGJOBD_JOB_ID' is reserved (names starting with PGJOBD_ are set "
     "by pgjobd)"},
    {H "environment = A=1 B=2\n  A=3\n", "FILE:3: environment: 'A' is set twice"},
    {H "environment = A='x\n", "FILE:3: environment: unterminated ' quote in 'A='x'"},
    {H "args_from_payload = maybe\n",
     "FILE:3: args_from_payload: bad boolean 'maybe' (use yes or no)"},
    {H "timeout = 1h\n  2h\n",
     "FILE:4: timeout: unexpected indented line (only command, environment, queues and "
     "dead_exit_codes continue on indented lines)"},
};

START_TEST(test_bad_file_reports_first_error)
{
	char *errors = c_load_bad(bad_files[_i].ini);
	char *first = first_line(errors);

	ck_assert_msg(strcmp(first, bad_files[_i].first_error) == 0,
	              "bad_files[%d]:\n%s\ngave:\n%s\nwant:\n%s", _i, bad_files[_i].ini, errors,
	              bad_files[_i].first_error);
	free(first);
	free(errors);
}
END_TEST

/* TEXT with BLANKS trailing blanks before each line's end (malloc'd). */
static char *
pad_lines(const char *text, size_t blanks)
{
	size_t lines = count_lines(text) + 1;
	char *out = malloc(strlen(text) + lines * blanks + 1), *o = out;

	ck_assert_ptr_nonnull(out);
	for (const char *p = text;; p++) {
		if (*p == '\n' || *p == '\0') {
			/* Before a CR too: both are trailing blanks to inih. */
			if (p > text && p[-1] == '\r')
				o--;
			memset(o, ' ', blanks);
			o += blanks;
			if (p > text && p[-1] == '\r')
				*o++ = '\r';
		}
		if (*p == '\0')
			break;
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

START_TEST(test_bad_file_with_long_lines_reports_the_same)
{
	/*
	 * Trailing blanks mean nothing, but make every line longer than
	 * Debian inih's 200-byte buffer: each goes in as a stand-in, and
	 * every error must come out as for the short lines.
	 */
	char *padded = pad_lines(bad_files[_i].ini, 300);
	char *errors = c_load_bad(bad_files[_i].ini);
	char *padded_errors = c_load_bad(padded);

	ck_assert_str_eq(padded_errors, errors);
	free(padded_errors);
	free(errors);
	free(padded);
}
END_TEST

START_TEST(test_missing_file_reports_line_0)
{
	char *errors = NULL;

	ck_assert_ptr_null(cfg_load("/nonexistent/pgjobd.ini", &errors));
	ck_assert_str_eq(errors,
	                 "/nonexistent/pgjobd.ini:0: cannot open: No such file or directory\n");
	free(errors);
}
END_TEST

START_TEST(test_directory_is_not_a_config)
{
	char *errors = NULL;

	ck_assert_ptr_null(cfg_load("/", &errors));
	ck_assert_str_eq(errors, "/:0: cannot read: Is a directory\n");
	free(errors);
}
END_TEST

START_TEST(test_all_errors_are_reported_in_line_order)
{
	/* A value error, a syntax error and a bad command: found in different passes. */
	char *errors = c_load_bad("[pgjobd]\n"
	                        "lease = 10x\n"
	                        "bogus\n"
	                        "[handler.t]\n"
	                        "command = /nonexistent/x\n");

	ck_assert_str_eq(
	    errors, "FILE:2: lease: bad duration '10x' (use an integer with ms, s, m, h or d)\n"
	            "FILE:3: syntax error: expected 'key = value' or '[section]'\n"
	            "FILE:5: command: '/nonexistent/x': No such file or directory\n");
	free(errors);
}
END_TEST

START_TEST(test_every_syntax_error_gets_its_line)
{
	/* inih itself reports only the first; the reader reports each. */
	char *errors = c_load_bad("[pgjobd]\nx\n[y\nz ; = 1\n" H "w\n");

	ck_assert_str_eq(errors, "FILE:2: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:3: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:4: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:7: syntax error: expected 'key = value' or '[section]'\n");
	free(errors);
}
END_TEST

START_TEST(test_one_value_may_have_several_errors)
{
	char *errors = c_load_bad(H "environment = 1=a PGJOBD_X=1 Y\n");

	ck_assert_uint_eq(count_lines(errors), 3);
	ck_assert_ptr_nonnull(strstr(errors, "FILE:3: environment: bad variable name in '1=a'"));
	ck_assert_ptr_nonnull(strstr(errors, "FILE:3: environment: 'PGJOBD_X' is reserved"));
	ck_assert_ptr_nonnull(strstr(errors, "FILE:3: environment: 'Y' is not NAME=VALUE"));
	free(errors);
}
END_TEST

START_TEST(test_keys_of_a_rejected_section_are_ignored)
{
	/* One error for the section, none for what it holds. */
	char *errors = c_load_bad("[nope]\nfoo = 1\nbar = 2\n[handler.t]\n[handler.t]\nzzz = 1\n");

	ck_assert_str_eq(errors, "FILE:1: unknown section [nope]\n"
	                         "FILE:4: [handler.t] has no command\n"
	                         "FILE:5: duplicate section [handler.t] (first on line 4)\n");
	free(errors);
}
END_TEST

static Suite *
cfg_errors_suite(void)
{
	Suite *s = suite_create("cfg_errors");
	TCase *tc;

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad_file_reports_first_error, 0, (int)nitems(bad_files));
	tcase_add_loop_test(tc, test_bad_file_with_long_lines_reports_the_same, 0,
	                    (int)nitems(bad_files));
	tcase_add_test(tc, test_missing_file_reports_line_0);
	tcase_add_test(tc, test_directory_is_not_a_config);
	tcase_add_test(tc, test_all_errors_are_reported_in_line_order);
	tcase_add_test(tc, test_every_syntax_error_gets_its_line);
	tcase_add_test(tc, test_one_value_may_have_several_errors);
	tcase_add_test(tc, test_keys_of_a_rejected_section_are_ignored);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(cfg_errors_suite());
}
