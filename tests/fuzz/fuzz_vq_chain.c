/*
 * fuzz_vq_chain.c - libFuzzer target for the split virtqueue chain walker
 * (src/virtio/vq.c).  The input is the guest: queue size, negotiated ring
 * features, the raw descriptor table, the avail ring and index, and the
 * contents of guest memory (where indirect tables live).  Guest memory is
 * two separately allocated regions with a gap between them, so AddressSanitizer
 * sees any access outside a region; every iovec the walker returns is also
 * checked to lie inside one region, then read and written in full.
 *
 * Input layout: [size exp][flags][desc table 16*size][avail idx 2]
 *               [avail ring 2*size][guest memory ...]
 * flags: 1 INDIRECT_DESC, 2 EVENT_IDX, 4 "friendly" (fold addresses and the
 * avail index into a range where they are mostly valid, to reach deeper
 * states), bits 3-6 the iovec capacity, bit 7 "device": run the same rings
 * through the virtio-rng device (virtio.c, rng.c) instead of calling vq.c
 * directly; then every chain popped must have been completed, no more than
 * the queue size, and the device must ask for a reset at most once.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/vq.h"

#define GPA_A  0x100000ull
#define SIZE_A 0x2000ull
#define GPA_B  0x103000ull /* a 4 KiB hole after A */
#define SIZE_B 0x1000ull
#define RINGS  0x1000ull /* rings at the start of A, data after */

struct fz {
	uint8_t *a, *b;
	struct gmem gm;
	unsigned fails;
	struct virtio_dev *rng;
};

static void on_interrupt(void *opaque, unsigned q)
{
}

static void on_needs_reset(void *opaque)
{
	((struct fz *)opaque)->fails++;
}

/* Device mode: the rings through virtio-rng, as a transport would. */
static void run_device(struct fz *z, uint16_t qsize, uint64_t features)
{
	struct vq *vq;

	virtio_dev_reset(z->rng);
	if (virtio_dev_set_features(z->rng, features | VIRTIO_F_BIT(VIRTIO_F_VERSION_1)) != 0 ||
	    virtio_dev_queue_enable(z->rng, 0, qsize, GPA_A, GPA_A + 0x400, GPA_A + 0x800) != 0)
		abort();
	virtio_dev_queue_notify(z->rng, 0);
	virtio_dev_queue_notify(z->rng, 0);
	/* The used ring itself is guest memory a writable buffer may alias,
	 * so judge by the device's own count: everything popped was pushed,
	 * and never more than the avail index allowed. */
	vq = &z->rng->vqs[0];
	if (vq->used_idx > qsize || (!vq_is_broken(vq) && vq->used_idx != vq->last_avail))
		abort();
	if (z->fails > 1 || (z->fails == 1) != virtio_dev_is_broken(z->rng))
		abort();
}

static void on_fail(void *ctx, unsigned q, const char *msg)
{
	((struct fz *)ctx)->fails++;
}

static size_t take(const uint8_t **p, size_t *left, void *dst, size_t n)
{
	size_t k = n < *left ? n : *left;

	memcpy(dst, *p, k);
	memset((uint8_t *)dst + k, 0, n - k);
	*p += k;
	*left -= k;
	return k;
}

static uint64_t fold(uint64_t addr)
{
	/* A window from just before A to just after B, holes included. */
	return GPA_A - 32 + addr % (GPA_B + SIZE_B - GPA_A + 64);
}

