/*
 * vguest.h - a fake guest for the virtio core's tests, fuzz targets and
 * the blk-path benchmark: a block of host memory registered in a gmem at a
 * non-zero guest address, a bump allocator over it, and the driver side of
 * split virtqueues (descriptors, avail ring, reading the used ring).
 *
 * It plays the driver as the virtio spec describes it, byte for byte in the
 * guest layout, so the device code under test runs unmodified; it is a test
 * harness, not a mock of that code.  It also lets a test write any raw
 * descriptor, to build the hostile chains a broken or malicious driver
 * would.
 */
#ifndef ZONEVM_TESTS_VGUEST_H
#define ZONEVM_TESTS_VGUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "virtio/vq.h"

#define VGUEST_BASE 0x100000ull /* gpa of the first byte of guest memory */

struct vguest {
	uint8_t *mem;
	uint64_t size;
	uint64_t brk; /* bump allocator, offset from VGUEST_BASE */
	struct gmem gm;
	struct virtio_env env;
	unsigned interrupts;
	unsigned resets;
};

struct vguest_ring {
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t next_desc; /* for vguest_add_chain */
	uint16_t avail_idx;
	uint16_t used_seen;
};

struct vguest_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

int vguest_init(struct vguest *g, uint64_t size);
void vguest_fini(struct vguest *g);
/* Allocate guest memory (zeroed); returns its gpa. Aborts the test if full. */
uint64_t vguest_alloc(struct vguest *g, uint64_t len, uint64_t align);
void *vguest_ptr(struct vguest *g, uint64_t gpa);
void vguest_ring_init(struct vguest *g, struct vguest_ring *r, uint16_t size);
/* Tell a device about the ring, with all offered features accepted. */
int vguest_ring_enable(struct vguest *g, struct vguest_ring *r, struct virtio_dev *dev, unsigned q);
/* Write one raw descriptor (test-chosen values, valid or not). */
void vguest_set_desc(struct vguest_ring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next);
/* Put head in the next avail slot and publish it (wmb, then idx++). */
void vguest_publish(struct vguest_ring *r, uint16_t head);
/* Build a well-formed chain from bufs at r->next_desc and publish it. With
 * indirect, one descriptor points to a table allocated in guest memory. */
uint16_t vguest_add_chain(struct vguest *g, struct vguest_ring *r, const struct vguest_buf *bufs,
                          unsigned n, bool indirect);
/* Same, at a fixed descriptor index start (bench: slots reused). */
uint16_t vguest_add_chain_at(struct vguest_ring *r, uint16_t start, const struct vguest_buf *bufs,
                             unsigned n);
/* Next used element, if the device published one. */
bool vguest_get_used(struct vguest_ring *r, uint32_t *id, uint32_t *len);

#endif
