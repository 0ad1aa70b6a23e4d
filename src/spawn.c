/*
 * spawn: see spawn.h.
 *
 * A spawn is three pipes, one child watcher, one timer and a small state
 * machine for the kill ladder:
 *
 *	SP_RUNNING --timeout / spawn_kill / strays--> SP_TERM  (SIGTERM sent)
 *	SP_RUNNING --spawn_kill(now)----------------> SP_KILL  (SIGKILL sent)
 *	SP_TERM    --kill_grace / spawn_kill(now)---> SP_KILL
 *	SP_KILL    --kill_grace after the reap------> pipes abandoned
 *	any        --exit status + EOF on 1 and 2---> SP_DONE  (callback, free)
 *
 * The one timer means what the state says: the job's timeout in
 * SP_RUNNING, the grace before SIGKILL in SP_TERM, the grace before giving
 * up on the pipes in SP_KILL.  Every event goes through step(); the facts
 * it looks at (exit status in or not, which pipes are still open) are
 * plain data beside the state.
 */
#include "spawn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tail.h"

/* One read(2); the buffer lives on the stack of the callback. */
#define READ_CHUNK (64 * 1024)
/* At most this much is read per readiness event, so that a handler
 * writing as fast as we read cannot starve the rest of the daemon (the
 * heartbeat, other handlers); the watcher is level-triggered and comes
 * back at once. */
#define READ_TURN (16 * READ_CHUNK)

enum spawn_state {
	SP_RUNNING, /* no signal sent; timer: the timeout, if any */
	SP_TERM,    /* SIGTERM sent to the group; timer: grace, then SIGKILL */
	SP_KILL,    /* SIGKILL sent; timer (once reaped, pipes still open): abandon */
	SP_DONE,    /* finished; only seen while the callback runs */
};

enum spawn_event {
	SE_TIMER,    /* the timer fired: its meaning depends on the state */
	SE_KILL,     /* spawn_kill(sp, false) */
	SE_KILL_NOW, /* spawn_kill(sp, true) */
	SE_EXIT,     /* the child was reaped */
	SE_EOF,      /* stdout or stderr was closed */
};

enum { P_OUT, P_ERR };

struct spawn {
	struct ev_loop *loop;
	enum spawn_state state;
	pid_t pid;
	spawn_done_cb *cb;
	void *arg;

	const char *input; /* the caller's, alive until the callback */
	size_t input_len;
	size_t input_off;
	int in_fd; /* our write end of the child's stdin, -1 when closed */
	ev_io in_w;

	int fd[2]; /* our read ends of stdout, stderr; -1 once closed */
	ev_io io[2];
	struct tail tail[2];

	ev_child child_w;
	bool reaped;
	int status; /* wait status, valid once reaped */

	ev_timer timer;
	int64_t grace_ms;
	enum spawn_why killed;
	struct timespec started;
};

static void step(struct spawn *sp, enum spawn_event ev);

