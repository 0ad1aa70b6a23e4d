/* metrics: see metrics.h. */
#include "metrics.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define OTHER_TYPE "_other"
#define MAX_BUCKETS 16

/* Upper bounds, in seconds; +Inf is implicit.  Handlers run from
 * milliseconds to an hour; a pickup waits from a NOTIFY's round trip to a
 * backlog's minutes; an exchange is one short transaction. */
static const double handler_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                        2.5,   5,    10,    30,   60,  300,  900, 3600};
static const double pickup_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,   5,    10,    30,   60,  300,  3600};
static const double exchange_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

/* Must match metrics.h and outcome.h's outcome_names (metrics knows no job). */
static const char *const outcomes[] = {"done",          "retry",           "dead",      "release",
                                       METRICS_REFUSED, METRICS_CANCELLED, METRICS_LOST};
#define NOUTCOMES nitems(outcomes)

struct histogram {
	const double *bounds;
	int nbounds;
	uint64_t counts[MAX_BUCKETS]; /* not cumulative; the exposition sums them */
	uint64_t count;
	double sum;
};

struct type_metrics {
	char *type;
	uint64_t finished[NOUTCOMES];
	uint64_t spawn_failures;
	struct histogram duration;
};

static struct {
	struct type_metrics *types;
	int ntypes, cap;
	bool other_used; /* the last entry is OTHER_TYPE */
	struct histogram pickup, exchange;
	uint64_t leases_lost, db_connects;
	bool db_up;
	int running, slots;
} m;

static void
histogram_init(struct histogram *h, const double *bounds, int n)
{
	*h = (struct histogram){.bounds = bounds, .nbounds = n};
}

static void
observe(struct histogram *h, double v)
{
	int i = 0;

	while (i < h->nbounds && v > h->bounds[i])
		i++;
	if (i < h->nbounds)
		h->counts[i]++;
	h->count++;
	h->sum += v;
}

static void
init_once(void)
{
	if (m.pickup.bounds)
		return;
	histogram_init(&m.pickup, pickup_bounds, (int)nitems(pickup_bounds));
	histogram_init(&m.exchange, exchange_bounds, (int)nitems(exchange_bounds));
}

static struct type_metrics *
add_type(const char *type)
{
	struct type_metrics *t;

	if (m.ntypes == m.cap) {
		m.cap = m.cap ? 2 * m.cap : 8;
		m.types = xreallocarray(m.types, (size_t)m.cap, sizeof *m.types);
	}
	t = &m.types[m.ntypes++];
	*t = (struct type_metrics){.type = xstrdup(type)};
	histogram_init(&t->duration, handler_bounds, (int)nitems(handler_bounds));
	return t;
}

/* TYPE's entry, made on first use; past METRICS_MAX_TYPES, OTHER_TYPE's. */
static struct type_metrics *
type_of(const char *type)
{
	init_once();
	for (int i = 0; i < m.ntypes; i++)
		if (!strcmp(m.types[i].type, type))
			return &m.types[i];
	if (m.ntypes < METRICS_MAX_TYPES)
		return add_type(type);
	if (!m.other_used) {
		m.other_used = true;
		return add_type(OTHER_TYPE);
	}
	return &m.types[m.ntypes - 1];
}

void
metrics_declare_type(const char *type)
{
	(void)type_of(type);
}

void
metrics_job_finished(const char *type, const char *outcome)
{
	struct type_metrics *t = type_of(type);

	for (size_t i = 0; i < NOUTCOMES; i++)
		if (!strcmp(outcomes[i], outcome)) {
			t->finished[i]++;
			return;
		}
}

void
metrics_handler_duration(const char *type, double seconds)
{
	observe(&type_of(type)->duration, seconds);
}

void
metrics_spawn_failure(const char *type)
{
	type_of(type)->spawn_failures++;
}

void
metrics_pickup_delay(double seconds)
{
	init_once();
	observe(&m.pickup, seconds < 0 ? 0 : seconds);
}

void
metrics_lease_lost(void)
{
	m.leases_lost++;
}

void
metrics_db_up(bool up)
{
	m.db_connects += up;
	m.db_up = up;
}

void
metrics_exchange_duration(double seconds)
{
	init_once();
	observe(&m.exchange, seconds);
}

void
metrics_handlers(int running, int slots)
{
	m.running = running;
	m.slots = slots;
}

void
metrics_reset(void)
{
	for (int i = 0; i < m.ntypes; i++)
		free(m.types[i].type);
	free(m.types);
	memset(&m, 0, sizeof m);
}

