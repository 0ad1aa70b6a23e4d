/*
 * check_ctl: `pgjobd ctl`, run as the real binary against the throwaway
 * cluster: every verb as a table and as JSON (parsed back by PostgreSQL),
 * the filters of `jobs`, the refusals and usage errors (one line, the
 * documented exit status), and each finding of `doctor`, also against a
 * real daemon's worker row.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctllib.h"
#include "testlib.h"

#define DB "pgjobd_ctl"

/* The ids of a `jobs --json` document, in order. */
#define JOB_IDS                                                                                    \
	"SELECT coalesce(string_agg(j->>'id', ',' ORDER BY o), '') FROM "                          \
	"jsonb_array_elements($1::jsonb->'jobs') WITH ORDINALITY AS x(j, o)"

START_TEST(test_migrate_installs_the_schema_and_is_idempotent)
{
	PGconn *c;
	char *out;

	t_use_fresh_db(DB);
	out = ctl_ok(0, "migrate", NULL);
	ck_assert_str_eq(out, T_MIGRATED);
	free(out);
	out = ctl_ok(0, "migrate", NULL);
	ck_assert_str_eq(out, T_MIGRATED);
	free(out);
	out = ctl_ok(0, "--json", "migrate", NULL);
	c = t_connect();
	assert_json(c, out, "SELECT $1::jsonb->>'schema_version'", T_SCHEMA_LATEST);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 0);
	free(out);
	PQfinish(c);
}
END_TEST

