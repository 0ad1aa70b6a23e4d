/*
 * xmalloc: the one out-of-memory policy (tmux's xmalloc.c): an allocation
 * that fails ends the process at once with "pgjobd: out of memory" and exit
 * status 1.  A daemon that cannot allocate a few hundred bytes cannot write
 * outcomes either; its leases expire and another daemon runs its jobs, so a
 * recovery path in every caller would buy nothing.
 *
 * Standalone (no logging, no event loop), so that every module and unit
 * test can link it.
 */
#ifndef PGJOBD_XMALLOC_H
#define PGJOBD_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf() that cannot fail. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
