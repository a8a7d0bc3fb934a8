#!/bin/sh
# in-host.sh [RUNS]: virtio-blk benchmark, run where /dev/kvm is real KVM
# (inside tools/kvmhost on machines without it).  fio runs in the guest kit
# (fio disk = /dev/vdb, run by /init through zonevm.scriptdisk=vdb) against
# /dev/vda, which is, in turn:
#   zonevm   a raw file here, through zonevm's own virtio-blk (--disk FILE,
#            io_uring, cache=none = O_DIRECT)
#   vol-off  a pool volume holding the same bytes, compression off, served
#            by `zonevm pool serve` and attached with --disk vol=POOL/VOL
#   vol-lz4  the same with compression lz4
#   vhost    the raw file through `zonevm disk serve` (--disk vhost-user=)
#   qemu     the raw file through QEMU (virtio-blk-pci, aio=io_uring,
#            cache=none)
# Same kernel, initrd, vCPUs (2), memory (256 MiB) and fio jobs.  The raw
# file is filled with pseudo-random (incompressible) data and imported into
# both volumes, so every path reads real data, not holes; the pool file is
# on the same file system as the raw file.  The pool daemon is started for
# each volume run (cold ARC, 256 MiB) and stopped after it.  Prints every
# run, the medians and the ratios.  Figures only, no assertions.
# Environment: KIT (/kit), FIOIMG (/bench/fio.img), DATA (/data: a folder on
# a file system with O_DIRECT and room for the file and the pool),
# BLK_SIZE_MB (512), BLK_RUNTIME (seconds per fio job, 10), BLK_ENGINE
# (libaio), BLK_WARM_MB (128: region of the ARC-warm random read),
# BLK_VHOST (1; 0 leaves the vhost column out).
set -u
runs=${1:-1}
KIT=${KIT:-/kit}
FIOIMG=${FIOIMG:-/bench/fio.img}
DATA=${DATA:-/data}
size_mb=${BLK_SIZE_MB:-512}
rt=${BLK_RUNTIME:-10}
eng=${BLK_ENGINE:-libaio}
warm=${BLK_WARM_MB:-128}
with_vhost=${BLK_VHOST:-1}
K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vdb zbench.runtime=$rt zbench.engine=$eng zbench.warm_mb=$warm"
D=$DATA/disk.img
out=$(mktemp)
log=$(mktemp)

P=$DATA/pool.img
export ZONEVM_ROOT="$DATA/root"

# The run disk of tools/kvmhost has room for what --add carried: a
# placeholder reserved the space for the file under test and the pool.
rm -f "$DATA/space"
rm -rf "$D" "$P" "$ZONEVM_ROOT"
fallocate -l "${size_mb}M" "$D" || { echo "blk: fallocate $D failed" >&2; exit 1; }
# Write every block once with pseudo-random data, so that no path reads
# unwritten extents or holes (zeros without I/O) and compression has
# nothing to gain.
dd if=/dev/urandom of="$D" bs=1M count="$size_mb" conv=notrunc,fsync 2>/dev/null
echo "# file $D: $size_mb MiB, fallocate + pseudo-random data; $(uname -r) host, $(nproc) CPUs"
# The pool: room for two copies of the file and for what the writes of a
# run leave before their old blocks are freed (copy on write: a run writes
# more than the file's size); a nearly full pool would measure its
# allocator instead.
pool_mb=$((size_mb * 3 + 256))
zonevm pool create tank "$P" --size "${pool_mb}M" >/dev/null &&
	zonevm vol import tank/off "$D" --compression off &&
	zonevm vol import tank/lz4 "$D" --compression lz4 &&
	[ "$(zonevm vol export tank/off - | md5sum)" = "$(md5sum <"$D")" ] &&
	[ "$(zonevm vol export tank/lz4 - | md5sum)" = "$(md5sum <"$D")" ] || {
	echo "blk: making the pool $P failed" >&2
	exit 1
}
echo "# pool $P ($pool_mb MiB, same file system), two volumes holding the file's bytes:"
zonevm vol list -o name,blocksize,compression,referenced,compressratio tank | sed 's/^/#   /'
echo "# fio in the guest: $eng, direct=1, iodepth=32, numjobs=1, ${rt}s per job;" \
	"ARC-warm read: ${warm} MiB region"

run() { # label, command...
	label=$1
	shift
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	timeout $((rt * 4 + 300)) "$@" >"$log" 2>&1 </dev/null
	rc=$?
	tr -d '\r' <"$log" | sed -n 's/^zbench //p' >"$log.z"
	n=$(grep -c "iops=" "$log.z")
	if [ "$n" -lt 6 ]; then
		echo "$label: $n of 6 fio jobs gave figures (exit $rc); last lines:"
		tr -d '\r' <"$log" | tail -n 20 | sed 's/^/  /'
	fi
	sed "s/^/$label /" "$log.z"
	sed "s/^/$label /" "$log.z" >>"$out"
}

