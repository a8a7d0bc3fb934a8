/*
 * test_serve_vol.c - src/serve without a daemon: the control protocol's
 * messages (descriptors passed and never leaked, hostile packets refused),
 * the attach rules (one read-write holder, named in the refusal), and the
 * vblk backend on a pool volume driven the way src/virtio's blk.c drives
 * it (submit, commit, eventfd, reap), from several threads at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "serve/internal.h"
#include "test_pool_common.h"
#include "virtio/virtio.h"

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fd_open(fd);
	return n;
}

static void test_ctl_messages(void **state)
{
	(void)state;
	char payload[SERVE_CTL_MAX], *argv[8];
	int sp[2], fds[SERVE_CTL_FDS], pass[4];
	unsigned nfds;
	uint32_t type;
	size_t len;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	for (int i = 0; i < 4; i++)
		pass[i] = open("/dev/null", O_RDONLY);
	/* a RUN with four descriptors and its argv */
	assert_int_equal(serve_ctl_send(sp[0], SERVE_CTL_RUN, "vol\0list\0", 9, pass, 4), 0);
	nfds = 4;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), 0);
	assert_int_equal(type, SERVE_CTL_RUN);
	assert_int_equal(nfds, 4);
	assert_int_equal(serve_ctl_split_argv(payload, len, argv, 7), 2);
	assert_string_equal(argv[0], "vol");
	assert_string_equal(argv[1], "list");
	assert_null(argv[2]);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	int before = count_fds();
	/* more descriptors than wanted: the extra ones are closed, not leaked */
	assert_int_equal(serve_ctl_send(sp[0], SERVE_CTL_VHOST, "\0v", 3, pass, 4), 0);
	nfds = 1;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), 0);
	assert_int_equal(nfds, 1);
	assert_true(fd_open(fds[0]));
	close(fds[0]);
	assert_int_equal(count_fds(), before);
	/* a foreign packet: refused, its descriptors closed */
	uint32_t bad[3] = {0xdeadbeef, 1, 0};
	struct iovec iov = {bad, sizeof(bad)};
	assert_int_equal(writev(sp[0], &iov, 1), (ssize_t)sizeof(bad));
	nfds = 4;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), -EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);
	/* an empty packet carrying descriptors: EOF-like, descriptors closed */
	struct msghdr mh = {0};
	union {
		char c[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} cb;
	memset(&cb, 0, sizeof(cb));
	mh.msg_control = cb.c;
	mh.msg_controllen = sizeof(cb.c);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * 2);
	memcpy(CMSG_DATA(cm), pass, sizeof(int) * 2);
	assert_int_equal(sendmsg(sp[0], &mh, 0), 0);
	nfds = 4;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), -EPIPE);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);
	/* shorter than a header */
	assert_int_equal(write(sp[0], "ZV", 2), 2);
	nfds = 4;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), -EBADMSG);
	/* longer than any message */
	char *big = calloc(1, SERVE_CTL_MAX + 64);
	uint32_t h[2] = {SERVE_CTL_MAGIC, SERVE_CTL_RUN};
	memcpy(big, h, 8);
	assert_int_equal(write(sp[0], big, SERVE_CTL_MAX + 64), SERVE_CTL_MAX + 64);
	nfds = 4;
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, fds, &nfds), -EBADMSG);
	free(big);
	assert_int_equal(serve_ctl_send(sp[0], 1, payload, SERVE_CTL_MAX + 1, NULL, 0), -EMSGSIZE);
	/* argv: unterminated, empty, too many */
	memcpy(payload, "vol\0list", 8);
	assert_int_equal(serve_ctl_split_argv(payload, 8, argv, 7), -EBADMSG);
	assert_int_equal(serve_ctl_split_argv(payload, 0, argv, 7), -EBADMSG);
	memset(payload, 0, 9);
	assert_int_equal(serve_ctl_split_argv(payload, 9, argv, 7), -E2BIG);
	/* a reply */
	assert_int_equal(serve_ctl_reply(sp[1], -EBUSY, "held by x"), 0);
	nfds = 0;
	assert_int_equal(serve_ctl_recv(sp[0], &type, payload, &len, NULL, NULL), 0);
	assert_int_equal(type, SERVE_CTL_REPLY);
	int32_t st;
	memcpy(&st, payload, 4);
	assert_int_equal(st, -EBUSY);
	assert_string_equal(payload + 4, "held by x");
	/* the peer left */
	close(sp[0]);
	assert_int_equal(serve_ctl_recv(sp[1], &type, payload, &len, NULL, NULL), -EPIPE);
	close(sp[1]);
	for (int i = 0; i < 4; i++)
		close(pass[i]);
}

