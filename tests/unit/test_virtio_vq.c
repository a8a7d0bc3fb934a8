/*
 * test_virtio_vq.c - the guest memory map and the split virtqueue walker,
 * with the hostile chains a broken or malicious driver can build: loops,
 * out-of-range and wrapping addresses, zero lengths, overlong chains,
 * nested and malformed indirect tables, readable-after-writable, a runaway
 * avail index.  Each fault must break the queue exactly once and never
 * crash; good chains must come out as the right iovecs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vguest.h"

#define QSZ 8

struct fixture {
	struct vguest g;
	struct vguest_ring r;
	struct vq vq;
	unsigned fails;
	char msg[192];
	struct iovec iov[16];
	struct vq_chain ch;
};

static void on_fail(void *ctx, unsigned q, const char *msg)
{
	struct fixture *f = ctx;

	f->fails++;
	snprintf(f->msg, sizeof(f->msg), "%s", msg);
}

static int setup_features(void **state, uint64_t features)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(vguest_init(&f->g, 1 << 20), 0);
	vguest_ring_init(&f->g, &f->r, QSZ);
	assert_int_equal(vq_setup(&f->vq, &f->g.gm, 0, QSZ, f->r.desc_gpa, f->r.avail_gpa,
	                          f->r.used_gpa, features, on_fail, f),
	                 0);
	f->ch = (struct vq_chain){.iov = f->iov, .iov_cap = 16};
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_features(state, VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	                                 VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX));
}

static int setup_plain(void **state)
{
	return setup_features(state, 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vguest_fini(&f->g);
	free(f);
	return 0;
}

/* The chain at head must break the queue, once, and keep it broken. */
static void expect_broken(struct fixture *f, const char *why)
{
	assert_int_equal(vq_pop(&f->vq, &f->ch), -EIO);
	assert_int_equal(f->fails, 1);
	assert_non_null(strstr(f->msg, why));
	assert_true(vq_is_broken(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->ch), -EIO);
	vq_push(&f->vq, 0, 0);
	assert_false(vq_publish(&f->vq));
	assert_int_equal(f->fails, 1);
}

static void test_gmem(void **state)
{
	static uint8_t a[0x1000], b[0x1000];
	struct gmem gm;

	gmem_init(&gm);
	assert_int_equal(gmem_add(&gm, 0x3000, 0x1000, b), 0);
	assert_int_equal(gmem_add(&gm, 0x1000, 0x1000, a), 0);
	assert_int_equal(gmem_add(&gm, 0x1800, 0x100, a), -EINVAL);        /* inside */
	assert_int_equal(gmem_add(&gm, 0x0800, 0x1000, a), -EINVAL);       /* overlaps start */
	assert_int_equal(gmem_add(&gm, 0x2fff, 2, a), -EINVAL);            /* overlaps next */
	assert_int_equal(gmem_add(&gm, UINT64_MAX - 10, 100, a), -EINVAL); /* wraps */
	assert_int_equal(gmem_add(&gm, 0x5000, 0, a), -EINVAL);            /* empty */
	assert_ptr_equal(gmem_translate(&gm, 0x1000, 0x1000), a);
	assert_ptr_equal(gmem_translate(&gm, 0x1fff, 1), a + 0xfff);
	assert_ptr_equal(gmem_translate(&gm, 0x3800, 0x800), b + 0x800);
	assert_null(gmem_translate(&gm, 0x1fff, 2));      /* crosses the end */
	assert_null(gmem_translate(&gm, 0x2000, 1));      /* in the gap */
	assert_null(gmem_translate(&gm, 0x1800, 0x2000)); /* spans both */
	assert_null(gmem_translate(&gm, 0xfff, 2));       /* before the start */
	assert_null(gmem_translate(&gm, 0x1000, 0));      /* empty */
	assert_null(gmem_translate(&gm, 0x1000, UINT64_MAX));
	assert_null(gmem_translate(&gm, UINT64_MAX, 2));
	assert_null(gmem_translate(&gm, 0x3fff, UINT64_MAX));
	assert_null(gmem_translate(&gm, 0, 1));
	/* Adjacent regions are fine, but a range still lies in one region. */
	assert_int_equal(gmem_add(&gm, 0x2000, 0x1000, a), 0);
	assert_null(gmem_translate(&gm, 0x1fff, 2));
	assert_int_equal(gm.nr, 3);
}

