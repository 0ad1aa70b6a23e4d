#!/bin/sh
# Extra clusters on TCP for the connection tests (tests/check_net.c and
# tests/check_net_dead.c), beside the unix-socket one of tests/with-pg.sh
# (whose PGTEST_* it uses):
#   pgnet.sh init DIR ADDR PORT       a primary listening on ADDR:PORT
#   pgnet.sh ssl DIR CERT KEY         ssl = on with that certificate (copied)
#   pgnet.sh standby DIR PORT PRIMARY_DIR   pg_basebackup -R of a primary
#   pgnet.sh start|stop|kill|promote DIR    stop: -m fast; kill: -m immediate
# DIR is created; as root every server runs as PGTEST_RUNAS.
set -eu
: "${PGTEST_BINDIR:?run under tests/with-pg.sh}"
run() {
	if [ -n "${PGTEST_RUNAS:-}" ]; then
		runuser -u "$PGTEST_RUNAS" -- "$@"
	else
		"$@"
	fi
}
mkowned() {
	mkdir -p "$1"
	chmod 0700 "$1"
	[ -z "${PGTEST_RUNAS:-}" ] || chown "$PGTEST_RUNAS" "$1"
}
ctl() {
	d=$1; shift
	run "$PGTEST_BINDIR/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 "$@" >/dev/null
}
conf() { # DIR ADDR PORT: what every cluster here shares
	cat >>"$1/data/postgresql.conf" <<CONF
listen_addresses = '$2'
port = $3
unix_socket_directories = '$1'
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 4
hot_standby = on
log_min_messages = warning
log_connections = on
CONF
}
cmd=$1 d=$2
case "$cmd" in
init)
	# A cluster of an earlier run (the sanitized pass reuses the temp dir)
	# or of a failed test: stopped and removed.
	if [ -d "$d/data" ]; then ctl "$d" stop -m immediate 2>/dev/null || true; fi
	rm -rf "$d"
	mkowned "$d"
	run "$PGTEST_BINDIR/initdb" -D "$d/data" -U postgres --auth=trust \
	    --no-sync -E UTF8 --locale=C >"$d/initdb.log" 2>&1 ||
	    { cat "$d/initdb.log" >&2; exit 1; }
	conf "$d" "$3" "$4"
	# Trust over TCP too (the tests prove connections, not passwords);
	# replication for pg_basebackup and the standby.
	cat >>"$d/data/pg_hba.conf" <<HBA
host all all 0.0.0.0/0 trust
host replication all 0.0.0.0/0 trust
HBA
	;;
ssl)
	cp "$3" "$d/data/server.crt"
	cp "$4" "$d/data/server.key"
	chmod 0600 "$d/data/server.key"
	[ -z "${PGTEST_RUNAS:-}" ] || chown "$PGTEST_RUNAS" "$d/data/server.crt" "$d/data/server.key"
	# Only TLS connections are let in over TCP.
	cat >"$d/data/pg_hba.conf" <<HBA
local all all trust
hostssl all all 0.0.0.0/0 trust
hostssl all all ::/0 trust
HBA
	echo "ssl = on" >>"$d/data/postgresql.conf"
	;;
standby)
	if [ -d "$d/data" ]; then ctl "$d" stop -m immediate 2>/dev/null || true; fi
	rm -rf "$d"
	mkowned "$d"
	pport=$(sed -n 's/^port = //p' "$4/data/postgresql.conf" | tail -n 1)
	paddr=$(sed -n "s/^listen_addresses = '\(.*\)'/\1/p" "$4/data/postgresql.conf" | tail -n 1)
	run "$PGTEST_BINDIR/pg_basebackup" -h "$paddr" -p "$pport" -U postgres -D "$d/data" \
	    -R -X stream -c fast >"$d/basebackup.log" 2>&1 ||
	    { cat "$d/basebackup.log" >&2; exit 1; }
	conf "$d" "$paddr" "$3"
	;;
start) ctl "$d" start ;;
stop) ctl "$d" stop -m fast ;;
kill) ctl "$d" stop -m immediate ;;
promote) ctl "$d" promote ;;
*) echo "usage: pgnet.sh init|ssl|standby|start|stop|kill|promote DIR ..." >&2; exit 2 ;;
esac
