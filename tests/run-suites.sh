#!/bin/sh
# Run every Check suite twice, plain and under ASan+UBSan (build/asan/),
# each against the cluster of tests/with-pg.sh and with the daemon of the
# same build, then the suites of PGJOBD_ONCE once each under
# tests/with-nspawn.sh, and print the total as "N passed, N failed".
#   tests/run-suites.sh BUILDDIR SUITE...
set -u
b=$1; shift
PGJOBD_SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
export PGJOBD_SRCDIR
# LeakSanitizer reports make a process exit non-zero, so a leak fails the
# suite (Check reports a test whose child exits non-zero as an error).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0 failed=0 broken="" skipped=""
log=$(mktemp)
# Add the suite's output in $log (exit status RC) to the totals.
tally() { # NAME RC
	cat "$log"
	# Check's summary: "NN%: Checks: N, Failures: F, Errors: E"
	line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		broken="$broken $1"
		failed=$((failed + 1))
		return
	fi
	n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	passed=$((passed + n - f - e))
	failed=$((failed + f + e))
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ]; then
		broken="$broken $1(exit $2)"
		failed=$((failed + 1))
	fi
}
for variant in "" asan/; do
	for suite in "$@"; do
		echo "== ${variant:-plain/}$suite"
		PGJOBD_BIN="$b/${variant}pgjobd" "$b/$variant$suite" >"$log" 2>&1
		tally "${variant}$suite" $?
	done
done
# tests/with-nspawn.sh exits 77 when this machine cannot boot a container
# (not root, no systemd-nspawn): the suite is skipped and said to be.
for suite in ${PGJOBD_ONCE:-}; do
	echo "== once/$suite"
	"$PGJOBD_SRCDIR/tests/with-nspawn.sh" "$b/$suite" >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 77 ]; then
		cat "$log"
		skipped="$skipped $suite"
		continue
	fi
	tally "$suite" "$rc"
done
rm -f "$log"
[ -n "$broken" ] && echo "suites that did not finish cleanly:$broken"
[ -n "$skipped" ] && echo "suites SKIPPED, this machine cannot run them (see above):$skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
