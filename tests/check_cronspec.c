/*
 * check_cronspec: recurring jobs in SQL (sql/005_schedules.sql) against
 * the throwaway cluster: the spec and its time zones, table-driven
 * through pgjobd.cron_next; the refusal of every bad argument; and the
 * firing function the daemons call (pgjobd._schedule_fire), driven with
 * an explicit clock so that downtime, missed and overlap policies, the
 * row lock that makes a slot one job, and slots outliving their pruned
 * jobs are proven exactly, without waiting.
 *
 * The schema is installed once by the real binary (`pgjobd --migrate`).
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAIN_DB "pgjobd_cronspec"

static void
setup_database(void)
{
	static bool installed;

	if (installed) {
		setenv("PGDATABASE", MAIN_DB, 1);
		return;
	}
	t_use_fresh_db(MAIN_DB);
	t_migrate(NULL, NULL, NULL);
	installed = true;
}

/* Checked fixture: no schedules, no jobs. */
static void
clear_state(void)
{
	PGconn *c = t_connect();

	PQclear(t_exec(c,
	    "TRUNCATE pgjobd.schedule_defs, pgjobd.live, pgjobd.live_attempts, pgjobd.history, "
	    "pgjobd.attempt_history, pgjobd.workers RESTART IDENTITY",
	    NULL));
	PQfinish(c);
}

/* ---- the spec, table-driven ---- */

struct spec_case {
	const char *what, *cron, *zone, *after;
	int n;
	const char *want; /* UTC, comma-separated */
};

