/* sdnotify: see sdnotify.h. */
#include "sdnotify.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int sd_fd = -1;
static struct sockaddr_un sd_addr;
static socklen_t sd_addrlen;
static uint64_t watchdog_usec;

void
sd_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wdpid = getenv("WATCHDOG_PID");
	size_t len;

	/* The watchdog is ours only when WATCHDOG_PID is unset or our pid. */
	if (wd && (!wdpid || strtol(wdpid, NULL, 10) == (long)getpid()))
		watchdog_usec = strtoull(wd, NULL, 10);
	if (path && (path[0] == '/' || path[0] == '@') &&
	    (len = strlen(path)) < sizeof sd_addr.sun_path) {
		sd_addr.sun_family = AF_UNIX;
		memcpy(sd_addr.sun_path, path, len);
		if (path[0] == '@') /* abstract namespace */
			sd_addr.sun_path[0] = '\0';
		sd_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
		sd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (sd_fd < 0)
			log_warn("NOTIFY_SOCKET");
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

void
sd_notifyf(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (sd_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	/* Best effort: systemd reads these promptly; a full queue drops one
	 * status line, never blocks the loop. */
	(void)sendto(sd_fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sd_addr, sd_addrlen);
}

uint64_t
sd_watchdog_usec(void)
{
	return watchdog_usec;
}

void
sd_close(void)
{
	if (sd_fd >= 0)
		close(sd_fd);
	sd_fd = -1;
}
