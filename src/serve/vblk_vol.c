/*
 * vblk_vol.c - a virtio-blk backend (struct vblk_backend, src/virtio) on a
 * pool volume, for the vhost-user server and for tests.
 *
 * What it owns: VVOL_WORKERS worker threads, one eventfd and three small
 * rings of requests per queue.  The caller's thread (the device's queue
 * thread) mostly moves pointers: submit() stages a request, commit() hands
 * the staged ones to the workers, reap() collects the finished ones after
 * the eventfd fired.  The workers do the pool calls, so a slow pool never
 * stalls the caller.  What it never does: parse a request (blk.c does) or
 * complete one before the pool did it.
 *
 *   caller:  submit -> staged[]  --commit-->  work[]  --workers-->  done[]
 *            reap <- done[] after eventfd; wait() sleeps until done[] fills
 *   caller:  submit (a READ all in memory) --vol_read_shared--> done[]
 *
 * Locks (spool.c's readers-writer lock around the pool):
 *   READ           first vol_read_shared under the read side, so that the
 *                  workers of every queue and export read at once (and
 *                  misses wait for the device side by side); if it
 *                  cannot (-EAGAIN: a block still staged, an error), then
 *                  vol_read under the write side, which reports errors.
 *                  A READ of at most VVOL_INLINE_MAX bytes is first tried
 *                  at submit, on the caller's thread, with VOL_READ_CACHED
 *                  and tryrdlock: served from the ARC and dirty data with
 *                  no hand-off to a worker and no sleep (a miss, or a
 *                  writer holding or waiting for the lock, goes the
 *                  normal way); the eventfd is signalled once at commit.
 *   everything else, under the write side, one request at a time:
 *   WRITE          vol_write (a dsync WRITE then vol_flush)
 *   FLUSH          vol_flush: durable through the intent log
 *   DISCARD,
 *   WRITE_ZEROES   vol_punch (a hole reads back as zeroes)
 *
 * Guest buffers: one run contiguous in memory (or runs of 64 KiB and more)
 * go straight to the pool; scattered buffers go through the worker's 1 MiB
 * bounce buffer, one pool call per MiB (a pool call costs far more than a
 * copy, and a 1 MiB guest read is 256 scattered 4 KiB pages).
 *
 * Why the guarantees hold with several workers: a request completes only
 * after its pool call returned, and a write's pool call runs alone, so a
 * FLUSH (exclusive, after it) covers every write completed before the
 * FLUSH was submitted, and a snapshot (exclusive, from the control socket)
 * holds every acknowledged write.  Requests in flight together complete in
 * any order, which virtio allows.  Shared reads change no pool state but
 * the ARC (its own mutex), so they cannot disturb a write, and a write
 * never runs while one is under way.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "pool/pool.h"
#include "virtio/virtio.h"

/* Bytes per pool call for a request scattered over several buffers. */
#define VVOL_BOUNCE (1u << 20)
/* A run of contiguous buffers this long goes to the pool without a copy. */
#define VVOL_DIRECT_MIN (64u << 10)
/* Worker threads per queue: requests of one queue in the pool at once. */
#define VVOL_WORKERS 4
/* The largest READ tried from memory on the caller's thread at submit. */
#define VVOL_INLINE_MAX (256u << 10)

/* How vvol_rw reaches the pool. */
enum vvol_mode {
	VVOL_EXCL,   /* vol_read/vol_write, the write side held */
	VVOL_SHARED, /* vol_read_shared, the read side held */
	VVOL_CACHED, /* vol_read_shared(VOL_READ_CACHED), the read side held */
};

/* A ring of request pointers; depth entries, indexes free-running. */
struct vvol_ring {
	struct vblk_io **io;
	unsigned head, tail; /* head: next to take, tail: next to fill */
};

struct vvol_worker {
	struct vvol_queue *q;
	pthread_t thread;
	bool thread_ok;
	unsigned char *bounce; /* VVOL_BOUNCE bytes, allocated at the first need */
};

struct vvol_queue {
	struct vblk_vol *vv;
	struct vvol_worker w[VVOL_WORKERS];
	pthread_mutex_t m;
	pthread_cond_t work_cv, done_cv;
	struct vvol_ring staged, work, done; /* staged: caller only */
	unsigned inflight;                   /* staged + work + done + running */
	bool stop;
	int efd;
	bool inline_done;       /* caller only: done[] got requests at submit */
	unsigned char *ibounce; /* caller only: the bounce buffer at submit */
};

