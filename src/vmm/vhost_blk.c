/*
 * vhost_blk.c - a virtio-blk disk served by a vhost-user-blk backend
 * process (`--disk vhost-user=SOCKET`): the VMM keeps the PCI function, the
 * backend gets the guest's memory (the shared memfd), each queue's rings,
 * its doorbell ioeventfd as the kick and its MSI-X irqfd as the call, so
 * requests and interrupts never pass through this process.
 *
 * What it owns: the connection (src/vhost's frontend), the features and
 * config space the guest sees (the backend's, read with GET_CONFIG once at
 * start), which rings the backend runs, and what happens when the backend
 * dies.  The device the transport talks to is src/virtio's virtio-blk model
 * on an always-failing backend (below): while the backend lives, the model
 * only validates the rings and answers config reads; the moment the backend
 * is gone, vdev.c turns the doorbells to the event loop and the model takes
 * the rings over from the used index the guest sees, so every request not
 * completed and every later one completes with VIRTIO_BLK_S_IOERR.
 *
 *   guest enables queue q -> vpci -> virtio_dev_queue_enable (shadow model)
 *     -> vdev hook -> vhost_blk_start: SET_FEATURES (once), SET_VRING_*
 *   guest resets -> vhost_blk_reset: GET_VRING_BASE per ring, RESET_DEVICE
 *   backend socket hangs up -> vhost_blk_gone -> vdev takes the rings back
 *
 * Limit: a request the backend had popped and completed out of order just
 * before it died may be completed twice; the guest's driver then marks the
 * queue broken (its requests fail, as they should).  docs/VHOST-USER.md.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"
#include "vhost/vhost.h"
#include "virtio/virtio.h"

#define VHOST_BLK_QUEUE_SIZE 256
#define VHOST_BLK_MAX_QUEUES 64
#define VHOST_BLK_CONFIG_LEN 60 /* struct virtio_blk_config, virtio 1.x 5.2.4 */
#define VBLK_CFG_NUM_QUEUES  34 /* offset of num_queues in it */

struct vhost_blk {
	char name[108];
	struct vhost_front *front;
	unsigned nq;
	bool features_sent;
	bool started[VHOST_BLK_MAX_QUEUES];
	bool gone; /* logged once, rings taken back */
};

/* ---- the always-failing backend --------------------------------------------- */

/*
 * Every io fails with -EIO; it completes at submit and is handed back by the
 * next reap, announced by the queue's eventfd at commit, so the model's
 * normal completion path (rate-limited message, IOERR status) runs.
 */
struct vfail_queue {
	int efd;
	struct vblk_io **done;
	unsigned n;
};

struct vfail {
	struct vblk_backend be;
	struct vfail_queue *q;
};

static int vfail_queue_fd(struct vblk_backend *be, unsigned q)
{
	return ((struct vfail *)be)->q[q].efd;
}

static int vfail_submit(struct vblk_backend *be, unsigned q, struct vblk_io *io)
{
	struct vfail_queue *fq = &((struct vfail *)be)->q[q];

	if (fq->n == be->depth)
		return -EAGAIN;
	io->result = -EIO;
	fq->done[fq->n++] = io;
	return 0;
}

