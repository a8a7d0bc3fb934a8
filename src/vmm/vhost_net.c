/*
 * vhost_net.c - handing a virtio-net device's data path to the kernel's
 * vhost-net (/dev/vhost-net), the `vhost` flag of a NIC.
 *
 * What it owns: one /dev/vhost-net fd per queue pair (vring 0 is the
 * pair's rx queue, vring 1 its tx queue), the memory table (the guest's
 * RAM regions), and starting and stopping the rings.  The kernel then
 * moves packets between the rings and the tap itself: the guest's doorbell
 * ioeventfd is the ring's kick, the queue's MSI-X irqfd its call, so
 * neither a kick nor an interrupt passes through this process.  What it
 * never does: touch the control queue, the config space or the features
 * the kernel does not implement (CSUM, TSO, MAC, MQ stay the device
 * model's and the tap's).
 *
 *   open:   VHOST_SET_OWNER, VHOST_GET_FEATURES, VHOST_SET_MEM_TABLE
 *   start:  VHOST_SET_FEATURES, SET_VRING_NUM/BASE/ADDR/KICK/CALL,
 *           VHOST_NET_SET_BACKEND(tap)        (queue enable)
 *   stop:   VHOST_NET_SET_BACKEND(-1) on each ring      (device reset)
 *
 * Limit: an MSI-X vector the guest masks still gets the interrupt, as the
 * irqfd is not switched off (Linux does not mask virtio-net's vectors).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"
#include "virtio/virtio.h"

#define VHOST_NET_DEV "/dev/vhost-net"

struct vhost_net {
	char name[48];
	unsigned pairs;
	int fd[VMM_NIC_MAX_QUEUES];
	bool running[VMM_NIC_MAX_QUEUES][2];
	uint64_t features; /* what the kernel offers */
};

static int vhost_net_err(struct vhost_net *vh, const char *what)
{
	int e = errno;

	vm_log("NIC %s: vhost-net: %s: %s", vh->name, what, strerror(e));
	return -e;
}

void vhost_net_close(struct vhost_net *vh)
{
	if (!vh)
		return;
	vhost_net_stop(vh);
	for (unsigned i = 0; i < vh->pairs; i++)
		if (vh->fd[i] >= 0)
			close(vh->fd[i]);
	free(vh);
}

static int vhost_net_mem(struct vhost_net *vh, int fd, const struct gmem *gm)
{
	struct vhost_memory *m = calloc(1, sizeof(*m) + gm->nr * sizeof(m->regions[0]));
	int r = 0;

	if (!m)
		return -ENOMEM;
	m->nregions = gm->nr;
	for (unsigned i = 0; i < gm->nr; i++)
		m->regions[i] = (struct vhost_memory_region){
		    .guest_phys_addr = gm->r[i].gpa,
		    .memory_size = gm->r[i].size,
		    .userspace_addr = (uint64_t)(uintptr_t)gm->r[i].host,
		};
	if (ioctl(fd, VHOST_SET_MEM_TABLE, m) < 0)
		r = vhost_net_err(vh, "VHOST_SET_MEM_TABLE");
	free(m);
	return r;
}

int vhost_net_open(const char *name, unsigned pairs, const struct gmem *gm, uint64_t *features,
                   struct vhost_net **out)
{
	struct vhost_net *vh = calloc(1, sizeof(*vh));
	int r;