START_TEST(test_status_shows_workers_and_queues_aligned_and_as_json)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out, *line, *host;

	PQclear(
	    t_exec(c,
	           "INSERT INTO pgjobd.workers (name, host, pid, concurrency, running, last_seen,"
	           " queues, types) VALUES"
	           " ('old-worker', 'hostname-a', 11, 4, 0, now() - interval '10 min', "
	           "'{default}', '{a}'),"
	           " ('w2', 'b', 22, 8, 3, now(), '{default,other}', '{a,b}')",
	           NULL));
	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('a', '{}'), pgjobd.enqueue('a', '{}'),"
	               " pgjobd.enqueue('b', '{}', 'other', now() + interval '1 h')",
	               NULL));

	out = ctl_ok(0, "status", NULL);
	assert_has(out, "WORKERS\nname ");
	assert_has(out, "\nQUEUES\nqueue ");
	assert_has(out, "default,other");
	/* Aligned: the host column starts at the same offset on every line. */
	line = strstr(out, "name ");
	host = strstr(line, "host");
	ck_assert_ptr_nonnull(host);
	{
		long col = host - line;
		char *w1 = strstr(out, "\nold-worker "), *w2 = strstr(out, "\nw2 ");
		ck_assert_ptr_nonnull(w1);
		ck_assert_ptr_nonnull(w2);
		ck_assert_int_eq(strncmp(w1 + 1 + col, "hostname-a", 10), 0);
		ck_assert_int_eq(w2[1 + col], 'b');
	}
	free(out);

	out = ctl_ok(0, "status", "--json", NULL);
	assert_json(c, out, "SELECT jsonb_array_length($1::jsonb->'workers')", "2");
	assert_json(c, out, "SELECT $1::jsonb #>> '{workers,0,stale}'", "true");
	assert_json(c, out, "SELECT $1::jsonb #>> '{workers,1,stale}'", "false");
	assert_json(c, out, "SELECT $1::jsonb #> '{workers,1,queues}' = '[\"default\",\"other\"]'",
	            "t");
	assert_json(c, out, "SELECT $1::jsonb #>> '{workers,1,running}'", "3");
	assert_json(c, out,
	            "SELECT q->>'ready' FROM jsonb_array_elements($1::jsonb->'queues') q"
	            " WHERE q->>'queue' = 'default'",
	            "2");
	assert_json(c, out,
	            "SELECT q->>'scheduled' FROM jsonb_array_elements($1::jsonb->'queues') q"
	            " WHERE q->>'queue' = 'other'",
	            "1");
	free(out);

	/* --stale moves the bound. */
	ctl_json(c, "SELECT $1::jsonb #>> '{workers,0,stale}'", "false", "--json", "status",
	         "--stale", "1h", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_jobs_filters_by_queue_type_and_state_newest_first)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out, *four, *three;

	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('a'), pgjobd.enqueue('b'),"
	               " pgjobd.enqueue('a', '{}', 'other'), pgjobd.enqueue('b', '{}', 'other')",
	               NULL));
	PQclear(t_exec(c,
	               "UPDATE pgjobd.jobs SET state = 'dead', finished_at = now(), attempts = 5,"
	               " last_error = 'exit code 1' || chr(10) || repeat('x', 200) WHERE id = 2",
	               NULL));

	ctl_json(c, JOB_IDS, "4,3,2,1", "jobs", "--json", NULL);
	ctl_json(c, JOB_IDS, "4,3", "jobs", "--json", "--queue", "other", NULL);
	ctl_json(c, JOB_IDS, "3,1", "jobs", "--json", "--type", "a", NULL);
	out = ctl_ok(0, "jobs", "--json", "--state", "dead", NULL);
	assert_json(c, out, JOB_IDS, "2");
	assert_json(
	    c, out,
	    "SELECT $1::jsonb #>> '{jobs,0,last_error}' LIKE 'exit code 1' || chr(10) || 'xxx%'",
	    "t");
	free(out);
	ctl_json(c, JOB_IDS, "2", "jobs", "--json", "--queue", "default", "--type", "b", NULL);
	ctl_json(c, JOB_IDS, "4,3", "jobs", "--json", "--limit", "2", NULL);
	ctl_json(c, JOB_IDS, "", "jobs", "--json", "--state", "running", NULL);

	/* The table: header, then newest first, only the queue asked for. */
	out = ctl_ok(0, "jobs", "--queue", "other", NULL);
	ck_assert_msg(!strncmp(out, "id ", 3), "no header: %s", out);
	four = strstr(out, "\n 4  other");
	three = strstr(out, "\n 3  other");
	ck_assert_msg(four && three && four < three, "not newest first:\n%s", out);
	ck_assert_msg(strstr(out, "default") == NULL, "other queue listed:\n%s", out);
	free(out);
	/* A long error is cut to one short line unless --full. */
	out = ctl_ok(0, "jobs", "--state", "dead", NULL);
	assert_has(out, "exit code 1 xxx");
	assert_has(out, "...\n");
	ck_assert_msg(strstr(out, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") == NULL,
	              "not cut:\n%s", out);
	free(out);
	out = ctl_ok(0, "--full", "jobs", "--state", "dead", NULL);
	ck_assert_int_eq(strlen(strstr(out, "exit code 1 ")), strlen("exit code 1 ") + 200 + 1);
	free(out);
	/* Cut between characters, not inside one: PostgreSQL takes the
	 * output back as valid UTF-8, and the cell is 48 characters wide. */
	PQclear(
	    t_exec(c, "UPDATE pgjobd.jobs SET last_error = repeat('é€', 60) WHERE id = 2", NULL));
	out = ctl_ok(0, "jobs", "--state", "dead", NULL);
	ck_assert_int_eq(t_int(c, "SELECT length(substring($1 FROM '[é€]+\\.\\.\\.'))", out, NULL),
	                 48);
	free(out);
	out = ctl_ok(0, "jobs", "--state", "done", NULL);
	ck_assert_str_eq(out, "(none)\n");
	free(out);
	PQfinish(c);
}
END_TEST

