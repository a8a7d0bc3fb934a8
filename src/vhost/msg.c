/*
 * msg.c - vhost-user message framing, both directions: a 12-byte header,
 * a payload of `size` bytes, file descriptors as SCM_RIGHTS on the first
 * byte.  Shared by the backend (session.c via server.c) and the frontend
 * (client.c), so the wire format is written once.
 *
 * It owns the checks that do not depend on the request: version bits,
 * payload size cap, ancillary data not truncated, no short read.  Checks
 * that do (the payload size a request needs, the fds it takes) are the
 * receiver's.  It never keeps a received fd it cannot hand over: on any
 * error they are closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

const char *vhost_req_name(uint32_t req, char *buf, size_t len)
{
	static const char *const names[] = {
	    [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
	    [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
	    [VHOST_USER_SET_OWNER] = "SET_OWNER",
	    [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
	    [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
	    [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
	    [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
	    [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
	    [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
	    [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
	    [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
	    [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
	    [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
	    [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
	    [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	    [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	    [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	    [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	    [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
	    [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
	    [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
	};

	if (req < sizeof(names) / sizeof(names[0]) && names[req])
		return names[req];
	snprintf(buf, len, "request %u", req);
	return buf;
}

void vhost_msg_close_fds(struct vhost_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

/* Read exactly len bytes; -EPIPE at EOF. */
static int vhost_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (uint8_t *)buf + done, len - done);

		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int vhost_msg_recv(int fd, struct vhost_msg *m)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint8_t hdr[VHOST_USER_HDR_SIZE];
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof(ctl)};
	ssize_t n;
	int r = 0;

	m->nfds = 0;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->nfds < VHOST_USER_MAX_FDS)
				m->fds[m->nfds++] = f;
			else
				close(f);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		r = -EPROTO; /* more fds than any request carries */
	if (r == 0 && (size_t)n < sizeof(hdr))
		r = vhost_read_full(fd, hdr + n, sizeof(hdr) - (size_t)n) < 0 ? -EPROTO : 0;
	if (r == 0) {
		memcpy(&m->req, hdr, 4);
		memcpy(&m->flags, hdr + 4, 4);
		memcpy(&m->size, hdr + 8, 4);
		if ((m->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
		    m->size > VHOST_USER_PAYLOAD_MAX)
			r = -EPROTO;
	}
	if (r == 0) {
		memset(&m->p, 0, sizeof(m->p));
		if (m->size && vhost_read_full(fd, m->p.raw, m->size) < 0)
			r = -EPROTO;
	}
	if (r < 0)
		vhost_msg_close_fds(m);
	return r;
}

int vhost_msg_send(int fd, const struct vhost_msg *m)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint8_t hdr[VHOST_USER_HDR_SIZE];
	struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(hdr)},
	                       {.iov_base = (void *)m->p.raw, .iov_len = m->size}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->size ? 2 : 1};
	size_t total = sizeof(hdr) + m->size;
	ssize_t n;

	if (m->size > VHOST_USER_PAYLOAD_MAX || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	memcpy(hdr, &m->req, 4);
	memcpy(hdr + 4, &m->flags, 4);
	memcpy(hdr + 8, &m->size, 4);
	if (m->nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
		memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* A stream socket takes the whole small message or reports an error;
	 * a partial send only happens on a timeout, which ends the session. */
	return (size_t)n == total ? 0 : -EPIPE;
}
