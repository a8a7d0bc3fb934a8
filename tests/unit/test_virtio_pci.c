/*
 * test_virtio_pci.c - the virtio-pci transport without KVM: a virtio-rng
 * device (the real model from src/virtio) behind a real PCI bus and MMIO
 * bus, driven the way the Linux virtio_pci driver drives it, through config
 * space and BAR accesses only.  The VMM side (irqfd, ioeventfd, GSI routes)
 * is a recording fake.
 *
 * Covers: ids and the capability list, BAR sizing and relocation with the
 * doorbells following the BAR, the common configuration state machine
 * (feature windows, FEATURES_OK, queue setup, reset, NEEDS_RESET), MSI-X
 * masking with the PBA, the ISR, and hostile accesses of every size at
 * every offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vguest.h"
#include "vmm/devices/devices.h"

#define SLOT      3
#define BAR       0xc0008000ull
#define BAR2      0xc0010000ull
#define CAPS      0x34
#define NOTIFY_Q0 0x3000
#define MSIX_TAB  0x4000
#define MSIX_PBA  0x6000

#define ST_ACK         0x01
#define ST_DRIVER      0x02
#define ST_DRIVER_OK   0x04
#define ST_FEATURES_OK 0x08
#define ST_NEEDS_RESET 0x40

enum {
	CC_DFSEL = 0x00,
	CC_DF = 0x04,
	CC_GFSEL = 0x08,
	CC_GF = 0x0c,
	CC_MSIX = 0x10,
	CC_NUMQ = 0x12,
	CC_STATUS = 0x14,
	CC_GEN = 0x15,
	CC_QSEL = 0x16,
	CC_QSIZE = 0x18,
	CC_QMSIX = 0x1a,
	CC_QEN = 0x1c,
	CC_QNOFF = 0x1e,
	CC_QDESC = 0x20,
	CC_QDRV = 0x28,
	CC_QDEV = 0x30
};

struct fake_host {
	unsigned routes, fires[8], kicks, logs;
	uint64_t route_addr;
	uint32_t route_data;
	int mapped_q;
	uint64_t mapped_gpa;
	unsigned maps, unmaps;
};

struct fx {
	struct vguest g;
	struct bus mmio;
	struct pci_bus pci;
	struct virtio_dev *dev;
	struct vpci *v;
	struct fake_host h;
	struct vguest_ring ring;
};

static void h_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct fake_host *h = ctx;

	(void)vec;
	h->routes++;
	h->route_addr = addr;
	h->route_data = data;
}

static void h_fire(void *ctx, unsigned vec)
{
	struct fake_host *h = ctx;

	if (vec < 8)
		h->fires[vec]++;
}

static int h_notify_map(void *ctx, unsigned q, uint64_t gpa, bool on)
{
	struct fake_host *h = ctx;

	if (on) {
		h->maps++;
		h->mapped_q = (int)q;
		h->mapped_gpa = gpa;
	} else {
		h->unmaps++;
	}
	return 0;
}

static void h_kick(void *ctx, unsigned q)
{
	struct fake_host *h = ctx;

	(void)q;
	h->kicks++;
}

static void h_log(void *ctx, const char *msg)
{
	struct fake_host *h = ctx;

	(void)msg;
	h->logs++;
}

static void env_interrupt(void *opaque, unsigned q)
{
	vpci_interrupt(((struct fx *)opaque)->v, q);
}

static void env_needs_reset(void *opaque)
{
	vpci_needs_reset(((struct fx *)opaque)->v);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vpci_host host = {.msi_route = h_route,
	                         .msi_fire = h_fire,
	                         .notify_map = h_notify_map,
	                         .notify_kick = h_kick,
	                         .log_guest = h_log};
	struct virtio_env env = {.interrupt = env_interrupt, .needs_reset = env_needs_reset};

	assert_non_null(f);
	assert_int_equal(vguest_init(&f->g, 1 << 20), 0);
	bus_init(&f->mmio, "mmio");
	pci_bus_init(&f->pci);
	env.opaque = f;
	assert_int_equal(vrng_create(&f->g.gm, &env, &f->dev), 0);
	host.ctx = &f->h;
	assert_int_equal(vpci_create(f->dev, &f->mmio, BAR, &host, &f->v), 0);
	assert_int_equal(pci_bus_add(&f->pci, SLOT, vpci_func(f->v)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vpci_destroy(f->v);
	virtio_dev_destroy(f->dev);
	pci_bus_destroy(&f->pci);
	bus_destroy(&f->mmio);
	vguest_fini(&f->g);
	free(f);
	return 0;
}

static uint32_t cfg_r(struct fx *f, unsigned off, unsigned len)
{
	return pci_cfg_read(&f->pci, SLOT, 0, off, len);
}

static void cfg_w(struct fx *f, unsigned off, unsigned len, uint32_t v)
{
	pci_cfg_write(&f->pci, SLOT, 0, off, len, v);
}

static uint64_t bar_r(struct fx *f, uint64_t off, unsigned len)
{
	uint64_t v = 0;

	assert_true(bus_read(&f->mmio, BAR + off, len, &v));
	return v;
}

static void bar_w(struct fx *f, uint64_t off, unsigned len, uint64_t v)
{
	assert_true(bus_write(&f->mmio, BAR + off, len, v));
}

/* Memory decoding on at BAR, as Linux's pci_enable_device leaves it. */
static void enable_mem(struct fx *f)
{
	cfg_w(f, 0x04, 2, 0x0006);
}

