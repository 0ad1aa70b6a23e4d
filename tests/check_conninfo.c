/*
 * check_conninfo: unit tests of src/conninfo.c, what `database =` becomes
 * for PQconnectStartParams: keepalives and tcp_user_timeout added only
 * where the string does not set them, host= names paired with the
 * addresses resolve found (hostaddr=), sockets and numeric hosts left to
 * libpq.  Links only conninfo.o (and xmalloc.o, buf.o).
 */
#include "conninfo.h"
#include "testlib.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct conninfo_tcp tcp = {
	.keepalives_idle = 5, .keepalives_interval = 2, .keepalives_count = 3,
	.user_timeout_ms = 7000};

/* The value of KEYWORD in P, or NULL. */
static const char *
val(const struct conninfo_params *p, const char *keyword)
{
	const char *v = NULL;
	int seen = 0;

	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->keywords[i], keyword)) {
			v = p->values[i];
			seen++;
		}
	ck_assert_msg(seen <= 1, "%s given %d times", keyword, seen);
	return v;
}

static struct conninfo *
parse(const char *s)
{
	char *err = NULL;
	struct conninfo *ci = conninfo_parse(s, &err);

	ck_assert_msg(ci != NULL, "%s: %s", s, err);
	return ci;
}

static struct conninfo_params *
params(const struct conninfo *ci, const struct resolve_answer *a, int n)
{
	char *err = NULL;
	struct conninfo_params *p = conninfo_params(ci, &tcp, a, n, &err);

	ck_assert_msg(p != NULL, "conninfo_params: %s", err);
	ck_assert_ptr_null(p->keywords[p->n]);
	return p;
}

START_TEST(test_keepalives_added_when_unset)
{
	struct conninfo *ci = parse("host=/tmp dbname=jobs");
	struct conninfo_params *p = params(ci, NULL, 0);
	const char *const *names;

	ck_assert_int_eq(conninfo_names(ci, &names), 0);
	ck_assert_str_eq(val(p, "dbname"), "jobs");
	ck_assert_str_eq(val(p, "host"), "/tmp");
	ck_assert_ptr_null(val(p, "hostaddr"));
	ck_assert_str_eq(val(p, "keepalives"), "1");
	ck_assert_str_eq(val(p, "keepalives_idle"), "5");
	ck_assert_str_eq(val(p, "keepalives_interval"), "2");
	ck_assert_str_eq(val(p, "keepalives_count"), "3");
	ck_assert_str_eq(val(p, "tcp_user_timeout"), "7000");
	conninfo_params_free(p);
	conninfo_free(ci);
}
END_TEST

START_TEST(test_settings_of_database_win_also_in_uris)
{
	struct conninfo *ci =
	    parse("postgresql://10.0.0.1:6000/jobs?keepalives_idle=30&tcp_user_timeout=0&sslmode=require");
	struct conninfo_params *p = params(ci, NULL, 0);

	ck_assert_str_eq(val(p, "keepalives_idle"), "30");
	ck_assert_str_eq(val(p, "tcp_user_timeout"), "0");
	ck_assert_str_eq(val(p, "keepalives_count"), "3");
	ck_assert_str_eq(val(p, "sslmode"), "require");
	ck_assert_str_eq(val(p, "host"), "10.0.0.1");
	ck_assert_str_eq(val(p, "port"), "6000");
	conninfo_params_free(p);
	conninfo_free(ci);
}
END_TEST