static void test_setup_rejects(void **state)
{
	struct fixture *f = *state;
	struct vq vq;
	uint64_t end = VGUEST_BASE + f->g.size;

	assert_int_equal(vq_setup(&vq, &f->g.gm, 0, 3, f->r.desc_gpa, f->r.avail_gpa, f->r.used_gpa,
	                          0, on_fail, f),
	                 -EINVAL);
	assert_int_equal(vq_setup(&vq, &f->g.gm, 0, 0, f->r.desc_gpa, f->r.avail_gpa, f->r.used_gpa,
	                          0, on_fail, f),
	                 -EINVAL);
	assert_int_equal(vq_setup(&vq, &f->g.gm, 0, QSZ, f->r.desc_gpa + 8, f->r.avail_gpa,
	                          f->r.used_gpa, 0, on_fail, f),
	                 -EINVAL);
	assert_int_equal(vq_setup(&vq, &f->g.gm, 0, QSZ, f->r.desc_gpa, f->r.avail_gpa + 1,
	                          f->r.used_gpa, 0, on_fail, f),
	                 -EINVAL);
	assert_int_equal(
	    vq_setup(&vq, &f->g.gm, 0, QSZ, f->r.desc_gpa, f->r.avail_gpa, end - 16, 0, on_fail, f),
	    -EINVAL);
	assert_int_equal(
	    vq_setup(&vq, &f->g.gm, 0, QSZ, 0, f->r.avail_gpa, f->r.used_gpa, 0, on_fail, f),
	    -EINVAL);
	assert_false(vq.ready);
	assert_int_equal(vq_pop(&vq, &f->ch), 0);
}

static void test_good_chain(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr = vguest_alloc(&f->g, 16, 8), data = vguest_alloc(&f->g, 4096, 8);
	uint64_t st = vguest_alloc(&f->g, 1, 1);
	struct vguest_buf bufs[] = {{hdr, 16, false}, {data, 4096, true}, {st, 1, true}};
	uint16_t head = vguest_add_chain(&f->g, &f->r, bufs, 3, false);

	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	assert_int_equal(f->ch.head, head);
	assert_int_equal(f->ch.rd, 1);
	assert_int_equal(f->ch.wr, 2);
	assert_int_equal(f->ch.rd_len, 16);
	assert_int_equal(f->ch.wr_len, 4097);
	assert_ptr_equal(f->iov[0].iov_base, vguest_ptr(&f->g, hdr));
	assert_ptr_equal(f->iov[1].iov_base, vguest_ptr(&f->g, data));
	assert_ptr_equal(f->ch.last_wr.iov_base, vguest_ptr(&f->g, st));
	assert_false(f->ch.truncated);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 0);
	/* Indirect, same buffers. */
	head = vguest_add_chain(&f->g, &f->r, bufs, 3, true);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	assert_int_equal(f->ch.head, head);
	assert_int_equal(f->ch.rd + f->ch.wr, 3);
	assert_int_equal(f->ch.wr_len, 4097);
	assert_int_equal(f->fails, 0);
}

static void test_chain_of_queue_size(void **state)
{
	struct fixture *f = *state;
	struct vguest_buf bufs[QSZ];

	for (unsigned i = 0; i < QSZ; i++)
		bufs[i] = (struct vguest_buf){vguest_alloc(&f->g, 64, 8), 64, i >= QSZ / 2};
	vguest_add_chain(&f->g, &f->r, bufs, QSZ, false);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	assert_int_equal(f->ch.ndesc, QSZ);
	assert_int_equal(f->fails, 0);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);

	vguest_set_desc(&f->r, 2, b, 64, VRING_DESC_F_NEXT, 5);
	vguest_set_desc(&f->r, 5, b, 64, VRING_DESC_F_NEXT, 2);
	vguest_publish(&f->r, 2);
	expect_broken(f, "loops");
}

