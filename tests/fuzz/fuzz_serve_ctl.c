/*
 * fuzz_serve_ctl.c - libFuzzer target: a control-socket packet from a
 * hostile local client (src/serve/ctl.c compiled in): the input is sent as
 * one SOCK_SEQPACKET message, with descriptors attached when its first
 * byte says so, then received and, for RUN, split into argv the way the
 * daemon does.  Any crash, sanitizer error or leaked descriptor is a bug.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/internal.h"

static int fuzz_fds_open(void)
{
	int n = 0;

	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char payload[SERVE_CTL_MAX], *argv[129];
	int sv[2], fds[SERVE_CTL_FDS], pass[6];
	unsigned npass = size ? data[0] % 7 : 0, nfds = size > 1 ? data[1] % 5 : 4;
	uint32_t type;
	size_t len;
	int before;

	if (size < 2 || size > SERVE_CTL_HDR + SERVE_CTL_MAX + 16)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	before = fuzz_fds_open();
	struct msghdr mh = {0};
	struct iovec iov = {(void *)(data + 2), size - 2};
	union {
		char c[CMSG_SPACE(sizeof(int) * 6)];
		struct cmsghdr align;
	} cb;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	for (unsigned i = 0; i < npass; i++)
		pass[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (npass) {
		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.c;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * npass);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * npass);
		memcpy(CMSG_DATA(c), pass, sizeof(int) * npass);
	}
	if (sendmsg(sv[0], &mh, MSG_NOSIGNAL) >= 0) {
		unsigned got = nfds;
		if (serve_ctl_recv(sv[1], &type, payload, &len, fds, &got) == 0) {
			if (got > nfds)
				abort();
			if (type == SERVE_CTL_RUN) {
				int argc = serve_ctl_split_argv(payload, len, argv, 128);
				for (int i = 0; i < argc; i++)
					if (strlen(argv[i]) >= len)
						abort();
			}
			for (unsigned i = 0; i < got; i++)
				close(fds[i]);
		}
	}
	for (unsigned i = 0; i < npass; i++)
		close(pass[i]);
	if (fuzz_fds_open() != before)
		abort(); /* a descriptor leaked */
	close(sv[0]);
	close(sv[1]);
	return 0;
}
