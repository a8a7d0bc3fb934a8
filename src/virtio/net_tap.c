/*
 * net_tap.c - the tap side of virtio-net: checking a tap fd the VMM was
 * given and applying what the guest negotiated to it.
 *
 * What it owns: the tap ioctls a device needs after the trusted side
 * created the tap (TUNGETIFF, TUNSETVNETHDRSZ, TUNSETOFFLOAD, TUNSETQUEUE);
 * none of them needs a network privilege.  What it never does: create a
 * tap, attach it to a bridge or touch rules (src/net does, before the VMM
 * starts).
 *
 * Offloads: the guest's GUEST_* features say which packets it accepts, so
 * they become the tap's TUN_F_* flags (what the kernel may hand us); the
 * HOST_* features need nothing here, the vnet header carries them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>

#include "internal.h"

int vnet_tap_prepare(int fd, const char *name)
{
	struct ifreq ifr;
	int hdr = VNET_HDR_LEN, fl;

	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
		virtio_log("NIC %s: fd %d is not a tap: %s", name, fd, strerror(errno));
		return -EINVAL;
	}
	if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_NO_PI) ||
	    !(ifr.ifr_flags & IFF_VNET_HDR)) {
		virtio_log("NIC %s: tap %s lacks IFF_TAP, IFF_NO_PI or IFF_VNET_HDR (flags 0x%x)",
		           name, ifr.ifr_name, (unsigned)ifr.ifr_flags);
		return -EINVAL;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		virtio_log("NIC %s: tap %s: TUNSETVNETHDRSZ %d: %s", name, ifr.ifr_name, hdr,
		           strerror(errno));
		return -errno;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		virtio_log("NIC %s: tap %s: O_NONBLOCK: %s", name, ifr.ifr_name, strerror(errno));
		return -errno;
	}
	return 0;
}

static int vnet_tap_offload(int fd, uint64_t f)
{
	unsigned off = 0;

	if (f & VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (f & VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (f & VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
		if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_ECN)))
			off |= TUN_F_TSO_ECN;
	}
	return ioctl(fd, TUNSETOFFLOAD, off) < 0 ? -errno : 0;
}

static int vnet_tap_queue(int fd, bool on)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}

const struct vnet_backend_ops vnet_tap_ops = {
    .set_offload = vnet_tap_offload,
    .set_queue = vnet_tap_queue,
};