struct vblk_vol {
	struct vblk_backend be; /* first: blk.c hands it back */
	struct serve_pool *sp;
	struct serve_attach *att;
	struct vol *v;
	char name[160]; /* POOL/VOL for messages */
	bool ro;
	unsigned errors_logged;
	struct vvol_queue *q;
};

static unsigned vvol_ring_count(const struct vvol_ring *r)
{
	return r->tail - r->head;
}

static void vvol_ring_push(struct vvol_ring *r, unsigned depth, struct vblk_io *io)
{
	r->io[r->tail++ % depth] = io;
}

static struct vblk_io *vvol_ring_pop(struct vvol_ring *r, unsigned depth)
{
	return r->io[r->head++ % depth];
}

/* An iovec cursor: iovec I, byte AT in it. */
struct vvol_cur {
	unsigned i;
	size_t at;
};

/*
 * Step C over N bytes of IO's iovecs, copying them to BUF (GATHER) or from
 * BUF (!GATHER) unless BUF is NULL.
 */
static void vvol_step(const struct vblk_io *io, struct vvol_cur *c, unsigned char *buf, size_t n,
                      bool gather)
{
	while (n && c->i < io->iovcnt) {
		size_t k = io->iov[c->i].iov_len - c->at;
		unsigned char *base = (unsigned char *)io->iov[c->i].iov_base + c->at;
		if (k > n)
			k = n;
		if (buf && gather)
			memcpy(buf, base, k);
		else if (buf)
			memcpy(base, buf, k);
		if (buf)
			buf += k;
		n -= k;
		c->at += k;
		if (c->at == io->iov[c->i].iov_len) {
			c->i++;
			c->at = 0;
		}
	}
}

/* The bytes from C on that are contiguous in memory, at most MAX. */
static size_t vvol_run(const struct vblk_io *io, struct vvol_cur c, size_t max)
{
	size_t n = io->iov[c.i].iov_len - c.at;

	while (n < max && c.i + 1 < io->iovcnt &&
	       (unsigned char *)io->iov[c.i].iov_base + io->iov[c.i].iov_len ==
	           (unsigned char *)io->iov[c.i + 1].iov_base) {
		c.i++;
		n += io->iov[c.i].iov_len;
	}
	return n < max ? n : max;
}

/* One pool call of vvol_rw: N bytes at OFF into or from BUF. */
static int vvol_call(struct vblk_vol *vv, enum vvol_mode mode, bool rd, unsigned char *buf,
                     size_t n, uint64_t off)
{
	if (mode != VVOL_EXCL)
		return vol_read_shared(vv->v, buf, n, off,
		                       mode == VVOL_CACHED ? VOL_READ_CACHED : 0);
	return rd ? vol_read(vv->v, buf, n, off) : vol_write(vv->v, buf, n, off);
}

/*
 * READ/WRITE: a run of buffers contiguous in memory that ends the request
 * or is long goes straight to the pool; scattered ones go through the
 * bounce buffer *BOUNCE (allocated at the first need), VVOL_BOUNCE bytes a
 * call.  MODE: how (writes only VVOL_EXCL).
 */
static int vvol_rw(struct vblk_vol *vv, unsigned char **bounce, enum vvol_mode mode,
                   struct vblk_io *io)
{
	bool rd = io->op == VBLK_OP_READ;
	uint64_t off = io->offset, left = io->len, have = 0;
	struct vvol_cur c = {0, 0};
	int r = 0;

	for (unsigned i = 0; i < io->iovcnt; i++)
		have += io->iov[i].iov_len;
	if (have < left)
		return -EINVAL; /* buffers shorter than the request */
	while (left && !r) {
		size_t n = vvol_run(io, c, left);
		if (n == left || n >= VVOL_DIRECT_MIN) {
			unsigned char *base = (unsigned char *)io->iov[c.i].iov_base + c.at;
			r = vvol_call(vv, mode, rd, base, n, off);
			vvol_step(io, &c, NULL, n, false);
		} else {
			if (!*bounce && !(*bounce = malloc(VVOL_BOUNCE)))
				return mode == VVOL_EXCL ? -ENOMEM : -EAGAIN;
			n = left < VVOL_BOUNCE ? left : VVOL_BOUNCE;
			if (rd) {
				r = vvol_call(vv, mode, rd, *bounce, n, off);
				if (!r)
					vvol_step(io, &c, *bounce, n, false);
			} else {
				vvol_step(io, &c, *bounce, n, true);
				r = vvol_call(vv, mode, rd, *bounce, n, off);
			}
		}
		off += n;
		left -= n;
	}
	return r;
}

