/*
 * test_virtio_net.c - the virtio-net device model's rx, tx and control
 * paths, driven by the fake driver of vguest.c, with a datagram socket pair
 * as the packet backend (one packet per readv/writev, as a tap with a vnet
 * header): packets both ways with their 12-byte header, mergeable rx
 * buffers spanning chains (num_buffers) and the chains held for the next
 * packet, a small packet going in when there is little room, rx
 * pausing its fd when the guest has no buffers and resuming on the kick,
 * short and hostile chains, VQ_PAIRS_SET, the config space.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "vguest.h"

#define QSZ 64

struct fx {
	struct vguest g;
	struct vguest_ring rx, tx, ctrl;
	struct virtio_dev *dev;
	int peer[VNET_MAX_PAIRS]; /* the "network" side of each pair's socket */
	int watch_on[3 * VNET_MAX_PAIRS];
	unsigned watch_calls;
	unsigned requeues;
};

static struct fx *fx_of_env;

static void fx_watch(void *opaque, unsigned q, bool on)
{
	struct fx *f = fx_of_env;

	(void)opaque;
	f->watch_on[q] = on;
	f->watch_calls++;
}

static void fx_requeue(void *opaque, unsigned q)
{
	(void)opaque;
	(void)q;
	fx_of_env->requeues++;
}

static void fx_interrupt(void *opaque, unsigned q)
{
	struct vguest *g = opaque;

	(void)q;
	g->interrupts++;
}

static void fx_needs_reset(void *opaque)
{
	struct vguest *g = opaque;

	g->resets++;
}

static struct fx *fx_new(unsigned pairs, uint64_t drop_features)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vnet_config c = {.name = "t0", .mac = {0x02, 0x5a, 1, 2, 3, 4}};
	struct virtio_env env;

	assert_non_null(f);
	fx_of_env = f;
	assert_int_equal(vguest_init(&f->g, 8 << 20), 0);
	env = (struct virtio_env){.interrupt = fx_interrupt,
	                          .needs_reset = fx_needs_reset,
	                          .queue_fd_watch = fx_watch,
	                          .requeue = fx_requeue,
	                          .opaque = &f->g};
	c.pairs = (uint16_t)pairs;
	for (unsigned i = 0; i < pairs; i++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
		c.fds[i] = sv[0];
		f->peer[i] = sv[1];
	}
	assert_int_equal(vnet_create(&c, &f->g.gm, &env, &f->dev), 0);
	assert_int_equal(
	    virtio_dev_set_features(f->dev, virtio_dev_features(f->dev) & ~drop_features), 0);
	vguest_ring_init(&f->g, &f->rx, QSZ);
	vguest_ring_init(&f->g, &f->tx, QSZ);
	assert_int_equal(virtio_dev_queue_enable(f->dev, 0, QSZ, f->rx.desc_gpa, f->rx.avail_gpa,
	                                         f->rx.used_gpa),
	                 0);
	assert_int_equal(virtio_dev_queue_enable(f->dev, 1, QSZ, f->tx.desc_gpa, f->tx.avail_gpa,
	                                         f->tx.used_gpa),
	                 0);
	if (pairs > 1) {
		vguest_ring_init(&f->g, &f->ctrl, QSZ);
		assert_int_equal(virtio_dev_queue_enable(f->dev, 2 * pairs, QSZ, f->ctrl.desc_gpa,
		                                         f->ctrl.avail_gpa, f->ctrl.used_gpa),
		                 0);
	}
	return f;
}

static void fx_free(struct fx *f)
{
	virtio_dev_destroy(f->dev); /* closes the device's ends */
	for (unsigned i = 0; i < VNET_MAX_PAIRS; i++)
		if (f->peer[i] > 0)
			close(f->peer[i]);
	vguest_fini(&f->g);
	free(f);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7);
}

/* A packet as the tap gives it: header (gso_size set as a marker) + data. */
static size_t make_packet(uint8_t *buf, size_t payload, unsigned seed)
{
	struct vnet_hdr h = {.flags = 1, .gso_size = htole16(1448), .num_buffers = 0x7777};

	memcpy(buf, &h, VNET_HDR_LEN);
	fill(buf + VNET_HDR_LEN, payload, seed);
	return VNET_HDR_LEN + payload;
}

/* Post n rx chains of one writable buffer of len bytes; their gpas. */
static void post_rx(struct fx *f, unsigned n, uint32_t len, uint64_t *gpa)
{
	for (unsigned i = 0; i < n; i++) {
		struct vguest_buf b = {.len = len, .write = true};

		b.gpa = vguest_alloc(&f->g, len, 8);
		if (gpa)
			gpa[i] = b.gpa;
		vguest_add_chain(&f->g, &f->rx, &b, 1, false);
	}
}