static void test_self_loop_in_indirect(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8), t = vguest_alloc(&f->g, 32, 16);
	struct vring_desc *tab = vguest_ptr(&f->g, t);

	tab[0] = (struct vring_desc){b, 64, VRING_DESC_F_NEXT, 1};
	tab[1] = (struct vring_desc){b, 64, VRING_DESC_F_NEXT, 1};
	vguest_set_desc(&f->r, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "loops");
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;

	vguest_set_desc(&f->r, 0, VGUEST_BASE + f->g.size - 4, 8, 0, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "outside guest memory");
}

static void test_addr_len_overflow(void **state)
{
	struct fixture *f = *state;

	vguest_set_desc(&f->r, 0, UINT64_MAX - 1, 16, VRING_DESC_F_WRITE, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "outside guest memory");
}

static void test_zero_length_skipped(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);

	/* A zero-length buffer at a wild address gives no iovec. */
	vguest_set_desc(&f->r, 0, UINT64_MAX, 0, VRING_DESC_F_NEXT, 1);
	vguest_set_desc(&f->r, 1, b, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vguest_set_desc(&f->r, 2, 0, 0, VRING_DESC_F_WRITE, 0);
	vguest_publish(&f->r, 0);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	assert_int_equal(f->ch.rd, 0);
	assert_int_equal(f->ch.wr, 1);
	assert_int_equal(f->ch.ndesc, 3);
	assert_int_equal(f->ch.wr_len, 64);
	assert_ptr_equal(f->ch.last_wr.iov_base, vguest_ptr(&f->g, b));
	assert_int_equal(f->fails, 0);
}

static void test_overlong_indirect(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8), t = vguest_alloc(&f->g, 16 * 2 * QSZ, 16);
	struct vring_desc *tab = vguest_ptr(&f->g, t);

	/* 2*QSZ descriptors, no loop: longer than the queue size. */
	for (uint16_t i = 0; i < 2 * QSZ; i++)
		tab[i] = (struct vring_desc){b, 64, i + 1 < 2 * QSZ ? VRING_DESC_F_NEXT : 0,
		                             (uint16_t)(i + 1)};
	vguest_set_desc(&f->r, 0, t, 16 * 2 * QSZ, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "longer than the queue size");
}

static void test_nested_indirect(void **state)
{
	struct fixture *f = *state;
	uint64_t t = vguest_alloc(&f->g, 16, 16), t2 = vguest_alloc(&f->g, 16, 16);
	struct vring_desc *tab = vguest_ptr(&f->g, t);

	tab[0] = (struct vring_desc){t2, 16, VRING_DESC_F_INDIRECT, 0};
	vguest_set_desc(&f->r, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "nested indirect");
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;
	uint64_t t = vguest_alloc(&f->g, 32, 16);

	vguest_set_desc(&f->r, 0, t, 24, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "multiple of 16");
}

