/*
 * check_metrics: the Prometheus exposition (src/metrics.c) checked line by
 * line by a strict parser of the text format written here, metrics_listen
 * validated, and GET /metrics of the real daemon (PGJOBD_BIN) against the
 * throwaway cluster: the numbers after known jobs, 404 and 405, a unix
 * socket, and clients that misbehave (a request sent byte by byte, a
 * client that never reads, a thousand connections at once) while jobs and
 * other scrapes go on.  Every wait is for a condition, with a deadline.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg.h"
#include "metrics.h"
#include "outcome.h"
#include "testlib.h"

#define READY_MS 20000
#define JOB_MS 20000
#define HTTP_MS 10000
#define FLOOD 1000
#define SERVER_CONNECTIONS 32 /* metrics_http.c's CONNECTIONS */

/* ---- a strict reader of the text format (version 0.0.4) ---- */

struct family {
	char name[128];
	char type[16];
	bool help;
};

struct parse {
	struct family fam[64];
	int nfam;
	char *series[4096]; /* every sample's name and labels, to refuse repeats */
	int nseries;
	double last_bucket; /* the running histogram's cumulative count */
	double inf_bucket;  /* its +Inf bucket, which _count must equal */
	char err[256];
};

static bool
name_char(char c, bool first, bool colon)
{
	return isalpha((unsigned char)c) || c == '_' || (colon && c == ':') ||
	       (!first && isdigit((unsigned char)c));
}

/* A name at *P; advances past it. */
static bool
read_name(const char **p, char *out, size_t len, bool colon)
{
	size_t n = 0;

	if (!name_char(**p, true, colon))
		return false;
	while (name_char(**p, n == 0, colon) && n + 1 < len)
		out[n++] = *(*p)++;
	out[n] = '\0';
	return !name_char(**p, false, colon);
}

static bool
read_value(const char *s, double *v)
{
	char *end;

	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
		*v = s[0] == '-' ? -INFINITY : s[0] == '+' ? INFINITY : NAN;
		return true;
	}
	if (!*s || isspace((unsigned char)*s))
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

static struct family *
family_of(struct parse *ps, const char *name)
{
	for (int i = 0; i < ps->nfam; i++)
		if (!strcmp(ps->fam[i].name, name))
			return &ps->fam[i];
	return NULL;
}

/* The family a sample belongs to: a histogram's NAME_bucket, _sum and
 * _count are NAME's. */
static struct family *
sample_family(struct parse *ps, const char *name, const char **suffix)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	struct family *f;
	char base[128];

	*suffix = "";
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(name), s = strlen(suffixes[i]);
		if (n > s && !strcmp(name + n - s, suffixes[i])) {
			snprintf(base, sizeof base, "%.*s", (int)(n - s), name);
			f = family_of(ps, base);
			if (f && !strcmp(f->type, "histogram")) {
				*suffix = suffixes[i];
				return f;
			}
		}
	}
	return family_of(ps, name);
}

static bool
comment_line(struct parse *ps, const char *line)
{
	char name[128];
	const char *p = line + 7;
	struct family *f;

	if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7)) {
		snprintf(ps->err, sizeof ps->err, "a comment that is neither HELP nor TYPE");
		return false;
	}
	if (!read_name(&p, name, sizeof name, true) || *p != ' ') {
		snprintf(ps->err, sizeof ps->err, "bad metric name");
		return false;
	}
	p++;
	f = family_of(ps, name);
	if (!f) {
		if (ps->nfam == 64)
			return false;
		f = &ps->fam[ps->nfam++];
		snprintf(f->name, sizeof f->name, "%s", name);
	}
	if (line[2] == 'H') {
		if (f->help || f->type[0]) { /* HELP goes first, once */
			snprintf(ps->err, sizeof ps->err, "HELP repeated or after TYPE");
			return false;
		}
		f->help = true;
		return *p != '\0';
	}
	if (f->type[0] || (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") &&
	                   strcmp(p, "summary") && strcmp(p, "untyped"))) {
		snprintf(ps->err, sizeof ps->err, "TYPE repeated or unknown");
		return false;
	}
	snprintf(f->type, sizeof f->type, "%s", p);
	return true;
}

