#!/bin/sh
# blk.sh - virtio-blk and virtio-rng through virtio-pci, seen by the
# unmodified Debian guest of the guest kit: exact capacity, data written by
# the host read back by the guest and the reverse (after a flush and
# power-off), two disks with serials, a read-only disk, discard punching
# holes in the backing file, a file system the guest makes and the host's fsck finds clean,
# concurrent I/O from every vCPU, and /dev/hwrng.  Needs real KVM.
. "${TESTS:-/tests}/lib.sh"

K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet"

# boot LOG SCRIPT ARGS...: boot the guest kit running SCRIPT; sets $rc.
boot() {
	log=$1
	script=$(guest_script "$2")
	shift 2
	zrun "$log" --kernel "$K" --initrd "$I" --cmdline "$C zonevm.script=$script" "$@"
}

# val LOG KEY: the value the guest printed as "KEY=value".
val() {
	sed -n "s/^$2=\([^[:space:]]*\).*/\1/p" "$1" | tail -n 1
}

# check WHAT CONDITION-STATUS LOG: one TAP line, the log as evidence.
check() {
	if [ "$2" -eq 0 ]; then
		tap_ok "$1"
	else
		tap_not_ok "$1"
		tap_diag "$3" 40
	fi
}

sha() {
	sha256sum | cut -c1-64
}

# ---- two disks: sizes, data both ways, serials, read-only, entropy ---------
A=$WORK/a.img
B=$WORK/b.img
size_a=$((64 * 1024 * 1024 + 512)) # not a power of two: capacity is exact
dd if=/dev/urandom of="$A" bs=1M count=8 2>/dev/null
truncate -s "$size_a" "$A"
dd if=/dev/urandom of="$B" bs=1M count=4 2>/dev/null
host_a=$(head -c 8388608 "$A" | sha)
host_b=$(sha <"$B")

log=$WORK/two.log
boot "$log" '
echo size_a=$(( $(cat /sys/block/vda/size) * 512 ))
echo size_b=$(( $(cat /sys/block/vdb/size) * 512 ))
echo serial_a=$(cat /sys/block/vda/serial)
echo guest_read=$(dd if=/dev/vda bs=1M count=8 2>/dev/null | sha256sum | cut -c1-64)
dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null
echo guest_wrote=$(sha256sum </tmp/p | cut -c1-64)
dd if=/tmp/p of=/dev/vda bs=1M seek=16 conv=fsync 2>/dev/null && echo write_rc=0
echo ro_flag=$(cat /sys/block/vdb/ro)
if dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=fsync 2>/dev/null; then
	echo ro_write=accepted
else
	echo ro_write=refused
fi
echo ro_read=$(dd if=/dev/vdb bs=1M 2>/dev/null | sha256sum | cut -c1-64)
echo rng_current=$(cat /sys/class/misc/hw_random/rng_current)
echo rng_bytes=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d " \n" | wc -c)
echo rng_hex=$(dd if=/dev/hwrng bs=16 count=1 2>/dev/null | od -An -tx1 | tr -d " \n")
echo irqs=$(grep -c "virtio0-req" /proc/interrupts)
' --cpus 2 --disk "$A,serial=zv-disk-a" --disk "$B,ro"

[ "$rc" -eq 0 ] && [ "$(val "$log" size_a)" = "$size_a" ] &&
	[ "$(val "$log" size_b)" = 4194304 ]
check "the guest sees /dev/vda and /dev/vdb with their exact sizes" $? "$log"
[ "$(val "$log" serial_a)" = zv-disk-a ]
check "serial=ID is the disk's serial in the guest" $? "$log"
[ "$(val "$log" guest_read)" = "$host_a" ]
check "a pseudo-random pattern written by the host reads back in the guest" $? "$log"
guest_wrote=$(val "$log" guest_wrote)
[ -n "$guest_wrote" ] && [ "$(val "$log" write_rc)" = 0 ] &&
	[ "$(dd if="$A" bs=1M skip=16 count=4 2>/dev/null | sha)" = "$guest_wrote" ]
check "a pattern the guest wrote and flushed is in the host file after power-off" $? "$log"
[ "$(val "$log" ro_flag)" = 1 ] && [ "$(val "$log" ro_write)" = refused ] &&
	[ "$(val "$log" ro_read)" = "$host_b" ] && [ "$(sha <"$B")" = "$host_b" ]
check "a read-only disk refuses writes and its file is unchanged" $? "$log"
[ "$(val "$log" rng_current)" = virtio_rng.0 ] && [ "$(val "$log" rng_bytes)" = 128 ] &&
	[ "$(val "$log" rng_hex)" != 00000000000000000000000000000000 ]
check "the guest reads entropy from /dev/hwrng (virtio-rng)" $? "$log"
[ "$(val "$log" irqs)" = 2 ]
check "vda has one request queue, with its own MSI-X vector, per vCPU (2)" $? "$log"

# ---- reset and re-probe: unbind/bind, then PCI remove and rescan ----------------
R=$WORK/reset.img
dd if=/dev/urandom of="$R" bs=1M count=8 2>/dev/null
host_r=$(sha <"$R")
log=$WORK/reset.log
boot "$log" '
d=/sys/bus/pci/devices/0000:00:01.0
echo 0000:00:01.0 >/sys/bus/pci/drivers/virtio-pci/unbind
[ -e /dev/vda ] || echo unbound=yes
echo 0000:00:01.0 >/sys/bus/pci/drivers/virtio-pci/bind
sleep 1
echo rebind=$(dd if=/dev/vda bs=1M 2>/dev/null | sha256sum | cut -c1-64)
echo 1 >$d/remove
sleep 1
[ -e /dev/vda ] || echo removed=yes
echo 1 >/sys/bus/pci/rescan
sleep 1
echo rescan=$(dd if=/dev/vda bs=1M 2>/dev/null | sha256sum | cut -c1-64)
' --cpus 2 --disk "$R"
[ "$rc" -eq 0 ] && [ "$(val "$log" unbound)" = yes ] && [ "$(val "$log" rebind)" = "$host_r" ] &&
	[ "$(val "$log" removed)" = yes ] && [ "$(val "$log" rescan)" = "$host_r" ]
