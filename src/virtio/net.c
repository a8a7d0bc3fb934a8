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
 *     pop chains into the queue's held list until it can take the largest
 *     packet the guest accepts -> readv(tap, their writable iovecs) ->
 *     push the chains the packet filled, num_buffers in the header; the
 *     others stay held for the next packet (each chain is walked once)
 *   less room than that: read the packet into a bounce buffer and copy it
 *     in if it fits; if not, or no chain at all: stop polling the tap
 *     (env.queue_fd_watch) and ask for a kick, which resumes it.
 *     Without MRG_RXBUF a packet goes into one chain.
 *   tx (kick): pop -> writev(tap, readable iovecs) -> push len 0; after
 *     256 packets the device asks to be called again (env.requeue)
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

#define VNET_CHAIN_IOV  64                      /* buffers per tx chain (Linux: at most 19) */
#define VNET_RX_IOV     1024                    /* writable buffers gathered for one rx packet */
#define VNET_RX_CHAINS  256                     /* chains one merged rx packet may span */
#define VNET_RX_BUDGET  256                     /* packets per wakeup; the fd stays readable */
#define VNET_TX_BUDGET  256                     /* packets per kick, then requeue */
#define VNET_RX_BIG     (VNET_HDR_LEN + 65550u) /* a GSO packet with a VLAN tag */
#define VNET_RX_SMALL   (VNET_HDR_LEN + 9018u)  /* a jumbo frame */
#define VNET_CONFIG_LEN 10

#define VNET_CTRL_MQ           4
#define VNET_CTRL_MQ_PAIRS_SET 0
#define VNET_OK                0
#define VNET_ERR               1
#define VNET_S_LINK_UP         1

/*
 * rx chains popped and not used yet (the held list, oldest first): a
 * packet goes into the first of them, the rest wait for the next packet,
 * so a chain is walked once however small the packets.  pending: a packet
 * read before there was room for it (it is copied in when buffers come).
 */
struct vnet_rxq {
	unsigned nheld, niov;
	uint64_t held_room;
	uint16_t head[VNET_RX_CHAINS];
	uint32_t room[VNET_RX_CHAINS];
	uint16_t nio[VNET_RX_CHAINS];
	struct iovec iov[VNET_RX_IOV];
	uint32_t pending_len;
	uint8_t pending[VNET_RX_BIG];
};

struct vnet_pair {
	int fd;
	bool rx_waiting; /* out of rx buffers: fd not polled until a kick */
	struct vnet_rxq *rx;
};

struct vnet {
	struct virtio_dev dev; /* first: virtio.c hands it back */
	const struct vnet_backend_ops *ops;
	bool external;
	unsigned pairs, active;
	struct vnet_pair pair[VNET_MAX_PAIRS];
	/* scratch, used by one queue at a time (all run on the event loop) */
	struct iovec chain_iov[VNET_CHAIN_IOV];
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

static void vnet_rx_forget(struct vnet_rxq *r)
{
	r->nheld = 0;
	r->niov = 0;
	r->held_room = 0;
	r->pending_len = 0;
}

/*
 * Pop chains into the held list until it has room for the largest packet
 * (one chain without MRG_RXBUF), the ring is empty or the list is full.
 * -EIO when the device broke.
 */
static int vnet_rx_top_up(struct vnet *n, struct vq *vq, struct vnet_rxq *r, bool mrg)
{
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_CHAIN_IOV};
	uint32_t need = vnet_rx_need(n);
	int got;

	while ((mrg ? r->held_room < need : r->nheld == 0) && r->nheld < VNET_RX_CHAINS &&
	       r->niov + VNET_CHAIN_IOV <= VNET_RX_IOV) {
		uint32_t room = 0;

		got = vq_pop(vq, &ch);
		if (got <= 0)
			return got < 0 ? -EIO : 0;
		/* Readable buffers in an rx chain carry nothing: skip them. */
		for (unsigned i = 0; i < ch.wr; i++) {
			r->iov[r->niov + i] = ch.iov[ch.rd + i];
			room += (uint32_t)ch.iov[ch.rd + i].iov_len;
		}
		if (room < VNET_HDR_LEN) {
			/* 5.1.6.3.1: every rx buffer holds at least a header. */
			vq_fail(vq,
			        "rx chain at head %u has %u writable bytes, less than the %u-byte "
			        "header",
			        ch.head, room, VNET_HDR_LEN);
			return -EIO;
		}
		r->niov += ch.wr;
		r->head[r->nheld] = ch.head;
		r->room[r->nheld] = room;
		r->nio[r->nheld++] = ch.wr;
		r->held_room += room;
	}
	return 0;
}

/* Room a packet may use: all held chains, or the first without MRG_RXBUF. */
static uint64_t vnet_rx_room(const struct vnet_rxq *r, bool mrg)
{
	return mrg ? r->held_room : r->nheld ? r->room[0] : 0;
}

/* A packet of len bytes is in the first held chains: push them, write
 * num_buffers, drop them from the held list. */
static void vnet_rx_deliver(struct vnet *n, struct vq *vq, struct vnet_rxq *r, uint64_t len)
{
	unsigned k = 0, iovs = 0;
	uint64_t left = len;
	uint16_t le;

	while (left > 0 && k < r->nheld) {
		uint32_t l = left < r->room[k] ? (uint32_t)left : r->room[k];

		vq_push(vq, r->head[k], l);
		left -= l;
		r->held_room -= r->room[k];
		iovs += r->nio[k++];
	}
	le = htole16((uint16_t)k);
	vq_buf_to_iov(r->iov, r->niov, offsetof(struct vnet_hdr, num_buffers), &le, sizeof(le));
	r->nheld -= k;
	r->niov -= iovs;
	memmove(r->head, r->head + k, r->nheld * sizeof(r->head[0]));
	memmove(r->room, r->room + k, r->nheld * sizeof(r->room[0]));
	memmove(r->nio, r->nio + k, r->nheld * sizeof(r->nio[0]));
	memmove(r->iov, r->iov + iovs, r->niov * sizeof(r->iov[0]));
	n->st.rx_packets++;
	n->st.rx_bytes += len - VNET_HDR_LEN;
}