/* ---- the text format ---- */

static void
header(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped.  Types are
 * [A-Za-z0-9_.:-] today; the escaping keeps the output valid regardless. */
static void
label_value(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			buf_add(out, "\\n", 2);
		else
			buf_add(out, s, 1);
	}
}

/* `NAME{type="T",le="LE"}` with only the labels given (none: no braces). */
static void
series(struct buf *out, const char *name, const char *type, const char *le)
{
	buf_add(out, name, strlen(name));
	if (!type && !le)
		return;
	buf_add(out, "{", 1);
	if (type) {
		buf_add(out, "type=\"", 6);
		label_value(out, type);
		buf_add(out, le ? "\"," : "\"", le ? 2 : 1);
	}
	if (le)
		buf_printf(out, "le=\"%s\"", le);
	buf_add(out, "}", 1);
}

static void
counter(struct buf *out, const char *name, const char *type, uint64_t v)
{
	series(out, name, type, NULL);
	buf_printf(out, " %" PRIu64 "\n", v);
}

/* NAME_bucket (cumulative, ending in +Inf), NAME_sum and NAME_count. */
static void
histogram(struct buf *out, const char *name, const char *type, const struct histogram *h)
{
	char n[128], le[32];
	uint64_t cum = 0;

	snprintf(n, sizeof n, "%s_bucket", name);
	for (int i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof le, "%g", h->bounds[i]);
		series(out, n, type, le);
		buf_printf(out, " %" PRIu64 "\n", cum);
	}
	series(out, n, type, "+Inf");
	buf_printf(out, " %" PRIu64 "\n", h->count);
	snprintf(n, sizeof n, "%s_sum", name);
	series(out, n, type, NULL);
	/* %.17g round-trips a double. */
	buf_printf(out, " %.17g\n", h->sum);
	snprintf(n, sizeof n, "%s_count", name);
	counter(out, n, type, h->count);
}

void
metrics_render(struct buf *out)
{
	init_once();
	header(out, "pgjobd_jobs_finished_total", "counter",
	       "Jobs whose handler ended here, by type and outcome.");
	for (int i = 0; i < m.ntypes; i++)
		for (size_t o = 0; o < NOUTCOMES; o++) {
			buf_add(out, "pgjobd_jobs_finished_total{type=\"", 33);
			label_value(out, m.types[i].type);
			buf_printf(out, "\",outcome=\"%s\"} %" PRIu64 "\n", outcomes[o],
			           m.types[i].finished[o]);
		}
	header(out, "pgjobd_handler_duration_seconds", "histogram",
	       "Handler run time, start to exit and end of output, by type.");
	for (int i = 0; i < m.ntypes; i++)
		histogram(out, "pgjobd_handler_duration_seconds", m.types[i].type,
		          &m.types[i].duration);
	header(out, "pgjobd_spawn_failures_total", "counter",
	       "Handlers that could not be started, by type.");
	for (int i = 0; i < m.ntypes; i++)
		counter(out, "pgjobd_spawn_failures_total", m.types[i].type,
		        m.types[i].spawn_failures);
	header(out, "pgjobd_pickup_delay_seconds", "histogram",
	       "Time from a job's run_at to its lease, by the database's clock.");
	histogram(out, "pgjobd_pickup_delay_seconds", NULL, &m.pickup);
	header(out, "pgjobd_leases_lost_total", "counter",
	       "Running handlers killed because their lease was lost or not extended in time.");
	counter(out, "pgjobd_leases_lost_total", NULL, m.leases_lost);
	header(out, "pgjobd_db_reconnects_total", "counter",
	       "Database connections made after the first.");
	counter(out, "pgjobd_db_reconnects_total", NULL, m.db_connects > 0 ? m.db_connects - 1 : 0);
	header(out, "pgjobd_db_up", "gauge", "1 while the database connection is up.");
	buf_printf(out, "pgjobd_db_up %d\n", m.db_up);
	header(out, "pgjobd_exchange_duration_seconds", "histogram",
	       "Round trip of the exchange statement (outcomes written, jobs leased).");
	histogram(out, "pgjobd_exchange_duration_seconds", NULL, &m.exchange);
	header(out, "pgjobd_handlers_running", "gauge", "Handlers running now.");
	buf_printf(out, "pgjobd_handlers_running %d\n", m.running);
	header(out, "pgjobd_slots", "gauge", "Handlers that may run at once (concurrency).");
	buf_printf(out, "pgjobd_slots %d\n", m.slots);
}
