/*
 * net.c - the virtio-net device model (virtio 1.x, 5.1) on a packet
 * backend: a tap with a 12-byte vnet header in the VMM.
 *
 * What it owns: the config space (MAC, link status, max queue pairs), the
 * feature set, moving packets between the rx/tx queues and the backend fd
 * of each queue pair, and the control queue (VQ_PAIRS_SET).  The guest's
 * header and the tap's are the same 12 bytes, so packets go straight
 * between guest buffers and the tap with readv/writev, offloads included
 * (the kernel checks the header's GSO and checksum fields).  What it never
 * does: poll (rx runs when the tap fd is readable, tx on a kick), block
 * (the fds are non-blocking), or trust a length or header from the guest.
 *
 *   rx (tap readable, vnet_queue_poll):
 *     pop chains until they hold the largest packet the guest accepts ->
 *     readv(tap, their writable iovecs) -> push the chains the packet
 *     filled, num_buffers in the header -> give back (vq_unpop) the others
 *   rx queue empty: stop polling the tap (env.queue_fd_watch) and ask for
 *     a kick; the kick resumes it.  Without MRG_RXBUF one chain per packet.
 *   tx (kick): pop -> writev(tap, readable iovecs) -> push len 0
 *
 * A bad chain breaks the device through the chain walker (NEEDS_RESET).
 * A well-formed chain that cannot carry a packet (shorter than the header,
 * more buffers than we take) is dropped and counted.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define VNET_TX_IOV     64                      /* buffers per tx chain (Linux: at most 19) */
#define VNET_RX_IOV     1024                    /* writable buffers gathered for one rx packet */
#define VNET_RX_CHAINS  256                     /* chains one merged rx packet may span */
#define VNET_RX_BUDGET  256                     /* packets per wakeup; the fd stays readable */
#define VNET_RX_BIG     (VNET_HDR_LEN + 65550u) /* a GSO packet with a VLAN tag */
#define VNET_RX_SMALL   (VNET_HDR_LEN + 9018u)  /* a jumbo frame */
#define VNET_CONFIG_LEN 10

#define VNET_CTRL_MQ           4
#define VNET_CTRL_MQ_PAIRS_SET 0
#define VNET_OK                0
#define VNET_ERR               1
#define VNET_S_LINK_UP         1

struct vnet_pair {
	int fd;
	bool rx_waiting; /* out of rx buffers: fd not polled until a kick */
};

struct vnet {
	struct virtio_dev dev; /* first: virtio.c hands it back */
	const struct vnet_backend_ops *ops;
	bool external;
	unsigned pairs, active;
	struct vnet_pair pair[VNET_MAX_PAIRS];
	/* scratch, used by one queue at a time (all run on the event loop) */
	struct iovec chain_iov[VNET_TX_IOV];
	struct iovec rx_iov[VNET_RX_IOV];
	uint16_t rx_head[VNET_RX_CHAINS];
	uint32_t rx_room[VNET_RX_CHAINS];
	struct vnet_stats st;
};

static bool vnet_is_rx(const struct vnet *n, unsigned q)
{
	return q < 2 * n->pairs && q % 2 == 0;
}

static bool vnet_is_ctrl(const struct vnet *n, unsigned q)
{
	return n->pairs > 1 && q == 2 * n->pairs;
}

static void vnet_watch(struct vnet *n, unsigned q, bool on)
{
	if (n->dev.env.queue_fd_watch)
		n->dev.env.queue_fd_watch(n->dev.env.opaque, q, on);
}

/* ---- rx: backend -> guest ------------------------------------------------ */

/* The largest packet (with header) the guest said it can take. */
static uint32_t vnet_rx_need(const struct vnet *n)
{
	if (virtio_dev_has(&n->dev, VIRTIO_NET_F_GUEST_TSO4) ||
	    virtio_dev_has(&n->dev, VIRTIO_NET_F_GUEST_TSO6))
		return VNET_RX_BIG;
	return VNET_RX_SMALL;
}

/*
 * Pop chains until their writable room reaches need (one chain without
 * MRG_RXBUF).  Returns the chains popped, -1 when the ring ran out first
 * (they are given back), -EIO when the device broke.
 */
