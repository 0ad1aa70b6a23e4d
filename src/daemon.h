/*
 * daemon: the worker itself, on one libev loop (the default loop).
 *
 * Owns the config in force, the running jobs and the finished ones whose
 * outcomes are not yet written; decides when to lease, heartbeat, write
 * outcomes, reload and stop.  Below it: db (the database conversation) and
 * spawn (handler processes), which call back only through the callbacks
 * they were handed.
 */
#ifndef PGJOBD_DAEMON_H
#define PGJOBD_DAEMON_H

struct cfg;

/* Run until stopped by SIGTERM/SIGINT; takes ownership of CFG (loaded from
 * PATH, which SIGHUP reloads).  Returns the exit status. */
int daemon_main(const char *path, struct cfg *cfg);

#endif
