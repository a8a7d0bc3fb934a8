/*
 * vguest.c - the fake guest driver behind tests/unit/vguest.h.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vguest.h"

static void vguest_interrupt(void *opaque, unsigned q)
{
	struct vguest *g = opaque;

	g->interrupts++;
}

static void vguest_needs_reset(void *opaque)
{
	struct vguest *g = opaque;

	g->resets++;
}

int vguest_init(struct vguest *g, uint64_t size)
{
	memset(g, 0, sizeof(*g));
	g->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->mem == MAP_FAILED)
		return -errno;
	g->size = size;
	gmem_init(&g->gm);
	g->env = (struct virtio_env){
	    .interrupt = vguest_interrupt,
	    .needs_reset = vguest_needs_reset,
	    .opaque = g,
	};
	return gmem_add(&g->gm, VGUEST_BASE, size, g->mem);
}

void vguest_fini(struct vguest *g)
{
	munmap(g->mem, g->size);
}

uint64_t vguest_alloc(struct vguest *g, uint64_t len, uint64_t align)
{
	uint64_t at = (g->brk + align - 1) & ~(align - 1);

	if (at + len > g->size) {
		fprintf(stderr, "vguest: out of guest memory\n");
		abort();
	}
	g->brk = at + len;
	memset(g->mem + at, 0, len);
	return VGUEST_BASE + at;
}

void *vguest_ptr(struct vguest *g, uint64_t gpa)
{
	return g->mem + (gpa - VGUEST_BASE);
}

void vguest_ring_init(struct vguest *g, struct vguest_ring *r, uint16_t size)
{
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->desc_gpa = vguest_alloc(g, vring_desc_bytes(size), 16);
	r->avail_gpa = vguest_alloc(g, vring_avail_bytes(size), 2);
	r->used_gpa = vguest_alloc(g, vring_used_bytes(size), 4);
	r->desc = vguest_ptr(g, r->desc_gpa);
	r->avail = vguest_ptr(g, r->avail_gpa);
	r->used = vguest_ptr(g, r->used_gpa);
}

int vguest_ring_enable(struct vguest *g, struct vguest_ring *r, struct virtio_dev *dev, unsigned q)
{
	int e = virtio_dev_set_features(dev, virtio_dev_features(dev));

	if (e < 0)
		return e;
	return virtio_dev_queue_enable(dev, q, r->size, r->desc_gpa, r->avail_gpa, r->used_gpa);
}

static void vguest_write_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
                              uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

void vguest_set_desc(struct vguest_ring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	vguest_write_desc(&r->desc[i], addr, len, flags, next);
}

void vguest_publish(struct vguest_ring *r, uint16_t head)
{
	r->avail->ring[r->avail_idx % r->size] = htole16(head);
	r->avail_idx++;
	/* The driver's wmb: ring slot before index. */
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
}

static void vguest_fill(struct vring_desc *table, uint16_t first, uint16_t mod,
                        const struct vguest_buf *bufs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((first + i) % mod);
		uint16_t next = (uint16_t)((first + i + 1) % mod);
		uint16_t flags =
		    (bufs[i].write ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		vguest_write_desc(&table[at], bufs[i].gpa, bufs[i].len, flags, next);
	}
}

uint16_t vguest_add_chain_at(struct vguest_ring *r, uint16_t start, const struct vguest_buf *bufs,
                             unsigned n)
{
	vguest_fill(r->desc, start, r->size, bufs, n);
	vguest_publish(r, start);
	return start;
}

uint16_t vguest_add_chain(struct vguest *g, struct vguest_ring *r, const struct vguest_buf *bufs,
                          unsigned n, bool indirect)
{
	uint16_t head = r->next_desc;

	if (indirect) {
		uint64_t t = vguest_alloc(g, 16ull * n, 16);

		vguest_fill(vguest_ptr(g, t), 0, (uint16_t)n, bufs, n);
		vguest_write_desc(&r->desc[head], t, 16u * n, VRING_DESC_F_INDIRECT, 0);
		r->next_desc = (uint16_t)((head + 1) % r->size);
		vguest_publish(r, head);
		return head;
	}
	r->next_desc = (uint16_t)((head + n) % r->size);
	return vguest_add_chain_at(r, head, bufs, n);
}

bool vguest_get_used(struct vguest_ring *r, uint32_t *id, uint32_t *len)
{
	uint16_t idx = le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));
	struct vring_used_elem *e;

	if (idx == r->used_seen)
		return false;
	e = &r->used->ring[r->used_seen % r->size];
	*id = le32toh(e->id);
	*len = le32toh(e->len);
	r->used_seen++;
	return true;
}
