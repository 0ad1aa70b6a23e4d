/* db: see db.h. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conninfo.h"
#include "log.h"
#include "resolve.h"
#include "stmts.h"
#include "xmalloc.h"

#define DB_CONNECT_TIMEOUT 15.0 /* seconds for a lookup and PQconnectPoll */
#define DB_BACKOFF_MIN 0.5
#define DB_BACKOFF_MAX 30.0
/* A connection that lasted this long resets the backoff; a shorter one
 * (a server that accepts, then turns out read-only) does not, so that such
 * a server is retried ever more slowly instead of in a loop. */
#define DB_STABLE 10.0
/* The outage that is a server up but read-only, not one that is down. */
static const char DB_READ_ONLY[] = "server is read-only or in recovery";

/*
 * The one timer means what the state says: WAIT, the next attempt;
 * RESOLVING and CONNECTING, the attempt's deadline; SETUP and UP, the
 * deadline for the answer to the statement in flight (stopped while none is).
 */
enum db_state {
	DB_WAIT,       /* not connected; the timer fires the next attempt */
	DB_RESOLVING,  /* looking up the host= names (resolve.c) */
	DB_CONNECTING, /* PQconnectPoll in progress */
	DB_SETUP,      /* connected; reading the schema version, LISTENing */
	DB_UP,         /* accepting statements */
};

/*
 * The daemon's statements are constants: each is prepared once per
 * connection, under a name of its own, the first time it is sent, and
 * executed by name after (no parsing or planning per call).  Keyed by the
 * SQL's address, which is why db_query() wants SQL of static storage.
 */
#define DB_MAX_STATEMENTS 16

struct statement {
	const char *sql;
	unsigned prepared_on; /* connection generation it is prepared on */
};

enum query_kind {
	Q_SIMPLE,  /* internal set-up: simple protocol, several statements */
	Q_PREPARE, /* a statement's prepare step; becomes Q_EXECUTE */
	Q_EXECUTE,
};

struct query {
	struct query *next;
	enum query_kind kind;
	const char *sql;
	int stmt; /* index into db->stmts */
	int nparams;
	char **params;
	db_cb *cb;
	void *arg;
};

struct db {
	struct ev_loop *loop;
	struct conninfo *ci;  /* NULL: `database =` does not parse, */
	char *ci_error;       /* and why */
	struct resolve *resolve;
	struct db_timing timing;
	char *setup_sql;
	const struct db_events *events;
	void *arg;
	enum db_state state;
	PGconn *conn;
	ev_io io;
	ev_timer timer;
	struct query *head, *tail; /* head is in flight when sent */
	bool sent;
	struct statement stmts[DB_MAX_STATEMENTS];
	int nstmts;
	unsigned conn_gen;         /* counts connections, for stmts[].prepared_on */
	PGresult *result;          /* the in-flight statement's result so far */
	int schema_version;
	double backoff;
	ev_tstamp up_at;           /* when it last came up; 0: not since */
	ev_tstamp down_at;         /* when it was last lost; 0: up, or never up */
	const char *outage;        /* what the logged outage is; NULL: none */
	unsigned attempts;
	bool ever_up;
};

static void db_connect(struct db *db);
static void send_next(struct db *db);

static void
query_free(struct query *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q);
}

static void
push(struct db *db, enum query_kind kind, const char *sql, int nparams, const char *const *params,
    db_cb *cb, void *arg)
{
	struct query *q = xcalloc(1, sizeof *q);

	q->kind = kind;
	q->sql = sql;
	q->stmt = -1;
	if (kind != Q_SIMPLE) {
		for (q->stmt = 0; q->stmt < db->nstmts && db->stmts[q->stmt].sql != sql; q->stmt++)
			;
		if (q->stmt == db->nstmts) {
			if (db->nstmts == DB_MAX_STATEMENTS)
				fatalx("db: more than %d distinct statements", DB_MAX_STATEMENTS);
			db->stmts[db->nstmts++].sql = sql;
		}
	}
	q->nparams = nparams;
	q->params = xcalloc((size_t)nparams + 1, sizeof *q->params);
	for (int i = 0; i < nparams; i++)
		if (params[i])
			q->params[i] = xstrdup(params[i]);
	q->cb = cb;
	q->arg = arg;
	if (db->tail)
		db->tail->next = q;
	else
		db->head = q;
	db->tail = q;
	if (db->state == DB_SETUP || db->state == DB_UP)
		send_next(db);
}

