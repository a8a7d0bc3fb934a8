/*
 * blk.c - the virtio-blk device model (virtio 1.x, 5.2), device side and
 * transport-independent.
 *
 * What it owns: the config space, the feature bits offered, parsing each
 * request out of a validated chain, bounds checks against the capacity,
 * and the status byte.  What it never does: I/O (a backend does, through
 * struct vblk_backend_ops), touch a file path, or drop a request.  Every
 * request whose chain is sound completes: with OK, or with IOERR when the
 * request is malformed or the host I/O fails, or with UNSUPP for a type or
 * flag we do not implement (STYLE rule 2).  Only a chain the walker rejects
 * breaks the device, and a request with no writable byte for the status
 * completes with used length 0, since there is nowhere to put a status.
 *
 * A request, as the driver lays it out (no framing assumed: any piece may
 * be split over several descriptors, or share one):
 *
 *   readable:  | type le32 | reserved le32 | sector le64 | data (OUT) or
 *              |           discard/write-zeroes segments (16 bytes each) |
 *   writable:  | data (IN) or 20-byte id (GET_ID)          | status u8 |
 *
 * Each queue has a table of queue-size request slots.  A slot is taken
 * when a chain is popped and given back when the request completes; when
 * all slots are in flight we stop popping and resume from vblk_queue_poll
 * once the backend returns some.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VBLK_SUBMITTED -1 /* not a status: the backend has the request */
#define VBLK_NO_STATUS -2 /* not a status: nowhere to write one */

#define VBLK_SEG_MAX            254 /* data segments per request (QEMU: queue size - 2) */
#define VBLK_IOV_MAX            (VBLK_SEG_MAX + 2)
#define VBLK_DWZ_MAX_SECTORS    (UINT32_C(1) << 22) /* 2 GiB per discard */
#define VBLK_WZ_FLAG_UNMAP      1u
#define VBLK_QUEUE_SIZE_DEFAULT 256
#define VBLK_QUEUE_SIZE_MAX     1024

struct vblk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct vblk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* Config space, virtio 1.x 5.2.4; offsets checked below (naturally
 * aligned; packed only so that sizeof is 60, not 64). */
struct __attribute__((packed)) vblk_config_space {
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
};

_Static_assert(offsetof(struct vblk_config_space, blk_size) == 20, "blk_size");
_Static_assert(offsetof(struct vblk_config_space, num_queues) == 34, "num_queues");
_Static_assert(offsetof(struct vblk_config_space, max_discard_sectors) == 36, "discard");
_Static_assert(offsetof(struct vblk_config_space, write_zeroes_may_unmap) == 56, "wz");
_Static_assert(sizeof(struct vblk_config_space) == 60, "config size");
_Static_assert(sizeof(struct vblk_config_space) <= VIRTIO_CONFIG_MAX, "config fits");

struct vblk_req {
	struct vblk_io io; /* first: a backend hands it back */
	struct vq_chain chain;
	uint8_t *status; /* the last writable byte, or NULL */
	struct vblk_req *next_free;
	struct iovec iov[VBLK_IOV_MAX];
};

struct vblk_queue {
	unsigned index;
	struct vblk_req *reqs; /* queue_size slots */
	struct vblk_req *free;
	unsigned inflight; /* with the backend */
	bool need_commit;
	uint64_t nr_requests, nr_ioerr, nr_unsupp;
};

struct vblk {
	struct virtio_dev dev; /* first: virtio.c hands it back */
	struct vblk_backend *be;
	char name[VIRTIO_NAME_MAX];
	bool read_only;
	char id[VBLK_ID_BYTES];
	uint64_t capacity; /* sectors */
	struct vblk_queue *queues;
};

static struct vblk *vblk_of(struct virtio_dev *dev)
{
	return (struct vblk *)dev;
}

