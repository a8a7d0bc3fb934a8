/*
 * test_virtio_blk.c - virtio-blk end to end: a fake guest (tests/unit/
 * vguest.c) puts requests in a real split ring, the device model parses
 * them, the io_uring file backend does the I/O on a temporary file, and we
 * check the status byte, the used ring and the file itself.  Covers read,
 * write (with odd framing and indirect tables), flush, discard (allocated
 * blocks shrink), write-zeroes, get-id, read-only disks, out-of-range and
 * malformed requests, host I/O errors, multiqueue, and reset with requests
 * in flight.
 */
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vguest.h"

#define DISK_BYTES (4u << 20)
#define SECTORS    (DISK_BYTES / 512)
#define S_OK       0
#define S_IOERR    1
#define S_UNSUPP   2
#define T_IN       0
#define T_OUT      1
#define T_FLUSH    4
#define T_GET_ID   8
#define T_DISCARD  11
#define T_WZ       13

struct fx {
	struct vguest g;
	struct vguest_ring r[2];
	struct virtio_dev *dev;
	char path[64];
	int fd; /* our own view of the disk file */
};

struct hdr {
	uint32_t type, ioprio;
	uint64_t sector;
};

struct seg {
	uint64_t sector;
	uint32_t num, flags;
};

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 9));
}

enum fx_backing { FX_RW, FX_RDONLY_FD, FX_LOOP, FX_DIRECT };

/* A loop device over backing_fd that goes away with its last fd; -1 when
 * this host cannot make one (not root, no loop driver). */
static int loop_attach(int backing_fd)
{
	struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), n, fd;
	char path[32];

	if (ctl < 0)
		return -1;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	snprintf(path, sizeof(path), "/dev/loop%d", n);
	fd = n < 0 ? -1 : open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ioctl(fd, LOOP_SET_FD, backing_fd) < 0) {
		close(fd);
		return -1;
	}
	if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0) {
		ioctl(fd, LOOP_CLR_FD, 0);
		close(fd);
		return -1;
	}
	return fd;
}

/* NULL only for FX_LOOP on a host without loop devices, or FX_DIRECT on a
 * file system without O_DIRECT. */
static struct fx *fx_new(bool ro, unsigned nq, enum fx_backing backing, const char *serial)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vblk_backend *be;
	struct vblk_config cfg = {.name = "test", .read_only = ro, .num_queues = (uint16_t)nq};
	uint8_t *buf = malloc(DISK_BYTES);
	int bfd;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/zonevm-blk-XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	pattern(buf, DISK_BYTES, 1);
	assert_int_equal(pwrite(f->fd, buf, DISK_BYTES, 0), DISK_BYTES);
	free(buf);
	snprintf(cfg.serial, sizeof(cfg.serial), "%s", serial);
	bfd = open(f->path, (backing == FX_RDONLY_FD ? O_RDONLY : O_RDWR) |
	                        (backing == FX_DIRECT ? O_DIRECT : 0));
	if (bfd < 0 && backing == FX_DIRECT) {
		close(f->fd);
		unlink(f->path);
		free(f);
		return NULL;
	}
	assert_true(bfd >= 0);
	if (backing == FX_LOOP) {
		int file = bfd;

		bfd = loop_attach(file);
		close(file);
		if (bfd < 0) {
			close(f->fd);
			unlink(f->path);
			free(f);
			return NULL;
		}
	}
	assert_int_equal(vblk_file_open(bfd, f->path, nq, 256, &be), 0);
	assert_int_equal(vguest_init(&f->g, 16 << 20), 0);
	assert_int_equal(vblk_create(&cfg, be, &f->g.gm, &f->g.env, &f->dev), 0);
	for (unsigned q = 0; q < nq; q++) {
		vguest_ring_init(&f->g, &f->r[q], 256);
		assert_int_equal(vguest_ring_enable(&f->g, &f->r[q], f->dev, q), 0);
	}
	return f;
}

static void fx_free(struct fx *f)
{
	virtio_dev_destroy(f->dev);
	vguest_fini(&f->g);
	close(f->fd);
	unlink(f->path);
	free(f);
}