/* Re-arm the watcher on the socket libpq has now: it may change across
 * PQconnectPoll calls and reconnects. */
static void
wait_for(struct db *db, int events)
{
	ev_io_stop(db->loop, &db->io);
	ev_io_set(&db->io, PQsocket(db->conn), events);
	ev_io_start(db->loop, &db->io);
}

/* Drop the connection; every queued statement gets NULL. */
static void
db_close(struct db *db)
{
	struct query *q;
	bool was_up = db->state == DB_UP;

	ev_io_stop(db->loop, &db->io);
	ev_timer_stop(db->loop, &db->timer);
	resolve_cancel(db->resolve);
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	PQclear(db->result);
	db->result = NULL;
	db->state = DB_WAIT;
	db->sent = false;
	while ((q = db->head) != NULL) {
		db->head = q->next;
		if (!db->head)
			db->tail = NULL;
		if (q->cb)
			q->cb(q->arg, NULL);
		query_free(q);
	}
	if (was_up)
		db->down_at = ev_now(db->loop);
	if (was_up && db->events->down)
		db->events->down(db->arg);
}

/* Jittered, capped exponential backoff (+-25%), so that a fleet of daemons
 * does not reconnect in lockstep after a database restart. */
static void
schedule_retry(struct db *db)
{
	double jitter = 0.75 + 0.5 * ((double)random() / RAND_MAX);
	double delay;

	if (db->up_at > 0 && ev_now(db->loop) - db->up_at >= DB_STABLE)
		db->backoff = DB_BACKOFF_MIN;
	db->up_at = 0;
	delay = db->backoff * jitter;
	db->backoff = db->backoff * 2 > DB_BACKOFF_MAX ? DB_BACKOFF_MAX : db->backoff * 2;
	ev_timer_set(&db->timer, delay, 0.);
	ev_timer_start(db->loop, &db->timer);
}

/* The connection failed or was lost.  Logged once per state change, not
 * per retry: when the outage begins, and again only when the server turns
 * from unreachable to read-only or back; the next line after that says it
 * is back.  DETAIL: NULL for libpq's message. */
static void
db_fail(struct db *db, const char *what, const char *detail)
{
	if (!db->outage || (db->outage == DB_READ_ONLY) != (what == DB_READ_ONLY)) {
		char msg[512];

		if (!detail)
			detail = db->conn ? PQerrorMessage(db->conn) : "";
		log_oneline(msg, sizeof msg, detail);
		log_warnx("database %s%s%s; retrying in the background", what, *msg ? ": " : "", msg);
		db->outage = what;
	} else if (log_verbose) {
		char msg[512];

		log_oneline(msg, sizeof msg, detail ? detail : db->conn ? PQerrorMessage(db->conn) : "");
		log_debug("database: %s%s%s", what, *msg ? ": " : "", msg);
	}
	db_close(db);
	schedule_retry(db);
}

/* max(heartbeat, lease / 2): a heartbeat that goes unanswered for this
 * long would leave too little of the lease to find another path in. */
static double
answer_bound(const struct db *db)
{
	int64_t ms = db->timing.lease_ms / 2;

	if (ms < db->timing.heartbeat_ms)
		ms = db->timing.heartbeat_ms;
	return ms > 0 ? (double)ms / 1e3 : DB_CONNECT_TIMEOUT;
}

