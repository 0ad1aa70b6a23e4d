/* resolve: see resolve.h. */
#include "resolve.h"

#include <ares.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "xmalloc.h"

#define RESOLVE_MAX_SOCKETS 32 /* c-ares: a UDP and a TCP socket per server, at most */
#define RESOLVE_MAX_ADDRS 8    /* per name: enough for any failover list */

enum resolve_state {
	R_IDLE,     /* no batch */
	R_ASKING,   /* queries in flight */
	R_ANSWERED, /* every name answered; the callback is due from the loop */
};

struct name {
	struct resolve *r;
	char *name;
	char *addrs[RESOLVE_MAX_ADDRS];
	int naddrs;
	char *error;
};

struct sock {
	ev_io io;
	bool used;
};

struct resolve {
	struct ev_loop *loop;
	ares_channel channel;
	enum resolve_state state;
	struct name *names;
	int nnames, pending;
	resolve_done_cb *done;
	void *arg;
	struct sock socks[RESOLVE_MAX_SOCKETS];
	ev_timer timer;   /* c-ares' next timeout */
	ev_timer deliver; /* runs the callback from the loop (R_ANSWERED) */
};

static void
rearm_timeout(struct resolve *r)
{
	struct timeval tv, *tvp;

	ev_timer_stop(r->loop, &r->timer);
	if (!r->channel)
		return;
	tvp = ares_timeout(r->channel, NULL, &tv);
	if (!tvp)
		return;
	ev_timer_set(&r->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.);
	ev_timer_start(r->loop, &r->timer);
}

static void
sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolve *r = w->data;

	(void)loop;
	ares_process_fd(r->channel, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
	rearm_timeout(r);
}

static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve *r = w->data;

	(void)loop;
	(void)revents;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timeout(r);
}

/* c-ares says which of its sockets to watch, for what; (0, 0) before it
 * closes one.  The watcher is re-set every time (the fd may be reused). */
static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolve *r = data;
	struct sock *s = NULL, *free_slot = NULL;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (int i = 0; i < RESOLVE_MAX_SOCKETS; i++) {
		if (r->socks[i].used && r->socks[i].io.fd == fd)
			s = &r->socks[i];
		else if (!r->socks[i].used && !free_slot)
			free_slot = &r->socks[i];
	}
	if (s)
		ev_io_stop(r->loop, &s->io);
	if (!events) {
		if (s)
			s->used = false;
		return;
	}
	if (!s && !(s = free_slot))
		fatalx("resolve: more than %d resolver sockets", RESOLVE_MAX_SOCKETS);
	s->used = true;
	ev_io_set(&s->io, fd, events);
	ev_io_start(r->loop, &s->io);
}

static void
names_free(struct name *names, int n)
{
	for (int i = 0; i < n; i++) {
		free(names[i].name);
		for (int j = 0; j < names[i].naddrs; j++)
			free(names[i].addrs[j]);
		free(names[i].error);
	}
	free(names);
}

static void
deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve *r = w->data;
	struct resolve_answer *answers;
	struct name *names = r->names;
	int n = r->nnames;

	(void)loop;
	(void)revents;
	if (r->state != R_ANSWERED)
		return;
	/* Detached first: the callback may start the next batch. */
	r->state = R_IDLE;
	r->names = NULL;
	r->nnames = 0;
	answers = xcalloc((size_t)n, sizeof *answers);
	for (int i = 0; i < n; i++) {
		answers[i].name = names[i].name;
		answers[i].addrs = (const char *const *)names[i].addrs;
		answers[i].naddrs = names[i].naddrs;
		answers[i].error = names[i].error;
	}
	r->done(r->arg, answers, n);
	free(answers);
	names_free(names, n);
}