static int setup(void **state)
{
	*state = fx_new(false, 1, FX_RW, "zonevm-serial-1");
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* Wait until queue q has a used element; poll the backend's eventfd. */
static void wait_used(struct fx *f, unsigned q, uint32_t *id, uint32_t *len)
{
	for (int i = 0; i < 500; i++) {
		struct pollfd p = {.fd = vblk_queue_fd(f->dev, q), .events = POLLIN};

		if (vguest_get_used(&f->r[q], id, len))
			return;
		poll(&p, 1, 10);
		vblk_queue_poll(f->dev, q);
	}
	fail_msg("no completion on queue %u", q);
}

/* One request: header, then bufs, then a 1-byte status; returns status. */
static int run_q(struct fx *f, unsigned q, uint32_t type, uint64_t sector,
                 const struct vguest_buf *data, unsigned n, uint32_t *used_len)
{
	struct vguest_buf bufs[8];
	uint64_t h = vguest_alloc(&f->g, 16, 8), st = vguest_alloc(&f->g, 1, 1);
	struct hdr *hp = vguest_ptr(&f->g, h);
	uint32_t id, len;
	uint16_t head;

	*hp = (struct hdr){htole32(type), 0, htole64(sector)};
	*(uint8_t *)vguest_ptr(&f->g, st) = 0xee;
	bufs[0] = (struct vguest_buf){h, 16, false};
	for (unsigned i = 0; i < n; i++)
		bufs[1 + i] = data[i];
	bufs[n + 1] = (struct vguest_buf){st, 1, true};
	head = vguest_add_chain(&f->g, &f->r[q], bufs, n + 2, false);
	virtio_dev_queue_notify(f->dev, q);
	wait_used(f, q, &id, &len);
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
	return *(uint8_t *)vguest_ptr(&f->g, st);
}

static int run(struct fx *f, uint32_t type, uint64_t sector, const struct vguest_buf *data,
               unsigned n)
{
	return run_q(f, 0, type, sector, data, n, NULL);
}

static int run_seg(struct fx *f, uint32_t type, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t s = vguest_alloc(&f->g, 16, 8);

	*(struct seg *)vguest_ptr(&f->g, s) =
	    (struct seg){htole64(sector), htole32(num), htole32(flags)};
	return run(f, type, 0, &(struct vguest_buf){s, 16, false}, 1);
}

static uint64_t blocks(struct fx *f)
{
	struct stat st;

	assert_int_equal(fstat(f->fd, &st), 0);
	return (uint64_t)st.st_blocks;
}

static void test_config_and_features(void **state)
{
	struct fx *f = *state;
	uint64_t cap, feat = virtio_dev_features(f->dev);
	uint32_t seg_max, blk;

	assert_int_equal(f->dev->device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(virtio_dev_config_read(f->dev, 0, &cap, 8), 0);
	assert_int_equal(le64toh(cap), SECTORS);
	assert_int_equal(virtio_dev_config_read(f->dev, 12, &seg_max, 4), 0);
	assert_int_equal(le32toh(seg_max), 254);
	assert_int_equal(virtio_dev_config_read(f->dev, 20, &blk, 4), 0);
	assert_int_equal(le32toh(blk), 512);
	assert_int_equal(virtio_dev_config_read(f->dev, 58, &blk, 4), -EINVAL);
	assert_true(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH));
	assert_true(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_DISCARD));
	assert_true(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(feat & VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX));
	assert_false(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_RO));
	assert_false(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_MQ));
}

static void test_read(void **state)
{
	struct fx *f = *state;
	uint64_t d = vguest_alloc(&f->g, 1024, 8);
	uint8_t want[1024];
	uint32_t len;

	assert_int_equal(pread(f->fd, want, 1024, 3 * 512), 1024);
	assert_int_equal(run_q(f, 0, T_IN, 3, &(struct vguest_buf){d, 1024, true}, 1, &len), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, d), want, 1024);
	assert_int_equal(len, 1025);
}