/* Find the vendor capability of a type, or the MSI-X capability (type 0). */
static unsigned find_cap(struct fx *f, unsigned type)
{
	unsigned off = cfg_r(f, CAPS, 1), n = 0;

	while (off && n++ < 48) {
		unsigned id = cfg_r(f, off, 1);
		if (type == 0 && id == 0x11)
			return off;
		if (type && id == 0x09 && cfg_r(f, off + 3, 1) == type)
			return off;
		off = cfg_r(f, off + 1, 1);
	}
	return 0;
}

static void test_ids_and_caps(void **state)
{
	struct fx *f = *state;
	unsigned c;

	assert_int_equal(cfg_r(f, 0x00, 2), 0x1af4);
	assert_int_equal(cfg_r(f, 0x02, 2), 0x1044);     /* 0x1040 + VIRTIO_ID_RNG */
	assert_int_equal(cfg_r(f, 0x08, 4), 0xff000001); /* class ff0000, revision 1 */
	assert_int_equal(cfg_r(f, 0x2c, 2), 0x1af4);
	assert_true(cfg_r(f, 0x2e, 2) >= 0x40);
	assert_true(cfg_r(f, 0x06, 2) & 0x10);
	assert_int_equal(cfg_r(f, 0x3d, 1), 0); /* no INTx */

	c = find_cap(f, 1);
	assert_true(c);
	assert_int_equal(cfg_r(f, c + 4, 1), 0); /* BAR0 */
	assert_int_equal(cfg_r(f, c + 8, 4), 0);
	assert_true(cfg_r(f, c + 12, 4) >= 0x38);
	c = find_cap(f, 2);
	assert_true(c);
	assert_int_equal(cfg_r(f, c + 2, 1), 20);
	assert_int_equal(cfg_r(f, c + 8, 4), NOTIFY_Q0);
	assert_int_equal(cfg_r(f, c + 16, 4), 4); /* notify_off_multiplier */
	assert_true(find_cap(f, 3));
	assert_int_equal(find_cap(f, 4), 0); /* rng has no device config */
	c = find_cap(f, 0);
	assert_true(c);
	assert_int_equal(cfg_r(f, c + 2, 2), 1); /* 2 vectors: config + 1 queue */
	assert_int_equal(cfg_r(f, c + 4, 4), MSIX_TAB);
	assert_int_equal(cfg_r(f, c + 8, 4), MSIX_PBA);
	/* Read-only header fields stay. */
	cfg_w(f, 0x00, 4, 0);
	cfg_w(f, c + 4, 4, 0x1234);
	assert_int_equal(cfg_r(f, 0x00, 2), 0x1af4);
	assert_int_equal(cfg_r(f, c + 4, 4), MSIX_TAB);
}