/* Return a request to its slot list and put it in the used ring. */
static void vblk_complete(struct vblk *b, struct vblk_queue *bq, struct vblk_req *req, int status)
{
	uint32_t len = 0;

	if (req->status != NULL) {
		*req->status = (uint8_t)status;
		/* Everything up to and including the status byte may have
		 * been written; the writable area ends with it. */
		len = req->chain.wr_len > UINT32_MAX ? UINT32_MAX : (uint32_t)req->chain.wr_len;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		bq->nr_ioerr++;
	else if (status == VIRTIO_BLK_S_UNSUPP)
		bq->nr_unsupp++;
	vq_push(&b->dev.vqs[bq->index], req->chain.head, len);
	req->next_free = bq->free;
	bq->free = req;
}

static bool vblk_in_range(const struct vblk *b, uint64_t sector, uint64_t nsect)
{
	return sector <= b->capacity && nsect <= b->capacity - sector;
}

static int vblk_submit(struct vblk *b, struct vblk_queue *bq, struct vblk_req *req)
{
	int r = b->be->ops->submit(b->be, bq->index, &req->io);

	if (r < 0) {
		virtio_log("%s: %s backend refused a request: %s", b->name, b->be->ops->name,
		           strerror(-r));
		return VIRTIO_BLK_S_IOERR;
	}
	bq->inflight++;
	bq->need_commit = true;
	return VBLK_SUBMITTED;
}

/* IN and OUT: carve the data out of the chain, check it, hand it over. */
static int vblk_parse_rw(struct vblk *b, struct vblk_queue *bq, struct vblk_req *req,
                         uint64_t sector, bool write)
{
	struct vq_chain *ch = &req->chain;
	struct iovec *iov;
	unsigned n;
	uint64_t len;

	if (write) {
		size_t skip = sizeof(struct vblk_outhdr);

		if (b->read_only)
			return VIRTIO_BLK_S_IOERR;
		/* Data follows the header in the readable part. */
		iov = ch->iov;
		n = ch->rd;
		while (n > 0 && skip >= iov->iov_len) {
			skip -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + skip;
			iov->iov_len -= skip;
		}
		len = ch->rd_len - sizeof(struct vblk_outhdr);
	} else {
		/* Data is the writable part minus its last byte, the status
		 * (not truncated, so the last iovec is last_wr). */
		iov = ch->iov + ch->rd;
		n = ch->wr;
		iov[n - 1].iov_len--;
		if (iov[n - 1].iov_len == 0)
			n--;
		len = ch->wr_len - 1;
	}
	if (len % 512 != 0) {
		virtio_dev_log_guest(&b->dev, "%s of %llu bytes is not a multiple of 512",
		                     write ? "write" : "read", (unsigned long long)len);
		return VIRTIO_BLK_S_IOERR;
	}
	if (!vblk_in_range(b, sector, len >> VBLK_SECTOR_SHIFT)) {
		virtio_dev_log_guest(&b->dev, "%s of %llu sectors at %llu beyond capacity %llu",
		                     write ? "write" : "read",
		                     (unsigned long long)(len >> VBLK_SECTOR_SHIFT),
		                     (unsigned long long)sector, (unsigned long long)b->capacity);
		return VIRTIO_BLK_S_IOERR;
	}
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	req->io = (struct vblk_io){
	    .op = write ? VBLK_OP_WRITE : VBLK_OP_READ,
	    /* Without FLUSH the driver believes the cache is write-through. */
	    .dsync = write && !virtio_dev_has(&b->dev, VIRTIO_BLK_F_FLUSH),
	    .offset = sector << VBLK_SECTOR_SHIFT,
	    .len = len,
	    .iov = iov,
	    .iovcnt = n,
	};
	return vblk_submit(b, bq, req);
}

/* DISCARD and WRITE_ZEROES: one segment after the header. */
static int vblk_parse_dwz(struct vblk *b, struct vblk_queue *bq, struct vblk_req *req, bool zeroes)
{
	struct vq_chain *ch = &req->chain;
	struct vblk_dwz_seg seg;
	uint64_t payload = ch->rd_len - sizeof(struct vblk_outhdr);
	uint64_t sector;
	uint32_t nsect, flags;

	if (!virtio_dev_has(&b->dev, zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD))
		return VIRTIO_BLK_S_UNSUPP;
	if (b->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (payload == 0 || payload % sizeof(seg) != 0) {
		virtio_dev_log_guest(&b->dev, "%s payload of %llu bytes is not whole segments",
		                     zeroes ? "write-zeroes" : "discard",
		                     (unsigned long long)payload);
		return VIRTIO_BLK_S_IOERR;
	}
	if (payload > sizeof(seg)) /* max_*_seg is 1 */
		return VIRTIO_BLK_S_UNSUPP;
	vq_iov_to_buf(ch->iov, ch->rd, sizeof(struct vblk_outhdr), &seg, sizeof(seg));
	sector = le64toh(seg.sector);
	nsect = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);
	/* Discard takes no flags; write-zeroes only UNMAP. */
	if (flags & ~(zeroes ? VBLK_WZ_FLAG_UNMAP : 0u))
		return VIRTIO_BLK_S_UNSUPP;
	if (nsect > VBLK_DWZ_MAX_SECTORS || !vblk_in_range(b, sector, nsect)) {
		virtio_dev_log_guest(&b->dev, "%s of %u sectors at %llu beyond limits",
		                     zeroes ? "write-zeroes" : "discard", nsect,
		                     (unsigned long long)sector);
		return VIRTIO_BLK_S_IOERR;
	}
	if (nsect == 0)
		return VIRTIO_BLK_S_OK;
	req->io = (struct vblk_io){
	    .op = zeroes ? VBLK_OP_WRITE_ZEROES : VBLK_OP_DISCARD,
	    .unmap = flags & VBLK_WZ_FLAG_UNMAP,
	    .offset = sector << VBLK_SECTOR_SHIFT,
	    .len = (uint64_t)nsect << VBLK_SECTOR_SHIFT,
	};
	return vblk_submit(b, bq, req);
}

/* Returns a status to complete with now, or VBLK_SUBMITTED/NO_STATUS. */
static int vblk_parse(struct vblk *b, struct vblk_queue *bq, struct vblk_req *req)
{
	struct vq_chain *ch = &req->chain;
	struct vblk_outhdr h;
	size_t idlen;

	req->status = NULL;
	if (ch->last_wr.iov_len == 0) {
		virtio_dev_log_guest(&b->dev, "request at head %u has no writable status byte",
		                     ch->head);
		return VBLK_NO_STATUS;
	}
	req->status = (uint8_t *)ch->last_wr.iov_base + ch->last_wr.iov_len - 1;
	if (ch->rd_len < sizeof(h)) {
		virtio_dev_log_guest(&b->dev, "request at head %u: header of %llu bytes, want 16",
		                     ch->head, (unsigned long long)ch->rd_len);
		return VIRTIO_BLK_S_IOERR;
	}
	if (ch->truncated) {
		virtio_dev_log_guest(&b->dev, "request at head %u has more than %u segments",
		                     ch->head, VBLK_SEG_MAX);
		return VIRTIO_BLK_S_IOERR;
	}
	vq_iov_to_buf(ch->iov, ch->rd, 0, &h, sizeof(h));
	switch (le32toh(h.type)) {
	case VIRTIO_BLK_T_IN:
		return vblk_parse_rw(b, bq, req, le64toh(h.sector), false);
	case VIRTIO_BLK_T_OUT:
		return vblk_parse_rw(b, bq, req, le64toh(h.sector), true);
	case VIRTIO_BLK_T_FLUSH:
		if (b->read_only)
			return VIRTIO_BLK_S_OK; /* nothing was written */
		req->io = (struct vblk_io){.op = VBLK_OP_FLUSH};
		return vblk_submit(b, bq, req);
	case VIRTIO_BLK_T_GET_ID:
		idlen = ch->wr_len - 1 < VBLK_ID_BYTES ? ch->wr_len - 1 : VBLK_ID_BYTES;
		vq_buf_to_iov(ch->iov + ch->rd, ch->wr, 0, b->id, idlen);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
		return vblk_parse_dwz(b, bq, req, false);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return vblk_parse_dwz(b, bq, req, true);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Pop and start requests while slots are free, then signal the guest. */
static void vblk_run(struct vblk *b, struct vblk_queue *bq)
{
	struct vq *vq = &b->dev.vqs[bq->index];
	int r = 0, st;

	for (;;) {
		vq_disable_notify(vq);
		while (bq->free != NULL) {
			struct vblk_req *req = bq->free;

			req->chain.iov = req->iov;
			req->chain.iov_cap = VBLK_IOV_MAX;
			r = vq_pop(vq, &req->chain);
			if (r <= 0)
				break;
			bq->free = req->next_free;
			bq->nr_requests++;
			st = vblk_parse(b, bq, req);
			if (st != VBLK_SUBMITTED)
				vblk_complete(b, bq, req,
				              st == VBLK_NO_STATUS ? VIRTIO_BLK_S_IOERR : st);
		}
		/* Broken, or out of slots: vblk_queue_poll resumes. */
		if (r < 0 || bq->free == NULL)
			break;
		if (!vq_enable_notify(vq))
			break;
	}
	if (bq->need_commit) {
		bq->need_commit = false;
		b->be->ops->commit(b->be, bq->index);
	}
	virtio_dev_signal(&b->dev, bq->index);
}

static void vblk_io_done(struct vblk *b, struct vblk_queue *bq, struct vblk_io *io)
{
	static const char *const opname[] = {
	    [VBLK_OP_READ] = "read",
	    [VBLK_OP_WRITE] = "write",
	    [VBLK_OP_FLUSH] = "flush",
	    [VBLK_OP_DISCARD] = "discard",
	    [VBLK_OP_WRITE_ZEROES] = "write-zeroes",
	};
	struct vblk_req *req = (struct vblk_req *)io;
	int st = VIRTIO_BLK_S_OK;

	bq->inflight--;
	if (io->result == -EOPNOTSUPP && io->op == VBLK_OP_DISCARD) {
		st = VIRTIO_BLK_S_UNSUPP;
	} else if (io->result < 0) {
		/* A host error: the guest learns it as IOERR, never OK.  Rate
		 * limited because a guest can repeat the request. */
		virtio_dev_log_guest(&b->dev, "host %s of %llu bytes at %llu failed: %s",
		                     opname[io->op], (unsigned long long)io->len,
		                     (unsigned long long)io->offset, strerror(-io->result));
		st = VIRTIO_BLK_S_IOERR;
	}
	vblk_complete(b, bq, req, st);
}

int vblk_queue_fd(struct virtio_dev *dev, unsigned q)
{
	struct vblk *b = vblk_of(dev);

	if (q >= dev->num_queues)
		return -1;
	return b->be->ops->queue_fd(b->be, q);
}

void vblk_queue_poll(struct virtio_dev *dev, unsigned q)
{
	struct vblk *b = vblk_of(dev);
	struct vblk_queue *bq;
	struct vblk_io *done[64];
	unsigned n;

	if (q >= dev->num_queues)
		return;
	bq = &b->queues[q];
	do {
		n = b->be->ops->reap(b->be, q, done, 64);
		for (unsigned i = 0; i < n; i++)
			vblk_io_done(b, bq, done[i]);
	} while (n == 64);
	if (dev->vqs[q].ready && !virtio_dev_is_broken(dev))
		vblk_run(b, bq);
	else
		virtio_dev_signal(dev, q);
}

static void vblk_notify(struct virtio_dev *dev, unsigned q)
{
	vblk_run(vblk_of(dev), &vblk_of(dev)->queues[q]);
}

/*
 * Wait for queue q's in-flight requests.  complete: put them in the used
 * ring with their status and signal the guest (a ring handed over to
 * another process); otherwise their results no longer matter (reset).
 */
static void vblk_drain(struct vblk *b, unsigned q, bool complete)
{
	struct vblk_queue *bq = &b->queues[q];
	struct vblk_io *done[64];

	while (bq->inflight > 0) {
		unsigned n = b->be->ops->reap(b->be, q, done, 64);

		if (n == 0 && b->be->ops->wait(b->be, q) < 0)
			break;
		for (unsigned i = 0; i < n; i++) {
			struct vblk_req *req = (struct vblk_req *)done[i];

			if (complete) {
				vblk_io_done(b, bq, done[i]);
				continue;
			}
			bq->inflight--;
			req->next_free = bq->free;
			bq->free = req;
		}
	}
	if (complete)
		virtio_dev_signal(&b->dev, q);
}

static void vblk_queue_drain(struct virtio_dev *dev, unsigned q)
{
	vblk_drain(vblk_of(dev), q, true);
}

static void vblk_reset(struct virtio_dev *dev)
{
	for (unsigned q = 0; q < dev->num_queues; q++)
		vblk_drain(vblk_of(dev), q, false);
}

static void vblk_destroy(struct virtio_dev *dev)
{
	struct vblk *b = vblk_of(dev);

	vblk_reset(dev);
	for (unsigned q = 0; q < dev->num_queues; q++)
		free(b->queues[q].reqs);
	free(b->queues);
	b->be->ops->destroy(b->be);
	virtio_dev_fini(dev);
	free(b);
}

static const struct virtio_dev_ops vblk_ops = {
    .queue_notify = vblk_notify,
    .reset = vblk_reset,
    .queue_drain = vblk_queue_drain,
    .destroy = vblk_destroy,
};

static void vblk_fill_config(struct vblk *b, uint32_t blk_size)
{
	struct vblk_config_space c = {
	    .capacity = htole64(b->capacity),
	    .seg_max = htole32(VBLK_SEG_MAX),
	    .blk_size = htole32(blk_size),
	    .num_queues = htole16(b->dev.num_queues),
	    .max_discard_sectors = htole32(VBLK_DWZ_MAX_SECTORS),
	    .max_discard_seg = htole32(1),
	    .discard_sector_alignment = htole32(blk_size >> VBLK_SECTOR_SHIFT),
	    .max_write_zeroes_sectors = htole32(VBLK_DWZ_MAX_SECTORS),
	    .max_write_zeroes_seg = htole32(1),
	    .write_zeroes_may_unmap = 1,
	};

	memcpy(b->dev.config, &c, sizeof(c));
	b->dev.config_len = sizeof(c);
}

int vblk_create(const struct vblk_config *cfg, struct vblk_backend *be, const struct gmem *gm,
                const struct virtio_env *env, struct virtio_dev **out)
{
	uint16_t qsize = cfg->queue_size ? cfg->queue_size : VBLK_QUEUE_SIZE_DEFAULT;
	uint32_t blk_size = cfg->blk_size ? cfg->blk_size : 512;
	uint64_t feat = VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	                VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_F_BIT(VIRTIO_BLK_F_SEG_MAX) |
	                VIRTIO_F_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH);
	char name[VIRTIO_NAME_MAX];
	struct vblk *b;
	int r;

	if (cfg->num_queues == 0 || cfg->num_queues > be->nr_queues || (qsize & (qsize - 1)) ||
	    qsize > VBLK_QUEUE_SIZE_MAX || be->depth < qsize || be->size % 512 || blk_size < 512 ||
	    (blk_size & (blk_size - 1))) {
		virtio_log("disk \"%s\": bad configuration (%u queues of %u, backend %u queues of "
		           "depth %u, block size %u)",
		           cfg->name, cfg->num_queues, qsize, be->nr_queues, be->depth, blk_size);
		return -EINVAL;
	}
	if (cfg->read_only)
		feat |= VIRTIO_F_BIT(VIRTIO_BLK_F_RO);
	else
		feat |=
		    VIRTIO_F_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_F_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (cfg->num_queues > 1)
		feat |= VIRTIO_F_BIT(VIRTIO_BLK_F_MQ);
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	snprintf(name, sizeof(name), "virtio-blk %s", cfg->name);
	r = virtio_dev_init(&b->dev, &vblk_ops, name, VIRTIO_ID_BLOCK, cfg->num_queues, qsize, feat,
	                    gm, env);
	b->queues = calloc(cfg->num_queues, sizeof(*b->queues));
	if (r < 0 || b->queues == NULL)
		goto nomem;
	for (unsigned q = 0; q < cfg->num_queues; q++) {
		struct vblk_queue *bq = &b->queues[q];

		bq->index = q;
		bq->reqs = calloc(qsize, sizeof(*bq->reqs));
		if (bq->reqs == NULL)
			goto nomem;
		for (unsigned i = qsize; i-- > 0;) {
			bq->reqs[i].next_free = bq->free;
			bq->free = &bq->reqs[i];
		}
	}
	b->be = be;
	snprintf(b->name, sizeof(b->name), "%s", cfg->name);
	b->read_only = cfg->read_only;
	/* NUL-padded, not terminated when all 20 bytes are used */
	memcpy(b->id, cfg->serial, strnlen(cfg->serial, sizeof(b->id)));
	b->capacity = be->size >> VBLK_SECTOR_SHIFT;
	vblk_fill_config(b, blk_size);
	*out = &b->dev;
	return 0;
nomem:
	if (b->queues)
		for (unsigned q = 0; q < cfg->num_queues; q++)
			free(b->queues[q].reqs);
	free(b->queues);
	virtio_dev_fini(&b->dev);
	free(b);
	return -ENOMEM;
}