static void
send_next(struct db *db)
{
	struct query *q = db->head;

	char name[16];
	int ok = 0;

	if (!q || db->sent)
		return;
	/* Decided now, not when queued: statements go out one at a time. */
	if (q->kind != Q_SIMPLE)
		q->kind = db->stmts[q->stmt].prepared_on == db->conn_gen ? Q_EXECUTE : Q_PREPARE;
	snprintf(name, sizeof name, "pgjobd_%d", q->stmt);
	switch (q->kind) {
	case Q_SIMPLE: ok = PQsendQuery(db->conn, q->sql); break;
	case Q_PREPARE: ok = PQsendPrepare(db->conn, name, q->sql, q->nparams, NULL); break;
	case Q_EXECUTE:
		ok = PQsendQueryPrepared(db->conn, name, q->nparams, (const char *const *)q->params,
		    NULL, NULL, 0);
		break;
	}
	if (!ok) {
		db_fail(db, "connection lost", NULL);
		return;
	}
	db->sent = true;
	ev_timer_stop(db->loop, &db->timer);
	ev_timer_set(&db->timer, answer_bound(db), 0.);
	ev_timer_start(db->loop, &db->timer);
	/* PQflush > 0: the rest goes out when the socket is writable. */
	switch (PQflush(db->conn)) {
	case 0: wait_for(db, EV_READ); break;
	case 1: wait_for(db, EV_READ | EV_WRITE); break;
	default: db_fail(db, "connection lost", NULL); break;
	}
}

/* Errors that say this server cannot take the daemon's writes now. */
static const char *
server_unusable(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (!st)
		return NULL;
	if (!strcmp(st, "25006")) /* read_only_sql_transaction: a standby */
		return DB_READ_ONLY;
	/* admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped */
	if (!strncmp(st, "57P0", 4))
		return "server is shutting down or starting up";
	return NULL;
}

/* Returns false when the connection was closed instead. */
static bool
finish_head(struct db *db)
{
	struct query *q = db->head;
	PGresult *res = db->result;
	const char *unusable = server_unusable(res);

	db->result = NULL;
	db->sent = false;
	ev_timer_stop(db->loop, &db->timer);
	if (unusable) {
		/* The statement's callback sees a lost connection: every daemon
		 * statement is safe to repeat on the next one. */
		char *detail = xstrdup(PQresultErrorMessage(res));

		PQclear(res);
		db_fail(db, unusable, detail);
		free(detail);
		return false;
	}
	/* Prepared: now the statement itself, same place in the queue. */
	if (q->kind == Q_PREPARE && PQresultStatus(res) == PGRES_COMMAND_OK) {
		db->stmts[q->stmt].prepared_on = db->conn_gen;
		q->kind = Q_EXECUTE;
		PQclear(res);
		return true;
	}
	db->head = q->next;
	if (!db->head)
		db->tail = NULL;
	if (q->cb)
		q->cb(q->arg, res);
	PQclear(res);
	query_free(q);
	return true;
}

static void
drain_notifies(struct db *db)
{
	PGnotify *n;

	while (db->conn && (n = PQnotifies(db->conn)) != NULL) {
		if (db->events->notify)
			db->events->notify(db->arg, n->relname, n->extra);
		PQfreemem(n);
	}
}

/* Read what arrived: results of the statement in flight, notifications. */
static void
db_read(struct db *db)
{
	if (!PQconsumeInput(db->conn)) {
		db_fail(db, "connection lost", NULL);
		return;
	}
	drain_notifies(db);
	while (db->conn && db->head && db->sent && !PQisBusy(db->conn)) {
		PGresult *r = PQgetResult(db->conn);

		if (r) {
			/* One statement, one result; keep the last to be safe. */
			PQclear(db->result);
			db->result = r;
			continue;
		}
		if (!finish_head(db)) /* may queue more, may even close */
			return;
		if (db->conn && db->state != DB_WAIT)
			send_next(db);
		drain_notifies(db);
	}
	if (db->conn && PQstatus(db->conn) == CONNECTION_BAD)
		db_fail(db, "connection lost", NULL);
}

