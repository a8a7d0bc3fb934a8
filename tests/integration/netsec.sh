#!/bin/sh
# netsec.sh - the host side of guest networking (src/net): nic tags, the
# nftables anti-spoofing rules and their counters, the allow_* flags, VLAN
# isolation, DHCP by dnsmasq, max_bandwidth (tc), `zonevm nic`, and that
# nothing is left after a VM ends or its VMM is SIGKILLed.
#
# Guests here are network namespaces: tests/net/nicwire sets up each VM's
# NICs with libnet exactly as `zonevm run --nic` does (net_vm_setup +
# net_vm_guard) and carries frames between each tap and a veth whose peer
# is in the namespace, so the checks exercise the same kernel objects a
# virtio-net guest would meet.  Needs: zonevm, nicwire, ip, tc, nft,
# dnsmasq, iperf3 and busybox (udhcpc, ping, arping).
. "${TESTS:-/tests}/lib.sh"

NICWIRE=${NICWIRE:-$(command -v nicwire || echo "$TESTS/../../build/tests/net/nicwire")}
export ZONEVM_ROOT="$WORK/root"
chmod 755 "$WORK" # dnsmasq (user nobody) re-reads its hosts file under the root
bb=$(command -v busybox)

for m in tun veth bridge ifb sch_tbf sch_ingress act_mirred cls_u32 nf_tables \
	nft_meta_bridge; do
	modprobe "$m" 2>/dev/null
done
ip link set lo up

# check WHAT CMD...: one TAP line from a command's status.
check() {
	what=$1
	shift
	if "$@" >"$WORK/check.log" 2>&1; then
		tap_ok "$what"
	else
		tap_not_ok "$what"
		tap_diag "$WORK/check.log"
	fi
}
# refuse WHAT PATTERN CMD...: the command must fail with a message matching PATTERN.
refuse() {
	what=$1
	pat=$2
	shift 2
	if "$@" >"$WORK/check.log" 2>&1; then
		tap_not_ok "$what (it succeeded)"
	elif grep -Eq -- "$pat" "$WORK/check.log"; then
		tap_ok "$what"
	else
		tap_not_ok "$what (want /$pat/)"
		tap_diag "$WORK/check.log"
	fi
}
in_ns() {
	ns=$1
	shift
	ip netns exec "$ns" "$@"
}
# guest NAME: a namespace NAME with veth NAMEh (host side) <-> eth0 inside.
# The host's own stack must never take a frame from NAMEh (it would answer
# ARP for 10.9.0.1 there and let the "guest" bypass its tap): an nft
# netdev ingress chain dropping all on NAMEh does that, while nicwire's
# packet socket, served before ingress hooks, still gets every frame.
guest() {
	ip netns add "$1"
	ip link add "$1h" type veth peer name eth0 netns "$1"
	nft add chain netdev netsec "$1h" "{ type filter hook ingress device $1h priority 0; policy drop; }"
	ip link set "$1h" up
	in_ns "$1" ip link set lo up
	in_ns "$1" ip link set eth0 up
}
# vm VMID GUEST SPEC: nicwire holding the VM's NIC, wired to GUEST's veth;
# the guest's eth0 gets the NIC's MAC, as virtio-net would give it.
vm() {
	"$NICWIRE" wire "$1" "$2h:$3" >"$WORK/wire.$1" 2>&1 &
	eval "pid_$1=$!"
	for _ in $(seq 50); do
		if grep -q ready "$WORK/wire.$1"; then
			in_ns "$2" ip link set eth0 address "$(sed -n 's/^ready [^=]*=//p' "$WORK/wire.$1")"
			return
		fi
		kill -0 "$!" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/wire.$1" >&2
	return 1
}
# counter VMID NAME: one value of `zonevm nic stats VMID 0`.
counter() {
	zonevm nic stats "$1" 0 | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'
}
# moved VMID NAME CMD...: CMD makes counter NAME of VMID grow.
moved() {
	vmid=$1
	name=$2
	shift 2
	before=$(counter "$vmid" "$name")
	"$@" >/dev/null 2>&1
	after=$(counter "$vmid" "$name")
	echo "$name: $before -> $after"
	[ "${after:-0}" -gt "${before:-0}" ]
}
# rx_t0: packets the host bridge t0 received (frames that got through).
rx_t0() {
	ip -s link show dev t0 | awk '/RX:/ { getline; print $2 }'
}
# passes CMD...: CMD's frame reaches the host bridge (t0's rx count grows).
passes() {
	before=$(rx_t0)
	"$@" >/dev/null 2>&1
	sleep 0.2
	after=$(rx_t0)
	echo "t0 rx_packets: $before -> $after"
	[ "$after" -gt "$before" ]
}
# stays CMD...: CMD's frame does not reach the host bridge.
stays() { ! passes "$@"; }
# leftovers VMID: print the VM's links, nft table and record, if any.
leftovers() {
	ip -o link show | grep -o "zvm$1[ni][0-9]*" || true
	nft list tables 2>/dev/null | grep "zonevm_$1\$" || true
	ls "$ZONEVM_ROOT/netvms/$1.json" 2>/dev/null || true
}
gone() {
	for _ in $(seq 50); do
		[ -z "$(leftovers "$1")" ] && return 0
		sleep 0.1
	done
	leftovers "$1"
	return 1
}

