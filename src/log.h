/*
 * log: one line per event on stderr (ntpd log.h style).
 *
 * When stderr is the systemd journal (JOURNAL_STREAM names its device and
 * inode) each line starts with a "<N>" syslog priority, which journald
 * turns into the entry's priority, and carries no timestamp of its own;
 * otherwise lines start with an ISO 8601 timestamp and the level.
 * log_warn()/fatal() append strerror(errno); the x variants do not.
 */
#ifndef PGJOBD_LOG_H
#define PGJOBD_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))

void log_init(void);
bool log_to_journal(void);
void log_debug(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_info(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_notice(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_errx(const char *fmt, ...) PRINTFLIKE(1, 2);
void fatal(const char *fmt, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) PRINTFLIKE(1, 2) __attribute__((noreturn));

/* Copy SRC into DST (LEN bytes) as one line: every run of white space,
 * newlines included, becomes one blank (libpq's messages span lines, and
 * the log has one line per event).  Returns DST. */
char *log_oneline(char *dst, size_t len, const char *src);

/* Enable log_debug() lines (pgjobd -d). */
extern bool log_verbose;

#endif