static void test_tx(void **state)
{
	struct fx *f = fx_new(1, 0);
	uint8_t pkt[1600], got[2048];
	size_t len = make_packet(pkt, 1400, 3);
	uint64_t a = vguest_alloc(&f->g, 40, 8), b = vguest_alloc(&f->g, len - 40, 8);
	struct vguest_buf bufs[2] = {{a, 40, false}, {b, (uint32_t)(len - 40), false}};
	struct vnet_stats st;
	uint32_t id, ulen;

	(void)state;
	/* header and data split at an odd place, through an indirect table */
	memcpy(vguest_ptr(&f->g, a), pkt, 40);
	memcpy(vguest_ptr(&f->g, b), pkt + 40, len - 40);
	vguest_add_chain(&f->g, &f->tx, bufs, 2, true);
	virtio_dev_queue_notify(f->dev, 1);
	assert_int_equal(read(f->peer[0], got, sizeof(got)), (ssize_t)len);
	assert_memory_equal(got, pkt, len);
	assert_true(vguest_get_used(&f->tx, &id, &ulen));
	assert_int_equal(ulen, 0);
	vnet_get_stats(f->dev, &st);
	assert_int_equal(st.tx_packets, 1);
	assert_int_equal(st.tx_bytes, 1400);
	assert_false(virtio_dev_is_broken(f->dev));
	fx_free(f);
}

static void test_tx_short_dropped(void **state)
{
	struct fx *f = fx_new(1, 0);
	struct vguest_buf b = {vguest_alloc(&f->g, 8, 8), 8, false};
	struct vnet_stats st;
	uint8_t got[64];
	uint32_t id, ulen;

	(void)state;
	vguest_add_chain(&f->g, &f->tx, &b, 1, false);
	virtio_dev_queue_notify(f->dev, 1);
	assert_true(vguest_get_used(&f->tx, &id, &ulen));
	assert_int_equal(read(f->peer[0], got, sizeof(got)), -1); /* nothing sent */
	vnet_get_stats(f->dev, &st);
	assert_int_equal(st.tx_dropped, 1);
	assert_false(virtio_dev_is_broken(f->dev));
	fx_free(f);
}

static void test_tx_budget_requeues(void **state)
{
	struct fx *f = fx_new(1, 0);
	struct vguest_ring big;
	uint8_t pkt[100], got[200];
	size_t len = make_packet(pkt, 60, 7);
	unsigned n = 0;
	uint32_t id, ulen;

	(void)state;
	/* a full 256-entry tx ring: one kick sends the budget, then asks to
	 * be called again instead of holding the event loop */
	virtio_dev_reset(f->dev);
	assert_int_equal(virtio_dev_set_features(f->dev, virtio_dev_features(f->dev)), 0);
	vguest_ring_init(&f->g, &big, VNET_QUEUE_SIZE);
	assert_int_equal(virtio_dev_queue_enable(f->dev, 1, VNET_QUEUE_SIZE, big.desc_gpa,
	                                         big.avail_gpa, big.used_gpa),
	                 0);
	for (unsigned i = 0; i < VNET_QUEUE_SIZE; i++) {
		struct vguest_buf b = {vguest_alloc(&f->g, len, 8), (uint32_t)len, false};

		memcpy(vguest_ptr(&f->g, b.gpa), pkt, len);
		vguest_add_chain(&f->g, &big, &b, 1, false);
	}
	virtio_dev_queue_notify(f->dev, 1);
	assert_int_equal(f->requeues, 1);
	while (vguest_get_used(&big, &id, &ulen))
		n++;
	assert_int_equal(n, 256);
	n = 0;
	while (read(f->peer[0], got, sizeof(got)) == (ssize_t)len)
		n++;
	assert_int_equal(n, 256);
	virtio_dev_queue_notify(f->dev, 1); /* the requeued call: nothing left */
	assert_int_equal(f->requeues, 1);
	fx_free(f);
}

