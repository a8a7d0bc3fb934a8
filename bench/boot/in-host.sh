#!/bin/sh
# in-host.sh [RUNS]: boot-time and memory benchmark, run where /dev/kvm is
# real KVM (inside tools/kvmhost on machines without it).  Same kernel,
# initrd, vCPUs (2) and memory (256 MiB) for zonevm and QEMU; prints every
# run, the medians and the ratios.  Figures only, no assertions.
set -u
runs=${1:-5}
KIT=${KIT:-/kit}
BOOTTIME=${BOOTTIME:-boottime}
K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet"
pat="zonevm-guest: up"
out=$(mktemp)

run() { # label, command...
	label=$1
	shift
	r=$("$BOOTTIME" "$pat" -- "$@")
	echo "$label $r"
	echo "$label $r" >>"$out"
}

i=0
while [ "$i" -lt "$runs" ]; do
	run zonevm zonevm run --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 256M
	run qemu-pc qemu-system-x86_64 -enable-kvm -cpu host -smp 2 -m 256 -nographic \
		-no-reboot -nodefaults -serial stdio -kernel "$K" -initrd "$I" -append "$C"
	run qemu-microvm qemu-system-x86_64 -M microvm,acpi=on -enable-kvm -cpu host -smp 2 \
		-m 256 -nographic -no-reboot -nodefaults -serial stdio -kernel "$K" -initrd "$I" \
		-append "$C"
	# QEMU with guest memory as zonevm keeps it: locked and populated
	# before the guest runs (zonevm never overcommits guest memory).
	run qemu-pc-locked qemu-system-x86_64 -enable-kvm -cpu host -smp 2 -m 256 -nographic \
		-no-reboot -nodefaults -serial stdio -overcommit mem-lock=on -mem-prealloc \
		-kernel "$K" -initrd "$I" -append "$C"
	i=$((i + 1))
done

median() { # label, field
	grep "^$1 " "$out" | grep -o "$2=[0-9-]*" | cut -d= -f2 | sort -n |
		awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

z=$(median zonevm boot_ms)
p=$(median qemu-pc boot_ms)
m=$(median qemu-microvm boot_ms)
l=$(median qemu-pc-locked boot_ms)
zr=$(median zonevm rss_kb)
pr=$(median qemu-pc rss_kb)
echo
echo "boot to first userspace line, median of $runs runs (2 vCPUs, 256 MiB):"
echo "  zonevm         $z ms"
echo "  qemu -M pc     $p ms"
echo "  qemu -M microvm $m ms"
echo "  qemu -M pc, memory locked + preallocated (-overcommit mem-lock=on -mem-prealloc) $l ms"
awk -v z="$z" -v p="$p" -v m="$m" -v l="$l" 'BEGIN {
	printf "  ratio zonevm/qemu-pc      %.2f (goal <= 0.80)\n", z / p
	printf "  ratio zonevm/qemu-microvm %.2f (goal <= 0.80)\n", z / m
	printf "  ratio zonevm/qemu-pc-locked %.2f (same memory policy as zonevm)\n", z / l }'
echo "resident memory when the guest reached userspace (median):"
awk -v zr="$zr" -v pr="$pr" 'BEGIN {
	printf "  zonevm RSS %d KiB; guest memory 262144 KiB (locked, all resident)\n", zr
	printf "  zonevm overhead (RSS - guest memory) %.1f MiB (goal <= 5 MiB)\n", (zr - 262144) / 1024
	printf "  qemu -M pc RSS %d KiB (guest memory touched on demand, not locked)\n", pr }'
rm -f "$out"
