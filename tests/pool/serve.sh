#!/bin/sh
# serve.sh - the pool daemon (`zonevm pool serve`): the same pool/vol
# commands give the same output, errors and exit status with and without
# it (two roots, one pool each, the same commands); one read-write attach
# per volume, the second refused with the holder's name; SIGTERM ends with
# a final commit; SIGKILL during flushed writes, then a restart: the pool
# scrubs clean and every flushed byte is there.
# Usage: serve.sh PATH-TO-ZONEVM
set -eu

Z=$(realpath "$1") # the commands below run in other directories
T=$(mktemp -d /tmp/zvm-serve-XXXXXX)
DPID=
cleanup() {
	[ -z "$DPID" ] || kill -9 "$DPID" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
n=0

fail() {
	echo "FAIL: $*" >&2
	[ ! -f "$T/daemon.log" ] || sed 's/^/daemon: /' "$T/daemon.log" >&2
	exit 1
}

# start_daemon ROOT: pool serve tank in the background, wait for its socket
start_daemon() {
	ZONEVM_ROOT=$1 "$Z" pool serve tank 2>>"$T/daemon.log" &
	DPID=$!
	# (not the socket file: a killed daemon's stays until the next one
	# replaces it; and a command run meanwhile would hold the pool)
	for _ in $(seq 100); do
		grep -q "(pid $DPID)" "$T/daemon.log" && return 0
		sleep 0.05
	done
	fail "the daemon did not come up"
}

# export SOCK ARGS...: `vol serve ARGS...` in the background (pid in SPID)
# until SOCK exists
export_bg() {
	sock=$1
	shift
	"$Z" vol serve "$@" 2>"$T/serve.err" &
	SPID=$!
	for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
	fail "vol serve $*: no socket ($(cat "$T/serve.err"))"
}

# same RC CMD...: the same command in both roots, from the same directory;
# it exits with RC, and its outputs and status match
same() {
	want=$1
	shift
	for r in 1 2; do
		(cd "$T/w$r" && ZONEVM_ROOT="$T/r$r" "$@" >"$T/out$r" 2>"$T/err$r" </dev/null) &&
			echo 0 >"$T/rc$r" || echo $? >"$T/rc$r"
		sed -i "s#$T/r$r#ROOT#g; s#$T/w$r#WORK#g" "$T/out$r" "$T/err$r"
	done
	[ "$(cat "$T/rc1")" = "$want" ] || fail "$*: exit status $(cat "$T/rc1"), not $want: $(cat "$T/err1")"
	for f in out err rc; do
		cmp -s "$T/${f}1" "$T/${f}2" ||
			fail "$* differs with the daemon ($f):
$(diff "$T/${f}1" "$T/${f}2" | head -20)"
	done
	n=$((n + 1))
}

head -c 3000000 /dev/urandom >"$T/img"
head -c 200000 /dev/urandom >"$T/data"
for r in 1 2; do
	mkdir -p "$T/w$r"
	cp "$T/img" "$T/data" "$T/w$r/"
	ZONEVM_ROOT="$T/r$r" "$Z" pool create tank "$T/w$r/tank.img" --size 256M
done
start_daemon "$T/r2"
[ "$(stat -c %a "$T/r2/run/tank.sock")" = 600 ] || fail "control socket mode"

# every command, with the daemon (root 2) and without (root 1)
same 0 "$Z" vol create tank/a 8M --blocksize 4K
same 1 "$Z" vol create tank/a 8M
same 1 "$Z" vol create tank/bad@x 1M
same 1 "$Z" vol create tank/z 1000
same 0 "$Z" vol import tank/img img --compression lz4
same 1 "$Z" vol import tank/img2 missing-file
same 0 "$Z" vol write tank/a 4096 data
same 1 "$Z" vol write tank/a 8300000 data
same 0 sh -c "\"$Z\" vol write --flush 64K tank/a 100000 - <data"
same 0 "$Z" vol snapshot tank/a@s1
same 0 "$Z" vol clone tank/a@s1 tank/c
same 1 "$Z" vol clone tank/a@nope tank/c2
same 0 "$Z" vol list
same 0 "$Z" vol list -H -p -o name,used,referenced,origin tank
same 0 "$Z" vol list -t snapshot -j tank/a
same 0 "$Z" vol get -H -p size,referenced,logicalused,blocksize,compression tank/a tank/img
same 0 sh -c "\"$Z\" vol export tank/a - | sha256sum"
same 0 sh -c "\"$Z\" vol export tank/img out.raw && cmp -n 3000000 out.raw img && echo same"
same 0 sh -c "\"$Z\" vol send tank/a@s1 >s1.stream"
same 0 sh -c "\"$Z\" vol recv tank/r <s1.stream"
same 1 sh -c "\"$Z\" vol send -t 1-bogus-token tank >/dev/null"
same 1 "$Z" vol destroy tank/a
same 0 "$Z" vol set compression=zstd tank/a
same 0 "$Z" vol set size=16M tank/a
same 0 "$Z" vol rollback tank/a@s1
same 0 "$Z" vol promote tank/c
same 0 "$Z" vol destroy -r tank/img
same 2 "$Z" vol nonsense tank/a
same 1 "$Z" pool status nope
# (metadata bytes depend on when txgs were committed: only the counts)
same 0 sh -c "\"$Z\" pool scrub tank | sed 's/ (.*)//'"
same 0 sh -c "\"$Z\" pool list -H | cut -f1,5"
# (space: a pool open in a daemon frees deferred blocks later than one
# opened per command)
same 0 sh -c "\"$Z\" pool status tank | grep -v -e txg -e arc -e guid -e space"
kill -0 "$DPID" || fail "the daemon died"

# one read-write attach per volume, refused with the holder's name
export ZONEVM_ROOT="$T/r2"
export_bg "$T/a.sock" tank/a --nbd "$T/a.sock"
S1=$SPID
if "$Z" vol serve tank/a --nbd "$T/b.sock" 2>"$T/err"; then
	fail "a second read-write attach was accepted"
fi
grep -qF "tank/a is attached read-write by nbd export $T/a.sock" "$T/err" ||
	fail "second attach: $(cat "$T/err")"
n=$((n + 1))
export_bg "$T/ro.sock" tank/a --nbd "$T/ro.sock" --ro # read-only beside it
S2=$SPID
n=$((n + 1))
# nothing pulls an attached volume from under its users
for c in "destroy -r tank/a" "rollback tank/a@s1" "resize tank/a 32M"; do
	if "$Z" vol $c 2>"$T/err"; then
		fail "vol $c of an attached volume succeeded"
	fi
	grep -Eq "tank/a is attached read-(write|only) by nbd export $T/(a|ro).sock" "$T/err" ||
		fail "vol $c: $(cat "$T/err")"
	n=$((n + 1))
done
# the export ends with its client; then the volume can be attached again
kill "$S1" "$S2" || fail "an export ended early"
wait "$S1" "$S2" 2>/dev/null || true
for _ in $(seq 100); do [ ! -S "$T/a.sock" ] && break; sleep 0.05; done
[ ! -e "$T/a.sock" ] || fail "the export's socket outlived its client"
export_bg "$T/a.sock" tank/a --nbd "$T/a.sock" # attach after detach
S1=$SPID
kill "$S1"
wait "$S1" 2>/dev/null || true
n=$((n + 1))

# a vhost-user-blk export (src/vhost's server on the volume): it holds the
# volume, and QEMU (TCG, stopped before the guest runs) negotiates with it
export_bg "$T/vh.sock" tank/c --vhost-user "$T/vh.sock"
S1=$SPID
if "$Z" vol serve tank/c --nbd "$T/c.sock" 2>"$T/err"; then
	fail "an NBD export beside a read-write vhost-user one"
fi
grep -qF "tank/c is attached read-write by vhost-user export $T/vh.sock" "$T/err" ||
	fail "attach beside vhost-user: $(cat "$T/err")"
n=$((n + 1))
if command -v qemu-system-x86_64 >/dev/null; then
	printf "info qtree\nquit\n" | timeout 60 qemu-system-x86_64 -M q35 -accel tcg -m 128 \
		-object memory-backend-memfd,id=mem,size=128M,share=on -numa node,memdev=mem \
		-chardev socket,id=c,path="$T/vh.sock" -device vhost-user-blk-pci,chardev=c \
		-nographic -S -monitor stdio -serial none >"$T/qemu.out" 2>&1 ||
		fail "qemu with the vhost-user export: $(tail -5 "$T/qemu.out")"
	grep -q 'dev: vhost-user-blk, id' "$T/qemu.out" ||
		fail "qemu did not realize vhost-user-blk: $(tail -5 "$T/qemu.out")"
	n=$((n + 1))
fi
kill "$S1"
wait "$S1" || fail "vol serve --vhost-user exited with $? on SIGTERM"

# SIGTERM: final commit, socket gone, exit 0
t0=$("$Z" pool status -j tank | grep -o '"txg": [0-9]*' | head -n 1 | cut -d' ' -f2)
"$Z" vol write tank/c 0 "$T/data"
kill -TERM "$DPID"
wait "$DPID" || fail "the daemon exited with $? after SIGTERM"
DPID=
grep -q 'pool "tank": final commit done' "$T/daemon.log" || fail "no final commit logged"
[ ! -e "$T/r2/run/tank.sock" ] || fail "the control socket outlived the daemon"
t1=$("$Z" pool status -j tank | grep -o '"txg": [0-9]*' | head -n 1 | cut -d' ' -f2)
[ "$t1" -gt "$t0" ] || fail "txg $t0 -> $t1 over the writes and the stop"
"$Z" vol export tank/c "$T/c.out"
cmp -n 200000 "$T/c.out" "$T/data" || fail "data written through the daemon is not there"
n=$((n + 1))

# SIGKILL while a flushed write runs in the daemon; restart; scrub; check
"$Z" vol create tank/k 16M --blocksize 4K
for trial in 1 2 3; do
	start_daemon "$T/r2"
	head -c 16M /dev/urandom >"$T/new"
	"$Z" vol export tank/k "$T/old"
	: >"$T/flushed"
	"$Z" vol write --flush 1M tank/k 0 "$T/new" >"$T/flushed" 2>"$T/kw.err" &
	W=$!
	sleep "0.$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')"
	kill -9 "$DPID" || fail "trial $trial: the daemon died by itself: $(cat "$T/kw.err")"
	wait "$DPID" 2>/dev/null || true
	DPID=
	wait "$W" 2>/dev/null || true
	# the stale socket is no daemon: commands open the pool themselves
	"$Z" pool scrub tank >"$T/scrub" || fail "trial $trial: scrub: $(cat "$T/scrub")"
	grep -q ', 0 damaged' "$T/scrub" || fail "trial $trial: $(cat "$T/scrub")"
	"$Z" vol export tank/k "$T/now"
	f=$(tail -n 1 "$T/flushed" | sed -n 's/^flushed //p')
	f=${f:-0}
	cmp -n "$f" "$T/now" "$T/new" || fail "trial $trial: flushed bytes 0..$f lost"
	n=$((n + 1))
done

# a second daemon for the same pool is refused with the holder
start_daemon "$T/r2"
if "$Z" pool serve tank 2>"$T/err"; then
	fail "a second daemon started"
fi
grep -q "in use by process $DPID" "$T/err" || fail "second daemon: $(cat "$T/err")"
n=$((n + 1))
kill -INT "$DPID"
wait "$DPID" || fail "the daemon exited with $? after SIGINT"
DPID=
echo "serve.sh: $n checks passed"