START_TEST(test_show_prints_the_job_and_its_attempts_with_their_errors)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out;

	PQclear(t_exec(c,
	               "SELECT pgjobd.enqueue('resize', jsonb_build_object('s',"
	               " 'quo\"te \\ back' || chr(9) || 'tab ü', 'n', 1))",
	               NULL));
	PQclear(t_exec(c,
	               "UPDATE pgjobd.jobs SET state = 'dead', attempts = 2, finished_at = now(),"
	               " last_error = 'exit code 2' WHERE id = 1",
	               NULL));
	PQclear(
	    t_exec(c,
	           "INSERT INTO pgjobd.attempts (job_id, attempt, worker, started_at, finished_at,"
	           " outcome, exit_code, error) VALUES"
	           " (1, 1, 'w1', now() - interval '2 min', now() - interval '1 min', 'retry', 1,"
	           "  'exit code 1' || chr(10) || 'first stderr line' || chr(10)),"
	           " (1, 2, 'w1', now() - interval '30 s', now(), 'dead', 2,"
	           "  'exit code 2' || chr(10) || 'second stderr line')",
	           NULL));

	out = ctl_ok(0, "show", "1", NULL);
	assert_has(out, "state ");
	assert_has(out, " dead\n");
	assert_has(out, "ATTEMPT 1\n");
	assert_has(out, "ATTEMPT 2\n");
	assert_has(out, "first stderr line\n");
	assert_has(out, "second stderr line\n");
	ck_assert_msg(strstr(out, "ATTEMPT 1") < strstr(out, "ATTEMPT 2"), "order:\n%s", out);
	free(out);

	out = ctl_ok(0, "show", "1", "--json", NULL);
	assert_json(c, out, "SELECT $1::jsonb #>> '{job,id}'", "1");
	assert_json(c, out, "SELECT $1::jsonb #>> '{job,state}'", "dead");
	assert_json(
	    c, out,
	    "SELECT $1::jsonb #> '{job,payload}' = (SELECT payload FROM pgjobd.jobs WHERE id = 1)",
	    "t");
	assert_json(c, out, "SELECT jsonb_array_length($1::jsonb->'attempts')", "2");
	assert_json(c, out,
	            "SELECT $1::jsonb #>> '{attempts,1,error}' = 'exit code 2' || chr(10) || "
	            "'second stderr line'",
	            "t");
	assert_json(c, out, "SELECT $1::jsonb #>> '{attempts,0,outcome}'", "retry");
	free(out);
	PQfinish(c);
}
END_TEST

START_TEST(test_missing_and_malformed_job_ids_are_one_line_errors)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	ctl_fails(1, "no job 999", "show", "999", NULL);
	ctl_fails(64, "not a job id: abc", "show", "abc", NULL);
	ctl_fails(64, "not a job id: 0", "cancel", "0", NULL);
	ctl_fails(64, "not a job id: 12x", "retry", "12x", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_enqueue_passes_every_option_to_the_sql_api)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out, *id;

	out = ctl_ok(0, "enqueue", "resize", "{\"f\": 1}", "--queue", "img", "--priority", "-3",
	             "--max-attempts", "7", "--key", "k1", "--in", "1h", "--timeout", "30s", NULL);
	ck_assert_str_eq(out, "1\n");
	free(out);
	ck_assert_int_eq(
	    t_int(c,
	          "SELECT count(*) FROM pgjobd.jobs WHERE id = 1 AND type = 'resize'"
	          " AND queue = 'img' AND payload = '{\"f\": 1}' AND priority = -3"
	          " AND max_attempts = 7 AND idempotency_key = 'k1' AND state = 'ready'"
	          " AND run_at BETWEEN now() + interval '59 min' AND now() + interval '61 min'"
	          " AND timeout = interval '30 s'",
	          NULL),
	    1);
	/* The same key again: the first job's id, nothing new. */
	out = ctl_ok(0, "enqueue", "resize", "{}", "--queue", "img", "--key", "k1", NULL);
	ck_assert_str_eq(out, "1\n");
	free(out);

	/* The id printed is the new job's (ids are not dense: the dedup
	 * above consumed one). */
	out = ctl_ok(0, "enqueue", "mail", "--at", "2030-01-02 03:04:05+00", NULL);
	ck_assert_int_eq(
	    t_int(c,
	          "SELECT count(*) FROM pgjobd.jobs WHERE id = $1::bigint AND type = 'mail'"
	          " AND payload = '{}' AND queue = 'default' AND priority = 0"
	          " AND max_attempts IS NULL AND run_at = '2030-01-02 03:04:05+00'",
	          out, NULL),
	    1);
	free(out);

	out = ctl_ok(0, "--json", "enqueue", "x", NULL);
	id = json_q(c, out, "SELECT type FROM pgjobd.jobs WHERE id = ($1::jsonb->>'id')::bigint");
	ck_assert_str_eq(id, "x");
	free(id);
	free(out);

	/* "-": the payload from stdin, line breaks and all. */
	{
		char *err;
		const char *argv[] = {"/bin/sh", "-c",
		                      "printf '{\"from\": \"stdin\",\\n \"n\": 2}' | \"$0\" ctl -d "
		                      "'' enqueue piped -",
		                      t_pgjobd(), NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
		free(err);
	}
	ck_assert_int_eq(
	    t_int(c,
	          "SELECT count(*) FROM pgjobd.jobs WHERE id = $1::bigint AND type = 'piped'"
	          " AND payload = '{\"from\": \"stdin\", \"n\": 2}'",
	          out, NULL),
	    1);
	free(out);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 4);
	PQfinish(c);
}
END_TEST