check "driver unbind/bind (device reset) and PCI remove/rescan (BAR sized, reassigned): data reads back" $? "$log"

# ---- discard ---------------------------------------------------------------
D=$WORK/discard.img
dd if=/dev/urandom of="$D" bs=1M count=32 2>/dev/null
sync
before=$(stat -c %b "$D")
log=$WORK/discard.log
boot "$log" '
echo max_discard=$(cat /sys/block/vda/queue/discard_max_bytes)
blkdiscard /dev/vda && echo discard_rc=0
z=$(dd if=/dev/zero bs=1M count=4 2>/dev/null | sha256sum)
[ "$(dd if=/dev/vda bs=1M count=4 skip=8 2>/dev/null | sha256sum)" = "$z" ] && echo zero_read=yes
' --disk "$D"
after=$(stat -c %b "$D")
[ "$rc" -eq 0 ] && [ "$(val "$log" discard_rc)" = 0 ] && [ "$after" -lt $((before / 4)) ] &&
	[ "$(val "$log" zero_read)" = yes ] && [ "$(stat -c %s "$D")" = 33554432 ]
check "discard punches holes: allocated blocks $before -> $after, reads zeroes, size kept" $? "$log"

# ---- a file system: made by the guest (busybox mke2fs), checked on the host --
E=$WORK/ext2.img
truncate -s 64M "$E"
log=$WORK/ext2.log
boot "$log" '
mke2fs -F /dev/vda >/dev/null 2>&1 && echo mkfs_rc=0
mount -t ext2 /dev/vda /mnt && echo mount_rc=0
mkdir -p /mnt/d
for i in 1 2 3 4 5 6 7 8; do dd if=/dev/urandom of=/mnt/d/f$i bs=64k count=$((i * 4)) 2>/dev/null; done
echo fs_sum=$(cat /mnt/d/f* | sha256sum | cut -c1-64)
umount /mnt && echo umount_rc=0
mount -o ro -t ext2 /dev/vda /mnt && echo fs_sum2=$(cat /mnt/d/f* | sha256sum | cut -c1-64)
umount /mnt
' --cpus 2 --disk "$E"
fsck_out=$(e2fsck -fn "$E" 2>&1)
fsck_rc=$?
[ "$rc" -eq 0 ] && [ "$(val "$log" mkfs_rc)" = 0 ] && [ "$(val "$log" mount_rc)" = 0 ] &&
	[ "$(val "$log" umount_rc)" = 0 ] && [ -n "$(val "$log" fs_sum)" ] &&
	[ "$(val "$log" fs_sum)" = "$(val "$log" fs_sum2)" ] && [ "$fsck_rc" -eq 0 ]
st=$?
[ "$st" -eq 0 ] || echo "$fsck_out" >>"$log"
check "ext2: guest mke2fs, mounts, writes 9 MiB in 8 files, unmounts; host e2fsck -fn is clean" \
	$st "$log"

# ---- concurrent I/O from every vCPU ---------------------------------------------
N=2
P=$WORK/par.img
truncate -s 64M "$P"
log=$WORK/par.log
boot "$log" '
n=$(nproc)
i=0
while [ $i -lt $n ]; do
	dd if=/dev/urandom of=/tmp/src$i bs=1M count=6 2>/dev/null
	i=$((i + 1))
done
i=0
while [ $i -lt $n ]; do
	taskset -c $i dd if=/tmp/src$i of=/dev/vda bs=64k seek=$((i * 128)) oflag=direct 2>/dev/null &
	i=$((i + 1))
done
wait
sync
i=0
while [ $i -lt $n ]; do
	taskset -c $i dd if=/dev/vda of=/tmp/back$i bs=64k skip=$((i * 128)) count=96 iflag=direct 2>/dev/null &
	i=$((i + 1))
done
wait
ok=0
i=0
while [ $i -lt $n ]; do
	cmp -s /tmp/src$i /tmp/back$i && ok=$((ok + 1))
	echo sum$i=$(sha256sum </tmp/src$i | cut -c1-64)
	i=$((i + 1))
done
echo par_ok=$ok/$n
grep "virtio0-req" /proc/interrupts
' --cpus "$N" --disk "$P"
st=1
if [ "$rc" -eq 0 ] && [ "$(val "$log" par_ok)" = "$N/$N" ]; then
	st=0
	i=0
	while [ $i -lt $N ]; do
		h=$(dd if="$P" bs=64k skip=$((i * 128)) count=96 2>/dev/null | sha)
		[ "$h" = "$(val "$log" sum$i)" ] || st=1
		i=$((i + 1))
	done
fi
check "concurrent direct I/O from all $N vCPUs, verified in the guest and on the host" $st "$log"

# ---- bad input ---------------------------------------------------------------------
truncate -s 1000 "$WORK/odd.img"
expect_run "a disk whose size is not a multiple of 512 is refused, naming the file" 1 \
	"disk \"$WORK/odd.img\": its size, 1000 bytes, is not a multiple of 512" \
	--kernel "$K" --disk "$WORK/odd.img"
expect_run "a missing disk file is refused, naming it" 1 \
	'cannot open disk "/nonexistent.img"' --kernel "$K" --disk /nonexistent.img
expect_run "an unknown disk option is a usage error" 2 'unknown option "rw"' \
	--kernel "$K" --disk "$A,rw"

tap_end
