#!/bin/sh
# make deps: install the Debian packages pgjobd needs to build and test
# (the last line: make deb and tests/check_systemd.c).
# As root it runs apt-get; otherwise it prints the one command to run.
# Quiet and idempotent when everything is present.
set -eu
PKGS="gcc make pkg-config libpq-dev libev-dev libinih-dev libc-ares-dev libmicrohttpd-dev check
      postgresql groff-base man-db systemd iproute2 openssl util-linux
      dpkg-dev debhelper lintian systemd-container debootstrap"
missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "pgjobd: missing packages:$missing" >&2
	echo "run:  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "pgjobd: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# Debian's postgresql package may create and start its own "main" cluster;
# nothing here uses it: tests and the demo run a private one in a temp dir.
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >&2
