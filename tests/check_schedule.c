/*
 * check_schedule: recurring jobs fired by the real daemons against the
 * throwaway cluster.  Every daemon here polls once an hour, so whatever
 * happens on time happens by the schedule timer and by NOTIFY.
 *
 * The measured delay from a slot to its job's enqueue (created_at - slot)
 * is printed by the four-daemon test as "enqueue delay after the slot".
 */
#include "testlib.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READY_MS 20000 /* start to "ready:" (ASan, a busy machine) */
#define SLOT_MS 5000   /* a slot due now, to its job */

#define DAEMON_CONFIG                                                                            \
	"poll_interval = 1h\nheartbeat = 500ms\nlease = 2s\nkill_grace = 500ms\n"                 \
	"[handler.tick]\ncommand = /bin/true\n"                                                   \
	"[handler.env]\ncommand = /usr/bin/env\n"                                                 \
	"[handler.env2]\ncommand = /usr/bin/env\n"                                                \
	"[handler.slow]\ncommand = /bin/sleep 2\n"

static char *
fresh_db(const char *name)
{
	char *cfg = t_config(DAEMON_CONFIG);

	t_use_fresh_db(name);
	t_migrate(cfg, NULL, NULL);
	return cfg;
}

static struct t_daemon *
start(const char *cfg)
{
	struct t_daemon *d = t_daemon_start(cfg, NULL);

	t_daemon_wait_log(d, "ready: worker", READY_MS);
	return d;
}

/* Wait until the SQL made from FMT (one boolean as text) is true. */
static void __attribute__((format(printf, 3, 4)))
wait_true(PGconn *c, int timeout_ms, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	t_wait_value(c, "true", timeout_ms, sql);
}

/* How many times the log text LOG says slot SLOT of schedule NAME was
 * enqueued. */
