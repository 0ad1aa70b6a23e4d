/* conninfo: see conninfo.h. */
#include "conninfo.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xmalloc.h"

struct conninfo {
	PQconninfoOption *opts;
	char **hosts; /* host= split at commas (from PGHOST when not given) */
	int nhosts;
	char **ports; /* port= likewise */
	int nports;
	const char **names; /* hosts[] entries that need a lookup, deduplicated */
	int nnames;
};

static const char *
opt(const struct conninfo *ci, const char *keyword)
{
	for (const PQconninfoOption *o = ci->opts; o->keyword; o++)
		if (!strcmp(o->keyword, keyword))
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

/* An option from the string or, as libpq would take it, the environment. */
static const char *
opt_env(const struct conninfo *ci, const char *keyword, const char *env)
{
	const char *v = opt(ci, keyword);

	return v ? v : getenv(env);
}

/* libpq's host and port lists: comma-separated, no quoting. */
static char **
split(const char *s, int *n)
{
	char **v;
	int k = 1;

	*n = 0;
	if (!s)
		return NULL;
	for (const char *p = s; *p; p++)
		k += *p == ',';
	v = xcalloc((size_t)k, sizeof *v);
	for (const char *p = s;; p++) {
		const char *e = strchr(p, ',');

		v[(*n)++] = e ? xstrndup(p, (size_t)(e - p)) : xstrdup(p);
		if (!e)
			break;
		p = e;
	}
	return v;
}

static void
vec_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Socket directories ('/', or '@' for Linux' abstract namespace) and empty
 * entries (the default socket). */
static bool
is_socket(const char *host)
{
	return !*host || *host == '/' || *host == '@';
}

/* Neither a socket nor a numeric address. */
static bool
needs_lookup(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (is_socket(host))
		return false;
	return inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1;
}

struct conninfo *
conninfo_parse(const char *s, char **err)
{
	struct conninfo *ci;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(s, &perr);

	if (!opts) {
		*err = xstrdup(perr ? perr : "out of memory");
		PQfreemem(perr);
		return NULL;
	}
	ci = xcalloc(1, sizeof *ci);
	ci->opts = opts;
	ci->hosts = split(opt_env(ci, "host", "PGHOST"), &ci->nhosts);
	ci->ports = split(opt_env(ci, "port", "PGPORT"), &ci->nports);
	/* hostaddr= given: libpq does no lookup.  A port list that matches
	 * neither one port nor the host list is libpq's to refuse. */
	if (opt_env(ci, "hostaddr", "PGHOSTADDR") || (ci->nports > 1 && ci->nports != ci->nhosts))
		return ci;
	ci->names = xcalloc((size_t)ci->nhosts + 1, sizeof *ci->names);
	for (int i = 0; i < ci->nhosts; i++) {
		bool seen = false;

		if (!needs_lookup(ci->hosts[i]))
			continue;
		for (int j = 0; j < ci->nnames; j++)
			seen = seen || !strcmp(ci->names[j], ci->hosts[i]);
		if (!seen)
			ci->names[ci->nnames++] = ci->hosts[i];
	}
	return ci;
}

void
conninfo_free(struct conninfo *ci)
{
	if (!ci)
		return;
	PQconninfoFree(ci->opts);
	vec_free(ci->hosts, ci->nhosts);
	vec_free(ci->ports, ci->nports);
	free(ci->names);
	free(ci);
}

int
conninfo_names(const struct conninfo *ci, const char *const **names)
{
	*names = ci->names;
	return ci->nnames;
}

static void
add(struct conninfo_params *p, const char *keyword, const char *value)
{
	p->keywords[p->n] = keyword;
	p->values[p->n] = value;
	p->n++;
}

static char *
own(struct conninfo_params *p, char *s)
{
	p->owned[p->nowned++] = s;
	return s;
}

/* A keyword the string leaves unset gets VALUE (when > 0). */
static void
add_default(struct conninfo_params *p, const struct conninfo *ci, const char *keyword, int value)
{
	if (value > 0 && !opt(ci, keyword))
		add(p, keyword, own(p, xasprintf("%d", value)));
}

static const struct resolve_answer *
answer_for(const char *name, const struct resolve_answer *answers, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(answers[i].name, name))
			return &answers[i];
	return NULL;
}

/* host=, hostaddr= and port= lists of equal length: one entry per address. */
static bool
add_addresses(struct conninfo_params *p, const struct conninfo *ci,
    const struct resolve_answer *answers, int nanswers, char **err)
{
	struct buf host = {0}, addr = {0}, port = {0}, failed = {0};
	int entries = 0;

	for (int i = 0; i < ci->nhosts; i++) {
		const char *h = ci->hosts[i];
		const char *pt = ci->nports == ci->nhosts ? ci->ports[i]
		    : ci->nports == 1                     ? ci->ports[0]
							  : "";
		const struct resolve_answer *a = needs_lookup(h) ? answer_for(h, answers, nanswers)
								 : NULL;
		int naddrs = a ? a->naddrs : 1;

		if (a && a->naddrs == 0) {
			buf_printf(&failed, "%s%s: %s", failed.len ? "; " : "", h,
			    a->error ? a->error : "no address");
			continue;
		}
		for (int k = 0; k < naddrs; k++) {
			const char *sep = entries++ ? "," : "";

			buf_printf(&host, "%s%s", sep, h);
			/* Sockets keep hostaddr empty; numeric hosts are their
			 * own address. */
			buf_printf(&addr, "%s%s", sep, a ? a->addrs[k] : is_socket(h) ? "" : h);
			buf_printf(&port, "%s%s", sep, pt);
		}
	}
	if (entries == 0) {
		*err = xasprintf("cannot resolve %s", failed.p ? failed.p : "any host");
		free(host.p);
		free(addr.p);
		free(port.p);
		free(failed.p);
		return false;
	}
	free(failed.p);
	add(p, "host", own(p, buf_take(&host)));
	add(p, "hostaddr", own(p, buf_take(&addr)));
	if (ci->nports > 0)
		add(p, "port", own(p, buf_take(&port)));
	else
		free(port.p);
	return true;
}

struct conninfo_params *
conninfo_params(const struct conninfo *ci, const struct conninfo_tcp *tcp,
    const struct resolve_answer *answers, int nanswers, char **err)
{
	struct conninfo_params *p = xcalloc(1, sizeof *p);
	int max = 0;

	for (const PQconninfoOption *o = ci->opts; o->keyword; o++)
		max++;
	max += 8;
	p->keywords = xcalloc((size_t)max, sizeof *p->keywords);
	p->values = xcalloc((size_t)max, sizeof *p->values);
	p->owned = xcalloc((size_t)max, sizeof *p->owned);
	for (const PQconninfoOption *o = ci->opts; o->keyword; o++) {
		if (!o->val)
			continue;
		/* Replaced below by the resolved lists. */
		if (ci->nnames > 0 && (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") ||
					  !strcmp(o->keyword, "port")))
			continue;
		add(p, o->keyword, o->val);
	}
	if (ci->nnames > 0 && !add_addresses(p, ci, answers, nanswers, err)) {
		conninfo_params_free(p);
		return NULL;
	}
	if (tcp->keepalives_idle > 0 || tcp->keepalives_interval > 0 || tcp->keepalives_count > 0)
		add_default(p, ci, "keepalives", 1);
	add_default(p, ci, "keepalives_idle", tcp->keepalives_idle);
	add_default(p, ci, "keepalives_interval", tcp->keepalives_interval);
	add_default(p, ci, "keepalives_count", tcp->keepalives_count);
	add_default(p, ci, "tcp_user_timeout", tcp->user_timeout_ms);
	return p;
}

void
conninfo_params_free(struct conninfo_params *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nowned; i++)
		free(p->owned[i]);
	free(p->owned);
	free(p->keywords);
	free(p->values);
	free(p);
}
