#!/bin/sh
# in-host.sh: virtio-net benchmark, run where /dev/kvm is real KVM (inside
# tools/kvmhost on machines without it).  For each of four data paths,
# zonevm (userspace), zonevm (vhost), QEMU virtio-net-pci on a tap with
# vhost=off and vhost=on, it boots two guests of the guest kit (1 vCPU,
# 256 MiB each) on one host bridge and measures with iperf3 (TCP, T s):
# guest->host, host->guest, guest->guest, and the guest->host ping
# latency.  Same kernel, initrd, bridge and iperf3 for all.  zonevm's NICs
# come from `--nic` (nic tag, with its nftables anti-spoofing rules);
# QEMU's taps are plain taps on the same bridge.  Prints the figures and
# the ratios zonevm/QEMU for the same path (userspace vs vhost=off, vhost
# vs vhost=on).  Figures only, no assertions.
# Environment: KIT (/kit), IPERFIMG (iperf3 disk image), NET_TIME (5).
set -u
KIT=${KIT:-/kit}
IPERFIMG=${IPERFIMG:-/bench-net/iperf.img}
T=${NET_TIME:-5}
K=$KIT/vmlinuz
I=$KIT/initrd.img
W=$(mktemp -d)
export ZONEVM_ROOT=$W/root
TAG=znb0
HOST=10.78.0.1
A=10.78.0.11
B=10.78.0.12
out=$W/figures

mkdir -p "$ZONEVM_ROOT"
zonevm nictag create "$TAG" >/dev/null || exit 1
ip addr add "$HOST/24" dev "$TAG"
ip link set "$TAG" up
for t in qta qtb; do
	ip tuntap add dev $t mode tap
	ip link set $t master "$TAG" up
done
iperf3 -s -D -B "$HOST" || exit 1
cp "$IPERFIMG" "$W/a.img"
cp "$IPERFIMG" "$W/b.img"
echo "# $(uname -r) host, $(nproc) CPUs; guests: 1 vCPU, 256 MiB; iperf3 TCP ${T}s per figure"

cmdline() { # role ip
	echo "console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vda zbench.role=$1" \
		"zbench.ip=$2/24 zbench.host=$HOST zbench.peer=$A zbench.time=$T"
}

zonevm_guest() { # label role ip flags
	timeout 300 zonevm run --kernel "$K" --initrd "$I" --mem 256M --no-rng \
		--vmid "$2$1" --cmdline "$(cmdline "$2" "$3")" --disk "$W/$2.img" \
		--nic "tag=$TAG,ip=$3/24$4" </dev/null
}

qemu_guest() { # role ip tap vhost mac
	timeout 300 qemu-system-x86_64 -enable-kvm -cpu host -smp 1 -m 256 -nographic \
		-no-reboot -nodefaults -serial stdio -kernel "$K" -initrd "$I" \
		-append "$(cmdline "$1" "$2")" \
		-drive file="$W/$1.img",if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0 \
		-netdev tap,id=n0,ifname="$3",script=no,downscript=no,vhost="$4" \
		-device virtio-net-pci,netdev=n0,mac="$5" </dev/null
}

run() { # label: boots a and b with that data path
	label=$1
	case $label in
	zonevm-user)
		zonevm_guest u a "$A" "" >"$W/a.log" 2>&1 &
		zonevm_guest u b "$B" "" >"$W/b.log" 2>&1 ;;
	zonevm-vhost)
		zonevm_guest v a "$A" ",vhost" >"$W/a.log" 2>&1 &
		zonevm_guest v b "$B" ",vhost" >"$W/b.log" 2>&1 ;;
	qemu-vhost-off)
		qemu_guest a "$A" qta off 52:54:00:00:00:0a >"$W/a.log" 2>&1 &
		qemu_guest b "$B" qtb off 52:54:00:00:00:0b >"$W/b.log" 2>&1 ;;
	qemu-vhost-on)
		qemu_guest a "$A" qta on 52:54:00:00:00:0a >"$W/a.log" 2>&1 &
		qemu_guest b "$B" qtb on 52:54:00:00:00:0b >"$W/b.log" 2>&1 ;;
	esac
	wait
	cat "$W/a.log" "$W/b.log" | tr -d '\r' | sed -n 's/^zbench //p' >"$W/z"
	if ! grep -q "mbps=[0-9]" "$W/z"; then
		echo "$label: no figures; last lines:"
		tail -n 15 "$W/a.log" "$W/b.log" | sed 's/^/  /'
	fi
	sed "s/^/$label /" "$W/z"
	sed "s/^/$label /" "$W/z" >>"$out"
}

for l in zonevm-user zonevm-vhost qemu-vhost-off qemu-vhost-on; do
	run $l
done

fig() { # label name field
	grep "^$1 $2 " "$out" | grep -o "$3=[0-9.]*" | cut -d= -f2 | tail -n 1
}

echo
echo "virtio-net, iperf3 TCP (Mbit/s, receiver) and ping (ms), one run:"
printf '  %-12s %10s %10s %10s %10s %7s %7s\n' path zvm-user qemu-off ratio zvm-vhost \
	qemu-on ratio
for name in guest-host host-guest guest-guest ping; do
	f=mbps
	[ $name = ping ] && f=avg_ms
	zu=$(fig zonevm-user $name $f)
	qo=$(fig qemu-vhost-off $name $f)
	zv=$(fig zonevm-vhost $name $f)
	qn=$(fig qemu-vhost-on $name $f)
	awk -v n="$name" -v zu="${zu:-0}" -v qo="${qo:-0}" -v zv="${zv:-0}" -v qn="${qn:-0}" \
		-v lat="$([ $name = ping ] && echo 1 || echo 0)" 'BEGIN {
		# ratio: zonevm/QEMU for throughput, QEMU/zonevm for latency (> 1 = zonevm better)
		r1 = (zu > 0 && qo > 0) ? sprintf("%.2f", lat ? qo / zu : zu / qo) : "n/a"
		r2 = (zv > 0 && qn > 0) ? sprintf("%.2f", lat ? qn / zv : zv / qn) : "n/a"
		printf "  %-12s %10s %10s %10s %10s %7s %7s\n", n, zu, qo, r1, zv, qn, r2 }'
done
echo "  ratio = zonevm/QEMU throughput, QEMU/zonevm latency (>= 1.0: zonevm as good or better)"
kill "$(pidof iperf3)" 2>/dev/null
zonevm nictag delete "$TAG" >/dev/null 2>&1
ip link del qta
ip link del qtb
rm -rf "$W"