static void test_rx_single(void **state)
{
	struct fx *f = fx_new(1, VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF));
	uint8_t pkt[1600];
	size_t len = make_packet(pkt, 1000, 9);
	uint64_t gpa[2];
	uint32_t id, ulen;
	struct vnet_hdr h;

	(void)state;
	post_rx(f, 2, 1526, gpa);
	assert_int_equal(write(f->peer[0], pkt, len), (ssize_t)len);
	vnet_queue_poll(f->dev, 0);
	assert_true(vguest_get_used(&f->rx, &id, &ulen));
	assert_int_equal(id, 0);
	assert_int_equal(ulen, len);
	memcpy(&h, vguest_ptr(&f->g, gpa[0]), sizeof(h));
	assert_int_equal(le16toh(h.num_buffers), 1);
	assert_int_equal(le16toh(h.gso_size), 1448);
	assert_memory_equal((uint8_t *)vguest_ptr(&f->g, gpa[0]) + VNET_HDR_LEN, pkt + VNET_HDR_LEN,
	                    1000);
	assert_false(vguest_get_used(&f->rx, &id, &ulen));
	assert_true(f->g.interrupts > 0);
	fx_free(f);
}

static void test_rx_mergeable(void **state)
{
	struct fx *f = fx_new(1, 0);
	uint8_t pkt[5100], pkt2[200], out[5100];
	size_t len = make_packet(pkt, 5000, 1), len2 = make_packet(pkt2, 100, 2);
	uint64_t gpa[40];
	uint32_t id, ulen, total = 0;
	struct vnet_hdr h;
	unsigned n = 0;
	struct vnet_stats st;

	(void)state;
	/* 40 x 2 KiB = 80 KiB: room for the largest GSO packet */
	post_rx(f, 40, 2048, gpa);
	assert_int_equal(write(f->peer[0], pkt, len), (ssize_t)len);
	assert_int_equal(write(f->peer[0], pkt2, len2), (ssize_t)len2);
	vnet_queue_poll(f->dev, 0);
	while (n < 3 && vguest_get_used(&f->rx, &id, &ulen)) {
		assert_int_equal(id, n);
		memcpy(out + total, vguest_ptr(&f->g, gpa[n]), ulen);
		total += ulen;
		n++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(total, len);
	memcpy(&h, out, sizeof(h));
	assert_int_equal(le16toh(h.num_buffers), 3);
	assert_memory_equal(out + VNET_HDR_LEN, pkt + VNET_HDR_LEN, 5000);
	/* the chains the first packet did not fill were given back: the
	 * second packet starts in the fourth chain */
	assert_true(vguest_get_used(&f->rx, &id, &ulen));
	assert_int_equal(id, 3);
	assert_int_equal(ulen, len2);
	memcpy(&h, vguest_ptr(&f->g, gpa[3]), sizeof(h));
	assert_int_equal(le16toh(h.num_buffers), 1);
	vnet_get_stats(f->dev, &st);
	assert_int_equal(st.rx_packets, 2);
	assert_int_equal(st.rx_bytes, 5100);
	fx_free(f);
}

static void test_rx_waits_for_buffers(void **state)
{
	struct fx *f = fx_new(1, 0);
	static uint8_t pkt[20100], small[300], out[20100];
	size_t len = make_packet(pkt, 20000, 5), slen = make_packet(small, 200, 6);
	uint64_t gpa[40];
	uint32_t id, ulen, total = 0;
	unsigned n = 0;
	struct vnet_hdr h;

	(void)state;
	assert_true(f->watch_on[0]); /* queue start */
	/* a few buffers, not enough for a GSO packet: a small one still goes
	 * in at once, into the first of them */
	post_rx(f, 4, 2048, gpa);
	assert_int_equal(write(f->peer[0], small, slen), (ssize_t)slen);
	vnet_queue_poll(f->dev, 0);
	assert_true(vguest_get_used(&f->rx, &id, &ulen));
	assert_int_equal(id, 0);
	assert_int_equal(ulen, slen);
	assert_memory_equal(vguest_ptr(&f->g, gpa[0]) + VNET_HDR_LEN, small + VNET_HDR_LEN, 200);
	/* a 20 KB packet does not fit in the three left: wait, do not spin */
	assert_int_equal(write(f->peer[0], pkt, len), (ssize_t)len);
	vnet_queue_poll(f->dev, 0);
	assert_false(f->watch_on[0]);
	assert_false(vguest_get_used(&f->rx, &id, &ulen));
	post_rx(f, 36, 2048, gpa + 4);
	virtio_dev_queue_notify(f->dev, 0); /* the guest's kick */
	assert_true(f->watch_on[0]);
	while (vguest_get_used(&f->rx, &id, &ulen)) {
		assert_int_equal(id, 1 + n);
		memcpy(out + total, vguest_ptr(&f->g, gpa[1 + n]), ulen);
		total += ulen;
		n++;
	}
	assert_int_equal(total, len);
	assert_int_equal(n, (len + 2047) / 2048);
	memcpy(&h, out, sizeof(h));
	assert_int_equal(le16toh(h.num_buffers), n);
	assert_memory_equal(out + VNET_HDR_LEN, pkt + VNET_HDR_LEN, 20000);
	fx_free(f);
}

static void test_rx_before_enable_pauses(void **state)
{
	struct fx *f = fx_new(1, 0);

	(void)state;
	virtio_dev_reset(f->dev);
	vnet_queue_poll(f->dev, 0);
	assert_false(f->watch_on[0]);
	fx_free(f);
}

static void test_rx_short_chain_breaks(void **state)
{
	struct fx *f = fx_new(1, VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF));
	uint8_t pkt[100];
	size_t len = make_packet(pkt, 50, 1);
	uint32_t id, ulen;

	(void)state;
	post_rx(f, 1, 4, NULL); /* smaller than the header */
	assert_int_equal(write(f->peer[0], pkt, len), (ssize_t)len);
	vnet_queue_poll(f->dev, 0);
	assert_true(virtio_dev_is_broken(f->dev));
	assert_int_equal(f->g.resets, 1);
	assert_false(vguest_get_used(&f->rx, &id, &ulen));
	/* a broken device stays quiet until reset */
	virtio_dev_queue_notify(f->dev, 1);
	vnet_queue_poll(f->dev, 0);
	assert_int_equal(f->g.resets, 1);
	fx_free(f);
}

