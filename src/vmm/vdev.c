/*
 * vdev.c - the VM's virtio devices: which ones exist, and the plumbing
 * between the VMM-independent device models (src/virtio), the virtio-pci
 * transport (devices/virtio_pci.c) and KVM (irq.c).
 *
 * It owns, per device: the PCI slot and the BAR's first address (a bump
 * allocator over the 32-bit MMIO window), one eventfd per MSI-X vector bound
 * to its own GSI by KVM_IRQFD, one ioeventfd per queue on that queue's
 * doorbell, and the registration of those doorbells and of the backend's
 * completion eventfds on the main thread's event loop.  Every device kind
 * is one entry of vdev_kinds[]; the instances are created in a fixed order
 * (the disks as given, then the entropy device, then the NICs) so a guest
 * sees stable PCI addresses.  A NIC with vhost hands its rx/tx doorbells
 * and vector irqfds to the kernel (vhost_net.c) instead of the loop.  It never reads guest memory
 * and never parses a request.
 *
 *   vCPU writes doorbell -> KVM ioeventfd -> event loop: vdev_kick
 *     -> virtio_dev_queue_notify (under the function's lock)
 *   io_uring completion -> backend eventfd -> event loop: vdev_done
 *     -> vblk_queue_poll
 *   tap readable -> event loop: vdev_done -> vnet_queue_poll
 *   device: interrupt(q) -> vpci_interrupt -> msix_raise -> vdev_msi_fire
 *     -> write(irqfd) -> KVM injects the guest's MSI
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"
#include "virtio/virtio.h"

#define VDEV_BLK_MAX_QUEUES 64
#define VDEV_BLK_QUEUE_SIZE 256

struct vdev;

struct vdev_queue {
	struct vdev *d;
	unsigned q;
	int kick_fd; /* ioeventfd on the doorbell */
};

struct vdev_vector {
	int efd; /* irqfd */
	int gsi;
};

struct vdev_kind {
	const char *name;
	int (*create)(struct vm *vm, const void *arg, const struct gmem *gm,
	              const struct virtio_env *env, struct virtio_dev **out);
	/* Optional: a completion eventfd per queue, and what to do when it fires. */
	int (*queue_fd)(struct virtio_dev *dev, unsigned q);
	void (*queue_poll)(struct virtio_dev *dev, unsigned q);
};

struct vdev {
	struct vm *vm;
	const struct vdev_kind *kind;
	struct virtio_dev *dev;
	struct vpci *vpci;
	struct vhost_net *vhost;     /* a NIC with the vhost flag */
	unsigned kernel_queues;      /* queues [0, this) are served by vhost */
	struct vhost_blk *vhost_blk; /* a disk served by a vhost-user backend */
	unsigned nq, nvec;
	struct vdev_queue *queues;
	struct vdev_vector *vec;
};

struct vdev_set {
	struct gmem gm;
	bool irq_ok;
	uint64_t bar_next; /* next free address in the 32-bit MMIO window */
	unsigned n;
	struct vdev *devs[PCI_SLOTS];
};

/* ---- device kinds ------------------------------------------------------------ */

static int vdev_blk_create(struct vm *vm, const void *arg, const struct gmem *gm,
                           const struct virtio_env *env, struct virtio_dev **out)
{
	const struct vmm_disk *disk = arg;
	unsigned nq = vm->ncpus < VDEV_BLK_MAX_QUEUES ? vm->ncpus : VDEV_BLK_MAX_QUEUES;
	struct vblk_config c = {
	    .name = disk->name,
	    .read_only = disk->read_only,
	    .num_queues = (uint16_t)nq,
	    .queue_size = VDEV_BLK_QUEUE_SIZE,
	};
	struct vblk_backend *be;
	int fd, r;

	if (disk->vhost_user)
		return vhost_blk_create(vm, disk, gm, env, out,
		                        &((struct vdev *)env->opaque)->vhost_blk);
	/* A dup, so that a restarted machine opens its disks afresh. */
	fd = fcntl(disk->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		vm_log("disk \"%s\": %s", disk->name, strerror(errno));
		return -errno;
	}
	memcpy(c.serial, disk->serial, sizeof(c.serial));
	r = vblk_file_open(fd, disk->name, nq, VDEV_BLK_QUEUE_SIZE, &be);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = vblk_create(&c, be, gm, env, out);
	if (r < 0)
		be->ops->destroy(be);
	return r;
}