static const struct spec_case spec_cases[] = {
	{"plain minute and hour", "30 2 * * *", "UTC", "2026-01-01 00:00Z", 2,
	    "2026-01-01 02:30:00,2026-01-02 02:30:00"},
	{"list", "15,45 * * * *", "UTC", "2026-01-01 10:00Z", 3,
	    "2026-01-01 10:15:00,2026-01-01 10:45:00,2026-01-01 11:15:00"},
	{"range with step", "0 9-17/4 * * *", "UTC", "2026-01-01 00:00Z", 4,
	    "2026-01-01 09:00:00,2026-01-01 13:00:00,2026-01-01 17:00:00,2026-01-02 09:00:00"},
	{"start with step runs to the field's end", "5/20 * * * *", "UTC", "2026-01-01 10:00Z", 4,
	    "2026-01-01 10:05:00,2026-01-01 10:25:00,2026-01-01 10:45:00,2026-01-01 11:05:00"},
	{"star with step", "*/20 * * * *", "UTC", "2026-01-01 10:00Z", 3,
	    "2026-01-01 10:20:00,2026-01-01 10:40:00,2026-01-01 11:00:00"},
	{"month and weekday names, any case", "0 0 * FEB Mon", "UTC", "2026-01-01 00:00Z", 3,
	    "2026-02-02 00:00:00,2026-02-09 00:00:00,2026-02-16 00:00:00"},
	{"month name list", "0 0 1 jan,JUL *", "UTC", "2026-02-01 00:00Z", 2,
	    "2026-07-01 00:00:00,2027-01-01 00:00:00"},
	{"weekday name range", "0 0 * * mon-fri", "UTC", "2026-01-02 12:00Z", 2,
	    "2026-01-05 00:00:00,2026-01-06 00:00:00"},
	{"weekday 7 is Sunday", "0 0 * * 7", "UTC", "2026-01-01 00:00Z", 2,
	    "2026-01-04 00:00:00,2026-01-11 00:00:00"},
	{"day-of-month and day-of-week both restricted: either", "0 0 13 * fri", "UTC",
	    "2026-02-01 00:00Z", 4,
	    "2026-02-06 00:00:00,2026-02-13 00:00:00,2026-02-20 00:00:00,2026-02-27 00:00:00"},
	{"day-of-month starting with * and a weekday: both", "0 0 */2 * mon", "UTC",
	    "2026-02-01 00:00Z", 3, "2026-02-09 00:00:00,2026-02-23 00:00:00,2026-03-09 00:00:00"},
	{"31st only in long months", "0 0 31 * *", "UTC", "2026-01-01 00:00Z", 3,
	    "2026-01-31 00:00:00,2026-03-31 00:00:00,2026-05-31 00:00:00"},
	{"leap day", "0 12 29 2 *", "UTC", "2026-01-01 00:00Z", 2,
	    "2028-02-29 12:00:00,2032-02-29 12:00:00"},
	{"leading seconds field", "*/15 * * * * *", "UTC", "2026-01-01 10:00Z", 4,
	    "2026-01-01 10:00:15,2026-01-01 10:00:30,2026-01-01 10:00:45,2026-01-01 10:01:00"},
	{"@hourly", "@hourly", "UTC", "2026-01-01 10:30Z", 2, "2026-01-01 11:00:00,2026-01-01 12:00:00"},
	{"@daily", "@daily", "UTC", "2026-01-01 10:30Z", 2, "2026-01-02 00:00:00,2026-01-03 00:00:00"},
	{"@weekly is Sunday midnight", "@weekly", "UTC", "2026-01-01 00:00Z", 1, "2026-01-04 00:00:00"},
	{"@monthly", "@monthly", "UTC", "2026-01-15 00:00Z", 2, "2026-02-01 00:00:00,2026-03-01 00:00:00"},
	{"@yearly", "@yearly", "UTC", "2026-01-15 00:00Z", 1, "2027-01-01 00:00:00"},
	{"@every, aligned on the epoch", "@every 90s", "UTC", "2026-01-01 00:00:10Z", 3,
	    "2026-01-01 00:01:30,2026-01-01 00:03:00,2026-01-01 00:04:30"},
	{"@every with units combined", "@every 1h30m", "Europe/Berlin", "2026-01-01 00:00Z", 2,
	    "2026-01-01 01:30:00,2026-01-01 03:00:00"},
	{"a zone east of UTC by a half hour", "0 9 * * *", "Asia/Kolkata", "2026-01-01 00:00Z", 2,
	    "2026-01-01 03:30:00,2026-01-02 03:30:00"},
	/* Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z);
	 * 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z). */
	{"Berlin spring: the missing 02:30 runs once, at the jump", "30 2 * * *", "Europe/Berlin",
	    "2026-03-28 00:00Z", 3, "2026-03-28 01:30:00,2026-03-29 01:00:00,2026-03-30 00:30:00"},
	{"Berlin spring: every slot of the missing hour is one run", "*/30 * * * *",
	    "Europe/Berlin", "2026-03-29 00:15Z", 3,
	    "2026-03-29 00:30:00,2026-03-29 01:00:00,2026-03-29 01:30:00"},
	{"Berlin autumn: the repeated 02:30 runs once, the first time", "30 2 * * *",
	    "Europe/Berlin", "2026-10-24 00:00Z", 3,
	    "2026-10-24 00:30:00,2026-10-25 00:30:00,2026-10-26 01:30:00"},
	{"Berlin autumn: the repeated hour is not run twice", "*/30 * * * *", "Europe/Berlin",
	    "2026-10-24 23:45Z", 5,
	    "2026-10-25 00:00:00,2026-10-25 00:30:00,2026-10-25 02:00:00,2026-10-25 02:30:00,"
	    "2026-10-25 03:00:00"},
	{"Berlin autumn: from inside the repeated hour", "30 2 * * *", "Europe/Berlin",
	    "2026-10-25 01:10Z", 1, "2026-10-26 01:30:00"},
	/* America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z);
	 * 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z). */
	{"New York spring: the missing 02:30 runs at the jump", "30 2 * * *", "America/New_York",
	    "2026-03-07 00:00Z", 3, "2026-03-07 07:30:00,2026-03-08 07:00:00,2026-03-09 06:30:00"},
	{"New York autumn: the repeated 01:30 runs once", "30 1 * * *", "America/New_York",
	    "2026-10-31 00:00Z", 3, "2026-10-31 05:30:00,2026-11-01 05:30:00,2026-11-02 06:30:00"},
	{"New York: hourly across the autumn change", "0 * * * *", "America/New_York",
	    "2026-11-01 04:30Z", 3, "2026-11-01 05:00:00,2026-11-01 07:00:00,2026-11-01 08:00:00"},
	{"a spec that ends", "0 0 29 2 *", "UTC", "2026-01-01 00:00Z", 1, "2028-02-29 00:00:00"},
	{"never: 30 February", "0 0 30 2 *", "UTC", "2026-01-01 00:00Z", 3, ""},
};
#define NSPEC (int)(sizeof spec_cases / sizeof spec_cases[0])