static void test_tx_hostile_chain_breaks(void **state)
{
	struct fx *f = fx_new(1, 0);
	uint64_t a = vguest_alloc(&f->g, 64, 8);

	(void)state;
	/* a loop: 0 -> 1 -> 0 */
	vguest_set_desc(&f->tx, 0, a, 32, VRING_DESC_F_NEXT, 1);
	vguest_set_desc(&f->tx, 1, a + 32, 32, VRING_DESC_F_NEXT, 0);
	vguest_publish(&f->tx, 0);
	virtio_dev_queue_notify(f->dev, 1);
	assert_true(virtio_dev_is_broken(f->dev));
	assert_int_equal(f->g.resets, 1);
	fx_free(f);
}

static void test_rx_buffer_outside_memory_breaks(void **state)
{
	struct fx *f = fx_new(1, 0);
	uint8_t pkt[100];
	size_t len = make_packet(pkt, 50, 1);

	(void)state;
	vguest_set_desc(&f->rx, 0, VGUEST_BASE + (8 << 20) - 16, 4096, VRING_DESC_F_WRITE, 0);
	vguest_publish(&f->rx, 0);
	assert_int_equal(write(f->peer[0], pkt, len), (ssize_t)len);
	vnet_queue_poll(f->dev, 0);
	assert_true(virtio_dev_is_broken(f->dev));
	fx_free(f);
}

/* A control request: class, cmd, data (readable), ack (writable). */
static uint8_t ctrl_cmd(struct fx *f, uint8_t cls, uint8_t cmd, uint16_t arg)
{
	uint64_t h = vguest_alloc(&f->g, 2, 2), d = vguest_alloc(&f->g, 2, 2),
	         ack = vguest_alloc(&f->g, 1, 1);
	struct vguest_buf b[3] = {{h, 2, false}, {d, 2, false}, {ack, 1, true}};
	uint8_t *hp = vguest_ptr(&f->g, h);
	uint16_t le = htole16(arg);
	uint32_t id, ulen;

	hp[0] = cls;
	hp[1] = cmd;
	memcpy(vguest_ptr(&f->g, d), &le, 2);
	*(uint8_t *)vguest_ptr(&f->g, ack) = 0xee;
	vguest_add_chain(&f->g, &f->ctrl, b, 3, false);
	virtio_dev_queue_notify(f->dev, 4);
	assert_true(vguest_get_used(&f->ctrl, &id, &ulen));
	assert_int_equal(ulen, 1);
	return *(uint8_t *)vguest_ptr(&f->g, ack);
}