static int vdev_rng_create(struct vm *vm, const void *arg, const struct gmem *gm,
                           const struct virtio_env *env, struct virtio_dev **out)
{
	(void)vm;
	(void)arg;
	return vrng_create(gm, env, out);
}

/* A NIC: dups of its tap fds (checked and set up for the 12-byte vnet
 * header), and with vhost the kernel's data path. */
static int vdev_net_create(struct vm *vm, const void *arg, const struct gmem *gm,
                           const struct virtio_env *env, struct virtio_dev **out)
{
	const struct vmm_nic *nic = arg;
	struct vdev *d = env->opaque;
	struct vnet_config c = {
	    .name = nic->name,
	    .pairs = (uint16_t)nic->queues,
	    .ops = &vnet_tap_ops,
	    .external = nic->vhost,
	};
	const uint64_t ring_features = VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	                               VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX) |
	                               VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF);
	uint64_t vf;
	int r = 0;

	(void)vm;
	if (nic->queues < 1 || nic->queues > VMM_NIC_MAX_QUEUES) {
		vm_log("NIC %s: %u queue pairs, 1 to %u possible", nic->name, nic->queues,
		       VMM_NIC_MAX_QUEUES);
		return -EINVAL;
	}
	memcpy(c.mac, nic->mac, sizeof(c.mac));
	for (unsigned i = 0; i < VNET_MAX_PAIRS; i++)
		c.fds[i] = -1;
	for (unsigned i = 0; i < nic->queues && r == 0; i++) {
		c.fds[i] = fcntl(nic->tap_fds[i], F_DUPFD_CLOEXEC, 0);
		if (c.fds[i] < 0) {
			r = -errno;
			vm_log("NIC %s: tap fd %d: %s", nic->name, nic->tap_fds[i], strerror(-r));
		} else {
			r = vnet_tap_prepare(c.fds[i], nic->name);
		}
	}
	if (r == 0 && nic->vhost) {
		r = vhost_net_open(nic->name, nic->queues, gm, &vf, &d->vhost);
		if (r == 0 && !(vf & VIRTIO_F_BIT(VIRTIO_F_VERSION_1))) {
			vm_log("NIC %s: this kernel's vhost-net lacks VIRTIO_F_VERSION_1",
			       nic->name);
			r = -ENOTSUP;
		}
		c.features_clear = ring_features & ~vf;
		d->kernel_queues = 2 * nic->queues;
	}
	if (r == 0 && (r = vnet_create(&c, gm, env, out)) == 0)
		return 0;
	for (unsigned i = 0; i < nic->queues; i++)
		if (c.fds[i] >= 0)
			close(c.fds[i]);
	vhost_net_close(d->vhost);
	d->vhost = NULL;
	return r;
}

enum { VDEV_BLK, VDEV_RNG, VDEV_NET };

static const struct vdev_kind vdev_kinds[] = {
    [VDEV_BLK] = {.name = "virtio-blk",
                  .create = vdev_blk_create,
                  .queue_fd = vblk_queue_fd,
                  .queue_poll = vblk_queue_poll},
    [VDEV_RNG] = {.name = "virtio-rng", .create = vdev_rng_create},
    [VDEV_NET] = {.name = "virtio-net",
                  .create = vdev_net_create,
                  .queue_fd = vnet_queue_fd,
                  .queue_poll = vnet_queue_poll},
};

/* ---- callbacks: device -> transport, transport -> KVM, loop -> device ------ */

static void vdev_env_interrupt(void *opaque, unsigned q)
{
	struct vdev *d = opaque;

	vpci_interrupt(d->vpci, q);
}

static void vdev_env_needs_reset(void *opaque)
{
	struct vdev *d = opaque;

	vpci_needs_reset(d->vpci);
}

/* The device stops or resumes polling a queue's fd (a tap without rx
 * buffers); any thread. */
