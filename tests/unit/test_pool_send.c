/*
 * test_pool_send.c - send and receive: full and incremental round trips
 * (with holes, frees and a resize, for each compression) compared byte for
 * byte with the source snapshot; exact accounting on the receiver; wrong
 * origin, a changed target, truncated and corrupted streams refused with
 * the pool unchanged; an interrupted receive resumed from its token; two
 * streams back to back on one descriptor.
 */
#include "test_pool_common.h"

#include <sys/wait.h>

#include "pool/pool_impl.h"
#include "test_pool_check.h"

static int tmpfd(const char *dir)
{
	char path[200];
	snprintf(path, sizeof(path), "%s/streamXXXXXX", dir);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Send SNAP (incremental from FROM, or NULL) into a fresh temp file. */
static int send_to_file(struct pool *p, const char *dir, const char *snap, const char *from)
{
	int fd = tmpfd(dir);
	TP_OK(p, vol_send(p, snap, from, NULL, fd));
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void same(struct pool *a, const char *an, struct pool *b, const char *bn)
{
	struct vol *va, *vb;
	TP_OK(a, vol_open(a, an, &va));
	TP_OK(b, vol_open(b, bn, &vb));
	assert_int_equal(vol_size(va), vol_size(vb));
	uint64_t n = vol_size(va);
	uint8_t *x = malloc(n), *y = malloc(n);
	TP_OK(a, vol_read(va, x, n, 0));
	TP_OK(b, vol_read(vb, y, n, 0));
	assert_memory_equal(x, y, n);
	free(x);
	free(y);
	vol_close(va);
	vol_close(vb);
}

static void roundtrip(enum pool_compression comp)
{
	struct tpool s, d;
	struct pool *ps = tp_create(&s, 128 << 20);
	struct pool *pd = tp_create(&d, 128 << 20);
	struct vol *v;

	TP_OK(ps, vol_create(ps, "src", 4 << 20, 4096, comp));
	tp_write(ps, "src", 0, 1 << 20, 1);
	tp_write(ps, "src", 3 << 20, 100000, 2);
	TP_OK(ps, vol_snapshot(ps, "src@s1"));
	int fd = send_to_file(ps, s.dir, "src@s1", NULL);
	off_t full = lseek(fd, 0, SEEK_END);
	lseek(fd, 0, SEEK_SET);
	TP_OK(pd, vol_recv(pd, "copy", fd, 0));
	close(fd);
	same(ps, "src@s1", pd, "copy@s1");
	same(ps, "src@s1", pd, "copy");
	assert_int_equal(tp_info(pd, "copy@s1").guid, tp_info(ps, "src@s1").guid);
	check_accounting(pd);

	/* incremental: new data, a punched range, zeros over data, a bigger size */
	tp_write(ps, "src", 8192, 4096, 3);
	TP_OK(ps, vol_open(ps, "src", &v));
	TP_OK(ps, vol_punch(v, 512 << 10, 256 << 10));
	uint8_t z[8192] = {0};
	TP_OK(ps, vol_write(v, z, sizeof(z), 3 << 20));
	vol_close(v);
	TP_OK(ps, vol_resize(ps, "src", 6 << 20));
	tp_write(ps, "src", (6 << 20) - 4096, 4096, 4);
	TP_OK(ps, vol_snapshot(ps, "src@s2"));
	fd = send_to_file(ps, s.dir, "src@s2", "@s1");
	off_t incr = lseek(fd, 0, SEEK_END);
	lseek(fd, 0, SEEK_SET);
	assert_true(incr < full / 10);
	TP_OK(pd, vol_recv(pd, "copy", fd, 0));
	close(fd);
	same(ps, "src@s2", pd, "copy@s2");
	same(ps, "src@s2", pd, "copy");
	same(ps, "src@s1", pd, "copy@s1");
	check_accounting(pd);
	/* the received volume lives on: write, snapshot, destroy the old one */
	tp_write(pd, "copy", 0, 4096, 5);
	TP_OK(pd, vol_destroy(pd, "copy@s1", 0));
	check_accounting(pd);
	tp_destroy(&s);
	tp_destroy(&d);
}

static void test_roundtrip_lz4(void **state)
{
	(void)state;
	roundtrip(POOL_COMPRESS_LZ4);
}

static void test_roundtrip_off(void **state)
{
	(void)state;
	roundtrip(POOL_COMPRESS_OFF);
}

static void test_roundtrip_zstd(void **state)
{
	(void)state;
	roundtrip(POOL_COMPRESS_ZSTD);
}

static void test_refusals(void **state)
{
	struct tpool s, d;
	struct pool *ps = tp_create(&s, 64 << 20);
	struct pool *pd = tp_create(&d, 64 << 20);
	struct pool_status st0, st1;
	(void)state;

	TP_OK(ps, vol_create(ps, "v", 2 << 20, 16384, POOL_COMPRESS_LZ4));
	tp_write(ps, "v", 0, 2 << 20, 1);
	TP_OK(ps, vol_snapshot(ps, "v@a"));
	tp_write(ps, "v", 0, 65536, 2);
	TP_OK(ps, vol_snapshot(ps, "v@b"));
	tp_write(ps, "v", 0, 65536, 3);
	TP_OK(ps, vol_snapshot(ps, "v@c"));
	int fd = send_to_file(ps, s.dir, "v@a", NULL);
	TP_OK(pd, vol_recv(pd, "v", fd, 0));
	close(fd);
	pool_get_status(pd, &st0);

	/* b -> c onto a receiver whose newest snapshot is a */
	fd = send_to_file(ps, s.dir, "v@c", "@b");
	assert_int_equal(vol_recv(pd, "v", fd, 0), -EXDEV);
	assert_non_null(strstr(pool_errmsg(pd), "newest snapshot of tank/v is a"));
	close(fd);
	/* a full stream onto an existing volume */
	fd = send_to_file(ps, s.dir, "v@b", NULL);
	assert_int_equal(vol_recv(pd, "v", fd, 0), -EEXIST);
	close(fd);
	/* from a later snapshot */
	assert_int_equal(vol_send(ps, "v@a", "@c", NULL, 1), -EXDEV);
	pool_get_status(pd, &st1);
	assert_int_equal(st0.txg, st1.txg);

	/* truncated, then corrupted: refused, nothing created */
	fd = send_to_file(ps, s.dir, "v@c", NULL);
	off_t len = lseek(fd, 0, SEEK_END);
	assert_int_equal(ftruncate(fd, len / 2), 0);
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(vol_recv(pd, "w", fd, 0), -EBADMSG);
	assert_non_null(strstr(pool_errmsg(pd), "truncated stream"));
	close(fd);
	fd = send_to_file(ps, s.dir, "v@c", NULL);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, 5000), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 5000), 1);
	assert_int_equal(vol_recv(pd, "w", fd, 0), -EBADMSG);
	assert_non_null(strstr(pool_errmsg(pd), "corrupted stream"));
	close(fd);
	struct vol_info vi;
	assert_int_equal(vol_get_info(pd, "w", &vi), -ENOENT);
	char tok[128];
	assert_int_equal(vol_recv_token(pd, "w", tok, sizeof(tok)), -ENOENT);
	check_accounting(pd);

	/* the target changed since its newest snapshot */
	tp_write(pd, "v", 0, 4096, 9);
	TP_OK(pd, pool_sync(pd));
	fd = send_to_file(ps, s.dir, "v@b", "@a");
	assert_int_equal(vol_recv(pd, "v", fd, 0), -EBUSY);
	close(fd);
	tp_destroy(&s);
	tp_destroy(&d);
}

