/*
 * spawn: one handler process, from posix_spawn to its last byte of output.
 *
 * The child gets its own session and process group, an empty signal mask,
 * default signal dispositions, the caller's argv/envp/cwd, the input on
 * stdin (written without blocking, then EOF), and no descriptor but 0, 1
 * and 2.  stdout and stderr are read through non-blocking pipes into
 * fixed-size tails (tail.h).  A spawn is finished only when both its exit
 * status and EOF on both pipes are in (tmux job.c); then the callback runs
 * once and the spawn frees itself.
 *
 * Killing escalates SIGTERM -> kill_grace -> SIGKILL on the whole process
 * group (s6 killpg): on timeout, on spawn_kill(), and when the handler
 * exited but something it left behind still holds its pipes open.
 *
 * Needs the libev default loop (ev_child works only there) and SIGPIPE
 * ignored in the daemon.
 */
#ifndef PGJOBD_SPAWN_H
#define PGJOBD_SPAWN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spawn;

struct spawn_spec {
	char *const *argv;     /* argv[0]: absolute path, no PATH search */
	char *const *envp;     /* the complete environment */
	const char *cwd;       /* working directory, NULL: inherit */
	const char *input;     /* stdin contents; the caller keeps them alive */
	size_t input_len;      /*   until the callback has run */
	size_t output_limit;   /* bytes of tail kept of stdout and of stderr */
	int64_t timeout_ms;    /* 0: none */
	int64_t kill_grace_ms; /* SIGTERM -> SIGKILL */
};

enum spawn_why {
	SPAWN_KILL_NONE,     /* not killed by us */
	SPAWN_KILL_TIMEOUT,  /* outlived timeout_ms */
	SPAWN_KILL_REQUEST,  /* spawn_kill() (cancel, lost lease, shutdown) */
	SPAWN_KILL_STRAYS,   /* exited, but its group kept the pipes open */
};

struct spawn_result {
	bool exited;          /* true: exit_code valid; false: signal valid */
	int exit_code;
	int signal;
	enum spawn_why killed; /* why we signalled the group, if we did */
	int64_t duration_ms;  /* from start to finish */
	char *out;            /* stdout tail: NUL-terminated valid UTF-8 */
	size_t out_len;
	uint64_t out_total;   /* bytes the handler wrote to stdout */
	char *err;            /* stderr tail, likewise */
	size_t err_len;
	uint64_t err_total;
};

/* Called once when finished; R and its strings live until it returns. */
typedef void spawn_done_cb(const struct spawn_result *r, void *arg);

/*
 * Start SPEC.  Returns NULL with *errnum set when the program cannot be
 * started (exec failure is reported here, at spawn time, by glibc's
 * posix_spawn); no callback runs then.
 */
struct spawn *spawn_start(struct ev_loop *loop, const struct spawn_spec *spec, spawn_done_cb *cb,
    void *arg, int *errnum);
pid_t spawn_pid(const struct spawn *sp);
/* SIGTERM the group, SIGKILL after kill_grace (or at once when NOW).
 * Idempotent; the callback still runs when it is all over. */
void spawn_kill(struct spawn *sp, bool now);

#endif
