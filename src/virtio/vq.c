/*
 * vq.c - split virtqueue, device side: the one chain walker (STYLE rule 1)
 * and the used ring with its notification and interrupt suppression.
 *
 * What it owns: every read of a descriptor, of the available ring and of
 * the event indexes, and every write of the used ring.  Each guest value is
 * read once into a local (the driver may change it under us) and checked
 * before it is used; each (address, length) goes through gmem_translate().
 * What it never does: assert or abort on a guest value.  A fault in a chain
 * or in the avail index breaks the queue (vq_fail), which calls back into
 * the device so that the transport sets DEVICE_NEEDS_RESET (STYLE rule 2);
 * after that the queue neither pops nor pushes until it is set up again.
 *
 * Chain rules enforced by vq_walk (virtio 1.x 2.7.5 and 2.7.13):
 *  - a head and every next index lie inside their table;
 *  - at most queue-size buffer descriptors per chain, and no more
 *    descriptors in a table than the table has, which catches every loop
 *    (a chain longer than its table must visit an entry twice);
 *  - INDIRECT only when negotiated, never inside an indirect table, never
 *    together with NEXT, table length a non-zero multiple of 16;
 *  - device-writable descriptors only after all device-readable ones;
 *  - zero-length descriptors are allowed and skipped: they give no iovec
 *    and their address is never used, but they count toward the chain length.
 *
 * Memory ordering: the driver runs on another CPU and the rings are plain
 * shared memory, so each place where the order of our loads and stores
 * matters has a barrier with a comment saying which driver barrier it pairs
 * with.  Ring fields are little-endian (le16toh and friends).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "vq.h"

static inline uint16_t vq_load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void vq_store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static inline uint16_t *vq_used_event(const struct vq *vq)
{
	return &vq->avail->ring[vq->size];
}

static inline uint16_t *vq_avail_event(const struct vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

bool vq_is_broken(const struct vq *vq)
{
	return __atomic_load_n(&vq->broken, __ATOMIC_ACQUIRE) != 0;
}

void vq_fail(struct vq *vq, const char *fmt, ...)
{
	char msg[192];
	va_list ap;

	/* Only the first fault reports; later ones are the same breakage. */
	if (__atomic_exchange_n(&vq->broken, 1, __ATOMIC_ACQ_REL))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vq->fail)
		vq->fail(vq->fail_ctx, vq->index, msg);
}

static void *vq_map_ring(const struct gmem *gm, uint64_t gpa, uint64_t len, unsigned align)
{
	void *p;

	if (gpa % align)
		return NULL;
	p = gmem_translate(gm, gpa, len);
	if (p == NULL || (uintptr_t)p % align)
		return NULL;
	return p;
}

int vq_setup(struct vq *vq, const struct gmem *gm, unsigned index, uint16_t size, uint64_t desc,
             uint64_t avail, uint64_t used, uint64_t features, vq_fail_fn *fail, void *fail_ctx)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = (uint16_t)index;
	vq->gm = gm;
	vq->fail = fail;
	vq->fail_ctx = fail_ctx;
	if (size == 0 || (size & (size - 1)) != 0 || size > VQ_SIZE_MAX)
		return -EINVAL;
	vq->desc = vq_map_ring(gm, desc, vring_desc_bytes(size), 16);
	vq->avail = vq_map_ring(gm, avail, vring_avail_bytes(size), 2);
	vq->used = vq_map_ring(gm, used, vring_used_bytes(size), 4);
	if (vq->desc == NULL || vq->avail == NULL || vq->used == NULL)
		return -EINVAL;
	vq->size = size;
	vq->event_idx = features & VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	vq->ready = true;
	return 0;
}