static void test_write_odd_framing(void **state)
{
	struct fx *f = *state;
	uint8_t src[4096], got[4096];
	/* Header and the first 100 data bytes in one descriptor; the status
	 * byte at the end of a 2-byte writable buffer. */
	uint64_t a = vguest_alloc(&f->g, 16 + 100, 8), b = vguest_alloc(&f->g, 3996, 8);
	uint64_t st = vguest_alloc(&f->g, 2, 2);
	struct vguest_buf bufs[] = {{a, 116, false}, {b, 3996, false}, {st, 2, true}};
	uint32_t id, len;

	pattern(src, sizeof(src), 9);
	*(struct hdr *)vguest_ptr(&f->g, a) = (struct hdr){htole32(T_OUT), 0, htole64(10)};
	memcpy((uint8_t *)vguest_ptr(&f->g, a) + 16, src, 100);
	memcpy(vguest_ptr(&f->g, b), src + 100, 3996);
	vguest_add_chain(&f->g, &f->r[0], bufs, 3, true);
	virtio_dev_queue_notify(f->dev, 0);
	wait_used(f, 0, &id, &len);
	assert_int_equal(((uint8_t *)vguest_ptr(&f->g, st))[1], S_OK);
	assert_int_equal(len, 2);
	/* On a block device the data reaches the backing file at the flush. */
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK);
	assert_int_equal(pread(f->fd, got, 4096, 10 * 512), 4096);
	assert_memory_equal(got, src, 4096);
}

static void test_flush(void **state)
{
	assert_int_equal(run(*state, T_FLUSH, 0, NULL, 0), S_OK);
}