static void vdev_env_fd_watch(void *opaque, unsigned q, bool on)
{
	struct vdev *d = opaque;
	int fd = d->kind->queue_fd ? d->kind->queue_fd(d->dev, q) : -1;

	if (fd >= 0)
		vm_watch_set(d->vm, fd, on);
}

/* vhost: queue q's rings are valid; hand them to the kernel. */
static int vdev_vhost_queue(void *ctx, unsigned q, uint16_t vector)
{
	struct vdev *d = ctx;
	struct vhost_net_ring ring;

	if (!d->vhost || q >= d->kernel_queues)
		return 0;
	if (virtio_dev_queue_rings(d->dev, q, &ring.size, &ring.desc, &ring.avail, &ring.used) < 0)
		return -EINVAL;
	return vhost_net_start(d->vhost, q, d->dev->guest_features, &ring, d->queues[q].kick_fd,
	                       vector < d->nvec ? d->vec[vector].efd : -1,
	                       vnet_backend_fd(d->dev, q / 2));
}

static void vdev_vhost_reset(void *ctx)
{
	struct vdev *d = ctx;

	if (d->vhost)
		vhost_net_stop(d->vhost);
}

/*
 * vhost-user-blk: the backend is gone.  The model takes the rings back from
 * the used index the guest sees and the doorbells come to the event loop,
 * so what the backend left undone and every later request fail with IOERR.
 * Called with the function's lock held.
 */
static void vdev_vhost_blk_takeover(struct vdev *d)
{
	uint16_t used;

	for (unsigned q = 0; q < d->nq; q++) {
		if (virtio_dev_queue_used_idx(d->dev, q, &used) == 0)
			virtio_dev_queue_set_base(d->dev, q, used);
		vm_watch_set(d->vm, d->queues[q].kick_fd, true);
	}
	for (unsigned q = 0; q < d->nq; q++)
		virtio_dev_queue_notify(d->dev, q);
}

static int vdev_vhost_blk_queue(void *ctx, unsigned q, uint16_t vector)
{
	struct vdev *d = ctx;
	int r = vhost_blk_start(d->vhost_blk, d->dev, q, d->queues[q].kick_fd,
	                        vector < d->nvec ? d->vec[vector].efd : -1);

	if (r == 1)
		vdev_vhost_blk_takeover(d);
	return r < 0 ? r : 0;
}

static void vdev_vhost_blk_reset(void *ctx)
{
	struct vdev *d = ctx;

	if (vhost_blk_reset(d->vhost_blk) == 1)
		vdev_vhost_blk_takeover(d);
}

/* Under the function's lock: did the backend's socket hang up? */
static void vdev_vhost_blk_check(struct virtio_dev *dev, unsigned unused)
{
	struct vdev *d = dev->env.opaque;

	(void)unused;
	if (vhost_blk_check_gone(d->vhost_blk))
		vdev_vhost_blk_takeover(d);
}

/* Event loop: the backend's socket is readable (it never speaks first). */
static void vdev_vhost_blk_hup(void *ctx)
{
	struct vdev *d = ctx;

	vpci_call(d->vpci, vdev_vhost_blk_check, 0);
}

static void vdev_msi_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct vdev *d = ctx;
	int r;

	if (vec >= d->nvec)
		return;
	r = irq_msi_set(&d->vm->irq, (unsigned)d->vec[vec].gsi, addr, data);
	if (r < 0)
		vm_log_guest(d->vm, "%s: MSI-X vector %u (0x%llx/0x%x): KVM_SET_GSI_ROUTING: %s",
		             d->dev->name, vec, (unsigned long long)addr, data, strerror(-r));
}

static void vdev_signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the event is pending anyway. */
	}
}

/* The device stopped at its budget: ring its doorbell again, so the loop
 * calls it back after the events already waiting. */
static void vdev_env_requeue(void *opaque, unsigned q)
{
	struct vdev *d = opaque;

	if (q < d->nq)
		vdev_signal_fd(d->queues[q].kick_fd);
}

static void vdev_msi_fire(void *ctx, unsigned vec)
{
	struct vdev *d = ctx;

	if (vec < d->nvec)
		vdev_signal_fd(d->vec[vec].efd);
}