# Raw frames (hex) sent by `nicwire send` from a guest's eth0.
BC=ffffffffffff
arp_frame() { # SRC_MAC SENDER_MAC SENDER_IP(hex)
	echo "$BC $1 0806 0001 0800 06 04 0001 $2 $3 000000000000 0a090001"
}
dhcp_server_frame() { # SRC_MAC SRC_IP(hex): UDP 67 -> 68, an "offer" from the guest
	echo "$BC $1 0800 4500 0024 0000 0000 4011 0000 $2 ffffffff 0043 0044 0010 0000 0201060000000000"
}
ethertype_frame() { # SRC_MAC: EtherType 0x88b5 (local experimental)
	echo "$BC $1 88b5 7a6f6e65766d"
}
ip6_frame() { # SRC_MAC SRC_IP6(hex): ICMPv6 echo request to ff02::1
	echo "333300000001 $1 86dd 6000 0000 0008 3a40 $2 ff020000000000000000000000000001 8000 0000 0000 0000"
}
tagged_ip_frame() { # SRC_MAC SRC_IP(hex): 802.1Q-tagged (VID 1) ICMP echo to 10.9.0.1
	echo "$BC $1 8100 0001 0800 4500 001c 0000 0000 4001 0000 $2 0a090001 0800 f7ff 0000 0000"
}

# --- nic tags ------------------------------------------------------------
check "nictag create t0 (bridge, host address 10.9.0.1/24)" \
	zonevm nictag create t0 --address 10.9.0.1/24
check "the bridge exists with its address" sh -c 'ip -o addr show t0 | grep -q 10.9.0.1/24'
ip link del t0
check "nictag list shows t0 with its bridge missing" sh -c 'zonevm nictag list | grep -E "^t0 .*missing"'
refuse "nictag create refuses a tag that exists" "already exists" zonevm nictag create t0
refuse "nictag create refuses a bad name" "reserved" zonevm nictag create zvmx
refuse "nictag create refuses a missing uplink" "uplink nosuch" zonevm nictag create t9 --uplink nosuch

nft add table netdev netsec
for g in ga gb gc1 gc2 gc3 gc4 gd ge gf gg; do ip netns del $g 2>/dev/null; guest $g; done

# --- bad input: refused before anything is created ------------------------
check "VM a: NIC on t0 (the bridge is recreated from the record)" \
	vm a ga "tag=t0,mac=02:00:00:00:0a:01,ip=10.9.0.11/24,gateway=10.9.0.1,resolvers=10.9.0.53;1.1.1.1"
check "t0 recreated with its address" sh -c 'ip -o addr show t0 | grep -q 10.9.0.1/24'
refuse "unknown nic tag refused" 'unknown nic tag "nope"' "$NICWIRE" wire x gbh:tag=nope
refuse "malformed MAC refused" 'mac "02:00:00:00:00"' "$NICWIRE" wire x gbh:tag=t0,mac=02:00:00:00:00
refuse "malformed CIDR refused" 'ip "10.9.0.300/24"' "$NICWIRE" wire x gbh:tag=t0,ip=10.9.0.300/24
refuse "malformed rate refused" 'max_bandwidth "50Q"' "$NICWIRE" wire x gbh:tag=t0,max_bandwidth=50Q
refuse "VLAN out of range refused" 'vlan "4095"' "$NICWIRE" wire x gbh:tag=t0,vlan=4095
refuse "a MAC used on t0 by another VM refused" "already used on nic tag t0 by vm a" \
	"$NICWIRE" wire x gbh:tag=t0,mac=02:00:00:00:0a:01
refuse "a second VM with a running VM's id refused" "vm a: in use" \
	"$NICWIRE" wire a gbh:tag=t0
check "nothing created by the refused VMs" sh -c "[ -z \"\$(ip -o link | grep zvmx)\" ] && ! nft list table bridge zonevm_x"
check "VM b: NIC on t0" vm b gb "tag=t0,mac=02:00:00:00:0b:01,ip=10.9.0.12/24"
refuse "nictag delete refused while NICs use t0" "still attached" zonevm nictag delete t0

# --- DHCP -------------------------------------------------------------------
cat >"$WORK/udhcpc.sh" <<'EOS'
#!/bin/sh
[ "$1" = bound ] || exit 0
echo "ip=$ip subnet=$subnet router=$router dns=$dns" >"$LEASE"
ip addr add "$ip/$mask" dev "$interface"
EOS
chmod +x "$WORK/udhcpc.sh"
# lease GUEST WANT: udhcpc in GUEST gets exactly WANT.
lease() {
	rm -f "$WORK/lease.$1"
	in_ns "$1" env LEASE="$WORK/lease.$1" "$bb" udhcpc -i eth0 -n -q -f -t 4 -T 1 \
		-s "$WORK/udhcpc.sh"
	got=$(cat "$WORK/lease.$1" 2>/dev/null)
	echo "got: $got"
	[ "$got" = "$2" ] || { tail -5 "$ZONEVM_ROOT/nictags/t0.dhcp-log"; cat "$ZONEVM_ROOT/nictags/t0.dhcp-hosts"; false; }
}
check "DHCP gives VM a its ip, netmask, gateway and resolvers" \
	lease ga "ip=10.9.0.11 subnet=255.255.255.0 router=10.9.0.1 dns=10.9.0.53 1.1.1.1"
check "DHCP gives VM b its ip (no gateway, no resolvers)" \
	lease gb "ip=10.9.0.12 subnet=255.255.255.0 router= dns="
# --- connectivity -----------------------------------------------------------
check "VM a pings the host" in_ns ga "$bb" ping -c 2 -W 2 10.9.0.1
check "VM a pings VM b" in_ns ga "$bb" ping -c 2 -W 2 10.9.0.12
check "the host pings VM b" "$bb" ping -c 2 -W 2 10.9.0.12

