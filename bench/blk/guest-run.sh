#!/bin/sh
# guest-run.sh: /zonevm-run.sh on the fio disk (vdb), run by the guest kit's
# /init (zonevm.scriptdisk=vdb) with cwd /mnt.  Runs the four fio jobs on
# /dev/vda and prints one line per job:
#   zbench NAME iops=N bw_kib=N
# then the cache-warm random read: one sequential 1 MiB pass over the first
# zbench.warm_mb MiB (default 128: it fits the pool daemon's 256 MiB ARC;
# printed as warm-pass) and a 4 KiB random read over the same region
# (randread-4k-warm).  On a raw file with cache=none nothing keeps the
# region, so the second figure is a plain random read of a smaller region.
# Runtime per job from the kernel command line: zbench.runtime=SECS.
rt=$(sed -n 's/.*zbench\.runtime=\([0-9]*\).*/\1/p' /proc/cmdline)
eng=$(sed -n 's/.*zbench\.engine=\([a-z_]*\).*/\1/p' /proc/cmdline)
[ -n "$rt" ] || rt=10
warm=$(sed -n 's/.*zbench\.warm_mb=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$eng" ] || eng=libaio
[ -n "$warm" ] || warm=128
FIO="/mnt/lib64/ld-linux-x86-64.so.2 --library-path /mnt/lib /mnt/bin/fio"
q=/sys/block/vda/queue
echo "zbench guest vda_bytes=$(($(cat /sys/block/vda/size) * 512)) runtime=$rt engine=$eng"
echo "zbench queue hw_queues=$(ls /sys/block/vda/mq | wc -l) nr_requests=$(cat $q/nr_requests)" \
	"max_sectors_kb=$(cat $q/max_sectors_kb) max_segments=$(cat $q/max_segments)" \
	"max_segment_size=$(cat $q/max_segment_size)"
for job in randread:4k randwrite:4k read:1M write:1M warm:1M randread:4k:warm; do
	rw=${job%%:*}
	bs=${job#*:}
	bs=${bs%%:*}
	name=$rw-$bs
	set -- --time_based --runtime="$rt"
	case "$job" in
	warm:*)
		name="warm-pass"
		rw="read"
		set -- --size="${warm}M"
		;;
	*:warm)
		name=randread-4k-warm
		set -- --size="${warm}M" --time_based --runtime="$rt"
		;;
	esac
	# terse v3: field 7/8 read KiB/s and IOPS, 48/49 the same for writes
	line=$($FIO --name="$name" --filename=/dev/vda --rw="$rw" --bs="$bs" \
		--iodepth=32 --ioengine="$eng" --direct=1 --numjobs=1 "$@" \
		--randrepeat=0 --norandommap \
		--output-format=terse --terse-version=3 2>/tmp/fio.err)
	echo "$line" | awk -F';' -v n="$name" '
		$8 + 0 > 0 || $49 + 0 > 0 {
			if ($8 + 0 > 0) printf "zbench %s iops=%d bw_kib=%d\n", n, $8, $7
			else printf "zbench %s iops=%d bw_kib=%d\n", n, $49, $48
			ok = 1 }
		END { if (!ok) printf "zbench %s failed\n", n }'
	[ -s /tmp/fio.err ] && sed 's/^/zbench fio-stderr: /' /tmp/fio.err
done
exit 0
