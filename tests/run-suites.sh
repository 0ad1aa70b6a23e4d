#!/bin/sh
# Run every Check suite twice, plain and under ASan+UBSan (build/asan/),
# each against the cluster of tests/with-pg.sh and with the daemon of the
# same build, then print the total as "N passed, N failed".
#   tests/run-suites.sh BUILDDIR SUITE...
set -u
b=$1; shift
PGJOBD_SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
export PGJOBD_SRCDIR
# LeakSanitizer reports make a process exit non-zero, so a leak fails the
# suite (Check reports a test whose child exits non-zero as an error).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0 failed=0 broken=""
log=$(mktemp)
for variant in "" asan/; do
	for suite in "$@"; do
		echo "== ${variant:-plain/}$suite"
		PGJOBD_BIN="$b/${variant}pgjobd" "$b/$variant$suite" >"$log" 2>&1
		rc=$?
		cat "$log"
		# Check's summary: "NN%: Checks: N, Failures: F, Errors: E"
		line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
		if [ -z "$line" ]; then
			broken="$broken ${variant}$suite"
			failed=$((failed + 1))
			continue
		fi
		n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
		f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
		e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
		passed=$((passed + n - f - e))
		failed=$((failed + f + e))
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ]; then
			broken="$broken ${variant}$suite(exit $rc)"
			failed=$((failed + 1))
		fi
	done
done
rm -f "$log"
[ -n "$broken" ] && echo "suites that did not finish cleanly:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