# --- anti-spoofing: each attempt stopped, its counter moves ----------------
in_ns ga ip addr add 10.9.0.99/32 dev eth0
check "foreign source IP dropped (drop_ip moves)" moved a drop_ip in_ns ga "$bb" ping -c 1 -W 1 -I 10.9.0.99 10.9.0.1
check "... and the ping does not get through" sh -c "! ip netns exec ga $bb ping -c 1 -W 1 -I 10.9.0.99 10.9.0.1"
in_ns ga ip addr del 10.9.0.99/32 dev eth0
in_ns ga ip link set eth0 address 02:00:00:00:0a:99
check "changed MAC dropped (drop_mac moves)" moved a drop_mac in_ns ga "$bb" ping -c 1 -W 1 10.9.0.1
in_ns ga ip link set eth0 address 02:00:00:00:0a:01
check "forged ARP sender IP dropped (drop_arp moves)" moved a drop_arp \
	in_ns ga "$NICWIRE" send eth0 "$(arp_frame 020000000a01 020000000a01 0a09000c)"
check "forged ARP sender MAC dropped (drop_arp moves)" moved a drop_arp \
	in_ns ga "$NICWIRE" send eth0 "$(arp_frame 020000000a01 020000000a77 0a09000b)"
check "DHCP server reply from the guest dropped (drop_dhcp moves)" moved a drop_dhcp \
	in_ns ga "$NICWIRE" send eth0 "$(dhcp_server_frame 020000000a01 0a09000b)"
check "non-IP ethertype dropped (drop_restricted moves)" moved a drop_restricted \
	in_ns ga "$NICWIRE" send eth0 "$(ethertype_frame 020000000a01)"
check "a blocked non-IP frame never reaches the bridge" sh -c \
	"! { before=\$(ip -s link show dev t0 | awk '/RX:/ { getline; print \$2 }'); ip netns exec ga $NICWIRE send eth0 '$(ethertype_frame 020000000a01)'; sleep 0.2; [ \$(ip -s link show dev t0 | awk '/RX:/ { getline; print \$2 }') -gt \$before ]; }"

check "foreign IPv6 source dropped (drop_ip moves)" moved a drop_ip \
	in_ns ga "$NICWIRE" send eth0 "$(ip6_frame 020000000a01 20010db8000000000000000000000099)"
check "IPv6 from the link-local address of the NIC's MAC gets through" passes \
	in_ns ga "$NICWIRE" send eth0 "$(ip6_frame 020000000a01 fe80000000000000000000fffe000a01)"

# --- the allow flags lift each block (one VM per flag) ------------------------
check "VM c1: allow_ip_spoofing" vm c1 gc1 "tag=t0,mac=02:00:00:00:c1:01,ip=10.9.0.21/24,allow_ip_spoofing"
check "VM c2: allow_mac_spoofing" vm c2 gc2 "tag=t0,mac=02:00:00:00:c2:01,ip=10.9.0.22/24,allow_mac_spoofing"
check "VM c3: allow_dhcp_spoofing" vm c3 gc3 "tag=t0,mac=02:00:00:00:c3:01,ip=10.9.0.23/24,allow_dhcp_spoofing"
check "VM c4: allow_restricted_traffic" vm c4 gc4 "tag=t0,mac=02:00:00:00:c4:01,ip=10.9.0.24/24,allow_restricted_traffic"
for i in 1 2 3 4; do in_ns gc$i ip addr add 10.9.0.2$i/24 dev eth0; done
in_ns gc1 ip addr add 10.9.0.98/32 dev eth0
check "allow_ip_spoofing: a foreign source IP gets through" in_ns gc1 "$bb" ping -c 2 -W 2 -I 10.9.0.98 10.9.0.1
check "allow_ip_spoofing: a foreign IPv6 source gets through" passes \
	in_ns gc1 "$NICWIRE" send eth0 "$(ip6_frame 02000000c101 20010db8000000000000000000000098)"
in_ns gc2 ip link set eth0 address 02:00:00:00:c2:77
check "allow_mac_spoofing: a changed MAC gets through" in_ns gc2 "$bb" ping -c 2 -W 2 10.9.0.1
check "allow_mac_spoofing: forged ARP sender MAC gets through" passes \
	in_ns gc2 "$NICWIRE" send eth0 "$(arp_frame 02000000c277 02000000c255 0a090016)"
check "DHCP does not answer a MAC that is not a zonevm NIC's" sh -c \
	"! ip netns exec gc2 $bb udhcpc -i eth0 -n -q -f -t 3 -T 1 -s /bin/true"
check "allow_dhcp_spoofing: a DHCP server reply gets through" passes \
	in_ns gc3 "$NICWIRE" send eth0 "$(dhcp_server_frame 02000000c301 0a090017)"
check "allow_restricted_traffic: a non-IP ethertype gets through" passes \
	in_ns gc4 "$NICWIRE" send eth0 "$(ethertype_frame 02000000c401)"
check "the lifted blocks count nothing (c1 ip, c2 mac+arp, c3 dhcp, c4 restricted)" sh -c \
	"zonevm nic stats c1 0 | grep -q 'drop_ip 0' && zonevm nic stats c2 0 | grep -q 'drop_mac 0' &&
	 zonevm nic stats c2 0 | grep -q 'drop_arp 0' && zonevm nic stats c3 0 | grep -q 'drop_dhcp 0' &&
	 zonevm nic stats c4 0 | grep -q 'drop_restricted 0'"
# A tag would carry IPv4 past the rules, which match the outer EtherType.
check "allow_restricted_traffic: an 802.1Q-tagged IPv4 frame is still dropped (drop_restricted moves)" \
	moved c4 drop_restricted in_ns gc4 "$NICWIRE" send eth0 "$(tagged_ip_frame 02000000c401 0a090060)"