START_TEST(test_spec_rule)
{
	const struct spec_case *k = &spec_cases[_i];
	char n[16];
	PGconn *c = t_connect();
	char *got;

	snprintf(n, sizeof n, "%d", k->n);
	got = t_str(c,
	    "SELECT coalesce(string_agg(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ','"
	    " ORDER BY t), '') FROM pgjobd.cron_next($1, $2, $3::timestamptz, $4::int) t",
	    k->cron, k->zone, k->after, n, NULL);
	ck_assert_msg(!strcmp(got, k->want), "%s: cron_next('%s', '%s', '%s', %d)\n got  %s\n want %s",
	    k->what, k->cron, k->zone, k->after, k->n, got, k->want);
	free(got);
	PQfinish(c);
}
END_TEST

/* ---- bad arguments ---- */

struct refusal {
	const char *sql, *arg; /* the message names "pgjobd.FN: ARG" */
};

static const struct refusal refusals[] = {
	{"SELECT pgjobd.cron_next('')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next(NULL)", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('* * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('* * * * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('60 * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('* 24 * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('0 0 0 * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('0 0 * 13 *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('0 0 * * 8')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('5-1 * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('*/0 * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('1,,2 * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('x * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('0 0 * foo *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('61 * * * * *')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('@reboot')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('@every 0s')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('@every 5x')", "cron_next: cron"},
	{"SELECT pgjobd.cron_next('* * * * *', 'Mars/Olympus')", "cron_next: time_zone"},
	{"SELECT pgjobd.cron_next('* * * * *', '+03:00')", "cron_next: time_zone"},
	{"SELECT pgjobd.cron_next('* * * * *', NULL)", "cron_next: time_zone"},
	{"SELECT pgjobd.cron_next('* * * * *', 'UTC', NULL)", "cron_next: after"},
	{"SELECT pgjobd.cron_next('* * * * *', 'UTC', 'infinity')", "cron_next: after"},
	{"SELECT pgjobd.cron_next('* * * * *', 'UTC', now(), 0)", "cron_next: n"},
	{"SELECT pgjobd.cron_next('* * * * *', 'UTC', now(), 1001)", "cron_next: n"},
	{"SELECT pgjobd.schedule('', '* * * * *', 't')", "schedule: name"},
	{"SELECT pgjobd.schedule(NULL, '* * * * *', 't')", "schedule: name"},
	{"SELECT pgjobd.schedule('a:b', '* * * * *', 't')", "schedule: name"},
	{"SELECT pgjobd.schedule('n', '* * *', 't')", "schedule: cron"},
	{"SELECT pgjobd.schedule('n', '0 0 30 2 *', 't')", "schedule: cron"},
	{"SELECT pgjobd.schedule('n', '* * * * *', '')", "schedule: type"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 'a b')", "schedule: type"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', NULL)", "schedule: payload"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', "
	 "jsonb_build_object('x', repeat('y', 1048576)))", "schedule: payload"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', queue => 'q q')", "schedule: queue"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', time_zone => 'Nowhere')",
	    "schedule: time_zone"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', priority => NULL)", "schedule: priority"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', max_attempts => 0)",
	    "schedule: max_attempts"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', timeout => '-1s')", "schedule: timeout"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', missed => 'never')", "schedule: missed"},
	{"SELECT pgjobd.schedule('n', '* * * * *', 't', overlap => 'queue')", "schedule: overlap"},
	{"SELECT pgjobd.schedule_enable('old', NULL)", "schedule_enable: enabled"},
	/* Replacing an existing schedule with a bad value keeps the old one. */
	{"SELECT pgjobd.schedule('old', '0 3 * * *', 'u', missed => 'sometimes')",
	    "schedule: missed"},
};
#define NREFUSALS (int)(sizeof refusals / sizeof refusals[0])

START_TEST(test_bad_argument_refused_naming_it_and_nothing_written)
{
	const struct refusal *f = &refusals[_i];
	PGconn *c = t_connect();
	char *before, *after, want[128];
	PGresult *r;
	const char *st;

	PQclear(t_exec(c, "SELECT pgjobd.schedule('old', '0 2 * * *', 't')", NULL));
	before = t_str(c, "SELECT string_agg(row_to_json(s)::text, ',') FROM pgjobd.schedule_defs s",
	    NULL);
	r = t_exec_any(c, f->sql, NULL);
	st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	snprintf(want, sizeof want, "pgjobd.%s", f->arg);
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: not refused", f->sql);
	ck_assert_msg(st && !strcmp(st, "22023"), "%s: SQLSTATE %s: %s", f->sql, st ? st : "-",
	    PQresultErrorMessage(r));
	ck_assert_msg(strstr(PQresultErrorMessage(r), want) != NULL, "%s: message does not name %s: %s",
	    f->sql, want, PQresultErrorMessage(r));
	PQclear(r);
	after = t_str(c, "SELECT string_agg(row_to_json(s)::text, ',') FROM pgjobd.schedule_defs s",
	    NULL);
	ck_assert_msg(!strcmp(before, after), "%s: changed the schedules:\n%s\n%s", f->sql, before,
	    after);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 0);
	free(before);
	free(after);
	PQfinish(c);
}
END_TEST

/* ---- the firing, with an explicit clock ---- */

/* Fire QUEUE's schedules as of AT; returns how many jobs were enqueued. */
static long long
fire_at(PGconn *c, const char *at)
{
	return t_int(c, "SELECT count(*) FROM pgjobd._schedule_fire('{default}', $1::timestamptz) "
			"WHERE kind = 'f'",
	    at, NULL);
}

/* The slots of NAME's jobs (UTC, comma-separated, in order). */
static char *
job_slots(PGconn *c, const char *name)
{
	return t_str(c,
	    "SELECT coalesce(string_agg(substr(idempotency_key, length($1) + 7), ',' ORDER BY id), '')"
	    " FROM pgjobd.jobs WHERE idempotency_key LIKE 'cron:' || $1 || ':%'",
	    name, NULL);
}

/* A schedule NAME of SPEC with policy MISSED whose recorded next slot is
 * NEXT: as if no daemon had run since then. */
static void
make_late(PGconn *c, const char *name, const char *spec, const char *missed, const char *next)
{
	PQclear(t_exec(c, "SELECT pgjobd.schedule($1, $2, 't', missed => $3)", name, spec, missed,
	    NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = $2::timestamptz WHERE name = $1",
	    name, next, NULL));
}

START_TEST(test_missed_all_runs_every_slot_of_a_downtime)
{
	PGconn *c = t_connect();
	char *s;

	make_late(c, "h", "0 * * * *", "all", "2026-11-30 00:00Z");
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:30Z"), 6);
	s = job_slots(c, "h");
	ck_assert_str_eq(s, "2026-11-30T00:00:00Z,2026-11-30T01:00:00Z,2026-11-30T02:00:00Z,"
			    "2026-11-30T03:00:00Z,2026-11-30T04:00:00Z,2026-11-30T05:00:00Z");
	free(s);
	s = t_str(c, "SELECT next_run || ' ' || last_run || ' ' || missed_from || ' ' || missed_until"
		     " FROM pgjobd.schedules WHERE name = 'h'", NULL);
	ck_assert_str_eq(s, "2026-11-30 06:00:00+00 2026-11-30 05:00:00+00 "
			    "2026-11-30 00:00:00+00 2026-11-30 05:00:00+00");
	free(s);
	/* The same moment again: every slot is recorded, nothing fires. */
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:30Z"), 0);
	PQfinish(c);
}
END_TEST

START_TEST(test_missed_all_is_bounded_to_the_newest_slots)
{
	PGconn *c = t_connect();

	make_late(c, "s", "* * * * * *", "all", "2026-11-30 00:00Z");
	ck_assert_int_eq(fire_at(c, "2026-11-30 01:00Z"), 100);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs WHERE idempotency_key "
				  "BETWEEN 'cron:s:2026-11-30T00:58:21Z' AND 'cron:s:2026-11-30T01:00:00Z'",
			     NULL),
	    100);
	PQfinish(c);
}
END_TEST

START_TEST(test_missed_once_runs_one_job_for_the_newest_slot)
{
	PGconn *c = t_connect();
	char *s;

	make_late(c, "h", "0 * * * *", "once", "2026-11-30 00:00Z");
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:30Z"), 1);
	s = job_slots(c, "h");
	ck_assert_str_eq(s, "2026-11-30T05:00:00Z");
	free(s);
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:59:59Z"), 0);
	ck_assert_int_eq(fire_at(c, "2026-11-30 06:00:00Z"), 1);
	PQfinish(c);
}
END_TEST

START_TEST(test_missed_skip_runs_only_slots_still_on_time)
{
	PGconn *c = t_connect();
	char *s;

	/* 30 minutes late: skipped, and the next slot is the one after now. */
	make_late(c, "h", "0 * * * *", "skip", "2026-11-30 00:00Z");
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:30Z"), 0);
	s = t_str(c, "SELECT next_run || ' ' || missed_from FROM pgjobd.schedules", NULL);
	ck_assert_str_eq(s, "2026-11-30 06:00:00+00 2026-11-30 00:00:00+00");
	free(s);
	/* Within the grace (a minute) the slot is on time and runs. */
	ck_assert_int_eq(fire_at(c, "2026-11-30 06:00:30Z"), 1);
	s = job_slots(c, "h");
	ck_assert_str_eq(s, "2026-11-30T06:00:00Z");
	free(s);
	PQfinish(c);
}
END_TEST

START_TEST(test_overlap_skip_waits_for_the_previous_job_and_counts)
{
	PGconn *c = t_connect();
	char *s;

	PQclear(t_exec(c, "SELECT pgjobd.schedule('o', '0 * * * *', 't', overlap => 'skip')", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2026-11-30 01:00Z'", NULL));
	ck_assert_int_eq(fire_at(c, "2026-11-30 01:00Z"), 1);
	/* Job 1 is still ready: the 02:00 slot is skipped, and recorded. */
	ck_assert_int_eq(fire_at(c, "2026-11-30 02:00Z"), 0);
	s = t_str(c, "SELECT skipped_slots || ' ' || last_skipped_slot || ' ' || last_job_id || ' ' ||"
		     " last_job_state || ' ' || next_run FROM pgjobd.schedules", NULL);
	ck_assert_str_eq(s, "1 2026-11-30 02:00:00+00 1 ready 2026-11-30 03:00:00+00");
	free(s);
	/* Running counts as well; done lets the next slot run. */
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'running', lease_token = 1 WHERE id = 1",
	    NULL));
	ck_assert_int_eq(fire_at(c, "2026-11-30 03:00Z"), 0);
	/* So does a job waiting for its retry backoff (state 'scheduled' in
	 * pgjobd.live, 'ready' in pgjobd.jobs). */
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'ready', lease_token = NULL, "
			  "run_at = now() + interval '1 hour' WHERE id = 1",
	    NULL));
	s = t_str(c, "SELECT state FROM pgjobd.live WHERE id = 1", NULL);
	ck_assert_str_eq(s, "scheduled");
	free(s);
	ck_assert_int_eq(fire_at(c, "2026-11-30 04:00Z"), 0);
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'done', lease_token = NULL, "
			  "finished_at = now() WHERE id = 1",
	    NULL));
	ck_assert_int_eq(fire_at(c, "2026-11-30 05:00Z"), 1);
	s = job_slots(c, "o");
	ck_assert_str_eq(s, "2026-11-30T01:00:00Z,2026-11-30T05:00:00Z");
	free(s);
	ck_assert_int_eq(t_int(c, "SELECT skipped_slots FROM pgjobd.schedules", NULL), 3);
	PQfinish(c);
}
END_TEST