static int
count_fired(const char *log, const char *name, const char *slot)
{
	char needle[256];
	int n = 0;

	snprintf(needle, sizeof needle, "schedule %s slot %s: job ", name, slot);
	for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define NDAEMONS 4
#define NSLOTS 30

START_TEST(test_four_daemons_one_job_per_slot_through_sigkill_and_restart)
{
	char *cfg = fresh_db("pgjobd_sch_four");
	struct t_daemon *d[NDAEMONS];
	char *logs[NDAEMONS + 2] = {0};
	int nlogs = 0;
	PGconn *c;
	long long first;
	char *delays;

	for (int i = 0; i < NDAEMONS; i++)
		d[i] = start(cfg);
	c = t_connect();
	/* missed = all: a slot fired late still gets its own job, so the
	 * count below proves one job per slot, not a lucky timing. */
	first = t_int(c, "SELECT extract(epoch FROM pgjobd.schedule('tick', '* * * * * *', 'tick', "
			 "missed => 'all'))::bigint",
	    NULL);
	wait_true(c, 20000, "SELECT coalesce(last_run >= to_timestamp(%lld + 9), false)::text "
			    "FROM pgjobd.schedules", first);
	/* Two of the four die at once, mid-run, whatever they were doing. */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(t_daemon_signal(d[i], SIGKILL, true, 10000), 128 + SIGKILL);
		logs[nlogs++] = t_daemon_log(d[i]);
		t_daemon_stop(d[i]);
	}
	wait_true(c, 20000, "SELECT coalesce(last_run >= to_timestamp(%lld + 14), false)::text "
			    "FROM pgjobd.schedules", first);
	for (int i = 0; i < 2; i++)
		d[i] = start(cfg);
	wait_true(c, 30000, "SELECT coalesce(last_run >= to_timestamp(%lld + 29), false)::text "
			    "FROM pgjobd.schedules", first);

	/* Exactly one job per slot of the 30. */
	{
		char sql[512];
		snprintf(sql, sizeof sql,
		    "SELECT count(*) || ' ' || count(DISTINCT idempotency_key) FROM pgjobd.jobs "
		    "WHERE substr(idempotency_key, 11)::timestamptz BETWEEN to_timestamp(%lld) AND "
		    "to_timestamp(%lld + %d)",
		    first, first, NSLOTS - 1);
		char *n = t_str(c, sql, NULL);
		ck_assert_str_eq(n, "30 30");
		free(n);
	}
	for (int i = 0; i < NDAEMONS; i++) {
		ck_assert_int_eq(t_daemon_signal(d[i], SIGTERM, true, 30000), 0);
		logs[nlogs++] = t_daemon_log(d[i]);
		t_daemon_stop(d[i]);
	}
	/* And no slot was fired twice (the idempotency key would hide a
	 * second enqueue in the count; the logs do not). */
	for (int s = 0; s < NSLOTS; s++) {
		char slot[32];
		int fired = 0;
		char sql[256];
		char *text;

		snprintf(sql, sizeof sql,
		    "SELECT to_char(to_timestamp(%lld + %d) AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
		    first, s);
		text = t_str(c, sql, NULL);
		snprintf(slot, sizeof slot, "%s", text);
		free(text);
		for (int i = 0; i < nlogs; i++)
			fired += count_fired(logs[i], "tick", slot);
		ck_assert_msg(fired <= 1, "slot %s was fired %d times", slot, fired);
	}
	/* On time: enqueued within a second of its slot (p99). */
	{
		char sql[512];
		snprintf(sql, sizeof sql,
		    "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d))::int || ' ' || "
		    "round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d))::int || ' ' || "
		    "round(max(d))::int FROM (SELECT extract(epoch FROM created_at - "
		    "substr(idempotency_key, 11)::timestamptz) * 1000 AS d FROM pgjobd.jobs "
		    "WHERE idempotency_key LIKE 'cron:tick:%%' AND "
		    "substr(idempotency_key, 11)::timestamptz <= to_timestamp(%lld + %d)) x",
		    first, NSLOTS - 1);
		delays = t_str(c, sql, NULL);
	}
	{
		int p50, p99, max;
		ck_assert_int_eq(sscanf(delays, "%d %d %d", &p50, &p99, &max), 3);
		printf("enqueue delay after the slot (ms, 4 daemons, 2 SIGKILLed): p50 %d, p99 %d, "
		       "max %d\n",
		    p50, p99, max);
		ck_assert_msg(p99 < 1000, "p99 enqueue delay %d ms", p99);
	}
	free(delays);
	for (int i = 0; i < nlogs; i++)
		free(logs[i]);
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

/* The count SQL returns. */
static long long
count(PGconn *c, const char *sql)
{
	return t_int(c, sql, NULL);
}

START_TEST(test_schedule_created_changed_disabled_removed_while_daemons_run)
{
	char *cfg = fresh_db("pgjobd_sch_change");
	struct t_daemon *a = start(cfg), *b = start(cfg);
	PGconn *c = t_connect();
	long long n;
	char *env, *key;

	/* Created: the first slot is at most a second away, and only NOTIFY
	 * can arm the daemons' timers (they poll once an hour). */
	PQclear(t_exec(c, "SELECT pgjobd.schedule('e', '@every 1s', 'env', '{\"v\": 1}')", NULL));
	t_wait_value(c, "true", SLOT_MS,
	    "SELECT (count(*) > 0)::text FROM pgjobd.jobs WHERE type = 'env' AND state = 'done'");
	/* The handler sees its schedule and slot. */
	key = t_str(c, "SELECT idempotency_key FROM pgjobd.jobs WHERE state = 'done' ORDER BY id LIMIT 1",
	    NULL);
	env = t_str(c, "SELECT result FROM pgjobd.jobs WHERE state = 'done' ORDER BY id LIMIT 1", NULL);
	ck_assert_msg(strstr(env, "PGJOBD_SCHEDULE=e\n") != NULL, "env: %s", env);
	{
		char want[128];
		snprintf(want, sizeof want, "PGJOBD_SCHEDULED_AT=%s\n", key + strlen("cron:e:"));
		ck_assert_msg(strstr(env, want) != NULL, "env has no %s: %s", want, env);
	}
	free(env);
	free(key);

	/* Changed: the next slots run the new type and payload. */
	PQclear(t_exec(c, "SELECT pgjobd.schedule('e', '@every 1s', 'env2', '{\"v\": 2}')", NULL));
	t_wait_value(c, "true", SLOT_MS,
	    "SELECT (count(*) > 0)::text FROM pgjobd.jobs WHERE type = 'env2' AND "
	    "payload = '{\"v\": 2}'");

	/* Disabled: no more jobs of it, while another schedule runs on. */
	PQclear(t_exec(c, "SELECT pgjobd.schedule_disable('e')", NULL));
	n = count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:e:%'");
	PQclear(t_exec(c, "SELECT pgjobd.schedule('marker', '@every 1s', 'tick')", NULL));
	t_wait_value(c, "true", SLOT_MS * 2,
	    "SELECT (count(*) >= 2)::text FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:marker:%'");
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:e:%'"),
	    n);
	/* Enabled again: it runs again. */
	PQclear(t_exec(c, "SELECT pgjobd.schedule_enable('e')", NULL));
	{
		char sql[256];
		snprintf(sql, sizeof sql,
		    "SELECT (count(*) > %lld)::text FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:e:%%'",
		    n);
		t_wait_value(c, "true", SLOT_MS, sql);
	}
	/* Removed: no more jobs of it. */
	PQclear(t_exec(c, "SELECT pgjobd.unschedule('e')", NULL));
	n = count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:e:%'");
	{
		long long m = count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE "
				       "'cron:marker:%'");
		char sql[256];
		snprintf(sql, sizeof sql,
		    "SELECT (count(*) >= %lld + 2)::text FROM pgjobd.jobs WHERE idempotency_key "
		    "LIKE 'cron:marker:%%'",
		    m);
		t_wait_value(c, "true", SLOT_MS * 2, sql);
	}
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:e:%'"),
	    n);
	ck_assert_int_eq(t_daemon_stop(a), 0);
	ck_assert_int_eq(t_daemon_stop(b), 0);
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