check "... and it never reaches the bridge" \
	stays in_ns gc4 "$NICWIRE" send eth0 "$(tagged_ip_frame 02000000c401 0a090060)"
check "the other blocks still hold on an allow VM (c4: foreign IP dropped)" moved c4 drop_ip \
	sh -c "ip netns exec gc4 $bb ping -c 1 -W 2 10.9.0.1; ip netns exec gc4 ip addr add 10.9.0.97/32 dev eth0; ip netns exec gc4 $bb ping -c 1 -W 1 -I 10.9.0.97 10.9.0.1"

# --- counters -----------------------------------------------------------------
check "nic stats: rx/tx packets counted" sh -c \
	"zonevm nic stats a 0; [ \$(zonevm nic stats a 0 | awk '/tx_packets/ {print \$2}') -gt 0 ]"
check "nic stats --json" sh -c \
	"zonevm nic stats a --json | tee /dev/stderr | grep -Eq '\"vmid\":\"a\",\"nics\":\\[\\{\"index\":0,\"tap\":\"zvman0\".*\"drops\":\\{\"mac\":[1-9]'"
check "nic list shows the running NICs" sh -c "zonevm nic list | grep -E '^a +0 +zvman0 +t0 +02:00:00:00:0a:01 +10.9.0.11/24'"

# --- VLANs ---------------------------------------------------------------------
check "VM d on vlan 10 of t0" vm d gd "tag=t0,ip=10.9.1.21/24,vlan=10"
check "VM e on vlan 10 of t0" vm e ge "tag=t0,ip=10.9.1.22/24,vlan=10"
check "VM f on vlan 20 of t0" vm f gf "tag=t0,ip=10.9.1.23/24,vlan=20"
in_ns gd ip addr add 10.9.1.21/24 dev eth0
in_ns ge ip addr add 10.9.1.22/24 dev eth0
in_ns gf ip addr add 10.9.1.23/24 dev eth0
check "same VLAN: d pings e" in_ns gd "$bb" ping -c 2 -W 2 10.9.1.22
check "other VLAN: d cannot reach f" sh -c "! ip netns exec gd $bb ping -c 2 -W 1 10.9.1.23"
check "untagged VM a cannot reach VLAN 10" sh -c \
	"ip netns exec ga ip addr add 10.9.1.11/24 dev eth0; ! ip netns exec ga $bb ping -c 2 -W 1 10.9.1.21"
check "untagged VMs still reach each other with VLAN filtering on" in_ns ga "$bb" ping -c 1 -W 2 10.9.0.12

# --- max_bandwidth ---------------------------------------------------------------
# rate MBITS DIRECTION: iperf3 over VM g's NIC, receiver's Mbit/s
check "VM g: max_bandwidth=50M" vm g gg "tag=t0,ip=10.9.0.17/24,max_bandwidth=50M"
in_ns gg ip addr add 10.9.0.17/24 dev eth0
check "tc: tbf on the tap, ingress redirected to an ifb with tbf" sh -c \
	"tc qdisc show dev zvmgn0; tc qdisc show dev zvmgi0; tc qdisc show dev zvmgn0 | grep -q 'tbf.*rate 50Mbit' && tc qdisc show dev zvmgi0 | grep -q 'tbf.*rate 50Mbit'"
iperf3 -s -B 10.9.0.1 -D -I "$WORK/iperf3.pid" >/dev/null 2>&1
sleep 0.5
bw() { # extra iperf3 args: Mbit/s the receiver measured
	in_ns gg iperf3 -c 10.9.0.1 -t 4 -O 1 -f m "$@" 2>&1 | tee -a "$WORK/iperf3.log" |
		awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }'
}
within() { # NAME VALUE: within 10% of 50
	echo "$1: ${2:-none} Mbit/s (cap 50)"
	[ -n "$2" ] && awk -v v="$2" 'BEGIN { exit !(v >= 45 && v <= 55) }'
}
# A figure below 45 is measured again (up to 3 tries): the machine is shared.
bw_try() { # extra iperf3 args
	for _ in 1 2 3; do
		v=$(bw "$@")
		awk -v v="${v:-0}" 'BEGIN { exit !(v >= 45) }' && break
	done
	echo "$v"
}
# cap_check WHAT CAPPED UNCAPPED: above 55 always fails (the cap leaks);
# 45-55 passes; below 45 fails unless the same path without the cap carries
# less than 75 Mbit/s at this moment (a loaded machine cannot show the
# lower bound: that check is then reported as skipped, with both figures).
cap_check() {
	if within "$1" "$2" >/dev/null; then
		tap_ok "$1: $2 Mbit/s (45-55)"
	elif awk -v v="${2:-0}" -v f="${3:-0}" 'BEGIN { exit !(v > 0 && v < 45 && f > 0 && f < 75) }'; then
		tap_ok "$1: $2 Mbit/s, at most 55 # SKIP lower bound: without the cap this path carries only $3 Mbit/s now"
	else
		tap_not_ok "$1: ${2:-none} Mbit/s (45-55; ${3:-not measured} Mbit/s without the cap)"
		return 1
	fi
}
# uncap TAP IFB: remove a NIC's qdiscs, to measure the path without its cap.
uncap() {
	tc qdisc del dev "$1" root 2>/dev/null
	tc qdisc del dev "$1" ingress 2>/dev/null
	tc qdisc del dev "$2" root 2>/dev/null
}
up=$(bw_try)
down=$(bw_try -R)
free_up=
free_down=
if ! within "guest->host" "$up" >/dev/null || ! within "host->guest" "$down" >/dev/null; then
	uncap zvmgn0 zvmgi0
	free_up=$(bw)
	free_down=$(bw -R)