static int64_t
elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000 +
	       (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void
close_input(struct spawn *sp)
{
	ev_io_stop(sp->loop, &sp->in_w);
	close_fd(&sp->in_fd);
}

static void
close_pipe(struct spawn *sp, int which)
{
	ev_io_stop(sp->loop, &sp->io[which]);
	close_fd(&sp->fd[which]);
}

static bool
pipes_open(const struct spawn *sp)
{
	return sp->fd[P_OUT] >= 0 || sp->fd[P_ERR] >= 0;
}

static void
arm_timer(struct spawn *sp, int64_t ms)
{
	ev_tstamp after = (ev_tstamp)(ms > 0 ? ms : 0) / 1000.0;

	/* libev counts from the loop's cached time, which can be well in
	 * the past when we are called (after a slow callback, or from
	 * spawn_start() outside a callback): a timeout would fire early.
	 * ev.pod, "The special problem of time updates". */
	after += ev_time() - ev_now(sp->loop);
	ev_timer_stop(sp->loop, &sp->timer);
	ev_timer_set(&sp->timer, after, 0.0);
	ev_timer_start(sp->loop, &sp->timer);
}

/*
 * Signal the child's process group (its pid: POSIX_SPAWN_SETSID made it a
 * session and group leader before exec, and posix_spawn returned only
 * after the exec, so the group exists from the first moment we know the
 * pid).
 *
 * Hazard, pid reuse: after the leader is reaped its pid could in principle
 * be given to an unrelated process, which could then lead a group of the
 * same number.  But Linux keeps a pid reserved while it is still the pgid
 * (or sid) of any living process, i.e. while a member of our group is
 * alive -- exactly the case in which we signal after the reap (a pipe is
 * still open).  The remaining window is a group that emptied itself while
 * a process that escaped it (setsid) holds a pipe; then we send at most
 * the SIGTERM and the SIGKILL of this one ladder, and never anything after
 * the pipes are abandoned.
 */
static void
signal_group(struct spawn *sp, int sig)
{
	/* ESRCH: everyone is gone already; nothing else can fail for a
	 * group we created with our own uid. */
	(void)killpg(sp->pid, sig);
}

static void
why(struct spawn *sp, enum spawn_why w)
{
	/* The first reason sticks: a job killed for its timeout stays so
	 * even if a cancel arrives during the grace. */
	if (sp->killed == SPAWN_KILL_NONE)
		sp->killed = w;
}

static void
to_term(struct spawn *sp, enum spawn_why w)
{
	why(sp, w);
	sp->state = SP_TERM;
	signal_group(sp, SIGTERM);
	arm_timer(sp, sp->grace_ms);
}

static void
to_kill(struct spawn *sp, enum spawn_why w)
{
	why(sp, w);
	sp->state = SP_KILL;
	signal_group(sp, SIGKILL);
	ev_timer_stop(sp->loop, &sp->timer);
	/* Not reaped yet: SIGKILL cannot be caught, the reap will come and
	 * arm the last grace from SE_EXIT.  Reaped: something still holds a
	 * pipe, give it one grace to die before we give up on it. */
	if (sp->reaped && pipes_open(sp))
		arm_timer(sp, sp->grace_ms);
}

/*
 * Read pipe WHICH until EAGAIN, EOF, or more than LIMIT bytes.  Closes it
 * on EOF (or a read error, which is as final).  Returns true when closed.
 */
static bool
drain(struct spawn *sp, int which, size_t limit)
{
	char buf[READ_CHUNK];
	size_t got = 0;
	ssize_t n;

	while (sp->fd[which] >= 0 && got <= limit) {
		n = read(sp->fd[which], buf, sizeof buf);
		if (n > 0) {
			tail_append(&sp->tail[which], buf, (size_t)n);
			got += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return false;
		} else {
			close_pipe(sp, which);
			return true;
		}
	}
	return sp->fd[which] < 0;
}

static void
finish(struct spawn *sp)
{
	struct spawn_result r;
	char empty_out[1] = "", empty_err[1] = "";

	sp->state = SP_DONE;
	ev_timer_stop(sp->loop, &sp->timer);
	ev_child_stop(sp->loop, &sp->child_w);
	close_input(sp);
	close_pipe(sp, P_OUT);
	close_pipe(sp, P_ERR);

	memset(&r, 0, sizeof r);
	if (WIFEXITED(sp->status)) {
		r.exited = true;
		r.exit_code = WEXITSTATUS(sp->status);
	} else {
		r.signal = WIFSIGNALED(sp->status) ? WTERMSIG(sp->status) : 0;
	}
	r.killed = sp->killed;
	r.duration_ms = elapsed_ms(&sp->started);
	r.out = tail_text(&sp->tail[P_OUT], &r.out_len);
	r.err = tail_text(&sp->tail[P_ERR], &r.err_len);
	/* Out of memory for the text: report the outcome with an empty
	 * tail rather than lose it. */
	if (!r.out)
		r.out = empty_out;
	if (!r.err)
		r.err = empty_err;
	r.out_total = sp->tail[P_OUT].total;
	r.err_total = sp->tail[P_ERR].total;
	sp->cb(&r, sp->arg);

	if (r.out != empty_out)
		free(r.out);
	if (r.err != empty_err)
		free(r.err);
	tail_free(&sp->tail[P_OUT]);
	tail_free(&sp->tail[P_ERR]);
	free(sp);
}

/*
 * The one dispatch: apply EV in the current state, then finish if the
 * exit status and EOF on both pipes are in.  May free SP.
 */
static void
step(struct spawn *sp, enum spawn_event ev)
{
	int which;
	int sz;

	if (sp->state == SP_DONE)
		return;
	switch (ev) {
	case SE_TIMER:
		switch (sp->state) {
		case SP_RUNNING: to_term(sp, SPAWN_KILL_TIMEOUT); break;
		case SP_TERM: to_kill(sp, SPAWN_KILL_NONE); break;
		case SP_KILL:
			/* SIGKILL went to the group a grace ago and the pipes
			 * are still open: whoever holds them left the group
			 * (setsid).  Give up on them so a job can never hang
			 * forever; the stray is the operator's problem now. */
			close_pipe(sp, P_OUT);
			close_pipe(sp, P_ERR);
			break;
		case SP_DONE: break;
		}
		break;
	case SE_KILL:
		if (sp->state == SP_RUNNING)
			to_term(sp, SPAWN_KILL_REQUEST);
		break;
	case SE_KILL_NOW:
		if (sp->state == SP_RUNNING || sp->state == SP_TERM)
			to_kill(sp, SPAWN_KILL_REQUEST);
		break;
	case SE_EXIT:
		/*
		 * Hazard: SIGCHLD and the last output race.  The child closed
		 * its descriptors before it became a zombie (exit_files()
		 * precedes exit_notify() in the kernel), so whatever it wrote
		 * is in the pipe now, followed by EOF -- unless someone else
		 * still holds the write end.  Read it out before judging:
		 * at most one pipe capacity was buffered, so reading past
		 * that without EOF (or hitting EAGAIN) means another writer,
		 * i.e. a stray.
		 */
		for (which = P_OUT; which <= P_ERR; which++) {
			if (sp->fd[which] < 0)
				continue;
			sz = fcntl(sp->fd[which], F_GETPIPE_SZ);
			drain(sp, which, sz > 0 ? (size_t)sz : 1024 * 1024);
		}
		if (!pipes_open(sp))
			break;
		switch (sp->state) {
		case SP_RUNNING: to_term(sp, SPAWN_KILL_STRAYS); break;
		case SP_TERM: break; /* the grace timer runs on to SIGKILL */
		case SP_KILL: arm_timer(sp, sp->grace_ms); break;
		case SP_DONE: break;
		}
		break;
	case SE_EOF: break;
	}
	if (sp->reaped && !pipes_open(sp))
		finish(sp);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	step(w->data, SE_TIMER);
}

static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct spawn *sp = w->data;

	(void)revents;
	/* libev does not stop child watchers by itself; trace = 0, so this
	 * is the termination, not a stop/continue. */
	ev_child_stop(loop, w);
	sp->reaped = true;
	sp->status = w->rstatus;
	step(sp, SE_EXIT);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct spawn *sp = w->data;
	int which = w == &sp->io[P_OUT] ? P_OUT : P_ERR;

	(void)loop;
	(void)revents;
	if (drain(sp, which, READ_TURN))
		step(sp, SE_EOF);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct spawn *sp = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	while (sp->input_off < sp->input_len) {
		n = write(sp->in_fd, sp->input + sp->input_off, sp->input_len - sp->input_off);
		if (n > 0) {
			sp->input_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return; /* the pipe is full; the watcher comes back */
		} else {
			/* EPIPE (SIGPIPE is ignored in the daemon): nobody will
			 * ever read the rest.  That is the handler's business;
			 * its outcome will tell. */
			break;
		}
	}
	close_input(sp);
}