static int vdev_notify_map(void *ctx, unsigned q, uint64_t gpa, bool on)
{
	struct vdev *d = ctx;

	return q < d->nq ? irq_ioeventfd(&d->vm->irq, gpa, d->queues[q].kick_fd, on) : -EINVAL;
}

static void vdev_notify_kick(void *ctx, unsigned q)
{
	struct vdev *d = ctx;

	if (q < d->nq)
		vdev_signal_fd(d->queues[q].kick_fd);
}

static void vdev_log_guest(void *ctx, const char *msg)
{
	struct vdev *d = ctx;

	vm_log_guest(d->vm, "%s", msg);
}

/* Event loop: the guest rang queue q's doorbell. */
static void vdev_kick(void *ctx)
{
	struct vdev_queue *vq = ctx;
	uint64_t n;

	if (read(vq->kick_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another wakeup already drained it. */
	}
	vpci_call(vq->d->vpci, virtio_dev_queue_notify, vq->q);
}

/* Event loop: the backend completed requests of queue q. */
static void vdev_done(void *ctx)
{
	struct vdev_queue *vq = ctx;

	vpci_call(vq->d->vpci, vq->d->kind->queue_poll, vq->q);
}

/* ---- setup and teardown ----------------------------------------------------- */

static int vdev_bar_alloc(struct vdev_set *set, uint64_t size, uint64_t *out)
{
	uint64_t a = (set->bar_next + size - 1) & ~(size - 1);

	if (a + size > LAYOUT_PCI_MMIO32 + LAYOUT_PCI_MMIO32_SIZE)
		return -ENOSPC;
	set->bar_next = a + size;
	*out = a;
	return 0;
}

static void vdev_free(struct vdev *d)
{
	vhost_net_close(d->vhost); /* the kernel lets go of the rings first */
	vhost_blk_close(d->vhost_blk);
	if (d->dev)
		virtio_dev_destroy(d->dev); /* waits for in-flight I/O */
	vpci_destroy(d->vpci);
	for (unsigned i = 0; d->vec && i < d->nvec; i++)
		if (d->vec[i].efd >= 0)
			close(d->vec[i].efd);
	for (unsigned q = 0; d->queues && q < d->nq; q++)
		if (d->queues[q].kick_fd >= 0)
			close(d->queues[q].kick_fd);
	free(d->vec);
	free(d->queues);
	free(d);
}

static int vdev_wire(struct vm *vm, struct vdev *d, uint64_t bar)
{
	struct vpci_host host = {
	    .msi_route = vdev_msi_route,
	    .msi_fire = vdev_msi_fire,
	    .notify_map = vdev_notify_map,
	    .notify_kick = vdev_notify_kick,
	    .log_guest = vdev_log_guest,
	    .queue_enabled = d->vhost       ? vdev_vhost_queue
	                     : d->vhost_blk ? vdev_vhost_blk_queue
	                                    : NULL,
	    .reset = d->vhost       ? vdev_vhost_reset
	             : d->vhost_blk ? vdev_vhost_blk_reset
	                            : NULL,
	    .ctx = d,
	};
	int r, fd;

	d->nq = d->dev->num_queues;
	d->nvec = d->nq + 1; /* vector 0: configuration changes */
	d->vec = calloc(d->nvec, sizeof(*d->vec));
	d->queues = calloc(d->nq, sizeof(*d->queues));
	if (!d->vec || !d->queues)
		return -ENOMEM;
	for (unsigned i = 0; i < d->nvec; i++)
		d->vec[i].efd = -1;
	for (unsigned q = 0; q < d->nq; q++)
		d->queues[q] = (struct vdev_queue){.d = d, .q = q, .kick_fd = -1};
	for (unsigned i = 0; i < d->nvec; i++) {
		d->vec[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->vec[i].efd < 0)
			return -errno;
		if ((d->vec[i].gsi = irq_msi_alloc(&vm->irq, d->vec[i].efd)) < 0)
			return d->vec[i].gsi;
	}
	for (unsigned q = 0; q < d->nq; q++) {
		struct vdev_queue *vq = &d->queues[q];

		vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vq->kick_fd < 0)
			return -errno;
		/* A vhost queue's doorbell is the kernel's to read. */
		if (q >= d->kernel_queues && (r = vm_watch_fd(vm, vq->kick_fd, vdev_kick, vq)) < 0)
			return r;
		/* A vhost-user backend reads it until it dies; then we do. */
		if (d->vhost_blk && (r = vm_watch_set(vm, vq->kick_fd, false)) < 0)
			return r;
		fd = d->kind->queue_fd ? d->kind->queue_fd(d->dev, q) : -1;
		if (fd >= 0 && (r = vm_watch_fd(vm, fd, vdev_done, vq)) < 0)
			return r;
	}
	if (d->vhost_blk &&
	    (r = vm_watch_fd(vm, vhost_blk_fd(d->vhost_blk), vdev_vhost_blk_hup, d)) < 0)
		return r;
	if ((r = vpci_create(d->dev, &vm->mmio, bar, &host, &d->vpci)) < 0)
		return r;
	return 0;
}

