#!/bin/sh
# cli.sh - `zonevm pool` and `zonevm vol` end to end, in a temporary
# ZONEVM_ROOT: every command, the refusals (with their messages, and the
# pool unchanged after them), send/recv round trips compared byte for byte
# with `vol export`, the lock, and corruption found by scrub and by reads.
# Usage: cli.sh PATH-TO-ZONEVM
set -eu

Z=$1
T=$(mktemp -d /tmp/zvm-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
export ZONEVM_ROOT="$T/root"
n=0

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# must_fail "message part" cmd...: the command fails and says so
must_fail() {
	msg=$1
	shift
	if "$@" >"$T/out" 2>"$T/err"; then
		fail "succeeded: $*"
	fi
	cat "$T/out" "$T/err" | grep -qF -- "$msg" || fail "$*: expected \"$msg\", got: $(cat "$T/err")"
	n=$((n + 1))
}

ok() {
	"$@" >"$T/out" 2>"$T/err" || fail "$*: $(cat "$T/err")"
	n=$((n + 1))
}

txg() {
	# the first "txg" is the pool's (the last scrub's comes later)
	"$Z" pool status -j "$1" | grep -o '"txg": [0-9]*' | head -n 1 | cut -d' ' -f2
}

# pools
ok "$Z" pool create tank "$T/tank.img" --size 256M
ok "$Z" pool create back "$T/back.img" --size 256M
must_fail 'already exists' "$Z" pool create tank "$T/other.img" --size 64M
must_fail 'invalid pool name' "$Z" pool create 9x "$T/x.img" --size 64M
must_fail 'does not exist; give --size' "$Z" pool create new "$T/missing.img"
must_fail 'too small' "$Z" pool create small "$T/small.img" --size 1M
[ ! -e "$T/small.img" ] || fail "a failed create left its file"
must_fail 'no such pool "nope"' "$Z" pool status nope
ok "$Z" pool list -H
grep -q "^tank	" "$T/out" || fail "pool list: $(cat "$T/out")"
ok "$Z" pool --root "$T/root" list
"$Z" pool list --root "$T/elsewhere" | grep -q tank && fail "--root not honoured"

# volumes and bad input
t0=$(txg tank)
must_fail 'not a multiple of the block size' "$Z" vol create tank/v 1000
must_fail 'invalid volume name' "$Z" vol create tank/bad@x 1M
must_fail 'invalid block size' "$Z" vol create tank/v 1M --blocksize 3000
must_fail 'invalid compression' "$Z" vol create tank/v 1M --compression gzip
must_fail 'no such pool "nopool"' "$Z" vol create nopool/v 1M
must_fail 'no such volume "tank/v"' "$Z" vol snapshot tank/v@s
[ "$(txg tank)" = "$t0" ] || fail "refused commands changed the pool"
ok "$Z" vol create tank/v 32M --blocksize 16K --compression lz4
must_fail 'already exists' "$Z" vol create tank/v 32M

# import: zero blocks become holes
dd if=/dev/urandom of="$T/img" bs=1M count=2 2>/dev/null
dd if=/dev/zero of="$T/img" bs=1M count=6 seek=2 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$T/img" bs=1M count=1 seek=8 conv=notrunc 2>/dev/null
ok "$Z" vol import tank/img "$T/img"
ok "$Z" vol export tank/img "$T/img.out"
cmp "$T/img" "$T/img.out" || fail "import/export differ"
ok "$Z" vol get -H -p referenced tank/img
ref=$(cut -f3 "$T/out")
[ "$ref" -lt $((4 * 1024 * 1024)) ] || fail "zero blocks were stored ($ref bytes)"

# write at an offset, too long, from stdin
head -c 100000 /dev/urandom >"$T/w"
ok "$Z" vol write --flush 32K tank/v 12345 "$T/w"
grep -q '^flushed 65536$' "$T/out" || fail "--flush: $(cat "$T/out")"
must_fail 'invalid --flush' "$Z" vol write --flush 0 tank/v 0 "$T/w"
t1=$(txg tank)
head -c 40M /dev/zero >"$T/big"
must_fail 'do not fit' "$Z" vol write tank/v 0 "$T/big"
[ "$(txg tank)" = "$t1" ] || fail "a refused write changed the pool"
head -c 5000 /dev/urandom | "$Z" vol write tank/v 1M - || fail "write from stdin"
"$Z" vol export tank/v - | dd bs=1 skip=12345 count=100000 2>/dev/null | cmp - "$T/w" ||
	fail "written bytes differ"

# a full pool: refused, and unchanged
ok "$Z" pool create small "$T/small.img" --size 16M
ok "$Z" vol create small/v 64M --compression off
head -c 30M /dev/urandom >"$T/rand30"
tsm=$(txg small)
must_fail 'pool "small" is full' "$Z" vol write small/v 0 "$T/rand30"
[ "$(txg small)" = "$tsm" ] || fail "a write into a full pool changed it"
ok "$Z" pool destroy small

# snapshots, clones, rollback, destroy
ok "$Z" vol snapshot tank/v@s1
ok "$Z" vol clone tank/v@s1 tank/c1
must_fail 'it has dependent clones: tank/c1' "$Z" vol destroy tank/v@s1
must_fail 'dependent clones: tank/c1' "$Z" vol destroy -r tank/v
ok "$Z" vol write tank/v 0 "$T/w"
ok "$Z" vol snapshot tank/v@s2
must_fail 'newer snapshots exist: tank/v@s2' "$Z" vol rollback tank/v@s1
ok "$Z" vol rollback -r tank/v@s1
ok "$Z" vol list -t snapshot -H -o name
[ "$(cat "$T/out")" = "tank/v@s1" ] || fail "rollback -r: $(cat "$T/out")"
ok "$Z" vol get -H origin tank/c1
[ "$(cut -f3 "$T/out")" = "tank/v@s1" ] || fail "origin: $(cat "$T/out")"
ok "$Z" vol set compression=zstd tank/c1
must_fail 'read-only' "$Z" vol set used=5 tank/c1
ok "$Z" vol set size=64M tank/c1
ok "$Z" vol get -H -p size tank/c1
[ "$(cut -f3 "$T/out")" = "67108864" ] || fail "set size"
ok "$Z" vol list -j -t all
grep -q '"name":	"tank/c1"' "$T/out" || fail "list -j: $(cat "$T/out")"
ok "$Z" vol get -H -p guid tank/c1
g=$(cut -f3 "$T/out")
ok "$Z" vol list -j -o guid tank/c1
grep -q "\"guid\":	$g\$" "$T/out" || fail "guid $g not exact in JSON: $(cat "$T/out")"
must_fail 'no such volume "tank/nope"' "$Z" vol list tank/nope
[ ! -s "$T/out" ] || fail "vol list printed a table with its error: $(cat "$T/out")"
ok "$Z" vol snapshot tank/c1@mine
must_fail 'is not a clone' "$Z" vol promote tank/v
ok "$Z" vol promote tank/c1
ok "$Z" vol get -H origin tank/v
[ "$(cut -f3 "$T/out")" = "tank/c1@s1" ] || fail "promote: origin of v is $(cat "$T/out")"
ok "$Z" vol promote tank/v
ok "$Z" vol destroy -r tank/c1

# send / recv
ok "$Z" vol snapshot tank/v@a
"$Z" vol send tank/v@a | "$Z" vol recv back/v || fail "full send|recv"
head -c 300000 /dev/urandom | "$Z" vol write tank/v 5M - || fail "write"
ok "$Z" vol snapshot tank/v@b
"$Z" vol send -i @a tank/v@b >"$T/ab" || fail "incremental send"
"$Z" vol recv back/v <"$T/ab" || fail "incremental recv"
"$Z" vol send -i a tank/v@b | cmp - "$T/ab" || fail "send -i SNAP differs from -i @SNAP"
n=$((n + 1))
"$Z" vol export back/v@b - | cmp - "$T/tank-b" 2>/dev/null ||
	{ "$Z" vol export tank/v@b "$T/tank-b" && "$Z" vol export back/v@b - | cmp - "$T/tank-b"; } ||
	fail "received volume differs"
t2=$(txg back)
must_fail 'newest snapshot of back/v is b' "$Z" vol recv back/v <"$T/ab"
"$Z" vol send tank/v@b >"$T/full"
head -c 100000 "$T/full" >"$T/trunc"
must_fail 'truncated stream' "$Z" vol recv back/w <"$T/trunc"
[ "$(txg back)" -ge "$t2" ] || fail "txg went back"
must_fail 'no such volume "back/w"' "$Z" vol get size back/w
must_fail 'resume with' "$Z" vol recv -s back/w <"$T/trunc"
tok=$(sed -n "s/.*vol send -t \([^']*\)'.*/\1/p" "$T/err")
[ -n "$tok" ] || fail "no resume token in: $(cat "$T/err")"
"$Z" vol send -t "$tok" tank | "$Z" vol recv -s back/w || fail "resumed recv"
"$Z" vol export back/w - | cmp - "$T/tank-b" || fail "resumed volume differs"

# progress (bytes, rate, ETA) on stderr only when it is a terminal
"$Z" vol send tank/v@b 2>"$T/err" >"$T/full2"
[ ! -s "$T/err" ] || fail "progress without a terminal: $(cat "$T/err")"
if command -v script >/dev/null 2>&1; then
	script -qc "'$Z' vol send tank/v@b >'$T/full3'" /dev/null >"$T/tty" 2>&1
	grep -q 'send: .* of .*/s, ETA' "$T/tty" || fail "send progress: $(cat "$T/tty")"
	script -qc "'$Z' vol recv back/tty <'$T/full3'" /dev/null >"$T/tty" 2>&1
	grep -q 'recv: .* of .*/s, ETA' "$T/tty" || fail "recv progress: $(cat "$T/tty")"
	"$Z" vol export back/tty - | cmp - "$T/tank-b" || fail "received from a tty differs"
	n=$((n + 3))
fi

# the lock: a receive waiting for its stream holds the pool; others are refused
sleep 3 | "$Z" vol recv tank/lockx 2>/dev/null &
sleep 1
must_fail 'pool "tank" is in use by process' "$Z" vol snapshot tank/v@locked
must_fail 'is in use by process' "$Z" pool status tank
wait || true
must_fail 'no such volume' "$Z" vol get size tank/lockx

# corruption: scrub names the block, reads fail with an I/O error
ok "$Z" vol create tank/raw 1M --compression off
yes CORRUPT-ME-0123456789 | head -c 16384 | "$Z" vol write tank/raw 32768 - || fail "write"
ok "$Z" pool scrub tank
ok "$Z" pool status tank
grep -q 'state: ONLINE' "$T/out" && grep -q 'scrub: .*, 0 damaged' "$T/out" ||
	fail "status after a clean scrub: $(cat "$T/out")"
off=$(grep -oba CORRUPT-ME-0123456789 "$T/tank.img" | head -1 | cut -d: -f1)
printf 'X' | dd of="$T/tank.img" bs=1 seek=$((off + 3)) conv=notrunc 2>/dev/null
must_fail '1 damaged' "$Z" pool scrub tank
grep -q 'damaged: tank/raw: offset 32768 (data block' "$T/out" || fail "scrub: $(cat "$T/out")"
ok "$Z" pool status tank
grep -q 'state: DEGRADED' "$T/out" && grep -q 'scrub: .*, 1 damaged' "$T/out" ||
	fail "status after a scrub that found damage: $(cat "$T/out")"
must_fail 'tank/raw: read at offset 32768' "$Z" vol export tank/raw "$T/raw.out"
must_fail 'checksum mismatch' "$Z" vol export tank/raw "$T/raw.out"

# export, import, destroy
ok "$Z" pool export back
must_fail 'no such pool "back"' "$Z" pool status back
ok "$Z" pool import "$T/back.img"
ok "$Z" pool status back
ok "$Z" pool destroy back
must_fail 'not a zonevm pool' "$Z" pool import "$T/back.img"

echo "cli.sh: $n checks passed"
