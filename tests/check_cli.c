/*
 * check_cli: the command line of CONTRACT section 2, run as the real
 * binary: -t, --migrate, -V, -h, usage errors, and the start-up refusal
 * against a schema that is behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static int
run_pgjobd(char **out, char **err, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	const char *argv[] = {t_pgjobd(), a1, a2, a3, a4, NULL};

	return t_run(argv, out, err, 30000);
}

START_TEST(test_check_good_config_prints_ok)
{
	char *path = t_config("queues = default\n[handler.echo]\ncommand = /bin/cat\n");
	char *out, *err;

	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "-t", NULL), 0);
	ck_assert_str_eq(out, "configuration OK\n");
	ck_assert_str_eq(err, "");
	unlink(path);
	free(path);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_check_bad_config_prints_every_error_and_exits_78)
{
	char *path = t_config("concurrency = lots\n"
			      "[handler.x]\n"
			      "command = relative/path\n"
			      "bogus = 1\n");
	char *out, *err, *want;

	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "-t", NULL), 78);
	ck_assert_str_eq(out, "");
	/* t_config puts "[pgjobd]" and "database =" on lines 1 and 2. */
	ck_assert_int_ne(asprintf(&want, "%s:3: ", path), -1);
	ck_assert_msg(strstr(err, want) != NULL, "no error for line 3 in:\n%s", err);
	free(want);
	ck_assert_int_ne(asprintf(&want, "%s:5: ", path), -1);
	ck_assert_msg(strstr(err, want) != NULL, "no error for line 5 in:\n%s", err);
	free(want);
	ck_assert_int_ne(asprintf(&want, "%s:6: ", path), -1);
	ck_assert_msg(strstr(err, want) != NULL, "no error for line 6 in:\n%s", err);
	free(want);
	unlink(path);
	free(path);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_missing_config_file_exits_78)
{
	char *out, *err;

	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", "/nonexistent/pgjobd.ini", "-t", NULL), 78);
	ck_assert_msg(strstr(err, "/nonexistent/pgjobd.ini:0: ") == err, "got: %s", err);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_example_config_passes_check)
{
	const char *src = getenv("PGJOBD_SRCDIR");
	char *path, *out, *err;

	ck_assert_int_ne(asprintf(&path, "%s/etc/pgjobd.ini", src ? src : "."), -1);
	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "-t", NULL), 0);
	ck_assert_str_eq(out, "configuration OK\n");
	free(path);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_usage_errors_exit_78)
{
	char *out, *err;

	ck_assert_int_eq(run_pgjobd(&out, &err, "--no-such-option", NULL, NULL, NULL), 78);
	ck_assert_msg(strstr(err, "usage:") != NULL, "got: %s", err);
	free(out);
	free(err);
	ck_assert_int_eq(run_pgjobd(&out, &err, "extra-argument", NULL, NULL, NULL), 78);
	free(out);
	free(err);
	ck_assert_int_eq(run_pgjobd(&out, &err, "-t", "--migrate", NULL, NULL), 78);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_version_and_help)
{
	char *out, *err;

	ck_assert_int_eq(run_pgjobd(&out, &err, "-V", NULL, NULL, NULL), 0);
	ck_assert_msg(strncmp(out, "pgjobd ", 7) == 0, "got: %s", out);
	free(out);
	free(err);
	ck_assert_int_eq(run_pgjobd(&out, &err, "-h", NULL, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "--migrate") != NULL, "got: %s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_daemon_refuses_schema_behind_and_names_migrate)
{
	char *path = t_config("[handler.echo]\ncommand = /bin/cat\n");
	char *out, *err;

	t_use_fresh_db("pgjobd_cli_empty");
	/* Nothing installed: version 0 is behind. */
	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, NULL, NULL), 1);
	ck_assert_msg(strstr(err, "--migrate") != NULL, "got: %s", err);
	free(out);
	free(err);
	/* Once migrated, -t and --migrate agree and a second run is harmless. */
	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "--migrate", NULL), 0);
	ck_assert_str_eq(out, T_MIGRATED);
	free(out);
	free(err);
	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "--migrate", NULL), 0);
	ck_assert_str_eq(out, T_MIGRATED);
	free(out);
	free(err);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_migrate_without_database_fails_with_1)
{
	char *path = t_config("");
	char *out, *err;

	/* Overwrite with a database that cannot exist. */
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[pgjobd]\ndatabase = dbname=pgjobd_no_such_db connect_timeout=5\n");
	fclose(f);
	ck_assert_int_eq(run_pgjobd(&out, &err, "-c", path, "--migrate", NULL), 1);
	ck_assert_msg(strstr(err, "pgjobd_no_such_db") != NULL, "got: %s", err);
	free(out);
	free(err);
	unlink(path);
	free(path);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_check_good_config_prints_ok);
	tcase_add_test(tc, test_check_bad_config_prints_every_error_and_exits_78);
	tcase_add_test(tc, test_missing_config_file_exits_78);
	tcase_add_test(tc, test_example_config_passes_check);
	tcase_add_test(tc, test_usage_errors_exit_78);
	tcase_add_test(tc, test_version_and_help);
	tcase_add_test(tc, test_daemon_refuses_schema_behind_and_names_migrate);
	tcase_add_test(tc, test_migrate_without_database_fails_with_1);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