START_TEST(test_names_get_their_addresses_sockets_and_numbers_do_not)
{
	struct conninfo *ci = parse("host=db1.example,/run/pg,127.0.0.1,db2.example,db1.example "
				    "port=5432,5433,5434,5435,5436 target_session_attrs=read-write");
	const char *const *names;
	const char *a1[] = {"192.0.2.1", "2001:db8::1"}, *a2[] = {"192.0.2.2"};
	struct resolve_answer answers[] = {
	    {.name = "db1.example", .addrs = a1, .naddrs = 2},
	    {.name = "db2.example", .addrs = a2, .naddrs = 1},
	};
	struct conninfo_params *p;

	ck_assert_int_eq(conninfo_names(ci, &names), 2);
	ck_assert_str_eq(names[0], "db1.example");
	ck_assert_str_eq(names[1], "db2.example");
	p = params(ci, answers, 2);
	ck_assert_str_eq(val(p, "host"),
	    "db1.example,db1.example,/run/pg,127.0.0.1,db2.example,db1.example,db1.example");
	ck_assert_str_eq(val(p, "hostaddr"),
	    "192.0.2.1,2001:db8::1,,127.0.0.1,192.0.2.2,192.0.2.1,2001:db8::1");
	ck_assert_str_eq(val(p, "port"), "5432,5432,5433,5434,5435,5436,5436");
	ck_assert_str_eq(val(p, "target_session_attrs"), "read-write");
	conninfo_params_free(p);
	conninfo_free(ci);
}
END_TEST

START_TEST(test_unresolved_name_is_skipped_none_left_is_an_error)
{
	struct conninfo *ci = parse("host=gone.example,db.example port=5432");
	const char *a[] = {"192.0.2.9"};
	struct resolve_answer some[] = {
	    {.name = "gone.example", .error = "Domain name not found"},
	    {.name = "db.example", .addrs = a, .naddrs = 1},
	};
	struct resolve_answer none[] = {
	    {.name = "gone.example", .error = "Domain name not found"},
	    {.name = "db.example", .error = "Timeout while contacting DNS servers"},
	};
	struct conninfo_params *p = params(ci, some, 2);
	char *err = NULL;

	ck_assert_str_eq(val(p, "host"), "db.example");
	ck_assert_str_eq(val(p, "hostaddr"), "192.0.2.9");
	ck_assert_str_eq(val(p, "port"), "5432");
	conninfo_params_free(p);
	ck_assert_ptr_null(conninfo_params(ci, &tcp, none, 2, &err));
	ck_assert_str_eq(err, "cannot resolve gone.example: Domain name not found; "
			      "db.example: Timeout while contacting DNS servers");
	free(err);
	conninfo_free(ci);
}
END_TEST

START_TEST(test_hostaddr_given_means_no_lookup)
{
	struct conninfo *ci = parse("host=db.example hostaddr=192.0.2.5");
	const char *const *names;

	ck_assert_int_eq(conninfo_names(ci, &names), 0);
	conninfo_free(ci);
}
END_TEST

START_TEST(test_pghost_from_the_environment_is_resolved_too)
{
	struct conninfo *ci;
	const char *const *names;

	setenv("PGHOST", "envdb.example", 1);
	unsetenv("PGHOSTADDR");
	ci = parse("dbname=jobs");
	ck_assert_int_eq(conninfo_names(ci, &names), 1);
	ck_assert_str_eq(names[0], "envdb.example");
	conninfo_free(ci);
}
END_TEST

START_TEST(test_bad_string_is_refused_with_libpq_message)
{
	char *err = NULL;

	ck_assert_ptr_null(conninfo_parse("host=a nosuchkey=1", &err));
	ck_assert_msg(strstr(err, "nosuchkey") != NULL, "message: %s", err);
	free(err);
}
END_TEST

static Suite *
conninfo_suite(void)
{
	Suite *s = suite_create("conninfo");
	TCase *tc = tcase_create("conninfo");

	tcase_add_test(tc, test_keepalives_added_when_unset);
	tcase_add_test(tc, test_settings_of_database_win_also_in_uris);
	tcase_add_test(tc, test_names_get_their_addresses_sockets_and_numbers_do_not);
	tcase_add_test(tc, test_unresolved_name_is_skipped_none_left_is_an_error);
	tcase_add_test(tc, test_hostaddr_given_means_no_lookup);
	tcase_add_test(tc, test_pghost_from_the_environment_is_resolved_too);
	tcase_add_test(tc, test_bad_string_is_refused_with_libpq_message);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(conninfo_suite());
}
