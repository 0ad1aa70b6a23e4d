/*
 * check_cfg: unit tests of src/cfg.c, the INI configuration.
 *
 * The core is bad_files[]: one small bad file per rule of CONTRACT
 * section 4, each with the exact first error it must produce.  Files are
 * written to $TMPDIR (or /tmp); "FILE" in an expected message stands for
 * the temp file's path.  Links only the cfg modules.
 */
#include "cfg.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Write TEXT (LEN bytes) to a new temp file; returns its malloc'd path. */
static char *
write_temp_len(const char *text, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	ck_assert_int_ge(asprintf(&path, "%s/check_cfg.XXXXXX", dir), 0);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp in %s failed", dir);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	return path;
}

static char *
write_temp(const char *text)
{
	return write_temp_len(text, strlen(text));
}

/* Load TEXT from a temp file; *path gets the file's name (already unlinked). */
static struct cfg *
load_text(const char *text, char **path, char **errors)
{
	struct cfg *cfg;

	*path = write_temp(text);
	cfg = cfg_load(*path, errors);
	unlink(*path);
	return cfg;
}

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

/* Load TEXT, which must be valid; returns the cfg (the test frees it). */
static struct cfg *
load_ok(const char *text)
{
	char *path, *errors;
	struct cfg *cfg = load_text(text, &path, &errors);

	ck_assert_msg(cfg != NULL, "expected a valid config, got:\n%s", errors ? errors : "");
	ck_assert_ptr_null(errors);
	free(path);
	return cfg;
}