static int vnet_rx_gather(struct vnet *n, struct vq *vq, bool mrg, uint32_t need, unsigned *niov)
{
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_TX_IOV};
	uint64_t room = 0;
	unsigned chains = 0;
	int r;

	*niov = 0;
	while (chains < VNET_RX_CHAINS && *niov < VNET_RX_IOV) {
		uint32_t croom = 0;

		r = vq_pop(vq, &ch);
		if (r < 0)
			return -EIO;
		if (r == 0)
			break;
		/* Readable buffers in an rx chain carry nothing: skip them. */
		for (unsigned i = 0; i < ch.wr && *niov < VNET_RX_IOV; i++) {
			n->rx_iov[(*niov)++] = ch.iov[ch.rd + i];
			croom += (uint32_t)ch.iov[ch.rd + i].iov_len;
		}
		if (croom < VNET_HDR_LEN) {
			/* 5.1.6.3.1: every rx buffer holds at least a header. */
			vq_fail(vq,
			        "rx chain at head %u has %u writable bytes, less than the %u-byte "
			        "header",
			        ch.head, croom, VNET_HDR_LEN);
			return -EIO;
		}
		n->rx_head[chains] = ch.head;
		n->rx_room[chains++] = croom;
		room += croom;
		if (!mrg || room >= need)
			return (int)chains;
	}
	/* A ring whose every buffer together is smaller than need: use it. */
	if (chains > 0 && (chains == vq->size || chains == VNET_RX_CHAINS || *niov == VNET_RX_IOV))
		return (int)chains;
	vq_unpop(vq, (uint16_t)chains);
	return -1;
}

/* Header fields we own: num_buffers, written across buffer boundaries. */
static void vnet_rx_set_buffers(struct vnet *n, unsigned niov, uint16_t nbuf)
{
	uint16_t le = htole16(nbuf);

	vq_buf_to_iov(n->rx_iov, niov, offsetof(struct vnet_hdr, num_buffers), &le, sizeof(le));
}

/* One packet; 1 when one was delivered or dropped, 0 when there is no
 * more to do now, -EIO when broken. */
static int vnet_rx_one(struct vnet *n, unsigned q)
{
	struct vq *vq = &n->dev.vqs[q];
	struct vnet_pair *p = &n->pair[q / 2];
	bool mrg = virtio_dev_has(&n->dev, VIRTIO_NET_F_MRG_RXBUF);
	unsigned niov, used;
	ssize_t len;
	uint64_t left;
	int chains = vnet_rx_gather(n, vq, mrg, vnet_rx_need(n), &niov);

	if (chains == -EIO)
		return -EIO;
	if (chains < 0) {
		/* No room: wait for the guest's kick instead of spinning on a
		 * readable tap. */
		p->rx_waiting = true;
		vnet_watch(n, q, false);
		if (vq_enable_notify_more(vq)) {
			p->rx_waiting = false;
			vnet_watch(n, q, true);
			return 1;
		}
		return 0;
	}
	len = readv(p->fd, n->rx_iov, (int)niov);
	if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		vq_unpop(vq, (uint16_t)chains);
		return 0;
	}
	if (len < VNET_HDR_LEN) {
		/* A packet that did not fit (EFAULT/EINVAL from the tap) is
		 * consumed by the kernel: count it, keep the buffers. */
		vq_unpop(vq, (uint16_t)chains);
		n->st.rx_dropped++;
		if (len < 0 && errno != EFAULT && errno != EINVAL && errno != EMSGSIZE) {
			virtio_dev_log_guest(&n->dev, "rx queue %u: read: %s", q, strerror(errno));
			return 0;
		}
		return 1;
	}
	left = (uint64_t)len;
	for (used = 0; used < (unsigned)chains && left > 0; used++) {
		uint32_t l = left < n->rx_room[used] ? (uint32_t)left : n->rx_room[used];

		vq_push(vq, n->rx_head[used], l);
		left -= l;
	}
	vnet_rx_set_buffers(n, niov, (uint16_t)used);
	vq_unpop(vq, (uint16_t)(chains - (int)used));
	n->st.rx_packets++;
	n->st.rx_bytes += (uint64_t)len - VNET_HDR_LEN;
	return 1;
}

void vnet_queue_poll(struct virtio_dev *dev, unsigned q)
{
	struct vnet *n = (struct vnet *)dev;
	unsigned done = 0;

	if (n->external || !vnet_is_rx(n, q))
		return;
	if (!dev->vqs[q].ready || virtio_dev_is_broken(dev) || q / 2 >= n->active) {
		/* No driver ring to fill: poll again when the queue starts. */
		vnet_watch(n, q, false);
		n->pair[q / 2].rx_waiting = true;
		return;
	}
	while (done < VNET_RX_BUDGET && vnet_rx_one(n, q) > 0)
		done++;
	if (!n->pair[q / 2].rx_waiting)
		vq_disable_notify(&dev->vqs[q]); /* kicks only matter while waiting */
	virtio_dev_signal(dev, q);
}