static void test_forward_without_daemon(void **state)
{
	(void)state;
	char dir[] = "/tmp/zvm-serve-test-XXXXXX", sock[128], err[256];
	char *argv[] = {"vol", "list", NULL};
	int st = -1;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(serve_forward(dir, "tank", 2, argv, &st), -ENOENT);
	assert_int_equal(st, -1);
	assert_int_equal(
	    serve_export_vhost(dir, "tank/v", false, sock, sizeof(sock), err, sizeof(err)),
	    -ENOENT);
	assert_non_null(strstr(err, "no pool daemon runs"));
	assert_int_equal(
	    serve_export_vhost(dir, "tankv", false, sock, sizeof(sock), err, sizeof(err)), -EINVAL);
	/* a stale socket file (a daemon that died) is no daemon either */
	char run[96], path[160];
	snprintf(run, sizeof(run), "%s/run", dir);
	mkdir(run, 0700);
	serve_sock_path(dir, "tank", path, sizeof(path));
	int l = serve_listen(path, err, sizeof(err));
	assert_true(l >= 0);
	close(l);
	assert_int_equal(serve_forward(dir, "tank", 2, argv, &st), -ENOENT);
	unlink(path);
	rmdir(run);
	rmdir(dir);
}

struct tvol {
	struct tpool t;
	struct serve_pool *sp;
};

static void tvol_setup(struct tvol *tv)
{
	tp_create(&tv->t, 64u << 20);
	TP_OK(tv->t.p, vol_create(tv->t.p, "v", 4u << 20, 4096, POOL_COMPRESS_LZ4));
	tp_write(tv->t.p, "v", 0, 4u << 20, 1);
	TP_OK(tv->t.p, vol_snapshot(tv->t.p, "v@s"));
	assert_int_equal(serve_pool_wrap(tv->t.p, &tv->sp), 0);
}

static void tvol_teardown(struct tvol *tv)
{
	assert_int_equal(serve_pool_close(tv->sp), 0);
	tv->t.p = NULL;
	tp_destroy(&tv->t);
}

