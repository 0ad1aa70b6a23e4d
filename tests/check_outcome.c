/*
 * check_outcome: the outcome policy of CONTRACT section 6 (src/outcome.c),
 * a pure function of the finished process, its handler and its attempt.
 */
#include <check.h>
#include <signal.h>
#include <string.h>

#include "outcome.h"
#include "testlib.h"

static struct cfg_handler
handler(void)
{
	struct cfg_handler h = {.backoff_ms = 10000, .backoff_max_ms = 3600000};

	h.dead_exit[65 / 8] |= 1 << (65 % 8); /* the default: 65 (EX_DATAERR) */
	return h;
}

static struct spawn_result
exited(int code)
{
	return (struct spawn_result){.exited = true, .exit_code = code};
}

static struct outcome
decide(struct spawn_result r, int attempt, int max_attempts, bool shutdown)
{
	struct cfg_handler h = handler();
	struct outcome_ctx c = {.h = &h, .attempt = attempt, .max_attempts = max_attempts,
	    .timeout_ms = 2000, .shutdown = shutdown, .jitter = 0.5};
	struct outcome o;

	outcome_of_exit(&r, &c, &o);
	return o;
}

START_TEST(test_exit_zero_is_done_even_when_stopping)
{
	struct outcome o = decide(exited(0), 1, 5, false);

	ck_assert_int_eq(o.kind, OUTCOME_DONE);
	ck_assert(o.has_exit);
	ck_assert_str_eq(o.reason, "");
	ck_assert_int_eq(decide(exited(0), 1, 5, true).kind, OUTCOME_DONE);
}
END_TEST

START_TEST(test_nonzero_exit_retries_while_attempts_remain_then_dies)
{
	struct outcome o = decide(exited(3), 1, 2, false);

	ck_assert_int_eq(o.kind, OUTCOME_RETRY);
	ck_assert_int_eq(o.delay_ms, 10000);
	ck_assert_str_eq(o.reason, "exit code 3");
	o = decide(exited(3), 2, 2, false);
	ck_assert_int_eq(o.kind, OUTCOME_DEAD);
	ck_assert_int_eq(o.exit_code, 3);
}
END_TEST

START_TEST(test_dead_exit_code_is_dead_at_once)
{
	struct outcome o = decide(exited(65), 1, 5, false);

	ck_assert_int_eq(o.kind, OUTCOME_DEAD);
	ck_assert_str_eq(o.reason, "exit code 65 is in dead_exit_codes");
}
END_TEST

START_TEST(test_signal_and_timeout_are_failures_with_their_reason)
{
	struct spawn_result r = {.exited = false, .signal = SIGSEGV};
	struct outcome o = decide(r, 1, 5, false);

	ck_assert_int_eq(o.kind, OUTCOME_RETRY);
	ck_assert(!o.has_exit);
	ck_assert_int_eq(o.signal, SIGSEGV);
	ck_assert_ptr_nonnull(strstr(o.reason, "killed by signal 11"));
	r = (struct spawn_result){.exited = false, .signal = SIGTERM, .killed = SPAWN_KILL_TIMEOUT};
	o = decide(r, 5, 5, false);
	ck_assert_int_eq(o.kind, OUTCOME_DEAD);
	ck_assert_str_eq(o.reason, "timed out after 2.000s");
}
END_TEST

START_TEST(test_failure_while_stopping_is_handed_back)
{
	struct spawn_result r = {.exited = false, .signal = SIGTERM, .killed = SPAWN_KILL_REQUEST};

	ck_assert_int_eq(decide(r, 1, 5, true).kind, OUTCOME_RELEASE);
	ck_assert_int_eq(decide(exited(1), 5, 5, true).kind, OUTCOME_RELEASE);
}
END_TEST

START_TEST(test_strays_are_named_in_the_reason)
{
	struct spawn_result r = exited(0);

	r.killed = SPAWN_KILL_STRAYS;
	ck_assert_str_eq(decide(r, 1, 5, false).reason, "left processes behind (killed)");
	r = exited(2);
	r.killed = SPAWN_KILL_STRAYS;
	ck_assert_str_eq(decide(r, 1, 5, false).reason, "exit code 2; left processes behind (killed)");
}
END_TEST

START_TEST(test_backoff_doubles_up_to_the_cap_within_ten_percent_jitter)
{
	struct cfg_handler h = handler();

	ck_assert_int_eq(outcome_backoff_ms(&h, 1, 0.5), 10000);
	ck_assert_int_eq(outcome_backoff_ms(&h, 2, 0.5), 20000);
	ck_assert_int_eq(outcome_backoff_ms(&h, 4, 0.5), 80000);
	ck_assert_int_eq(outcome_backoff_ms(&h, 30, 0.5), 3600000);
	ck_assert_int_eq(outcome_backoff_ms(&h, 1, 0.0), 9000);
	ck_assert_int_eq(outcome_backoff_ms(&h, 1, 1.0), 11000);
}
END_TEST

START_TEST(test_start_failure_retries_and_unusable_payload_is_dead)
{
	struct cfg_handler h = handler();
	struct outcome_ctx c = {.h = &h, .attempt = 1, .max_attempts = 2, .jitter = 0.5};
	struct outcome o;

	outcome_failed(&c, "cannot start /x: No such file or directory", &o);
	ck_assert_int_eq(o.kind, OUTCOME_RETRY);
	ck_assert(!o.has_exit);
	ck_assert_str_eq(o.reason, "cannot start /x: No such file or directory");
	outcome_unusable("payload \"args\" is not an array of strings", &o);
	ck_assert_int_eq(o.kind, OUTCOME_DEAD);
	ck_assert_str_eq(outcome_names[OUTCOME_RELEASE], "release");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("outcome");
	TCase *tc = tcase_create("policy");

	tcase_add_test(tc, test_exit_zero_is_done_even_when_stopping);
	tcase_add_test(tc, test_nonzero_exit_retries_while_attempts_remain_then_dies);
	tcase_add_test(tc, test_dead_exit_code_is_dead_at_once);
	tcase_add_test(tc, test_signal_and_timeout_are_failures_with_their_reason);
	tcase_add_test(tc, test_failure_while_stopping_is_handed_back);
	tcase_add_test(tc, test_strays_are_named_in_the_reason);
	tcase_add_test(tc, test_backoff_doubles_up_to_the_cap_within_ten_percent_jitter);
	tcase_add_test(tc, test_start_failure_retries_and_unusable_payload_is_dead);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