/* The guest added rx buffers. */
static void vnet_rx_kick(struct vnet *n, unsigned q)
{
	struct vnet_pair *p = &n->pair[q / 2];

	if (!p->rx_waiting || q / 2 >= n->active)
		return;
	p->rx_waiting = false;
	vnet_watch(n, q, true);
	vnet_queue_poll(&n->dev, q);
}

/* ---- tx: guest -> backend -------------------------------------------------- */

static void vnet_tx(struct vnet *n, unsigned q)
{
	struct vq *vq = &n->dev.vqs[q];
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_TX_IOV};
	int fd = n->pair[q / 2].fd, got;

	do {
		vq_disable_notify(vq);
		while ((got = vq_pop(vq, &ch)) > 0) {
			ssize_t w = -1;

			if (!ch.truncated && ch.rd_len >= VNET_HDR_LEN && ch.rd_len <= VNET_RX_BIG)
				w = writev(fd, ch.iov, ch.rd);
			if (w < 0) {
				/* Too short, too long, too many buffers, or a
				 * header the kernel refused: dropped. */
				n->st.tx_dropped++;
			} else {
				n->st.tx_packets++;
				n->st.tx_bytes += ch.rd_len - VNET_HDR_LEN;
			}
			vq_push(vq, ch.head, 0);
		}
	} while (got == 0 && vq_enable_notify(vq));
	virtio_dev_signal(&n->dev, q);
}

/* ---- control queue ------------------------------------------------------- */

static uint8_t vnet_ctrl_mq(struct vnet *n, uint8_t cmd, const struct vq_chain *ch)
{
	uint16_t le;
	unsigned want;

	if (cmd != VNET_CTRL_MQ_PAIRS_SET ||
	    vq_iov_to_buf(ch->iov, ch->rd, 2, &le, sizeof(le)) != sizeof(le))
		return VNET_ERR;
	want = le16toh(le);
	if (want < 1 || want > n->pairs) {
		virtio_dev_log_guest(&n->dev, "VQ_PAIRS_SET %u: the device has 1 to %u", want,
		                     n->pairs);
		return VNET_ERR;
	}
	for (unsigned i = 1; i < n->pairs && n->ops && n->ops->set_queue; i++)
		if ((i < want) != (i < n->active))
			n->ops->set_queue(n->pair[i].fd, i < want);
	n->active = want;
	for (unsigned i = 0; i < want && !n->external; i++)
		vnet_rx_kick(n, 2 * i);
	return VNET_OK;
}

static void vnet_ctrl(struct vnet *n, unsigned q)
{
	struct vq *vq = &n->dev.vqs[q];
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_TX_IOV};
	uint8_t hdr[2];
	int got;

	while ((got = vq_pop(vq, &ch)) > 0) {
		uint8_t ack = VNET_ERR;

		if (ch.truncated || ch.last_wr.iov_len == 0) {
			virtio_dev_log_guest(&n->dev, "control request without a status byte");
			vq_push(vq, ch.head, 0);
			continue;
		}
		if (vq_iov_to_buf(ch.iov, ch.rd, 0, hdr, sizeof(hdr)) == sizeof(hdr) &&
		    hdr[0] == VNET_CTRL_MQ)
			ack = vnet_ctrl_mq(n, hdr[1], &ch);
		*((uint8_t *)ch.last_wr.iov_base + ch.last_wr.iov_len - 1) = ack;
		vq_push(vq, ch.head, 1);
	}
	virtio_dev_signal(&n->dev, q);
}

/* ---- device ops ---------------------------------------------------------- */

static void vnet_notify(struct virtio_dev *dev, unsigned q)
{
	struct vnet *n = (struct vnet *)dev;

	if (vnet_is_ctrl(n, q))
		vnet_ctrl(n, q);
	else if (n->external)
		return; /* the kernel serves the rx/tx rings */
	else if (vnet_is_rx(n, q))
		vnet_rx_kick(n, q);
	else if (q < 2 * n->pairs)
		vnet_tx(n, q);
}

static int vnet_queue_start(struct virtio_dev *dev, unsigned q)
{
	struct vnet *n = (struct vnet *)dev;
	int r;

	if (!vnet_is_rx(n, q))
		return 0;
	if (q == 0 && n->ops && n->ops->set_offload &&
	    (r = n->ops->set_offload(n->pair[0].fd, dev->guest_features)) < 0) {
		virtio_log("%s: cannot set the offloads the guest accepted: %s", dev->name,
		           strerror(-r));
		return r;
	}
	for (unsigned i = 1; q == 0 && i < n->pairs && n->ops && n->ops->set_offload; i++)
		n->ops->set_offload(n->pair[i].fd, dev->guest_features);
	if (n->external)
		return 0;
	n->pair[q / 2].rx_waiting = false;
	vnet_watch(n, q, true);
	return 0;
}