static void test_ctrl_mq(void **state)
{
	struct fx *f = fx_new(2, 0);
	uint8_t pkt[300];
	size_t len = make_packet(pkt, 100, 4);
	struct vguest_ring rx1;
	uint32_t id, ulen;

	(void)state;
	assert_int_equal(f->dev->num_queues, 5);
	assert_true(virtio_dev_features(f->dev) & VIRTIO_F_BIT(VIRTIO_NET_F_MQ));
	assert_int_equal(vnet_active_pairs(f->dev), 1);
	vguest_ring_init(&f->g, &rx1, QSZ);
	assert_int_equal(
	    virtio_dev_queue_enable(f->dev, 2, QSZ, rx1.desc_gpa, rx1.avail_gpa, rx1.used_gpa), 0);
	/* pair 1 is not active yet: its fd pauses */
	assert_int_equal(write(f->peer[1], pkt, len), (ssize_t)len);
	vnet_queue_poll(f->dev, 2);
	assert_false(f->watch_on[2]);
	assert_int_equal(ctrl_cmd(f, 4, 0, 3), 1); /* more pairs than offered */
	assert_int_equal(ctrl_cmd(f, 4, 0, 0), 1);
	assert_int_equal(ctrl_cmd(f, 9, 0, 1), 1); /* unknown class */
	for (unsigned i = 0; i < 40; i++) {
		struct vguest_buf b = {vguest_alloc(&f->g, 2048, 8), 2048, true};

		vguest_add_chain(&f->g, &rx1, &b, 1, false);
	}
	assert_int_equal(ctrl_cmd(f, 4, 0, 2), 0);
	assert_int_equal(vnet_active_pairs(f->dev), 2);
	/* activating the pair resumed its rx: the waiting packet is in */
	assert_true(f->watch_on[2]);
	assert_true(vguest_get_used(&rx1, &id, &ulen));
	assert_int_equal(ulen, len);
	assert_false(virtio_dev_is_broken(f->dev));
	fx_free(f);
}

static void test_config(void **state)
{
	struct fx *f = fx_new(1, 0);
	uint8_t cfg[10];
	uint64_t feat = virtio_dev_features(f->dev);

	(void)state;
	assert_int_equal(f->dev->device_id, VIRTIO_ID_NET);
	assert_int_equal(f->dev->num_queues, 2);
	assert_int_equal(virtio_dev_config_read(f->dev, 0, cfg, sizeof(cfg)), 0);
	assert_memory_equal(cfg, ((uint8_t[]){0x02, 0x5a, 1, 2, 3, 4}), 6);
	assert_int_equal(cfg[6] | cfg[7] << 8, 1); /* LINK_UP */
	assert_int_equal(cfg[8] | cfg[9] << 8, 1);
	assert_int_equal(virtio_dev_config_read(f->dev, 8, cfg, 4), -EINVAL);
	for (unsigned b = 0; b < 64; b++) {
		static const unsigned want[] = {
		    VIRTIO_NET_F_CSUM,       VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MAC,
		    VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4,
		    VIRTIO_NET_F_HOST_TSO6,  VIRTIO_NET_F_MRG_RXBUF,  VIRTIO_NET_F_STATUS,
		    VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_VERSION_1};
		for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (want[i] == b)
				assert_true(feat & VIRTIO_F_BIT(b));
	}
	assert_false(feat & VIRTIO_F_BIT(VIRTIO_NET_F_MQ));
	fx_free(f);
}

static void test_external_leaves_rings(void **state)
{
	struct vguest g;
	struct virtio_dev *dev;
	int sv[2];
	struct vnet_config c = {.name = "vh",
	                        .pairs = 1,
	                        .external = true,
	                        .features_clear = VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF)};
	struct vguest_ring tx;
	uint32_t id, ulen;

	(void)state;
	assert_int_equal(vguest_init(&g, 1 << 20), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
	c.fds[0] = sv[0];
	assert_int_equal(vnet_create(&c, &g.gm, &g.env, &dev), 0);
	assert_false(virtio_dev_features(dev) & VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF));
	assert_int_equal(vnet_queue_fd(dev, 0), -1);
	assert_int_equal(vnet_backend_fd(dev, 0), sv[0]);
	vguest_ring_init(&g, &tx, QSZ);
	assert_int_equal(vguest_ring_enable(&g, &tx, dev, 1), 0);
	{
		struct vguest_buf b = {vguest_alloc(&g, 100, 8), 100, false};

		vguest_add_chain(&g, &tx, &b, 1, false);
	}
	virtio_dev_queue_notify(dev, 1);
	assert_false(vguest_get_used(&tx, &id, &ulen)); /* the kernel's ring */
	virtio_dev_destroy(dev);
	close(sv[1]);
	vguest_fini(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tx),
	    cmocka_unit_test(test_tx_short_dropped),
	    cmocka_unit_test(test_tx_budget_requeues),
	    cmocka_unit_test(test_rx_single),
	    cmocka_unit_test(test_rx_mergeable),
	    cmocka_unit_test(test_rx_waits_for_buffers),
	    cmocka_unit_test(test_rx_before_enable_pauses),
	    cmocka_unit_test(test_rx_short_chain_breaks),
	    cmocka_unit_test(test_tx_hostile_chain_breaks),
	    cmocka_unit_test(test_rx_buffer_outside_memory_breaks),
	    cmocka_unit_test(test_ctrl_mq),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_external_leaves_rings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