START_TEST(test_refused_enqueue_is_one_line_and_exit_1_and_writes_nothing)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	ctl_fails(1, "pgjobd.enqueue: max_attempts must be at least 1", "enqueue", "t",
	          "--max-attempts", "0", NULL);
	ctl_fails(1, "pgjobd.enqueue: type must be", "enqueue", "bad type", NULL);
	ctl_fails(1, "pgjobd.enqueue: queue must be", "enqueue", "t", "--queue", "", NULL);
	ctl_fails(1, "invalid input syntax for type json", "enqueue", "t", "{not json", NULL);
	ctl_fails(1, "someday", "enqueue", "t", "--at", "someday", NULL);
	/* Bad option values are usage errors, caught before the database. */
	ctl_fails(64, "--timeout", "enqueue", "t", "--timeout", "soon", NULL);
	ctl_fails(64, "--priority", "enqueue", "t", "--priority", "high", NULL);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs", NULL), 0);
	PQfinish(c);
}
END_TEST

START_TEST(test_cancel_and_retry_say_whether_it_happened)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *out, *err;

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('t')", NULL));
	out = ctl_ok(0, "cancel", "1", NULL);
	ck_assert_str_eq(out, "job 1 cancelled\n");
	free(out);
	ctl_fails(1, "job 1 is cancelled: not cancelled", "cancel", "1", NULL);
	out = ctl_ok(0, "retry", "1", NULL);
	ck_assert_str_eq(out, "job 1 retried\n");
	free(out);
	ck_assert_int_eq(t_int(c, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'ready'", NULL),
	                 1);
	ctl_fails(1, "job 1 is ready: not retried", "retry", "1", NULL);

	out = ctl_ok(0, "--json", "cancel", "1", NULL);
	assert_json(
	    c, out,
	    "SELECT $1::jsonb = '{\"id\": 1, \"cancelled\": true, \"state\": \"cancelled\"}'", "t");
	free(out);
	out = ctl_ok(0, "--json", "retry", "1", NULL);
	assert_json(c, out,
	            "SELECT $1::jsonb = '{\"id\": 1, \"retried\": true, \"state\": \"ready\"}'",
	            "t");
	free(out);
	ck_assert_int_eq(ctl(&out, &err, "--json", "cancel", "999", NULL), 1);
	assert_one_line(err, "no job 999");
	assert_json(c, out,
	            "SELECT $1::jsonb = '{\"id\": 999, \"cancelled\": false, \"state\": null}'",
	            "t");
	free(out);
	free(err);
	ctl_fails(1, "no job 999", "retry", "999", NULL);
	PQfinish(c);
}
END_TEST

