/*
 * ctl.c - the control socket's protocol, client side and message helpers.
 *
 * What it owns: the bytes on ROOT/run/POOL.sock, a SOCK_SEQPACKET UNIX
 * socket, so that one message is one packet and a short or long packet is
 * refused as a whole.  Every message starts with this header:
 *
 *   +--------------+--------------+--------------------------------------+
 *   | magic le32   | type le32    | payload (at most SERVE_CTL_MAX bytes)|
 *   | "ZVC1"       |              |                                      |
 *   +--------------+--------------+--------------------------------------+
 *
 *   type  payload                                ancillary (SCM_RIGHTS)
 *   RUN   argv: argc strings, each NUL-ended      stdin, stdout, stderr, cwd
 *   VHOST u8 read-only, then "VOL" NUL-ended      -
 *   REPLY le32 status (exit status for RUN,       -
 *         -errno for VHOST), then text NUL-ended
 *         (socket path or error message)
 *
 * A connection carries one request and its reply; for RUN the reply comes
 * when the command ends, and a client that hangs up before stops a command
 * that runs until then (`vol serve`).  What it never does: trust a length
 * or a count it did not check, or keep a descriptor it did not expect.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define SERVE_CTL_GIVE_UP_MS 5000

void serve_sock_path(const char *root, const char *pool, char *buf, size_t len)
{
	snprintf(buf, len, "%s/run/%s.sock", root, pool);
}

int serve_read_full(int fd, void *buf, size_t len)
{
	uint8_t *b = buf;

	while (len) {
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int serve_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int serve_ctl_send(int fd, uint32_t type, const void *payload, size_t len, const int *fds,
                   unsigned nfds)
{
	uint8_t buf[SERVE_CTL_HDR + SERVE_CTL_MAX];
	union {
		char c[CMSG_SPACE(sizeof(int) * SERVE_CTL_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov;
	struct msghdr mh = {0};
	uint32_t h[2] = {SERVE_CTL_MAGIC, type};

	if (len > SERVE_CTL_MAX || nfds > SERVE_CTL_FDS)
		return -EMSGSIZE;
	memcpy(buf, h, sizeof(h));
	if (len)
		memcpy(buf + SERVE_CTL_HDR, payload, len);
	iov.iov_base = buf;
	iov.iov_len = SERVE_CTL_HDR + len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.c;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : 0;
	}
}

int serve_ctl_recv(int fd, uint32_t *type, void *payload, size_t *len, int *fds, unsigned *nfds)
{
	uint8_t buf[SERVE_CTL_HDR + SERVE_CTL_MAX + 1];
	union {
		char c[CMSG_SPACE(sizeof(int) * SERVE_CTL_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	unsigned want = nfds ? *nfds : 0, got = 0;
	uint32_t h[2];
	ssize_t n;

	mh.msg_control = cbuf.c;
	mh.msg_controllen = sizeof(cbuf.c);
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Take every descriptor that came, so that none leaks (an empty
	 * packet may carry some too). */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *in = (int *)CMSG_DATA(c);
		for (unsigned i = 0; i < k; i++) {
			int f;
			memcpy(&f, in + i, sizeof(f));
			if (got < want)
				fds[got++] = f;
			else
				close(f);
		}
	}
	if (nfds)
		*nfds = got;
	if (n == 0) {
		for (unsigned i = 0; i < got; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		return -EPIPE;
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < SERVE_CTL_HDR ||
	    (size_t)n > SERVE_CTL_HDR + SERVE_CTL_MAX)
		goto bad;
	memcpy(h, buf, sizeof(h));
	if (h[0] != SERVE_CTL_MAGIC)
		goto bad;
	*type = h[1];
	*len = (size_t)n - SERVE_CTL_HDR;
	memcpy(payload, buf + SERVE_CTL_HDR, *len);
	return 0;
bad:
	for (unsigned i = 0; i < got; i++)
		close(fds[i]);
	if (nfds)
		*nfds = 0;
	return -EBADMSG;
}

int serve_ctl_split_argv(char *payload, size_t len, char **argv, int max)
{
	int argc = 0;
	size_t i = 0;

	if (len == 0 || payload[len - 1] != 0)
		return -EBADMSG;
	while (i < len) {
		if (argc == max)
			return -E2BIG;
		argv[argc++] = payload + i;
		i += strlen(payload + i) + 1;
	}
	argv[argc] = NULL;
	return argc;
}

int serve_ctl_reply(int fd, int32_t status, const char *text)
{
	uint8_t buf[SERVE_CTL_MAX];
	size_t tl = strnlen(text ? text : "", SERVE_CTL_MAX - 8);

	memcpy(buf, &status, 4);
	memcpy(buf + 4, text ? text : "", tl);
	buf[4 + tl] = 0;
	return serve_ctl_send(fd, SERVE_CTL_REPLY, buf, 5 + tl, NULL, 0);
}

/* Connect to POOL's daemon: the fd, or -ENOENT when none runs. */
static int ctl_connect(const char *root, const char *pool)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	int fd;

	serve_sock_path(root, pool, path, sizeof(path));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		/* No socket, or a stale one of a daemon that died. */
		return e == ENOENT || e == ECONNREFUSED || e == ENOTDIR ? -ENOENT : -e;
	}
	return fd;
}