/* A pipe2(O_CLOEXEC) whose child-side end is moved to 3 or above. */
static int
make_pipe(int p[2], int child_end)
{
	int fd, e;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* If the daemon ever runs with 0, 1 or 2 closed, a new pipe can land
	 * there, and the dup2 onto 0..2 in the child would clobber one end
	 * with another (or dup2 fd onto itself, which keeps FD_CLOEXEC on
	 * old glibcs).  Keep the child's ends out of that range. */
	if (p[child_end] < 3) {
		fd = fcntl(p[child_end], F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			goto fail;
		close(p[child_end]);
		p[child_end] = fd;
	}
	/* Our end never blocks; the child's end stays blocking, as programs
	 * expect of their stdio. */
	if (fcntl(p[!child_end], F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	return 0;
fail:
	e = errno;
	close(p[0]);
	close(p[1]);
	p[0] = p[1] = -1;
	errno = e;
	return -1;
}

static void
close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
}

/*
 * posix_spawn with the attributes of STYLE.md "Children".  Returns 0 or an
 * error number; exec (and chdir) failures come back here because glibc
 * runs the child with CLONE_VFORK and reports its errno.
 */
static int
start_child(pid_t *pid, const struct spawn_spec *spec, int in, int out, int err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int sig, rc;

	sigemptyset(&none);
	sigemptyset(&all);
	/*
	 * SETSIGDEF matters: glibc's child resets caught signals to SIG_DFL
	 * anyway, but SIG_IGN survives exec -- and the daemon ignores
	 * SIGPIPE.  SIGKILL/SIGSTOP cannot be set (the kernel says EINVAL).
	 *
	 * Hazard, glibc internals: sigaddset() refuses glibc's own signals
	 * 32 and 33 (SIGCANCEL, SIGSETXID), and glibc's spawn child sets
	 * every signal that is not in this set and that it has to scrub to
	 * SIG_IGN -- including those two, so without more the handler
	 * starts with 32 and 33 ignored (SigIgn: 0000000180000000 on glibc
	 * 2.36).  Set their bits directly; the child then makes them
	 * SIG_DFL just before exec, where nobody can send them (they are
	 * only ever sent to threads of the daemon itself).
	 */
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaddset(&all, sig) != 0)
			all.__val[(sig - 1) / (8 * sizeof all.__val[0])] |=
			    1UL << ((sig - 1) % (8 * sizeof all.__val[0]));
	}

	if ((rc = posix_spawnattr_init(&attr)) != 0)
		return rc;
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		posix_spawnattr_destroy(&attr);
		return rc;
	}
	if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
	                                              POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, in, 0)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, out, 1)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, err, 2)) != 0 ||
	    /* Belt and braces over O_CLOEXEC: descriptors opened by
	     * libraries without it (or by a future thread between pipe2
	     * and fcntl) must not reach handlers either. */
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
	    (spec->cwd && (rc = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd)) != 0))
		goto out;
	rc = posix_spawn(pid, spec->argv[0], &fa, &attr, spec->argv, spec->envp);