/* VIRTIO_PCI_CAP_PCI_CFG: the BAR through config space, decoded or not. */
static void test_pci_cfg_cap(void **state)
{
	struct fx *f = *state;
	unsigned c = find_cap(f, 5);

	assert_true(c);
	assert_int_equal(cfg_r(f, c + 2, 1), 20);
	/* Memory decoding is off: the window still reaches the registers. */
	cfg_w(f, c + 4, 1, 0);
	cfg_w(f, c + 8, 4, CC_NUMQ);
	cfg_w(f, c + 12, 4, 2);
	assert_int_equal(cfg_r(f, c + 16, 4), 1); /* num_queues */
	cfg_w(f, c + 8, 4, CC_DFSEL);
	cfg_w(f, c + 12, 4, 4);
	cfg_w(f, c + 16, 4, 1);
	enable_mem(f);
	assert_int_equal(bar_r(f, CC_DFSEL, 4), 1);
	/* Hostile windows read as zero and write nothing. */
	cfg_w(f, c + 4, 1, 3); /* BAR3 does not exist */
	assert_int_equal(cfg_r(f, c + 16, 4), 0);
	cfg_w(f, c + 4, 1, 0);
	cfg_w(f, c + 12, 4, 3); /* bad length */
	assert_int_equal(cfg_r(f, c + 16, 4), 0);
	cfg_w(f, c + 8, 4, 0xfffffffe); /* past the BAR */
	cfg_w(f, c + 12, 4, 4);
	cfg_w(f, c + 16, 4, 0xdead);
	assert_int_equal(cfg_r(f, c + 16, 4), 0);
	assert_int_equal(bar_r(f, CC_DFSEL, 4), 1);
}

static void test_bar_sizing_and_moves(void **state)
{
	struct fx *f = *state;
	uint64_t v;

	assert_int_equal(cfg_r(f, 0x10, 4), BAR);
	/* Not decoded until memory space is enabled. */
	assert_false(bus_read(&f->mmio, BAR, 4, &v));
	assert_int_equal(f->h.maps, 0);
	cfg_w(f, 0x10, 4, 0xffffffff);
	assert_int_equal(cfg_r(f, 0x10, 4), 0xffff8000); /* 32 KiB, 32-bit memory */
	cfg_w(f, 0x10, 4, (uint32_t)BAR);
	enable_mem(f);
	assert_true(bus_read(&f->mmio, BAR + CC_NUMQ, 2, &v));
	assert_int_equal(v, 1);
	assert_int_equal(f->h.maps, 1);
	assert_int_equal(f->h.mapped_q, 0);
	assert_int_equal(f->h.mapped_gpa, BAR + NOTIFY_Q0);

	/* The guest moves the BAR while decoding: the doorbell follows. */
	cfg_w(f, 0x10, 4, (uint32_t)BAR2);
	assert_false(bus_read(&f->mmio, BAR, 4, &v));
	assert_true(bus_read(&f->mmio, BAR2 + CC_NUMQ, 2, &v));
	assert_int_equal(f->h.unmaps, 1);
	assert_int_equal(f->h.mapped_gpa, BAR2 + NOTIFY_Q0);

	/* Memory off: nothing decoded, no doorbell. */
	cfg_w(f, 0x04, 2, 0);
	assert_false(bus_read(&f->mmio, BAR2, 4, &v));
	assert_int_equal(f->h.unmaps, 2);
	/* A doorbell write that missed the ioeventfd still kicks the queue. */
	cfg_w(f, 0x10, 4, (uint32_t)BAR);
	enable_mem(f);
	bar_w(f, NOTIFY_Q0, 4, 0);
	assert_int_equal(f->h.kicks, 1);
}

static void test_features(void **state)
{
	struct fx *f = *state;
	uint64_t feat;

	enable_mem(f);
	bar_w(f, CC_DFSEL, 4, 1);
	assert_true(bar_r(f, CC_DF, 4) & 1); /* VERSION_1 is bit 32 */
	bar_w(f, CC_DFSEL, 4, 0);
	feat = bar_r(f, CC_DF, 4);
	bar_w(f, CC_DFSEL, 4, 7);
	assert_int_equal(bar_r(f, CC_DF, 4), 0);

	/* A legacy-minded driver without VERSION_1 is refused. */
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER);
	bar_w(f, CC_GFSEL, 4, 0);
	bar_w(f, CC_GF, 4, feat);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	assert_int_equal(bar_r(f, CC_STATUS, 1), ST_ACK | ST_DRIVER);
	/* Features the device did not offer are refused too. */
	bar_w(f, CC_GFSEL, 4, 1);
	bar_w(f, CC_GF, 4, 1 | 0x80000000u);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	assert_false(bar_r(f, CC_STATUS, 1) & ST_FEATURES_OK);

	bar_w(f, CC_STATUS, 1, 0); /* reset */
	assert_int_equal(bar_r(f, CC_STATUS, 1), 0);
	assert_int_equal(bar_r(f, CC_GF, 4), 0);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER);
	bar_w(f, CC_GFSEL, 4, 1);
	bar_w(f, CC_GF, 4, 1);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	assert_int_equal(bar_r(f, CC_STATUS, 1), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	/* Fixed until reset. */
	bar_w(f, CC_GF, 4, 0);
	assert_int_equal(bar_r(f, CC_GF, 4), 1);
	assert_int_equal(f->dev->guest_features, UINT64_C(1) << 32);
}

