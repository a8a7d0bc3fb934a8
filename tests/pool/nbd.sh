#!/bin/sh
# nbd.sh - `zonevm vol serve --nbd` with clients nobody here wrote: qemu-img
# and nbdcopy/nbdinfo (libnbd) read the same bytes as `vol export`, write
# through the export and read back, over a UNIX socket and TCP, with and
# without the pool daemon; a read-only export refuses writes; a flush
# through NBD survives SIGKILL of the exporting process (vol serve on its
# own, or the daemon), read back after a scrub.
# Usage: nbd.sh PATH-TO-ZONEVM   (skipped when qemu-img or nbdcopy is missing)
set -eu

Z=$(realpath "$1")
for t in qemu-img nbdcopy nbdinfo; do
	if ! command -v "$t" >/dev/null; then
		echo "nbd.sh: $t not installed (tools/install-deps), skipped"
		exit 77
	fi
done
T=$(mktemp -d /tmp/zvm-nbd-XXXXXX)
PIDS=
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
export ZONEVM_ROOT="$T/root"
n=0

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# serve ARGS...: vol serve in the background until its socket answers
serve() {
	"$Z" vol serve "$@" 2>>"$T/serve.err" &
	SPID=$!
	PIDS="$PIDS $SPID"
	for _ in $(seq 100); do
		nbdinfo --size "$URI" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	fail "vol serve $*: $(cat "$T/serve.err")"
}

unserve() {
	kill "$SPID"
	wait "$SPID" || fail "vol serve exited with $? on SIGTERM"
}

"$Z" pool create tank "$T/tank.img" --size 256M
head -c 5000000 /dev/urandom >"$T/img"
dd if=/dev/zero of="$T/img" bs=1M count=2 seek=1 conv=notrunc 2>/dev/null
"$Z" vol import tank/v "$T/img" --compression lz4
"$Z" vol export tank/v "$T/v.raw"
size=$(stat -c %s "$T/v.raw")

for mode in direct daemon; do
	if [ $mode = daemon ]; then
		"$Z" pool serve tank 2>"$T/daemon.err" &
		DPID=$!
		PIDS="$PIDS $DPID"
		for _ in $(seq 100); do [ -S "$T/root/run/tank.sock" ] && break; sleep 0.05; done
	fi
	# reads: qemu-img convert and nbdcopy give vol export's bytes
	URI="nbd+unix:///?socket=$T/v.sock"
	serve tank/v --nbd "$T/v.sock"
	[ "$(nbdinfo --size "$URI")" = "$size" ] || fail "$mode: nbdinfo size"
	nbdinfo "$URI" | grep -q 'export="tank/v"' || fail "$mode: export name"
	qemu-img convert -f raw -O raw "$URI" "$T/q.raw"
	cmp "$T/q.raw" "$T/v.raw" || fail "$mode: qemu-img convert differs from vol export"
	nbdcopy "$URI" "$T/c.raw"
	cmp "$T/c.raw" "$T/v.raw" || fail "$mode: nbdcopy differs from vol export"
	n=$((n + 3))
	# writes: nbdcopy in, vol export out (through the daemon while it serves)
	head -c "$size" /dev/urandom >"$T/w.raw"
	dd if=/dev/zero of="$T/w.raw" bs=1M count=1 seek=2 conv=notrunc 2>/dev/null
	nbdcopy "$T/w.raw" "$URI"
	if [ $mode = daemon ]; then
		"$Z" vol export tank/v "$T/e.raw" # while the export runs
		cmp "$T/e.raw" "$T/w.raw" || fail "$mode: vol export after an nbdcopy write"
		n=$((n + 1))
	fi
	# a second read-write export of the volume is refused
	if "$Z" vol serve tank/v --nbd "$T/v2.sock" 2>"$T/err"; then
		fail "$mode: a second read-write export started"
	fi
	grep -q "attached read-write by nbd export $T/v.sock" "$T/err" ||
		grep -q "in use by process" "$T/err" || fail "$mode: second export: $(cat "$T/err")"
	unserve
	"$Z" vol export tank/v "$T/e.raw"
	cmp "$T/e.raw" "$T/w.raw" || fail "$mode: nbdcopy's writes are not in the volume"
	cp "$T/w.raw" "$T/v.raw"
	n=$((n + 2))

	# read-only over TCP: reads work, writes are refused
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
	URI="nbd://127.0.0.1:$port"
	serve tank/v --nbd "127.0.0.1:$port" --ro
	nbdinfo "$URI" | grep -q 'is_read_only: true' || fail "$mode: --ro not advertised"
	nbdcopy "$URI" "$T/c.raw"
	cmp "$T/c.raw" "$T/v.raw" || fail "$mode: TCP read differs"
	if nbdcopy "$T/img" "$URI" 2>/dev/null; then
		fail "$mode: a write to a read-only export succeeded"
	fi
	unserve
	"$Z" vol export tank/v "$T/e.raw"
	cmp "$T/e.raw" "$T/v.raw" || fail "$mode: a read-only export changed the volume"
	n=$((n + 3))
	if [ $mode = daemon ]; then
		kill "$DPID"
		wait "$DPID" || fail "the daemon exited with $?"
	fi
done

# a flush through NBD is durable: SIGKILL the exporter, then read back
URI="nbd+unix:///?socket=$T/v.sock"
serve tank/v --nbd "$T/v.sock"
head -c 1000000 /dev/urandom >"$T/f.raw"
nbdcopy --flush "$T/f.raw" "$URI"
kill -9 "$SPID"
wait "$SPID" 2>/dev/null || true
"$Z" pool scrub tank | grep -q ', 0 damaged' || fail "scrub after SIGKILL"
"$Z" vol export tank/v "$T/e.raw"
cmp -n 1000000 "$T/e.raw" "$T/f.raw" || fail "flushed NBD writes lost after SIGKILL"
n=$((n + 2))

# the same through the daemon: SIGKILL the daemon after the flush
"$Z" pool serve tank 2>"$T/daemon.err" &
DPID=$!
PIDS="$PIDS $DPID"
for _ in $(seq 100); do grep -q "(pid $DPID)" "$T/daemon.err" && break; sleep 0.05; done
serve tank/v --nbd "$T/v.sock"
head -c 1000000 /dev/urandom >"$T/f.raw"
nbdcopy --flush "$T/f.raw" "$URI"
kill -9 "$DPID"
wait "$DPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true # its client: the daemon hung up
"$Z" pool scrub tank | grep -q ', 0 damaged' || fail "scrub after SIGKILL of the daemon"
"$Z" vol export tank/v "$T/e.raw"
cmp -n 1000000 "$T/e.raw" "$T/f.raw" || fail "flushed NBD writes lost with the daemon"
n=$((n + 2))
echo "nbd.sh: $n checks passed"
