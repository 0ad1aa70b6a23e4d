/*
 * strays: no process a handler leaves behind outlives its job.
 *
 * The daemon is a child subreaper (PR_SET_CHILD_SUBREAPER): a handler's
 * descendants that leave its process group or session (setsid, double
 * fork) are re-parented to the daemon when their parent dies, instead of
 * to init.  libev reaps every child of ours.  A sweep finds each child of
 * the daemon that is not a running handler, reads the PGJOBD_JOB_ID its
 * environment inherited, and kills it with all its descendants (SIGTERM,
 * then SIGKILL after kill_grace) unless its job is still running.  A stray
 * whose environment names no job (it replaced its environment) is killed
 * once no handler runs at all, since it cannot be told apart from a
 * running job's.  Signals go through pidfds, so a pid that was reused
 * meanwhile is never signalled.
 *
 * Out of reach: a process that leaves through a setuid helper (we may not
 * signal it) or one that re-parents itself elsewhere; systemd's
 * KillMode=control-group (the units' default) kills those at stop.
 */
#ifndef PGJOBD_STRAYS_H
#define PGJOBD_STRAYS_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

/* Make this process a child subreaper; logs and goes on if it cannot. */
void strays_init(void);

/* One running handler: its process and its job. */
struct strays_running {
	pid_t pid;
	int64_t job_id;
};

/* Kill every stray that belongs to no running job (see above): SIGTERM
 * now, SIGKILL to whatever is left after KILL_GRACE_MS.  Cheap when there
 * is none: one read of our own children list. */
void strays_sweep(struct ev_loop *loop, const struct strays_running *running, int nrunning,
    int64_t kill_grace_ms);

/* At exit, with no handler running: the same, waiting (blocking, at most
 * KILL_GRACE_MS) for the strays to die; pending sweeps are finished. */
void strays_finish(struct ev_loop *loop, int64_t kill_grace_ms);

#endif
