/*
 * fuzz_vblk_req.c - libFuzzer target for the virtio-blk request parser
 * (src/virtio/blk.c), driven end to end: a fake driver (tests/unit/vguest.c)
 * builds well-formed chains from the input, so the fuzzer spends its time
 * on request contents and framing rather than on chain faults (those are
 * fuzz_vq_chain's), and the device runs on an in-memory disk
 * (tests/unit/memdisk.c) that aborts if it is handed a range outside the
 * disk.  Every request must complete with a status of OK, IOERR or UNSUPP
 * (or used length 0 when it has no writable byte), and the device must
 * never break on a well-formed chain.
 *
 * Input: [mode][requests...], each request
 *        [nbufs][type][sector le64][flags] then per buffer [len le16][write]
 *        then buffer bytes.  mode picks read-only, the feature subset the
 *        driver accepts and whether sectors are folded near the disk end.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdisk.h"
#include "vguest.h"

#define DISK_SECTORS 64
#define MAX_REQS     24
#define MAX_BUFS     6

static uint8_t next(const uint8_t **p, size_t *left)
{
	if (*left == 0)
		return 0;
	(*left)--;
	return *(*p)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Two devices (read-write, read-only) live across iterations and are
	 * reset for each, as a guest driver would; this also keeps their
	 * rate-limited logging from flooding the fuzzer's output. */
	static struct vguest g;
	static struct virtio_dev *devs[2];
	struct vguest_ring r;
	struct virtio_dev *dev;
	uint8_t mode;

	if (devs[0] == NULL) {
		if (vguest_init(&g, 4 << 20) != 0)
			abort();
		for (int i = 0; i < 2; i++) {
			struct vblk_config cfg = {.name = "fuzz",
			                          .num_queues = 1,
			                          .queue_size = 64,
			                          .serial = "fuzz-serial",
			                          .read_only = i};

			if (vblk_create(&cfg, memdisk_new(DISK_SECTORS * 512, 1, 64), &g.gm, &g.env,
			                &devs[i]) != 0)
				abort();
		}
	}
	g.brk = 0;
	mode = next(&data, &size);
	dev = devs[mode & 1];
	virtio_dev_reset(dev);
	/* The driver accepts a subset of the features (VERSION_1 always). */
	uint64_t feat = virtio_dev_features(dev);

	if (mode & 2)
		feat &= ~VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH);
	if (mode & 4)
		feat &=
		    ~(VIRTIO_F_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_F_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	if (mode & 8)
		feat &= ~VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX);
	vguest_ring_init(&g, &r, 64);
	if (virtio_dev_set_features(dev, feat) != 0 ||
	    virtio_dev_queue_enable(dev, 0, 64, r.desc_gpa, r.avail_gpa, r.used_gpa) != 0)
		abort();

	for (unsigned n = 0; n < MAX_REQS && size > 0; n++) {
		struct vguest_buf bufs[MAX_BUFS];
		unsigned nb = 1 + next(&data, &size) % MAX_BUFS;
		uint8_t type = next(&data, &size), flags;
		uint64_t sector = 0, rd_total = 0, wr_total = 0;
		uint8_t hdr[16] = {0};
		uint32_t id, len;

		for (int i = 0; i < 8; i++)
			sector |= (uint64_t)next(&data, &size) << (8 * i);
		flags = next(&data, &size);
		if (mode & 16)
			sector = sector % (DISK_SECTORS + 8);
		hdr[0] = type;
		for (int i = 0; i < 8; i++)
			hdr[8 + i] = (uint8_t)(sector >> (8 * i));
		for (unsigned i = 0; i < nb; i++) {
			uint16_t l = (uint16_t)(next(&data, &size) | next(&data, &size) << 8);
			bool w = next(&data, &size) & 1;

			if (flags & 0x80) /* sizes in whole sectors, plus header/status */
				l = (uint16_t)((l % 9) * 512 + (w ? 0 : 16) * (i == 0) +
				               (i == nb - 1));
			l %= 8193;
			bufs[i] = (struct vguest_buf){vguest_alloc(&g, l ? l : 1, 8), l, w};
			for (unsigned k = 0; k < l && size > 0; k++)
				((uint8_t *)vguest_ptr(&g, bufs[i].gpa))[k] = next(&data, &size);
		}
		/* Readable before writable, as a correct driver does. */
		struct vguest_buf sorted[MAX_BUFS];
		unsigned ns = 0;

		for (unsigned i = 0; i < nb; i++)
			if (!bufs[i].write)
				sorted[ns++] = bufs[i];
		for (unsigned i = 0; i < nb; i++)
			if (bufs[i].write)
				sorted[ns++] = bufs[i];
		/* The header goes in the first readable bytes, however split. */
		for (unsigned i = 0, done = 0; i < nb && !sorted[i].write && done < 16; i++) {
			unsigned k = sorted[i].len < 16 - done ? sorted[i].len : 16 - done;

			if (flags & 0x40) /* sometimes leave the header as fuzz bytes */
				break;
			memcpy(vguest_ptr(&g, sorted[i].gpa), hdr + done, k);
			done += k;
		}
		for (unsigned i = 0; i < nb; i++)
			*(sorted[i].write ? &wr_total : &rd_total) += sorted[i].len;
		uint16_t head = vguest_add_chain(&g, &r, sorted, nb, flags & 1);

		virtio_dev_queue_notify(dev, 0);
		vblk_queue_poll(dev, 0);
		if (!vguest_get_used(&r, &id, &len) || id != head || len > wr_total)
			abort(); /* every request completes, at once on a memdisk */
		if (len > 0) {
			/* The status is the last byte of the last non-empty
			 * writable buffer. */
			unsigned i = nb;

			while (i > 0 && !(sorted[i - 1].write && sorted[i - 1].len > 0))
				i--;
			if (i == 0 || ((uint8_t *)vguest_ptr(
			                  &g, sorted[i - 1].gpa))[sorted[i - 1].len - 1] > 2)
				abort();
		}
		if (virtio_dev_is_broken(dev))
			abort();
		(void)rd_total;
	}
	return 0;
}
