/*
 * vq.h - split virtqueue, device side (internal to src/virtio/, and used by
 * the unit tests, fuzz targets and the blk-path benchmark).
 *
 * The ring layouts are drawn in virtio.h.  A device model pops validated
 * chains as iovecs, pushes used elements, then publishes them and asks
 * whether the guest wants an interrupt.  Everything read from the guest is
 * read once into a local before it is checked.
 */
#ifndef ZONEVM_VIRTIO_VQ_H
#define ZONEVM_VIRTIO_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio.h"

#define VQ_SIZE_MAX 32768

#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VRING_DESC_F_INDIRECT 4

#define VRING_USED_F_NO_NOTIFY     1
#define VRING_AVAIL_F_NO_INTERRUPT 1

/* Guest layouts (little-endian); see the diagram in virtio.h. */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries, then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* size entries, then avail_event */
};

static inline uint64_t vring_desc_bytes(uint32_t size)
{
	return 16ull * size;
}
static inline uint64_t vring_avail_bytes(uint32_t size)
{
	return 6ull + 2ull * size;
}
static inline uint64_t vring_used_bytes(uint32_t size)
{
	return 6ull + 8ull * size;
}

/* Called once when the queue breaks; msg says why (a guest fault). */
typedef void vq_fail_fn(void *ctx, unsigned q, const char *msg);

struct vq {
	/* set by vq_setup */
	uint16_t size;
	uint16_t index;
	bool ready;
	bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	const struct gmem *gm;
	vq_fail_fn *fail;
	void *fail_ctx;
	/* device-side state */
	uint16_t last_avail;  /* next avail ring slot to consume */
	uint16_t avail_cache; /* avail->idx as last read */
	uint16_t used_idx;    /* next used slot; used->idx once published */
	uint16_t published;   /* used->idx at the last vq_publish */
	int broken;           /* atomic; set by vq_fail, cleared by vq_setup */
	/* counters */
	uint64_t nr_chains;
	uint64_t nr_interrupts;
};

/*
 * One popped chain.  The caller provides iov[iov_cap]; device-readable
 * buffers come first (rd of them), then device-writable ones (wr).  When
 * the chain has more non-empty buffers than iov_cap, the chain is still
 * fully validated, truncated is set, and the totals and last_wr still
 * describe the whole chain, so a device can fail the request with a status.
 */
struct vq_chain {
	struct iovec *iov;
	uint16_t iov_cap;
	uint16_t head;   /* for vq_push */
	uint16_t rd, wr; /* iovecs stored */
	bool truncated;
	uint32_t ndesc;       /* descriptors walked */
	uint64_t rd_len;      /* total device-readable bytes */
	uint64_t wr_len;      /* total device-writable bytes */
	struct iovec last_wr; /* last non-empty writable buffer, or {0} */
};

/*
 * Map the three rings and reset the indexes.  features are the negotiated
 * ones.  -EINVAL (and the queue stays not ready) on a bad size, alignment
 * or address; the caller reports it.
 */
int vq_setup(struct vq *vq, const struct gmem *gm, unsigned index, uint16_t size, uint64_t desc,
             uint64_t avail, uint64_t used, uint64_t features, vq_fail_fn *fail, void *fail_ctx);
void vq_reset(struct vq *vq);

/* 1 and a chain in *ch, 0 when the ring is empty, -EIO once broken. */
int vq_pop(struct vq *vq, struct vq_chain *ch);
/* Resume a ring another process drove (vhost-user SET_VRING_BASE): pop
 * from avail index avail_base, push after the used ring's current idx. */
void vq_set_base(struct vq *vq, uint16_t avail_base);
/* used->idx as the guest sees it (0 when not ready). */
uint16_t vq_used_idx(const struct vq *vq);
/* Put {head, len} in the used ring; the guest sees it after vq_publish. */
void vq_push(struct vq *vq, uint16_t head, uint32_t len);
/* Make pushed elements visible; true if the guest wants an interrupt. */
bool vq_publish(struct vq *vq);
/* Tell the guest not to notify while we are polling the ring anyway. */
void vq_disable_notify(struct vq *vq);
/* Ask for notifications again; true if buffers arrived meanwhile. */
bool vq_enable_notify(struct vq *vq);
/* Break the queue: no more pops or pushes until vq_setup. */
void vq_fail(struct vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool vq_is_broken(const struct vq *vq);

/* Copy between an iovec array and a flat buffer, starting at byte skip. */
size_t vq_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t vq_buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);

#endif