START_TEST(test_usage_errors_are_one_line_and_exit_64)
{
	static const char *const cases[][5] = {
	    {"frobnicate", NULL, "unknown verb: frobnicate"},
	    {"show", NULL, "show: missing argument"},
	    {"status", "extra", "status: unexpected argument: extra"},
	    {"status", "--queue", "status does not take --queue"},
	    {"jobs", "--bogus", "unknown option"},
	    {"enqueue", "t", "--at", "--in"},
	};
	char *out, *err;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const *k = cases[i];
		int rc;
		if (!strcmp(k[0], "enqueue")) {
			rc = ctl(&out, &err, k[0], k[1], "--at", "2030-01-01", "--in", "1h", NULL);
			assert_one_line(err, "--at and --in exclude each other");
		} else if (!strcmp(k[1] ? k[1] : "", "--queue")) {
			rc = ctl(&out, &err, k[0], k[1], "q", NULL);
			assert_one_line(err, k[2]);
		} else {
			rc = ctl(&out, &err, k[0], k[1], NULL);
			assert_one_line(err, k[2]);
		}
		ck_assert_msg(rc == 64, "%s: exit %d", k[0], rc);
		ck_assert_str_eq(out, "");
		free(out);
		free(err);
	}
	{
		const char *argv[] = {t_pgjobd(), "ctl", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 64);
		assert_one_line(err, "no verb given");
		free(out);
		free(err);
	}
	{
		const char *argv[] = {t_pgjobd(), "ctl", "-c", "/x.ini", "-d", "", "status", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 64);
		assert_one_line(err, "-c and -d exclude each other");
		free(out);
		free(err);
	}
	{
		static const char *const verbs[] = {"status", "jobs",  "show",    "enqueue",
		                                    "cancel", "retry", "migrate", "doctor"};
		const char *argv[] = {t_pgjobd(), "ctl", "-h", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
		for (size_t i = 0; i < 8; i++) {
			char *item;
			ck_assert_int_ne(asprintf(&item, "\n  %s", verbs[i]), -1);
			assert_has(out, item);
			free(item);
		}
		free(out);
		free(err);
	}
	{
		const char *argv[] = {t_pgjobd(), "-h", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
		assert_has(out, "pgjobd ctl ");
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_config_file_gives_the_database_and_bad_config_exits_78)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *good = t_config("queues = default\n");
	char *bad = t_config("concurrency = lots\n");
	char *out, *err, *want;

	{
		const char *argv[] = {t_pgjobd(), "ctl", "-c", good, "migrate", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
		ck_assert_str_eq(out, T_MIGRATED);
		free(out);
		free(err);
	}
	{
		const char *argv[] = {t_pgjobd(), "ctl", "-c", bad, "status", NULL};
		ck_assert_int_eq(t_run(argv, &out, &err, 30000), 78);
		ck_assert_int_ne(asprintf(&want, "%s:3: ", bad), -1);
		ck_assert_msg(strstr(err, want) == err, "got: %s", err);
		ck_assert_str_eq(out, "");
		free(want);
		free(out);
		free(err);
	}
	unlink(good);
	unlink(bad);
	free(good);
	free(bad);
	PQfinish(c);
}
END_TEST

START_TEST(test_unreachable_database_is_one_line_and_exit_1)
{
	char *out, *err;
	const char *argv[] = {t_pgjobd(), "ctl", "-d", "dbname=pgjobd_no_such_db connect_timeout=5",
	                      "status",   NULL};

	ck_assert_int_eq(t_run(argv, &out, &err, 30000), 1);
	assert_one_line(err, "pgjobd_no_such_db");
	free(out);
	free(err);
}
END_TEST

/* doctor: exit 0 and "ok" only when nothing needs attention. */
static void
assert_doctor_ok(PGconn *c)
{
	char *out = ctl_ok(0, "doctor", NULL);

	ck_assert_str_eq(out, "ok\n");
	free(out);
	out = ctl_ok(0, "doctor", "--json", NULL);
	assert_json(c, out,
	            "SELECT ($1::jsonb->>'ok') || ' ' || jsonb_array_length($1::jsonb->'findings')",
	            "true 0");
	free(out);
}

/* doctor: exit 1, a line "KIND: ..." containing NEEDLE, and KIND among
 * the JSON findings. */
static void
assert_doctor_finds(PGconn *c, const char *kind, const char *needle)
{
	char *out = ctl_ok(1, "doctor", NULL), *line;

	ck_assert_int_ne(asprintf(&line, "\n%s: ", kind), -1);
	ck_assert_msg(!strncmp(out, line + 1, strlen(line + 1)) || strstr(out, line) != NULL,
	              "no %s finding in:\n%s", kind, out);
	assert_has(out, needle);
	ck_assert_msg(strstr(out, "ok\n") == NULL, "ok printed with findings:\n%s", out);
	free(line);
	free(out);
	out = ctl_ok(1, "doctor", "--json", NULL);
	{
		char *sql;
		ck_assert_int_ne(
		    asprintf(&sql,
		             "SELECT ($1::jsonb->>'ok') || ' ' || EXISTS (SELECT 1 FROM"
		             " jsonb_array_elements($1::jsonb->'findings') f"
		             " WHERE f->>'kind' = '%s')",
		             kind),
		    -1);
		assert_json(c, out, sql, "false true");
		free(sql);
	}
	free(out);
}

START_TEST(test_doctor_finds_a_schema_behind_or_ahead_of_the_binary)
{
	PGconn *c;

	t_use_fresh_db(DB);
	c = t_connect();
	assert_doctor_finds(c, "schema",
	                    "is at version 0, this pgjobd needs " T_SCHEMA_LATEST
	                    ": run pgjobd ctl migrate");
	PQfinish(c);
	c = t_fresh_schema(DB, NULL);
	assert_doctor_ok(c);
	PQclear(t_exec(c, "INSERT INTO pgjobd.migrations (version, name) VALUES (99, '099_future')",
	               NULL));
	assert_doctor_finds(c, "schema", "version 99, newer than this pgjobd's " T_SCHEMA_LATEST);
	PQfinish(c);
}
END_TEST

START_TEST(test_doctor_finds_stale_workers)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.workers (name, host, pid, concurrency, last_seen)"
	               " VALUES ('fresh', 'h', 1, 4, now() - interval '30 s')",
	               NULL));
	assert_doctor_ok(c);
	PQclear(t_exec(c,
	               "INSERT INTO pgjobd.workers (name, host, pid, concurrency, last_seen)"
	               " VALUES ('gone', 'h', 2, 4, now() - interval '10 min')",
	               NULL));
	assert_doctor_finds(c, "stale_worker",
	                    "worker gone (host h, pid 2) last seen 00:10:00 ago");
	{
		char *out = ctl_ok(0, "doctor", "--stale", "1h", NULL);
		ck_assert_str_eq(out, "ok\n");
		free(out);
	}
	PQfinish(c);
}
END_TEST