/* Whether IO is a READ within the volume (a request the shared path may try). */
static bool vvol_shared_read(const struct vblk_vol *vv, const struct vblk_io *io)
{
	return io->op == VBLK_OP_READ && io->offset <= vv->be.size &&
	       io->len <= vv->be.size - io->offset;
}

/* One request, under the write side of the pool lock. */
static int vvol_do(struct vblk_vol *vv, struct vvol_worker *w, struct vblk_io *io)
{
	int r = 0;

	if (io->offset > vv->be.size || io->len > vv->be.size - io->offset)
		return -EINVAL;
	if (vv->ro && io->op != VBLK_OP_READ && io->op != VBLK_OP_FLUSH)
		return -EROFS;
	switch (io->op) {
	case VBLK_OP_READ:
	case VBLK_OP_WRITE:
		r = vvol_rw(vv, &w->bounce, VVOL_EXCL, io);
		if (!r && io->op == VBLK_OP_WRITE) {
			serve_pool_dirtied(vv->sp);
			if (io->dsync)
				r = vol_flush(vv->v);
		}
		break;
	case VBLK_OP_FLUSH:
		r = vol_flush(vv->v);
		break;
	case VBLK_OP_DISCARD:
	case VBLK_OP_WRITE_ZEROES:
		r = vol_punch(vv->v, io->offset, io->len);
		if (!r)
			serve_pool_dirtied(vv->sp);
		break;
	}
	if (r && vv->errors_logged < 10) {
		vv->errors_logged++;
		serve_log("volume %s: I/O error at %llu+%llu: %s", vv->name,
		          (unsigned long long)io->offset, (unsigned long long)io->len,
		          pool_errmsg(serve_pool_get(vv->sp))[0]
		              ? pool_errmsg(serve_pool_get(vv->sp))
		              : strerror(-r));
	}
	return r;
}

/* One request from a worker: a READ shared first, everything else exclusive. */
static int vvol_serve(struct vblk_vol *vv, struct vvol_worker *w, struct vblk_io *io)
{
	int r = -EAGAIN;

	if (vvol_shared_read(vv, io)) {
		serve_pool_rdlock(vv->sp);
		r = vvol_rw(vv, &w->bounce, VVOL_SHARED, io);
		serve_pool_unlock(vv->sp);
	}
	if (r == -EAGAIN) {
		serve_pool_lock(vv->sp);
		r = vvol_do(vv, w, io);
		serve_pool_unlock(vv->sp);
	}
	return r;
}

static void *vvol_worker(void *arg)
{
	struct vvol_worker *w = arg;
	struct vvol_queue *q = w->q;
	struct vblk_vol *vv = q->vv;
	unsigned depth = vv->be.depth;
	uint64_t one = 1;

	pthread_mutex_lock(&q->m);
	for (;;) {
		while (!q->stop && vvol_ring_count(&q->work) == 0)
			pthread_cond_wait(&q->work_cv, &q->m);
		if (vvol_ring_count(&q->work) == 0)
			break; /* stopping, and nothing left */
		struct vblk_io *io = vvol_ring_pop(&q->work, depth);
		pthread_mutex_unlock(&q->m);

		io->result = vvol_serve(vv, w, io);
		io->done = io->result ? 0 : io->len;

		pthread_mutex_lock(&q->m);
		bool signal = vvol_ring_count(&q->done) == 0; /* else the eventfd is set */
		vvol_ring_push(&q->done, depth, io);
		pthread_cond_broadcast(&q->done_cv);
		if (signal && write(q->efd, &one, sizeof(one)) < 0)
			serve_log("volume %s: eventfd write: %s", vv->name, strerror(errno));
	}
	pthread_mutex_unlock(&q->m);
	return NULL;
}

static struct vblk_vol *vvol_of(struct vblk_backend *be)
{
	return (struct vblk_vol *)be;
}

