/* log: see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool log_verbose;
static bool journal;

enum { PRI_ERR = 3, PRI_WARNING = 4, PRI_NOTICE = 5, PRI_INFO = 6, PRI_DEBUG = 7 };

void
log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	journal = false;
	if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
		journal = st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
	/* Whole lines, even when several processes share the stream. */
	setvbuf(stderr, NULL, _IOLBF, 0);
}

char *
log_oneline(char *dst, size_t len, const char *src)
{
	size_t n = 0;

	for (; *src && n + 1 < len; src++) {
		bool blank = *src == ' ' || *src == '\n' || *src == '\t' || *src == '\r';
		if (!blank)
			dst[n++] = *src;
		else if (n > 0 && dst[n - 1] != ' ')
			dst[n++] = ' ';
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
	return dst;
}

bool
log_to_journal(void)
{
	return journal;
}

static void
vlog(int pri, const char *fmt, va_list ap, const char *errstr)
{
	static const char *const names[] = {
		[PRI_ERR] = "error", [PRI_WARNING] = "warning", [PRI_NOTICE] = "notice",
		[PRI_INFO] = "info", [PRI_DEBUG] = "debug",
	};
	char msg[4096];

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (journal) {
		fprintf(stderr, "<%d>%s%s%s\n", pri, msg, errstr ? ": " : "", errstr ? errstr : "");
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %s: %s%s%s\n", when, ts.tv_nsec / 1000000, names[pri], msg,
	    errstr ? ": " : "", errstr ? errstr : "");
}

#define LOGFN(fn, pri)                                                                             \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vlog(pri, fmt, ap, NULL);                                                          \
		va_end(ap);                                                                        \
	}
LOGFN(log_info, PRI_INFO)
LOGFN(log_notice, PRI_NOTICE)
LOGFN(log_warnx, PRI_WARNING)
LOGFN(log_errx, PRI_ERR)

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(PRI_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(PRI_WARNING, fmt, ap, e);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(PRI_ERR, fmt, ap, e);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(PRI_ERR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