static void test_discard_frees_blocks(void **state)
{
	struct fx *f = *state;
	uint64_t before, after, d = vguest_alloc(&f->g, 65536, 8);
	uint8_t zero[65536] = {0};

	fsync(f->fd);
	before = blocks(f);
	assert_int_equal(run_seg(f, T_DISCARD, 1024, 2048, 0), S_OK); /* 1 MiB at 512 KiB */
	after = blocks(f);
	assert_true(after + 2048 <= before); /* st_blocks counts 512-byte units */
	assert_int_equal(run(f, T_IN, 1024, &(struct vguest_buf){d, 65536, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, d), zero, sizeof(zero));
	/* Discard takes no flags; its length and range are checked. */
	assert_int_equal(run_seg(f, T_DISCARD, 0, 8, 1), S_UNSUPP);
	assert_int_equal(run_seg(f, T_DISCARD, SECTORS - 4, 8, 0), S_IOERR);
	assert_int_equal(run_seg(f, T_DISCARD, 0, 0, 0), S_OK);
}

static void test_write_zeroes(void **state)
{
	struct fx *f = *state;
	uint64_t d = vguest_alloc(&f->g, 8192, 8);
	uint8_t zero[8192] = {0}, got[8192];

	assert_int_equal(run_seg(f, T_WZ, 64, 16, 0), S_OK);
	assert_int_equal(run_seg(f, T_WZ, 96, 16, 1), S_OK); /* may unmap */
	assert_int_equal(pread(f->fd, got, 8192, 64 * 512), 8192);
	assert_memory_equal(got, zero, 8192);
	assert_int_equal(pread(f->fd, got, 8192, 96 * 512), 8192);
	assert_memory_equal(got, zero, 8192);
	assert_int_equal(run(f, T_IN, 64, &(struct vguest_buf){d, 8192, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, d), zero, 8192);
	assert_int_equal(run_seg(f, T_WZ, 0, 8, 2), S_UNSUPP); /* reserved flag */
	/* Two segments: we advertise max_write_zeroes_seg = 1. */
	{
		uint64_t s = vguest_alloc(&f->g, 32, 8);

		assert_int_equal(run(f, T_WZ, 0, &(struct vguest_buf){s, 32, false}, 1), S_UNSUPP);
		assert_int_equal(run(f, T_WZ, 0, &(struct vguest_buf){s, 20, false}, 1), S_IOERR);
	}
}

static void test_get_id(void **state)
{
	struct fx *f = *state;
	uint64_t d = vguest_alloc(&f->g, 20, 8), s = vguest_alloc(&f->g, 5, 1);
	char want[20] = "zonevm-serial-1";

	memset(vguest_ptr(&f->g, d), 'x', 20);
	assert_int_equal(run(f, T_GET_ID, 0, &(struct vguest_buf){d, 20, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, d), want, 20);
	memset(vguest_ptr(&f->g, s), 'x', 5);
	assert_int_equal(run(f, T_GET_ID, 0, &(struct vguest_buf){s, 5, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, s), "zonev", 5);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	uint64_t d = vguest_alloc(&f->g, 1024, 8);
	struct vguest_buf rd = {d, 1024, true};

	assert_int_equal(run(f, T_IN, SECTORS - 1, &rd, 1), S_IOERR); /* past the end */
	assert_int_equal(run(f, T_IN, SECTORS - 2, &rd, 1), S_OK);    /* exactly the end */
	assert_int_equal(run(f, T_IN, UINT64_MAX, &rd, 1), S_IOERR);  /* wraps */
	assert_int_equal(run(f, T_OUT, UINT64_MAX - 1, &(struct vguest_buf){d, 1024, false}, 1),
	                 S_IOERR);
	assert_int_equal(run(f, T_IN, 0, &(struct vguest_buf){d, 100, true}, 1), S_IOERR);
	assert_int_equal(run(f, T_OUT, 0, &(struct vguest_buf){d, 513, false}, 1), S_IOERR);
	assert_int_equal(run(f, 99, 0, NULL, 0), S_UNSUPP);
	assert_int_equal(run(f, T_IN, 0, NULL, 0), S_OK); /* empty read */
	assert_false(virtio_dev_is_broken(f->dev));
}

static void test_short_header_and_status(void **state)
{
	struct fx *f = *state;
	uint64_t h = vguest_alloc(&f->g, 16, 8), st = vguest_alloc(&f->g, 1, 1);
	struct vguest_buf only_hdr = {h, 16, false};
	struct vguest_buf short_hdr[] = {{h, 8, false}, {st, 1, true}};
	uint32_t id, len;

	*(struct hdr *)vguest_ptr(&f->g, h) = (struct hdr){htole32(T_FLUSH), 0, 0};
	/* No writable byte: completed with length 0, not dropped. */
	vguest_add_chain(&f->g, &f->r[0], &only_hdr, 1, false);
	virtio_dev_queue_notify(f->dev, 0);
	wait_used(f, 0, &id, &len);
	assert_int_equal(len, 0);
	/* A zero-length "status" buffer is no status buffer either. */
	{
		struct vguest_buf z[] = {{h, 16, false}, {st, 0, true}};

		vguest_add_chain(&f->g, &f->r[0], z, 2, false);
		virtio_dev_queue_notify(f->dev, 0);
		wait_used(f, 0, &id, &len);
		assert_int_equal(len, 0);
	}
	/* An 8-byte header: IOERR. */
	*(uint8_t *)vguest_ptr(&f->g, st) = 0xee;
	vguest_add_chain(&f->g, &f->r[0], short_hdr, 2, false);
	virtio_dev_queue_notify(f->dev, 0);
	wait_used(f, 0, &id, &len);
	assert_int_equal(*(uint8_t *)vguest_ptr(&f->g, st), S_IOERR);
	assert_false(virtio_dev_is_broken(f->dev));
}

static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	enum { N = 64, SZ = 8192 };
	uint64_t d[N];
	uint8_t want[SZ], got[SZ];
	uint32_t id, len;
	unsigned seen = 0;

	for (unsigned i = 0; i < N; i++) {
		uint64_t h = vguest_alloc(&f->g, 16, 8), st = vguest_alloc(&f->g, 1, 1);
		struct vguest_buf bufs[3];

		d[i] = vguest_alloc(&f->g, SZ, 8);
		pattern(vguest_ptr(&f->g, d[i]), SZ, 100 + i);
		*(struct hdr *)vguest_ptr(&f->g, h) =
		    (struct hdr){htole32(T_OUT), 0, htole64((uint64_t)i * SZ / 512)};
		bufs[0] = (struct vguest_buf){h, 16, false};
		bufs[1] = (struct vguest_buf){d[i], SZ, false};
		bufs[2] = (struct vguest_buf){st, 1, true};
		vguest_add_chain(&f->g, &f->r[0], bufs, 3, false);
	}
	virtio_dev_queue_notify(f->dev, 0);
	while (seen < N) {
		wait_used(f, 0, &id, &len);
		seen++;
	}
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK);
	for (unsigned i = 0; i < N; i++) {
		pattern(want, SZ, 100 + i);
		assert_int_equal(pread(f->fd, got, SZ, (off_t)i * SZ), SZ);
		assert_memory_equal(got, want, SZ);
	}
}

/* More requests than slots (a driver re-publishing in-flight heads): the
 * device stops popping, then resumes as completions free slots. */
static void test_slots_exhausted(void **state)
{
	struct fx *f = *state;
	uint64_t h = vguest_alloc(&f->g, 16, 8), d = vguest_alloc(&f->g, 512, 8);
	uint64_t st = vguest_alloc(&f->g, 1, 1);
	struct vguest_buf bufs[] = {{h, 16, false}, {d, 512, true}, {st, 1, true}};
	uint32_t id, len;
	unsigned seen = 0;

	*(struct hdr *)vguest_ptr(&f->g, h) = (struct hdr){htole32(T_IN), 0, htole64(8)};
	for (int i = 0; i < 256; i++)
		vguest_add_chain(&f->g, &f->r[0], bufs, 3, true);
	virtio_dev_queue_notify(f->dev, 0);
	for (uint16_t i = 0; i < 10; i++)
		vguest_publish(&f->r[0], i);
	virtio_dev_queue_notify(f->dev, 0);
	while (seen < 266) {
		wait_used(f, 0, &id, &len);
		seen++;
	}
	assert_int_equal(*(uint8_t *)vguest_ptr(&f->g, st), S_OK);
	assert_false(virtio_dev_is_broken(f->dev));
	assert_false(vguest_get_used(&f->r[0], &id, &len));
}

static void test_read_only(void **state)
{
	struct fx *f = fx_new(true, 1, FX_RDONLY_FD, "");
	uint64_t d = vguest_alloc(&f->g, 512, 8);
	uint8_t before[512], after[512];

	assert_true(virtio_dev_features(f->dev) & VIRTIO_F_BIT(VIRTIO_BLK_F_RO));
	assert_false(virtio_dev_features(f->dev) & VIRTIO_F_BIT(VIRTIO_BLK_F_DISCARD));
	assert_int_equal(pread(f->fd, before, 512, 0), 512);
	memset(vguest_ptr(&f->g, d), 0x5a, 512);
	assert_int_equal(run(f, T_OUT, 0, &(struct vguest_buf){d, 512, false}, 1), S_IOERR);
	assert_int_equal(run_seg(f, T_DISCARD, 0, 8, 0), S_UNSUPP); /* not offered */
	assert_int_equal(run_seg(f, T_WZ, 0, 8, 0), S_UNSUPP);
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK);
	assert_int_equal(run(f, T_IN, 0, &(struct vguest_buf){d, 512, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, d), before, 512);
	assert_int_equal(pread(f->fd, after, 512, 0), 512);
	assert_memory_equal(after, before, 512);
	fx_free(f);
}

/* The backend fd cannot write: the host error reaches the guest as IOERR. */
static void test_host_error(void **state)
{
	struct fx *f = fx_new(false, 1, FX_RDONLY_FD, "");
	uint64_t d = vguest_alloc(&f->g, 512, 8);

	assert_int_equal(run(f, T_OUT, 0, &(struct vguest_buf){d, 512, false}, 1), S_IOERR);
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK); /* fdatasync works on O_RDONLY */
	assert_int_equal(run_seg(f, T_DISCARD, 0, 8, 0), S_IOERR);
	fx_free(f);
}

static void test_multiqueue(void **state)
{
	struct fx *f = fx_new(false, 2, FX_RW, "");
	uint64_t d = vguest_alloc(&f->g, 512, 8);
	uint16_t nq;
	uint32_t len;

	assert_true(virtio_dev_features(f->dev) & VIRTIO_F_BIT(VIRTIO_BLK_F_MQ));
	assert_int_equal(virtio_dev_config_read(f->dev, 34, &nq, 2), 0);
	assert_int_equal(le16toh(nq), 2);
	assert_int_not_equal(vblk_queue_fd(f->dev, 0), vblk_queue_fd(f->dev, 1));
	memset(vguest_ptr(&f->g, d), 0x77, 512);
	assert_int_equal(run_q(f, 1, T_OUT, 5, &(struct vguest_buf){d, 512, false}, 1, &len), S_OK);
	memset(vguest_ptr(&f->g, d), 0, 512);
	assert_int_equal(run_q(f, 0, T_IN, 5, &(struct vguest_buf){d, 512, true}, 1, &len), S_OK);
	assert_int_equal(((uint8_t *)vguest_ptr(&f->g, d))[511], 0x77);
	fx_free(f);
}

static void test_reset_in_flight(void **state)
{
	struct fx *f = *state;
	uint32_t id, len;

	for (int i = 0; i < 32; i++) {
		uint64_t h = vguest_alloc(&f->g, 16, 8), d = vguest_alloc(&f->g, 65536, 8);
		uint64_t st = vguest_alloc(&f->g, 1, 1);
		struct vguest_buf bufs[] = {{h, 16, false}, {d, 65536, true}, {st, 1, true}};

		*(struct hdr *)vguest_ptr(&f->g, h) = (struct hdr){htole32(T_IN), 0, 0};
		vguest_add_chain(&f->g, &f->r[0], bufs, 3, false);
	}
	virtio_dev_queue_notify(f->dev, 0);
	virtio_dev_reset(f->dev); /* waits for the 32 reads */
	vguest_ring_init(&f->g, &f->r[0], 256);
	assert_int_equal(vguest_ring_enable(&f->g, &f->r[0], f->dev, 0), 0);
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK);
	assert_false(vguest_get_used(&f->r[0], &id, &len));
}