static int vdev_add(struct vm *vm, const struct vdev_kind *kind, const void *arg)
{
	struct vdev_set *set = vm->vdevs;
	struct virtio_env env = {.interrupt = vdev_env_interrupt,
	                         .queue_fd_watch = vdev_env_fd_watch,
	                         .requeue = vdev_env_requeue,
	                         .needs_reset = vdev_env_needs_reset};
	unsigned slot = set->n + 1; /* 0 is the host bridge */
	uint64_t bar;
	struct vdev *d;
	int r;

	if (slot >= PCI_SLOTS || vdev_bar_alloc(set, vpci_bar_size(), &bar) < 0) {
		vm_log("too many devices: PCI bus 0 has room for %u", PCI_SLOTS - 1);
		return -ENOSPC;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	d->kind = kind;
	env.opaque = d;
	set->devs[set->n++] = d;
	r = kind->create(vm, arg, &set->gm, &env, &d->dev);
	if (r < 0) {
		d->dev = NULL;
		return r; /* the device model said why */
	}
	if ((r = vdev_wire(vm, d, bar)) < 0 ||
	    (r = pci_bus_add(&vm->pci, slot, vpci_func(d->vpci))) < 0) {
		vm_log("%s: cannot attach it to the VM: %s", d->dev->name, strerror(-r));
		return r;
	}
	return 0;
}

int vdev_setup(struct vm *vm)
{
	const struct vmm_config *cfg = vm->cfg;
	struct vdev_set *set;
	int r;

	if (cfg->ndisks == 0 && !cfg->rng && cfg->nnics == 0)
		return 0;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	vm->vdevs = set;
	set->bar_next = LAYOUT_PCI_MMIO32;
	gmem_init(&set->gm);
	if ((r = gmem_add(&set->gm, 0, vm->mem.low_size, vm->mem.base)) < 0 ||
	    (vm->mem.high_size && (r = gmem_add(&set->gm, LAYOUT_HIGH_RAM, vm->mem.high_size,
	                                        vm->mem.base + vm->mem.low_size)) < 0)) {
		vm_log("cannot describe guest memory to the virtio devices: %s", strerror(-r));
		return r;
	}
	if ((r = irq_init(&vm->irq, vm->kvm_fd, vm->vm_fd)) < 0)
		return r;
	set->irq_ok = true;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if ((r = vdev_add(vm, &vdev_kinds[VDEV_BLK], &cfg->disks[i])) < 0)
			return r;
	if (cfg->rng && (r = vdev_add(vm, &vdev_kinds[VDEV_RNG], NULL)) < 0)
		return r;
	for (unsigned i = 0; i < cfg->nnics; i++)
		if ((r = vdev_add(vm, &vdev_kinds[VDEV_NET], &cfg->nics[i])) < 0)
			return r;
	return 0;
}

void vdev_teardown(struct vm *vm)
{
	struct vdev_set *set = vm->vdevs;

	if (!set)
		return;
	for (unsigned i = 0; i < set->n; i++)
		vdev_free(set->devs[i]);
	if (set->irq_ok)
		irq_destroy(&vm->irq);
	free(set);
	vm->vdevs = NULL;
}
