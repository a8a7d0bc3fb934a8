/*
 * client.c - the frontend's side of vhost-user, as the VMM needs it for a
 * virtio-blk device whose requests a backend process serves: connect and
 * negotiate, share the guest's memory, read the config space, start and
 * stop rings, reset.
 *
 * What it owns: the socket (blocking, with send and receive timeouts, so a
 * stuck backend cannot hang the VMM for long) and checking every reply
 * (request echoed, REPLY flag, exact size).  After the first failure the
 * connection is dead: every later call fails at once with -EPIPE, and the
 * VMM takes its queues back (docs/VHOST-USER.md).  What it never does:
 * touch the rings or decide what the guest sees.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define VHOST_FRONT_TIMEOUT_S 5

struct vhost_front {
	int fd;
	bool dead;
	uint64_t features, proto;
	unsigned queues;
	char socket[108];
};

static int vhost_front_fail(struct vhost_front *f, int r)
{
	if (r < 0)
		f->dead = true;
	return r;
}

/* Send a request; wait for its reply when REPLY is given (or an ack). */
static int vhost_front_call(struct vhost_front *f, struct vhost_msg *m, struct vhost_msg *reply,
                            uint32_t reply_size)
{
	struct vhost_msg ack;
	bool want_ack = !reply && (f->proto & VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	int r;

	if (f->dead)
		return -EPIPE;
	m->flags = VHOST_USER_VERSION | (want_ack ? VHOST_USER_NEED_REPLY : 0);
	if ((r = vhost_msg_send(f->fd, m)) < 0)
		return vhost_front_fail(f, r);
	if (!reply && !want_ack)
		return 0;
	if (!reply) {
		reply = &ack;
		reply_size = 8;
	}
	if ((r = vhost_msg_recv(f->fd, reply)) < 0)
		return vhost_front_fail(f, r);
	vhost_msg_close_fds(reply); /* no reply we ask for carries fds */
	if (reply->req != m->req || !(reply->flags & VHOST_USER_REPLY) || reply->size != reply_size)
		return vhost_front_fail(f, -EPROTO);
	if (reply == &ack && ack.p.u64 != 0)
		return -EIO; /* refused, the connection stays usable */
	return 0;
}

static int vhost_front_get_u64(struct vhost_front *f, uint32_t req, uint64_t *v)
{
	struct vhost_msg m = {.req = req}, reply;
	int r = vhost_front_call(f, &m, &reply, 8);

	if (r == 0)
		*v = reply.p.u64;
	return r;
}

static int vhost_front_set_u64(struct vhost_front *f, uint32_t req, uint64_t v)
{
	struct vhost_msg m = {.req = req, .size = 8, .p.u64 = v};

	return vhost_front_call(f, &m, NULL, 0);
}

static int vhost_front_mem(struct vhost_front *f, const struct vhost_front_region *regions,
                           unsigned n)
{
	struct vhost_msg m = {.req = VHOST_USER_SET_MEM_TABLE};

	if (n == 0 || n > VHOST_USER_MAX_REGIONS)
		return -EINVAL;
	m.size = 8 + 32 * n;
	m.p.mem.nregions = n;
	for (unsigned i = 0; i < n; i++) {
		m.p.mem.r[i] = (struct vhost_user_region){
		    .gpa = regions[i].gpa,
		    .size = regions[i].size,
		    .uva = (uint64_t)(uintptr_t)regions[i].host,
		    .mmap_offset = regions[i].offset,
		};
		m.fds[i] = regions[i].fd;
	}
	m.nfds = n;
	return vhost_front_call(f, &m, NULL, 0);
}

int vhost_front_connect(const char *socket_path, const struct vhost_front_region *regions,
                        unsigned nregions, uint64_t *features, unsigned *queues,
                        struct vhost_front **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = VHOST_FRONT_TIMEOUT_S};
	const uint64_t want_proto = VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_MQ) |
	                            VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	                            VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |
	                            VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE);
	struct vhost_front *f;
	const char *step = "connect";
	uint64_t v = 0;
	int r;

	if (strlen(socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "vhost-user socket \"%s\": path too long", socket_path);
		return -ENAMETOOLONG;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	snprintf(f->socket, sizeof(f->socket), "%s", socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || connect(f->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	step = "GET_FEATURES";
	if ((r = vhost_front_get_u64(f, VHOST_USER_GET_FEATURES, &f->features)) < 0)
		goto fail;
	r = -ENOTSUP;
	if (!(f->features & VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
		goto fail; /* without it, no GET_CONFIG */
	step = "GET_PROTOCOL_FEATURES";
	if ((r = vhost_front_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES, &v)) < 0)
		goto fail;
	step = "protocol feature CONFIG";
	r = -ENOTSUP;
	if (!(v & VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_CONFIG)))
		goto fail;
	step = "SET_PROTOCOL_FEATURES";
	if ((r = vhost_front_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, v & want_proto)) < 0)
		goto fail;
	f->proto = v & want_proto;
	step = "SET_OWNER";
	{
		struct vhost_msg m = {.req = VHOST_USER_SET_OWNER};

		if ((r = vhost_front_call(f, &m, NULL, 0)) < 0)
			goto fail;
	}
	f->queues = 1;
	if (f->proto & VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_MQ)) {
		step = "GET_QUEUE_NUM";
		if ((r = vhost_front_get_u64(f, VHOST_USER_GET_QUEUE_NUM, &v)) < 0)
			goto fail;
		r = -EPROTO;
		if (v == 0 || v > 1024)
			goto fail;
		f->queues = (unsigned)v;
	}
	step = "SET_MEM_TABLE";
	if ((r = vhost_front_mem(f, regions, nregions)) < 0)
		goto fail;
	*features = f->features & ~VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	*queues = f->queues;
	*out = f;
	return 0;
fail:
	snprintf(err, errlen, "vhost-user socket \"%s\": %s: %s", socket_path, step,
	         r == -ENOTSUP ? "the backend does not offer it" : strerror(-r));
	vhost_front_close(f);
	return r;
}

