/*
 * check_cfg: good configuration files and what their keys mean
 * (src/cfg.c, CONTRACT section 4): defaults, empty values, every key parsed
 * to its value, booleans, handlers sorted and found by type, the changes a
 * reload cannot apply, the key table, and the example config (valid, every
 * key documented).  Bad files are check_cfg_errors, how lines are read
 * check_cfg_ini, single values check_cfg_value.  Links only the cfg modules.
 */
#include "cfglib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Good files                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_defaults_are_applied)
{
	struct cfg *cfg = c_load_ok("[handler.t]\ncommand = /bin/true\n");
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
	struct cfg *cfg = c_load_ok("");

	ck_assert_int_eq(cfg->nhandlers, 0);
	ck_assert_int_eq(cfg->concurrency, 4);
	ck_assert_ptr_null(cfg_handler(cfg, "t"));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_empty_value_means_default)
{
	struct cfg *cfg = c_load_ok("[pgjobd]\nname =\nqueues =\nconcurrency =\nlease =\n"
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
	struct cfg *cfg = c_load_ok(H "dead_exit_codes =\n");
	const struct cfg_handler *h = cfg_handler(cfg, "t");

	for (int code = 0; code <= 255; code++)
		ck_assert(!cfg_dead_exit(h, code));
	cfg_free(cfg);
}
END_TEST

START_TEST(test_every_key_is_parsed)
{
	struct cfg *cfg = c_load_ok("[pgjobd]\n"
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
		cfg = c_load_ok(text);
		ck_assert_msg(cfg_handler(cfg, "t")->args_from_payload == cases[i].v, "%s",
		              cases[i].s);
		cfg_free(cfg);
		free(text);
	}
}
END_TEST


START_TEST(test_handlers_are_sorted_and_found_by_type)
{
	struct cfg *cfg = c_load_ok("[handler.zeta]\ncommand = /bin/true\n"
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
	struct cfg *a = c_load_ok("[pgjobd]\ndatabase = dbname=a\nname = w1\nconcurrency = 2\n");
	struct cfg *b = c_load_ok("[pgjobd]\ndatabase = dbname=b password=secret\nname = w2\n");
	struct cfg *c = c_load_ok("[pgjobd]\ndatabase = dbname=a\nname = w1\nconcurrency = 9\n");
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

	tc = tcase_create("files");
	tcase_add_test(tc, test_defaults_are_applied);
	tcase_add_test(tc, test_empty_file_is_all_defaults);
	tcase_add_test(tc, test_empty_value_means_default);
	tcase_add_test(tc, test_dead_exit_codes_empty_means_none);
	tcase_add_test(tc, test_every_key_is_parsed);
	tcase_add_test(tc, test_booleans);
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