/* Without FLUSH negotiated the driver assumes write-through: writes go out
 * with RWF_DSYNC and must still succeed. */
static void test_write_through(void **state)
{
	struct fx *f = *state;
	uint64_t d = vguest_alloc(&f->g, 4096, 8);
	uint8_t got[4096];

	virtio_dev_reset(f->dev);
	assert_int_equal(virtio_dev_set_features(f->dev, virtio_dev_features(f->dev) &
	                                                     ~VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH)),
	                 0);
	vguest_ring_init(&f->g, &f->r[0], 256);
	assert_int_equal(virtio_dev_queue_enable(f->dev, 0, 256, f->r[0].desc_gpa,
	                                         f->r[0].avail_gpa, f->r[0].used_gpa),
	                 0);
	pattern(vguest_ptr(&f->g, d), 4096, 77);
	assert_int_equal(run(f, T_OUT, 40, &(struct vguest_buf){d, 4096, false}, 1), S_OK);
	assert_int_equal(pread(f->fd, got, 4096, 40 * 512), 4096);
	assert_memory_equal(got, vguest_ptr(&f->g, d), 4096);
}

/* The same requests on a block device (a loop device over the temporary
 * file): capacity from BLKGETSIZE64, discard still frees the file's blocks. */
static void test_block_device(void **state)
{
	struct fx *f = fx_new(false, 1, FX_LOOP, "zonevm-serial-1");
	uint64_t cap;
	void *st;

	if (f == NULL)
		skip();
	st = f;
	assert_int_equal(virtio_dev_config_read(f->dev, 0, &cap, 8), 0);
	assert_int_equal(le64toh(cap), SECTORS);
	test_read(&st);
	test_write_odd_framing(&st);
	test_flush(&st);
	test_discard_frees_blocks(&st);
	test_write_zeroes(&st);
	test_many_in_flight(&st);
	fx_free(f);
}