fi
cap_check "guest -> host within 10% of max_bandwidth=50M" "$up" "$free_up"
cap_check "host -> guest within 10% of max_bandwidth=50M" "$down" "$free_down"
kill "$(cat "$WORK/iperf3.pid" 2>/dev/null)" 2>/dev/null
echo "# max_bandwidth=50M: guest->host $up Mbit/s, host->guest $down Mbit/s${free_up:+ (without the cap: $free_up and $free_down)}"

# --- teardown -------------------------------------------------------------------------
kill -TERM "$pid_b"
wait "$pid_b"
check "VM b ended: no tap, nft table or record left" gone b
check "DHCP hosts no longer list VM b" sh -c "! grep -q 02:00:00:00:0b:01 $ZONEVM_ROOT/nictags/t0.dhcp-hosts"
kill -KILL "$pid_g"
check "VM g SIGKILLed: the guard removes tap, ifb, qdiscs, table, record" gone g
all_gone() {
	for v in a c1 c2 c3 c4 d e f; do gone $v || return 1; done
}
for v in a c1 c2 c3 c4 d e f; do eval "kill -KILL \$pid_$v"; done
check "all VMs SIGKILLed: nothing left" all_gone
sleep 1
check "no zonevm link, table or dnsmasq left" sh -c \
	"ip -o link | grep zvm; nft list tables | grep zonevm_; pidof dnsmasq; [ -z \"\$(ip -o link | grep zvm)\$(nft list tables | grep zonevm_)\$(pidof dnsmasq)\" ]"
check "nictag delete t0 once no NIC uses it" zonevm nictag delete t0
check "t0's bridge is gone" sh -c "! ip link show t0"
check "no file of t0 left under the root (record, DHCP conf, hosts, leases, log)" sh -c \
	"ls $ZONEVM_ROOT/nictags/; [ -z \"\$(ls $ZONEVM_ROOT/nictags/ | grep '^t0\.')\" ]"

# --- real Debian guests (zonevm run --nic) ------------------------------------
# Four unmodified Debian guests of the guest kit on nic tag t1.  Each runs a
# role script from its own ext4 disk, which also holds iperf3 and nicwire
# with their libraries (the kit mounts vda at /mnt and runs zonevm-run.sh;
# the role comes from netsec.role= on the kernel command line):
#   r1 (no allow flags, max_bandwidth=50M) and r2 (allow_ip_spoofing,
#   allow_mac_spoofing, allow_restricted_traffic): DHCP, ping the host, then
#   a foreign source IP, ARP with a foreign sender IP, a DHCP server, a
#   changed MAC and raw frames of a non-IP ethertype (`nicwire send`); r1
#   then measures its cap with iperf3.
#   r3 and r4 on vlan 10 (static addresses, as dnsmasq serves VLAN 1 only):
#   r3 reaches r4 but neither the host nor two namespace guests on vlan 20;
#   r2 (untagged) then reaches the host but not r3 or r4.
# Gates order the steps: the host adds 10.9.2.250 to t1 once r3 and r4 are
# done (r2 waits for it before trying vlan 10); once r2, r3 and r4 are done
# the host checks what they did, SIGKILLs their VMMs and adds 10.9.2.251
# (r1 waits for it, so iperf3 runs alone).  The guards clean up.
check "nictag create t1 (10.9.2.1/24)" zonevm nictag create t1 --address 10.9.2.1/24
for g in gv1 gv2; do ip netns del $g 2>/dev/null; guest $g; done
check "namespace guest v1 on vlan 20 of t1" vm v1 gv1 "tag=t1,ip=10.9.2.43/24,vlan=20"
check "namespace guest v2 on vlan 20 of t1" vm v2 gv2 "tag=t1,ip=10.9.2.44/24,vlan=20"
in_ns gv1 ip addr add 10.9.2.43/24 dev eth0
in_ns gv2 ip addr add 10.9.2.44/24 dev eth0
check "namespace guests on vlan 20 reach each other" in_ns gv1 "$bb" ping -c 2 -W 2 10.9.2.44
# Frames of EtherType 0x88b5 entering t1 from r1's or r2's tap, counted by the
# host's bridge on local delivery (after the guests' rules at prerouting).
nft -f - <<'EON'
table bridge netsec_obs {
	counter r1 { }
	counter r2 { }
	counter r2q { }
	counter r1a { }
	counter r2a { }
	chain in {
		type filter hook input priority 0; policy accept;
		iifname "zvmr1n0" ether type 0x88b5 counter name "r1"
		iifname "zvmr2n0" ether type 0x88b5 counter name "r2"
		iifname "zvmr2n0" ether type 8021q counter name "r2q"
		iifname "zvmr2n0" udp sport 67 counter name "r2q"
		iifname "zvmr1n0" arp saddr ether 02:00:00:00:77:77 counter name "r1a"
		iifname "zvmr2n0" arp saddr ether 02:00:00:00:77:77 counter name "r2a"
	}
}
EON
obs() { nft list counter bridge netsec_obs "$1" | awk '/packets/ { print $2 }'; }

