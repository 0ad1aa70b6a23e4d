/*
 * check_ops: what an operator relies on besides the daemon: `make install`
 * and `make uninstall`, the systemd units (systemd-analyze verify and
 * security), the man pages (render without warnings, document every config
 * key), and the monitoring queries of contrib/ against a populated database.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "testlib.h"

static const char *
srcdir(void)
{
	const char *s = getenv("PGJOBD_SRCDIR");

	return s && *s ? s : ".";
}

static char *
path_in(const char *dir, const char *rel)
{
	char *p;

	ck_assert_int_ne(asprintf(&p, "%s/%s", dir, rel), -1);
	return p;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	if (getdelim(&buf, &cap, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

/* Run a shell command line; returns its exit status, output in *OUT. */
static int
sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
sh(char **out, const char *fmt, ...)
{
	va_list ap;
	char *cmd, *err, *both;
	int rc;

	va_start(ap, fmt);
	ck_assert_int_ne(vasprintf(&cmd, fmt, ap), -1);
	va_end(ap);
	{
		const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
		rc = t_run(argv, out ? &both : NULL, &err, 120000);
	}
	if (out) {
		ck_assert_int_ne(asprintf(out, "%s%s", both, err), -1);
		free(both);
	}
	free(err);
	free(cmd);
	return rc;
}

