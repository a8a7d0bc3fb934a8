/*
 * blk_path.c - micro-benchmark of the virtio-blk request path without a
 * guest: a fake driver (tests/unit/vguest.c) keeps DEPTH requests in a real
 * split ring in host memory, the device model pops, parses and completes
 * them, and the backend is either an in-memory disk (tests/unit/memdisk.c,
 * the cost of our own code plus a memcpy) or the io_uring file backend on a
 * file (the cost including io_uring; the file is in the page cache).
 *
 * It prints requests per second of wall time and per CPU-second of the
 * process (all its threads, io_uring workers included): "per core" is the
 * second figure.  Figures, not assertions: it is built, never run, by the
 * test suite.
 *
 *   blk-path [--backend mem|file] [--file PATH] [--rw read|write]
 *            [--bs BYTES] [--depth N] [--seconds S]
 */
#include <endian.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memdisk.h"
#include "vguest.h"

#define QSIZE     256
#define DISK_SIZE (256ull << 20)

struct hdr {
	uint32_t type, ioprio;
	uint64_t sector;
};

static double now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: blk-path [--backend mem|file] [--file PATH] [--rw read|write] "
	                "[--bs BYTES] [--depth N] [--seconds S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"backend", required_argument, NULL, 'b'},
	    {"file", required_argument, NULL, 'f'},
	    {"rw", required_argument, NULL, 'r'},
	    {"bs", required_argument, NULL, 's'},
	    {"depth", required_argument, NULL, 'd'},
	    {"seconds", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *backend = "mem", *path = NULL;
	bool write = false;
	unsigned bs = 4096, depth = 32;
	double secs = 3;
	struct vguest g;
	struct vguest_ring r;
	struct vblk_backend *be = NULL;
	struct virtio_dev *dev;
	struct vblk_config cfg = {.name = "bench", .num_queues = 1, .queue_size = QSIZE};
	char tmp[] = "/tmp/zonevm-blk-path-XXXXXX";
	uint64_t done = 0, sectors = DISK_SIZE / 512, seed = 1;
	int c, fd = -1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			backend = optarg;
			break;
		case 'f':
			path = optarg;
			break;
		case 'r':
			write = strcmp(optarg, "write") == 0;
			break;
		case 's':
			bs = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'd':
			depth = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 't':
			secs = strtod(optarg, NULL);
			break;
		default:
			usage();
		}
	}
	if (bs == 0 || bs % 512 || bs > (1u << 20) || depth == 0 || depth > QSIZE / 3)
		usage();
	if (strcmp(backend, "mem") == 0) {
		be = memdisk_new(DISK_SIZE, 1, QSIZE);
	} else if (strcmp(backend, "file") == 0) {
		if (path == NULL) {
			path = tmp;
			fd = mkstemp(tmp);
			if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0) {
				perror(tmp);
				return 1;
			}
			close(fd);
		}
		fd = open(path, O_RDWR);
		if (fd < 0 || vblk_file_open(fd, path, 1, QSIZE, &be) < 0) {
			perror(path);
			return 1;
		}
		sectors = be->size / 512;
	} else {
		usage();
	}
	if (be == NULL || vguest_init(&g, (uint64_t)depth * (bs + 4096) + (1 << 20)) < 0 ||
	    vblk_create(&cfg, be, &g.gm, &g.env, &dev) < 0)
		return 1;
	vguest_ring_init(&g, &r, QSIZE);
	if (vguest_ring_enable(&g, &r, dev, 0) < 0)
		return 1;
	/* One slot per in-flight request: descriptors 3i..3i+2, reused. */
	struct hdr **hdrs = calloc(depth, sizeof(*hdrs));

	for (unsigned i = 0; i < depth; i++) {
		uint64_t h = vguest_alloc(&g, 16, 16), d = vguest_alloc(&g, bs, 4096);
		uint64_t st = vguest_alloc(&g, 1, 1);
		struct vguest_buf bufs[] = {{h, 16, false}, {d, bs, !write}, {st, 1, true}};

		hdrs[i] = vguest_ptr(&g, h);
		*hdrs[i] = (struct hdr){htole32(write ? 1 : 0), 0, 0};
		memset(vguest_ptr(&g, d), 0x5a, bs);
		vguest_add_chain_at(&r, (uint16_t)(3 * i), bufs, 3);
	}
	virtio_dev_queue_notify(dev, 0);

	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID), w1;
	int efd = vblk_queue_fd(dev, 0);

	do {
		uint32_t id, len;
		unsigned n = 0;

		if (efd >= 0) {
			struct pollfd p = {.fd = efd, .events = POLLIN};

			poll(&p, 1, 1000);
		}
		vblk_queue_poll(dev, 0);
		while (vguest_get_used(&r, &id, &len)) {
			struct hdr *h = hdrs[id / 3];

			/* Next request of this slot: a pseudo-random block. */
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			h->sector = htole64((seed >> 20) % (sectors / (bs / 512)) * (bs / 512));
			vguest_publish(&r, (uint16_t)id);
			n++;
		}
		done += n;
		if (n)
			virtio_dev_queue_notify(dev, 0);
		w1 = now(CLOCK_MONOTONIC);
	} while (w1 - w0 < secs);
	double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;

	printf("blk-path: backend %s, %s %u bytes, depth %u: %llu requests in %.2fs wall, "
	       "%.2fs CPU\n",
	       backend, write ? "write" : "read", bs, depth, (unsigned long long)done, w1 - w0,
	       cpu);
	printf("blk-path: %.0f requests/s, %.0f requests/s per core (%.0f ns CPU each), "
	       "%u interrupts\n",
	       (double)done / (w1 - w0), (double)done / cpu, cpu * 1e9 / (double)done,
	       g.interrupts);
	virtio_dev_destroy(dev);
	vguest_fini(&g);
	free(hdrs);
	if (path == tmp)
		unlink(tmp);
	return 0;
}