real_body='
mac0=$(cat /sys/class/net/eth0/address)
cat >/tmp/dhcp.sh <<EOS
#!/bin/sh
[ "\$1" = bound ] || exit 0
echo "\$ip/\$mask,\$router,\$dns" | tr " " ";" >/tmp/lease
ip addr add \$ip/\$mask dev \$interface
EOS
chmod +x /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -n -q -f -t 8 -T 2 -s /tmp/dhcp.sh >/dev/null 2>&1
echo lease=$(cat /tmp/lease)
ping -c 2 -W 3 10.9.2.1 >/dev/null 2>&1 && echo ping_host=ok
ip addr add 10.9.2.99/32 dev eth0
if ping -c 2 -W 2 -I 10.9.2.99 10.9.2.1 >/dev/null 2>&1; then echo spoof_ip=passed; else echo spoof_ip=blocked; fi
if arping -c 2 -w 3 -I eth0 -s 10.9.2.99 10.9.2.1 >/dev/null 2>&1; then echo spoof_arp=passed; else echo spoof_arp=blocked; fi
ip addr del 10.9.2.99/32 dev eth0
printf "start 10.9.2.200\nend 10.9.2.210\ninterface eth0\nlease_file /tmp/udhcpd.leases\nopt router 10.9.2.99\n" >/tmp/udhcpd.conf
: >/tmp/udhcpd.leases
udhcpd /tmp/udhcpd.conf && echo dhcp_server=started
sleep 2
for i in 1 2 3 4; do udhcpc -i eth0 -n -q -t 1 -T 1 -s /bin/true >/dev/null 2>&1; sleep 1; done
ip link set eth0 address 02:00:00:00:99:99
if ping -c 2 -W 2 10.9.2.1 >/dev/null 2>&1; then echo spoof_mac=passed; else echo spoof_mac=blocked; fi
ip link set eth0 address $mac0
m=$(echo $mac0 | tr -d :)
n=0
for i in 1 2 3; do $NW send eth0 "ffffffffffff $m 88b5 7a6f6e65766d" && n=$((n + 1)); done
echo restricted_sent=$n
l=$(cat /tmp/lease)
a=$(printf "%02x" $(echo ${l%%/*} | tr . " "))
n=0
for i in 1 2; do $NW send eth0 "ffffffffffff $m 0806 0001 0800 06 04 0001 020000007777 $a 000000000000 0a090201" && n=$((n + 1)); done
echo arp_mac_sent=$n
'
# r1 measures its max_bandwidth=50M once the other guests are done.
# A figure below 45 is measured again (3 tries: the machine is shared); if
# one stays below, the host removes the cap (gate 10.9.2.252) and r1
# measures the same path without it (see cap_check).
bw_body='
gate 10.9.2.251
ping -c 1 -W 3 10.9.2.1 >/dev/null 2>&1
iperf() { $I -c 10.9.2.1 -t 7 -O 2 -f m "$@" 2>&1 | awk "/receiver/ { print \$(NF - 2) }"; }
low=no
for d in up down; do
	a=; [ $d = down ] && a=-R
	for t in 1 2 3; do
		v=$(iperf $a)
		echo bw_${d}_try$t=$v
		awk -v v="${v:-0}" "BEGIN { exit !(v >= 45) }" && break
	done
	awk -v v="${v:-0}" "BEGIN { exit !(v > 55 || v < 45) }" && low=yes
	echo bw_$d=$v
done
echo bw_uncap=$low
if [ $low = yes ]; then
	gate 10.9.2.252
	echo bw_free_up=$(iperf)
	echo bw_free_down=$(iperf -R)
fi
'
# reached ADDR...: the addresses that answer a ping, or "none".
# r2, untagged, tries vlan 10 once r3 and r4 have their addresses.
untagged_body='
n=0
for i in 1 2 3; do $NW send eth0 "ffffffffffff $m 8100 0000 0800 4500 0024 0000 0000 4011 0000 0a090220 ffffffff 0043 0044 0010 0000 0201060000000000" && n=$((n + 1)); done
echo tagged_sent=$n
gate 10.9.2.250
ping -c 2 -W 3 10.9.2.1 >/dev/null 2>&1 && echo gated_ping_host=ok
echo untagged_reached=$(reached 10.9.2.41 10.9.2.42)
'
vlan_body='
ip link set eth0 up
ip addr add $1/24 dev eth0
[ -z "$2" ] && exit 0
s=no
for i in $(seq 60); do ping -c 1 -W 1 $2 >/dev/null 2>&1 && { s=yes; break; }; done
echo vlan_same=$s
echo vlan10_reached=$(reached 10.9.2.1 10.9.2.43 10.9.2.44)
'
st=$WORK/guest-root
mkdir -p "$st/bin" "$st/lib" "$st/lib64"
cp -L /lib64/ld-linux-x86-64.so.2 "$st/lib64/"
for p in iperf3 nicwire; do
	b=$(command -v $p || echo "$NICWIRE")
	cp "$b" "$st/bin/$p"
	/lib64/ld-linux-x86-64.so.2 --list "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
		while read -r l; do cp -L "$l" "$st/lib/"; done
done
printf '%s\n' "$real_body" "$bw_body" >"$st/r1.sh"
printf '%s\n' "$real_body" "$untagged_body" >"$st/r2.sh"
printf '%s\n' "$vlan_body" >"$st/vlan.sh"
cat >"$st/zonevm-run.sh" <<'EOS'
L="/mnt/lib64/ld-linux-x86-64.so.2 --library-path /mnt/lib"
I="$L /mnt/bin/iperf3"
NW="$L /mnt/bin/nicwire"
gate() { # IP: wait until the host adds IP to t1
	for i in $(seq 100); do ping -c 1 -W 1 $1 >/dev/null 2>&1 && return 0; sleep 1; done
	echo gate_$1=timeout
}
reached() {
	r=
	for a in "$@"; do ping -c 2 -W 1 $a >/dev/null 2>&1 && r="$r$a,"; done
	echo ${r:-none}
}
role=$(sed -n 's/.*netsec\.role=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
case $role in
r3) (set -- 10.9.2.41 10.9.2.42 && . ./vlan.sh) ;;
r4) (set -- 10.9.2.42 && . ./vlan.sh) ;;
*) . ./$role.sh ;;
esac
echo guest_done=yes
sleep 600
EOS
chmod 755 "$st/zonevm-run.sh"
check "an ext4 disk with iperf3, nicwire and the role scripts for each real guest" sh -c \
	"for r in r1 r2 r3 r4; do mke2fs -q -F -t ext4 -O ^has_journal -m 0 -b 4096 -d $st $WORK/\$r.img 48M || exit 1; done"
iperf3 -s -B 10.9.2.1 -D -I "$WORK/iperf3-t1.pid" >/dev/null 2>&1
# real VMID MEM NIC: boot a real guest with role VMID, its disk and NIC.
real() {
	zonevm run --kernel "$KIT/vmlinuz" --initrd "$KIT/initrd.img" --mem "$2" --vmid "$1" \
		--disk "$WORK/$1.img" \
		--cmdline "console=ttyS0 panic=-1 quiet zonevm.scriptdisk=vda netsec.role=$1" \
		--nic "$3" </dev/null >"$WORK/$1.log" 2>&1 &
	eval "pid_$1=$!"
}
real r1 256M "tag=t1,ip=10.9.2.31/24,gateway=10.9.2.1,resolvers=10.9.2.53,max_bandwidth=50M"
real r2 256M "tag=t1,ip=10.9.2.32/24,allow_ip_spoofing,allow_mac_spoofing,allow_restricted_traffic"
real r3 128M "tag=t1,ip=10.9.2.41/24,vlan=10"
real r4 128M "tag=t1,ip=10.9.2.42/24,vlan=10"
done_() { [ "$(guest_val "$WORK/$1.log" guest_done)" = yes ]; }
# Until r2, r3 and r4 are done and r1 waits for its iperf3 gate.
for _ in $(seq 300); do
	if done_ r3 && done_ r4 && ! ip -o addr show t1 | grep -q 10.9.2.250/; then
		ip addr add 10.9.2.250/24 dev t1
	fi
	done_ r2 && done_ r3 && done_ r4 &&
		[ -n "$(guest_val "$WORK/r1.log" arp_mac_sent)" ] && break
	for r in r1 r2 r3 r4; do
		eval "kill -0 \$pid_$r" 2>/dev/null || { echo "# VMM $r ended"; break 2; }
	done
	sleep 1
done
[ "$(guest_val "$WORK/r1.log" lease)" = "10.9.2.31/24,10.9.2.1,10.9.2.53" ]
tap_check "real guest r1: DHCP gives its ip, gateway and resolver" $? "$WORK/r1.log"
[ "$(guest_val "$WORK/r2.log" lease)" = "10.9.2.32/24,," ]
tap_check "real guest r2: DHCP gives its ip (no gateway, no resolvers)" $? "$WORK/r2.log"
[ "$(guest_val "$WORK/r1.log" ping_host)" = ok ] && [ "$(guest_val "$WORK/r2.log" ping_host)" = ok ]
tap_check "real guests ping the host" $? "$WORK/r1.log" "$WORK/r2.log"
[ "$(guest_val "$WORK/r1.log" spoof_ip)" = blocked ] && [ "$(counter r1 drop_ip)" -gt 0 ]
tap_check "real guest r1: foreign source IP blocked, drop_ip $(counter r1 drop_ip)" $? "$WORK/r1.log"
[ "$(guest_val "$WORK/r1.log" spoof_mac)" = blocked ] && [ "$(counter r1 drop_mac)" -gt 0 ]
tap_check "real guest r1: changed MAC blocked, drop_mac $(counter r1 drop_mac)" $? "$WORK/r1.log"
[ "$(guest_val "$WORK/r2.log" spoof_ip)" = passed ] && [ "$(guest_val "$WORK/r2.log" spoof_mac)" = passed ]
tap_check "real guest r2: allow_ip_spoofing and allow_mac_spoofing let both through" $? "$WORK/r2.log"
[ "$(guest_val "$WORK/r1.log" spoof_arp)" = blocked ] && [ "$(counter r1 drop_arp)" -gt 0 ]
tap_check "real guest r1: ARP with a foreign sender IP (arping -s) blocked, drop_arp $(counter r1 drop_arp)" $? "$WORK/r1.log"
[ "$(guest_val "$WORK/r2.log" spoof_arp)" = passed ]
tap_check "real guest r2: allow_ip_spoofing lets the same ARP through" $? "$WORK/r2.log"
# Two ARP frames with a foreign sender MAC from each (nicwire on its disk).
a1=$(obs r1a)
[ "$(guest_val "$WORK/r1.log" arp_mac_sent)" = 2 ] && [ "$a1" = 0 ] && [ "$(counter r1 drop_arp)" -gt 0 ]
tap_check "real guest r1: ARP with a foreign sender MAC blocked, reached t1 $a1, drop_arp $(counter r1 drop_arp)" $? "$WORK/r1.log"
a2=$(obs r2a)
[ "$(guest_val "$WORK/r2.log" arp_mac_sent)" = 2 ] && [ "${a2:-0}" -ge 2 ]
tap_check "real guest r2: allow_mac_spoofing lets it reach t1 ($a2 seen)" $? "$WORK/r2.log"
# Both guests run udhcpd and then ask for leases a few times: each one's
# server answers the other's discover, and its offers stop at its own tap.
d1=$(counter r1 drop_dhcp)
d2=$(counter r2 drop_dhcp)
[ "$(guest_val "$WORK/r1.log" dhcp_server)" = started ] &&
	[ "$(guest_val "$WORK/r2.log" dhcp_server)" = started ] && [ $((d1 + d2)) -gt 0 ]
tap_check "real guests running a DHCP server (udhcpd): its offers are dropped, drop_dhcp r1 $d1, r2 $d2" $? "$WORK/r1.log" "$WORK/r2.log"
# Three raw frames of EtherType 0x88b5 from each guest (nicwire on its disk).
x1=$(counter r1 drop_restricted)
o1=$(obs r1)
[ "$(guest_val "$WORK/r1.log" restricted_sent)" = 3 ] && [ "${x1:-0}" -ge 3 ] && [ "$o1" = 0 ]
tap_check "real guest r1: non-IP ethertype frames blocked, drop_restricted $x1, reached t1 $o1" $? "$WORK/r1.log"
o2=$(obs r2)
[ "$(guest_val "$WORK/r2.log" restricted_sent)" = 3 ] && [ "${o2:-0}" -ge 3 ]
tap_check "real guest r2: allow_restricted_traffic lets them reach t1 ($o2 seen)" $? "$WORK/r2.log"
# r2 then sends three priority-tagged (802.1Q, VID 0) DHCP offers: a tag must
# not carry them past the DHCP rule; they are the only frames r2 gets counted
# as restricted.
x2=$(counter r2 drop_restricted)
q2=$(obs r2q)
[ "$(guest_val "$WORK/r2.log" tagged_sent)" = 3 ] && [ "$x2" = 3 ] && [ "$q2" = 0 ]
tap_check "real guest r2: 802.1Q-tagged DHCP offers still dropped, drop_restricted $x2 of 3, reached t1 $q2" $? "$WORK/r2.log"
# VLANs
[ "$(guest_val "$WORK/r3.log" vlan_same)" = yes ]
tap_check "real guests on vlan 10: r3 reaches r4" $? "$WORK/r3.log" "$WORK/r4.log"
v=$(guest_val "$WORK/r3.log" vlan10_reached)
[ "$v" = none ]
tap_check "real guest r3 (vlan 10) reaches neither the host nor the vlan 20 guests (reached: $v)" $? "$WORK/r3.log"
u=$(guest_val "$WORK/r2.log" untagged_reached)
[ "$(guest_val "$WORK/r2.log" gated_ping_host)" = ok ] && [ "$u" = none ]
tap_check "real guest r2 (untagged) reaches the host but not r3 or r4 on vlan 10 (reached: $u)" $? "$WORK/r2.log"
# r1 measures its cap alone: the others' VMMs are SIGKILLed (their guards
# clean up), then the gate opens.
kill -KILL "$pid_r2" "$pid_r3" "$pid_r4"
wait "$pid_r2" "$pid_r3" "$pid_r4" 2>/dev/null
for _ in $(seq 50); do
	ip -o link | grep -qE 'zvmr[234]n' || break
	sleep 0.1
done
ip addr add 10.9.2.251/24 dev t1
uncapped=
for _ in $(seq 300); do
	done_ r1 && break
	kill -0 "$pid_r1" 2>/dev/null || break
	if [ -z "$uncapped" ] && [ "$(guest_val "$WORK/r1.log" bw_uncap)" = yes ]; then
		tc -s qdisc show dev zvmr1i0 >"$WORK/tc-r1.log" 2>&1
		tc -s qdisc show dev zvmr1n0 >>"$WORK/tc-r1.log" 2>&1
		uncap zvmr1n0 zvmr1i0
		ip addr add 10.9.2.252/24 dev t1
		uncapped=yes
	fi
	sleep 1
done
up=$(guest_val "$WORK/r1.log" bw_up)
down=$(guest_val "$WORK/r1.log" bw_down)
echo "# real guest r1, max_bandwidth=50M: guest->host $up Mbit/s, host->guest $down Mbit/s"
if [ -z "$uncapped" ]; then
	tc -s qdisc show dev zvmr1i0 >"$WORK/tc-r1.log" 2>&1
	tc -s qdisc show dev zvmr1n0 >>"$WORK/tc-r1.log" 2>&1
fi
cap_check "real guest r1, iperf3 guest->host within 10% of max_bandwidth=50M" "$up" \
	"$(guest_val "$WORK/r1.log" bw_free_up)" || { tap_diag "$WORK/tc-r1.log" 30; tap_diag "$WORK/r1.log" 30; }
cap_check "real guest r1, iperf3 host->guest within 10% of max_bandwidth=50M" "$down" \
	"$(guest_val "$WORK/r1.log" bw_free_down)" || tap_diag "$WORK/r1.log" 30
kill "$(cat "$WORK/iperf3-t1.pid" 2>/dev/null)" 2>/dev/null
kill -KILL "$pid_r1"
wait "$pid_r1" 2>/dev/null
kill -TERM "$pid_v1" "$pid_v2"
wait "$pid_v1" "$pid_v2"
check "real guests' VMMs SIGKILLed: taps, tables, records removed by the guards" sh -c \
	"for i in \$(seq 50); do [ -z \"\$(ip -o link | grep -E 'zvm[rv][0-9]')\$(nft list tables | grep zonevm_)\$(ls $ZONEVM_ROOT/netvms/*.json 2>/dev/null)\" ] && exit 0; sleep 0.1; done; ip -o link | grep zvm; nft list tables; exit 1"
nft delete table bridge netsec_obs
check "nictag delete t1" zonevm nictag delete t1

for g in ga gb gc1 gc2 gc3 gc4 gd ge gf gg gv1 gv2; do ip netns del $g; done
nft delete table netdev netsec
tap_end