START_TEST(test_doctor_finds_ready_jobs_no_live_worker_maps)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	/* Scheduled for later: not a finding yet. */
	PQclear(
	    t_exec(c, "SELECT pgjobd.enqueue('img', '{}', 'q1', now() + interval '1 h')", NULL));
	assert_doctor_ok(c);
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('img', '{}', 'q1')", NULL));
	assert_doctor_finds(c, "unserved", "1 ready job(s) of type img in queue q1");
	/* A live worker with the queue but not the type, and one with the
	 * type but not the queue: still nobody leases it. */
	PQclear(
	    t_exec(c,
	           "INSERT INTO pgjobd.workers (name, host, pid, concurrency, queues, types) VALUES"
	           " ('w1', 'h', 1, 4, '{q1}', '{mail}'), ('w2', 'h', 2, 4, '{q2}', '{img}')",
	           NULL));
	assert_doctor_finds(c, "unserved", "type img in queue q1");
	/* The right worker, but stale: the job is still unserved. */
	PQclear(t_exec(
	    c,
	    "INSERT INTO pgjobd.workers (name, host, pid, concurrency, queues, types, last_seen)"
	    " VALUES ('w3', 'h', 3, 4, '{q1,q2}', '{img}', now() - interval '1 h')",
	    NULL));
	assert_doctor_finds(c, "unserved", "type img in queue q1");
	PQclear(t_exec(c, "UPDATE pgjobd.workers SET last_seen = now() WHERE name = 'w3'", NULL));
	assert_doctor_ok(c);
	PQfinish(c);
}
END_TEST

