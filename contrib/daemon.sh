# shellcheck shell=sh
# Sourced by contrib/demo.sh and contrib/bench.sh: control of the pgjobd
# they run in the background, whose pid is in $pid ("" when none).

# Is the daemon still running?  (The shell reaps it, keeping its status for wait.)
alive() {
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Wait up to $1 tenths of a second for the daemon to exit.
wait_gone() {
	i=0
	while alive && [ "$i" -lt "$1" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	! alive
}

# Stop it whatever state it is in: SIGTERM; after a second a second SIGTERM,
# which skips shutdown_timeout (handlers get SIGTERM, then SIGKILL after
# kill_grace); SIGKILL as the last resort.
kill_daemon() {
	alive || return 0
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone 10; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone 150 || kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