/* The driver's side of a queue set up through the common config. */
static void setup_queue(struct fx *f, uint16_t size, uint16_t qvec)
{
	vguest_ring_init(&f->g, &f->ring, size);
	bar_w(f, CC_STATUS, 1, 0);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER);
	bar_w(f, CC_GFSEL, 4, 1);
	bar_w(f, CC_GF, 4, 1);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	bar_w(f, CC_MSIX, 2, 0);
	bar_w(f, CC_QSEL, 2, 0);
	assert_int_equal(bar_r(f, CC_QSIZE, 2), 256);
	assert_int_equal(bar_r(f, CC_QNOFF, 2), 0);
	bar_w(f, CC_QSIZE, 2, size);
	bar_w(f, CC_QMSIX, 2, qvec);
	/* 64-bit addresses in two halves, as iowrite64_twopart does. */
	bar_w(f, CC_QDESC, 4, (uint32_t)f->ring.desc_gpa);
	bar_w(f, CC_QDESC + 4, 4, f->ring.desc_gpa >> 32);
	bar_w(f, CC_QDRV, 8, f->ring.avail_gpa);
	bar_w(f, CC_QDEV, 8, f->ring.used_gpa);
}

static void enable_msix(struct fx *f, bool maskall)
{
	unsigned c = find_cap(f, 0);

	cfg_w(f, c + 2, 2, 0x8000 | (maskall ? 0x4000 : 0));
}

static void program_vector(struct fx *f, unsigned vec, bool masked)
{
	bar_w(f, MSIX_TAB + vec * 16, 4, 0xfee00000);
	bar_w(f, MSIX_TAB + vec * 16 + 4, 4, 0);
	bar_w(f, MSIX_TAB + vec * 16 + 8, 4, 0x40 + vec);
	bar_w(f, MSIX_TAB + vec * 16 + 12, 4, masked);
}

static void test_queue_and_msix(void **state)
{
	struct fx *f = *state;
	struct vguest_buf b = {.len = 64, .write = true};
	uint32_t id, len;

	enable_mem(f);
	setup_queue(f, 8, 1);
	/* A vector the table does not have reads back as NO_VECTOR. */
	bar_w(f, CC_QMSIX, 2, 2);
	assert_int_equal(bar_r(f, CC_QMSIX, 2), 0xffff);
	bar_w(f, CC_QMSIX, 2, 1);
	assert_int_equal(bar_r(f, CC_QMSIX, 2), 1);
	bar_w(f, CC_QEN, 2, 1);
	assert_int_equal(bar_r(f, CC_QEN, 2), 1);
	/* Ring addresses are frozen once the queue is enabled. */
	bar_w(f, CC_QDESC, 8, 0x123);
	assert_int_equal(bar_r(f, CC_QDESC, 8), f->ring.desc_gpa);
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);

	enable_msix(f, false);
	program_vector(f, 1, true);
	assert_true(f->h.routes >= 1);
	assert_int_equal(f->h.route_addr, 0xfee00000);
	assert_int_equal(f->h.route_data, 0x41);
	assert_int_equal(bar_r(f, MSIX_TAB + 16 + 8, 4), 0x41);

	/* A request while the vector is masked: pending, not delivered. */
	b.gpa = vguest_alloc(&f->g, 64, 8);
	vguest_add_chain(&f->g, &f->ring, &b, 1, false);
	vpci_call(f->v, virtio_dev_queue_notify, 0);
	assert_true(vguest_get_used(&f->ring, &id, &len));
	assert_int_equal(len, 64);
	assert_int_equal(f->h.fires[1], 0);
	assert_int_equal(bar_r(f, MSIX_PBA, 8), 2);
	/* Unmask: delivered once, pending bit cleared. */
	bar_w(f, MSIX_TAB + 16 + 12, 4, 0);
	assert_int_equal(f->h.fires[1], 1);
	assert_int_equal(bar_r(f, MSIX_PBA, 8), 0);
	/* Function mask holds it back the same way. */
	enable_msix(f, true);
	vguest_add_chain(&f->g, &f->ring, &b, 1, false);
	vpci_call(f->v, virtio_dev_queue_notify, 0);
	assert_int_equal(f->h.fires[1], 1);
	assert_int_equal(bar_r(f, MSIX_PBA, 1), 2);
	enable_msix(f, false);
	assert_int_equal(f->h.fires[1], 2);
	/* Unmasked: straight through. */
	vguest_add_chain(&f->g, &f->ring, &b, 1, false);
	vpci_call(f->v, virtio_dev_queue_notify, 0);
	assert_int_equal(f->h.fires[1], 3);
	/* The ISR says "queue", and reading it clears it. */
	assert_int_equal(bar_r(f, 0x1000, 1), 1);
	assert_int_equal(bar_r(f, 0x1000, 1), 0);

	/* Reset forgets queues and vectors. */
	bar_w(f, CC_STATUS, 1, 0);
	assert_int_equal(bar_r(f, CC_QEN, 2), 0);
	assert_int_equal(bar_r(f, CC_QMSIX, 2), 0xffff);
	assert_int_equal(bar_r(f, CC_MSIX, 2), 0xffff);
	assert_int_equal(bar_r(f, CC_QSIZE, 2), 256);
}