static void test_resume(void **state)
{
	struct tpool s, d;
	struct pool *ps = tp_create(&s, 128 << 20);
	struct pool *pd = tp_create(&d, 128 << 20);
	char tok[128];
	(void)state;

	TP_OK(ps, vol_create(ps, "v", 8 << 20, 16384, POOL_COMPRESS_LZ4));
	tp_write(ps, "v", 0, 8 << 20, 1);
	TP_OK(ps, vol_snapshot(ps, "v@a"));
	int fd = send_to_file(ps, s.dir, "v@a", NULL);
	off_t len = lseek(fd, 0, SEEK_END);
	assert_int_equal(ftruncate(fd, len * 2 / 3), 0);
	lseek(fd, 0, SEEK_SET);
	pool_set_dirty_max(pd, 1 << 20); /* commit progress often */
	assert_int_equal(vol_recv(pd, "v", fd, 1), -EBADMSG);
	assert_non_null(strstr(pool_errmsg(pd), "resume with"));
	close(fd);
	TP_OK(pd, vol_recv_token(pd, "v", tok, sizeof(tok)));
	struct vol_info vi;
	assert_int_equal(vol_get_info(pd, "v", &vi), -ENOENT); /* still hidden */
	/* survives a reopen */
	tp_close(&d);
	pd = tp_open(&d);
	char tok2[128];
	TP_OK(pd, vol_recv_token(pd, "v", tok2, sizeof(tok2)));
	assert_string_equal(tok, tok2);
	/* a fresh full stream is refused while it waits */
	fd = send_to_file(ps, s.dir, "v@a", NULL);
	assert_int_equal(vol_recv(pd, "v", fd, 1), -EEXIST);
	close(fd);
	fd = tmpfd(s.dir);
	TP_OK(ps, vol_send(ps, NULL, NULL, tok, fd));
	off_t rest = lseek(fd, 0, SEEK_END);
	assert_true(rest < len);
	lseek(fd, 0, SEEK_SET);
	TP_OK(pd, vol_recv(pd, "v", fd, 1));
	close(fd);
	same(ps, "v@a", pd, "v@a");
	check_accounting(pd);
	assert_int_equal(vol_send(ps, NULL, NULL, "1-bogus", 1), -EINVAL);
	/* abort */
	tp_write(ps, "v", 0, 65536, 2);
	TP_OK(ps, vol_snapshot(ps, "v@b"));
	fd = send_to_file(ps, s.dir, "v@b", "@a");
	len = lseek(fd, 0, SEEK_END);
	assert_int_equal(ftruncate(fd, len / 2), 0);
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(vol_recv(pd, "v", fd, 1), -EBADMSG);
	close(fd);
	assert_int_equal(vol_destroy(pd, "v@a", 0), -EBUSY); /* the temporary clones it */
	TP_OK(pd, vol_recv_abort(pd, "v"));
	check_accounting(pd);
	TP_OK(pd, vol_destroy(pd, "v", 1));
	check_accounting(pd);
	tp_destroy(&s);
	tp_destroy(&d);
}

