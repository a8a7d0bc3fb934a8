/*
 * fuzz_vnet.c - libFuzzer targets for the virtio-net rx and tx paths
 * (src/virtio/net.c on the chain walker), built twice: fuzz_vnet_rx
 * (VNET_FUZZ_RX=1) and fuzz_vnet_tx (VNET_FUZZ_RX=0).
 *
 * The input writes the guest's descriptors raw (addresses folded into or
 * just around guest memory, any length, flags and next), the avail ring,
 * the features the driver accepts, and for rx the packets the "tap" (a
 * datagram socket pair) holds.  The device must never crash, hang or touch
 * memory outside the guest's; and while it is not broken:
 *   rx: every used length fits the buffer size limit, and the used lengths
 *       add up to exactly the bytes of the packets delivered;
 *   tx: every packet that reaches the tap is one the stats count, and
 *       every tx used element has length 0.
 *
 * Input: [features][ndesc] ndesc x [addr le16][len le16][flags][next]
 *        [navail] navail x [head] then (rx) packets: [len le16][bytes...].
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vguest.h"

#ifndef VNET_FUZZ_RX
#define VNET_FUZZ_RX 1
#endif

#define QSZ      32
#define MEM_SIZE (1u << 20)

static uint8_t next8(const uint8_t **p, size_t *left)
{
	if (*left == 0)
		return 0;
	(*left)--;
	return *(*p)++;
}

static uint16_t next16(const uint8_t **p, size_t *left)
{
	uint16_t lo = next8(p, left);

	return (uint16_t)(lo | next8(p, left) << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vguest g;
	static struct virtio_dev *dev;
	static int peer = -1;
	static uint8_t pkt[70000];
	struct vguest_ring rx, tx;
	struct vguest_ring *r;
	uint64_t feat;
	uint8_t mode;
	unsigned ndesc, navail;
	uint32_t id, len;
	uint64_t used_total = 0;
	struct vnet_stats before, after;

	if (dev == NULL) {
		struct vnet_config c = {.name = "fuzz", .pairs = 1};
		int sv[2];

		if (vguest_init(&g, MEM_SIZE) != 0 ||
		    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) != 0)
			abort();
		c.fds[0] = sv[0];
		peer = sv[1];
		if (vnet_create(&c, &g.gm, &g.env, &dev) != 0)
			abort();
	}
	/* Drain what an earlier input left on either side. */
	while (read(peer, pkt, sizeof(pkt)) >= 0)
		;
	while (read(vnet_backend_fd(dev, 0), pkt, sizeof(pkt)) >= 0)
		;
	g.brk = 0;
	virtio_dev_reset(dev);
	mode = next8(&data, &size);
	feat = virtio_dev_features(dev);
	if (mode & 1)
		feat &= ~VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF);
	if (mode & 2)
		feat &= ~(VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		          VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO6));
	if (mode & 4)
		feat &= ~VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX);
	if (mode & 8)
		feat &= ~VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC);
	vguest_ring_init(&g, &rx, QSZ);
	vguest_ring_init(&g, &tx, QSZ);
	if (virtio_dev_set_features(dev, feat) != 0 ||
	    virtio_dev_queue_enable(dev, 0, QSZ, rx.desc_gpa, rx.avail_gpa, rx.used_gpa) != 0 ||
	    virtio_dev_queue_enable(dev, 1, QSZ, tx.desc_gpa, tx.avail_gpa, tx.used_gpa) != 0)
		abort();
	r = VNET_FUZZ_RX ? &rx : &tx;

	/* Buffers live in the upper half of guest memory; addresses are
	 * folded into it, or (high bit) left to point anywhere near it. */
	ndesc = next8(&data, &size) % (QSZ + 1);
	for (unsigned i = 0; i < ndesc; i++) {
		uint16_t a = next16(&data, &size), l = next16(&data, &size);
		uint8_t fl = next8(&data, &size), nx = next8(&data, &size);
		uint64_t gpa = VGUEST_BASE + MEM_SIZE / 2 + (uint64_t)(a & 0x7fff) * 16;

		if (a & 0x8000)
			gpa = VGUEST_BASE + MEM_SIZE - 64 + (a & 0xff);
		if (fl & 0x80 && !(fl & VRING_DESC_F_INDIRECT))
			l = (uint16_t)(l % 3000); /* plausible sizes, most of the time */
		vguest_set_desc(r, (uint16_t)i, gpa, l, fl & 7, (uint16_t)(nx % (QSZ + 2)));
	}
	navail = next8(&data, &size) % (QSZ + 1);
	for (unsigned i = 0; i < navail; i++)
		vguest_publish(r, (uint16_t)(next8(&data, &size) % (QSZ + 1)));

	vnet_get_stats(dev, &before);
	if (VNET_FUZZ_RX) {
		for (unsigned n = 0; n < 8 && size > 0; n++) {
			uint16_t pl = next16(&data, &size);
			size_t l = (size_t)pl + (mode & 16 ? 65535u : 0u);

			if (l > sizeof(pkt))
				l = sizeof(pkt);
			for (size_t k = 0; k < l && size > 0 && k < 64; k++)
				pkt[k] = next8(&data, &size);
			if (write(peer, pkt, l) < 0)
				break;
		}
		vnet_queue_poll(dev, 0);
		virtio_dev_queue_notify(dev, 0);
	} else {
		virtio_dev_queue_notify(dev, 1);
	}
	vnet_get_stats(dev, &after);

	while (vguest_get_used(r, &id, &len)) {
		if (id >= QSZ)
			abort();
		if (!VNET_FUZZ_RX && len != 0)
			abort();
		used_total += len;
	}
	if (virtio_dev_is_broken(dev))
		return 0;
	if (VNET_FUZZ_RX) {
		uint64_t pk = after.rx_packets - before.rx_packets;

		if (used_total != after.rx_bytes - before.rx_bytes + pk * VNET_HDR_LEN)
			abort();
	} else {
		uint64_t n = 0;
		ssize_t got;

		while ((got = read(peer, pkt, sizeof(pkt))) >= 0) {
			if (got < VNET_HDR_LEN)
				abort();
			n++;
		}
		if (n != after.tx_packets - before.tx_packets)
			abort();
	}
	return 0;
}
