#!/bin/sh
# Run a command against a throwaway PostgreSQL cluster, then remove it.
#
#   tests/with-pg.sh CMD [ARGS...]
#
# The cluster lives in a fresh temp dir, listens on a unix socket there
# only (no TCP), and trusts local connections.  With PGTEST_DURABLE=1 it
# keeps PostgreSQL's default durability (fsync, synchronous_commit) and
# listens on 127.0.0.1:PGTEST_PORT too, and CMD connects over TCP.
# CMD sees PGHOST, PGPORT, PGUSER, PGDATABASE (database "pgjobd_test") and PGTEST_DIR, and may call
# "tests/pgctl.sh restart|stop|start" to stop or restart the server under
# it.  initdb refuses to run as root, so as root the server runs as the
# "postgres" system user (PGTEST_USER to choose another).  The cluster is
# stopped and removed however CMD ends: success, failure or a signal.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bindir=${PG_BINDIR:-$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
[ -x "$bindir/initdb" ] || { echo "with-pg.sh: no initdb (set PG_BINDIR)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/pgjobd-test.XXXXXX")
chmod 0755 "$dir"
if [ "$(id -u)" -eq 0 ]; then
	runas=${PGTEST_USER:-postgres}
	chown "$runas" "$dir"
else
	runas=""
fi
export PGTEST_DIR="$dir" PGTEST_BINDIR="$bindir" PGTEST_RUNAS="$runas"

cleanup() {
	st=$?
	trap - EXIT INT TERM HUP
	"$here/pgctl.sh" stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

"$here/pgctl.sh" init
"$here/pgctl.sh" start

export PGHOST="$dir" PGPORT="${PGTEST_PORT:-54329}" PGUSER=postgres PGDATABASE=pgjobd_test
[ "${PGTEST_DURABLE:-0}" != 1 ] || PGHOST=127.0.0.1
unset PGSERVICE PGPASSFILE PGHOSTADDR PGSSLMODE 2>/dev/null || true
"$bindir/psql" -X -q -d postgres -c 'CREATE DATABASE pgjobd_test' >/dev/null

"$@"