static void test_indirect_zero_length(void **state)
{
	struct fixture *f = *state;

	vguest_set_desc(&f->r, 0, VGUEST_BASE, 0, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "multiple of 16");
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;
	uint64_t t = vguest_alloc(&f->g, 16, 16);

	vguest_set_desc(&f->r, 0, t, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	vguest_publish(&f->r, 0);
	expect_broken(f, "has NEXT");
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;
	uint64_t t = vguest_alloc(&f->g, 16, 16);

	vguest_set_desc(&f->r, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "not negotiated");
}

static void test_indirect_table_out_of_range(void **state)
{
	struct fixture *f = *state;

	vguest_set_desc(&f->r, 0, VGUEST_BASE + f->g.size - 16, 32, VRING_DESC_F_INDIRECT, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "indirect table");
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);

	vguest_set_desc(&f->r, 0, b, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vguest_set_desc(&f->r, 1, b, 16, 0, 0);
	vguest_publish(&f->r, 0);
	expect_broken(f, "device-readable descriptor 1 after a writable");
}

static void test_avail_idx_too_far(void **state)
{
	struct fixture *f = *state;

	f->r.avail->idx = htole16(QSZ + 1);
	expect_broken(f, "more than the queue size");
}

static void test_avail_idx_backwards(void **state)
{
	struct fixture *f = *state;

	f->r.avail->idx = htole16(0xffff);
	expect_broken(f, "more than the queue size");
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	vguest_publish(&f->r, QSZ);
	expect_broken(f, "outside the queue");
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);

	vguest_set_desc(&f->r, 0, b, 16, VRING_DESC_F_NEXT, QSZ);
	vguest_publish(&f->r, 0);
	expect_broken(f, "outside its table");
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	struct vguest_buf bufs[5];

	for (unsigned i = 0; i < 5; i++)
		bufs[i] = (struct vguest_buf){vguest_alloc(&f->g, 100, 8), 100, i >= 2};
	vguest_add_chain(&f->g, &f->r, bufs, 5, false);
	f->ch.iov_cap = 3;
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	assert_true(f->ch.truncated);
	assert_int_equal(f->ch.rd, 2);
	assert_int_equal(f->ch.wr, 1);
	assert_int_equal(f->ch.rd_len, 200);
	assert_int_equal(f->ch.wr_len, 300);
	assert_ptr_equal(f->ch.last_wr.iov_base, vguest_ptr(&f->g, bufs[4].gpa));
	assert_int_equal(f->fails, 0);
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);
	struct vguest_buf buf = {b, 64, true};
	uint16_t *used_event = &f->r.avail->ring[QSZ];
	uint16_t *avail_event = (uint16_t *)&f->r.used->ring[QSZ];

	assert_false(vq_publish(&f->vq)); /* nothing pushed */
	vguest_add_chain(&f->g, &f->r, &buf, 1, false);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	/* Notification suppression: avail_event follows what we consumed. */
	assert_false(vq_enable_notify(&f->vq));
	assert_int_equal(le16toh(*avail_event), 1);
	vguest_add_chain(&f->g, &f->r, &buf, 1, false);
	assert_true(vq_enable_notify(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	/* used_event 0: the driver wants to hear about entry 0. */
	*used_event = htole16(0);
	vq_push(&f->vq, f->ch.head, 64);
	assert_true(vq_publish(&f->vq));
	assert_int_equal(le16toh(f->r.used->idx), 1);
	/* used_event 5: entries 1.. are not interesting yet. */
	*used_event = htole16(5);
	vq_push(&f->vq, f->ch.head, 64);
	assert_false(vq_publish(&f->vq));
	/* Crossing it in one batch does interrupt. */
	for (int i = 0; i < 4; i++)
		vq_push(&f->vq, f->ch.head, 64);
	assert_true(vq_publish(&f->vq));
	assert_int_equal(le16toh(f->r.used->idx), 6);
}

static void test_no_event_idx_flags(void **state)
{
	struct fixture *f = *state;
	uint64_t b = vguest_alloc(&f->g, 64, 8);
	struct vguest_buf buf = {b, 64, true};

	vq_disable_notify(&f->vq);
	assert_int_equal(le16toh(f->r.used->flags), VRING_USED_F_NO_NOTIFY);
	assert_false(vq_enable_notify(&f->vq));
	assert_int_equal(le16toh(f->r.used->flags), 0);
	vguest_add_chain(&f->g, &f->r, &buf, 1, false);
	assert_int_equal(vq_pop(&f->vq, &f->ch), 1);
	vq_push(&f->vq, f->ch.head, 1);
	assert_true(vq_publish(&f->vq));
	f->r.avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	vq_push(&f->vq, f->ch.head, 1);
	assert_false(vq_publish(&f->vq));
	assert_int_equal(le16toh(f->r.used->idx), 2);
	assert_int_equal(le32toh(f->r.used->ring[1].len), 1);
}

/* The device layer: a bad chain sets NEEDS_RESET once; reset recovers. */
static void test_device_needs_reset(void **state)
{
	struct vguest g;
	struct vguest_ring r;
	struct virtio_dev *dev;
	uint8_t cfg[4];
	uint64_t b;
	uint32_t id, len;

	assert_int_equal(vguest_init(&g, 1 << 20), 0);
	assert_int_equal(vrng_create(&g.gm, &g.env, &dev), 0);
	assert_int_equal(virtio_dev_set_features(dev, 0), -EINVAL); /* no VERSION_1 */
	assert_int_equal(virtio_dev_set_features(dev, VIRTIO_F_BIT(VIRTIO_F_VERSION_1) |
	                                                  VIRTIO_F_BIT(VIRTIO_BLK_F_RO)),
	                 -EINVAL);
	assert_int_equal(virtio_dev_config_read(dev, 0, cfg, 1), -EINVAL);
	vguest_ring_init(&g, &r, 16);
	assert_int_equal(virtio_dev_queue_enable(dev, 0, 512, r.desc_gpa, r.avail_gpa, r.used_gpa),
	                 -EINVAL);
	assert_int_equal(virtio_dev_queue_enable(dev, 1, 16, r.desc_gpa, r.avail_gpa, r.used_gpa),
	                 -EINVAL);
	assert_int_equal(vguest_ring_enable(&g, &r, dev, 0), 0);
	virtio_dev_queue_notify(dev, 7); /* no such queue: ignored */
	/* Entropy into a writable buffer. */
	b = vguest_alloc(&g, 64, 8);
	vguest_add_chain(&g, &r, &(struct vguest_buf){b, 64, true}, 1, false);
	virtio_dev_queue_notify(dev, 0);
	assert_true(vguest_get_used(&r, &id, &len));
	assert_int_equal(len, 64);
	assert_int_equal(g.interrupts, 1);
	assert_false(memcmp(vguest_ptr(&g, b), (uint8_t[64]){0}, 64) == 0);
	/* A looping chain breaks the device, once. */
	vguest_set_desc(&r, 3, b, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	vguest_publish(&r, 3);
	virtio_dev_queue_notify(dev, 0);
	virtio_dev_queue_notify(dev, 0);
	assert_int_equal(g.resets, 1);
	assert_true(virtio_dev_is_broken(dev));
	assert_false(vguest_get_used(&r, &id, &len));
	/* Reset and start again on a fresh ring. */
	virtio_dev_reset(dev);
	assert_false(virtio_dev_is_broken(dev));
	vguest_ring_init(&g, &r, 16);
	assert_int_equal(vguest_ring_enable(&g, &r, dev, 0), 0);
	vguest_add_chain(&g, &r, &(struct vguest_buf){b, 32, true}, 1, true);
	virtio_dev_queue_notify(dev, 0);
	assert_true(vguest_get_used(&r, &id, &len));
	assert_int_equal(len, 32);
	virtio_dev_destroy(dev);
	vguest_fini(&g);
}

#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TP(fn) cmocka_unit_test_setup_teardown(fn, setup_plain, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gmem),
	    T(test_setup_rejects),
	    T(test_good_chain),
	    T(test_chain_of_queue_size),
	    T(test_loop),
	    T(test_self_loop_in_indirect),
	    T(test_out_of_range),
	    T(test_addr_len_overflow),
	    T(test_zero_length_skipped),
	    T(test_overlong_indirect),
	    T(test_nested_indirect),
	    T(test_indirect_bad_length),
	    T(test_indirect_zero_length),
	    T(test_indirect_with_next),
	    TP(test_indirect_not_negotiated),
	    T(test_indirect_table_out_of_range),
	    T(test_readable_after_writable),
	    T(test_avail_idx_too_far),
	    T(test_avail_idx_backwards),
	    T(test_head_out_of_range),
	    T(test_next_out_of_range),
	    T(test_truncated),
	    T(test_event_idx),
	    TP(test_no_event_idx_flags),
	    cmocka_unit_test(test_device_needs_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