/* {name="value",...}: escapes only \\ \" \n; returns the le label's value. */
static bool
read_labels(struct parse *ps, const char **pp, char *le, size_t lelen)
{
	const char *p = *pp;
	char lname[128], seen[16][128];
	int nseen = 0;

	le[0] = '\0';
	if (*p != '{')
		return true;
	p++;
	while (*p != '}') {
		size_t n = 0;
		char val[256];
		if (!read_name(&p, lname, sizeof lname, false) || *p++ != '=' || *p++ != '"') {
			snprintf(ps->err, sizeof ps->err, "bad label");
			return false;
		}
		for (int i = 0; i < nseen; i++)
			if (!strcmp(seen[i], lname)) {
				snprintf(ps->err, sizeof ps->err, "label %s repeated", lname);
				return false;
			}
		if (nseen < 16)
			snprintf(seen[nseen++], sizeof seen[0], "%s", lname);
		while (*p != '"') {
			if (!*p || *p == '\n')
				return false;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n') {
					snprintf(ps->err, sizeof ps->err, "bad escape \\%c", *p);
					return false;
				}
			}
			if (n + 1 < sizeof val)
				val[n++] = *p;
			p++;
		}
		val[n] = '\0';
		p++;
		if (!strcmp(lname, "le"))
			snprintf(le, lelen, "%s", val);
		if (*p == ',')
			p++;
		else if (*p != '}') {
			snprintf(ps->err, sizeof ps->err, "labels not separated by ,");
			return false;
		}
	}
	*pp = p + 1;
	return true;
}

static bool
sample_line(struct parse *ps, const char *line)
{
	char name[128], le[256];
	const char *p = line, *suffix, *labels;
	struct family *f;
	double v;

	if (!read_name(&p, name, sizeof name, true)) {
		snprintf(ps->err, sizeof ps->err, "bad metric name");
		return false;
	}
	if (!(f = sample_family(ps, name, &suffix)) || !f->type[0]) {
		snprintf(ps->err, sizeof ps->err, "sample before its # TYPE");
		return false;
	}
	labels = p;
	if (!read_labels(ps, &p, le, sizeof le))
		return false;
	if (*p++ != ' ' || !read_value(p, &v)) {
		snprintf(ps->err, sizeof ps->err, "bad value");
		return false;
	}
	if (!strcmp(f->type, "counter") &&
	    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") || v < 0)) {
		snprintf(ps->err, sizeof ps->err, "a counter not named _total, or negative");
		return false;
	}
	if (!strcmp(suffix, "_bucket")) {
		double bound;
		if (!le[0] || !read_value(le, &bound) || v < ps->last_bucket) {
			snprintf(ps->err, sizeof ps->err, "bucket without le or not cumulative");
			return false;
		}
		ps->last_bucket = isinf(bound) ? 0 : v;
		if (isinf(bound))
			ps->inf_bucket = v;
	} else if (!strcmp(suffix, "_count") && v != ps->inf_bucket) {
		snprintf(ps->err, sizeof ps->err, "_count differs from the +Inf bucket");
		return false;
	}
	for (int i = 0; i < ps->nseries; i++)
		if (!strncmp(ps->series[i], line, (size_t)(p - 1 - line)) &&
		    ps->series[i][p - 1 - line] == '\0') {
			snprintf(ps->err, sizeof ps->err, "series repeated");
			return false;
		}
	(void)labels;
	if (ps->nseries < 4096)
		ps->series[ps->nseries++] = strndup(line, (size_t)(p - 1 - line));
	return true;
}

/* Fails the test at the first line that is not valid exposition text. */
static void
assert_prometheus_text(const char *text)
{
	struct parse *ps = calloc(1, sizeof *ps);
	const char *line = text;
	int n = 0;

	ck_assert_msg(*text && text[strlen(text) - 1] == '\n', "empty, or no final newline");
	while (*line) {
		const char *nl = strchr(line, '\n');
		char *l = strndup(line, (size_t)(nl - line));
		bool ok = l[0] == '#' ? comment_line(ps, l) : sample_line(ps, l);
		ck_assert_msg(ok, "line %d is not Prometheus text (%s): %s", n + 1, ps->err, l);
		free(l);
		line = nl + 1;
		n++;
	}
	for (int i = 0; i < ps->nseries; i++)
		free(ps->series[i]);
	free(ps);
}

