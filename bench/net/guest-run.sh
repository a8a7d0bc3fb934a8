#!/bin/sh
# guest-run.sh: /zonevm-run.sh on the iperf3 disk (vda), run by the guest
# kit's /init (zonevm.scriptdisk=vda) with cwd /mnt.  Parameters come from
# the kernel command line:
#   zbench.role=a|b   a: guest<->host figures, then the guest<->guest server
#                     b: the guest->guest client (waits for a's server)
#   zbench.ip=CIDR zbench.host=IP zbench.peer=IP zbench.time=SECS
# Prints one line per figure:  zbench NAME mbps=N  |  zbench ping avg_ms=N
arg() { sed -n "s/.*zbench\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
role=$(arg role)
ip=$(arg ip)
host=$(arg host)
peer=$(arg peer)
t=$(arg time)
[ -n "$t" ] || t=5
IPERF="/mnt/lib64/ld-linux-x86-64.so.2 --library-path /mnt/lib /mnt/bin/iperf3"
ip link set eth0 up
ip addr add "$ip" dev eth0

# iperf3 NAME ARGS...: the receiver's Mbit/s of one client run.
iperf() {
	name=$1
	shift
	out=$($IPERF -f m "$@" 2>&1)
	mbps=$(echo "$out" | awk '/receiver/ { print $(NF - 2) }' | tail -n 1)
	if [ -n "$mbps" ]; then
		echo "zbench $name mbps=$mbps"
	else
		echo "zbench $name failed"
		echo "$out" | tail -n 3 | sed 's/^/zbench iperf3: /'
	fi
}

wait_for() {
	i=0
	until ping -c 1 -W 1 "$1" >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i + 1)); done
}

if [ "$role" = a ]; then
	wait_for "$host"
	iperf guest-host -c "$host" -t "$t"
	iperf host-guest -c "$host" -t "$t" -R
	avg=$(ping -c 20 -i 0.2 "$host" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
	echo "zbench ping avg_ms=${avg:-failed}"
	$IPERF -s -1 >/dev/null 2>&1
	echo "zbench server done"
else
	wait_for "$peer"
	# a's one-off server starts after its host figures: until then the
	# connection is refused at once; the first run that connects counts.
	i=0
	until out=$($IPERF -f m -c "$peer" -t "$t" 2>&1) || [ $i -ge 180 ]; do
		sleep 1
		i=$((i + 1))
	done
	mbps=$(echo "$out" | awk '/receiver/ { print $(NF - 2) }' | tail -n 1)
	echo "zbench guest-guest mbps=${mbps:-failed}"
fi
exit 0