static void
list_files(const char *root, const char *rel, char **acc)
{
	char *dir = path_in(root, rel);
	DIR *d = opendir(dir);
	struct dirent *e;

	ck_assert_msg(d != NULL, "opendir %s", dir);
	while ((e = readdir(d)) != NULL) {
		char *sub, *full, *line;
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		ck_assert_int_ne(asprintf(&sub, "%s/%s", rel, e->d_name), -1);
		full = path_in(root, sub);
		ck_assert_int_eq(lstat(full, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			list_files(root, sub, acc);
		} else {
			ck_assert_int_ne(asprintf(&line, "%s%04o %s\n", *acc, st.st_mode & 07777, sub),
			    -1);
			free(*acc);
			*acc = line;
		}
		free(sub);
		free(full);
	}
	closedir(d);
	free(dir);
}

static char *
temp_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *d;

	ck_assert_int_ne(asprintf(&d, "%s/pgjobd-dest-XXXXXX", t && *t ? t : "/tmp"), -1);
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

START_TEST(test_install_lays_out_files_with_modes_and_uninstall_removes_them)
{
	char *dest = temp_dir(), *out, *files = strdup(""), *unit;
	/* Compared as a set (readdir order is arbitrary): each must be there,
	 * and nothing else. */
	static const char *const want[] = {
		"0640 /etc/pgjobd/pgjobd.ini",
		"0644 /lib/systemd/system/pgjobd.service",
		"0644 /lib/systemd/system/pgjobd@.service",
		"0755 /usr/sbin/pgjobd",
		"0644 /usr/share/man/man5/pgjobd.ini.5",
		"0644 /usr/share/man/man8/pgjobd.8",
		"0644 /usr/share/pgjobd/monitoring.sql",
		"0644 /usr/share/pgjobd/postgres_exporter.yml",
		"0644 /usr/share/pgjobd/sql/001_schema.sql",
		"0644 /usr/share/pgjobd/sql/002_worker_types.sql",
		"0644 /usr/share/pgjobd/sql/003_storage.sql",
		"0644 /usr/share/pgjobd/sql/004_roles.sql",
		"0644 /usr/share/pgjobd/sql/005_schedules.sql",
		"0644 /usr/share/pgjobd/sql/006_attempt_counts.sql",
		"0644 /usr/share/pgjobd/sql/007_later.sql",
	};
	int n = 0;

	ck_assert_msg(sh(&out, "make -s -C '%s' install DESTDIR='%s' PREFIX=/usr", srcdir(), dest) ==
			  0,
	    "make install failed:\n%s", out);
	free(out);
	list_files(dest, "", &files);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char *line;
		ck_assert_int_ne(asprintf(&line, "%s\n", want[i]), -1);
		ck_assert_msg(strstr(files, line) != NULL, "missing \"%s\" in:\n%s", want[i], files);
		free(line);
	}
	for (char *p = files; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	ck_assert_msg(n == (int)(sizeof want / sizeof want[0]), "unexpected files:\n%s", files);
	free(files);
	/* The installed units run the installed binary. */
	unit = path_in(dest, "lib/systemd/system/pgjobd.service");
	out = slurp(unit);
	ck_assert_msg(strstr(out, "ExecStart=/usr/sbin/pgjobd -c /etc/pgjobd/pgjobd.ini\n"), "%s",
	    out);
	free(out);
	free(unit);

	/* A changed config survives uninstall; everything else goes. */
	{
		char *ini = path_in(dest, "etc/pgjobd/pgjobd.ini");
		FILE *f = fopen(ini, "a");
		ck_assert_ptr_nonnull(f);
		fputs("; local change\n", f);
		fclose(f);
		free(ini);
	}
	ck_assert_msg(sh(&out, "make -s -C '%s' uninstall DESTDIR='%s' PREFIX=/usr", srcdir(),
			  dest) == 0,
	    "make uninstall failed:\n%s", out);
	free(out);
	files = strdup("");
	list_files(dest, "", &files);
	ck_assert_str_eq(files, "0640 /etc/pgjobd/pgjobd.ini\n");
	free(files);
	ck_assert_int_eq(sh(NULL, "rm -rf '%s'", dest), 0);
	free(dest);
}
END_TEST

/* verify with the binary path pointed at a DESTDIR install, and the man
 * pages found there, so every reference in the unit resolves. */
static void
check_unit(const char *dest, const char *unit)
{
	char *out, *score;
	double exposure;

	ck_assert_msg(sh(&out,
			  "sed 's|/usr/sbin/pgjobd|%s/usr/sbin/pgjobd|g' '%s/systemd/%s' > '%s/%s' && "
			  "MANPATH='%s/usr/share/man' systemd-analyze verify '%s/%s'",
			  dest, srcdir(), unit, dest, unit, dest, dest, unit) == 0,
	    "systemd-analyze verify %s:\n%s", unit, out);
	ck_assert_msg(strstr(out, unit) == NULL, "verify complained about %s:\n%s", unit, out);
	free(out);
	ck_assert_msg(
	    sh(&out, "systemd-analyze security --offline=true '%s/systemd/%s'", srcdir(), unit) == 0,
	    "systemd-analyze security %s:\n%s", unit, out);
	score = strstr(out, "Overall exposure level for ");
	ck_assert_msg(score != NULL, "no exposure level in:\n%s", out);
	score = strchr(score, ':');
	ck_assert_ptr_nonnull(score);
	exposure = strtod(score + 1, NULL);
	ck_assert_msg(exposure <= 2.0, "%s: exposure %.1f is above 2.0", unit, exposure);
	free(out);
}

START_TEST(test_units_verify_and_expose_at_most_2)
{
	char *dest = temp_dir(), *out;

	ck_assert_msg(sh(&out, "make -s -C '%s' install DESTDIR='%s' PREFIX=/usr", srcdir(), dest) ==
			  0,
	    "make install failed:\n%s", out);
	free(out);
	check_unit(dest, "pgjobd.service");
	check_unit(dest, "pgjobd@.service");
	ck_assert_int_eq(sh(NULL, "rm -rf '%s'", dest), 0);
	free(dest);
}
END_TEST

START_TEST(test_man_pages_render_without_warnings)
{
	static const char *const pages[] = {"src/pgjobd.8", "src/pgjobd.ini.5"};

	for (size_t i = 0; i < 2; i++) {
		char *out;
		/* groff -ww: every warning; -z: no output, only diagnostics. */
		ck_assert_int_eq(sh(&out, "groff -ww -mandoc -z '%s/%s' 2>&1", srcdir(), pages[i]), 0);
		ck_assert_msg(*out == '\0', "%s: groff warnings:\n%s", pages[i], out);
		free(out);
		ck_assert_int_eq(sh(&out, "MANWIDTH=80 man -l '%s/%s' 2>&1 >/dev/null", srcdir(),
				     pages[i]),
		    0);
		ck_assert_msg(*out == '\0', "%s: man -l warnings:\n%s", pages[i], out);
		free(out);
	}
}
END_TEST

START_TEST(test_every_config_key_is_in_the_ini_man_page)
{
	char *page_path = path_in(srcdir(), "src/pgjobd.ini.5");
	char *page = slurp(page_path);
	const char *const *keys = cfg_key_names();
	int n = 0;

	for (; keys[n]; n++) {
		char *item;
		ck_assert_int_ne(asprintf(&item, "\n.It Cm %s ", keys[n]), -1);
		ck_assert_msg(strstr(page, item) != NULL, "pgjobd.ini(5) does not document %s",
		    keys[n]);
		free(item);
	}
	ck_assert_int_ge(n, 19);
	free(page);
	free(page_path);
}
END_TEST

START_TEST(test_monitoring_queries_run_on_a_populated_database)
{
	char *out, *cfg = t_config("");
	PGconn *c;

	t_use_fresh_db("pgjobd_ops");
	ck_assert_int_eq(sh(&out, "'%s' -c '%s' --migrate", t_pgjobd(), cfg), 0);
	free(out);
	c = t_connect();
	/* Every state, two queues, attempts and a stale worker. */
	PQclear(t_exec(c,
	    "SELECT pgjobd.enqueue('t' || (i % 3), jsonb_build_object('i', i),"
	    "  CASE WHEN i % 2 = 0 THEN 'default' ELSE 'other' END)"
	    "  FROM generate_series(1, 60) i",
	    NULL));
	PQclear(t_exec(c,
	    "UPDATE pgjobd.jobs SET state = 'running', attempts = 1, worker = 'w1',"
	    " started_at = now() - interval '5 min', lease_token = nextval('pgjobd.lease_token_seq'),"
	    " lease_expires_at = now() + interval '1 min' WHERE id % 6 = 1",
	    NULL));
	PQclear(t_exec(c,
	    "UPDATE pgjobd.jobs SET state = 'done', attempts = 1, finished_at = now()"
	    " WHERE id % 6 = 2",
	    NULL));
	PQclear(t_exec(c,
	    "UPDATE pgjobd.jobs SET state = 'dead', attempts = 5, finished_at = now(),"
	    " last_error = E'exit code 1\\nboom' WHERE id % 6 = 3",
	    NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET state = 'cancelled' WHERE id % 6 = 4", NULL));
	PQclear(t_exec(c, "UPDATE pgjobd.jobs SET run_at = now() + interval '1 h' WHERE id % 6 = 5",
	    NULL));
	PQclear(t_exec(c,
	    "INSERT INTO pgjobd.attempts (job_id, attempt, worker, started_at, finished_at, outcome)"
	    " SELECT id, 1, 'w1', now() - interval '10 min', now() - (id || ' min')::interval,"
	    "  CASE WHEN state = 'dead' THEN 'dead' ELSE 'done' END"
	    " FROM pgjobd.jobs WHERE state IN ('done', 'dead')",
	    NULL));
	PQclear(t_exec(c,
	    "INSERT INTO pgjobd.workers (name, host, pid, concurrency, last_seen)"
	    " VALUES ('w1', 'h', 1, 4, now() - interval '10 min'), ('w2', 'h', 2, 4, now())",
	    NULL));

	/* The psql queries: all must run; check a few answers. */
	ck_assert_msg(sh(&out, "psql -X -v ON_ERROR_STOP=1 -f '%s/contrib/monitoring.sql'",
			  srcdir()) == 0,
	    "monitoring.sql failed:\n%s", out);
	ck_assert_msg(strstr(out, "exit code 1") != NULL, "dead jobs' errors missing:\n%s", out);
	ck_assert_msg(strstr(out, " w1 ") != NULL, "stale worker w1 missing:\n%s", out);
	ck_assert_msg(strstr(out, " w2 ") == NULL, "fresh worker w2 listed as stale:\n%s", out);
	free(out);

	/* The postgres_exporter queries: each "query: |" block, run alone. */
	{
		char *yml_path = path_in(srcdir(), "contrib/postgres_exporter.yml");
		char *yml = slurp(yml_path), *p = yml;
		int nq = 0;

		while ((p = strstr(p, "query: |\n")) != NULL) {
			char *sql = NULL;
			size_t len = 0;
			FILE *mem = open_memstream(&sql, &len);
			PGresult *r;

			p += strlen("query: |\n");
			/* The block: lines indented by four or more spaces. */
			while (!strncmp(p, "    ", 4)) {
				char *eol = strchr(p, '\n');
				fwrite(p + 4, 1, (size_t)(eol - p - 4) + 1, mem);
				p = eol + 1;
			}
			fclose(mem);
			r = t_exec(c, sql, NULL);
			ck_assert_int_gt(PQntuples(r), 0);
			PQclear(r);
			free(sql);
			nq++;
		}
		ck_assert_int_eq(nq, 2);
		free(yml);
		free(yml_path);
	}
	PQfinish(c);
	unlink(cfg);
	free(cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_install_lays_out_files_with_modes_and_uninstall_removes_them);
	tcase_add_test(tc, test_units_verify_and_expose_at_most_2);
	tcase_add_test(tc, test_man_pages_render_without_warnings);
	tcase_add_test(tc, test_every_config_key_is_in_the_ini_man_page);
	tcase_add_test(tc, test_monitoring_queries_run_on_a_populated_database);
	suite_add_tcase(s, tc);
	return t_run_suite(s);
}