run_qemu() {
	run qemu qemu-system-x86_64 -enable-kvm -cpu host -smp 2 -m 256 -nographic \
		-no-reboot -nodefaults -serial stdio -kernel "$K" -initrd "$I" -append "$C" \
		-drive file="$D",if=none,id=d0,format=raw,aio=io_uring,cache=none \
		-device virtio-blk-pci,drive=d0 \
		-drive file="$FIOIMG",if=none,id=d1,format=raw \
		-device virtio-blk-pci,drive=d1
}

i=0
while [ "$i" -lt "$runs" ]; do
	# QEMU goes first on odd runs: the order (load drifting over the
	# minutes of a run) is then not always against the same VMM.
	[ $((i % 2)) = 1 ] && run_qemu
	run zonevm zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 256M \
		--disk "$D" --disk "$FIOIMG"
	for v in off lz4; do
		# A fresh daemon per run: a cold ARC, and the final commit.
		zonevm pool serve tank 2>"$DATA/serve.log" &
		dpid=$!
		for _ in $(seq 100); do [ -S "$ZONEVM_ROOT/run/tank.sock" ] && break; sleep 0.1; done
		run "vol-$v" zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 \
			--mem 256M --disk "vol=tank/$v" --disk "$FIOIMG"
		kill "$dpid"
		wait "$dpid" || { echo "vol-$v: the pool daemon failed:"; sed 's/^/  /' "$DATA/serve.log"; }
		grep -i "error" "$DATA/serve.log" | head -n 5 | sed "s/^/# vol-$v: daemon: /"
		zonevm pool status tank | grep -E "space:|errors:" | sed "s/^ */# vol-$v: after: /"
	done
	if [ "$with_vhost" = 1 ]; then
		# The same file through vhost-user-blk: zonevm disk serve (2
		# queues, as the VMM gives 2 vCPUs) is the backend.
		rm -f "$DATA/v.sock"
		zonevm disk serve --vhost-user "$DATA/v.sock" --queues 2 "$D" 2>/dev/null &
		spid=$!
		for _ in $(seq 100); do [ -S "$DATA/v.sock" ] && break; sleep 0.1; done
		run vhost zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 \
			--mem 256M --disk "vhost-user=$DATA/v.sock" --disk "$FIOIMG"
		kill "$spid"
		wait "$spid"
	fi
	[ $((i % 2)) = 0 ] && run_qemu
	i=$((i + 1))
done

median() { # label, job, field
	grep "^$1 $2 " "$out" | grep -o "$3=[0-9]*" | cut -d= -f2 | sort -n |
		awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

echo
echo "fio in the guest on /dev/vda ($size_mb MiB), median of $runs run(s); IOPS and MiB/s:"
labels="zonevm vol-off vol-lz4 qemu"
[ "$with_vhost" = 1 ] && labels="$labels vhost"
printf '  %-17s' job
for l in $labels; do printf ' %18s' "$l"; done
echo
jobs="randread-4k randwrite-4k read-1M write-1M randread-4k-warm"
for job in $jobs; do
	printf '  %-17s' "$job"
	for l in $labels; do
		printf ' %8d %9.1f' "$(median "$l" "$job" iops)" \
			"$(median "$l" "$job" bw_kib | awk '{ print $1 / 1024 }')"
	done
	echo
done
echo
echo "ratios (bandwidth; = IOPS ratio at a fixed block size):"
printf '  %-17s %11s %11s %11s %11s %11s' job off/zonevm lz4/zonevm off/qemu lz4/qemu zonevm/qemu
[ "$with_vhost" = 1 ] && printf ' %12s' vhost/zonevm
echo
for job in $jobs; do
	z=$(median zonevm "$job" bw_kib)
	o=$(median vol-off "$job" bw_kib)
	c=$(median vol-lz4 "$job" bw_kib)
	q=$(median qemu "$job" bw_kib)
	h=$(median vhost "$job" bw_kib)
	awk -v j="$job" -v z="$z" -v o="$o" -v c="$c" -v q="$q" -v h="$h" -v wv="$with_vhost" '
		function r(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "n/a" }
		BEGIN {
			printf "  %-17s %11s %11s %11s %11s %11s", j, r(o, z), r(c, z), r(o, q), r(c, q), r(z, q)
			if (wv == 1) printf " %12s", r(h, z)
			printf "\n" }'
done
echo "  zonevm = --disk FILE (cache=none); vol-off/vol-lz4 = --disk vol=tank/off|lz4 on"
echo "  zonevm pool serve; qemu = virtio-blk-pci aio=io_uring,cache=none; vhost = --disk"
echo "  vhost-user= on zonevm disk serve (same file)."
echo "  randread-4k-warm: after one sequential pass over the first $warm MiB, 4 KiB random"
echo "  reads there (fits the daemon's 256 MiB ARC; the raw paths cache nothing)."
echo "  goals (issue 5): vol writes >= 0.8 x zonevm; vol randread-4k-warm > 1.0 x zonevm;"
echo "  (issue 3): zonevm >= 1.0 x qemu."
rm -f "$out" "$log" "$log.z" "$D" "$P"
rm -rf "$ZONEVM_ROOT"