/*
 * cache=none: the fd is O_DIRECT.  Aligned buffers go straight to the file;
 * a chain whose data starts 16 bytes into a descriptor (not aligned for
 * direct I/O, the kernel says EINVAL) is retried through the page cache and
 * still lands, and both read back through either path.
 */
static void test_direct_io(void **state)
{
	struct fx *f = fx_new(false, 1, FX_DIRECT, "");
	uint8_t src[8192], got[8192];
	uint64_t a, b, st, al;
	uint32_t id, len;

	(void)state;
	if (f == NULL) {
		skip();
		return;
	}
	/* Unaligned: header and 100 data bytes share a descriptor. */
	a = vguest_alloc(&f->g, 16 + 100, 8);
	b = vguest_alloc(&f->g, 3996, 8);
	st = vguest_alloc(&f->g, 1, 1);
	pattern(src, sizeof(src), 21);
	*(struct hdr *)vguest_ptr(&f->g, a) = (struct hdr){htole32(T_OUT), 0, htole64(24)};
	memcpy((uint8_t *)vguest_ptr(&f->g, a) + 16, src, 100);
	memcpy(vguest_ptr(&f->g, b), src + 100, 3996);
	vguest_add_chain(&f->g, &f->r[0],
	                 (struct vguest_buf[]){{a, 116, false}, {b, 3996, false}, {st, 1, true}}, 3,
	                 false);
	virtio_dev_queue_notify(f->dev, 0);
	wait_used(f, 0, &id, &len);
	assert_int_equal(*(uint8_t *)vguest_ptr(&f->g, st), S_OK);
	/* Aligned: one page-aligned 4 KiB buffer, written directly. */
	al = vguest_alloc(&f->g, 4096, 4096);
	memcpy(vguest_ptr(&f->g, al), src + 4096, 4096);
	assert_int_equal(run(f, T_OUT, 32, &(struct vguest_buf){al, 4096, false}, 1), S_OK);
	assert_int_equal(run(f, T_FLUSH, 0, NULL, 0), S_OK);
	assert_int_equal(pread(f->fd, got, 4096, 24 * 512), 4096);
	assert_memory_equal(got, src, 4096);
	assert_int_equal(pread(f->fd, got, 4096, 32 * 512), 4096);
	assert_memory_equal(got, src + 4096, 4096);
	/* Read both back through the device, aligned (direct). */
	memset(vguest_ptr(&f->g, al), 0, 4096);
	assert_int_equal(run(f, T_IN, 24, &(struct vguest_buf){al, 4096, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, al), src, 4096);
	assert_int_equal(run(f, T_IN, 32, &(struct vguest_buf){al, 4096, true}, 1), S_OK);
	assert_memory_equal(vguest_ptr(&f->g, al), src + 4096, 4096);
	fx_free(f);
}

static void test_size_not_multiple(void **state)
{
	char path[] = "/tmp/zonevm-blk-XXXXXX";
	int fd = mkstemp(path);
	struct vblk_backend *be;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1000), 0);
	assert_int_equal(vblk_file_open(fd, path, 1, 64, &be), -EINVAL);
	close(fd);
	unlink(path);
}

