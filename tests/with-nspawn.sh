#!/bin/sh
# Run a command beside a minimal Debian 12 booted under systemd-nspawn (a
# real systemd as its PID 1, PostgreSQL 15 running inside), then power it
# off and remove it.
#
#   tests/with-nspawn.sh CMD [ARGS...]
#
# CMD sees PGJOBD_NSPAWN_PID (the container's PID 1, for nsenter -t PID -a)
# and PGJOBD_NSPAWN_ROOT (its root directory as seen from here).  The root
# file system is bootstrapped once into PGJOBD_NSPAWN_CACHE (default
# /var/cache/pgjobd-test) as rootfs-HASH, HASH of its package list, and each
# run boots an overlay (or, failing that, a copy) of it, so runs never
# change it.  However this script ends, the container is stopped and killed
# and the run's files removed.  Where the machine cannot do it (not root, no
# systemd-nspawn or debootstrap, the container does not boot) it says why
# and exits 77: skipped, not passed.
set -eu

skip() {
	echo "with-nspawn.sh: SKIPPED: $*" >&2
	exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null || skip "no systemd-nspawn (package systemd-container)"
command -v debootstrap >/dev/null || skip "no debootstrap"

suite=bookworm
# Everything the tests need inside: systemd, PostgreSQL, pgjobd's libraries
# and adduser (its package's dependencies: there is no network inside).
pkgs="systemd systemd-sysv dbus procps adduser libpq5 libev4 libinih1 libc-ares2 libmicrohttpd12 postgresql-15"
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${PGJOBD_NSPAWN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
cache=${PGJOBD_NSPAWN_CACHE:-/var/cache/pgjobd-test}
# shellcheck disable=SC2086 # one line per package
hash=$(printf '%s\n' "$suite" $pkgs | sha256sum | cut -c 1-12)
base=$cache/rootfs-$hash

run="" nspawn="" leader="" overlay="" cmd=""
# Wait up to TENTHS tenths of a second for process PID to be gone.
gone() { # PID TENTHS
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ $i -ge "$2" ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}
cleanup() {
	st=$?
	# A second signal must not cut the cleanup short.
	trap - EXIT
	trap '' INT TERM HUP
	if [ -n "$cmd" ] && kill -0 "$cmd" 2>/dev/null; then
		# (dash's kill takes no "--": a negative pid is the group.)
		kill -TERM "-$cmd" 2>/dev/null || true
		gone "$cmd" 100 || kill -KILL "-$cmd" 2>/dev/null || true
	fi
	if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
		# SIGTERM: nspawn asks the container's systemd to power off.
		kill -TERM "$nspawn" 2>/dev/null || true
		if ! gone "$nspawn" 150; then
			echo "with-nspawn.sh: the container did not stop in 15 s: killed" >&2
			# PID 1 of a PID namespace takes all its processes with it.
			[ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
			kill -KILL "$nspawn" 2>/dev/null || true
		fi
		wait "$nspawn" 2>/dev/null || true
	fi
	if [ -n "$run" ]; then
		[ -n "$overlay" ] && umount "$run/root" 2>/dev/null
		rm -rf "$run"
	fi
	rm -f "$cache/run.$$"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$cache"
# A run whose script was killed outright (SIGKILL runs no trap) left its
# container: each run records itself in run.PID, and the next one reaps it.
for f in "$cache"/run.*; do
	[ -e "$f" ] || continue
	kill -0 "${f##*.}" 2>/dev/null && continue
	read -r old_nspawn old_leader old_run <"$f" || true
	if [ "$(ps -o comm= -p "${old_nspawn:-0}")" = systemd-nspawn ]; then
		echo "with-nspawn.sh: killing the container a killed run left (pid $old_nspawn)" >&2
		# Its PID 1 first: that takes the container's processes with it.
		[ "$(ps -o comm= -p "${old_leader:-0}")" = systemd ] && kill -KILL "$old_leader"
		kill -KILL "$old_nspawn" 2>/dev/null || true
	fi
	case ${old_run:-} in
	*/pgjobd-nspawn.*)
		umount "$old_run/root" 2>/dev/null || true
		rm -rf "$old_run"
		;;
	esac
	rm -f "$f"
done
if [ ! -d "$base" ]; then
	# One bootstrap at a time; the rename makes a half-built one invisible.
	exec 9>"$cache/lock"
	flock 9
	if [ ! -d "$base" ]; then
		echo "with-nspawn.sh: bootstrapping $base ($pkgs) from $mirror" >&2
		rm -rf "$base.tmp"
		if ! debootstrap --variant=minbase --include="$(echo "$pkgs" | tr ' ' ,)" \
			"$suite" "$base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
			tail -n 20 "$cache/debootstrap.log" >&2
			echo "with-nspawn.sh: debootstrap failed (log: $cache/debootstrap.log)" >&2
			exit 1
		fi
		chroot "$base.tmp" apt-get clean
		mv "$base.tmp" "$base"
	fi
	exec 9>&-
fi

run=$(mktemp -d "${TMPDIR:-/var/tmp}/pgjobd-nspawn.XXXXXX")
mkdir "$run/root" "$run/upper" "$run/work"
if mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" \
	"$run/root" 2>/dev/null; then
	overlay=1
else
	cp -a "$base/." "$run/root/"
fi

# --register=no and --keep-unit: there is no systemd or D-Bus on the host.
machine=pgjobd-test-$$
setsid systemd-nspawn -q -b -D "$run/root" --register=no --keep-unit --console=pipe \
	--private-network --machine="$machine" </dev/null >"$run/nspawn.log" 2>&1 &
nspawn=$!
echo "$nspawn 0 $run" >"$cache/run.$$"
i=0
while [ -z "$leader" ]; do
	leader=$(pgrep -P "$nspawn" -x systemd || true)
	[ -n "$leader" ] && break
	if ! kill -0 "$nspawn" 2>/dev/null || [ $i -ge 300 ]; then
		tail -n 20 "$run/nspawn.log" >&2
		skip "systemd-nspawn did not boot the container"
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "$nspawn $leader $run" >"$cache/run.$$"
# "running" or "degraded" (a unit of the minimal system failed): booted.
# Until its systemd listens, systemctl cannot connect at all, or finds no
# manager yet and says "offline" (seen once in CI, which then skipped the
# suite): retry, for 30 s at most.
i=0
while :; do
	state=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1 || true)
	case $state in
	running | degraded) break ;;
	*"Failed to connect to bus"* | offline)
		[ $i -lt 300 ] && { sleep 0.1; i=$((i + 1)); continue; } ;;
	esac
	tail -n 20 "$run/nspawn.log" >&2
	skip "the container did not finish booting: $state"
done

export PGJOBD_NSPAWN_PID="$leader" PGJOBD_NSPAWN_ROOT="$run/root"
# In the background, in its own process group: sh runs a trap only once
# the foreground command has ended, while `wait` is interrupted at once.
setsid "$@" &
cmd=$!
wait "$cmd"