/* A read from the tap: n bytes, or 0 when there is no packet now, -1 when
 * one was lost (counted). */
static ssize_t vnet_rx_read(struct vnet *n, unsigned q, int fd, const struct iovec *iov,
                            unsigned niov)
{
	ssize_t len = readv(fd, iov, (int)niov);

	if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (len < VNET_HDR_LEN) {
		/* The tap refused our buffers (EFAULT/EINVAL) and dropped it. */
		n->st.rx_dropped++;
		if (len < 0 && errno != EFAULT && errno != EINVAL)
			virtio_dev_log_guest(&n->dev, "rx queue %u: read: %s", q, strerror(errno));
		return -1;
	}
	return len;
}

/* Out of room: stop polling the tap until the guest kicks; 1 if it added
 * buffers meanwhile (go on), else 0. */
static int vnet_rx_wait(struct vnet *n, unsigned q)
{
	struct vnet_pair *p = &n->pair[q / 2];

	p->rx_waiting = true;
	vnet_watch(n, q, false);
	if (!vq_enable_notify(&n->dev.vqs[q]))
		return 0;
	p->rx_waiting = false;
	vnet_watch(n, q, true);
	return 1;
}

/* One packet: 1 when one was delivered or dropped (go on), 0 when there is
 * nothing more to do now, -EIO when broken. */
static int vnet_rx_one(struct vnet *n, unsigned q)
{
	struct vq *vq = &n->dev.vqs[q];
	struct vnet_pair *p = &n->pair[q / 2];
	struct vnet_rxq *r = p->rx;
	bool mrg = virtio_dev_has(&n->dev, VIRTIO_NET_F_MRG_RXBUF);
	bool full;
	ssize_t len;

	if (vnet_rx_top_up(n, vq, r, mrg) < 0)
		return -EIO;
	if (r->pending_len == 0) {
		if (mrg ? r->held_room >= vnet_rx_need(n) : r->nheld > 0) {
			/* Enough room for any packet: straight into the guest. */
			len = vnet_rx_read(n, q, p->fd, r->iov, mrg ? r->niov : r->nio[0]);
			if (len <= 0)
				return len < 0;
			if ((uint64_t)len > vnet_rx_room(r, mrg)) {
				/* The tap returns a packet's full length even
				 * when it cut it to our buffers: drop it. */
				n->st.rx_dropped++;
				return 1;
			}
			vnet_rx_deliver(n, vq, r, (uint64_t)len);
			return 1;
		}
		if (r->nheld == 0)
			return vnet_rx_wait(n, q);
		/* Some room, maybe not enough: look at the packet first. */
		len = vnet_rx_read(n, q, p->fd, &(struct iovec){r->pending, VNET_RX_BIG}, 1);
		if (len <= 0)
			return len < 0;
		r->pending_len = (uint32_t)len;
	}
	if (r->pending_len <= vnet_rx_room(r, mrg)) {
		vq_buf_to_iov(r->iov, r->niov, 0, r->pending, r->pending_len);
		vnet_rx_deliver(n, vq, r, r->pending_len);
		r->pending_len = 0;
		return 1;
	}
	full = r->nheld == VNET_RX_CHAINS || r->niov + VNET_CHAIN_IOV > VNET_RX_IOV;
	if (!mrg || full) {
		/* Buffers too small for it however many come: drop it. */
		n->st.rx_dropped++;
		r->pending_len = 0;
		return 1;
	}
	return vnet_rx_wait(n, q);
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
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_CHAIN_IOV};
	int fd = n->pair[q / 2].fd, got;
	unsigned done = 0;

	for (;;) {
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
			if (++done == VNET_TX_BUDGET && n->dev.env.requeue) {
				/* Let the loop serve rx and the other devices;
				 * notifications stay off until we are back. */
				virtio_dev_signal(&n->dev, q);
				n->dev.env.requeue(n->dev.env.opaque, q);
				return;
			}
		}
		if (got < 0 || !vq_enable_notify(vq))
			break;
	}
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
	struct vq_chain ch = {.iov = n->chain_iov, .iov_cap = VNET_CHAIN_IOV};
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
	vnet_rx_forget(n->pair[q / 2].rx);
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
	/* The held chains and a pending packet belonged to the old rings. */
	for (unsigned i = 0; i < n->pairs && !n->external; i++)
		vnet_rx_forget(n->pair[i].rx);
}

static void vnet_destroy(struct virtio_dev *dev)
{
	struct vnet *n = (struct vnet *)dev;

	for (unsigned i = 0; i < n->pairs; i++) {
		if (n->pair[i].fd >= 0)
			close(n->pair[i].fd);
		free(n->pair[i].rx);
	}
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
	for (unsigned i = 0; i < cfg->pairs; i++) {
		n->pair[i] = (struct vnet_pair){.fd = cfg->fds[i], .rx_waiting = true};
		if (!n->external && (n->pair[i].rx = calloc(1, sizeof(struct vnet_rxq))) == NULL) {
			for (unsigned j = 0; j < i; j++)
				free(n->pair[j].rx);
			virtio_dev_fini(&n->dev);
			free(n);
			return -ENOMEM;
		}
	}
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
