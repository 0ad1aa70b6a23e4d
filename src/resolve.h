/*
 * resolve: host names to addresses without blocking the loop (c-ares on
 * libev, as pgbouncer does).
 *
 * libpq resolves host= names with a blocking getaddrinfo() inside
 * PQconnectStart/PQconnectPoll: a DNS server that does not answer would
 * stop the daemon's loop (no heartbeats, no reaping) for as long as the
 * resolver's own timeouts last.  So db resolves the names first, here, and
 * hands libpq the addresses as hostaddr=.
 *
 * c-ares reads /etc/hosts (and /etc/nsswitch.conf's order) and
 * /etc/resolv.conf like the C library does, afresh for every batch: a
 * changed file applies from the next connection attempt.
 */
#ifndef PGJOBD_RESOLVE_H
#define PGJOBD_RESOLVE_H

#include <ev.h>

struct resolve;

/* One name's answer: NADDRS numeric addresses (IPv4 and IPv6, in c-ares'
 * preferred order), or none and ERROR saying why. */
struct resolve_answer {
	const char *name;
	const char *const *addrs;
	int naddrs;
	const char *error;
};

/* All names of a batch have answered; the answers live until the callback
 * returns. */
typedef void resolve_done_cb(void *arg, const struct resolve_answer *answers, int n);

/* Fatal only when the c-ares library cannot be initialised; a channel
 * that cannot be made (resolv.conf unreadable) fails that batch's names. */
struct resolve *resolve_new(struct ev_loop *loop);
void resolve_free(struct resolve *r);
/* Resolve N names (copied).  DONE runs once, from the loop, never from
 * inside this call.  One batch at a time: a new one cancels the old. */
void resolve_start(struct resolve *r, const char *const *names, int n, resolve_done_cb *done,
    void *arg);
/* Forget the batch in flight: its callback will not run. */
void resolve_cancel(struct resolve *r);

#endif