START_TEST(test_doctor_finds_jobs_dead_in_the_last_hour)
{
	PGconn *c = t_fresh_schema(DB, NULL);

	PQclear(t_exec(c, "SELECT pgjobd.enqueue('img'), pgjobd.enqueue('img')", NULL));
	PQclear(
	    t_exec(c,
	           "UPDATE pgjobd.jobs SET state = 'dead', attempts = 5, last_error = 'exit code 3'"
	           " || chr(10) || 'no such file', finished_at = now() - interval '2 h'",
	           NULL));
	assert_doctor_ok(c);
	PQclear(
	    t_exec(c, "UPDATE pgjobd.jobs SET finished_at = now() - interval '10 min' WHERE id = 2",
	           NULL));
	assert_doctor_finds(c, "dead",
	                    "1 job(s) of type img in queue default went dead in the last 01:00:00;"
	                    " latest job 2: exit code 3 no such file");
	{
		char *out = ctl_ok(1, "doctor", "--since", "3h", NULL);
		assert_has(out, "dead: 2 job(s) of type img");
		free(out);
		out = ctl_ok(0, "doctor", "--since", "5m", NULL);
		ck_assert_str_eq(out, "ok\n");
		free(out);
	}
	PQfinish(c);
}
END_TEST

/* The real daemon's heartbeat writes the worker row doctor and status
 * read: its queues and the types it maps. */
START_TEST(test_doctor_and_status_see_a_running_daemon)
{
	PGconn *c = t_fresh_schema(DB, NULL);
	char *cfg = t_config("queues = default\nheartbeat = 1s\nlease = 5s\n"
	                     "[handler.echo]\ncommand = /bin/cat\n");
	struct t_daemon *d = t_daemon_start(cfg, NULL);
	char *out;

	t_wait_value(
	    c, "1", 20000,
	    "SELECT count(*) FROM pgjobd.workers WHERE types = '{echo}' AND queues = '{default}'");
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('echo', '{\"hi\": 1}')", NULL));
	t_wait_value(c, "done", 20000, "SELECT state FROM pgjobd.jobs WHERE id = 1");
	assert_doctor_ok(c);
	ctl_json(c, "SELECT $1::jsonb #> '{workers,0,types}' = '[\"echo\"]'", "t", "--json",
	         "status", NULL);
	out = ctl_ok(0, "show", "1", NULL);
	assert_has(out, "{\"hi\": 1}");
	free(out);

	/* A type this daemon does not map stays ready: doctor says so. */
	PQclear(t_exec(c, "SELECT pgjobd.enqueue('nomap')", NULL));
	assert_doctor_finds(c, "unserved", "type nomap in queue default");
	out = ctl_ok(0, "cancel", "2", NULL);
	free(out);
	assert_doctor_ok(c);

	ck_assert_int_eq(t_daemon_stop(d), 0);
	unlink(cfg);
	free(cfg);
	PQfinish(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_migrate_installs_the_schema_and_is_idempotent);
	tcase_add_test(tc, test_status_shows_workers_and_queues_aligned_and_as_json);
	tcase_add_test(tc, test_jobs_filters_by_queue_type_and_state_newest_first);
	tcase_add_test(tc, test_show_prints_the_job_and_its_attempts_with_their_errors);
	tcase_add_test(tc, test_missing_and_malformed_job_ids_are_one_line_errors);
	tcase_add_test(tc, test_enqueue_passes_every_option_to_the_sql_api);
	tcase_add_test(tc, test_refused_enqueue_is_one_line_and_exit_1_and_writes_nothing);
	tcase_add_test(tc, test_cancel_and_retry_say_whether_it_happened);
	tcase_add_test(tc, test_usage_errors_are_one_line_and_exit_64);
	tcase_add_test(tc, test_config_file_gives_the_database_and_bad_config_exits_78);
	tcase_add_test(tc, test_unreachable_database_is_one_line_and_exit_1);
	tcase_add_test(tc, test_doctor_finds_a_schema_behind_or_ahead_of_the_binary);
	tcase_add_test(tc, test_doctor_finds_stale_workers);
	tcase_add_test(tc, test_doctor_finds_ready_jobs_no_live_worker_maps);
	tcase_add_test(tc, test_doctor_finds_jobs_dead_in_the_last_hour);
	tcase_add_test(tc, test_doctor_and_status_see_a_running_daemon);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