int vhost_front_get_config(struct vhost_front *f, void *buf, uint32_t len)
{
	struct vhost_msg m = {.req = VHOST_USER_GET_CONFIG}, reply;
	int r;

	if (len > VHOST_USER_CONFIG_MAX)
		return -EINVAL;
	m.size = 12 + len;
	m.p.cfg.size = len;
	if ((r = vhost_front_call(f, &m, &reply, 12 + len)) < 0)
		return r;
	if (reply.p.cfg.size != len || reply.p.cfg.offset != 0)
		return vhost_front_fail(f, -EPROTO);
	memcpy(buf, reply.p.cfg.data, len);
	return 0;
}

int vhost_front_set_features(struct vhost_front *f, uint64_t features)
{
	return vhost_front_set_u64(f, VHOST_USER_SET_FEATURES,
	                           features | VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
}

static int vhost_front_state(struct vhost_front *f, uint32_t req, unsigned q, uint32_t num)
{
	struct vhost_msg m = {.req = req, .size = sizeof(struct vhost_user_state)};

	m.p.state = (struct vhost_user_state){.index = q, .num = num};
	return vhost_front_call(f, &m, NULL, 0);
}

static int vhost_front_ring_fd(struct vhost_front *f, uint32_t req, unsigned q, int fd)
{
	struct vhost_msg m = {.req = req, .size = 8, .p.u64 = q};

	if (fd < 0) {
		m.p.u64 |= VHOST_USER_VRING_NOFD;
	} else {
		m.fds[0] = fd;
		m.nfds = 1;
	}
	return vhost_front_call(f, &m, NULL, 0);
}

int vhost_front_start(struct vhost_front *f, unsigned q, const struct vhost_front_ring *ring,
                      int kick_fd, int call_fd)
{
	struct vhost_msg m = {.req = VHOST_USER_SET_VRING_ADDR,
	                      .size = sizeof(struct vhost_user_addr)};
	int r;

	m.p.addr = (struct vhost_user_addr){
	    .index = q,
	    .desc = (uint64_t)(uintptr_t)ring->desc,
	    .used = (uint64_t)(uintptr_t)ring->used,
	    .avail = (uint64_t)(uintptr_t)ring->avail,
	};
	if ((r = vhost_front_state(f, VHOST_USER_SET_VRING_NUM, q, ring->size)) < 0 ||
	    (r = vhost_front_state(f, VHOST_USER_SET_VRING_BASE, q, ring->base)) < 0 ||
	    (r = vhost_front_call(f, &m, NULL, 0)) < 0 ||
	    (r = vhost_front_ring_fd(f, VHOST_USER_SET_VRING_CALL, q, call_fd)) < 0 ||
	    (r = vhost_front_ring_fd(f, VHOST_USER_SET_VRING_KICK, q, kick_fd)) < 0)
		return r;
	return vhost_front_state(f, VHOST_USER_SET_VRING_ENABLE, q, 1);
}

int vhost_front_stop(struct vhost_front *f, unsigned q, uint16_t *base)
{
	struct vhost_msg m = {.req = VHOST_USER_GET_VRING_BASE,
	                      .size = sizeof(struct vhost_user_state)},
	                 reply;
	int r;

	m.p.state.index = q;
	if ((r = vhost_front_state(f, VHOST_USER_SET_VRING_ENABLE, q, 0)) < 0 ||
	    (r = vhost_front_call(f, &m, &reply, sizeof(struct vhost_user_state))) < 0)
		return r;
	if (reply.p.state.index != q || reply.p.state.num > UINT16_MAX)
		return vhost_front_fail(f, -EPROTO);
	*base = (uint16_t)reply.p.state.num;
	return 0;
}

int vhost_front_reset(struct vhost_front *f)
{
	struct vhost_msg m = {.req = (f->proto & VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE))
	                                 ? VHOST_USER_RESET_DEVICE
	                                 : VHOST_USER_RESET_OWNER};

	return vhost_front_call(f, &m, NULL, 0);
}

int vhost_front_fd(const struct vhost_front *f)
{
	return f->fd;
}

bool vhost_front_dead(const struct vhost_front *f)
{
	return f->dead;
}

void vhost_front_close(struct vhost_front *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}
