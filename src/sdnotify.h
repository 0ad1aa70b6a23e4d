/*
 * sdnotify: systemd's notification datagrams (READY=1, STATUS=...,
 * WATCHDOG=1, STOPPING=1, RELOADING=1), without libsystemd: one
 * AF_UNIX/SOCK_DGRAM sendto() to $NOTIFY_SOCKET.
 *
 * sd_init() takes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID out of the
 * environment so that nothing started later (handlers) can see them.
 */
#ifndef PGJOBD_SDNOTIFY_H
#define PGJOBD_SDNOTIFY_H

#include <stdint.h>

#include "log.h"

void sd_init(void);
/* Send one datagram (several "KEY=VALUE\n" lines); silent without systemd. */
void sd_notifyf(const char *fmt, ...) PRINTFLIKE(1, 2);
/* The watchdog period in microseconds, 0 when the watchdog is off. */
uint64_t sd_watchdog_usec(void);
void sd_close(void);

#endif