static void test_attach(void **state)
{
	(void)state;
	struct tvol tv;
	struct serve_attach *a, *b, *c;
	char err[256], holder[64];

	tvol_setup(&tv);
	assert_int_equal(serve_attach(tv.sp, "v", false, "vm one", &a, err, sizeof(err)), 0);
	assert_int_equal(serve_attach(tv.sp, "v", false, "vm two", &b, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "tank/v is attached read-write by vm one");
	assert_true(serve_attach_holder(tv.sp, "v", holder, sizeof(holder)));
	assert_string_equal(holder, "vm one");
	assert_int_equal(serve_attach(tv.sp, "v", true, "reader", &b, err, sizeof(err)), 0);
	assert_int_equal(serve_attach(tv.sp, "v@s", false, "x", &c, err, sizeof(err)), -EROFS);
	assert_int_equal(serve_attach(tv.sp, "v@s", true, "x", &c, err, sizeof(err)), 0);
	serve_pool_lock(tv.sp); /* busy: the volume, its snapshot, not others */
	assert_true(serve_attach_busy(tv.sp, "v@s", err, sizeof(err)));
	assert_string_equal(err, "tank/v@s is attached read-only by x");
	assert_true(serve_attach_busy(tv.sp, "v", err, sizeof(err)));
	assert_false(serve_attach_busy(tv.sp, "w", err, sizeof(err)));
	assert_false(serve_attach_busy(tv.sp, "v@t", err, sizeof(err)));
	serve_pool_unlock(tv.sp);
	serve_detach(c);
	assert_int_equal(serve_attach(tv.sp, "nope", true, "x", &c, err, sizeof(err)), -ENOENT);
	assert_int_equal(serve_attach(tv.sp, "bad/name", true, "x", &c, err, sizeof(err)), -EINVAL);
	serve_detach(a);
	assert_false(serve_attach_holder(tv.sp, "v", holder, sizeof(holder)));
	assert_int_equal(serve_attach(tv.sp, "v", false, "vm two", &a, err, sizeof(err)), 0);
	serve_detach(a);
	serve_detach(b);
	tvol_teardown(&tv);
}

/* Wait for the queue's eventfd, then reap until N ios came back. */
static void reap_n(struct vblk_backend *be, unsigned q, unsigned n, struct vblk_io **out)
{
	unsigned got = 0;

	while (got < n) {
		struct pollfd pf = {be->ops->queue_fd(be, q), POLLIN, 0};
		assert_true(poll(&pf, 1, 10000) == 1);
		got += be->ops->reap(be, q, out + got, n - got);
	}
}

static void test_vblk_io(void **state)
{
	(void)state;
	static uint8_t wbuf[65536], rbuf[65536], expect[65536];
	struct vblk_backend *be, *be2;
	struct vblk_io io[8], *done[8];
	struct iovec wiov[2], riov[2];
	struct tvol tv;
	char err[256];

	tvol_setup(&tv);
	assert_int_equal(serve_vblk_create(tv.sp, "v", false, "vm a", 2, 4, &be, err, sizeof(err)),
	                 0);
	assert_int_equal(be->size, 4u << 20);
	assert_int_equal(serve_vblk_create(tv.sp, "v", false, "vm b", 1, 4, &be2, err, sizeof(err)),
	                 -EBUSY);
	assert_non_null(strstr(err, "vm a"));

	/* a write in two iovecs, a flush, then a read in two iovecs */
	tp_fill(wbuf, sizeof(wbuf), 7);
	wiov[0] = (struct iovec){wbuf, 1000};
	wiov[1] = (struct iovec){wbuf + 1000, sizeof(wbuf) - 1000};
	io[0] = (struct vblk_io){
	    .op = VBLK_OP_WRITE, .offset = 8192, .len = sizeof(wbuf), .iov = wiov, .iovcnt = 2};
	io[1] = (struct vblk_io){.op = VBLK_OP_FLUSH};
	assert_int_equal(be->ops->submit(be, 0, &io[0]), 0);
	assert_int_equal(be->ops->submit(be, 0, &io[1]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 2, done);
	assert_int_equal(io[0].result, 0);
	assert_int_equal(io[1].result, 0);
	riov[0] = (struct iovec){rbuf, 512};
	riov[1] = (struct iovec){rbuf + 512, sizeof(rbuf) - 512};
	io[2] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = 8192, .len = sizeof(rbuf), .iov = riov, .iovcnt = 2};
	assert_int_equal(be->ops->submit(be, 1, &io[2]), 0);
	be->ops->commit(be, 1);
	reap_n(be, 1, 1, done);
	assert_ptr_equal(done[0], &io[2]);
	assert_int_equal(io[2].result, 0);
	assert_memory_equal(rbuf, wbuf, sizeof(rbuf));

	/* discard and write-zeroes read back as zeroes; out of range fails */
	io[3] = (struct vblk_io){.op = VBLK_OP_DISCARD, .offset = 8192, .len = 4096};
	io[4] = (struct vblk_io){.op = VBLK_OP_WRITE_ZEROES, .offset = 16384, .len = 1000};
	io[5] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = (4u << 20) - 512, .len = 1024, .iov = riov, .iovcnt = 2};
	for (int i = 3; i < 6; i++)
		assert_int_equal(be->ops->submit(be, 0, &io[i]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 3, done);
	assert_int_equal(io[3].result, 0);
	assert_int_equal(io[4].result, 0);
	assert_int_equal(io[5].result, -EINVAL);
	memcpy(expect, wbuf, sizeof(expect));
	memset(expect, 0, 4096);
	memset(expect + 8192, 0, 1000);
	io[6] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = 8192, .len = sizeof(rbuf), .iov = riov, .iovcnt = 2};
	riov[0] = (struct iovec){rbuf, 512};
	riov[1] = (struct iovec){rbuf + 512, sizeof(rbuf) - 512};
	assert_int_equal(be->ops->submit(be, 0, &io[6]), 0);
	assert_int_equal(be->ops->wait(be, 0), 0); /* commits, then sleeps */
	reap_n(be, 0, 1, done);
	assert_memory_equal(rbuf, expect, sizeof(rbuf));

	/* the queue depth is a limit */
	for (int i = 0; i < 4; i++) {
		io[i] = (struct vblk_io){.op = VBLK_OP_FLUSH};
		assert_int_equal(be->ops->submit(be, 1, &io[i]), 0);
	}
	io[4] = (struct vblk_io){.op = VBLK_OP_FLUSH};
	assert_int_equal(be->ops->submit(be, 1, &io[4]), -EBUSY);
	be->ops->commit(be, 1);
	reap_n(be, 1, 4, done);
	be->ops->destroy(be);

	/* read-only: writes refused, reads fine; a snapshot read-only too */
	assert_int_equal(serve_vblk_create(tv.sp, "v@s", true, "ro", 1, 2, &be, err, sizeof(err)),
	                 0);
	io[0] = (struct vblk_io){
	    .op = VBLK_OP_WRITE, .offset = 0, .len = 512, .iov = wiov, .iovcnt = 1};
	io[1] =
	    (struct vblk_io){.op = VBLK_OP_READ, .offset = 0, .len = 512, .iov = riov, .iovcnt = 1};
	riov[0] = (struct iovec){rbuf, 512};
	assert_int_equal(be->ops->submit(be, 0, &io[0]), 0);
	assert_int_equal(be->ops->submit(be, 0, &io[1]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 2, done);
	assert_int_equal(io[0].result, -EROFS);
	assert_int_equal(io[1].result, 0);
	tp_fill(expect, 512, 1);
	assert_memory_equal(rbuf, expect, 512);
	be->ops->destroy(be);
	tvol_teardown(&tv);
}

/*
 * Lay LEN bytes out as iovecs in MEM: pieces of varying sizes with GAP bytes
 * between them, except every fifth piece, which follows the one before
 * (so runs contiguous in memory are merged, and some are 64 KiB and more).
 */
static unsigned scatter(uint8_t *mem, size_t len, size_t gap, struct iovec *iov, unsigned max)
{
	static const size_t sizes[] = {512, 4096, 69632, 3072, 1536, 4096};
	size_t pos = 0, done = 0;
	unsigned n = 0;

	while (done < len && n < max) {
		size_t k = sizes[n % 6];
		if (k > len - done)
			k = len - done;
		if (n % 5 != 4)
			pos += gap;
		iov[n++] = (struct iovec){mem + pos, k};
		pos += k;
		done += k;
	}
	return n;
}

/* Scattered buffers (the bounce path, over 1 MiB) read back what was written. */
static void test_vblk_scatter(void **state)
{
	(void)state;
	enum { LEN = (1u << 20) + 700 * 1024, MEM = 3u << 20 };
	uint8_t *src = malloc(LEN), *got = malloc(LEN), *wmem = calloc(1, MEM),
	        *rmem = calloc(1, MEM);
	struct iovec wiov[512], riov[512], one;
	struct vblk_io io[3], *done[3];
	struct vblk_backend *be;
	struct tvol tv;
	char err[256];
	unsigned wn, rn;

	assert_non_null(src);
	assert_non_null(got);
	assert_non_null(wmem);
	assert_non_null(rmem);
	tvol_setup(&tv);
	assert_int_equal(serve_vblk_create(tv.sp, "v", false, "vm", 1, 4, &be, err, sizeof(err)),
	                 0);
	tp_fill(src, LEN, 11);
	wn = scatter(wmem, LEN, 64, wiov, 512);
	for (size_t i = 0, at = 0; i < wn; at += wiov[i].iov_len, i++)
		memcpy(wiov[i].iov_base, src + at, wiov[i].iov_len);
	rn = scatter(rmem, LEN, 4096, riov, 512);
	io[0] = (struct vblk_io){
	    .op = VBLK_OP_WRITE, .offset = 512, .len = LEN, .iov = wiov, .iovcnt = wn};
	io[1] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = 512, .len = LEN, .iov = riov, .iovcnt = rn};
	one = (struct iovec){got, LEN};
	io[2] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = 512, .len = LEN, .iov = &one, .iovcnt = 1};
	/* requests in flight together may complete in any order (virtio-blk
	 * has no ordering without the legacy BARRIER feature): the reads go
	 * after the write completed */
	assert_int_equal(be->ops->submit(be, 0, &io[0]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 1, done);
	for (int i = 1; i < 3; i++)
		assert_int_equal(be->ops->submit(be, 0, &io[i]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 2, done);
	for (int i = 0; i < 3; i++)
		assert_int_equal(io[i].result, 0);
	assert_memory_equal(got, src, LEN); /* what the scattered write stored */
	for (size_t i = 0, at = 0; i < rn; at += riov[i].iov_len, i++)
		assert_memory_equal(riov[i].iov_base, src + at, riov[i].iov_len);

	/* buffers shorter than the request: refused, nothing written */
	io[0] = (struct vblk_io){
	    .op = VBLK_OP_WRITE, .offset = 0, .len = LEN, .iov = wiov, .iovcnt = wn - 1};
	io[1] = (struct vblk_io){
	    .op = VBLK_OP_READ, .offset = 512, .len = LEN, .iov = &one, .iovcnt = 1};
	memset(got, 0, LEN);
	for (int i = 0; i < 2; i++)
		assert_int_equal(be->ops->submit(be, 0, &io[i]), 0);
	be->ops->commit(be, 0);
	reap_n(be, 0, 2, done);
	assert_int_equal(io[0].result, -EINVAL);
	assert_int_equal(io[1].result, 0);
	assert_memory_equal(got, src, LEN);
	be->ops->destroy(be);
	tvol_teardown(&tv);
	free(src);
	free(got);
	free(wmem);
	free(rmem);
}

/* Two backends on two volumes, hammered from two threads each. */
struct hammer {
	struct vblk_backend *be;
	unsigned q;
	uint64_t base;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	static __thread uint8_t buf[4][4096];
	struct vblk_io io[4], *done[4];
	struct iovec iov[4];

	for (unsigned round = 0; round < 50; round++) {
		for (unsigned i = 0; i < 4; i++) {
			memset(buf[i], (int)(round + i + h->q), sizeof(buf[i]));
			iov[i] = (struct iovec){buf[i], 4096};
			io[i] = (struct vblk_io){.op = VBLK_OP_WRITE,
			                         .offset = h->base + 4096u * i,
			                         .len = 4096,
			                         .iov = &iov[i],
			                         .iovcnt = 1};
			assert_int_equal(h->be->ops->submit(h->be, h->q, &io[i]), 0);
		}
		h->be->ops->commit(h->be, h->q);
		reap_n(h->be, h->q, 4, done);
		for (unsigned i = 0; i < 4; i++)
			assert_int_equal(io[i].result, 0);
	}
	return NULL;
}

static void test_vblk_threads(void **state)
{
	(void)state;
	struct vblk_backend *a, *b;
	struct hammer h[4];
	pthread_t t[4];
	struct tvol tv;
	char err[256];

	tvol_setup(&tv);
	serve_pool_lock(tv.sp);
	TP_OK(tv.t.p, vol_clone(tv.t.p, "v@s", "w"));
	serve_pool_unlock(tv.sp);
	assert_int_equal(serve_vblk_create(tv.sp, "v", false, "a", 2, 4, &a, err, sizeof(err)), 0);
	assert_int_equal(serve_vblk_create(tv.sp, "w", false, "b", 2, 4, &b, err, sizeof(err)), 0);
	for (unsigned i = 0; i < 4; i++) {
		h[i] = (struct hammer){i < 2 ? a : b, i % 2, 65536u * i};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	a->ops->destroy(a);
	b->ops->destroy(b);
	assert_int_equal(serve_pool_commit(tv.sp), 0);
	serve_pool_lock(tv.sp);
	struct pool_scrub_result res;
	TP_OK(tv.t.p, pool_scrub(tv.t.p, NULL, NULL, &res));
	assert_int_equal(res.errors, 0);
	serve_pool_unlock(tv.sp);
	tvol_teardown(&tv);
}

/*
 * Readers and writers on one volume at once, through four queues (so the
 * shared reads, the reads served at submit from the ARC, the workers'
 * exclusive writes and flushes all overlap), while another thread commits
 * and the main thread takes a snapshot.  Each 4 KiB block holds one
 * 64-bit word (block << 32 | generation) repeated; a writer owns its half
 * of the blocks and publishes, per block, the newest generation submitted
 * (issued) and the newest completed (acked).  What must hold:
 *   - a read returns a whole generation, never a torn mix, no older than
 *     the one acked before the read was submitted and no newer than the
 *     one issued when it completed;
 *   - the snapshot holds, per block, a generation between what was acked
 *     and what was issued when it was taken (every acknowledged write);
 *   - at the end the volume holds exactly the last generations, the pool
 *     scrubs clean and its ARC served hits.
 * No TSan here (the build has ASan and UBSan): the reasoning that the pool
 * is safe is in vblk_vol.c and pool.h (shared reads change only the ARC,
 * which has its own mutex; everything else runs alone).
 */
#define CC_BLOCKS  256u
#define CC_ROUNDS  120u
#define CC_WRITERS 2u
#define CC_READERS 2u

struct cc {
	struct vblk_backend *be;
	struct serve_pool *sp;
	_Atomic uint32_t issued[CC_BLOCKS], acked[CC_BLOCKS];
	_Atomic unsigned writers_left;
	_Atomic bool committing;
	_Atomic unsigned reads_checked;
};

struct cc_thread {
	struct cc *c;
	unsigned index; /* writers 0.., then readers */
	uint64_t rnd;
	uint8_t buf[8][16384];
};

static uint64_t cc_word(unsigned blk, uint32_t gen)
{
	return (uint64_t)blk << 32 | gen;
}

static void cc_fill(uint8_t *buf, unsigned blk, uint32_t gen)
{
	uint64_t w = cc_word(blk, gen);

	for (unsigned i = 0; i < 4096 / 8; i++)
		memcpy(buf + 8 * i, &w, 8);
}

/* The generation of block BLK's 4 KiB in BUF; fails the test if torn. */
static uint32_t cc_gen(const uint8_t *buf, unsigned blk)
{
	uint64_t w, first;

	memcpy(&first, buf, 8);
	for (unsigned i = 1; i < 4096 / 8; i++) {
		memcpy(&w, buf + 8 * i, 8);
		assert_true(w == first);
	}
	assert_int_equal(first >> 32, blk);
	return (uint32_t)first;
}

static unsigned cc_rand(struct cc_thread *t, unsigned n)
{
	t->rnd = t->rnd * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((t->rnd >> 33) % n);
}

static void *cc_writer(void *arg)
{
	struct cc_thread *t = arg;
	struct cc *c = t->c;
	unsigned half = CC_BLOCKS / CC_WRITERS, first = t->index * half;
	struct vblk_io io[5], *done[5];
	struct iovec iov[4];

	for (unsigned round = 0; round < CC_ROUNDS; round++) {
		unsigned n = 0, blk[4];
		for (unsigned i = 0; i < 4; i++) {
			/* four different blocks of this writer's half */
			blk[i] = first + (cc_rand(t, half / 4) * 4 + i) % half;
			uint32_t gen = atomic_fetch_add(&c->issued[blk[i]], 1) + 1;
			cc_fill(t->buf[i], blk[i], gen);
			iov[i] = (struct iovec){t->buf[i], 4096};
			io[n++] = (struct vblk_io){.op = VBLK_OP_WRITE,
			                           .offset = 4096ull * blk[i],
			                           .len = 4096,
			                           .iov = &iov[i],
			                           .iovcnt = 1};
		}
		if (round % 8 == 7)
			io[n++] = (struct vblk_io){.op = VBLK_OP_FLUSH};
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(c->be->ops->submit(c->be, t->index, &io[i]), 0);
		c->be->ops->commit(c->be, t->index);
		reap_n(c->be, t->index, n, done);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(io[i].result, 0);
		for (unsigned i = 0; i < 4; i++) /* each block written by this thread only */
			atomic_store(&c->acked[blk[i]], atomic_load(&c->issued[blk[i]]));
	}
	atomic_fetch_sub(&c->writers_left, 1);
	return NULL;
}

static void *cc_reader(void *arg)
{
	struct cc_thread *t = arg;
	struct cc *c = t->c;
	unsigned q = t->index;
	struct vblk_io io[8], *done[8];
	struct iovec iov[8];
	uint32_t lo[8][4];
	unsigned blk[8], nblk[8];

	while (atomic_load(&c->writers_left) > 0) {
		for (unsigned i = 0; i < 8; i++) {
			/* 4 KiB reads, and 16 KiB ones over four blocks */
			nblk[i] = i % 3 == 2 ? 4 : 1;
			blk[i] = cc_rand(t, CC_BLOCKS - nblk[i] + 1);
			for (unsigned k = 0; k < nblk[i]; k++)
				lo[i][k] = atomic_load(&c->acked[blk[i] + k]);
			iov[i] = (struct iovec){t->buf[i], 4096u * nblk[i]};
			io[i] = (struct vblk_io){.op = VBLK_OP_READ,
			                         .offset = 4096ull * blk[i],
			                         .len = 4096u * nblk[i],
			                         .iov = &iov[i],
			                         .iovcnt = 1};
			assert_int_equal(c->be->ops->submit(c->be, q, &io[i]), 0);
		}
		c->be->ops->commit(c->be, q);
		reap_n(c->be, q, 8, done);
		for (unsigned i = 0; i < 8; i++) {
			assert_int_equal(io[i].result, 0);
			for (unsigned k = 0; k < nblk[i]; k++) {
				uint32_t g = cc_gen(t->buf[i] + 4096 * k, blk[i] + k);
				assert_true(g >= lo[i][k]);
				assert_true(g <= atomic_load(&c->issued[blk[i] + k]));
			}
		}
		atomic_fetch_add(&c->reads_checked, 8);
	}
	return NULL;
}

/* Commits every few milliseconds: shared reads then find blocks on disk. */
static void *cc_committer(void *arg)
{
	struct cc *c = arg;

	while (atomic_load(&c->committing)) {
		assert_int_equal(serve_pool_commit(c->sp), 0);
		usleep(3000);
	}
	return NULL;
}

static void cc_run(const char *vol, enum pool_compression comp)
{
	struct cc *c = calloc(1, sizeof(*c));
	struct cc_thread *t = calloc(CC_WRITERS + CC_READERS, sizeof(*t));
	pthread_t th[CC_WRITERS + CC_READERS], committer;
	uint32_t snap_lo[CC_BLOCKS], snap_hi[CC_BLOCKS];
	uint8_t *buf = malloc(CC_BLOCKS * 4096u);
	struct pool_status st0, st1;
	char snap[64], err[256];
	struct tvol tv;
	struct vol *v;

	assert_non_null(c);
	assert_non_null(t);
	assert_non_null(buf);
	tvol_setup(&tv);
	c->sp = tv.sp;
	serve_pool_lock(tv.sp);
	TP_OK(tv.t.p, vol_create(tv.t.p, vol, CC_BLOCKS * 4096u, 16384, comp));
	TP_OK(tv.t.p, vol_open(tv.t.p, vol, &v));
	for (unsigned b = 0; b < CC_BLOCKS; b++)
		cc_fill(buf + 4096u * b, b, 0);
	TP_OK(tv.t.p, vol_write(v, buf, CC_BLOCKS * 4096u, 0));
	TP_OK(tv.t.p, pool_get_status(tv.t.p, &st0));
	serve_pool_unlock(tv.sp);
	assert_int_equal(serve_vblk_create(tv.sp, vol, false, "cc", CC_WRITERS + CC_READERS, 16,
	                                   &c->be, err, sizeof(err)),
	                 0);
	c->writers_left = CC_WRITERS;
	c->committing = true;
	assert_int_equal(pthread_create(&committer, NULL, cc_committer, c), 0);
	for (unsigned i = 0; i < CC_WRITERS + CC_READERS; i++) {
		t[i] = (struct cc_thread){.c = c, .index = i, .rnd = 77 + i};
		assert_int_equal(
		    pthread_create(&th[i], NULL, i < CC_WRITERS ? cc_writer : cc_reader, &t[i]), 0);
	}
	/* a snapshot while they run: every write acknowledged before it is in it */
	while (atomic_load(&c->issued[0]) + atomic_load(&c->issued[CC_BLOCKS - 1]) < 2 &&
	       atomic_load(&c->writers_left) > 0)
		usleep(1000);
	snprintf(snap, sizeof(snap), "%s@mid", vol);
	serve_pool_lock(tv.sp);
	for (unsigned b = 0; b < CC_BLOCKS; b++)
		snap_lo[b] = atomic_load(&c->acked[b]);
	TP_OK(tv.t.p, vol_snapshot(tv.t.p, snap));
	for (unsigned b = 0; b < CC_BLOCKS; b++)
		snap_hi[b] = atomic_load(&c->issued[b]);
	serve_pool_unlock(tv.sp);
	for (unsigned i = 0; i < CC_WRITERS + CC_READERS; i++)
		pthread_join(th[i], NULL);
	c->committing = false;
	pthread_join(committer, NULL);
	assert_true(atomic_load(&c->reads_checked) > 0);
	c->be->ops->destroy(c->be);

	serve_pool_lock(tv.sp);
	TP_OK(tv.t.p, vol_read(v, buf, CC_BLOCKS * 4096u, 0));
	for (unsigned b = 0; b < CC_BLOCKS; b++)
		assert_int_equal(cc_gen(buf + 4096u * b, b), atomic_load(&c->acked[b]));
	vol_close(v);
	TP_OK(tv.t.p, vol_open(tv.t.p, snap, &v));
	TP_OK(tv.t.p, vol_read(v, buf, CC_BLOCKS * 4096u, 0));
	for (unsigned b = 0; b < CC_BLOCKS; b++) {
		uint32_t g = cc_gen(buf + 4096u * b, b);
		assert_true(g >= snap_lo[b] && g <= snap_hi[b]);
	}
	vol_close(v);
	TP_OK(tv.t.p, pool_sync(tv.t.p));
	struct pool_scrub_result res;
	TP_OK(tv.t.p, pool_scrub(tv.t.p, NULL, NULL, &res));
	assert_int_equal(res.errors, 0);
	TP_OK(tv.t.p, pool_get_status(tv.t.p, &st1));
	assert_true(st1.arc.hits > st0.arc.hits);
	assert_int_equal(st1.read_errors, 0);
	serve_pool_unlock(tv.sp);
	tvol_teardown(&tv);
	free(buf);
	free(t);
	free(c);
}

static void test_vblk_concurrent(void **state)
{
	(void)state;
	cc_run("c", POOL_COMPRESS_LZ4);
	cc_run("o", POOL_COMPRESS_OFF);
}

/* The daemon in a thread of this process: its run hook records argv. */
struct tdaemon {
	struct tvol tv;
	char root[64];
	pthread_t t;
	int result;
	char seen[256];
};

static int tdaemon_run(void *arg, int argc, char **argv, const int fds[3], int cwd_fd, int stop_fd)
{
	struct tdaemon *td = arg;

	td->seen[0] = 0;
	for (int i = 0; i < argc; i++)
		snprintf(td->seen + strlen(td->seen), sizeof(td->seen) - strlen(td->seen), "%s%s",
		         i ? " " : "", argv[i]);
	assert_true(fd_open(fds[0]) && fd_open(fds[1]) && fd_open(fds[2]) && fd_open(cwd_fd));
	return 40 + argc;
}

static const struct serve_hooks tdaemon_hooks = {.run = tdaemon_run};

static void *tdaemon_main(void *arg)
{
	struct tdaemon *td = arg;
	struct serve_hooks h = tdaemon_hooks;

	h.arg = td;
	td->result = serve_daemon(td->root, "tank", td->tv.sp, &h);
	return NULL;
}

static void test_daemon(void **state)
{
	(void)state;
	struct tdaemon td = {0};
	char sock[256], path[128], err[512];
	char *argv[] = {"vol", "list", "tank", NULL};
	int st = -1;
	sigset_t ss;

	/* SIGTERM for the daemon's thread only: blocked here too */
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	tvol_setup(&td.tv);
	snprintf(td.root, sizeof(td.root), "%s", td.tv.t.dir);
	assert_int_equal(pthread_create(&td.t, NULL, tdaemon_main, &td), 0);
	serve_sock_path(td.root, "tank", path, sizeof(path));
	for (int i = 0; i < 200 && access(path, F_OK); i++)
		usleep(10000);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* a command: argv and descriptors reach the hook, its status comes back */
	assert_int_equal(serve_forward(td.root, "tank", 3, argv, &st), 0);
	assert_int_equal(st, 43);
	assert_string_equal(td.seen, "vol list tank");

	/* vhost-user exports: one read-write holder, named */
	int r = serve_export_vhost(td.root, "tank/v", false, sock, sizeof(sock), err, sizeof(err));
	if (r == -ENOTSUP) {
		assert_non_null(strstr(err, "not built"));
	} else {
		assert_int_equal(r, 0);
		assert_int_equal(access(sock, F_OK), 0);
		char want[64];
		snprintf(want, sizeof(want), "attached read-write by pid %d (", (int)getpid());
		assert_int_equal(serve_export_vhost(td.root, "tank/v", false, sock, sizeof(sock),
		                                    err, sizeof(err)),
		                 -EBUSY);
		assert_non_null(strstr(err, want));
		assert_int_equal(serve_export_vhost(td.root, "tank/v@s", true, sock, sizeof(sock),
		                                    err, sizeof(err)),
		                 0);
	}
	assert_int_equal(
	    serve_export_vhost(td.root, "tank/nope", true, sock, sizeof(sock), err, sizeof(err)),
	    r == -ENOTSUP ? -ENOTSUP : -ENOENT);
	assert_int_equal(
	    serve_export_vhost(td.root, "tank/a b", true, sock, sizeof(sock), err, sizeof(err)),
	    -EINVAL);

	/* SIGTERM: exports stopped, final commit, socket gone */
	pthread_kill(td.t, SIGTERM);
	pthread_join(td.t, NULL);
	assert_int_equal(td.result, 0);
	assert_int_not_equal(access(path, F_OK), 0);
	td.tv.sp = NULL; /* the daemon closed the pool */
	td.tv.t.p = NULL;
	char run[96];
	snprintf(run, sizeof(run), "%s/run", td.root);
	rmdir(run);
	tp_destroy(&td.tv.t);
	pthread_sigmask(SIG_UNBLOCK, &ss, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctl_messages),    cmocka_unit_test(test_forward_without_daemon),
	    cmocka_unit_test(test_attach),          cmocka_unit_test(test_vblk_io),
	    cmocka_unit_test(test_vblk_scatter),    cmocka_unit_test(test_vblk_threads),
	    cmocka_unit_test(test_vblk_concurrent), cmocka_unit_test(test_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