static void test_needs_reset(void **state)
{
	struct fx *f = *state;
	uint8_t gen;

	enable_mem(f);
	enable_msix(f, false);
	program_vector(f, 0, false);
	setup_queue(f, 8, 1);
	gen = (uint8_t)bar_r(f, CC_GEN, 1);
	bar_w(f, CC_QDESC, 8, f->ring.desc_gpa + 1); /* misaligned */
	bar_w(f, CC_QEN, 2, 1);
	assert_int_equal(bar_r(f, CC_QEN, 2), 0);
	assert_true(bar_r(f, CC_STATUS, 1) & ST_NEEDS_RESET);
	assert_int_not_equal(bar_r(f, CC_GEN, 1), gen);
	assert_int_equal(f->h.fires[0], 1); /* config change vector */
	assert_int_equal(bar_r(f, 0x1000, 1), 2);
	/* The driver cannot clear it except by reset. */
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	assert_true(bar_r(f, CC_STATUS, 1) & ST_NEEDS_RESET);
	bar_w(f, CC_STATUS, 1, 0);
	assert_int_equal(bar_r(f, CC_STATUS, 1), 0);

	/* Queue enabled before FEATURES_OK: a driver bug, the device breaks. */
	bar_w(f, CC_STATUS, 1, ST_ACK | ST_DRIVER);
	bar_w(f, CC_QEN, 2, 1);
	assert_true(bar_r(f, CC_STATUS, 1) & ST_NEEDS_RESET);

	/* A hostile chain breaks the device through the core's callback. */
	setup_queue(f, 8, 1);
	bar_w(f, CC_QEN, 2, 1);
	assert_int_equal(bar_r(f, CC_STATUS, 1) & ST_NEEDS_RESET, 0);
	vguest_set_desc(&f->ring, 0, 0xfff00000000ull, 64, 2 /* WRITE */, 0);
	vguest_publish(&f->ring, 0);
	vpci_call(f->v, virtio_dev_queue_notify, 0);
	assert_true(bar_r(f, CC_STATUS, 1) & ST_NEEDS_RESET);
	assert_true(f->h.logs > 0);
}

/* Every offset, every size, reads then writes of garbage: no crash, and
 * the function still answers with its ids. */
static void test_hostile_accesses(void **state)
{
	struct fx *f = *state;
	static const unsigned lens[] = {1, 2, 4, 8};
	uint64_t v;
	unsigned seed = 12345;

	enable_mem(f);
	for (uint64_t off = 0; off < 0x8000; off++)
		for (unsigned i = 0; i < 4; i++)
			if (off + lens[i] <= 0x8000)
				bus_read(&f->mmio, BAR + off, lens[i], &v);
	for (unsigned n = 0; n < 200000; n++) {
		seed = seed * 1103515245u + 12345u;
		uint64_t off = (seed >> 8) % 0x8000;
		unsigned len = lens[(seed >> 4) & 3];
		uint64_t val = (uint64_t)seed * 0x9e3779b97f4a7c15ull;
		if (off + len <= 0x8000)
			bus_write(&f->mmio, BAR + off, len, val);
		if ((n & 1023) == 0) {
			unsigned c = ((seed >> 3) % 0x100) & ~3u;
			if (c != 0x10 && c != 0x04) /* keep the BAR where we look */
				cfg_w(f, c, 4, (uint32_t)val);
		}
	}
	assert_int_equal(cfg_r(f, 0x00, 4), 0x10441af4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ids_and_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pci_cfg_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing_and_moves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_and_msix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_accesses, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