static int vvol_queue_fd(struct vblk_backend *be, unsigned q)
{
	return vvol_of(be)->q[q].efd;
}

/*
 * A READ served at submit from memory (the ARC, dirty data, holes) on the
 * caller's thread; false if it needs a worker.  tryrdlock, never a wait:
 * the caller also runs the other queues and the vhost-user socket.
 */
static bool vvol_inline_read(struct vblk_vol *vv, struct vvol_queue *q, struct vblk_io *io)
{
	int r;

	if (io->len > VVOL_INLINE_MAX || !vvol_shared_read(vv, io) || !serve_pool_tryrdlock(vv->sp))
		return false;
	r = vvol_rw(vv, &q->ibounce, VVOL_CACHED, io);
	serve_pool_unlock(vv->sp);
	if (r)
		return false; /* the worker reads it again, all of it */
	io->done = io->len;
	return true;
}

static int vvol_submit(struct vblk_backend *be, unsigned qi, struct vblk_io *io)
{
	struct vblk_vol *vv = vvol_of(be);
	struct vvol_queue *q = &vv->q[qi];
	int r = 0;

	io->result = 0;
	io->done = 0;
	io->be_flags = 0;
	pthread_mutex_lock(&q->m);
	if (q->inflight >= be->depth)
		r = -EBUSY;
	else
		q->inflight++;
	pthread_mutex_unlock(&q->m);
	if (r)
		return r;
	if (vvol_inline_read(vv, q, io)) {
		pthread_mutex_lock(&q->m);
		vvol_ring_push(&q->done, be->depth, io);
		pthread_mutex_unlock(&q->m);
		q->inline_done = true; /* the eventfd at commit */
		return 0;
	}
	vvol_ring_push(&q->staged, be->depth, io);
	return 0;
}

static void vvol_commit(struct vblk_backend *be, unsigned qi)
{
	struct vvol_queue *q = &vvol_of(be)->q[qi];
	unsigned n = vvol_ring_count(&q->staged);
	uint64_t one = 1;

	if (q->inline_done) {
		q->inline_done = false;
		if (write(q->efd, &one, sizeof(one)) < 0)
			serve_log("volume %s: eventfd write: %s", vvol_of(be)->name,
			          strerror(errno));
	}
	if (n == 0)
		return;
	pthread_mutex_lock(&q->m);
	while (vvol_ring_count(&q->staged))
		vvol_ring_push(&q->work, be->depth, vvol_ring_pop(&q->staged, be->depth));
	if (n > 1)
		pthread_cond_broadcast(&q->work_cv);
	else
		pthread_cond_signal(&q->work_cv);
	pthread_mutex_unlock(&q->m);
}