/* Load TEXT, which must be invalid; returns every error with FILE for the path. */
static char *
load_bad(const char *text)
{
	char *path, *errors, *out, *o;
	const char *p;
	size_t plen;
	struct cfg *cfg = load_text(text, &path, &errors);

	ck_assert_msg(cfg == NULL, "expected errors for:\n%s", text);
	ck_assert_ptr_nonnull(errors);
	/* Replace each occurrence of the path by "FILE" to compare with literals. */
	plen = strlen(path);
	out = malloc(strlen(errors) + 1);
	o = out;
	for (p = errors; *p != '\0';) {
		if (strncmp(p, path, plen) == 0) {
			o = stpcpy(o, "FILE");
			p += plen;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	free(errors);
	free(path);
	return out;
}

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

/* ------------------------------------------------------------------ */
/* Bad files: the first error of each, exactly                          */
/* ------------------------------------------------------------------ */

#define H "[handler.t]\ncommand = /bin/true\n"

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
	char *errors = load_bad(bad_files[_i].ini);
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
	char *errors = load_bad(bad_files[_i].ini);
	char *padded_errors = load_bad(padded);

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
	char *errors = load_bad("[pgjobd]\n"
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
	char *errors = load_bad("[pgjobd]\nx\n[y\nz ; = 1\n" H "w\n");

	ck_assert_str_eq(errors, "FILE:2: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:3: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:4: syntax error: expected 'key = value' or '[section]'\n"
	                         "FILE:7: syntax error: expected 'key = value' or '[section]'\n");
	free(errors);
}
END_TEST

START_TEST(test_one_value_may_have_several_errors)
{
	char *errors = load_bad(H "environment = 1=a PGJOBD_X=1 Y\n");

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
	char *errors = load_bad("[nope]\nfoo = 1\nbar = 2\n[handler.t]\n[handler.t]\nzzz = 1\n");

	ck_assert_str_eq(errors, "FILE:1: unknown section [nope]\n"
	                         "FILE:4: [handler.t] has no command\n"
	                         "FILE:5: duplicate section [handler.t] (first on line 4)\n");
	free(errors);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Good files                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_defaults_are_applied)
{
	struct cfg *cfg = load_ok("[handler.t]\ncommand = /bin/true\n");
	const struct cfg_handler *h;

	ck_assert_str_eq(cfg->database, "");
	ck_assert_int_eq(cfg->nqueues, 1);
	ck_assert_str_eq(cfg->queues[0], "default");
	ck_assert_ptr_null(cfg->queues[1]);
	ck_assert_int_eq(cfg->concurrency, 4);
	ck_assert_int_eq(cfg->lease_ms, 60000);
	ck_assert_int_eq(cfg->heartbeat_ms, 20000);
	ck_assert_int_eq(cfg->poll_interval_ms, 5000);
	ck_assert_int_eq(cfg->shutdown_timeout_ms, 30000);
	ck_assert_int_eq(cfg->kill_grace_ms, 10000);
	ck_assert_uint_eq(cfg->output_limit, 65536);
	ck_assert_str_eq(cfg->name, "");
	ck_assert_int_eq(cfg->nhandlers, 1);

	h = cfg_handler(cfg, "t");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->type, "t");
	ck_assert_str_eq(h->argv[0], "/bin/true");
	ck_assert_ptr_null(h->argv[1]);
	ck_assert_int_eq(h->timeout_ms, 3600000);
	ck_assert_int_eq(h->max_attempts, 5);
	ck_assert_int_eq(h->backoff_ms, 10000);
	ck_assert_int_eq(h->backoff_max_ms, 3600000);
	ck_assert_int_eq(h->concurrency, 0);
	for (int code = -1; code <= 256; code++)
		ck_assert_msg(cfg_dead_exit(h, code) == (code == 65), "exit code %d", code);
	ck_assert_str_eq(h->working_directory, "/");
	ck_assert_ptr_null(h->environment[0]);
	ck_assert(!h->args_from_payload);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_empty_file_is_all_defaults)
{
	struct cfg *cfg = load_ok("");

	ck_assert_int_eq(cfg->nhandlers, 0);
	ck_assert_int_eq(cfg->concurrency, 4);
	ck_assert_ptr_null(cfg_handler(cfg, "t"));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_empty_value_means_default)
{
	struct cfg *cfg = load_ok("[pgjobd]\nname =\nqueues =\nconcurrency =\nlease =\n"
	                          "[handler.t]\ncommand = /bin/true\nconcurrency =\ntimeout =\n"
	                          "environment =\nworking_directory =\n");
	const struct cfg_handler *h = cfg_handler(cfg, "t");

	ck_assert_str_eq(cfg->name, "");
	ck_assert_str_eq(cfg->queues[0], "default");
	ck_assert_int_eq(cfg->concurrency, 4);
	ck_assert_int_eq(cfg->lease_ms, 60000);
	ck_assert_int_eq(h->concurrency, 0);
	ck_assert_int_eq(h->timeout_ms, 3600000);
	ck_assert_str_eq(h->working_directory, "/");
	cfg_free(cfg);
}
END_TEST

START_TEST(test_dead_exit_codes_empty_means_none)
{
	struct cfg *cfg = load_ok(H "dead_exit_codes =\n");
	const struct cfg_handler *h = cfg_handler(cfg, "t");

	for (int code = 0; code <= 255; code++)
		ck_assert(!cfg_dead_exit(h, code));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_every_key_is_parsed)
{
	struct cfg *cfg = load_ok("[pgjobd]\n"
	                          "database = host=db1 dbname=jobs\n"
	                          "queues = mail , resize:big,x.y\n"
	                          "concurrency = 16\n"
	                          "lease = 2m\n"
	                          "heartbeat = 59999ms\n"
	                          "poll_interval = 100ms\n"
	                          "shutdown_timeout = 0\n"
	                          "kill_grace = 1h\n"
	                          "output_limit = 16MiB\n"
	                          "name: worker-1@host\n"
	                          "[handler.resize]\n"
	                          "command = /bin/sh -c 'exec \"$0\" \"$@\"' /bin/echo\n"
	                          "timeout = 0\n"
	                          "max_attempts = 1000\n"
	                          "backoff = 0\n"
	                          "backoff_max = 30d\n"
	                          "concurrency = 16\n"
	                          "dead_exit_codes = 1, 2 3,255\n"
	                          "working_directory = /tmp\n"
	                          "environment = LANG=C.UTF-8 MODE=\"fast mode\" EMPTY=\n"
	                          "args_from_payload = YES\n");
	const struct cfg_handler *h = cfg_handler(cfg, "resize");

	ck_assert_str_eq(cfg->database, "host=db1 dbname=jobs");
	ck_assert_int_eq(cfg->nqueues, 3);
	ck_assert_str_eq(cfg->queues[0], "mail");
	ck_assert_str_eq(cfg->queues[1], "resize:big");
	ck_assert_str_eq(cfg->queues[2], "x.y");
	ck_assert_int_eq(cfg->concurrency, 16);
	ck_assert_int_eq(cfg->lease_ms, 120000);
	ck_assert_int_eq(cfg->heartbeat_ms, 59999);
	ck_assert_int_eq(cfg->poll_interval_ms, 100);
	ck_assert_int_eq(cfg->shutdown_timeout_ms, 0);
	ck_assert_int_eq(cfg->kill_grace_ms, 3600000);
	ck_assert_uint_eq(cfg->output_limit, 16 * 1024 * 1024);
	ck_assert_str_eq(cfg->name, "worker-1@host");

	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->argv[0], "/bin/sh");
	ck_assert_str_eq(h->argv[1], "-c");
	ck_assert_str_eq(h->argv[2], "exec \"$0\" \"$@\"");
	ck_assert_str_eq(h->argv[3], "/bin/echo");
	ck_assert_ptr_null(h->argv[4]);
	ck_assert_int_eq(h->timeout_ms, 0);
	ck_assert_int_eq(h->max_attempts, 1000);
	ck_assert_int_eq(h->backoff_ms, 0);
	ck_assert_int_eq(h->backoff_max_ms, 30LL * 86400000);
	ck_assert_int_eq(h->concurrency, 16);
	ck_assert(cfg_dead_exit(h, 1) && cfg_dead_exit(h, 2) && cfg_dead_exit(h, 3));
	ck_assert(cfg_dead_exit(h, 255) && !cfg_dead_exit(h, 65) && !cfg_dead_exit(h, 4));
	ck_assert_str_eq(h->working_directory, "/tmp");
	ck_assert_str_eq(h->environment[0], "LANG=C.UTF-8");
	ck_assert_str_eq(h->environment[1], "MODE=fast mode");
	ck_assert_str_eq(h->environment[2], "EMPTY=");
	ck_assert_ptr_null(h->environment[3]);
	ck_assert(h->args_from_payload);
	cfg_free(cfg);
}
END_TEST