void vq_reset(struct vq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

/*
 * Read descriptor i of a table once.  The table may be an indirect one at
 * any alignment, hence memcpy; the compiler barrier after it keeps the
 * compiler from re-reading guest memory instead of using the copy.
 */
static void vq_read_desc(const uint8_t *table, uint32_t i, struct vring_desc *d)
{
	memcpy(d, table + (size_t)i * sizeof(*d), sizeof(*d));
	atomic_signal_fence(memory_order_seq_cst);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static void vq_chain_add(struct vq_chain *ch, void *p, uint32_t len, bool write)
{
	struct iovec v = {.iov_base = p, .iov_len = len};
	bool room = ch->rd + ch->wr < ch->iov_cap && !ch->truncated;

	if (write) {
		ch->wr_len += len;
		ch->last_wr = v;
		if (room)
			ch->iov[ch->rd + ch->wr++] = v;
	} else {
		ch->rd_len += len;
		if (room)
			ch->iov[ch->rd++] = v;
	}
	if (!room)
		ch->truncated = true;
}

static int vq_walk(struct vq *vq, uint16_t head, struct vq_chain *ch)
{
	const uint8_t *table = (const uint8_t *)vq->desc;
	uint32_t tsize = vq->size; /* entries in the current table */
	uint32_t idx = head;
	uint32_t in_table = 0; /* descriptors visited in the current table */
	bool indirect = false, seen_wr = false;
	struct vring_desc d;
	void *p;

	ch->head = head;
	ch->rd = ch->wr = 0;
	ch->truncated = false;
	ch->ndesc = 0;
	ch->rd_len = ch->wr_len = 0;
	ch->last_wr = (struct iovec){0};

	for (;;) {
		if (++in_table > tsize) {
			vq_fail(
			    vq,
			    "chain at head %u loops (more than %u descriptors in a %s table of %u)",
			    head, tsize, indirect ? "indirect" : "queue", tsize);
			return -EIO;
		}
		vq_read_desc(table, idx, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect) {
				vq_fail(vq,
				        "descriptor %u is indirect but INDIRECT_DESC was not "
				        "negotiated",
				        idx);
				return -EIO;
			}
			if (indirect) {
				vq_fail(vq, "chain at head %u: nested indirect descriptor", head);
				return -EIO;
			}
			if (d.flags & VRING_DESC_F_NEXT) {
				vq_fail(vq, "descriptor %u is indirect and has NEXT", idx);
				return -EIO;
			}
			if (d.len == 0 || d.len % sizeof(struct vring_desc) != 0) {
				vq_fail(vq,
				        "descriptor %u: indirect table length %u is not a non-zero "
				        "multiple of 16",
				        idx, d.len);
				return -EIO;
			}
			table = gmem_translate(vq->gm, d.addr, d.len);
			if (table == NULL) {
				vq_fail(
				    vq,
				    "descriptor %u: indirect table 0x%llx+%u outside guest memory",
				    idx, (unsigned long long)d.addr, d.len);
				return -EIO;
			}
			tsize = d.len / sizeof(struct vring_desc);
			indirect = true;
			in_table = 0;
			idx = 0;
			continue;
		}
		if (++ch->ndesc > vq->size) {
			vq_fail(vq, "chain at head %u is longer than the queue size %u", head,
			        vq->size);
			return -EIO;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			seen_wr = true;
		} else if (seen_wr) {
			vq_fail(
			    vq,
			    "chain at head %u: device-readable descriptor %u after a writable one",
			    head, idx);
			return -EIO;
		}
		if (d.len != 0) {
			p = gmem_translate(vq->gm, d.addr, d.len);
			if (p == NULL) {
				vq_fail(vq, "descriptor %u: buffer 0x%llx+%u outside guest memory",
				        idx, (unsigned long long)d.addr, d.len);
				return -EIO;
			}
			vq_chain_add(ch, p, d.len, d.flags & VRING_DESC_F_WRITE);
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= tsize) {
			vq_fail(vq, "descriptor %u: next %u is outside its table of %u", idx,
			        d.next, tsize);
			return -EIO;
		}
		idx = d.next;
	}
}

int vq_pop(struct vq *vq, struct vq_chain *ch)
{
	uint16_t avail_idx, head;

	if (vq_is_broken(vq))
		return -EIO;
	if (!vq->ready)
		return 0;
	if (vq->last_avail == vq->avail_cache) {
		/*
		 * Acquire: the ring slots and descriptors read below were
		 * written by the driver before it stored this index; its wmb
		 * before the avail->idx store pairs with this acquire.
		 */
		avail_idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
		if ((uint16_t)(avail_idx - vq->last_avail) > vq->size) {
			vq_fail(vq, "avail index %u is more than the queue size %u ahead of %u",
			        avail_idx, vq->size, vq->last_avail);
			return -EIO;
		}
		vq->avail_cache = avail_idx;
		if (avail_idx == vq->last_avail)
			return 0;
	}
	head = vq_load16(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	vq->last_avail++;
	if (head >= vq->size) {
		vq_fail(vq, "avail ring slot %u holds head %u, outside the queue of %u",
		        (uint16_t)(vq->last_avail - 1), head, vq->size);
		return -EIO;
	}
	if (vq_walk(vq, head, ch) < 0)
		return -EIO;
	vq->nr_chains++;
	return 1;
}

void vq_set_base(struct vq *vq, uint16_t avail_base)
{
	if (!vq->ready)
		return;
	vq->last_avail = vq->avail_cache = avail_base;
	/* The used ring carries on where the previous owner left it. */
	vq->used_idx = vq->published = vq_load16(&vq->used->idx);
}

uint16_t vq_used_idx(const struct vq *vq)
{
	return vq->ready ? vq_load16(&vq->used->idx) : 0;
}

void vq_push(struct vq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e;

	if (vq_is_broken(vq) || !vq->ready)
		return;
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	vq->used_idx++;
}

bool vq_publish(struct vq *vq)
{
	uint16_t old = vq->published, new = vq->used_idx;
	bool need;

	if (old == new || vq_is_broken(vq) || !vq->ready)
		return false;
	/*
	 * Release: the used elements stored by vq_push, and the request data
	 * written into the guest's buffers before them, become visible before
	 * the new index.  Pairs with the driver's rmb after it reads
	 * used->idx and before it reads the elements.
	 */
	__atomic_store_n(&vq->used->idx, htole16(new), __ATOMIC_RELEASE);
	vq->published = new;
	/*
	 * Full barrier: our store of used->idx must be globally visible before
	 * we load used_event (or avail->flags).  Otherwise a driver that has
	 * just stored a new used_event and re-reads used->idx could see the
	 * old index while we see the old used_event, and neither would act:
	 * a lost interrupt.  Pairs with the driver's mb between storing
	 * used_event and re-checking used->idx.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	if (vq->event_idx) {
		uint16_t ev = vq_load16(vq_used_event(vq));

		/* Interrupt iff used_event lies in [old, new): the driver
		 * asked to hear about the entry at index used_event. */
		need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	} else {
		need = !(vq_load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (need)
		vq->nr_interrupts++;
	return need;
}

void vq_disable_notify(struct vq *vq)
{
	/* With EVENT_IDX, leaving avail_event behind last_avail suppresses
	 * notifications by itself; without it, the used flag does. */
	if (!vq->ready || vq->event_idx || vq_is_broken(vq))
		return;
	vq_store16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool vq_enable_notify(struct vq *vq)
{
	uint16_t idx;

	if (!vq->ready || vq_is_broken(vq))
		return false;
	if (vq->event_idx)
		vq_store16(vq_avail_event(vq), vq->last_avail);
	else
		vq_store16(&vq->used->flags, 0);
	/*
	 * Full barrier: the store above must be visible before we re-read
	 * avail->idx.  Otherwise the driver could add a buffer, read the old
	 * avail_event (or NO_NOTIFY) and skip its notification while we read
	 * the old avail->idx and go idle: a lost wake-up.  Pairs with the
	 * driver's mb between storing avail->idx and reading avail_event or
	 * used->flags.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
	return idx != vq->last_avail;
}

size_t vq_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t vq_buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)buf + done, l);
		done += l;
		skip = 0;
	}
	return done;
}