static void vfail_commit(struct vblk_backend *be, unsigned q)
{
	uint64_t one = 1;

	if (write(((struct vfail *)be)->q[q].efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: already signalled */
	}
}

static unsigned vfail_reap(struct vblk_backend *be, unsigned q, struct vblk_io **done, unsigned max)
{
	struct vfail_queue *fq = &((struct vfail *)be)->q[q];
	unsigned n = fq->n < max ? fq->n : max;
	uint64_t v;

	fq->n -= n;
	memcpy(done, fq->done + fq->n, n * sizeof(*done));
	if (fq->n == 0 && read(fq->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing pending */
	}
	return n;
}

static int vfail_wait(struct vblk_backend *be, unsigned q)
{
	return ((struct vfail *)be)->q[q].n ? 0 : -EIO;
}

static void vfail_destroy(struct vblk_backend *be)
{
	struct vfail *f = (struct vfail *)be;

	for (unsigned q = 0; q < be->nr_queues; q++) {
		if (f->q[q].efd >= 0)
			close(f->q[q].efd);
		free(f->q[q].done);
	}
	free(f->q);
	free(f);
}

static const struct vblk_backend_ops vfail_ops = {
    .name = "vhost-user (backend gone)",
    .queue_fd = vfail_queue_fd,
    .submit = vfail_submit,
    .commit = vfail_commit,
    .reap = vfail_reap,
    .wait = vfail_wait,
    .destroy = vfail_destroy,
};

static int vfail_new(uint64_t size, unsigned nq, unsigned depth, struct vblk_backend **out)
{
	struct vfail *f = calloc(1, sizeof(*f));

	if (!f || !(f->q = calloc(nq, sizeof(*f->q)))) {
		free(f);
		return -ENOMEM;
	}
	f->be =
	    (struct vblk_backend){.ops = &vfail_ops, .size = size, .nr_queues = nq, .depth = depth};
	for (unsigned q = 0; q < nq; q++)
		f->q[q].efd = -1;
	for (unsigned q = 0; q < nq; q++) {
		f->q[q].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		f->q[q].done = calloc(depth, sizeof(*f->q[q].done));
		if (f->q[q].efd < 0 || !f->q[q].done) {
			vfail_destroy(&f->be);
			return -ENOMEM;
		}
	}
	*out = &f->be;
	return 0;
}

/* ---- the frontend ------------------------------------------------------------ */

/* Device features the VMM's transport and the fallback model handle. */
static uint64_t vhost_blk_feature_mask(void)
{
	uint64_t dev_bits = (UINT64_C(1) << 24) - 1; /* device-specific 0..23 */

	dev_bits &= ~VIRTIO_F_BIT(11); /* CONFIG_WCE: config writes are not forwarded */
	return dev_bits | VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	       VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_F_BIT(VIRTIO_F_VERSION_1);
}

int vhost_blk_create(struct vm *vm, const struct vmm_disk *disk, const struct gmem *gm,
                     const struct virtio_env *env, struct virtio_dev **dev, struct vhost_blk **out)
{
	struct vhost_front_region reg[2] = {
	    {.gpa = 0,
	     .size = vm->mem.low_size,
	     .offset = 0,
	     .host = vm->mem.base,
	     .fd = vm->mem.memfd},
	    {.gpa = LAYOUT_HIGH_RAM,
	     .size = vm->mem.high_size,
	     .offset = vm->mem.low_size,
	     .host = vm->mem.base + vm->mem.low_size,
	     .fd = vm->mem.memfd},
	};
	uint8_t cfg[VHOST_BLK_CONFIG_LEN];
	struct vblk_backend *be;
	struct vhost_blk *vb;
	char err[256];
	uint64_t features, cap;
	unsigned queues;
	uint16_t nq16;
	int r;

	if (vm->mem.memfd < 0)
		return -EINVAL; /* vm.c shares memory whenever such a disk exists */
	vb = calloc(1, sizeof(*vb));
	if (!vb)
		return -ENOMEM;
	snprintf(vb->name, sizeof(vb->name), "%s", disk->vhost_user);
	r = vhost_front_connect(disk->vhost_user, reg, vm->mem.high_size ? 2 : 1, &features,
	                        &queues, &vb->front, err, sizeof(err));
	if (r < 0) {
		vm_log("disk %s", err);
		free(vb);
		return r;
	}
	if ((r = vhost_front_get_config(vb->front, cfg, sizeof(cfg))) < 0) {
		vm_log("disk vhost-user=%s: GET_CONFIG: %s", vb->name, strerror(-r));
		goto fail;
	}
	memcpy(&cap, cfg, sizeof(cap));
	cap = le64toh(cap);
	r = -EINVAL;
	if (!(features & VIRTIO_F_BIT(VIRTIO_F_VERSION_1)) || cap > (UINT64_MAX >> 10)) {
		vm_log("disk vhost-user=%s: the backend offers no VIRTIO_F_VERSION_1 or a "
		       "capacity of %llu sectors",
		       vb->name, (unsigned long long)cap);
		goto fail;
	}
	vb->nq = features & VIRTIO_F_BIT(VIRTIO_BLK_F_MQ) ? queues : 1;
	if (vb->nq > vm->ncpus)
		vb->nq = vm->ncpus;
	if (vb->nq > VHOST_BLK_MAX_QUEUES)
		vb->nq = VHOST_BLK_MAX_QUEUES;
	nq16 = htole16((uint16_t)vb->nq);
	memcpy(cfg + VBLK_CFG_NUM_QUEUES, &nq16, sizeof(nq16));
	if ((r = vfail_new(cap << 9, vb->nq, VHOST_BLK_QUEUE_SIZE, &be)) < 0)
		goto fail;
	struct vblk_config c = {
	    .name = disk->vhost_user,
	    .read_only = features & VIRTIO_F_BIT(VIRTIO_BLK_F_RO),
	    .num_queues = (uint16_t)vb->nq,
	    .queue_size = VHOST_BLK_QUEUE_SIZE,
	};
	if ((r = vblk_create(&c, be, gm, env, dev)) < 0) {
		be->ops->destroy(be);
		goto fail;
	}
	virtio_dev_override(*dev, features & vhost_blk_feature_mask(), cfg, sizeof(cfg));
	*out = vb;
	return 0;
fail:
	vhost_front_close(vb->front);
	free(vb);
	return r;
}

int vhost_blk_fd(const struct vhost_blk *vb)
{
	return vhost_front_fd(vb->front);
}

/* Log once; from now on the model serves (and fails) the rings. */
static void vhost_blk_mark_gone(struct vhost_blk *vb, const char *why)
{
	if (vb->gone)
		return;
	vb->gone = true;
	/* Closing it also takes it out of the event loop, which would keep
	 * reporting the hang-up. */
	vhost_front_close(vb->front);
	vb->front = NULL;
	vm_log("disk vhost-user=%s: the backend %s; its requests fail with I/O errors from "
	       "now on",
	       vb->name, why);
}

bool vhost_blk_check_gone(struct vhost_blk *vb)
{
	char c;
	ssize_t n;

	if (vb->gone)
		return false;
	n = recv(vhost_front_fd(vb->front), &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false; /* a reply a vCPU thread already took */
	vhost_blk_mark_gone(vb, n == 0 ? "closed its socket" : "broke the protocol");
	return true;
}

int vhost_blk_start(struct vhost_blk *vb, struct virtio_dev *dev, unsigned q, int kick_fd,
                    int call_fd)
{
	struct vhost_front_ring ring = {.base = 0};
	int r;

	if (vb->gone || q >= vb->nq)
		return 0;
	if (virtio_dev_queue_rings(dev, q, &ring.size, &ring.desc, &ring.avail, &ring.used) < 0)
		return -EINVAL;
	r = vb->features_sent ? 0 : vhost_front_set_features(vb->front, dev->guest_features);
	if (r == 0) {
		vb->features_sent = true;
		r = vhost_front_start(vb->front, q, &ring, kick_fd, call_fd);
	}
	if (r == 0) {
		vb->started[q] = true;
		return 0;
	}
	if (vhost_front_dead(vb->front)) {
		vhost_blk_mark_gone(vb, "stopped answering");
		return 1; /* the caller takes the rings back */
	}
	vm_log("disk vhost-user=%s: the backend refused queue %u: %s", vb->name, q, strerror(-r));
	return r;
}

int vhost_blk_reset(struct vhost_blk *vb)
{
	bool any = vb->features_sent;
	uint16_t base;

	for (unsigned q = 0; q < vb->nq; q++) {
		if (vb->started[q] && !vb->gone)
			vhost_front_stop(vb->front, q, &base);
		any |= vb->started[q];
		vb->started[q] = false;
	}
	vb->features_sent = false;
	if (any && !vb->gone)
		vhost_front_reset(vb->front);
	if (!vb->gone && vhost_front_dead(vb->front)) {
		vhost_blk_mark_gone(vb, "stopped answering");
		return 1;
	}
	return 0;
}

void vhost_blk_close(struct vhost_blk *vb)
{
	if (!vb)
		return;
	vhost_front_close(vb->front);
	free(vb);
}
