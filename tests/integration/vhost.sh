#!/bin/sh
# vhost.sh - vhost-user-blk, both ends, with the unmodified Debian guest of
# the guest kit: zonevm's backend (`zonevm disk serve`) on a raw file under
# zonevm's frontend (`run --disk vhost-user=`) and under QEMU's
# vhost-user-blk-pci; zonevm's frontend on qemu-storage-daemon's backend; the
# backend SIGKILLed while the guest writes (the VMM survives, the guest gets
# I/O errors, the VMM exits cleanly at power-off); a guest on a pool volume
# exported by `zonevm pool serve` (mkfs, write, flush; `vol export` matches).
# Needs real KVM.
. "${TESTS:-/tests}/lib.sh"

K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet"

sha() {
	sha256sum | cut -c1-64
}

# wait_sock PATH: until a backend listens there (10 s at most).
wait_sock() {
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# The guest's side of a data check: size, read what the host wrote, write
# and flush a pattern at 16 MiB, a file system it makes and reads back.
DATA_SCRIPT='
echo size=$(( $(cat /sys/block/vda/size) * 512 ))
echo guest_read=$(dd if=/dev/vda bs=1M count=8 2>/dev/null | sha256sum | cut -c1-64)
dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null
echo guest_wrote=$(sha256sum </tmp/p | cut -c1-64)
dd if=/tmp/p of=/dev/vda bs=1M seek=16 conv=fsync 2>/dev/null && echo write_rc=0
'

# A device reset by the guest's driver (unbind/bind), then the data again.
RESET_SCRIPT='
echo 0000:00:01.0 >/sys/bus/pci/drivers/virtio-pci/unbind
[ -e /dev/vda ] || echo unbound=yes
echo 0000:00:01.0 >/sys/bus/pci/drivers/virtio-pci/bind
sleep 1
echo rebind=$(dd if=/dev/vda bs=1M count=8 2>/dev/null | sha256sum | cut -c1-64)
'

# data_checks WHO IMG LOG RC: the TAP lines for DATA_SCRIPT's output.
data_checks() {
	who=$1 img=$2 log=$3 run_rc=$4 host_sum=$5
	[ "$run_rc" -eq 0 ] && [ "$(guest_val "$log" size)" = "$(stat -c %s "$img")" ] &&
		[ "$(guest_val "$log" guest_read)" = "$host_sum" ]
	tap_check "$who: the guest sees the exact size and reads what the host wrote" $? "$log"
	wrote=$(guest_val "$log" guest_wrote)
	[ -n "$wrote" ] && [ "$(guest_val "$log" write_rc)" = 0 ] &&
		[ "$(dd if="$img" bs=1M skip=16 count=4 2>/dev/null | sha)" = "$wrote" ]
	tap_check "$who: a pattern the guest wrote and flushed is in the file" $? "$log"
}

# new_img PATH: 32 MiB, the first 8 random; prints their checksum.
new_img() {
	dd if=/dev/urandom of="$1" bs=1M count=8 2>/dev/null
	truncate -s 32M "$1"
	head -c 8388608 "$1" | sha
}

# ---- zonevm frontend, zonevm backend (raw file) --------------------------------
A=$WORK/a.img
sum_a=$(new_img "$A")
zonevm disk serve --vhost-user "$WORK/a.sock" "$A" 2>"$WORK/serve-a.log" &
spid=$!
wait_sock "$WORK/a.sock"
log=$WORK/za.log
zrun "$log" --kernel "$K" --initrd "$I" --cpus 2 \
	--cmdline "$C zonevm.script=$(guest_script "$DATA_SCRIPT$RESET_SCRIPT")" \
	--disk "vhost-user=$WORK/a.sock"
data_checks "zonevm run + zonevm disk serve" "$A" "$log" "$rc" "$sum_a"
[ "$(guest_val "$log" unbound)" = yes ] && [ "$(guest_val "$log" rebind)" = "$sum_a" ]
tap_check "zonevm run + zonevm disk serve: driver unbind/bind (device reset: GET_VRING_BASE, RESET_DEVICE, rings again) reads the same data" $? "$log"
kill "$spid"
wait "$spid"
tap_check "zonevm disk serve ends cleanly on SIGTERM" $? "$WORK/serve-a.log"

# ---- QEMU frontend, zonevm backend ------------------------------------------------
B=$WORK/b.img
sum_b=$(new_img "$B")
zonevm disk serve --vhost-user "$WORK/b.sock" "$B" 2>"$WORK/serve-b.log" &
spid=$!
wait_sock "$WORK/b.sock"
log=$WORK/qb.log
timeout 300 qemu-system-x86_64 -enable-kvm -cpu host -smp 1 -m 256 -nographic -no-reboot \
	-nodefaults -serial stdio -kernel "$K" -initrd "$I" \
	-append "$C zonevm.script=$(guest_script "$DATA_SCRIPT")" \
	-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
	-chardev socket,id=c0,path="$WORK/b.sock" -device vhost-user-blk-pci,chardev=c0 \
	</dev/null >"$log" 2>&1
rc=$?
data_checks "QEMU vhost-user-blk-pci + zonevm disk serve" "$B" "$log" "$rc" "$sum_b"
kill "$spid"
wait "$spid"

# ---- zonevm frontend, qemu-storage-daemon backend ------------------------------------
if command -v qemu-storage-daemon >/dev/null; then
	Q=$WORK/q.img
	sum_q=$(new_img "$Q")
	qemu-storage-daemon --blockdev driver=file,node-name=f0,filename="$Q" \
		--export type=vhost-user-blk,id=e0,node-name=f0,writable=on,addr.type=unix,addr.path="$WORK/q.sock" \
		>"$WORK/qsd.log" 2>&1 &
	qpid=$!
	wait_sock "$WORK/q.sock"
	log=$WORK/zq.log
	zrun "$log" --kernel "$K" --initrd "$I" --cpus 2 \
		--cmdline "$C zonevm.script=$(guest_script "$DATA_SCRIPT")" \
		--disk "vhost-user=$WORK/q.sock"
	data_checks "zonevm run + qemu-storage-daemon" "$Q" "$log" "$rc" "$sum_q"
	kill "$qpid"
	wait "$qpid"
else
	tap_ok "# SKIP zonevm run + qemu-storage-daemon: no qemu-storage-daemon in this host"
fi

# ---- the backend dies while the guest writes -------------------------------------------
D=$WORK/d.img
truncate -s 64M "$D"
zonevm disk serve --vhost-user "$WORK/d.sock" "$D" 2>"$WORK/serve-d.log" &
spid=$!
wait_sock "$WORK/d.sock"
log=$WORK/kill.log
(
	zrun "$log" --kernel "$K" --initrd "$I" --cpus 2 --cmdline "$C zonevm.script=$(guest_script '
echo io_start=1
n=0
while dd if=/dev/urandom of=/dev/vda bs=64k count=32 seek=$((n % 16 * 32)) conv=fsync 2>/dev/null; do
	n=$((n + 1))
	[ $n -ge 3000 ] && break
done
echo writes_before_error=$n
echo 3 >/proc/sys/vm/drop_caches
if dd if=/dev/vda of=/dev/null bs=4k count=1 skip=12288 2>/dev/null; then
	echo read_after=ok
else
	echo read_after=failed
fi
')" --disk "vhost-user=$WORK/d.sock"
	echo "$rc" >"$WORK/kill.rc"
) &
rpid=$!
for _ in $(seq 600); do
	grep -q '^io_start=1' "$log" 2>/dev/null && break
	sleep 0.1
done
sleep 2
kill -9 "$spid"
wait "$rpid"
rc=$(cat "$WORK/kill.rc")
n=$(guest_val "$log" writes_before_error)
[ "$rc" -eq 0 ] && [ -n "$n" ] && [ "$n" -lt 3000 ] && [ "$(guest_val "$log" read_after)" = failed ]
tap_check "backend SIGKILLed mid-I/O: the guest's writes and later reads fail with I/O errors ($n writes before), the VMM exits cleanly at power-off" $? "$log"
[ "$(grep -c 'backend closed its socket' "$log")" = 1 ]
tap_check "the VMM logs the backend's death once" $? "$log"

# ---- a guest on a pool volume, exported by the pool daemon -----------------------------
R=$WORK/root
export ZONEVM_ROOT="$R"
if zonevm pool create tank "$WORK/tank.img" --size 256M >"$WORK/pool.log" 2>&1 &&
	zonevm vol create tank/v 64M >>"$WORK/pool.log" 2>&1; then
	zonevm pool serve tank 2>"$WORK/daemon.log" &
	dpid=$!
	wait_sock "$R/run/tank.sock"
	log=$WORK/vol.log
	zrun "$log" --kernel "$K" --initrd "$I" --cpus 2 --cmdline "$C zonevm.script=$(guest_script '
mke2fs -F /dev/vda >/dev/null 2>&1 && echo mkfs_rc=0
mount -t ext2 /dev/vda /mnt && echo mount_rc=0
for i in 1 2 3 4; do dd if=/dev/urandom of=/mnt/f$i bs=64k count=$((i * 8)) 2>/dev/null; done
echo fs_sum=$(cat /mnt/f* | sha256sum | cut -c1-64)
umount /mnt && echo umount_rc=0
echo dev_sum=$(dd if=/dev/vda bs=1M 2>/dev/null | sha256sum | cut -c1-64)
')" --disk vol=tank/v
	zonevm vol export tank/v "$WORK/v.out" >>"$WORK/pool.log" 2>&1
	[ "$rc" -eq 0 ] && [ "$(guest_val "$log" mkfs_rc)" = 0 ] &&
		[ "$(guest_val "$log" umount_rc)" = 0 ] &&
		[ "$(sha <"$WORK/v.out")" = "$(guest_val "$log" dev_sum)" ]
	tap_check "a guest on pool volume tank/v (vol=): mkfs, write, flush, power-off; vol export matches" $? "$log" "$WORK/daemon.log" "$WORK/pool.log"
	if command -v e2fsck >/dev/null; then
		e2fsck -fn "$WORK/v.out" >"$WORK/fsck.log" 2>&1
		tap_check "the exported volume's file system is clean (e2fsck)" $? "$WORK/fsck.log"
	fi
	kill "$dpid"
	wait "$dpid"
	tap_check "the pool daemon ends cleanly after the guest left" $? "$WORK/daemon.log"
else
	tap_not_ok "pool create / vol create for the volume test"
	tap_diag "$WORK/pool.log"
fi

tap_end
