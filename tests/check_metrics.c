/*
 * check_metrics: the Prometheus exposition of src/metrics.c without a
 * daemon, checked line by line by the strict reader of tests/promtext.c:
 * the numbers after known events, a series for every outcome, escaped
 * label values, the cap on job types; and metrics_listen validated (numeric
 * addresses and paths only, a bad one reported at its line).  What the
 * daemon serves over HTTP is check_metrics_http.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg.h"
#include "metrics.h"
#include "outcome.h"
#include "promtext.h"
#include "testlib.h"

/* ---- the registry and its text, without a daemon ---- */

START_TEST(test_exposition_parses_and_counts)
{
	struct buf out = {0};

	metrics_reset();
	metrics_declare_type("mail");
	metrics_declare_type("idle");
	for (int i = 0; i < 3; i++)
		metrics_job_finished("mail", "done");
	metrics_job_finished("mail", "dead");
	metrics_job_finished("mail", "no-such-outcome"); /* ignored, not a new series */
	metrics_handler_duration("mail", 0.003);
	metrics_handler_duration("mail", 7);
	metrics_handler_duration("mail", 99999);
	metrics_spawn_failure("mail");
	metrics_pickup_delay(-1); /* clocks: counted as 0 */
	metrics_exchange_duration(0.002);
	metrics_lease_lost();
	metrics_db_up(true);
	metrics_db_up(false);
	metrics_db_up(true);
	metrics_handlers(2, 8);
	metrics_render(&out);
	prom_assert_text(out.p);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"mail\",outcome=\"done\"}"), 3);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"mail\",outcome=\"dead\"}"), 1);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"idle\",outcome=\"done\"}"), 0);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"0.005\"}"), 1);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"10\"}"), 2);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"3600\"}"), 2);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"+Inf\"}"), 3);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_handler_duration_seconds_count{type=\"mail\"}"),
	                    3);
	ck_assert_double_eq_tol(prom_metric(out.p, "pgjobd_handler_duration_seconds_sum{type=\"mail\"}"),
	                        100006.003, 1e-6);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_spawn_failures_total{type=\"mail\"}"), 1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_pickup_delay_seconds_bucket{le=\"0.001\"}"), 1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_exchange_duration_seconds_bucket{le=\"0.0025\"}"),
	                    1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_exchange_duration_seconds_bucket{le=\"0.001\"}"),
	                    0);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_leases_lost_total"), 1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_db_reconnects_total"), 1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_db_up"), 1);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_handlers_running"), 2);
	ck_assert_double_eq(prom_metric(out.p, "pgjobd_slots"), 8);
	free(out.p);
	metrics_reset();
}
END_TEST

START_TEST(test_every_outcome_has_its_series)
{
	struct buf out = {0};
	char series[128];

	metrics_reset();
	for (int k = 0; k < OUTCOME_KINDS; k++)
		metrics_job_finished("t", outcome_names[k]);
	metrics_render(&out);
	for (int k = 0; k < OUTCOME_KINDS; k++) {
		snprintf(series, sizeof series,
		         "pgjobd_jobs_finished_total{type=\"t\",outcome=\"%s\"}", outcome_names[k]);
		ck_assert_msg(prom_metric(out.p, series) == 1, "%s is not counted", series);
	}
	free(out.p);
	metrics_reset();
}
END_TEST

START_TEST(test_label_values_are_escaped)
{
	struct buf out = {0};

	metrics_reset();
	metrics_job_finished("a\"b\\c\nd", "done");
	metrics_render(&out);
	prom_assert_text(out.p);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"a\\\"b\\\\c\\nd\",outcome=\"done\"}"),
	    1);
	free(out.p);
	metrics_reset();
}
END_TEST

START_TEST(test_types_past_the_cap_share_one_series)
{
	struct buf out = {0};
	char type[32];

	metrics_reset();
	for (int i = 0; i < METRICS_MAX_TYPES + 50; i++) {
		snprintf(type, sizeof type, "t%d", i);
		metrics_job_finished(type, "done");
	}
	metrics_render(&out);
	prom_assert_text(out.p);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"t0\",outcome=\"done\"}"), 1);
	ck_assert_double_eq(
	    prom_metric(out.p, "pgjobd_jobs_finished_total{type=\"_other\",outcome=\"done\"}"), 50);
	snprintf(type, sizeof type, "t%d", METRICS_MAX_TYPES);
	ck_assert_ptr_null(strstr(out.p, type));
	free(out.p);
	metrics_reset();
}
END_TEST

START_TEST(test_metrics_listen_accepts_numeric_addresses_and_paths_only)
{
	static const char *const good[] = {"127.0.0.1:9464", "0.0.0.0:1", "[::1]:9464",
	                                   "[::]:65535", "/run/pgjobd/metrics.sock"};
	static const char *const bad[] = {"localhost:9464",  "127.0.0.1",    "127.0.0.1:0",
	                                  "127.0.0.1:65536", "127.0.0.1:9x", "::1:9464",
	                                  "[::1]9464",       "[::1]:",       "relative.sock",
	                                  "1.2.3:80",        ":9464"};
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;
	char longpath[200];

	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		ck_assert_msg(cfg_parse_listen(good[i], &ss, &len, &err) == 0, "%s refused: %s",
		              good[i], err);
	ck_assert_int_eq(cfg_parse_listen("[::1]:9464", &ss, &len, &err), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 9464);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(cfg_parse_listen(bad[i], &ss, &len, &err) < 0, "%s accepted", bad[i]);
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	ck_assert_int_lt(cfg_parse_listen(longpath, &ss, &len, &err), 0);
}
END_TEST

START_TEST(test_bad_metrics_listen_is_reported_at_its_line)
{
	char *path = t_write_temp(".ini", "[pgjobd]\n\nmetrics_listen = localhost:9464\n");
	char *errors = NULL, *want;
	struct cfg *c = cfg_load(path, &errors);

	ck_assert_ptr_null(c);
	ck_assert_int_ne(
	    asprintf(&want, "%s:3: metrics_listen: bad address 'localhost:9464'", path), -1);
	ck_assert_msg(strstr(errors, want), "errors: %s", errors);
	free(want);
	free(errors);
	unlink(path);
	free(path);
	path = t_write_temp(".ini", "[pgjobd]\nmetrics_listen =\n");
	c = cfg_load(path, &errors);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->metrics_listen, "");
	cfg_free(c);
	unlink(path);
	free(path);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("exposition");

	tcase_add_test(tc, test_exposition_parses_and_counts);
	tcase_add_test(tc, test_every_outcome_has_its_series);
	tcase_add_test(tc, test_label_values_are_escaped);
	tcase_add_test(tc, test_types_past_the_cap_share_one_series);
	tcase_add_test(tc, test_metrics_listen_accepts_numeric_addresses_and_paths_only);
	tcase_add_test(tc, test_bad_metrics_listen_is_reported_at_its_line);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