START_TEST(test_slots_survive_the_pruning_of_their_jobs)
{
	PGconn *c = t_connect();

	make_late(c, "h", "0 * * * *", "all", "2026-11-30 00:00Z");
	ck_assert_int_eq(fire_at(c, "2026-11-30 02:30Z"), 3);
	/* Retention removes finished jobs, their keys with them: kept for 0
	 * days, and their purge day (tomorrow at the earliest) made today, as
	 * if a day had passed, for pgjobd.maintain() to drop. */
	PQclear(t_exec(c, "SELECT pgjobd.set_retention('done', '0')", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'done', finished_at = now()", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.history SET purge_on = (now() AT TIME ZONE 'UTC')::date",
	    NULL));
	PQclear(t_exec(c, "SELECT pgjobd.maintain()", NULL));
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 0);
	ck_assert_int_eq(fire_at(c, "2026-11-30 02:30Z"), 0);
	ck_assert_int_eq(fire_at(c, "2026-11-30 02:59Z"), 0);
	ck_assert_int_eq(fire_at(c, "2026-11-30 03:00Z"), 1);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 1);
	/* The view shows the pruned last job's state as NULL, not an error. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.schedules WHERE last_job_id IS NOT NULL",
			     NULL),
	    1);
	PQfinish(c);
}
END_TEST

START_TEST(test_a_firing_in_progress_is_skipped_by_a_second_daemon)
{
	PGconn *a = t_connect(), *b = t_connect();
	char *s;

	make_late(a, "h", "0 * * * *", "all", "2026-11-30 00:00Z");
	PQclear(t_exec(a, "BEGIN", NULL));
	ck_assert_int_eq(fire_at(a, "2026-11-30 01:30Z"), 2);
	/* B neither waits for A's lock nor fires the slots A holds. */
	ck_assert_int_eq(fire_at(b, "2026-11-30 01:30Z"), 0);
	PQclear(t_exec(a, "COMMIT", NULL));
	ck_assert_int_eq(fire_at(b, "2026-11-30 01:30Z"), 0);
	s = job_slots(b, "h");
	ck_assert_str_eq(s, "2026-11-30T00:00:00Z,2026-11-30T01:00:00Z");
	free(s);
	/* A firing that rolls back (its daemon died) leaves the slots due. */
	PQclear(t_exec(a, "BEGIN", NULL));
	ck_assert_int_eq(fire_at(a, "2026-11-30 02:00Z"), 1);
	PQclear(t_exec(a, "ROLLBACK", NULL));
	ck_assert_int_eq(fire_at(b, "2026-11-30 02:00Z"), 1);
	ck_assert_int_eq(t_int(b, "SELECT count(*) FROM pgjobd.jobs", NULL), 3);
	PQfinish(a);
	PQfinish(b);
}
END_TEST