/* Wait for the REPLY to our request. */
static int ctl_wait_reply(int fd, int32_t *status, char *text, size_t tlen)
{
	uint8_t buf[SERVE_CTL_MAX];
	uint32_t type;
	size_t len;
	int r = serve_ctl_recv(fd, &type, buf, &len, NULL, NULL);

	if (r)
		return r;
	if (type != SERVE_CTL_REPLY || len < 5 || buf[len - 1] != 0)
		return -EBADMSG;
	memcpy(status, buf, 4);
	if (text)
		snprintf(text, tlen, "%s", (char *)buf + 4);
	return 0;
}

/*
 * Wait for a RUN's reply.  SIGINT/SIGTERM hang up our side, which ends a
 * command that runs until then (`vol serve`); its reply then comes at
 * once.  A command that does not stop for it is left to finish in the
 * daemon: after SERVE_CTL_GIVE_UP_MS we exit as the signal asked.
 */
static int ctl_wait_run(int fd, int32_t *st)
{
	sigset_t ss, old;
	int sfd, r, signo = 0;

	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, &old);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	for (;;) {
		struct pollfd pf[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
		int n = poll(pf, sfd >= 0 ? 2 : 1, signo ? SERVE_CTL_GIVE_UP_MS : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			r = -EINTR;
			break;
		}
		if (n > 0 && sfd >= 0 && pf[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && !signo) {
				signo = (int)si.ssi_signo;
				shutdown(fd, SHUT_WR);
			}
			continue;
		}
		r = ctl_wait_reply(fd, st, NULL, 0);
		break;
	}
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r == -EINTR && signo) {
		signal(signo, SIG_DFL);
		raise(signo); /* die of it, as without the daemon */
	}
	return r;
}

int serve_forward(const char *root, const char *pool, int argc, char **argv, int *status)
{
	char payload[SERVE_CTL_MAX];
	size_t len = 0;
	int fds[4] = {0, 1, 2, -1};
	int fd, r;
	int32_t st;

	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;
		if (len + l > sizeof(payload)) {
			fprintf(stderr, "zonevm: command line too long for the pool daemon\n");
			return -E2BIG;
		}
		memcpy(payload + len, argv[i], l);
		len += l;
	}
	fd = ctl_connect(root, pool);
	if (fd < 0)
		return fd;
	for (int i = 0; i < 3; i++) /* a closed stdio descriptor reads as /dev/null */
		if (fcntl(i, F_GETFD) < 0)
			fds[i] = open("/dev/null", i ? O_WRONLY | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
	fds[3] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fds[3] < 0 || fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
		r = -errno;
		fprintf(stderr, "zonevm: cannot open the working directory or /dev/null: %s\n",
		        strerror(errno));
		for (int i = 0; i < 4; i++)
			if (fds[i] != i && fds[i] >= 0)
				close(fds[i]);
		close(fd);
		return r;
	}
	r = serve_ctl_send(fd, SERVE_CTL_RUN, payload, len, fds, 4);
	for (int i = 0; i < 4; i++)
		if (fds[i] != i && fds[i] >= 0)
			close(fds[i]);
	if (!r)
		r = ctl_wait_run(fd, &st);
	close(fd);
	if (r) {
		fprintf(stderr, "zonevm: pool \"%s\": the pool daemon did not answer: %s\n", pool,
		        strerror(-r));
		return r;
	}
	*status = st;
	return 0;
}

int serve_export_vhost(const char *root, const char *poolvol, bool ro, char *sock, size_t socklen,
                       char *err, size_t errlen)
{
	char pool[64], payload[512], text[SERVE_CTL_MAX];
	const char *slash = strchr(poolvol, '/');
	size_t vl;
	int32_t st;
	int fd, r;

	if (!slash || slash == poolvol || (size_t)(slash - poolvol) >= sizeof(pool) ||
	    (vl = strlen(slash + 1)) == 0 || vl + 2 > sizeof(payload))
		return serve_err(err, errlen, -EINVAL,
		                 "invalid volume name \"%s\" (expected POOL/VOL)", poolvol);
	snprintf(pool, sizeof(pool), "%.*s", (int)(slash - poolvol), poolvol);
	fd = ctl_connect(root, pool);
	if (fd < 0)
		return serve_err(
		    err, errlen, fd == -ENOENT ? -ENOENT : fd,
		    "pool \"%s\": no pool daemon runs (start 'zonevm pool serve %s'): %s", pool,
		    pool, strerror(-fd));
	payload[0] = ro ? 1 : 0;
	memcpy(payload + 1, slash + 1, vl + 1);
	r = serve_ctl_send(fd, SERVE_CTL_VHOST, payload, vl + 2, NULL, 0);
	if (!r)
		r = ctl_wait_reply(fd, &st, text, sizeof(text));
	close(fd);
	if (r)
		return serve_err(err, errlen, r, "pool \"%s\": the pool daemon did not answer: %s",
		                 pool, strerror(-r));
	if (st)
		return serve_err(err, errlen, st < 0 ? st : -EIO, "%s", text);
	if (strlen(text) >= socklen)
		return serve_err(err, errlen, -ENAMETOOLONG, "socket path too long: %s", text);
	snprintf(sock, socklen, "%s", text);
	return 0;
}
