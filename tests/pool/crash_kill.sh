#!/bin/sh
# crash_kill.sh - kill zonevm with SIGKILL at random instants during writes,
# flushed writes, snapshots, clones, destroys and receives; after each kill
# the pool must open, scrub clean, and the volume must read back exactly as
# the last command that finished left it, or as the killed one would have
# (never a mix, never garbage) - except a write with --flush, which must
# read back new data up to at least the last "flushed N" it printed, then
# the old data.
# Usage: crash_kill.sh PATH-TO-ZONEVM   (ZONEVM_CRASH_TRIALS, default 200)
set -eu

Z=$1
TRIALS=${ZONEVM_CRASH_TRIALS:-200}
T=$(mktemp -d /tmp/zvm-crash-XXXXXX)
trap 'rm -rf "$T"' EXIT
export ZONEVM_ROOT="$T/root"

fail() {
	echo "FAIL (trial $i, op $op): $*" >&2
	exit 1
}

i=0
op=setup
"$Z" pool create tank "$T/tank.img" --size 512M >/dev/null
"$Z" vol create tank/v 16M --blocksize 4K >/dev/null
head -c 16M /dev/urandom >"$T/model"
"$Z" vol write tank/v 0 "$T/model"
"$Z" vol snapshot tank/v@base
"$Z" vol send tank/v@base >"$T/stream"

rand() { # 0..$1-1
	od -An -N4 -tu4 /dev/urandom | tr -d ' ' | awk -v m="$1" '{ print $1 % m }'
}

killed=0
flushed_more=0
acked=0
while [ "$i" -lt "$TRIALS" ]; do
	i=$((i + 1))
	new="$T/new"
	case $(rand 6) in
	0)
		op=write
		head -c 16M /dev/urandom >"$new"
		"$Z" vol write tank/v 0 "$new" 2>"$T/cmd.err" &
		;;
	1 | 5)
		op=flush
		head -c 16M /dev/urandom >"$new"
		: >"$T/flushed"
		"$Z" vol write --flush 1M tank/v 0 "$new" >"$T/flushed" 2>"$T/cmd.err" &
		;;
	2)
		op=snapshot
		"$Z" vol snapshot "tank/v@s$i" 2>"$T/cmd.err" &
		;;
	3)
		op=clone+destroy
		("$Z" vol clone tank/v@base "tank/c$i" && "$Z" vol destroy "tank/c$i") 2>"$T/cmd.err" &
		;;
	4)
		op=recv
		"$Z" vol recv "tank/r$i" <"$T/stream" 2>"$T/cmd.err" &
		;;
	esac
	pid=$!
	sleep "0.0$(rand 8)$(rand 10)"
	# clone+destroy runs in a subshell: freeze it (no next command can
	# start), kill the zonevm it runs, then the subshell itself.
	if kill -STOP "$pid" 2>/dev/null; then
		kids=$(pgrep -P "$pid" 2>/dev/null || true)
		[ -z "$kids" ] || kill -KILL $kids 2>/dev/null || true
		kill -9 "$pid" 2>/dev/null || true
		killed=$((killed + 1))
		wait "$pid" 2>/dev/null || true
		# SIGKILL returns before the process is gone, and it holds the
		# pool's lock until it is (a zombie has let go of it)
		for k in $kids; do
			n=0
			while [ "$n" -lt 500 ] && [ -e "/proc/$k" ] &&
				! grep -q '^State:.*Z' "/proc/$k/status" 2>/dev/null; do
				sleep 0.01
				n=$((n + 1))
			done
		done
		finished=0
	else
		wait "$pid" && finished=1 || fail "the command failed on its own: $(cat "$T/cmd.err")"
	fi
	"$Z" pool scrub tank >"$T/scrub" 2>&1 || fail "scrub: $(cat "$T/scrub")"
	"$Z" vol export tank/v "$T/now" 2>"$T/err" || fail "export: $(cat "$T/err")"
	if [ "$op" = write ]; then
		if cmp -s "$T/now" "$new"; then
			cp "$new" "$T/model"
		elif [ "$finished" = 1 ] || ! cmp -s "$T/now" "$T/model"; then
			fail "the volume is neither the old nor the new content"
		fi
	elif [ "$op" = flush ]; then
		f=$(sed -n 's/^flushed //p' "$T/flushed" | tail -1)
		d=$(cmp "$T/now" "$new" 2>/dev/null | sed -n 's/.* byte \([0-9]*\),.*/\1/p')
		x=$((16 * 1024 * 1024))
		[ -z "$d" ] || x=$(((d - 1) / 4096 * 4096))
		[ "$finished" = 0 ] || [ "$x" -eq $((16 * 1024 * 1024)) ] ||
			fail "a finished write reads back new data only up to $x"
		[ "$x" -ge "${f:-0}" ] || fail "${f} bytes were flushed but only $x read back"
		cmp -s -i "$x" "$T/now" "$T/model" || fail "past $x the volume is not the old data"
		[ "$x" -gt "${f:-0}" ] && flushed_more=$((flushed_more + 1))
		[ "$finished" = 0 ] && [ "${f:-0}" -gt 0 ] && acked=$((acked + 1))
		cp "$T/now" "$T/model"
	else
		cmp -s "$T/now" "$T/model" || fail "the volume changed"
	fi
	"$Z" vol list -t all >/dev/null || fail "list"
	# leftovers of an interrupted receive are discarded, not kept
	"$Z" vol recv -A "tank/r$i" >/dev/null 2>&1 || true
	# keep the pool from filling up: old snapshots, clones, received copies go
	for d in $("$Z" vol list -t all -H -o name | grep -e '@s' -e '/c' -e '/r' || true); do
		"$Z" vol destroy -r "$d" 2>/dev/null || true
	done
done
echo "crash_kill.sh: $TRIALS trials, $killed killed mid-command, all consistent" \
	"(killed after an acknowledged flush: $acked; more than acknowledged was there: $flushed_more)"
