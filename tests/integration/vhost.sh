#!/bin/sh
# vhost.sh - vhost-user-blk, both ends, with the unmodified Debian guest of
# the guest kit: zonevm's backend (`zonevm disk serve`) on a raw file under
# zonevm's frontend (`run --disk vhost-user=`) and under QEMU's
# vhost-user-blk-pci; zonevm's frontend on qemu-storage-daemon's backend; the
# backend SIGKILLed while the guest writes (the VMM survives, the guest gets
# I/O errors, the VMM exits cleanly at power-off). Then guests on volumes of
# one pool served by `zonevm pool serve` (`run --disk vol=POOL/VOL`):
#  - mkfs, write, flush; `vol export` matches;
#  - a snapshot taken while a guest writes and flushes a numbered sequence of
#    blocks is crash-consistent (a prefix: at least every block acknowledged
#    before `vol snapshot` started, none written after it), and a second
#    guest runs on its clone while the first goes on writing;
#  - provisioning: an imported ext4 image, snapshot @final, three clones,
#    three guests booted at once; each clone's `used` is what its guest
#    wrote, and each holds its own guest's file only;
#  - QEMU's vhost-user-blk-pci boots on a volume (`vol serve --vhost-user`);
#  - the daemon SIGKILLed while a guest writes: the VMM survives, the guest
#    gets I/O errors, the VMM logs it once and exits at power-off; the
#    restarted daemon's pool scrubs clean, every acknowledged block is
#    there, and a guest attaches the volume again and writes on; the same
#    with SIGTERM (the daemon's final commit while a guest writes).
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