/* The value of the sample SERIES (name and labels exactly); -1 if absent. */
static double
metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, series, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

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
	assert_prometheus_text(out.p);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"mail\",outcome=\"done\"}"), 3);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"mail\",outcome=\"dead\"}"), 1);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"idle\",outcome=\"done\"}"), 0);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"0.005\"}"), 1);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"10\"}"), 2);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"3600\"}"), 2);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_handler_duration_seconds_bucket{type=\"mail\",le=\"+Inf\"}"), 3);
	ck_assert_double_eq(metric(out.p, "pgjobd_handler_duration_seconds_count{type=\"mail\"}"),
	                    3);
	ck_assert_double_eq_tol(metric(out.p, "pgjobd_handler_duration_seconds_sum{type=\"mail\"}"),
	                        100006.003, 1e-6);
	ck_assert_double_eq(metric(out.p, "pgjobd_spawn_failures_total{type=\"mail\"}"), 1);
	ck_assert_double_eq(metric(out.p, "pgjobd_pickup_delay_seconds_bucket{le=\"0.001\"}"), 1);
	ck_assert_double_eq(metric(out.p, "pgjobd_exchange_duration_seconds_bucket{le=\"0.0025\"}"),
	                    1);
	ck_assert_double_eq(metric(out.p, "pgjobd_exchange_duration_seconds_bucket{le=\"0.001\"}"),
	                    0);
	ck_assert_double_eq(metric(out.p, "pgjobd_leases_lost_total"), 1);
	ck_assert_double_eq(metric(out.p, "pgjobd_db_reconnects_total"), 1);
	ck_assert_double_eq(metric(out.p, "pgjobd_db_up"), 1);
	ck_assert_double_eq(metric(out.p, "pgjobd_handlers_running"), 2);
	ck_assert_double_eq(metric(out.p, "pgjobd_slots"), 8);
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
		ck_assert_msg(metric(out.p, series) == 1, "%s is not counted", series);
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
	assert_prometheus_text(out.p);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"a\\\"b\\\\c\\nd\",outcome=\"done\"}"),
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
	assert_prometheus_text(out.p);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"t0\",outcome=\"done\"}"), 1);
	ck_assert_double_eq(
	    metric(out.p, "pgjobd_jobs_finished_total{type=\"_other\",outcome=\"done\"}"), 50);
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

/* ---- HTTP clients ---- */

/* A port free now on 127.0.0.1 (the kernel's choice). */
static int
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A connected socket to 127.0.0.1:PORT from address FROM (NULL: any);
 * non-blocking when NB, then maybe still connecting; RCVBUF > 0: that
 * receive buffer. */
static int
tcp_connect(int port, const char *from, bool nb, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nb ? SOCK_NONBLOCK : 0), 0);

	ck_assert_int_ge(fd, 0);
	/* Before connecting, so that the window is small from the start. */
	if (rcvbuf > 0)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
	if (from) {
		struct sockaddr_in me = {.sin_family = AF_INET};
		inet_pton(AF_INET, from, &me.sin_addr);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
	}
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		ck_assert_msg(nb && errno == EINPROGRESS, "connect: %s", strerror(errno));
	return fd;
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void
send_all(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);
		ck_assert_msg(w > 0, "write: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

/* Everything until EOF, within HTTP_MS; the status in *STATUS, the body
 * returned (malloc'd). */
static char *
read_response(int fd, int *status)
{
	int64_t deadline = t_now_ms() + HTTP_MS;
	size_t len = 0;
	char *buf = calloc(1, 1), *body;

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = deadline - t_now_ms();
		char chunk[65536];
		ssize_t n;

		ck_assert_msg(left > 0 && poll(&p, 1, (int)left) == 1, "no response within %d ms",
		              HTTP_MS);
		n = read(fd, chunk, sizeof chunk);
		if (n <= 0)
			break;
		buf = realloc(buf, len + (size_t)n + 1);
		memcpy(buf + len, chunk, (size_t)n);
		len += (size_t)n;
		buf[len] = '\0';
	}
	close(fd);
	ck_assert_msg(sscanf(buf, "HTTP/1.%*d %d", status) == 1, "not HTTP: %s", buf);
	body = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body = strdup(body + 4);
	free(buf);
	return body;
}

static char *
request(int fd, const char *method, const char *path, int *status)
{
	char req[256];

	snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", method,
	         path);
	send_all(fd, req);
	return read_response(fd, status);
}

/* GET /metrics from FROM (NULL: any address), asserting 200 and valid text. */
static char *
scrape_from(int port, const char *from)
{
	int status;
	char *body = request(tcp_connect(port, from, false, 0), "GET", "/metrics", &status);

	ck_assert_int_eq(status, 200);
	assert_prometheus_text(body);
	return body;
}