START_TEST(test_booleans)
{
	static const struct {
		const char *s;
		bool v;
	} cases[] = {
	    {"yes", true}, {"true", true},   {"on", true},   {"1", true},  {"On", true},
	    {"no", false}, {"false", false}, {"off", false}, {"0", false}, {"NO", false},
	};

	for (size_t i = 0; i < nitems(cases); i++) {
		char *text;
		struct cfg *cfg;

		ck_assert_int_ge(asprintf(&text, H "args_from_payload = %s\n", cases[i].s), 0);
		cfg = load_ok(text);
		ck_assert_msg(cfg_handler(cfg, "t")->args_from_payload == cases[i].v, "%s",
		              cases[i].s);
		cfg_free(cfg);
		free(text);
	}
}
END_TEST

START_TEST(test_continuation_lines)
{
	struct cfg *cfg = load_ok("[pgjobd]\n"
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
	struct cfg *cfg = load_ok("[handler.t]\ncommand =\n  /bin/echo\n  hi\n");
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
	char *errors = load_bad(text);

	/* The next line keeps its own number: the long one was not split in two. */
	ck_assert_str_eq(
	    errors, "FILE:2: line too long (at most 65535 characters)\n"
	            "FILE:3: lease: bad duration '10x' (use an integer with ms, s, m, h or d)\n");
	free(errors);
	free(text);

	text = file_with_line_of(65536, "");
	errors = load_bad(text);
	ck_assert_str_eq(errors, "FILE:2: line too long (at most 65535 characters)\n");
	free(errors);
	free(text);
}
END_TEST

START_TEST(test_line_of_65535_characters_is_accepted)
{
	/* Followed by a key that must not be swallowed as "the rest" of the long line. */
	char *text = file_with_line_of(65535, "concurrency = 7\n");
	struct cfg *cfg = load_ok(text);

	ck_assert_uint_eq(strlen(cfg->database), 65535 - strlen("database = "));
	ck_assert_int_eq(cfg->concurrency, 7);
	cfg_free(cfg);
	free(text);

	/* The same as the last line, without its newline. */
	text = file_with_line_of(65535, "");
	text[strlen(text) - 1] = '\0';
	cfg = load_ok(text);
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
		struct cfg *cfg = load_ok(text);

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
	errors = load_bad(text);
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
	errors = load_bad(text);
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
	cfg = load_ok(text);
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
	cfg = load_ok(text);
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
	errors = load_bad(text);
	ck_assert_str_eq(
	    errors, "FILE:6: lease: bad duration '10x' (use an integer with ms, s, m, h or d)\n");
	free(errors);
	free(text);

	/* The same file, valid: every queue of the long line is there. */
	ck_assert_int_ge(
	    asprintf(&text, "[pgjobd]\ndatabase = %s\nqueues = a,\n  %s\n", pad, names), 0);
	{
		struct cfg *cfg = load_ok(text);

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
	cfg = load_ok(text);
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
	cfg = load_ok(text);
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
	errors = load_bad(text);
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
	char *path = write_temp_len(text, sizeof(text) - 1);
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
	struct cfg *cfg = load_ok("\xEF\xBB\xBF[pgjobd]\r\nconcurrency = 3\r\nname: w1\r\n"
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
	cfg = load_ok(text);
	ck_assert_ptr_nonnull(cfg_handler(cfg, type));
	ck_assert_str_eq(cfg->handlers[0].type, type);
	cfg_free(cfg);
	free(text);
}
END_TEST

START_TEST(test_handlers_are_sorted_and_found_by_type)
{
	struct cfg *cfg = load_ok("[handler.zeta]\ncommand = /bin/true\n"
	                          "[handler.alpha]\ncommand = /bin/false\n"
	                          "[handler.mid]\ncommand = /bin/cat\n");

	ck_assert_int_eq(cfg->nhandlers, 3);
	ck_assert_str_eq(cfg->handlers[0].type, "alpha");
	ck_assert_str_eq(cfg->handlers[1].type, "mid");
	ck_assert_str_eq(cfg->handlers[2].type, "zeta");
	ck_assert_str_eq(cfg_handler(cfg, "zeta")->argv[0], "/bin/true");
	ck_assert_str_eq(cfg_handler(cfg, "alpha")->argv[0], "/bin/false");
	ck_assert_str_eq(cfg_handler(cfg, "mid")->argv[0], "/bin/cat");
	ck_assert_ptr_null(cfg_handler(cfg, "Mid"));
	ck_assert_ptr_null(cfg_handler(cfg, "nope"));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_unreloadable_changes_name_database_and_name)
{
	struct cfg *a = load_ok("[pgjobd]\ndatabase = dbname=a\nname = w1\nconcurrency = 2\n");
	struct cfg *b = load_ok("[pgjobd]\ndatabase = dbname=b password=secret\nname = w2\n");
	struct cfg *c = load_ok("[pgjobd]\ndatabase = dbname=a\nname = w1\nconcurrency = 9\n");
	char buf[256], tiny[12];

	ck_assert_int_eq(cfg_unreloadable_changes(a, b, buf, sizeof(buf)), 2);
	ck_assert_str_eq(buf, "database changed\nname changed");
	ck_assert_ptr_null(strstr(buf, "secret"));
	ck_assert_int_eq(cfg_unreloadable_changes(a, c, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	/* A short buffer still counts every change and stays NUL-terminated. */
	ck_assert_int_eq(cfg_unreloadable_changes(a, b, tiny, sizeof(tiny)), 2);
	ck_assert_str_eq(tiny, "database ch");
	cfg_free(a);
	cfg_free(b);
	cfg_free(c);
}
END_TEST

START_TEST(test_key_names_lists_every_key)
{
	static const char *const want[] = {
	    "database",          "queues",        "concurrency",       "lease",
	    "heartbeat",         "poll_interval", "shutdown_timeout",  "kill_grace",
	    "output_limit",      "name",          "command",           "timeout",
	    "max_attempts",      "backoff",       "backoff_max",       "dead_exit_codes",
	    "working_directory", "environment",   "args_from_payload", "metrics_listen",
	};
	const char *const *names = cfg_key_names();
	size_t n = 0;

	while (names[n] != NULL)
		n++;
	ck_assert_uint_eq(n, nitems(want));
	for (size_t i = 0; i < nitems(want); i++) {
		bool found = false;

		for (size_t j = 0; j < n; j++)
			found |= strcmp(names[j], want[i]) == 0;
		ck_assert_msg(found, "%s missing", want[i]);
	}
	ck_assert_ptr_eq(cfg_key_names(), names);
}
END_TEST

START_TEST(test_example_config_is_valid)
{
	const char *srcdir = getenv("PGJOBD_SRCDIR");
	char *path, *errors = NULL;
	struct cfg *cfg;

	ck_assert_int_ge(asprintf(&path, "%s/etc/pgjobd.ini", srcdir ? srcdir : "."), 0);
	cfg = cfg_load(path, &errors);
	ck_assert_msg(cfg != NULL, "%s", errors ? errors : "");
	ck_assert_int_eq(cfg->nqueues, 1);
	ck_assert_str_eq(cfg->queues[0], "default");
	ck_assert_ptr_nonnull(cfg_handler(cfg, "echo"));
	ck_assert_ptr_nonnull(cfg_handler(cfg, "sleep"));
	cfg_free(cfg);
	free(path);
}
END_TEST

START_TEST(test_example_config_documents_every_key)
{
	const char *srcdir = getenv("PGJOBD_SRCDIR");
	char *path, *line = NULL;
	size_t cap = 0;
	FILE *f;
	bool seen[64] = {false};
	const char *const *names = cfg_key_names();

	ck_assert_int_ge(asprintf(&path, "%s/etc/pgjobd.ini", srcdir ? srcdir : "."), 0);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (getline(&line, &cap, f) > 0) {
		for (size_t i = 0; names[i] != NULL; i++) {
			size_t n = strlen(names[i]);

			if (strncmp(line, names[i], n) == 0 && (line[n] == ' ' || line[n] == '='))
				seen[i] = true;
		}
	}
	for (size_t i = 0; names[i] != NULL; i++)
		ck_assert_msg(seen[i], "%s does not set %s", path, names[i]);
	fclose(f);
	free(line);
	free(path);
}
END_TEST

static Suite *
cfg_suite(void)
{
	Suite *s = suite_create("cfg");
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
	tcase_add_test(tc, test_overlong_line_is_reported_with_its_line);
	tcase_add_test(tc, test_overlong_section_header_hides_its_keys);
	tcase_add_test(tc, test_long_handler_type_is_refused_on_its_line);
	tcase_add_test(tc, test_error_after_long_lines_names_its_line);
	tcase_add_test(tc, test_nul_byte_is_reported);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_test(tc, test_defaults_are_applied);
	tcase_add_test(tc, test_empty_file_is_all_defaults);
	tcase_add_test(tc, test_empty_value_means_default);
	tcase_add_test(tc, test_dead_exit_codes_empty_means_none);
	tcase_add_test(tc, test_every_key_is_parsed);
	tcase_add_test(tc, test_booleans);
	tcase_add_test(tc, test_continuation_lines);
	tcase_add_test(tc, test_command_may_start_on_a_continuation_line);
	tcase_add_test(tc, test_line_of_65535_characters_is_accepted);
	tcase_add_test(tc, test_lines_around_inih_buffer_size_are_whole);
	tcase_add_test(tc, test_command_line_over_4kib_keeps_its_argv);
	tcase_add_test(tc, test_environment_line_over_4kib_keeps_its_values);
	tcase_add_test(tc, test_long_continuation_lines_continue_a_command);
	tcase_add_test(tc, test_long_lines_are_read_as_short_ones);
	tcase_add_test(tc, test_crlf_bom_and_colon_are_accepted);
	tcase_add_test(tc, test_long_handler_type_is_kept_whole);
	tcase_add_test(tc, test_handlers_are_sorted_and_found_by_type);
	tcase_add_test(tc, test_unreloadable_changes_name_database_and_name);
	tcase_add_test(tc, test_key_names_lists_every_key);
	tcase_add_test(tc, test_example_config_is_valid);
	tcase_add_test(tc, test_example_config_documents_every_key);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(cfg_suite());
}
