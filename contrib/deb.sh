#!/bin/sh
# make deb: build BUILDDIR/pgjobd_VERSION_ARCH.deb with dpkg-buildpackage in
# a throwaway copy of the tree (contrib/debian/ becomes its debian/, so the
# top level stays as it is), then run lintian on it: an error fails.
#   contrib/deb.sh [BUILDDIR]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
b=$(cd "$top" && mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)
version=$(cat "$top/src/VERSION")
arch=$(dpkg --print-architecture)
maint=$(sed -n 's/^Maintainer: //p' "$top/contrib/debian/control")
work=$b/deb
src=$work/pgjobd-$version

rm -rf "$work"
mkdir -p "$src"
(cd "$top" && cp -a Makefile README.md src sql etc systemd tests contrib "$src/")
rm -rf "$src/contrib/debian"
cp -a "$top/contrib/debian" "$src/debian"
# The version is src/VERSION's; the date that of the last commit, so that
# two builds of one commit are the same package.
date=$(git -C "$top" log -1 --format=%cD 2>/dev/null || date -R)
cat > "$src/debian/changelog" <<EOC
pgjobd ($version) unstable; urgency=medium

  * Package of pgjobd $version, built by make deb.

 -- $maint  $date
EOC

echo "deb: dpkg-buildpackage in $src (log: $work/build.log)"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log" >&2
	echo "deb: dpkg-buildpackage failed" >&2
	exit 1
fi
cp "$work/pgjobd_${version}_$arch.deb" "$b/"
echo "deb: lintian (an error fails the build)"
lintian --fail-on error --display-info "$work/pgjobd_${version}_$arch.changes"
echo "deb: $b/pgjobd_${version}_$arch.deb"