# wait_for PATTERN FILE [TENTHS]: until FILE has a line matching PATTERN
# (60 s, or TENTHS tenths of a second, at most).
wait_for() {
	for _ in $(seq "${3:-600}"); do
		grep -q -- "$1" "$2" 2>/dev/null && return 0
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

# qemu_vhost LOG SOCKET SCRIPT: QEMU boots the kit's guest, running SCRIPT,
# with a vhost-user-blk-pci disk on SOCKET (guest RAM: a shared memfd); sets rc.
qemu_vhost() {
	timeout 300 qemu-system-x86_64 -enable-kvm -cpu host -smp 1 -m 256 -nographic -no-reboot \
		-nodefaults -serial stdio -kernel "$K" -initrd "$I" \
		-append "$C zonevm.script=$(guest_script "$3")" \
		-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
		-chardev socket,id=c0,path="$2" -device vhost-user-blk-pci,chardev=c0 \
		</dev/null >"$1" 2>&1
	rc=$?
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
qemu_vhost "$log" "$WORK/b.sock" "$DATA_SCRIPT"
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

# ---- guests on pool volumes, exported by the pool daemon -------------------------------
R=$WORK/root
export ZONEVM_ROOT="$R"
SEED=$$$(date +%s)
NBLK=2048 # the block sequence's region: 2048 blocks of 4 KiB at the volume's start

# last_ack LOG: the highest block index a guest has reported written (-1: none).
last_ack() {
	a=$(guest_val "$1" ack)
	echo "${a:--1}"
}

# wait_ack LOG N: until the guest has acknowledged block N (180 s at most:
# a loaded CI machine boots slowly).
wait_ack() {
	for _ in $(seq 1800); do
		[ "$(last_ack "$1")" -ge "$2" ] && return 0
		grep -q 'zonevm-guest: script exit' "$1" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# Shared by the host and the guests (both run busybox or POSIX tools).
# gen_seq SEED N: blocks 0..N-1 of the sequence. Block i is 4 KiB whose
# every byte follows from SEED and i (a numbered, self-checking block: a
# torn, stale, misplaced or lost block differs from it).
# prefix_len FILE SEQ: how many whole blocks from FILE's start equal SEQ's.
# nonzero_from FILE N: the count of non-zero bytes from block N on.
SEQ_FUNCS='
gen_seq() {
	awk -v seed="$1" -v n="$2" "BEGIN {
		for (i = 0; i < n; i++) {
			s = sprintf(\"zvblk %s %06d \", seed, i)
			while (length(s) < 4096) s = s s
			printf \"%s\n\", substr(s, 1, 4095)
		}
	}"
}
prefix_len() {
	if d=$(cmp "$1" "$2" 2>&1); then
		echo $(($(wc -c <"$1") / 4096))
	else
		off=$(echo "$d" | sed -n "s/.*differ: [a-z]* \([0-9]*\),.*/\1/p")
		echo $(((${off:-1} - 1) / 4096))
	fi
}
nonzero_from() {
	tail -c +$(($2 * 4096 + 1)) "$1" | tr -d "\000" | wc -c
}
'
eval "$SEQ_FUNCS"

# The guest's writer: the sequence to /dev/vda, block by block (from block
# START, default 0), each one
# flushed (conv=fsync) before "ack=I" is printed; it stops at the first
# failed write, after NBLK blocks, or when its control disk /dev/vdb starts
# with "stop" (and with WAIT_STOP=1 waits for that). Then it reads the
# region back uncached and checks it.
WRITER='
gen_seq "$SEED" "$NBLK" >/tmp/seq
i=${START:-0}
while [ $i -lt "$NBLK" ]; do
	if ! dd if=/tmp/seq of=/dev/vda bs=4096 skip=$i seek=$i count=1 conv=notrunc,fsync 2>/dev/null; then
		echo write_failed=$i
		break
	fi
	echo ack=$i
	i=$((i + 1))
	[ "$(dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 4)" = stop ] && break
done
echo writes=$i
while [ "$WAIT_STOP" = 1 ] && [ "$(dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 4)" != stop ]; do
	sleep 0.5
done
if dd if=/dev/vda of=/tmp/back bs=4096 count="$NBLK" iflag=direct 2>/dev/null; then
	n=$(prefix_len /tmp/back /tmp/seq)
	echo own_prefix=$n
	echo own_rest=$(nonzero_from /tmp/back "$n")
else
	echo read_after=failed
fi
'

# ctl_disk FILE TEXT [SETTINGS]: a 64 KiB raw disk for a guest, its /dev/vdb:
# 4 KiB of control (the host writes "stop" there), then the script TEXT
# with SETTINGS, the shared functions and settings before it (the kernel
# command line is too short for the scripts; BOOT runs it from the disk).
ctl_disk() {
	truncate -s 0 "$1"
	truncate -s 64K "$1"
	printf 'SEED=%s\nNBLK=%s\n%s\n%s\n%s\n' "$SEED" "$NBLK" "${3:-}" "$SEQ_FUNCS" "$2" |
		dd of="$1" bs=4096 seek=1 conv=notrunc 2>/dev/null
	truncate -s 64K "$1"
}
BOOT=$(guest_script 'dd if=/dev/vdb bs=4096 skip=1 2>/dev/null | tr -d "\000" >/tmp/s; sh /tmp/s')

# start_writer NAME VOL [SETTINGS]: a new 16 MiB volume VOL and, in the
# background, a guest running WRITER on it (console in $WORK/NAME.log, exit
# status in $WORK/NAME.rc, control disk $WORK/NAME.ctl); sets wpid.
start_writer() {
	zonevm vol create "$2" 16M >>"$WORK/pool.log" 2>&1
	ctl_disk "$WORK/$1.ctl" "$WRITER" "${3:-}"
	(
		zrun "$WORK/$1.log" --kernel "$K" --initrd "$I" --cpus 1 --mem 256M \
			--cmdline "$C zonevm.script=$BOOT" --disk "vol=$2" --disk "$WORK/$1.ctl"
		echo "$rc" >"$WORK/$1.rc"
	) &
	wpid=$!
}

# vol_used VOL: its `used` in bytes.
vol_used() {
	zonevm vol get -H -p used "$1" | cut -f3
}

gen_seq "$SEED" "$NBLK" >"$WORK/seq"

if ! zonevm pool create tank "$WORK/tank.img" --size 512M >"$WORK/pool.log" 2>&1 ||
	! zonevm vol create tank/v 64M >>"$WORK/pool.log" 2>&1; then
	tap_not_ok "pool create / vol create for the volume tests"
	tap_diag "$WORK/pool.log"
	tap_end
	exit 1
fi
zonevm pool serve tank 2>"$WORK/daemon.log" &
dpid=$!
wait_sock "$R/run/tank.sock"

# ---- a guest on a pool volume: mkfs, write, flush; vol export matches ------------------
log=$WORK/vol.log
zrun "$log" --kernel "$K" --initrd "$I" --cpus 2 --cmdline "$C zonevm.script=$(guest_script '
mke2fs -F /dev/vda >/dev/null 2>&1 && echo mkfs_rc=0
mount -t ext2 /dev/vda /mnt && echo mount_rc=0
for i in 1 2 3 4; do dd if=/dev/urandom of=/mnt/f$i bs=64k count=$((i * 8)) 2>/dev/null; done
echo fs_sum=$(cat /mnt/f* | sha256sum | cut -c1-64)
umount /mnt && echo umount_rc=0
'"$RESET_SCRIPT"'
dd if=/dev/urandom of=/tmp/r bs=64k count=1 2>/dev/null
dd if=/tmp/r of=/dev/vda bs=64k seek=1000 conv=fsync 2>/dev/null && echo after_reset=$(sha256sum </tmp/r | cut -c1-64)
echo dev_sum=$(dd if=/dev/vda bs=1M 2>/dev/null | sha256sum | cut -c1-64)
')" --disk vol=tank/v
zonevm vol export tank/v "$WORK/v.out" >>"$WORK/pool.log" 2>&1
[ "$rc" -eq 0 ] && [ "$(guest_val "$log" mkfs_rc)" = 0 ] &&
	[ "$(guest_val "$log" umount_rc)" = 0 ] &&
	[ "$(sha <"$WORK/v.out")" = "$(guest_val "$log" dev_sum)" ]
tap_check "a guest on pool volume tank/v (vol=): mkfs, write, flush, power-off; vol export matches" $? "$log" "$WORK/daemon.log" "$WORK/pool.log"
r=$(guest_val "$log" after_reset)
[ "$(guest_val "$log" unbound)" = yes ] &&
	[ "$(guest_val "$log" rebind)" = "$(head -c 8388608 "$WORK/v.out" | sha)" ] && [ -n "$r" ] &&
	[ "$(dd if="$WORK/v.out" bs=64k skip=1000 count=1 2>/dev/null | sha)" = "$r" ]
tap_check "tank/v: driver unbind/bind (device reset through the pool daemon's backend) reads the same data, and a write after it lands" $? "$log" "$WORK/daemon.log"
if command -v e2fsck >/dev/null; then
	e2fsck -fn "$WORK/v.out" >"$WORK/fsck.log" 2>&1
	tap_check "the exported volume's file system is clean (e2fsck)" $? "$WORK/fsck.log"
fi
rm -f "$WORK/v.out"

# ---- a snapshot while the guest writes; a second guest on its clone ------------------
start_writer g1 tank/s WAIT_STOP=1
l1=$WORK/g1.log
g1pid=$wpid
wait_ack "$l1" 10
a=$(last_ack "$l1")
zonevm vol snapshot tank/s@live >>"$WORK/pool.log" 2>&1
snap_rc=$?
b=$(last_ack "$l1")
zonevm vol clone tank/s@live tank/c >>"$WORK/pool.log" 2>&1
clone_rc=$?
[ "$snap_rc" -eq 0 ] && [ "$clone_rc" -eq 0 ] && [ "$a" -ge 10 ]
tap_check "vol snapshot and vol clone of tank/s while its guest writes (acknowledged: $a before, $b after the snapshot)" $? "$WORK/pool.log" "$l1"
zrun "$WORK/second.log" --kernel "$K" --initrd "$I" --mem 64M --disk vol=tank/s
[ "$rc" -ne 0 ] && grep -q 'tank/s is attached read-write by pid [0-9]* (zonevm)' "$WORK/second.log"
tap_check "a second zonevm run on tank/s is refused, naming the running VMM" $? "$WORK/second.log"
wait_ack "$l1" $((b + 10))

# More snapshots, every 4 s from the second guest's start, while the first
# writes (commands through the daemon while two guests do I/O); each line:
# NAME, acknowledged before, after.
(
	for k in 2 3 4; do
		sleep 4
		sa=$(last_ack "$l1")
		zonevm vol snapshot "tank/s@live$k" >>"$WORK/pool.log" 2>&1 || sa=failed
		echo "live$k $sa $(last_ack "$l1")" >>"$WORK/snaps"
	done
) &
snpid=$!

# The second guest: reads the clone, checks it, writes its own block at 12 MiB.
l2=$WORK/g2.log
before2=$(last_ack "$l1")
ctl_disk "$WORK/ctl2" '
dd if=/dev/vda of=/tmp/clone bs=4096 count="$NBLK" iflag=direct 2>/dev/null
gen_seq "$SEED" "$NBLK" >/tmp/seq
n=$(prefix_len /tmp/clone /tmp/seq)
echo clone_prefix=$n
echo clone_rest=$(nonzero_from /tmp/clone "$n")
dd if=/dev/urandom of=/tmp/mine bs=4096 count=1 2>/dev/null
dd if=/tmp/mine of=/dev/vda bs=4096 seek=3072 conv=notrunc,fsync 2>/dev/null && echo mine=$(sha256sum </tmp/mine | cut -c1-64)
'
zrun "$l2" --kernel "$K" --initrd "$I" --cpus 1 --mem 256M \
	--cmdline "$C zonevm.script=$BOOT" --disk vol=tank/c --disk "$WORK/ctl2"
rc2=$rc
wait "$snpid"
after2=$(last_ack "$l1")
printf stop | dd of="$WORK/g1.ctl" conv=notrunc 2>/dev/null
wait "$g1pid"
rc1=$(cat "$WORK/g1.rc")

n=$(guest_val "$l2" clone_prefix)
[ "$rc2" -eq 0 ] && [ -n "$n" ] && [ "$(guest_val "$l2" clone_rest)" = 0 ] &&
	[ "$n" -ge $((a + 1)) ] && [ "$n" -le $((b + 2)) ]
tap_check "the second guest sees a crash-consistent clone: blocks 0..$((${n:-0} - 1)) intact, nothing after (acknowledged before the snapshot: 0..$a; after it: 0..$b)" $? "$l2"
[ "$after2" -gt "$before2" ]
tap_check "the first guest kept writing while the second ran on the clone (blocks $before2..$after2)" $? "$l1"

zonevm vol export tank/c "$WORK/c.out" >>"$WORK/pool.log" 2>&1
zonevm vol export tank/s "$WORK/s.out" >>"$WORK/pool.log" 2>&1
head -c $((NBLK * 4096)) "$WORK/c.out" >"$WORK/c.region"
mine=$(guest_val "$l2" mine)
[ "$(prefix_len "$WORK/c.region" "$WORK/seq")" = "$n" ] &&
	[ "$(nonzero_from "$WORK/c.region" "$n")" = 0 ] && [ -n "$mine" ] &&
	[ "$(dd if="$WORK/c.out" bs=4096 skip=3072 count=1 2>/dev/null | sha)" = "$mine" ]
tap_check "vol export of the clone: the same prefix, none of the first guest's later writes, the second guest's block" $? "$WORK/pool.log" "$l2"

w=$(guest_val "$l1" writes)
head -c $((NBLK * 4096)) "$WORK/s.out" >"$WORK/s.region"
[ "$rc1" -eq 0 ] && [ -n "$w" ] && [ "$w" -gt $((b + 10)) ] &&
	[ "$(guest_val "$l1" own_prefix)" = "$w" ] && [ "$(guest_val "$l1" own_rest)" = 0 ] &&
	[ "$(prefix_len "$WORK/s.region" "$WORK/seq")" = "$w" ] &&
	[ "$(nonzero_from "$WORK/s.region" "$w")" = 0 ] &&
	[ "$(dd if="$WORK/s.out" bs=4096 skip=3072 count=1 2>/dev/null | tr -d '\000' | wc -c)" = 0 ]
tap_check "the first guest reads back all its $w blocks; vol export of tank/s has them and not the second guest's block" $? "$l1" "$WORK/pool.log"
bad=""
while read -r sn sa sb; do
	zonevm vol export "tank/s@$sn" "$WORK/sn.out" >>"$WORK/pool.log" 2>&1
	head -c $((NBLK * 4096)) "$WORK/sn.out" >"$WORK/sn.region"
	sn_n=$(prefix_len "$WORK/sn.region" "$WORK/seq")
	[ "$sa" != failed ] && [ "$sn_n" -ge $((sa + 1)) ] && [ "$sn_n" -le $((sb + 2)) ] &&
		[ "$(nonzero_from "$WORK/sn.region" "$sn_n")" = 0 ] || bad="$bad $sn($sa,$sb:$sn_n)"
done <"$WORK/snaps"
what="three more snapshots, every 4 s while the first guest writes and the second boots, are crash-consistent too ($(tr '\n' ' ' <"$WORK/snaps"))$bad"
[ "$(wc -l <"$WORK/snaps")" = 3 ] && [ -z "$bad" ]
tap_check "$what" $? "$WORK/snaps" "$WORK/pool.log"
rm -f "$WORK"/*.out "$WORK"/*.region

# ---- provisioning: three guests from clones of one image --------------------------
mkdir -p "$WORK/imgdir"
echo "zonevm image $SEED" >"$WORK/imgdir/marker"
dd if=/dev/urandom of="$WORK/imgdir/base.bin" bs=1M count=8 2>/dev/null
base_sum=$(sha <"$WORK/imgdir/base.bin")
mke2fs -q -F -t ext4 -b 4096 -d "$WORK/imgdir" "$WORK/image.ext4" 32M >"$WORK/mkfs.log" 2>&1
img_sum=$(sha <"$WORK/image.ext4")
zonevm vol import tank/img "$WORK/image.ext4" >>"$WORK/pool.log" 2>&1 &&
	zonevm vol snapshot tank/img@final >>"$WORK/pool.log" 2>&1
tap_check "vol import of a 32 MiB ext4 guest image, snapshot @final" $? "$WORK/mkfs.log" "$WORK/pool.log"
img_ref=$(zonevm vol get -H -p referenced tank/img@final | cut -f3)
# Each guest reads the image, says ready=1 and waits for "go" on its control
# disk /dev/vdb, given once all three are ready: they run at once. Three
# guests share the emulated host's two CPUs, so each gets 600 s, not 300.
pids=""
for g in p1 p2 p3; do
	zonevm vol clone tank/img@final "tank/$g" >>"$WORK/pool.log" 2>&1
	truncate -s 64K "$WORK/$g.ctl"
	(
		ZRUN_TIMEOUT=600 zrun "$WORK/$g.log" --kernel "$K" --initrd "$I" --cpus 1 --mem 128M \
			--cmdline "$C zonevm.script=$(guest_script "
mount -t ext4 /dev/vda /mnt && echo mount_rc=0
echo marker=\$(cat /mnt/marker | tr ' ' _)
echo base=\$(sha256sum </mnt/base.bin | cut -c1-64)
echo ready=1
while [ \"\$(dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 2)\" != go ]; do sleep 0.2; done
dd if=/dev/urandom of=/mnt/own-$g bs=64k count=4 2>/dev/null
echo own=\$(sha256sum </mnt/own-$g | cut -c1-64)
umount /mnt && echo umount_rc=0
")" --disk "vol=tank/$g" --disk "$WORK/$g.ctl"
		echo "$rc" >"$WORK/$g.rc"
	) &
	pids="$pids $!"
done
together=yes
for g in p1 p2 p3; do
	wait_for '^ready=1' "$WORK/$g.log" 6000 || together=no
done
for g in p1 p2 p3; do
	printf go | dd of="$WORK/$g.ctl" conv=notrunc 2>/dev/null
done
wait $pids
[ "$together" = yes ]
tap_check "three guests booted at once on clones of tank/img@final, all three up with their clones mounted at the same time" $? "$WORK/p1.log" "$WORK/p2.log" "$WORK/p3.log" "$WORK/daemon.log"
for g in p1 p2 p3; do
	log=$WORK/$g.log
	[ "$(cat "$WORK/$g.rc")" = 0 ] && [ "$(guest_val "$log" mount_rc)" = 0 ] &&
		[ "$(guest_val "$log" marker)" = "zonevm_image_$SEED" ] &&
		[ "$(guest_val "$log" base)" = "$base_sum" ] && [ "$(guest_val "$log" umount_rc)" = 0 ]
	tap_check "guest $g mounts its clone, reads the image's files, writes its own" $? "$log"
done
for g in p1 p2 p3; do
	used=$(vol_used "tank/$g")
	zonevm vol export "tank/$g" "$WORK/$g.out" >>"$WORK/pool.log" 2>&1
	debugfs -R ls "$WORK/$g.out" >"$WORK/$g.ls" 2>&1
	others=$(grep -o 'own-p[0-9]' "$WORK/$g.ls" | grep -v "own-$g" | tr '\n' ' ')
	[ "$(debugfs -R "cat /own-$g" "$WORK/$g.out" 2>/dev/null | sha)" = "$(guest_val "$WORK/$g.log" own)" ] &&
		[ -z "$others" ] && [ "$used" -ge 262144 ] && [ "$used" -le $((262144 + 524288)) ] &&
		[ "$img_ref" -ge 8388608 ]
	tap_check "clone tank/$g holds its guest's file only; its used, $used B, is what its guest wrote (262144 B of data, at most 512 KiB of ext4 metadata and journal), the image references $img_ref B" $? "$WORK/$g.ls" "$WORK/pool.log"
	rm -f "$WORK/$g.out"
done
zonevm vol export tank/img@final "$WORK/final.out" >>"$WORK/pool.log" 2>&1
[ "$(sha <"$WORK/final.out")" = "$img_sum" ]
tap_check "tank/img@final still equals the imported image" $? "$WORK/pool.log"
rm -f "$WORK/final.out" "$WORK/image.ext4"

# ---- QEMU boots a guest on a volume the daemon exports (vol serve --vhost-user) -----------
dd if=/dev/urandom of="$WORK/q.raw" bs=1M count=8 2>/dev/null
q_sum=$(sha <"$WORK/q.raw")
truncate -s 32M "$WORK/q.raw"
zonevm vol import tank/q "$WORK/q.raw" >>"$WORK/pool.log" 2>&1
rm -f "$WORK/q.raw"
zonevm vol serve tank/q --vhost-user "$WORK/vq.sock" 2>"$WORK/vserve.log" &
vspid=$!
wait_sock "$WORK/vq.sock"
log=$WORK/qvol.log
qemu_vhost "$log" "$WORK/vq.sock" "$DATA_SCRIPT"
qrc=$rc
kill "$vspid"
wait "$vspid"
vsrc=$?
zonevm vol export tank/q "$WORK/q.out" >>"$WORK/pool.log" 2>&1
data_checks "QEMU vhost-user-blk-pci + vol serve tank/q --vhost-user (in the pool daemon)" "$WORK/q.out" "$log" "$qrc" "$q_sum"
[ "$vsrc" -eq 0 ]
tap_check "vol serve --vhost-user ends cleanly on SIGTERM" $? "$WORK/vserve.log"
rm -f "$WORK/q.out"

# ---- the daemon SIGKILLed, then SIGTERMed, while a guest writes ----------------------
# stopped_checks WHAT LOG RC: the guest of LOG (its zonevm run ended with RC)
# got I/O errors once its daemon was gone; its VMM logged that once and
# exited 0 at power-off.
stopped_checks() {
	f=$(guest_val "$2" write_failed)
	[ "$3" -eq 0 ] && [ -n "$f" ] && [ "$f" -lt "$NBLK" ] &&
		[ "$(guest_val "$2" read_after)" = failed ] &&
		[ "$(grep -c 'backend closed its socket' "$2")" = 1 ]
	tap_check "$1: the guest's writes (from block $f) and reads fail with I/O errors, its VMM logs it once and exits 0 at power-off" $? "$2"
}

# restart_checks N K: the daemon started again (log daemonN.log; sets
# dpid); the pool scrubs clean; tank/k holds every block from 0 to K (the
# acknowledged ones) and nothing after its prefix (sets n).
restart_checks() {
	rm -f "$R/run/tank.sock"
	zonevm pool serve tank 2>"$WORK/daemon$1.log" &
	dpid=$!
	wait_sock "$R/run/tank.sock"
	zonevm pool scrub tank >"$WORK/scrub.log" 2>&1 && grep -q ' 0 damaged' "$WORK/scrub.log"
	tap_check "the restarted daemon's pool scrubs clean" $? "$WORK/scrub.log" "$WORK/daemon$1.log"
	zonevm vol export tank/k "$WORK/k.out" >>"$WORK/pool.log" 2>&1
	head -c $((NBLK * 4096)) "$WORK/k.out" >"$WORK/k.region"
	n=$(prefix_len "$WORK/k.region" "$WORK/seq")
	[ "$n" -ge $(($2 + 1)) ] && [ "$(nonzero_from "$WORK/k.region" "$n")" = 0 ]
	tap_check "every acknowledged block is there (0..$2; the volume has 0..$((n - 1)), nothing after)" $? "$WORK/pool.log"
}

start_writer dkill tank/k
lk=$WORK/dkill.log
kpid=$wpid
wait_ack "$lk" 10
kill -9 "$dpid"
wait "$dpid" 2>/dev/null
wait "$kpid"
stopped_checks "daemon SIGKILLed mid-I/O" "$lk" "$(cat "$WORK/dkill.rc")"
restart_checks 2 "$(last_ack "$lk")"

# A new guest attaches tank/k, reads it and goes on writing the sequence
# from where it ends; the daemon gets SIGTERM meanwhile.
lr=$WORK/reattach.log
ctl_disk "$WORK/ctlr" '
dd if=/dev/vda of=/tmp/back bs=4096 count="$NBLK" iflag=direct 2>/dev/null
gen_seq "$SEED" "$NBLK" >/tmp/seq
START=$(prefix_len /tmp/back /tmp/seq)
echo again=$START
'"$WRITER"
(
	zrun "$lr" --kernel "$K" --initrd "$I" --cpus 1 --mem 128M \
		--cmdline "$C zonevm.script=$BOOT" --disk vol=tank/k --disk "$WORK/ctlr"
	echo "$rc" >"$WORK/reattach.rc"
) &
rpid=$!
wait_ack "$lr" $((n + 5))
[ "$(guest_val "$lr" again)" = "$n" ]
tap_check "a guest attaches tank/k again through the restarted daemon, reads the same blocks and writes more" $? "$lr" "$WORK/daemon2.log"
kill "$dpid"
wait "$dpid"
drc=$?
wait "$rpid"
[ "$drc" -eq 0 ] && grep -q 'final commit done' "$WORK/daemon2.log"
tap_check "SIGTERM of the daemon while that guest writes: it exits 0 after its final commit" $? "$WORK/daemon2.log"
stopped_checks "daemon SIGTERMed mid-I/O" "$lr" "$(cat "$WORK/reattach.rc")"
restart_checks 3 "$(last_ack "$lr")"
kill "$dpid"
wait "$dpid"
tap_check "the pool daemon ends cleanly on SIGTERM" $? "$WORK/daemon3.log"

tap_end
