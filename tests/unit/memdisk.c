/*
 * memdisk.c - the in-memory virtio-blk backend behind memdisk.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdisk.h"

struct memdisk_queue {
	struct vblk_io **done;
	unsigned nr_done;
};

struct memdisk {
	struct vblk_backend be; /* first */
	uint8_t *data;
	struct memdisk_queue *q;
};

static void memdisk_check(const struct memdisk *m, const struct vblk_io *io)
{
	if (io->offset > m->be.size || io->len > m->be.size - io->offset) {
		fprintf(stderr, "memdisk: io %d at %llu+%llu outside a disk of %llu\n", io->op,
		        (unsigned long long)io->offset, (unsigned long long)io->len,
		        (unsigned long long)m->be.size);
		abort();
	}
}

static int memdisk_submit(struct vblk_backend *be, unsigned q, struct vblk_io *io)
{
	struct memdisk *m = (struct memdisk *)be;
	struct memdisk_queue *mq = &m->q[q];
	uint64_t off = io->offset, left = io->len;

	if (mq->nr_done == be->depth)
		return -EBUSY;
	if (io->op != VBLK_OP_FLUSH)
		memdisk_check(m, io);
	switch (io->op) {
	case VBLK_OP_READ:
	case VBLK_OP_WRITE:
		for (unsigned i = 0; i < io->iovcnt && left > 0; i++) {
			size_t l = io->iov[i].iov_len < left ? io->iov[i].iov_len : left;

			if (io->op == VBLK_OP_READ)
				memcpy(io->iov[i].iov_base, m->data + off, l);
			else
				memcpy(m->data + off, io->iov[i].iov_base, l);
			off += l;
			left -= l;
		}
		io->result = left == 0 ? 0 : -EIO;
		break;
	case VBLK_OP_DISCARD:
	case VBLK_OP_WRITE_ZEROES:
		memset(m->data + off, 0, left);
		io->result = 0;
		break;
	case VBLK_OP_FLUSH:
		io->result = 0;
		break;
	}
	mq->done[mq->nr_done++] = io;
	return 0;
}

static void memdisk_commit(struct vblk_backend *be, unsigned q)
{
}

static unsigned memdisk_reap(struct vblk_backend *be, unsigned q, struct vblk_io **done,
                             unsigned max)
{
	struct memdisk_queue *mq = &((struct memdisk *)be)->q[q];
	unsigned n = mq->nr_done < max ? mq->nr_done : max;

	memcpy(done, mq->done + (mq->nr_done - n), n * sizeof(*done));
	mq->nr_done -= n;
	return n;
}

static int memdisk_wait(struct vblk_backend *be, unsigned q)
{
	return ((struct memdisk *)be)->q[q].nr_done ? 0 : -EAGAIN;
}

static int memdisk_queue_fd(struct vblk_backend *be, unsigned q)
{
	return -1;
}

static void memdisk_destroy(struct vblk_backend *be)
{
	struct memdisk *m = (struct memdisk *)be;

	for (unsigned i = 0; i < be->nr_queues; i++)
		free(m->q[i].done);
	free(m->q);
	free(m->data);
	free(m);
}

static const struct vblk_backend_ops memdisk_ops = {
    .name = "memdisk",
    .queue_fd = memdisk_queue_fd,
    .submit = memdisk_submit,
    .commit = memdisk_commit,
    .reap = memdisk_reap,
    .wait = memdisk_wait,
    .destroy = memdisk_destroy,
};

struct vblk_backend *memdisk_new(uint64_t size, unsigned nr_queues, unsigned depth)
{
	struct memdisk *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->be = (struct vblk_backend){
	    .ops = &memdisk_ops, .size = size, .nr_queues = nr_queues, .depth = depth};
	m->data = calloc(1, size);
	m->q = calloc(nr_queues, sizeof(*m->q));
	for (unsigned i = 0; m->q != NULL && i < nr_queues; i++)
		m->q[i].done = calloc(depth, sizeof(*m->q[i].done));
	return &m->be;
}

uint8_t *memdisk_data(struct vblk_backend *be)
{
	return ((struct memdisk *)be)->data;
}