static void
setup_listen_done(void *arg, PGresult *res)
{
	struct db *db = arg;

	if (!res)
		return; /* lost: db_close already ran */
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_fail(db, "LISTEN failed", NULL);
		return;
	}
	/* Which server: after a failover, the one now primary. */
	if (db->outage)
		log_notice("database connection restored (%s:%s)", PQhost(db->conn), PQport(db->conn));
	else if (!db->ever_up)
		log_info("connected to the database (%s:%s)", PQhost(db->conn), PQport(db->conn));
	db->outage = NULL;
	db->ever_up = true;
	db->up_at = ev_now(db->loop);
	db->down_at = 0;
	db->state = DB_UP;
	db->events->up(db->arg, db->schema_version);
}

static void
setup_version_done(void *arg, PGresult *res)
{
	struct db *db = arg;
	const char *state;

	if (!res)
		return;
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		db->schema_version = atoi(PQgetvalue(res, 0, 0));
	} else {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* undefined_table, invalid_schema_name: nothing installed */
		if (state && (!strcmp(state, "42P01") || !strcmp(state, "3F000")))
			db->schema_version = 0;
		else {
			db_fail(db, "cannot read the schema version", NULL);
			return;
		}
	}
	push(db, Q_SIMPLE, db->setup_sql, 0, NULL, setup_listen_done, db);
}

static void
ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The server's own word, sent at startup (PostgreSQL 14 and later), that
 * it would refuse writes: a standby, or default_transaction_read_only.
 * Checked before any statement, so that such a server never counts as
 * "restored" (libpq checks it too, with target_session_attrs=read-write,
 * and then tries the next host). */
static bool
server_read_only(const PGconn *conn)
{
	const char *hs = PQparameterStatus(conn, "in_hot_standby");
	const char *ro = PQparameterStatus(conn, "default_transaction_read_only");

	return (hs && !strcmp(hs, "on")) || (ro && !strcmp(ro, "on"));
}

static void
connected(struct db *db)
{
	ev_timer_stop(db->loop, &db->timer);
	if (server_read_only(db->conn)) {
		db_fail(db, DB_READ_ONLY, "the server reports in_hot_standby or "
					  "default_transaction_read_only on");
		return;
	}
	if (PQsetnonblocking(db->conn, 1) != 0) {
		db_fail(db, "cannot be made non-blocking", NULL);
		return;
	}
	/* Server NOTICEs would go to stderr unformatted; they carry nothing
	 * the daemon needs. */
	PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
	db->state = DB_SETUP;
	db->conn_gen++; /* nothing is prepared on this connection yet */
	db->schema_version = -1;
	/* The setup statements go before anything queued since. */
	push(db, Q_SIMPLE, stmt_schema_version, 0, NULL,
	    setup_version_done, db);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct db *db = w->data;

	(void)loop;
	if (db->state == DB_CONNECTING) {
		switch (PQconnectPoll(db->conn)) {
		case PGRES_POLLING_READING: wait_for(db, EV_READ); break;
		case PGRES_POLLING_WRITING: wait_for(db, EV_WRITE); break;
		case PGRES_POLLING_OK: connected(db); break;
		default: db_fail(db, "connection failed", NULL); break;
		}
		return;
	}
	if (revents & EV_WRITE) {
		int r = PQflush(db->conn);
		if (r < 0) {
			db_fail(db, "connection lost", NULL);
			return;
		}
		if (r == 0)
			wait_for(db, EV_READ);
	}
	if (revents & EV_READ)
		db_read(db);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct db *db = w->data;
	char msg[64];

	(void)loop;
	(void)revents;
	switch (db->state) {
	case DB_WAIT: db_connect(db); break;
	case DB_RESOLVING: db_fail(db, "host name lookup timed out", ""); break;
	case DB_CONNECTING: db_fail(db, "connection timed out", ""); break;
	case DB_SETUP:
	case DB_UP:
		/* A path that drops packets gives no error for minutes. */
		snprintf(msg, sizeof msg, "no answer within %.1fs", answer_bound(db));
		db_fail(db, "connection lost", msg);
		break;
	}
}

/* Keepalives from the heartbeat: an idle connection whose peer is gone is
 * noticed within about two heartbeats; tcp_user_timeout: unacknowledged
 * data (a statement sent down a dead path) errors after the answer bound. */