static void check_iov(const struct fz *z, const struct iovec *v)
{
	const uint8_t *p = v->iov_base;
	bool in_a = p >= z->a && p + v->iov_len <= z->a + SIZE_A;
	bool in_b = p >= z->b && p + v->iov_len <= z->b + SIZE_B;

	if (v->iov_len == 0 || !(in_a || in_b)) {
		fprintf(stderr, "iovec %p+%zu outside guest memory\n", v->iov_base, v->iov_len);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz z;
	struct vq vq;
	struct iovec iov[16];
	struct vq_chain ch = {.iov = iov};
	uint8_t hdr[2] = {0};
	uint16_t qsize, aidx;
	uint64_t features = 0;
	bool friendly;
	volatile uint8_t sink = 0;

	if (z.a == NULL) {
		z.a = malloc(SIZE_A);
		z.b = malloc(SIZE_B);
		gmem_init(&z.gm);
		if (gmem_add(&z.gm, GPA_A, SIZE_A, z.a) || gmem_add(&z.gm, GPA_B, SIZE_B, z.b))
			abort();
		struct virtio_env env = {
		    .interrupt = on_interrupt, .needs_reset = on_needs_reset, .opaque = &z};

		if (vrng_create(&z.gm, &env, &z.rng) != 0)
			abort();
	}
	memset(z.a, 0, SIZE_A);
	memset(z.b, 0, SIZE_B);
	z.fails = 0;
	take(&data, &size, hdr, 2);
	qsize = (uint16_t)(1u << (hdr[0] % 7)); /* 1..64 */
	if (hdr[1] & 1)
		features |= VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (hdr[1] & 2)
		features |= VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX);
	friendly = hdr[1] & 4;
	ch.iov_cap = (uint16_t)(1 + ((hdr[1] >> 3) & 15));

	/* rings: desc at A+0, avail at A+0x400, used at A+0x800 */
	struct vring_desc *desc = (struct vring_desc *)z.a;
	struct vring_avail *avail = (struct vring_avail *)(z.a + 0x400);

	take(&data, &size, desc, 16u * qsize);
	take(&data, &size, &aidx, 2);
	take(&data, &size, avail->ring, 2u * qsize);
	take(&data, &size, z.a + RINGS, SIZE_A - RINGS);
	take(&data, &size, z.b, SIZE_B);
	if (friendly) {
		for (unsigned i = 0; i < qsize; i++)
			desc[i].addr = htole64(fold(le64toh(desc[i].addr)));
		/* Every 16-byte slot of the data may be an indirect table. */
		for (uint64_t off = RINGS; off + 16 <= SIZE_A; off += 16) {
			uint64_t a;

			memcpy(&a, z.a + off, 8);
			a = htole64(fold(le64toh(a)));
			memcpy(z.a + off, &a, 8);
		}
		aidx = (uint16_t)(le16toh(aidx) % (qsize + 1u));
		aidx = htole16(aidx);
	}
	avail->idx = aidx;

	if (hdr[1] & 0x80) {
		run_device(&z, qsize, features);
		return 0;
	}
	if (vq_setup(&vq, &z.gm, 0, qsize, GPA_A, GPA_A + 0x400, GPA_A + 0x800, features, on_fail,
	             &z) != 0)
		abort();
	for (unsigned n = 0; n < 2u * qsize + 2; n++) {
		int r = vq_pop(&vq, &ch);

		if (r <= 0)
			break;
		for (unsigned i = 0; i < (unsigned)ch.rd + ch.wr; i++) {
			check_iov(&z, &iov[i]);
			if (i < ch.rd)
				sink ^= ((uint8_t *)iov[i].iov_base)[iov[i].iov_len - 1];
			else
				memset(iov[i].iov_base, 0xa5, iov[i].iov_len);
		}
		if (ch.last_wr.iov_len) {
			check_iov(&z, &ch.last_wr);
			((uint8_t *)ch.last_wr.iov_base)[ch.last_wr.iov_len - 1] = 0;
		}
		if (ch.wr_len > 0 && ch.last_wr.iov_len == 0)
			abort(); /* totals and last_wr disagree */
		vq_push(&vq, ch.head, (uint32_t)ch.wr_len);
		if (n % 3 == 0)
			vq_publish(&vq);
		vq_enable_notify(&vq);
	}
	vq_publish(&vq);
	if (z.fails > 1)
		abort(); /* a queue breaks once */
	(void)sink;
	return 0;
}