out:
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

struct spawn *
spawn_start(struct ev_loop *loop, const struct spawn_spec *spec, spawn_done_cb *cb, void *arg,
            int *errnum)
{
	struct spawn *sp;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	int rc;

	/* ev_child works only in the default loop (it owns SIGCHLD). */
	assert(ev_is_default_loop(loop));
	sp = calloc(1, sizeof *sp);
	if (!sp) {
		*errnum = errno;
		return NULL;
	}
	if (make_pipe(in, 0) < 0 || make_pipe(out, 1) < 0 || make_pipe(err, 1) < 0) {
		rc = errno;
		goto fail;
	}
	rc = start_child(&sp->pid, spec, in[0], out[1], err[1]);
	/* The child has its copies now (or there is no child): ours of its
	 * ends must go, or we would never see EOF on stdout/stderr. */
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	if (rc != 0)
		goto fail;
	/* glibc has reaped a child that failed to exec; no SIGCHLD of ours
	 * is pending for it.  From here on the child exists, and the child
	 * watcher must be started before we return to the loop: libev reaps
	 * with waitpid(-1) in the loop and drops statuses nobody watches. */
	clock_gettime(CLOCK_MONOTONIC, &sp->started);
	sp->loop = loop;
	sp->state = SP_RUNNING;
	sp->cb = cb;
	sp->arg = arg;
	sp->grace_ms = spec->kill_grace_ms;
	sp->input = spec->input;
	sp->input_len = spec->input_len;
	sp->in_fd = in[1];
	sp->fd[P_OUT] = out[0];
	sp->fd[P_ERR] = err[0];
	tail_init(&sp->tail[P_OUT], spec->output_limit);
	tail_init(&sp->tail[P_ERR], spec->output_limit);

	ev_child_init(&sp->child_w, child_cb, sp->pid, 0);
	sp->child_w.data = sp;
	ev_child_start(loop, &sp->child_w);
	ev_io_init(&sp->io[P_OUT], read_cb, sp->fd[P_OUT], EV_READ);
	sp->io[P_OUT].data = sp;
	ev_io_start(loop, &sp->io[P_OUT]);
	ev_io_init(&sp->io[P_ERR], read_cb, sp->fd[P_ERR], EV_READ);
	sp->io[P_ERR].data = sp;
	ev_io_start(loop, &sp->io[P_ERR]);
	ev_io_init(&sp->in_w, write_cb, sp->in_fd, EV_WRITE);
	sp->in_w.data = sp;
	if (sp->input_len > 0)
		ev_io_start(loop, &sp->in_w);
	else
		close_input(sp);
	ev_init(&sp->timer, timer_cb);
	sp->timer.data = sp;
	if (spec->timeout_ms > 0)
		arm_timer(sp, spec->timeout_ms);
	return sp;

fail:
	close_pair(in);
	close_pair(out);
	close_pair(err);
	free(sp);
	*errnum = rc;
	return NULL;
}

pid_t
spawn_pid(const struct spawn *sp)
{
	return sp->pid;
}

void
spawn_kill(struct spawn *sp, bool now)
{
	step(sp, now ? SE_KILL_NOW : SE_KILL);
}