static struct conninfo_tcp
tcp_settings(const struct db *db)
{
	int hb = (int)((db->timing.heartbeat_ms + 999) / 1000);
	struct conninfo_tcp t = {0};

	if (db->timing.heartbeat_ms <= 0)
		return t;
	t.keepalives_idle = hb > 1 ? hb : 1;
	t.keepalives_interval = hb / 3 > 1 ? hb / 3 : 1;
	t.keepalives_count = 3;
	t.user_timeout_ms = (int)(answer_bound(db) * 1e3);
	return t;
}

static void
start_connect(struct db *db, const struct resolve_answer *answers, int n)
{
	struct conninfo_tcp tcp = tcp_settings(db);
	char *err = NULL;
	struct conninfo_params *p = conninfo_params(db->ci, &tcp, answers, n, &err);

	if (!p) {
		db_fail(db, "host name lookup failed", err);
		free(err);
		return;
	}
	db->conn = PQconnectStartParams(p->keywords, p->values, 0);
	conninfo_params_free(p);
	if (!db->conn)
		fatal("out of memory");
	if (PQstatus(db->conn) == CONNECTION_BAD) {
		db_fail(db, "connection failed", NULL);
		return;
	}
	db->state = DB_CONNECTING;
	/* A freshly started connection wants to write (the startup packet). */
	wait_for(db, EV_WRITE);
}

static void
resolved(void *arg, const struct resolve_answer *answers, int n)
{
	struct db *db = arg;

	if (db->state == DB_RESOLVING)
		start_connect(db, answers, n);
}

/* One attempt: look the names up (when there are any), then connect; the
 * timer bounds both together. */
static void
db_connect(struct db *db)
{
	const char *const *names;
	int n;

	db->attempts++;
	log_debug("database: connection attempt %u", db->attempts);
	if (!db->ci) {
		db_fail(db, "connection failed", db->ci_error);
		return;
	}
	ev_timer_set(&db->timer, DB_CONNECT_TIMEOUT, 0.);
	ev_timer_start(db->loop, &db->timer);
	n = conninfo_names(db->ci, &names);
	if (n == 0) {
		start_connect(db, NULL, 0);
		return;
	}
	db->state = DB_RESOLVING;
	resolve_start(db->resolve, names, n, resolved, db);
}

struct db *
db_new(struct ev_loop *loop, const char *conninfo, const char *setup_sql,
    const struct db_timing *timing, const struct db_events *events, void *arg)
{
	struct db *db = xcalloc(1, sizeof *db);

	db->ci = conninfo_parse(conninfo, &db->ci_error);
	db->resolve = resolve_new(loop);
	db->timing = *timing;
	db->setup_sql = xstrdup(setup_sql);
	db->loop = loop;
	db->events = events;
	db->arg = arg;
	db->backoff = DB_BACKOFF_MIN;
	ev_init(&db->io, io_cb);
	db->io.data = db;
	ev_init(&db->timer, timer_cb);
	db->timer.data = db;
	db_connect(db);
	return db;
}

void
db_free(struct db *db)
{
	if (!db)
		return;
	db->events = &(const struct db_events){0};
	db_close(db);
	resolve_free(db->resolve);
	conninfo_free(db->ci);
	free(db->ci_error);
	free(db->setup_sql);
	free(db);
}

void
db_set_timing(struct db *db, const struct db_timing *timing)
{
	db->timing = *timing;
}

bool
db_is_up(const struct db *db)
{
	return db->state == DB_UP;
}

ev_tstamp
db_down_since(const struct db *db)
{
	return db->down_at;
}

bool
db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_cb *cb,
    void *arg)
{
	if (db->state != DB_UP)
		return false;
	push(db, Q_EXECUTE, sql, nparams, params, cb, arg);
	return true;
}

bool
db_columns(const PGresult *res, const char *const *names, int n, int *idx)
{
	for (int i = 0; i < n; i++) {
		idx[i] = PQfnumber(res, names[i]);
		if (idx[i] < 0) {
			log_errx("a statement's result has no column \"%s\"", names[i]);
			return false;
		}
	}
	return true;
}
