/*
 * check_resolve: unit tests of src/resolve.c, c-ares on a libev loop.
 * Only names that need no DNS server (/etc/hosts' localhost, numeric
 * addresses), so that the suite does not depend on the network; a DNS
 * server that never answers is check_net's.  Links resolve.o (with log.o,
 * xmalloc.o).
 */
#include "resolve.h"
#include "testlib.h"

#include <check.h>
#include <ev.h>
#include <stdbool.h>
#include <string.h>

struct got {
	int calls, n;
	bool has_loopback, numeric_kept;
	char error[128];
};

static void
done_cb(void *arg, const struct resolve_answer *answers, int n)
{
	struct got *g = arg;

	g->calls++;
	g->n = n;
	for (int i = 0; i < n; i++) {
		if (answers[i].error)
			snprintf(g->error, sizeof g->error, "%s: %s", answers[i].name, answers[i].error);
		for (int k = 0; k < answers[i].naddrs; k++) {
			if (!strcmp(answers[i].name, "localhost") &&
			    (!strcmp(answers[i].addrs[k], "127.0.0.1") || !strcmp(answers[i].addrs[k], "::1")))
				g->has_loopback = true;
			if (!strcmp(answers[i].name, "192.0.2.7") && !strcmp(answers[i].addrs[k], "192.0.2.7"))
				g->numeric_kept = true;
		}
	}
}

static void
deadline_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	*(bool *)w->data = true;
}

/* Run LOOP until G has been called, at most 10 s. */
static void
run_until_called(struct ev_loop *loop, const struct got *g)
{
	bool expired = false;
	ev_timer t;

	ev_now_update(loop);
	ev_timer_init(&t, deadline_cb, 10., 0.);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (g->calls == 0 && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	ck_assert_msg(g->calls > 0, "no answer after 10 s");
	ev_run(loop, EVRUN_NOWAIT); /* a second call would show now */
}

START_TEST(test_hosts_file_and_numeric_names_answer_from_the_loop)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolve *r = resolve_new(loop);
	const char *names[] = {"localhost", "192.0.2.7"};
	struct got g = {0};

	resolve_start(r, names, 2, done_cb, &g);
	/* Even an answer known at once comes from the loop, never from
	 * inside resolve_start (whose caller is mid-transition). */
	ck_assert_int_eq(g.calls, 0);
	run_until_called(loop, &g);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.n, 2);
	ck_assert_msg(g.error[0] == '\0', "%s", g.error);
	ck_assert(g.has_loopback);
	ck_assert(g.numeric_kept);
	resolve_free(r);
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(test_cancelled_or_replaced_batch_never_answers)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolve *r = resolve_new(loop);
	const char *names[] = {"localhost"};
	struct got cancelled = {0}, replaced = {0}, last = {0};

	resolve_start(r, names, 1, done_cb, &cancelled);
	resolve_cancel(r);
	resolve_start(r, names, 1, done_cb, &replaced);
	resolve_start(r, names, 1, done_cb, &last);
	run_until_called(loop, &last);
	ck_assert_int_eq(cancelled.calls, 0);
	ck_assert_int_eq(replaced.calls, 0);
	ck_assert_int_eq(last.calls, 1);
	ck_assert(last.has_loopback);
	resolve_free(r);
	ev_loop_destroy(loop);
}
END_TEST

static Suite *
resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("resolve");

	tcase_add_test(tc, test_hosts_file_and_numeric_names_answer_from_the_loop);
	tcase_add_test(tc, test_cancelled_or_replaced_batch_never_answers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return t_run_suite(resolve_suite());
}