static unsigned vvol_reap(struct vblk_backend *be, unsigned qi, struct vblk_io **done, unsigned max)
{
	struct vvol_queue *q = &vvol_of(be)->q[qi];
	uint64_t ticks, one = 1;
	unsigned n = 0;

	/* Clear the eventfd first: a completion after this signals it again
	 * (a worker signals only when done[] was empty, so if some are left
	 * here, the eventfd is set again for them). */
	if (read(q->efd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		serve_log("eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&q->m);
	while (n < max && vvol_ring_count(&q->done)) {
		done[n++] = vvol_ring_pop(&q->done, be->depth);
		q->inflight--;
	}
	if (vvol_ring_count(&q->done) && write(q->efd, &one, sizeof(one)) < 0)
		serve_log("eventfd write: %s", strerror(errno));
	pthread_mutex_unlock(&q->m);
	return n;
}

static int vvol_wait(struct vblk_backend *be, unsigned qi)
{
	struct vvol_queue *q = &vvol_of(be)->q[qi];

	vvol_commit(be, qi);
	pthread_mutex_lock(&q->m);
	while (vvol_ring_count(&q->done) == 0 && q->inflight > vvol_ring_count(&q->staged))
		pthread_cond_wait(&q->done_cv, &q->m);
	pthread_mutex_unlock(&q->m);
	return 0;
}

static void vvol_free(struct vblk_vol *vv)
{
	for (unsigned i = 0; vv->q && i < vv->be.nr_queues; i++) {
		struct vvol_queue *q = &vv->q[i];
		pthread_mutex_lock(&q->m);
		q->stop = true;
		pthread_cond_broadcast(&q->work_cv);
		pthread_mutex_unlock(&q->m);
		for (unsigned k = 0; k < VVOL_WORKERS; k++) {
			if (q->w[k].thread_ok)
				pthread_join(q->w[k].thread, NULL);
			free(q->w[k].bounce);
		}
		pthread_mutex_destroy(&q->m);
		pthread_cond_destroy(&q->work_cv);
		pthread_cond_destroy(&q->done_cv);
		if (q->efd >= 0)
			close(q->efd);
		free(q->staged.io);
		free(q->work.io);
		free(q->done.io);
		free(q->ibounce);
	}
	free(vv->q);
	if (vv->v) {
		serve_pool_lock(vv->sp);
		vol_close(vv->v);
		serve_pool_unlock(vv->sp);
	}
	serve_detach(vv->att);
	free(vv);
}

static void vvol_destroy(struct vblk_backend *be)
{
	vvol_free(vvol_of(be)); /* the workers finish their work[] first */
}

static const struct vblk_backend_ops vvol_ops = {
    .name = "pool volume",
    .queue_fd = vvol_queue_fd,
    .submit = vvol_submit,
    .commit = vvol_commit,
    .reap = vvol_reap,
    .wait = vvol_wait,
    .destroy = vvol_destroy,
};

static int vvol_queue_init(struct vblk_vol *vv, struct vvol_queue *q, unsigned depth)
{
	q->vv = vv;
	q->staged.io = calloc(depth, sizeof(*q->staged.io));
	q->work.io = calloc(depth, sizeof(*q->work.io));
	q->done.io = calloc(depth, sizeof(*q->done.io));
	if (!q->staged.io || !q->work.io || !q->done.io)
		return -ENOMEM;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	for (unsigned k = 0; k < VVOL_WORKERS; k++) {
		q->w[k].q = q;
		if (pthread_create(&q->w[k].thread, NULL, vvol_worker, &q->w[k]))
			return -EAGAIN;
		q->w[k].thread_ok = true;
	}
	return 0;
}

int serve_vblk_create(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                      unsigned nr_queues, unsigned depth, struct vblk_backend **out, char *err,
                      size_t errlen)
{
	struct vblk_vol *vv;
	int r;

	if (nr_queues == 0 || nr_queues > 256 || depth == 0 || depth > 32768)
		return serve_err(err, errlen, -EINVAL,
		                 "volume %s/%s: bad queue count %u or depth %u",
		                 serve_pool_name(sp), vol, nr_queues, depth);
	vv = calloc(1, sizeof(*vv));
	if (!vv)
		return serve_err(err, errlen, -ENOMEM, "out of memory");
	vv->sp = sp;
	vv->ro = ro;
	snprintf(vv->name, sizeof(vv->name), "%s/%s", serve_pool_name(sp), vol);
	r = serve_attach(sp, vol, ro, holder, &vv->att, err, errlen);
	if (r) {
		free(vv);
		return r;
	}
	serve_pool_lock(sp);
	r = vol_open(serve_pool_get(sp), vol, &vv->v);
	if (r)
		serve_err(err, errlen, r, "%s", pool_errmsg(serve_pool_get(sp)));
	else
		vv->be.size = vol_size(vv->v) / 512 * 512;
	serve_pool_unlock(sp);
	vv->be.ops = &vvol_ops;
	vv->be.nr_queues = nr_queues;
	vv->be.depth = depth;
	if (r)
		goto fail;
	vv->q = calloc(nr_queues, sizeof(*vv->q));
	if (!vv->q) {
		r = serve_err(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < nr_queues; i++) {
		vv->q[i].efd = -1;
		pthread_mutex_init(&vv->q[i].m, NULL);
		pthread_cond_init(&vv->q[i].work_cv, NULL);
		pthread_cond_init(&vv->q[i].done_cv, NULL);
	}
	for (unsigned i = 0; i < nr_queues; i++) {
		r = vvol_queue_init(vv, &vv->q[i], depth);
		if (r) {
			serve_err(err, errlen, r, "volume %s: queue %u: %s", vv->name, i,
			          strerror(-r));
			goto fail;
		}
	}
	*out = &vv->be;
	return 0;
fail:
	vvol_free(vv);
	return r;
}
