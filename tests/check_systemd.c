/*
 * check_systemd: the Debian package under a real systemd.  Runs under
 * tests/with-nspawn.sh, which boots a minimal Debian 12 (systemd as PID 1,
 * PostgreSQL 15 running) and names it in PGJOBD_NSPAWN_PID and
 * PGJOBD_NSPAWN_ROOT; PGJOBD_DEB is the package to install.
 *
 * The tests are one administrator's session, in order: install, first
 * start, a job, reload, watchdog, upgrade, stop, instances, the online
 * security score, purge.  Each later test relies on the earlier ones.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"

#define PSQL_PG "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1"
#define PSQL PSQL_PG " -d jobs"

/* The config the tests run with (it replaces the packaged example, so the
 * upgrade must keep it: a changed conffile).  touch-it tries both a write
 * the sandbox allows and one it forbids. */
static const char config[] = "; check_systemd: local configuration\n"
			     "[pgjobd]\n"
			     "database = dbname=jobs\n"
			     "poll_interval = 1s\n"
			     "[handler.touch]\n"
			     "command = /usr/local/bin/touch-it\n"
			     "[handler.slow]\n"
			     "command = /bin/sleep 3\n";

/* /etc/pgjobd-open is the service user's by its permissions, so that only
 * the sandbox (ProtectSystem=strict) can refuse the write there. */
static const char touch_it[] = "#!/bin/sh\n"
			       "echo \"user: $(id -un)\"\n"
			       "echo ok > /var/lib/pgjobd/x && echo 'state: written'\n"
			       "if err=$( (echo x > /etc/pgjobd-open/x) 2>&1); then\n"
			       "  echo 'etc: written'\n"
			       "else\n"
			       "  echo \"etc: $err\"\n"
			       "fi\n";

