/*
 * conninfo: the `database =` string turned into what db hands libpq.
 *
 * The string (key=value conninfo or postgresql:// URI, both parsed by
 * libpq's PQconninfoParse) is kept as keyword/value pairs, and every
 * connection attempt builds PQconnectStartParams arrays from it, adding
 *  - TCP keepalives and tcp_user_timeout derived from the daemon's timings,
 *    each only where `database =` does not set it;
 *  - hostaddr= for every host= name, with the addresses resolve found, so
 *    that libpq does no blocking lookup of its own.  host= stays as given:
 *    libpq still checks the server certificate (sslmode=verify-full) and
 *    looks up ~/.pgpass by the name.
 * A name with several addresses becomes as many host list entries (same
 * name, same port), which libpq tries in order, like its own lookup does.
 */
#ifndef PGJOBD_CONNINFO_H
#define PGJOBD_CONNINFO_H

#include "resolve.h"

struct conninfo;

/* What the daemon's timings ask of TCP (0: leave libpq's default). */
struct conninfo_tcp {
	int keepalives_idle;     /* seconds */
	int keepalives_interval; /* seconds */
	int keepalives_count;
	int user_timeout_ms;
};

/* PQconnectStartParams arrays (NULL-terminated), owned by the struct. */
struct conninfo_params {
	const char **keywords;
	const char **values;
	int n;
	char **owned;
	int nowned;
};

/* NULL on a string libpq cannot parse; *ERR (malloc'd) says why. */
struct conninfo *conninfo_parse(const char *s, char **err);
void conninfo_free(struct conninfo *ci);
/* The host= names (from the string or PGHOST) that need a lookup: neither
 * socket directories nor numeric addresses, and no hostaddr= given.  Sets
 * *NAMES to an array owned by CI; returns its length (0: nothing to look
 * up). */
int conninfo_names(const struct conninfo *ci, const char *const **names);
/* The arrays for one attempt.  ANSWERS: what resolve found for the names
 * of conninfo_names() (ignored when it returned 0).  NULL when no host is
 * left to try (every name failed); *ERR (malloc'd) then names them. */
struct conninfo_params *conninfo_params(const struct conninfo *ci, const struct conninfo_tcp *tcp,
    const struct resolve_answer *answers, int nanswers, char **err);
void conninfo_params_free(struct conninfo_params *p);

#endif