/* A disk named by a long path (a vhost-user socket path: up to 107 bytes,
 * such as ROOT/run/POOL.N.vhost) is named whole in the device's messages. */
static void test_long_name(void **state)
{
	char path[] = "/tmp/zonevm-blk-XXXXXX";
	char name[108], want[VIRTIO_NAME_MAX];
	int fd = mkstemp(path);
	struct vblk_config cfg = {.name = name, .num_queues = 1};
	struct vblk_backend *be;
	struct virtio_dev *dev;
	struct vguest g;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[0] = '/';
	name[sizeof(name) - 1] = 0;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(vblk_file_open(fd, path, 1, 256, &be), 0);
	assert_int_equal(vguest_init(&g, 16 << 20), 0);
	assert_int_equal(vblk_create(&cfg, be, &g.gm, &g.env, &dev), 0);
	snprintf(want, sizeof(want), "virtio-blk %s", name);
	assert_string_equal(dev->name, want);
	virtio_dev_destroy(dev);
	vguest_fini(&g);
	unlink(path);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_config_and_features),
	    T(test_read),
	    T(test_write_odd_framing),
	    T(test_flush),
	    T(test_discard_frees_blocks),
	    T(test_write_zeroes),
	    T(test_get_id),
	    T(test_bad_requests),
	    T(test_short_header_and_status),
	    T(test_many_in_flight),
	    T(test_slots_exhausted),
	    cmocka_unit_test(test_read_only),
	    cmocka_unit_test(test_host_error),
	    cmocka_unit_test(test_multiqueue),
	    T(test_reset_in_flight),
	    T(test_write_through),
	    cmocka_unit_test(test_block_device),
	    cmocka_unit_test(test_size_not_multiple),
	    cmocka_unit_test(test_direct_io),
	    cmocka_unit_test(test_long_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
