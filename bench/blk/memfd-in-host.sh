#!/bin/sh
# memfd-in-host.sh: what shared guest memory costs the VMM.  The same
# zonevm run (fio in the guest on a raw-file --disk, as in-host.sh) with
# guest RAM anonymous ("anon") and as the shared memfd that a vhost-user
# disk requires ("memfd": an extra, idle --disk vhost-user= on a 16 MiB
# file served by zonevm disk serve).  Prints, per run, the VMM's RSS
# split (anonymous, shmem), its transparent huge pages, and fio's figures.
# Run inside tools/kvmhost like in-host.sh (bench/blk/run shows how), with
# FIOIMG and DATA set.  Figures only.
set -u
KIT=${KIT:-/kit}
FIOIMG=${FIOIMG:-/bench-fio/fio.img}
DATA=${DATA:-/data}
K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vdb zbench.runtime=10 zbench.engine=libaio"
D=$DATA/disk.img
rm -f "$DATA/space"
fallocate -l 512M "$D"
dd if=/dev/zero of="$D" bs=1M count=512 conv=notrunc,fsync 2>/dev/null
truncate -s 16M "$DATA/small.img"
zonevm disk serve --vhost-user "$DATA/s.sock" "$DATA/small.img" 2>/dev/null &
spid=$!
for _ in $(seq 100); do [ -S "$DATA/s.sock" ] && break; sleep 0.1; done
for label in anon memfd anon memfd; do
	extra=""
	[ "$label" = memfd ] && extra="--disk vhost-user=$DATA/s.sock"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	# shellcheck disable=SC2086
	timeout 400 zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 256M \
		--disk "$D" --disk "$FIOIMG" $extra </dev/null >"$DATA/log" 2>&1 &
	rpid=$!
	sleep 8
	vp=$(pidof zonevm | tr ' ' '\n' | grep -v "^$spid\$" | head -n 1)
	if [ -n "$vp" ]; then
		printf '%s mem' "$label"
		grep -E '^(VmRSS|RssAnon|RssShmem):' "/proc/$vp/status" | awk '{printf " %s=%s", $1, $2}'
		grep -E '^AnonHugePages:' "/proc/$vp/smaps_rollup" | awk '{printf " %s=%s", $1, $2}'
		echo
	fi
	wait "$rpid"
	tr -d '\r' <"$DATA/log" | sed -n "s/^zbench /$label /p"
done
kill "$spid"
wait "$spid"
