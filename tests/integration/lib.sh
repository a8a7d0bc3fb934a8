# lib.sh - helpers for integration test groups (sourced, POSIX sh).
#
# A group runs either inside the emulated KVM host (KIT=/kit, TESTS=/tests)
# or directly on a host with hardware KVM (the runner sets KIT and TESTS).
# Each check prints one TAP line, "ok N - what" or "not ok N - what", with
# the evidence as "# " lines after a failure.

KIT=${KIT:-/kit}
TESTS=${TESTS:-/tests}
WORK=${WORK:-$(mktemp -d)}
tap_n=0
tap_failed=0

tap_ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}

tap_not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

# Show a log file as TAP diagnostics.
tap_diag() {
	[ -f "$1" ] && tail -n "${2:-25}" "$1" | sed 's/^/# /'
}

# zrun LOG ARGS...: run `zonevm run ARGS` with output in LOG; sets $rc.
zrun() {
	log=$1
	shift
	# A hung guest must not stall the group: SIGTERM gives status 5.
	timeout "${ZRUN_TIMEOUT:-300}" zonevm run "$@" </dev/null >"$log" 2>&1
	rc=$?
}

# expect_run WHAT STATUS PATTERN ARGS...: a zonevm run must end with STATUS
# and print a line matching PATTERN (grep -E).
expect_run() {
	what=$1
	want=$2
	pat=$3
	shift 3
	log="$WORK/run.$tap_n.log"
	zrun "$log" "$@"
	if [ "$rc" -eq "$want" ] && grep -Eq -- "$pat" "$log"; then
		tap_ok "$what"
	else
		tap_not_ok "$what (exit $rc, want $want; want output /$pat/)"
		tap_diag "$log"
	fi
}

# guest_script TEXT: a kernel command line argument that makes the guest
# kit's /init run TEXT.
guest_script() {
	printf '%s\n' "$1" | base64 -w0
}

# guest_val LOG KEY: the last value a guest printed as "KEY=value".
guest_val() {
	sed -n "s/^$2=\([^[:space:]]*\).*/\1/p" "$1" | tail -n 1
}

# tap_check WHAT STATUS [LOG...]: one TAP line from a condition's status,
# the logs as evidence when it failed.
tap_check() {
	what=$1
	if [ "$2" -eq 0 ]; then
		tap_ok "$what"
	else
		tap_not_ok "$what"
		shift 2
		for f in "$@"; do tap_diag "$f" 30; done
	fi
}

tap_end() {
	echo "# $tap_n checks, $tap_failed failed"
	rm -rf "$WORK"
	[ "$tap_failed" -eq 0 ]
}