static void
answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct name *n = arg;
	struct resolve *r = n->r;
	char buf[INET6_ADDRSTRLEN];

	(void)timeouts;
	if (status == ARES_SUCCESS) {
		for (struct ares_addrinfo_node *a = res->nodes; a && n->naddrs < RESOLVE_MAX_ADDRS;
		     a = a->ai_next) {
			const void *addr = a->ai_family == AF_INET6
			    ? (const void *)&((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr
			    : (const void *)&((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr;

			if (ares_inet_ntop(a->ai_family, addr, buf, sizeof buf))
				n->addrs[n->naddrs++] = xstrdup(buf);
		}
		if (n->naddrs == 0)
			n->error = xstrdup("no address");
	} else {
		n->error = xstrdup(ares_strerror(status));
	}
	ares_freeaddrinfo(res);
	/* Cancelled (ares_cancel below) or torn down: nobody is waiting. */
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION)
		return;
	if (--r->pending == 0 && r->state == R_ASKING) {
		r->state = R_ANSWERED;
		ev_timer_set(&r->deliver, 0., 0.);
		ev_timer_start(r->loop, &r->deliver);
	}
}

/* A channel reads /etc/resolv.conf when made: a fresh one per batch, so
 * that a changed resolv.conf applies from the next connection attempt.
 * Failing (an unreadable resolv.conf, no memory) is that batch's answer,
 * not the daemon's end. */
static int
channel_open(struct resolve *r)
{
	struct ares_options o = {0};
	int st;

	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = r;
	st = ares_init_options(&r->channel, &o, ARES_OPT_SOCK_STATE_CB);
	if (st != ARES_SUCCESS)
		r->channel = NULL;
	return st;
}

static void
channel_close(struct resolve *r)
{
	if (r->channel)
		ares_destroy(r->channel);
	r->channel = NULL;
	/* c-ares reports its sockets closed; stop the watchers regardless. */
	for (int i = 0; i < RESOLVE_MAX_SOCKETS; i++) {
		ev_io_stop(r->loop, &r->socks[i].io);
		r->socks[i].used = false;
	}
	ev_timer_stop(r->loop, &r->timer);
}

struct resolve *
resolve_new(struct ev_loop *loop)
{
	struct resolve *r = xcalloc(1, sizeof *r);
	int st;

	if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		fatalx("resolve: %s", ares_strerror(st));
	r->loop = loop;
	for (int i = 0; i < RESOLVE_MAX_SOCKETS; i++) {
		ev_init(&r->socks[i].io, sock_io_cb);
		r->socks[i].io.data = r;
	}
	ev_init(&r->timer, timeout_cb);
	r->timer.data = r;
	ev_init(&r->deliver, deliver_cb);
	r->deliver.data = r;
	return r;
}

void
resolve_cancel(struct resolve *r)
{
	ev_timer_stop(r->loop, &r->deliver);
	r->state = R_IDLE;
	/* Runs every pending callback at once, with ARES_ECANCELLED. */
	if (r->channel)
		ares_cancel(r->channel);
	rearm_timeout(r);
	names_free(r->names, r->nnames);
	r->names = NULL;
	r->nnames = r->pending = 0;
}

void
resolve_start(struct resolve *r, const char *const *names, int n, resolve_done_cb *done, void *arg)
{
	struct ares_addrinfo_hints hints = {0};
	int st;

	resolve_cancel(r);
	channel_close(r);
	st = channel_open(r);
	r->names = xcalloc((size_t)n, sizeof *r->names);
	r->nnames = n;
	r->done = done;
	r->arg = arg;
	r->state = R_ASKING;
	/* One more than the names: an answer given at once (from /etc/hosts)
	 * must not finish the batch before every name has been asked. */
	r->pending = n + 1;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	for (int i = 0; i < n; i++) {
		r->names[i].r = r;
		r->names[i].name = xstrdup(names[i]);
		if (st == ARES_SUCCESS) {
			ares_getaddrinfo(r->channel, r->names[i].name, NULL, &hints, answered,
			    &r->names[i]);
		} else {
			r->names[i].error = xasprintf("resolver: %s", ares_strerror(st));
			r->pending--;
		}
	}
	if (--r->pending == 0) {
		r->state = R_ANSWERED;
		ev_timer_set(&r->deliver, 0., 0.);
		ev_timer_start(r->loop, &r->deliver);
	}
	rearm_timeout(r);
}

void
resolve_free(struct resolve *r)
{
	if (!r)
		return;
	resolve_cancel(r);
	channel_close(r);
	ares_library_cleanup();
	free(r);
}