static char *
scrape(int port)
{
	return scrape_from(port, NULL);
}

/* Scrape until SERIES reads WANT, or fail after TIMEOUT_MS. */
static void
wait_metric(int port, const char *series, double want, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	double v;

	for (;;) {
		char *body = scrape(port);
		v = metric(body, series);
		free(body);
		if (v == want)
			return;
		ck_assert_msg(t_now_ms() < deadline, "%s is %g, not %g, after %d ms", series, v,
		              want, timeout_ms);
		poll(NULL, 0, 20);
	}
}

/* ---- the daemon ---- */

struct env {
	struct t_daemon *d;
	PGconn *c;
	int port;
	char *config;
};

static void
migrate(const char *cfg)
{
	const char *argv[] = {t_pgjobd(), "-c", cfg, "--migrate", NULL};
	char *out, *err;

	ck_assert_int_eq(t_run(argv, &out, &err, 30000), 0);
	free(out);
	free(err);
}

/* A fresh database, migrated, and a daemon serving metrics on a free
 * port (or LISTEN when given) with EXTRA handlers. */
static void
start(struct env *e, const char *db, const char *listen_on, const char *extra)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char *text, addr[64], *env[2] = {NULL, NULL};

	t_use_fresh_db(db);
	e->port = free_port();
	snprintf(addr, sizeof addr, "127.0.0.1:%d", e->port);
	ck_assert_int_ne(asprintf(&text,
	                          "lease = 2s\nheartbeat = 200ms\npoll_interval = 500ms\n"
	                          "kill_grace = 500ms\nmetrics_listen = %s\n"
	                          "[handler.ok]\ncommand = /bin/cat\n"
	                          "[handler.bad]\ncommand = /bin/false\nmax_attempts = 1\n%s",
	                          listen_on ? listen_on : addr, extra ? extra : ""),
	                 -1);
	e->config = t_config(text);
	free(text);
	migrate(e->config);
	/* ASan holds freed memory in quarantine (256 MiB by default): that
	 * would read as growth in the RSS checks.  Ignored by a plain build. */
	ck_assert_int_ne(asprintf(&env[0], "ASAN_OPTIONS=%s%squarantine_size_mb=1",
	                          asan ? asan : "", asan && *asan ? ":" : ""),
	                 -1);
	e->d = t_daemon_start(e->config, env);
	free(env[0]);
	t_daemon_wait_log(e->d, "ready:", READY_MS);
	e->c = t_connect();
}

static void
stop(struct env *e)
{
	PQfinish(e->c);
	ck_assert_int_eq(t_daemon_stop(e->d), 0);
	unlink(e->config);
	free(e->config);
}

static void
enqueue(struct env *e, const char *type, int n)
{
	for (int i = 0; i < n; i++)
		PQclear(t_exec(e->c, "SELECT pgjobd.enqueue($1, '{}')", type, NULL));
}