	if (!vh)
		return -ENOMEM;
	snprintf(vh->name, sizeof(vh->name), "%s", name);
	vh->pairs = pairs;
	for (unsigned i = 0; i < VMM_NIC_MAX_QUEUES; i++)
		vh->fd[i] = -1;
	for (unsigned i = 0; i < pairs; i++) {
		uint64_t f;

		vh->fd[i] = open(VHOST_NET_DEV, O_RDWR | O_CLOEXEC);
		if (vh->fd[i] < 0) {
			r = -errno;
			if (r == -ENOENT)
				vm_log("NIC %s: vhost asked, but this host has no %s (load the "
				       "vhost_net module, or drop the vhost flag)",
				       name, VHOST_NET_DEV);
			else
				vm_log("NIC %s: cannot open %s: %s", name, VHOST_NET_DEV,
				       strerror(-r));
			goto fail;
		}
		if (ioctl(vh->fd[i], VHOST_SET_OWNER) < 0) {
			r = vhost_net_err(vh, "VHOST_SET_OWNER");
			goto fail;
		}
		if (ioctl(vh->fd[i], VHOST_GET_FEATURES, &f) < 0) {
			r = vhost_net_err(vh, "VHOST_GET_FEATURES");
			goto fail;
		}
		vh->features = i == 0 ? f : vh->features & f;
		if ((r = vhost_net_mem(vh, vh->fd[i], gm)) < 0)
			goto fail;
	}
	*features = vh->features;
	*out = vh;
	return 0;
fail:
	vhost_net_close(vh);
	return r;
}

int vhost_net_start(struct vhost_net *vh, unsigned q, uint64_t features,
                    const struct vhost_net_ring *ring, int kick_fd, int call_fd, int tap_fd)
{
	unsigned pair = q / 2, idx = q % 2;
	int fd = pair < vh->pairs ? vh->fd[pair] : -1;
	uint64_t f = features & vh->features;
	struct vhost_vring_state num = {.index = idx, .num = ring->size};
	struct vhost_vring_state base = {.index = idx, .num = 0};
	struct vhost_vring_addr addr = {
	    .index = idx,
	    .desc_user_addr = (uint64_t)(uintptr_t)ring->desc,
	    .avail_user_addr = (uint64_t)(uintptr_t)ring->avail,
	    .used_user_addr = (uint64_t)(uintptr_t)ring->used,
	};
	struct vhost_vring_file kick = {.index = idx, .fd = kick_fd};
	struct vhost_vring_file call = {.index = idx, .fd = call_fd};
	struct vhost_vring_file be = {.index = idx, .fd = tap_fd};

	if (fd < 0 || vh->running[pair][idx])
		return -EINVAL;
	if (call_fd < 0) {
		vm_log("NIC %s: queue %u has no MSI-X vector; vhost needs one", vh->name, q);
		return -EINVAL;
	}
	if (ioctl(fd, VHOST_SET_FEATURES, &f) < 0)
		return vhost_net_err(vh, "VHOST_SET_FEATURES");
	if (ioctl(fd, VHOST_SET_VRING_NUM, &num) < 0)
		return vhost_net_err(vh, "VHOST_SET_VRING_NUM");
	if (ioctl(fd, VHOST_SET_VRING_BASE, &base) < 0)
		return vhost_net_err(vh, "VHOST_SET_VRING_BASE");
	if (ioctl(fd, VHOST_SET_VRING_ADDR, &addr) < 0)
		return vhost_net_err(vh, "VHOST_SET_VRING_ADDR");
	if (ioctl(fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return vhost_net_err(vh, "VHOST_SET_VRING_KICK");
	if (ioctl(fd, VHOST_SET_VRING_CALL, &call) < 0)
		return vhost_net_err(vh, "VHOST_SET_VRING_CALL");
	if (ioctl(fd, VHOST_NET_SET_BACKEND, &be) < 0)
		return vhost_net_err(vh, "VHOST_NET_SET_BACKEND");
	vh->running[pair][idx] = true;
	return 0;
}

void vhost_net_stop(struct vhost_net *vh)
{
	for (unsigned p = 0; p < vh->pairs; p++)
		for (unsigned i = 0; i < 2; i++) {
			struct vhost_vring_file be = {.index = i, .fd = -1};

			if (!vh->running[p][i])
				continue;
			if (ioctl(vh->fd[p], VHOST_NET_SET_BACKEND, &be) < 0)
				vhost_net_err(vh, "VHOST_NET_SET_BACKEND (stop)");
			vh->running[p][i] = false;
		}
}
