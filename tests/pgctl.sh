#!/bin/sh
# Control the throwaway cluster of tests/with-pg.sh (which sets PGTEST_*):
#   pgctl.sh init | start | stop | restart    (restart is -m immediate: a crash)
set -eu
: "${PGTEST_DIR:?run under tests/with-pg.sh}"
data="$PGTEST_DIR/data"
run() {
	if [ -n "$PGTEST_RUNAS" ]; then
		runuser -u "$PGTEST_RUNAS" -- "$@"
	else
		"$@"
	fi
}
ctl() {
	run "$PGTEST_BINDIR/pg_ctl" -D "$data" -l "$PGTEST_DIR/server.log" -w -t 60 "$@"
}
case "$1" in
init)
	run "$PGTEST_BINDIR/initdb" -D "$data" -U postgres --auth=trust \
	    --no-sync -E UTF8 --locale=C >"$PGTEST_DIR/initdb.log" 2>&1 ||
	    { cat "$PGTEST_DIR/initdb.log" >&2; exit 1; }
	cat >>"$data/postgresql.conf" <<CONF
unix_socket_directories = '$PGTEST_DIR'
port = ${PGTEST_PORT:-54329}
max_connections = 100
log_min_messages = warning
CONF
	# Tests trade durability for speed; PGTEST_DURABLE=1 (make bench)
	# keeps PostgreSQL's defaults and listens on 127.0.0.1 too.
	if [ "${PGTEST_DURABLE:-0}" = 1 ]; then
		echo "listen_addresses = '127.0.0.1'" >>"$data/postgresql.conf"
	else
		printf "%s\n" "listen_addresses = ''" "fsync = off" "synchronous_commit = off" \
		    "full_page_writes = off" >>"$data/postgresql.conf"
	fi
	;;
start) ctl start >/dev/null ;;
stop) ctl stop -m fast >/dev/null ;;
restart) ctl restart -m immediate >/dev/null ;;
*) echo "usage: pgctl.sh init|start|stop|restart" >&2; exit 2 ;;
esac
