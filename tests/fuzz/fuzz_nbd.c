/*
 * fuzz_nbd.c - libFuzzer target: the NBD server (src/serve/nbd.c, compiled
 * in) from the first byte the client sends: the input is the whole client
 * side of a session (flags, options, requests, payloads), replayed over a
 * socketpair to nbd_session() on an in-memory export, with a thread
 * draining the replies.  Any crash, sanitizer error, hang or touch outside
 * the export is a bug.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/internal.h"

#define FUZZ_DISK 65536u

static uint8_t disk[FUZZ_DISK];

static int f_read(void *a, void *buf, uint32_t len, uint64_t off)
{
	if (off > FUZZ_DISK || len > FUZZ_DISK - off)
		abort(); /* nbd.c let an out-of-range request through */
	memcpy(buf, disk + off, len);
	return 0;
}

static int f_write(void *a, const void *buf, uint32_t len, uint64_t off)
{
	if (off > FUZZ_DISK || len > FUZZ_DISK - off)
		abort();
	memcpy(disk + off, buf, len);
	return 0;
}

static int f_flush(void *a)
{
	return 0;
}

static int f_zero(void *a, uint64_t off, uint32_t len)
{
	if (off > FUZZ_DISK || len > FUZZ_DISK - off)
		abort();
	memset(disk + off, 0, len);
	return off == 4096 ? -5 : 0; /* one range fails, to reach the error paths */
}

static const struct nbd_export_ops f_ops = {f_read, f_write, f_flush, f_zero, f_zero};

struct feed {
	int fd;
	const uint8_t *data;
	size_t len;
};

/* Write the client's bytes and drain the server's replies until EOF. */
static void *client_main(void *arg)
{
	struct feed *f = arg;
	uint8_t buf[65536];

	serve_write_full(f->fd, f->data, f->len);
	shutdown(f->fd, SHUT_WR);
	while (read(f->fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_export ex = {.name = "tank/v", .size = FUZZ_DISK, .ops = &f_ops};
	struct feed f = {.data = data, .len = size};
	int sv[2];
	pthread_t t;

	if (size && (data[0] & 1))
		ex.ro = true;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f.fd = sv[0];
	if (pthread_create(&t, NULL, client_main, &f)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	nbd_session(sv[1], &ex);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