START_TEST(test_downtime_each_missed_policy)
{
	char *cfg = fresh_db("pgjobd_sch_down");
	PGconn *c = t_connect();
	struct t_daemon *d;
	char *s;

	/* Twice a year; no daemon has run since 2025: four slots passed. */
	PQclear(t_exec(c,
	    "SELECT pgjobd.schedule(m, '0 0 1 1,7 *', 'tick', missed => m) "
	    "FROM unnest('{skip,once,all}'::text[]) m",
	    NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2025-01-01 00:00Z'", NULL));
	d = start(cfg);
	t_wait_value(c, "3", SLOT_MS, "SELECT count(*) FROM pgjobd.schedules WHERE next_run > now()");
	s = t_str(c,
	    "SELECT string_agg(s.name || '=' || (SELECT count(*) FROM pgjobd.jobs j WHERE "
	    "j.idempotency_key LIKE 'cron:' || s.name || ':%'), ' ' ORDER BY s.name) "
	    "FROM pgjobd.schedules s",
	    NULL);
	ck_assert_str_eq(s, "all=4 once=1 skip=0");
	free(s);
	s = t_str(c, "SELECT string_agg(idempotency_key, ' ' ORDER BY id) FROM pgjobd.jobs WHERE "
		     "idempotency_key LIKE 'cron:once:%'", NULL);
	ck_assert_str_eq(s, "cron:once:2026-07-01T00:00:00Z");
	free(s);
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.schedules WHERE "
				  "missed_from = '2025-01-01 00:00Z' AND next_run = '2027-01-01 00:00Z'"),
	    3);
	t_daemon_wait_log(d, "schedule skip: late since slot 2025-01-01T00:00:00Z", SLOT_MS);
	ck_assert_int_eq(t_daemon_stop(d), 0);
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

START_TEST(test_overlap_skip_waits_for_the_running_handler)
{
	char *cfg = fresh_db("pgjobd_sch_overlap");
	struct t_daemon *d = start(cfg);
	PGconn *c = t_connect();

	/* Every second, but each run takes two. */
	PQclear(t_exec(c, "SELECT pgjobd.schedule('o', '@every 1s', 'slow', overlap => 'skip')", NULL));
	t_wait_value(c, "true", SLOT_MS * 2,
	    "SELECT (count(*) >= 2 AND max(skipped_slots) >= 1)::text FROM pgjobd.jobs, "
	    "pgjobd.schedules");
	/* No job was enqueued while the one before was ready or running. */
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.jobs a JOIN pgjobd.jobs b ON b.id > a.id "
				  "WHERE b.created_at < coalesce(a.finished_at, 'infinity') - interval '100 ms'"),
	    0);
	t_daemon_wait_log(d, "skipped, job 1 is still ready or running", SLOT_MS);
	ck_assert_int_eq(t_daemon_stop(d), 0);
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

START_TEST(test_downgrade_to_4_drops_the_schedules_and_keeps_their_jobs)
{
	char *cfg = fresh_db("pgjobd_sch_migrate");
	PGconn *c = t_connect();
	/* At a fixed slot (the firing's clock given), whatever the time now. */
	const char *fire = "SELECT count(*) FROM pgjobd._schedule_fire('{default}', "
			   "'2026-11-30 01:00Z') WHERE kind = 'f'";

	PQclear(t_exec(c, "SELECT pgjobd.schedule('d', '0 * * * *', 'tick')", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2026-11-30 01:00Z'", NULL));
	ck_assert_int_eq(count(c, fire), 1);
	t_migrate(cfg, "4", "schema version 4\n");
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key LIKE "
				  "'cron:d:%'"), 1);
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pg_class WHERE relnamespace = "
				  "'pgjobd'::regnamespace AND relname LIKE 'schedule%'"), 0);
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pg_proc WHERE pronamespace = "
				  "'pgjobd'::regnamespace AND (proname LIKE '%sched%' OR "
				  "proname LIKE '%cron%' OR prosrc LIKE '%_role(''daemon'')%')"), 0);
	/* Up again: the same slot is the same job (its key), not a second. */
	t_migrate(cfg, NULL, T_MIGRATED);
	PQclear(t_exec(c, "SELECT pgjobd.schedule('d', '0 * * * *', 'tick')", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2026-11-30 01:00Z'", NULL));
	ck_assert_int_eq(count(c, fire), 1);
	ck_assert_int_eq(count(c, "SELECT count(*) FROM pgjobd.jobs"), 1);
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("schedule");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_four_daemons_one_job_per_slot_through_sigkill_and_restart);
	tcase_add_test(tc, test_schedule_created_changed_disabled_removed_while_daemons_run);
	tcase_add_test(tc, test_downtime_each_missed_policy);
	tcase_add_test(tc, test_overlap_skip_waits_for_the_running_handler);
	tcase_add_test(tc, test_downgrade_to_4_drops_the_schedules_and_keeps_their_jobs);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