START_TEST(test_a_broken_schedule_does_not_stop_the_others)
{
	PGconn *c = t_connect();
	char *s;

	make_late(c, "good", "0 * * * *", "once", "2026-11-30 00:00Z");
	make_late(c, "bad", "0 * * * *", "once", "2026-11-30 00:00Z");
	/* Edited by hand, past the checks of pgjobd.schedule(). */
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET cron = '99 * * * *' WHERE name = 'bad'",
	    NULL));
	s = t_str(c, "SELECT string_agg(kind || ':' || name, ' ' ORDER BY kind, name) FROM "
		     "pgjobd._schedule_fire('{default}', '2026-11-30 00:30Z') WHERE kind <> 'n'",
	    NULL);
	ck_assert_str_eq(s, "e:bad f:good m:good");
	free(s);
	s = t_str(c, "SELECT next_run || ' ' || last_error FROM pgjobd.schedules WHERE name = 'bad'",
	    NULL);
	ck_assert_str_eq(s, "2026-11-30 00:31:00+00 pgjobd.schedule: cron minute field: '99' is out "
			    "of range 0-59");
	free(s);
	/* Nothing of the broken one was enqueued. */
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 1);
	PQfinish(c);
}
END_TEST

START_TEST(test_schedule_replace_enable_disable_unschedule)
{
	PGconn *c = t_connect();
	char *s;

	/* schedule() returns the next run; the same timing again keeps the
	 * recorded next slot, even an overdue one. */
	ck_assert_int_eq(t_int(c, "SELECT (pgjobd.schedule('d', '30 2 * * *', 't', time_zone => 'Europe/Berlin') = "
				  "pgjobd.cron_next('30 2 * * *', 'Europe/Berlin', now(), 1))::int",
			     NULL),
	    1);
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2026-11-30 01:30Z'", NULL));
	s = t_str(c, "SELECT pgjobd.schedule('d', '30 2 * * *', 'u', '{\"v\": 2}', "
		     "time_zone => 'Europe/Berlin')::text", NULL);
	ck_assert_str_eq(s, "2026-11-30 01:30:00+00");
	free(s);
	s = t_str(c, "SELECT type || ' ' || payload::text FROM pgjobd.schedules", NULL);
	ck_assert_str_eq(s, "u {\"v\": 2}");
	free(s);
	/* A new timing starts from now. */
	ck_assert_int_eq(t_int(c, "SELECT (pgjobd.schedule('d', '45 3 * * *', 'u') = "
				  "pgjobd.cron_next('45 3 * * *', 'UTC', now(), 1))::int",
			     NULL),
	    1);
	/* Disabled: never due; enabled again: from the next slot after now. */
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.schedule_disable('d')::int", NULL), 1);
	PQclear(t_exec(c, "UPDATE pgjobd.schedule_defs SET next_run = '2026-11-30 01:30Z'", NULL));
	ck_assert_int_eq(fire_at(c, "2026-11-30 02:00Z"), 0);
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.schedule_enable('d')::int", NULL), 1);
	ck_assert_int_eq(t_int(c, "SELECT (next_run > now())::int FROM pgjobd.schedules", NULL), 1);
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.schedule_enable('nope')::int", NULL), 0);
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.unschedule('d')::int", NULL), 1);
	ck_assert_int_eq(t_int(c, "SELECT pgjobd.unschedule('d')::int", NULL), 0);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.schedules", NULL), 0);
	PQfinish(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cronspec");
	TCase *spec = tcase_create("spec"), *args = tcase_create("arguments"),
	      *fire = tcase_create("firing");

	tcase_add_unchecked_fixture(spec, setup_database, NULL);
	tcase_add_loop_test(spec, test_spec_rule, 0, NSPEC);
	suite_add_tcase(s, spec);

	tcase_add_unchecked_fixture(args, setup_database, NULL);
	tcase_add_checked_fixture(args, clear_state, NULL);
	tcase_add_loop_test(args, test_bad_argument_refused_naming_it_and_nothing_written, 0,
	    NREFUSALS);
	suite_add_tcase(s, args);

	tcase_add_unchecked_fixture(fire, setup_database, NULL);
	tcase_add_checked_fixture(fire, clear_state, NULL);
	tcase_set_timeout(fire, 30);
	tcase_add_test(fire, test_missed_all_runs_every_slot_of_a_downtime);
	tcase_add_test(fire, test_missed_all_is_bounded_to_the_newest_slots);
	tcase_add_test(fire, test_missed_once_runs_one_job_for_the_newest_slot);
	tcase_add_test(fire, test_missed_skip_runs_only_slots_still_on_time);
	tcase_add_test(fire, test_overlap_skip_waits_for_the_previous_job_and_counts);
	tcase_add_test(fire, test_slots_survive_the_pruning_of_their_jobs);
	tcase_add_test(fire, test_a_firing_in_progress_is_skipped_by_a_second_daemon);
	tcase_add_test(fire, test_a_broken_schedule_does_not_stop_the_others);
	tcase_add_test(fire, test_schedule_replace_enable_disable_unschedule);
	suite_add_tcase(s, fire);
	return t_run_suite(s);
}
