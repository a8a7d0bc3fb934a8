#!/bin/sh
# netdev.sh - the virtio-net device, seen by two unmodified Debian guests
# of the guest kit on one nic tag (a host bridge): they ping each other and
# the host, the host pings them, and a TCP transfer (busybox nc) between
# them arrives byte for byte; once with the userspace data path and once
# with vhost-net, guest A each time with two vCPUs and two queue pairs
# (multiqueue).  Also: asking for vhost on a host without /dev/vhost-net is
# a clear error, and no tap is left behind.  Needs real KVM, tun,
# bridge and vhost_net (the emulated KVM host has them).
. "${TESTS:-/tests}/lib.sh"

K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet"
export ZONEVM_ROOT=$WORK/root
TAG=znet0
HOST_IP=10.77.0.1
A_IP=10.77.0.11
B_IP=10.77.0.12
BYTES=$((8 * 1024 * 1024))

mkdir -p "$ZONEVM_ROOT"
zonevm nictag create "$TAG" >"$WORK/nictag.log" 2>&1 &&
	ip addr add "$HOST_IP/24" dev "$TAG" && ip link set "$TAG" up
tap_check "nic tag $TAG created, host address $HOST_IP" $? "$WORK/nictag.log"

# Guest A: waits for B's pings and receives a file over TCP.
script_a=$(guest_script "
ip link set eth0 up
ip addr add $A_IP/24 dev eth0
echo mac=\$(cat /sys/class/net/eth0/address)
echo rxq=\$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)
ping -c 2 -W 5 $HOST_IP >/dev/null 2>&1 && echo ping_host=ok
nc -l -p 5000 >/tmp/recv
echo recv_bytes=\$(wc -c </tmp/recv)
echo recv_sha=\$(sha256sum </tmp/recv | cut -c1-64)
echo rx_packets=\$(cat /sys/class/net/eth0/statistics/rx_packets)
")

# Guest B: pings A and the host, then sends BYTES random bytes to A.
script_b=$(guest_script "
ip link set eth0 up
ip addr add $B_IP/24 dev eth0
i=0
until ping -c 1 -W 1 $A_IP >/dev/null 2>&1 || [ \$i -ge 60 ]; do i=\$((i + 1)); done
ping -c 3 -W 5 $A_IP >/dev/null 2>&1 && echo ping_peer=ok
ping -c 2 -W 5 $HOST_IP >/dev/null 2>&1 && echo ping_host=ok
dd if=/dev/urandom of=/tmp/send bs=1M count=$((BYTES / 1048576)) 2>/dev/null
echo sent_sha=\$(sha256sum </tmp/send | cut -c1-64)
i=0
until nc $A_IP 5000 </tmp/send || [ \$i -ge 20 ]; do sleep 1; i=\$((i + 1)); done
echo send_rc=\$?
")

# pair MODE FLAGS QUEUES: boot A (2 vCPUs, QUEUES queue pairs) and B with
# FLAGS on their NICs, the host pings A.
pair() {
	mode=$1
	flags=$2
	queues=$3
	la=$WORK/a.$mode.log
	lb=$WORK/b.$mode.log
	timeout 240 zonevm run --kernel "$K" --initrd "$I" --mem 256M --vmid "a$mode" \
		--cpus 2 --cmdline "$C zonevm.script=$script_a" \
		--nic "tag=$TAG,ip=$A_IP/24,queues=$queues$flags" </dev/null >"$la" 2>&1 &
	pid_a=$!
	timeout 240 zonevm run --kernel "$K" --initrd "$I" --mem 256M --vmid "b$mode" \
		--cmdline "$C zonevm.script=$script_b" \
		--nic "tag=$TAG,ip=$B_IP/24$flags" </dev/null >"$lb" 2>&1 &
	pid_b=$!
	host_ping=1
	i=0
	while [ $i -lt 120 ] && kill -0 $pid_a 2>/dev/null; do
		if ping -c 1 -W 1 "$A_IP" >/dev/null 2>&1; then
			host_ping=0
			break
		fi
		i=$((i + 1))
	done
	wait $pid_a
	rc_a=$?
	wait $pid_b
	rc_b=$?

	[ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && [ "$(guest_val "$la" ping_host)" = ok ] &&
		[ "$(guest_val "$lb" ping_host)" = ok ]
	tap_check "$mode: both guests boot with a NIC and ping the host" $? "$la" "$lb"
	[ "$(guest_val "$lb" ping_peer)" = ok ]
	tap_check "$mode: guest B pings guest A across the nic tag" $? "$lb"
	[ $host_ping -eq 0 ]
	tap_check "$mode: the host pings guest A" $? "$la"
	sent=$(guest_val "$lb" sent_sha)
	[ -n "$sent" ] && [ "$(guest_val "$la" recv_sha)" = "$sent" ] &&
		[ "$(guest_val "$la" recv_bytes)" = "$BYTES" ]
	tap_check "$mode: $BYTES bytes over TCP from B to A arrive intact (sha256)" $? "$la" "$lb"
	[ "$(guest_val "$la" rxq)" = "$queues" ]
	tap_check "$mode: guest A uses $queues queue pair(s) (VQ_PAIRS_SET with queues=$queues)" $? \
		"$la"
}

pair user "" 2
pair vhost ",vhost" 2

# MACs: generated, locally administered, stable for a VM id.
mac=$(guest_val "$WORK/a.user.log" mac)
case $mac in
?[26ae]:*) r=0 ;;
*) r=1 ;;
esac
tap_check "a generated MAC is locally administered ($mac)" $r "$WORK/a.user.log"

# vhost asked on a host without /dev/vhost-net: a clear error, nothing made.
log=$WORK/novhost.log
mv /dev/vhost-net /dev/vhost-net.off
timeout 60 zonevm run --kernel "$K" --initrd "$I" --vmid novh \
	--nic "tag=$TAG,vhost" </dev/null >"$log" 2>&1
rc=$?
mv /dev/vhost-net.off /dev/vhost-net
[ $rc -ne 0 ] && grep -q "/dev/vhost-net" "$log"
tap_check "vhost without /dev/vhost-net fails with a message naming it (exit $rc)" $? "$log"

sleep 1
left=$(ip -o link show | grep -c 'zvm' || true)
[ "$left" -eq 0 ]
tap_check "no zonevm tap is left after the VMs ended ($left)" $? /dev/null

zonevm nictag delete "$TAG" >/dev/null 2>&1
tap_end
