/*
 * daemon: the worker's lifecycle and its loop (the libev default loop):
 * signals, reload, status, start and stop.
 *
 * It owns the config in force and every job it holds a lease for, and
 * decides in one place, advance(), what happens next: the lifecycle state
 * (starting, running, draining, killing, flushing, deregistering, done) is
 * derived from facts (handlers running, outcomes unwritten, database up,
 * signals, timers), and each database conversation (exchange, heartbeat,
 * rescue, deregistration) is sent from there when it is idle and has
 * something to do.  Below it: job (a job's life), the conversations, db
 * and spawn, which call back only through the hooks they were handed.
 */
#ifndef PGJOBD_DAEMON_H
#define PGJOBD_DAEMON_H

struct cfg;

/* Run until stopped by SIGTERM/SIGINT; takes ownership of CFG (loaded from
 * PATH, which SIGHUP reloads).  Returns the exit status. */
int daemon_main(const char *path, struct cfg *cfg);

#endif
