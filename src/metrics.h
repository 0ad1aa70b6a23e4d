/*
 * metrics: the daemon's own counters, gauges and histograms, and their
 * Prometheus text exposition (format 0.0.4) for GET /metrics
 * (metrics_http.h serves it).
 *
 * One registry per process, like log.h: every module may record into it
 * and nothing reads it back but the exposition, so it is a sink below
 * everything rather than a module above; recording costs a few additions
 * and never fails.  Label sets are bounded: job types come from the
 * config's [handler.TYPE] sections (the exchange leases no other), and at
 * most METRICS_MAX_TYPES of them are kept apart; any beyond are counted
 * under type="_other".  Outcomes are a fixed list.
 */
#ifndef PGJOBD_METRICS_H
#define PGJOBD_METRICS_H

#include <stdbool.h>

#include "buf.h"

#define METRICS_MAX_TYPES 256

/* How a job left this daemon: its outcome's name (done, retry, dead,
 * release), or one of these. */
#define METRICS_REFUSED "refused"     /* outcome written, lease no longer current */
#define METRICS_CANCELLED "cancelled" /* cancel() killed its handler */
#define METRICS_LOST "lost"           /* its lease went to another worker */

/* Make TYPE's series exist, at zero, before its first job. */
void metrics_declare_type(const char *type);
void metrics_job_finished(const char *type, const char *outcome);
void metrics_handler_duration(const char *type, double seconds);
/* A handler that could not be started (exec failure). */
void metrics_spawn_failure(const char *type);
/* Lease time minus the job's due time (run_at), by the database's clock. */
void metrics_pickup_delay(double seconds);
/* A running handler killed because its lease was lost or could not be
 * extended in time. */
void metrics_lease_lost(void);
/* The connection came up: after the first time, a reconnect. */
void metrics_db_up(bool up);
/* One exchange statement, sent to result. */
void metrics_exchange_duration(double seconds);
void metrics_handlers(int running, int slots);

/* Append the whole registry to OUT as Prometheus text. */
void metrics_render(struct buf *out);
/* Forget everything (at exit, so that nothing is left allocated). */
void metrics_reset(void);

#endif