static void vnet_reset(struct virtio_dev *dev)
{
	struct vnet *n = (struct vnet *)dev;

	/* Back to one pair (5.1.5); the rx fds pause at their next wakeup. */
	for (unsigned i = 1; i < n->active && n->ops && n->ops->set_queue; i++)
		n->ops->set_queue(n->pair[i].fd, false);
	n->active = 1;
}

static void vnet_destroy(struct virtio_dev *dev)
{
	struct vnet *n = (struct vnet *)dev;

	for (unsigned i = 0; i < n->pairs; i++)
		if (n->pair[i].fd >= 0)
			close(n->pair[i].fd);
	virtio_dev_fini(dev);
	free(n);
}

static const struct virtio_dev_ops vnet_ops = {
    .queue_start = vnet_queue_start,
    .queue_notify = vnet_notify,
    .reset = vnet_reset,
    .destroy = vnet_destroy,
};

int vnet_backend_fd(struct virtio_dev *dev, unsigned pair)
{
	struct vnet *n = (struct vnet *)dev;

	return pair < n->pairs ? n->pair[pair].fd : -1;
}

int vnet_queue_fd(struct virtio_dev *dev, unsigned q)
{
	struct vnet *n = (struct vnet *)dev;

	return !n->external && vnet_is_rx(n, q) ? n->pair[q / 2].fd : -1;
}

void vnet_get_stats(struct virtio_dev *dev, struct vnet_stats *st)
{
	*st = ((struct vnet *)dev)->st;
}

unsigned vnet_active_pairs(struct virtio_dev *dev)
{
	return ((struct vnet *)dev)->active;
}

int vnet_create(const struct vnet_config *cfg, const struct gmem *gm, const struct virtio_env *env,
                struct virtio_dev **out)
{
	uint64_t f = VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	             VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX) | VIRTIO_F_BIT(VIRTIO_NET_F_CSUM) |
	             VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_F_BIT(VIRTIO_NET_F_MAC) |
	             VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO4) | VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_TSO6) |
	             VIRTIO_F_BIT(VIRTIO_NET_F_GUEST_ECN) | VIRTIO_F_BIT(VIRTIO_NET_F_HOST_TSO4) |
	             VIRTIO_F_BIT(VIRTIO_NET_F_HOST_TSO6) | VIRTIO_F_BIT(VIRTIO_NET_F_HOST_ECN) |
	             VIRTIO_F_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_F_BIT(VIRTIO_NET_F_STATUS);
	unsigned nq;
	struct vnet *n;
	char name[48];
	int e;

	if (cfg->pairs < 1 || cfg->pairs > VNET_MAX_PAIRS) {
		virtio_log("%s: %u queue pairs asked, 1 to %u possible", cfg->name, cfg->pairs,
		           VNET_MAX_PAIRS);
		return -EINVAL;
	}
	if (cfg->pairs > 1)
		f |= VIRTIO_F_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_F_BIT(VIRTIO_NET_F_MQ);
	if (cfg->external)
		f &= ~cfg->features_clear;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	nq = 2u * cfg->pairs + (cfg->pairs > 1);
	snprintf(name, sizeof(name), "virtio-net %s", cfg->name);
	e = virtio_dev_init(&n->dev, &vnet_ops, name, VIRTIO_ID_NET, (uint16_t)nq, VNET_QUEUE_SIZE,
	                    f, gm, env);
	if (e < 0) {
		free(n);
		return e;
	}
	n->ops = cfg->ops;
	n->external = cfg->external;
	n->pairs = cfg->pairs;
	n->active = 1;
	for (unsigned i = 0; i < cfg->pairs; i++)
		n->pair[i] = (struct vnet_pair){.fd = cfg->fds[i], .rx_waiting = true};
	for (unsigned i = 1; i < cfg->pairs && n->ops && n->ops->set_queue; i++)
		n->ops->set_queue(n->pair[i].fd, false);
	memcpy(n->dev.config, cfg->mac, 6);
	n->dev.config[6] = VNET_S_LINK_UP;
	n->dev.config[7] = 0;
	n->dev.config[8] = (uint8_t)cfg->pairs;
	n->dev.config[9] = 0;
	n->dev.config_len = VNET_CONFIG_LEN;
	*out = &n->dev;
	return 0;
}
