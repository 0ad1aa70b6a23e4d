/*
 * metrics_http: GET /metrics (metrics.h's text) on the daemon's own libev
 * loop, through libmicrohttpd in its "external polling" mode: no thread
 * of its own, its epoll descriptor watched by one ev_io and its next
 * deadline by one ev_timer, every socket non-blocking.  So a client can
 * delay nothing but itself; connections, their memory and their idle
 * time are capped (metrics_http.c says how far).
 */
#ifndef PGJOBD_METRICS_HTTP_H
#define PGJOBD_METRICS_HTTP_H

#include <ev.h>

struct metrics_http;

/* Listen on LISTEN (cfg_parse_listen's syntax, already validated).
 * Returns NULL and logs why when the socket cannot be set up. */
struct metrics_http *metrics_http_start(struct ev_loop *loop, const char *listen);
void metrics_http_stop(struct metrics_http *h);

#endif
