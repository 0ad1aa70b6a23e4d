/* metrics_http: see metrics_http.h. */
#include "metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "cfg_value.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/*
 * The bounds.  A scrape is one small request and one response of a few
 * KiB per job type, so: at most CONNECTIONS at once (8 from one address,
 * so that one client cannot take them all), each closed after IDLE_SECONDS
 * without progress and holding at most MEMORY bytes of request; beyond
 * CONNECTIONS the listening socket is left unread (libmicrohttpd takes it
 * out of its epoll set) and the kernel's queue of BACKLOG takes the rest.
 * Memory is then at most CONNECTIONS * (MEMORY + one response).
 */
#define CONNECTIONS 32
#define PER_ADDRESS 8
#define IDLE_SECONDS 10
#define MEMORY (16 * 1024)
#define BACKLOG 64

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
	struct ev_loop *loop;
	struct MHD_Daemon *mhd;
	char *unix_path; /* removed at stop */
	ev_io io;        /* the epoll descriptor */
	ev_timer timer;  /* libmicrohttpd's next deadline */
};

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned int status, char *body, size_t len,
      enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ok;

	if (!r)
		return MHD_NO; /* out of memory: MHD closes the connection */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        status == MHD_HTTP_OK ? CONTENT_TYPE : "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Called once the request's headers are in: answered at once, without
 * reading a body (MHD discards it and closes the connection). */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char not_found[] = "not found: the only path is /metrics\n";
	static char not_allowed[] = "method not allowed: use GET\n";
	struct buf out = {0};

	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, strlen(not_allowed),
		             MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, not_found, strlen(not_found),
		             MHD_RESPMEM_PERSISTENT);
	metrics_render(&out);
	return reply(c, MHD_HTTP_OK, out.p, out.len, MHD_RESPMEM_MUST_FREE);
}

/* Let libmicrohttpd do what is ready, then wait for its next deadline
 * (none: only for its descriptor). */
static void
run(struct metrics_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(h->mhd);
	ev_timer_stop(h->loop, &h->timer);
	if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
		ev_timer_set(&h->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(h->loop, &h->timer);
	}
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	run(w->data);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	run(w->data);
}

/* A bound, listening, non-blocking socket for LISTEN, or -1 (logged). */
static int
listen_socket(const char *listen_on, int *family)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;
	struct stat st;
	int fd, one = 1;

	if (cfg_parse_listen(listen_on, &ss, &len, &err) < 0) {
		log_errx("metrics_listen %s: %s", listen_on, err);
		return -1;
	}
	*family = ss.ss_family;
	/* A socket left by an earlier run would fail the bind; anything
	 * else at the path is not ours to remove. */
	if (ss.ss_family == AF_UNIX && lstat(listen_on, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(listen_on);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("metrics_listen %s: socket", listen_on);
		return -1;
	}
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0) {
		log_warn("metrics_listen %s", listen_on);
		close(fd);
		return -1;
	}
	return fd;
}

struct metrics_http *
metrics_http_start(struct ev_loop *loop, const char *listen_on)
{
	struct metrics_http *h;
	const union MHD_DaemonInfo *info;
	int fd, family = AF_UNSPEC;

	if ((fd = listen_socket(listen_on, &family)) < 0)
		return NULL;
	h = xcalloc(1, sizeof *h);
	h->loop = loop;
	if (family == AF_UNIX)
		h->unix_path = xstrdup(listen_on);
	/*
	 * No MHD_USE_ERROR_LOG: libmicrohttpd would log each refused or
	 * broken connection, and a client must not be able to fill the log.
	 * The per-address limit only means something for IP addresses.
	 */
	h->mhd = MHD_start_daemon(
	    MHD_USE_EPOLL, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)(family == AF_UNIX ? 0 : PER_ADDRESS),
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_SECONDS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY, MHD_OPTION_END);
	if (!h->mhd || !(info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD))) {
		log_errx("metrics_listen %s: cannot start the HTTP server", listen_on);
		if (h->mhd)
			MHD_stop_daemon(h->mhd);
		else
			close(fd);
		free(h->unix_path);
		free(h);
		return NULL;
	}
	ev_io_init(&h->io, io_cb, info->epoll_fd, EV_READ);
	h->io.data = h;
	ev_io_start(loop, &h->io);
	ev_init(&h->timer, timer_cb);
	h->timer.data = h;
	run(h);
	log_info("metrics: serving GET /metrics on %s", listen_on);
	return h;
}

void
metrics_http_stop(struct metrics_http *h)
{
	MHD_socket fd;

	if (!h)
		return;
	ev_io_stop(h->loop, &h->io);
	ev_timer_stop(h->loop, &h->timer);
	/* In external polling mode the listening socket handed back is ours
	 * to close at once. */
	if ((fd = MHD_quiesce_daemon(h->mhd)) != MHD_INVALID_SOCKET)
		close(fd);
	MHD_stop_daemon(h->mhd);
	if (h->unix_path)
		unlink(h->unix_path);
	free(h->unix_path);
	free(h);
}