/*
 * A receive reads its stream exactly (a read never goes past END), so a
 * full and an incremental stream back to back in one pipe are received by
 * two calls on the same descriptor, with the sender writing into the pipe
 * concurrently in small pieces (short reads everywhere).
 */
static void test_streams_back_to_back(void **state)
{
	struct tpool s, d;
	struct pool *ps = tp_create(&s, 64 << 20);
	struct pool *pd = tp_create(&d, 64 << 20);
	int pfd[2];
	(void)state;

	TP_OK(ps, vol_create(ps, "v", 2 << 20, 16384, POOL_COMPRESS_LZ4));
	tp_write(ps, "v", 0, 1 << 20, 1);
	TP_OK(ps, vol_snapshot(ps, "v@a"));
	tp_write(ps, "v", 300000, 200000, 2);
	TP_OK(ps, vol_snapshot(ps, "v@b"));
	int f1 = send_to_file(ps, s.dir, "v@a", NULL);
	int f2 = send_to_file(ps, s.dir, "v@b", "@a");
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* the writer: both streams, 1000 bytes at a time */
		char buf[1000];
		ssize_t n;
		close(pfd[0]);
		for (int i = 0; i < 2; i++)
			while ((n = read(i ? f2 : f1, buf, sizeof(buf))) > 0)
				if (write(pfd[1], buf, (size_t)n) != n)
					_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	TP_OK(pd, vol_recv(pd, "v", pfd[0], 0));
	TP_OK(pd, vol_recv(pd, "v", pfd[0], 0));
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 0); /* nothing left, nothing lost */
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	same(ps, "v@a", pd, "v@a");
	same(ps, "v@b", pd, "v@b");
	close(pfd[0]);
	close(f1);
	close(f2);
	tp_destroy(&s);
	tp_destroy(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_lz4),  cmocka_unit_test(test_roundtrip_off),
	    cmocka_unit_test(test_roundtrip_zstd), cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_resume),         cmocka_unit_test(test_streams_back_to_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
