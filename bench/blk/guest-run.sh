#!/bin/sh
# guest-run.sh: /zonevm-run.sh on the fio disk (vdb), run by the guest kit's
# /init (zonevm.scriptdisk=vdb) with cwd /mnt.  Runs the four fio jobs on
# /dev/vda and prints one line per job:
#   zbench NAME iops=N bw_kib=N
# Runtime per job from the kernel command line: zbench.runtime=SECS.
rt=$(sed -n 's/.*zbench\.runtime=\([0-9]*\).*/\1/p' /proc/cmdline)
eng=$(sed -n 's/.*zbench\.engine=\([a-z_]*\).*/\1/p' /proc/cmdline)
[ -n "$rt" ] || rt=10
[ -n "$eng" ] || eng=libaio
FIO="/mnt/lib64/ld-linux-x86-64.so.2 --library-path /mnt/lib /mnt/bin/fio"
q=/sys/block/vda/queue
echo "zbench guest vda_bytes=$(($(cat /sys/block/vda/size) * 512)) runtime=$rt engine=$eng"
echo "zbench queue hw_queues=$(ls /sys/block/vda/mq | wc -l) nr_requests=$(cat $q/nr_requests)" \
	"max_sectors_kb=$(cat $q/max_sectors_kb) max_segments=$(cat $q/max_segments)" \
	"max_segment_size=$(cat $q/max_segment_size)"
for job in randread:4k randwrite:4k read:1M write:1M; do
	rw=${job%%:*}
	bs=${job#*:}
	# terse v3: field 7/8 read KiB/s and IOPS, 48/49 the same for writes
	line=$($FIO --name="$rw-$bs" --filename=/dev/vda --rw="$rw" --bs="$bs" \
		--iodepth=32 --ioengine="$eng" --direct=1 --numjobs=1 \
		--time_based --runtime="$rt" --randrepeat=0 --norandommap \
		--output-format=terse --terse-version=3 2>/tmp/fio.err)
	echo "$line" | awk -F';' -v n="$rw-$bs" '
		$8 + 0 > 0 || $49 + 0 > 0 {
			if ($8 + 0 > 0) printf "zbench %s iops=%d bw_kib=%d\n", n, $8, $7
			else printf "zbench %s iops=%d bw_kib=%d\n", n, $49, $48
			ok = 1 }
		END { if (!ok) printf "zbench %s failed\n", n }'
	[ -s /tmp/fio.err ] && sed 's/^/zbench fio-stderr: /' /tmp/fio.err
done
exit 0
