#!/bin/sh
# in-host.sh [RUNS]: virtio-blk benchmark, run where /dev/kvm is real KVM
# (inside tools/kvmhost on machines without it).  fio runs in the guest kit
# (fio disk = /dev/vdb, run by /init through zonevm.scriptdisk=vdb) against
# /dev/vda, a raw file preallocated here; zonevm (--disk, io_uring backend)
# zonevm through vhost-user-blk (--disk vhost-user= on `zonevm disk serve`)
# and QEMU (virtio-blk-pci, aio=io_uring, cache=none) get the same kernel,
# initrd, vCPUs (2), memory (256 MiB), file and fio jobs.  Prints every run,
# the medians and the ratios zonevm/QEMU.  Figures only, no assertions.
# Environment: KIT (/kit), FIOIMG (/bench/fio.img), DATA (/data: a folder on
# a file system with O_DIRECT and room for the file), BLK_SIZE_MB (512),
# BLK_RUNTIME (seconds per fio job, 10), BLK_ENGINE (libaio).
set -u
runs=${1:-1}
KIT=${KIT:-/kit}
FIOIMG=${FIOIMG:-/bench/fio.img}
DATA=${DATA:-/data}
size_mb=${BLK_SIZE_MB:-512}
rt=${BLK_RUNTIME:-10}
eng=${BLK_ENGINE:-libaio}
K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vdb zbench.runtime=$rt zbench.engine=$eng"
D=$DATA/disk.img
out=$(mktemp)
log=$(mktemp)

# The run disk of tools/kvmhost has room for what --add carried: a
# placeholder reserved the space for the file under test.
rm -f "$DATA/space"
rm -f "$D"
fallocate -l "${size_mb}M" "$D" || { echo "blk: fallocate $D failed" >&2; exit 1; }
# Write every block once so that neither VMM reads unwritten extents (zeros
# without I/O) or pays for their conversion on its first writes.
dd if=/dev/zero of="$D" bs=1M count="$size_mb" conv=notrunc,fsync 2>/dev/null
echo "# file $D: $size_mb MiB, fallocate + written once; $(uname -r) host, $(nproc) CPUs"
echo "# fio in the guest: $eng, direct=1, iodepth=32, numjobs=1, ${rt}s per job"

run() { # label, command...
	label=$1
	shift
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	timeout $((rt * 4 + 300)) "$@" >"$log" 2>&1 </dev/null
	rc=$?
	tr -d '\r' <"$log" | sed -n 's/^zbench //p' >"$log.z"
	if ! grep -q "iops=" "$log.z"; then
		echo "$label: no figures (exit $rc); last lines:"
		tail -n 20 "$log" | sed 's/^/  /'
	fi
	sed "s/^/$label /" "$log.z"
	sed "s/^/$label /" "$log.z" >>"$out"
}

i=0
while [ "$i" -lt "$runs" ]; do
	run zonevm zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 256M \
		--disk "$D" --disk "$FIOIMG"
	# The same file through vhost-user-blk: zonevm disk serve (2 queues,
	# as the VMM gives 2 vCPUs) is the backend, the VMM only the frontend.
	rm -f "$DATA/v.sock"
	zonevm disk serve --vhost-user "$DATA/v.sock" --queues 2 "$D" 2>/dev/null &
	spid=$!
	for _ in $(seq 100); do [ -S "$DATA/v.sock" ] && break; sleep 0.1; done
	run vhost zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 256M \
		--disk "vhost-user=$DATA/v.sock" --disk "$FIOIMG"
	kill "$spid"
	wait "$spid"
	run qemu qemu-system-x86_64 -enable-kvm -cpu host -smp 2 -m 256 -nographic \
		-no-reboot -nodefaults -serial stdio -kernel "$K" -initrd "$I" -append "$C" \
		-drive file="$D",if=none,id=d0,format=raw,aio=io_uring,cache=none \
		-device virtio-blk-pci,drive=d0 \
		-drive file="$FIOIMG",if=none,id=d1,format=raw \
		-device virtio-blk-pci,drive=d1
	i=$((i + 1))
done

median() { # label, job, field
	grep "^$1 $2 " "$out" | grep -o "$3=[0-9]*" | cut -d= -f2 | sort -n |
		awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

echo
echo "virtio-blk, fio in the guest on /dev/vda ($size_mb MiB raw file), median of $runs run(s):"
printf '  %-13s %10s %9s %10s %9s %8s %10s %9s %8s\n' job zonevm-IOPS MiB/s qemu-IOPS MiB/s ratio \
	vhost-IOPS MiB/s vs-zonevm
for job in randread-4k randwrite-4k read-1M write-1M; do
	zi=$(median zonevm "$job" iops)
	zb=$(median zonevm "$job" bw_kib)
	qi=$(median qemu "$job" iops)
	qb=$(median qemu "$job" bw_kib)
	vi=$(median vhost "$job" iops)
	vb=$(median vhost "$job" bw_kib)
	awk -v j="$job" -v zi="$zi" -v zb="$zb" -v qi="$qi" -v qb="$qb" -v vi="$vi" -v vb="$vb" 'BEGIN {
		r = (qb > 0) ? sprintf("%.2f", zb / qb) : "n/a"
		rv = (zb > 0) ? sprintf("%.2f", vb / zb) : "n/a"
		printf "  %-13s %10d %9.1f %10d %9.1f %8s %10d %9.1f %8s\n", j, zi, zb / 1024, qi, qb / 1024, r, vi, vb / 1024, rv }'
done
echo "  ratio = zonevm/QEMU bandwidth (= IOPS ratio at a fixed block size); goal >= 1.0"
echo "  vhost = zonevm run --disk vhost-user= on zonevm disk serve, same file; vs-zonevm = vhost/zonevm"
rm -f "$out" "$log" "$log.z" "$D"