/* The daemon's resident set in KiB, and its open descriptors. */
static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int
open_fds(pid_t pid)
{
	char path[64];
	int n = 0;
	FILE *p;

	snprintf(path, sizeof path, "ls /proc/%d/fd | wc -l", (int)pid);
	ck_assert_ptr_nonnull(p = popen(path, "r"));
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

START_TEST(test_scrape_counts_jobs_by_type_and_outcome)
{
	struct env e;
	char *body, *gone = t_write_temp(".sh", "#!/bin/sh\nexit 0\n");
	char extra[512];
	int status;

	chmod(gone, 0755);
	snprintf(extra, sizeof extra, "[handler.gone]\ncommand = %s\nmax_attempts = 1\n", gone);
	start(&e, "metrics_counts", NULL, extra);
	/* Executable when the config was read, not when the job starts. */
	chmod(gone, 0644);
	enqueue(&e, "ok", 3);
	enqueue(&e, "bad", 1);
	enqueue(&e, "gone", 1);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 3, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"bad\",outcome=\"dead\"}", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"gone\",outcome=\"dead\"}", 1,
	            JOB_MS);
	body = scrape(e.port);
	ck_assert_double_eq(
	    metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"dead\"}"), 0);
	ck_assert_double_eq(
	    metric(body, "pgjobd_jobs_finished_total{type=\"bad\",outcome=\"done\"}"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_handler_duration_seconds_count{type=\"ok\"}"), 3);
	ck_assert_double_eq(metric(body, "pgjobd_handler_duration_seconds_count{type=\"bad\"}"), 1);
	ck_assert_double_eq(metric(body, "pgjobd_handler_duration_seconds_count{type=\"gone\"}"),
	                    0);
	ck_assert_double_eq(metric(body, "pgjobd_spawn_failures_total{type=\"gone\"}"), 1);
	ck_assert_double_eq(metric(body, "pgjobd_spawn_failures_total{type=\"ok\"}"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_pickup_delay_seconds_count"), 5);
	ck_assert_double_eq(metric(body, "pgjobd_leases_lost_total"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_db_reconnects_total"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_db_up"), 1);
	ck_assert_double_gt(metric(body, "pgjobd_exchange_duration_seconds_count"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_handlers_running"), 0);
	ck_assert_double_eq(metric(body, "pgjobd_slots"), 4);
	free(body);
	/* What the database says agrees. */
	ck_assert_int_eq(
	    t_int(e.c, "SELECT count(*) FROM pgjobd.jobs WHERE type = 'ok' AND state = 'done'",
	          NULL),
	    3);
	body = request(tcp_connect(e.port, NULL, false, 0), "GET", "/", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = request(tcp_connect(e.port, NULL, false, 0), "GET", "/metrics/x", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = request(tcp_connect(e.port, NULL, false, 0), "POST", "/metrics", &status);
	ck_assert_int_eq(status, 405);
	free(body);
	stop(&e);
	unlink(gone);
	free(gone);
}
END_TEST

START_TEST(test_serves_on_a_unix_socket_and_removes_it_at_stop)
{
	struct env e;
	char path[108], listen_on[128], *body;
	const char *dir = getenv("TMPDIR");
	struct stat st;
	int status;

	snprintf(path, sizeof path, "%s/pgjobd-metrics-%d.sock", dir && *dir ? dir : "/tmp",
	         (int)getpid());
	snprintf(listen_on, sizeof listen_on, "%s", path);
	start(&e, "metrics_unix", listen_on, NULL);
	enqueue(&e, "ok", 1);
	t_wait_value(e.c, "1", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	for (int64_t deadline = t_now_ms() + JOB_MS;;) {
		body = request(unix_connect(path), "GET", "/metrics", &status);
		ck_assert_int_eq(status, 200);
		assert_prometheus_text(body);
		if (metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}") == 1)
			break;
		free(body);
		ck_assert_msg(t_now_ms() < deadline, "the job is not counted");
		poll(NULL, 0, 20);
	}
	free(body);
	stop(&e);
	ck_assert_int_lt(lstat(path, &st), 0);
}
END_TEST

START_TEST(test_request_sent_byte_by_byte_delays_no_job_or_scrape)
{
	static const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: slow\r\nConnection: close\r\n\r\n";
	struct env e;
	char *body, sql[256], *seen;
	int slow, status;

	start(&e, "metrics_slow", NULL, NULL);
	slow = tcp_connect(e.port, NULL, false, 0);
	for (size_t i = 0; i < sizeof req - 2; i++) {
		char c[2] = {req[i], '\0'};
		send_all(slow, c);
		/* Half a request is waiting: others are served meanwhile. */
		free(scrape(e.port));
		if (i == 3) {
			enqueue(&e, "ok", 1);
			wait_metric(e.port,
			            "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 1,
			            JOB_MS);
			/* And the heartbeat goes on. */
			seen = t_str(e.c, "SELECT last_seen::text FROM pgjobd.workers", NULL);
			snprintf(
			    sql, sizeof sql,
			    "SELECT (max(last_seen) > '%s'::timestamptz)::text FROM pgjobd.workers",
			    seen);
			t_wait_value(e.c, "true", JOB_MS, sql);
			free(seen);
		}
	}
	send_all(slow, "\n");
	body = read_response(slow, &status);
	ck_assert_int_eq(status, 200);
	assert_prometheus_text(body);
	ck_assert_double_eq(
	    metric(body, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}"), 1);
	free(body);
	stop(&e);
}
END_TEST

START_TEST(test_client_that_never_reads_blocks_nothing)
{
	struct buf types = {0};
	struct env e;
	char *body, *req;
	long rss0;
	int lazy, small = 1024;
	size_t size;

	/* Many types make a response of tens of KiB, more than the socket
	 * buffers on both sides hold. */
	for (int i = 0; i < 60; i++)
		buf_printf(&types, "[handler.type%02d]\ncommand = /bin/cat\n", i);
	start(&e, "metrics_lazy", NULL, types.p);
	free(types.p);
	body = scrape(e.port);
	size = strlen(body);
	free(body);
	ck_assert_uint_gt(size, 32 * 1024);
	rss0 = rss_kib(e.d->pid);
	lazy = tcp_connect(e.port, NULL, false, small);
	/* A hundred requests in one go, keep-alive, and nothing read back. */
	req = calloc(100, 64);
	for (int i = 0; i < 100; i++)
		strcat(req, "GET /metrics HTTP/1.1\r\nHost: lazy\r\n\r\n");
	send_all(lazy, req);
	free(req);
	enqueue(&e, "ok", 2);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 2, JOB_MS);
	free(scrape(e.port));
	/* Bounded: one response in flight for it, not a hundred.  Measured on
	 * the plain build only: under ASan, RSS is mostly the sanitizer's own
	 * (redzones, shadow memory, allocator caches) and grows with every
	 * allocation whatever the daemon keeps; there the test proves the rest
	 * (jobs and other scrapes go on) and LeakSanitizer that nothing leaks. */
	if (!strstr(t_pgjobd(), "/asan/"))
		ck_assert_int_lt(rss_kib(e.d->pid), rss0 + (long)(100 * size / 1024) / 2);
	close(lazy);
	stop(&e);
}
END_TEST

/* True once FD has seen EOF or a reset; reads what came before. */
static bool
closed_by_peer(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN);
}

START_TEST(test_thousand_connections_are_capped_and_jobs_go_on)
{
	static const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n";
	struct rlimit rl;
	struct env e;
	int *fds = calloc(FLOOD, sizeof *fds), fds0, done;
	bool *over = calloc(FLOOD, sizeof *over), *sent = calloc(FLOOD, sizeof *sent);
	long rss0;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < FLOOD + 100) {
		ck_assert_msg(rl.rlim_max >= FLOOD + 100, "RLIMIT_NOFILE hard limit too low");
		rl.rlim_cur = rl.rlim_max;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	start(&e, "metrics_flood", NULL, NULL);
	free(scrape(e.port));
	fds0 = open_fds(e.d->pid);
	rss0 = rss_kib(e.d->pid);
	for (int i = 0; i < FLOOD; i++)
		fds[i] = tcp_connect(e.port, NULL, true, 0);
	/* The flood holds, sending nothing: the daemon goes on running jobs... */
	enqueue(&e, "ok", 3);
	t_wait_value(e.c, "3", JOB_MS, "SELECT count(*) FROM pgjobd.jobs WHERE state = 'done'");
	/* ...another address still gets its scrape (one address holds only a
	 * few connections)... */
	free(scrape_from(e.port, "127.0.0.2"));
	/* ...and holds no more connections than its cap. */
	ck_assert_int_le(open_fds(e.d->pid), fds0 + SERVER_CONNECTIONS);
	/*
	 * Then every connection asks: each is answered and closed, or was
	 * refused.  (Sending matters: a connection the kernel's full accept
	 * queue dropped looks open to the client until it sends.)
	 */
	for (int64_t deadline = t_now_ms() + 60000;;) {
		done = 0;
		for (int i = 0; i < FLOOD; i++) {
			if (!sent[i] && !over[i]) {
				ssize_t w =
				    send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				sent[i] = w == (ssize_t)sizeof req - 1;
				over[i] = w < 0 && errno != EAGAIN && errno != ENOTCONN;
			}
			over[i] = over[i] || (sent[i] && closed_by_peer(fds[i]));
			done += over[i];
		}
		if (done == FLOOD)
			break;
		ck_assert_int_le(open_fds(e.d->pid), fds0 + SERVER_CONNECTIONS);
		ck_assert_msg(t_now_ms() < deadline, "%d of %d connections still open",
		              FLOOD - done, FLOOD);
		poll(NULL, 0, 50);
	}
	/* RSS on the plain build only (see the client that never reads). */
	if (!strstr(t_pgjobd(), "/asan/"))
		ck_assert_int_lt(rss_kib(e.d->pid), rss0 + 16 * 1024);
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	free(fds);
	free(over);
	free(sent);
	free(scrape(e.port));
	stop(&e);
}
END_TEST

START_TEST(test_address_in_use_is_fatal_at_start)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char *text, *cfg, want[96];
	struct t_daemon *d;

	t_use_fresh_db("metrics_in_use");
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	ck_assert_int_ne(
	    asprintf(&text, "metrics_listen = 127.0.0.1:%d\n[handler.ok]\ncommand = /bin/cat\n",
	             ntohs(sa.sin_port)),
	    -1);
	cfg = t_config(text);
	migrate(cfg);
	d = t_daemon_start(cfg, NULL);
	snprintf(want, sizeof want, "metrics_listen 127.0.0.1:%d: Address already in use",
	         ntohs(sa.sin_port));
	t_daemon_wait_log(d, want, 20000);
	ck_assert_int_eq(t_daemon_wait(d, 20000), 1);
	close(fd);
	free(text);
	unlink(cfg);
	free(cfg);
}
END_TEST

/* A crash of the server (pg_ctl -m immediate) while the daemon runs. */
START_TEST(test_database_restart_counts_one_reconnect)
{
	const char *src = getenv("PGJOBD_SRCDIR");
	char *path, *out, *err;
	struct env e;

	start(&e, "metrics_reconnect", NULL, NULL);
	wait_metric(e.port, "pgjobd_db_up", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_db_reconnects_total", 0, JOB_MS);
	/* The throwaway cluster runs with synchronous_commit = off: without a
	 * checkpoint the crash could take the migration with it. */
	PQclear(t_exec(e.c, "CHECKPOINT", NULL));
	PQfinish(e.c);
	ck_assert_int_ne(asprintf(&path, "%s/tests/pgctl.sh", src && *src ? src : "."), -1);
	{
		const char *argv[] = {"/bin/sh", path, "restart", NULL};
		ck_assert_msg(t_run(argv, &out, &err, 90000) == 0, "pgctl.sh restart: %s", err);
	}
	free(out);
	free(err);
	free(path);
	wait_metric(e.port, "pgjobd_db_reconnects_total", 1, 60000);
	wait_metric(e.port, "pgjobd_db_up", 1, JOB_MS);
	/* And jobs run again. */
	e.c = t_connect();
	enqueue(&e, "ok", 1);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"ok\",outcome=\"done\"}", 1, JOB_MS);
	stop(&e);
}
END_TEST

START_TEST(test_lost_lease_is_counted_and_running_handlers_shown)
{
	struct env e;

	start(&e, "metrics_lost", NULL, "[handler.hold]\ncommand = /bin/sleep 60\n");
	enqueue(&e, "hold", 1);
	wait_metric(e.port, "pgjobd_handlers_running", 1, JOB_MS);
	/* Another worker's lease now, as after an expiry and a rescue. */
	PQclear(t_exec(e.c, "UPDATE pgjobd.jobs SET lease_token = lease_token + 1000000", NULL));
	wait_metric(e.port, "pgjobd_leases_lost_total", 1, JOB_MS);
	wait_metric(e.port, "pgjobd_jobs_finished_total{type=\"hold\",outcome=\"lost\"}", 1,
	            JOB_MS);
	wait_metric(e.port, "pgjobd_handlers_running", 0, JOB_MS);
	stop(&e);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("exposition");
	TCase *td = tcase_create("daemon");

	tcase_add_test(tc, test_exposition_parses_and_counts);
	tcase_add_test(tc, test_every_outcome_has_its_series);
	tcase_add_test(tc, test_label_values_are_escaped);
	tcase_add_test(tc, test_types_past_the_cap_share_one_series);
	tcase_add_test(tc, test_metrics_listen_accepts_numeric_addresses_and_paths_only);
	tcase_add_test(tc, test_bad_metrics_listen_is_reported_at_its_line);
	suite_add_tcase(s, tc);
	tcase_set_timeout(td, 180);
	tcase_add_test(td, test_scrape_counts_jobs_by_type_and_outcome);
	tcase_add_test(td, test_serves_on_a_unix_socket_and_removes_it_at_stop);
	tcase_add_test(td, test_address_in_use_is_fatal_at_start);
	tcase_add_test(td, test_database_restart_counts_one_reconnect);
	tcase_add_test(td, test_lost_lease_is_counted_and_running_handlers_shown);
	tcase_add_test(td, test_request_sent_byte_by_byte_delays_no_job_or_scrape);
	tcase_add_test(td, test_client_that_never_reads_blocks_nothing);
	tcase_add_test(td, test_thousand_connections_are_capped_and_jobs_go_on);
	suite_add_tcase(s, td);
	return t_run_suite(s);
}