/* Run a shell command line on the host; stdout and stderr in *OUT. */
static int
host(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
host(char **out, const char *fmt, ...)
{
	va_list ap;
	char *cmd, *o, *e;
	int rc;

	va_start(ap, fmt);
	ck_assert_int_ne(vasprintf(&cmd, fmt, ap), -1);
	va_end(ap);
	{
		const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
		rc = t_run(argv, &o, &e, 120000);
	}
	ck_assert_int_ne(asprintf(out, "%s%s", o, e), -1);
	free(o);
	free(e);
	free(cmd);
	return rc;
}

/* Run a shell command line inside the container, in a clean environment
 * (the host's PGHOST and such mean nothing there).  Returns its exit
 * status; *OUT (when not NULL) is its stdout with the trailing newline
 * removed, *ERR its stderr. */
static int
vct(char **out, char **err, int timeout_ms, const char *fmt, va_list ap)
{
	const char *pid = getenv("PGJOBD_NSPAWN_PID");
	char *cmd, *o, *e;
	size_t n;
	int rc;

	ck_assert_msg(pid && *pid, "PGJOBD_NSPAWN_PID unset: run under tests/with-nspawn.sh");
	ck_assert_int_ne(vasprintf(&cmd, fmt, ap), -1);
	{
		const char *argv[] = {"/usr/bin/nsenter", "-t", pid, "-a", "/usr/bin/env", "-i",
		    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		    "LANG=C.UTF-8", "/bin/sh", "-c", cmd, NULL};
		rc = t_run(argv, &o, &e, timeout_ms);
	}
	n = strlen(o);
	while (n > 0 && o[n - 1] == '\n')
		o[--n] = '\0';
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
	free(cmd);
	return rc;
}

/* Inside the container: must exit 0; returns its stdout (malloc'd). */
static char *
ct_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
ct_ok(const char *fmt, ...)
{
	va_list ap;
	char *out, *err;
	int rc;

	va_start(ap, fmt);
	rc = vct(&out, &err, 120000, fmt, ap);
	va_end(ap);
	ck_assert_msg(rc == 0, "exit %d, stdout:\n%s\nstderr:\n%s", rc, out, err);
	free(err);
	return out;
}

/* Inside the container: repeat the command until its stdout is WANT, or
 * fail after TIMEOUT_MS showing the last output.  Polls every 100 ms. */
static void
ct_wait(const char *want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
ct_wait(const char *want, int timeout_ms, const char *fmt, ...)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	char *out = NULL;

	for (;;) {
		va_list ap;
		const struct timespec poll = {0, 100 * 1000 * 1000};

		free(out);
		va_start(ap, fmt);
		vct(&out, NULL, timeout_ms, fmt, ap);
		va_end(ap);
		if (strcmp(out, want) == 0)
			break;
		ck_assert_msg(t_now_ms() < deadline, "after %d ms still \"%s\", not \"%s\"",
		    timeout_ms, out, want);
		nanosleep(&poll, NULL);
	}
	free(out);
}

static void
assert_eq_ct(const char *want, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
assert_eq_ct(const char *want, const char *fmt, ...)
{
	va_list ap;
	char *out, *err;

	va_start(ap, fmt);
	vct(&out, &err, 120000, fmt, ap);
	va_end(ap);
	ck_assert_msg(strcmp(out, want) == 0, "got \"%s\" (stderr: %s), want \"%s\"", out, err,
	    want);
	free(out);
	free(err);
}

/* The active and sub state of UNIT, as "active/running". */
#define STATE(unit) "echo $(systemctl show -P ActiveState " unit ")/$(systemctl show -P SubState " unit ")"

START_TEST(test_install_creates_user_and_conffile_and_leaves_service_stopped)
{
	const char *deb = getenv("PGJOBD_DEB"), *root = getenv("PGJOBD_NSPAWN_ROOT");
	char *out;

	ck_assert_msg(deb && *deb && root && *root, "PGJOBD_DEB or PGJOBD_NSPAWN_ROOT unset");
	ck_assert_msg(host(&out, "cp '%s' '%s/var/cache/pgjobd.deb'", deb, root) == 0, "%s", out);
	free(out);
	free(ct_ok("dpkg -i /var/cache/pgjobd.deb"));

	/* A system user (uid below 1000) and group, home the state dir. */
	out = ct_ok("getent passwd pgjobd | cut -d: -f3,6,7");
	ck_assert_msg(atoi(out) > 0 && atoi(out) < 1000, "uid: %s", out);
	ck_assert_msg(strstr(out, ":/var/lib/pgjobd:/usr/sbin/nologin"), "%s", out);
	free(out);
	free(ct_ok("getent group pgjobd"));
	assert_eq_ct("700 pgjobd pgjobd", "stat -c '%%a %%U %%G' /var/lib/pgjobd");
	assert_eq_ct("640 root pgjobd", "stat -c '%%a %%U %%G' /etc/pgjobd/pgjobd.ini");
	out = ct_ok("dpkg-query -W -f='${Conffiles}' pgjobd");
	ck_assert_msg(strstr(out, "/etc/pgjobd/pgjobd.ini "), "conffiles: %s", out);
	free(out);
	free(ct_ok("test -x /usr/sbin/pgjobd && test -f /usr/share/man/man8/pgjobd.8.gz &&"
		   " test -f /usr/share/man/man5/pgjobd.ini.5.gz &&"
		   " test -f /usr/share/pgjobd/sql/001_schema.sql &&"
		   " test -f /usr/share/pgjobd/monitoring.sql &&"
		   " test -f /usr/share/pgjobd/postgres_exporter.yml"));
	/* Installed, not started (it needs a database first), not enabled. */
	assert_eq_ct("inactive/dead", STATE("pgjobd"));
	assert_eq_ct("disabled", "systemctl is-enabled pgjobd");
}
END_TEST

/* As the README says: the schema's owner migrates (it needs CREATEROLE for
 * the group roles the first time), the service logs in as a role that is
 * only a member of pgjobd_daemon. */
START_TEST(test_migrate_as_the_owner_and_run_as_the_daemon_role)
{
	char *out;

	free(ct_ok(PSQL_PG " -c 'CREATE DATABASE jobs'"));
	free(ct_ok("cat > /etc/pgjobd/pgjobd.ini <<'EOF'\n%sEOF", config));
	free(ct_ok("cat > /usr/local/bin/touch-it <<'EOF'\n%sEOF\n"
		   "chmod 0755 /usr/local/bin/touch-it && install -d -o pgjobd -m 0755 "
		   "/etc/pgjobd-open",
	    touch_it));
	out = ct_ok("runuser -u pgjobd -- pgjobd -c /etc/pgjobd/pgjobd.ini -t");
	ck_assert_str_eq(out, "configuration OK");
	free(out);
	free(ct_ok("runuser -u postgres -- env PGDATABASE=jobs pgjobd -c /dev/null --migrate"));
	free(ct_ok(PSQL " -c 'CREATE ROLE pgjobd LOGIN IN ROLE pgjobd_daemon'"));
	assert_eq_ct("0", PSQL " -c 'SELECT count(*) FROM pgjobd.jobs'");
}
END_TEST

/* With the database down the daemon runs but cannot send READY=1: the unit
 * must stay "activating" until the database is back and the daemon ready. */
START_TEST(test_start_reaches_running_only_after_ready)
{
	free(ct_ok("systemctl stop postgresql@15-main"));
	free(ct_ok("systemctl start --no-block pgjobd"));
	ct_wait("yes", 30000,
	    "journalctl -u pgjobd -o cat | grep -q 'database connection failed' && echo yes");
	assert_eq_ct("activating/start", STATE("pgjobd"));
	free(ct_ok("systemctl start postgresql@15-main"));
	ct_wait("active/running", 30000, STATE("pgjobd"));
	/* The daemon's "ready:" line comes before systemd's "Started". */
	assert_eq_ct("ready first", "journalctl -u pgjobd -o cat | awk '/^ready: /{r=NR}"
				    " /^Started /{s=NR} END{print (r && s && r < s) ? \"ready first\" :"
				    " \"ready at \" r \", Started at \" s}'");
}
END_TEST

START_TEST(test_handler_writes_its_state_directory_but_not_etc)
{
	char *result;

	free(ct_ok(PSQL " -c \"SELECT pgjobd.enqueue('touch')\""));
	ct_wait("done", 30000, PSQL " -c \"SELECT state FROM pgjobd.jobs WHERE type = 'touch'\"");
	result = ct_ok(PSQL " -c \"SELECT result FROM pgjobd.jobs WHERE type = 'touch'\"");
	ck_assert_msg(strstr(result, "user: pgjobd\n"), "%s", result);
	ck_assert_msg(strstr(result, "state: written\n"), "%s", result);
	ck_assert_msg(strstr(result, "etc: ") && strstr(result, "Read-only file system"), "%s",
	    result);
	free(result);
	assert_eq_ct("ok", "cat /var/lib/pgjobd/x");
	assert_eq_ct("absent", "test -e /etc/pgjobd-open/x && echo present || echo absent");
}
END_TEST

START_TEST(test_reload_applies_a_new_handler)
{
	char *pid = ct_ok("systemctl show -P MainPID pgjobd"), *pid2;

	free(ct_ok("printf '[handler.late]\\ncommand = /bin/echo late\\n' >> "
		   "/etc/pgjobd/pgjobd.ini"));
	free(ct_ok("systemctl reload pgjobd"));
	free(ct_ok(PSQL " -c \"SELECT pgjobd.enqueue('late')\""));
	ct_wait("done late", 30000,
	    PSQL " -c \"SELECT state || ' ' || result FROM pgjobd.jobs WHERE type = 'late'\"");
	pid2 = ct_ok("systemctl show -P MainPID pgjobd");
	ck_assert_str_eq(pid, pid2);
	free(pid);
	free(pid2);
}
END_TEST

/* A stopped daemon sends no WATCHDOG=1: systemd aborts and restarts it. */
START_TEST(test_watchdog_restarts_a_daemon_that_stops_answering)
{
	char *pid, *pid2, *n0, *want;

	free(ct_ok("mkdir -p /etc/systemd/system/pgjobd.service.d && "
		   "printf '[Service]\\nWatchdogSec=3s\\nRestartSec=1s\\nTimeoutAbortSec=5s\\n"
		   "LimitCORE=0\\n' > /etc/systemd/system/pgjobd.service.d/test-watchdog.conf && "
		   "systemctl daemon-reload && systemctl restart pgjobd"));
	assert_eq_ct("active/running", STATE("pgjobd"));
	pid = ct_ok("systemctl show -P MainPID pgjobd");
	n0 = ct_ok("systemctl show -P NRestarts pgjobd");
	free(ct_ok("kill -STOP %s", pid));
	ck_assert_int_ne(asprintf(&want, "%d active/running", atoi(n0) + 1), -1);
	ct_wait(want, 40000, "echo $(systemctl show -P NRestarts pgjobd) $(" STATE("pgjobd") ")");
	pid2 = ct_ok("systemctl show -P MainPID pgjobd");
	ck_assert_str_ne(pid, pid2);
	free(ct_ok("journalctl -u pgjobd -o cat | grep 'Watchdog timeout'"));
	free(ct_ok("rm /etc/systemd/system/pgjobd.service.d/test-watchdog.conf && "
		   "systemctl daemon-reload && systemctl restart pgjobd"));
	assert_eq_ct("active/running", STATE("pgjobd"));
	free(want);
	free(n0);
	free(pid);
	free(pid2);
}
END_TEST

START_TEST(test_upgrade_restarts_the_service_and_keeps_the_config)
{
	char *pid = ct_ok("systemctl show -P MainPID pgjobd"), *pid2, *ini;

	free(ct_ok("dpkg -i /var/cache/pgjobd.deb"));
	assert_eq_ct("active/running", STATE("pgjobd"));
	pid2 = ct_ok("systemctl show -P MainPID pgjobd");
	ck_assert_str_ne(pid, pid2);
	ini = ct_ok("cat /etc/pgjobd/pgjobd.ini");
	ck_assert_msg(strstr(ini, "; check_systemd: local configuration\n") &&
			  strstr(ini, "[handler.late]"),
	    "the upgrade replaced the changed config:\n%s", ini);
	assert_eq_ct("640 root pgjobd", "stat -c '%%a %%U %%G' /etc/pgjobd/pgjobd.ini");
	free(ini);
	free(pid);
	free(pid2);
}
END_TEST

/* The running handler may finish (shutdown_timeout 30s); exit status 0. */
START_TEST(test_stop_drains_the_running_job_and_exits_0)
{
	free(ct_ok(PSQL " -c \"SELECT pgjobd.enqueue('slow')\""));
	ct_wait("running", 30000, PSQL " -c \"SELECT state FROM pgjobd.jobs WHERE type = 'slow'\"");
	free(ct_ok("systemctl stop pgjobd"));
	assert_eq_ct("done 1", PSQL " -c \"SELECT state || ' ' || attempts FROM pgjobd.jobs"
				    " WHERE type = 'slow'\"");
	assert_eq_ct("inactive/dead", STATE("pgjobd"));
	assert_eq_ct("0 success", "echo $(systemctl show -P ExecMainStatus pgjobd) $(systemctl "
				  "show -P Result pgjobd)");
}
END_TEST

START_TEST(test_instances_run_side_by_side)
{
	char *a, *b;

	for (int i = 0; i < 2; i++) {
		const char *n = i ? "b" : "a";
		free(ct_ok("cat > /etc/pgjobd/%s.ini <<'EOF'\n[pgjobd]\ndatabase = dbname=jobs\n"
			   "name = %s\nqueues = q%s\npoll_interval = 1s\n[handler.echo]\n"
			   "command = /bin/echo %s\nEOF\n"
			   "chgrp pgjobd /etc/pgjobd/%s.ini && chmod 0640 /etc/pgjobd/%s.ini",
		    n, n, n, n, n, n));
	}
	free(ct_ok("systemctl start pgjobd@a pgjobd@b"));
	assert_eq_ct("active/running active/running",
	    "echo $(" STATE("pgjobd@a") ") $(" STATE("pgjobd@b") ")");
	a = ct_ok("systemctl show -P MainPID pgjobd@a");
	b = ct_ok("systemctl show -P MainPID pgjobd@b");
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
	free(ct_ok(PSQL " -c \"SELECT pgjobd.enqueue('echo', queue => 'qa'),"
			" pgjobd.enqueue('echo', queue => 'qb')\""));
	ct_wait("qa a,qb b", 30000,
	    PSQL " -c \"SELECT string_agg(queue || ' ' || rtrim(result, E'\\n'), ',' ORDER BY queue)"
		 " FROM pgjobd.jobs WHERE type = 'echo' AND state = 'done'\"");
	/* (The daemon the watchdog killed left its row behind.) */
	assert_eq_ct("a,b", PSQL " -c \"SELECT string_agg(name, ',' ORDER BY name) FROM "
				 "pgjobd.workers WHERE name IN ('a', 'b')\"");
	assert_eq_ct("pgjobd pgjobd", "stat -c %%U /var/lib/pgjobd/a /var/lib/pgjobd/b | xargs");
}
END_TEST

static void
assert_exposure_at_most_2(const char *unit)
{
	char *out = ct_ok("systemd-analyze security %s", unit), *score;
	double exposure;

	score = strstr(out, "Overall exposure level for ");
	ck_assert_msg(score != NULL, "no exposure level in:\n%s", out);
	score = strchr(score, ':');
	ck_assert_ptr_nonnull(score);
	exposure = strtod(score + 1, NULL);
	ck_assert_msg(exposure <= 2.0, "%s: exposure %.1f is above 2.0:\n%s", unit, exposure, out);
	free(out);
}

START_TEST(test_online_security_exposure_is_at_most_2)
{
	free(ct_ok("systemctl start pgjobd"));
	assert_exposure_at_most_2("pgjobd.service");
	assert_exposure_at_most_2("pgjobd@a.service");
}
END_TEST

/* pgjobd and pgjobd@a run when the package is purged. */
START_TEST(test_purge_stops_the_services_and_removes_the_user)
{
	assert_eq_ct("active/running active/running",
	    "echo $(" STATE("pgjobd") ") $(" STATE("pgjobd@a") ")");
	free(ct_ok("dpkg --purge pgjobd"));
	assert_eq_ct("inactive inactive inactive", "echo $(systemctl show -P ActiveState pgjobd) "
						   "$(systemctl show -P ActiveState pgjobd@a) "
						   "$(systemctl show -P ActiveState pgjobd@b)");
	assert_eq_ct("2 2", "getent passwd pgjobd; p=$?; getent group pgjobd; echo $p $?");
	assert_eq_ct("", "ls -d /var/lib/pgjobd /etc/pgjobd/pgjobd.ini /usr/sbin/pgjobd "
			 "/lib/systemd/system/pgjobd.service 2>/dev/null");
	assert_eq_ct("1", "dpkg-statoverride --list /etc/pgjobd/pgjobd.ini; echo $?");
	/* The administrator's own files stay. */
	assert_eq_ct("/etc/pgjobd/a.ini", "ls /etc/pgjobd/a.ini");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("systemd");
	TCase *tc = tcase_create("systemd");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_install_creates_user_and_conffile_and_leaves_service_stopped);
	tcase_add_test(tc, test_migrate_as_the_owner_and_run_as_the_daemon_role);
	tcase_add_test(tc, test_start_reaches_running_only_after_ready);
	tcase_add_test(tc, test_handler_writes_its_state_directory_but_not_etc);
	tcase_add_test(tc, test_reload_applies_a_new_handler);
	tcase_add_test(tc, test_watchdog_restarts_a_daemon_that_stops_answering);
	tcase_add_test(tc, test_upgrade_restarts_the_service_and_keeps_the_config);
	tcase_add_test(tc, test_stop_drains_the_running_job_and_exits_0);
	tcase_add_test(tc, test_instances_run_side_by_side);
	tcase_add_test(tc, test_online_security_exposure_is_at_most_2);
	tcase_add_test(tc, test_purge_stops_the_services_and_removes_the_user);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
