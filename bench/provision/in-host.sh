#!/bin/sh
# in-host.sh [RUNS]: provisioning benchmark, run where /dev/kvm is real KVM
# (inside tools/kvmhost on machines without it).  A guest image (IMAGE: an
# ext4 image whose /zonevm-run.sh prints "zprov: userspace from the image")
# is imported into a pool volume and snapshotted @final; then, RUNS times:
#   clone   `zonevm vol clone tank/img@final tank/gN`, then `zonevm run
#           --disk vol=tank/gN` (daemon: `zonevm pool serve tank`)
#   cp+qemu `cp IMAGE copy.raw`, then QEMU (virtio-blk-pci,
#           aio=io_uring, cache=none) on the copy
#   cp+zonevm  the same copy booted by zonevm (--disk copy.raw), to tell
#           the VMM's part from the storage's
# and the storage step alone (vol clone; cp), timed the same way.
# each timed by boottime from the start of the first command to the line
# above, which the guest prints from its own disk (after /init's
# "zonevm-guest: up", the disk mounted).  Same kernel, initrd, vCPUs (2),
# memory (256 MiB).  Prints every run, the medians and the ratios.
# Figures only, no assertions.
# Environment: KIT (/kit), IMAGE (/bench-img/image.raw), DATA (/data: room
# for the pool and one copy of the image), BOOTTIME (boottime).
set -u
runs=${1:-5}
KIT=${KIT:-/kit}
IMAGE=${IMAGE:-/bench-img/image.raw}
DATA=${DATA:-/data}
BOOTTIME=${BOOTTIME:-boottime}
K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vda"
pat="zprov: userspace from the image"
P=$DATA/pool.img
CP=$DATA/copy.raw
export ZONEVM_ROOT="$DATA/root"
out=$(mktemp)

rm -f "$DATA/space"
rm -rf "$P" "$CP" "$ZONEVM_ROOT"
size=$(stat -c %s "$IMAGE")
used=$(du -k "$IMAGE" | cut -f1)
zonevm pool create tank "$P" --size "$((size / 1048576 + 256))M" >/dev/null &&
	zonevm vol import tank/img "$IMAGE" &&
	zonevm vol snapshot tank/img@final || {
	echo "provision: making the pool failed" >&2
	exit 1
}
echo "# image $IMAGE: $((size >> 20)) MiB, $((used >> 10)) MiB allocated; $(uname -r) host, $(nproc) CPUs"
zonevm vol list -t all -o name,size,referenced,compression tank | sed 's/^/#   /'
zonevm pool serve tank 2>"$DATA/serve.log" &
dpid=$!
for _ in $(seq 100); do [ -S "$ZONEVM_ROOT/run/tank.sock" ] && break; sleep 0.1; done

run() { # label, shell command[, pattern]
	label=$1
	r=$("$BOOTTIME" "${3:-$pat}" -- sh -c "$2")
	echo "$label $r"
	echo "$label $r" >>"$out"
}

sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
i=0
while [ "$i" -lt "$runs" ]; do
	run clone "zonevm vol clone tank/img@final tank/g$i && exec zonevm run --kernel $K \
		--initrd $I --cmdline '$C' --cpus 2 --mem 256M --disk vol=tank/g$i"
	zonevm vol destroy "tank/g$i"
	run cp+qemu "cp $IMAGE $CP && exec qemu-system-x86_64 -enable-kvm -cpu host -smp 2 \
		-m 256 -nographic -no-reboot -nodefaults -serial stdio -kernel $K -initrd $I \
		-append '$C' -drive file=$CP,if=none,id=d0,format=raw,aio=io_uring,cache=none \
		-device virtio-blk-pci,drive=d0"
	rm -f "$CP"
	run cp+zonevm "cp $IMAGE $CP && exec zonevm run --kernel $K --initrd $I \
		--cmdline '$C' --cpus 2 --mem 256M --disk $CP"
	rm -f "$CP"
	# The storage step alone.
	run clone-only "zonevm vol clone tank/img@final tank/c$i && echo zprov-done" zprov-done
	zonevm vol destroy "tank/c$i"
	run cp-only "cp $IMAGE $CP && echo zprov-done" zprov-done
	rm -f "$CP"
	i=$((i + 1))
done
kill "$dpid"
wait "$dpid" || { echo "the pool daemon failed:"; sed 's/^/  /' "$DATA/serve.log"; }

median() { # label, field
	grep "^$1 " "$out" | grep -o "$2=[0-9-]*" | cut -d= -f2 | sort -n |
		awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

c=$(median clone boot_ms)
q=$(median cp+qemu boot_ms)
z=$(median cp+zonevm boot_ms)
co=$(median clone-only boot_ms)
po=$(median cp-only boot_ms)
echo
echo "provisioning: from the first command to the guest's first line from its disk,"
echo "median of $runs runs (2 vCPUs, 256 MiB):"
echo "  vol clone + zonevm run --disk vol=   $c ms"
echo "  cp image + qemu (cache=none)         $q ms"
echo "  cp image + zonevm run --disk FILE    $z ms"
awk -v c="$c" -v q="$q" -v z="$z" -v co="$co" -v po="$po" 'BEGIN {
	printf "  ratio clone/cp+qemu    %.2f\n", c / q
	printf "  ratio clone/cp+zonevm  %.2f\n", c / z
	printf "the storage step alone: vol clone %d ms, cp %d ms (ratio %.3f)\n", co, po, co / po }'
rm -f "$out" "$P" "$CP"
rm -rf "$ZONEVM_ROOT"
