/*
 * test_pool.c - the pool library: create/open/lock, volume I/O with every
 * block size and compression, holes, resize, names and bad input, a full
 * pool, and space accounting through snapshot/clone/rollback/destroy.
 */
#include "test_pool_check.h"
#include "test_pool_common.h"

static void test_create_open_lock(void **state)
{
	struct tpool t;
	struct pool *p2;
	char err[POOL_ERRMSG_MAX], name[64];
	uint64_t guid;
	(void)state;

	tp_create(&t, 64 << 20);
	assert_string_equal(pool_name(t.p), "tank");
	/* a second opener is refused with the holder's pid */
	assert_int_equal(pool_open(t.path, 0, &p2, err, sizeof(err)), -EBUSY);
	char want[128];
	snprintf(want, sizeof(want), "pool \"tank\" is in use by process %ld", (long)getpid());
	assert_string_equal(err, want);
	/* create over an existing pool is refused */
	assert_int_equal(pool_create(t.path, "other", 0, err, sizeof(err)), -EBUSY);
	tp_close(&t);
	assert_int_equal(pool_create(t.path, "other", 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "already holds pool \"tank\""));
	assert_int_equal(pool_probe(t.path, name, sizeof(name), &guid, err, sizeof(err)), 0);
	assert_string_equal(name, "tank");
	/* bad names and sizes */
	assert_int_equal(pool_create("/tmp/zvm-x.img", "9bad", 64 << 20, err, sizeof(err)),
	                 -EINVAL);
	char small[128];
	snprintf(small, sizeof(small), "%s/small.img", t.dir);
	assert_int_equal(pool_create(small, "s", 1 << 20, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too small"));
	unlink(small);
	/* not a pool */
	int fd = open(small, O_CREAT | O_RDWR, 0600);
	assert_int_equal(ftruncate(fd, 32 << 20), 0);
	close(fd);
	assert_int_equal(pool_open(small, 0, &p2, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not a zonevm pool"));
	unlink(small);
	tp_open(&t);
	tp_destroy(&t);
}

static void io_roundtrip(uint32_t bs, enum pool_compression comp)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 128 << 20);
	uint64_t size = 8ull << 20;

	TP_OK(p, vol_create(p, "v", size, bs, comp));
	tp_write(p, "v", 0, 1 << 20, 1);
	tp_write(p, "v", 12345, 70000, 2);      /* unaligned, across blocks */
	tp_write(p, "v", size - 5000, 5000, 3); /* the last bytes */
	assert_true(tp_check(p, "v", 12345, 70000, 2));
	TP_OK(p, pool_sync(p));
	tp_close(&t);
	p = tp_open(&t);
	assert_true(tp_check(p, "v", 12345, 70000, 2));
	assert_true(tp_check(p, "v", size - 5000, 5000, 3));
	/* the untouched middle reads as zeros */
	struct vol *v;
	uint8_t *b = malloc(1 << 20), *z = calloc(1, 1 << 20);
	TP_OK(p, vol_open(p, "v", &v));
	TP_OK(p, vol_read(v, b, 1 << 20, 4ull << 20));
	assert_memory_equal(b, z, 1 << 20);
	/* out of range */
	assert_int_equal(vol_read(v, b, 2, size - 1), -EINVAL);
	assert_int_equal(vol_write(v, b, 2, size - 1), -EINVAL);
	vol_close(v);
	free(b);
	free(z);
	struct pool_scrub_result sr;
	TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
	assert_int_equal(sr.errors, 0);
	assert_true(sr.blocks > 0);
	tp_destroy(&t);
}

static void test_io_16k_lz4(void **state)
{
	(void)state;
	io_roundtrip(16384, POOL_COMPRESS_LZ4);
}

static void test_io_4k_off(void **state)
{
	(void)state;
	io_roundtrip(4096, POOL_COMPRESS_OFF);
}

static void test_io_128k_zstd(void **state)
{
	(void)state;
	io_roundtrip(131072, POOL_COMPRESS_ZSTD);
}

static void test_holes_and_compression(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	struct vol *v;
	uint8_t *b = calloc(1, 1 << 20);
	(void)state;

	TP_OK(p, vol_create(p, "z", 16 << 20, 16384, POOL_COMPRESS_LZ4));
	TP_OK(p, vol_open(p, "z", &v));
	TP_OK(p, vol_write(v, b, 1 << 20, 0)); /* zeros: holes, no space */
	memset(b, 'a', 1 << 20);               /* compressible */
	TP_OK(p, vol_write(v, b, 1 << 20, 2 << 20));
	vol_close(v);
	struct vol_info vi = tp_info(p, "z");
	assert_true(vi.referenced < 64 * 4096 + 65536); /* 64 blocks of one sector + metadata */
	assert_int_equal(vi.logicalreferenced >= (1 << 20), 1);
	/* punching returns the space */
	TP_OK(p, vol_open(p, "z", &v));
	TP_OK(p, vol_punch(v, 2 << 20, 1 << 20));
	vol_close(v);
	vi = tp_info(p, "z");
	assert_int_equal(vi.referenced, 0);
	assert_int_equal(vi.used, 0);
	free(b);
	tp_destroy(&t);
}

/*
 * Early abort (blk.c): after leaves that do not compress, leaves that do
 * are still compressed, whatever the codec, and everything reads back.
 */
static void test_compression_after_random(void **state)
{
	static const enum pool_compression comps[] = {POOL_COMPRESS_LZ4, POOL_COMPRESS_ZSTD};
	uint8_t *b = malloc(1 << 20), *r = malloc(1 << 20);
	(void)state;

	for (size_t c = 0; c < 2; c++) {
		struct tpool t;
		struct pool *p = tp_create(&t, 64 << 20);
		struct vol *v;

		TP_OK(p, vol_create(p, "m", 4 << 20, 16384, comps[c]));
		TP_OK(p, vol_open(p, "m", &v));
		tp_fill(b, 1 << 20, 5); /* incompressible: 64 leaves */
		TP_OK(p, vol_write(v, b, 1 << 20, 0));
		for (size_t i = 0; i < (1 << 20); i++) /* compressible: 64 leaves */
			r[i] = (uint8_t)("abcdefgh"[i % 8] + (i >> 14));
		TP_OK(p, vol_write(v, r, 1 << 20, 1 << 20));
		TP_OK(p, vol_write(v, b, 16384, 2 << 20));           /* random again, then */
		TP_OK(p, vol_write(v, r, 16384, (2 << 20) + 16384)); /* one that compresses */
		TP_OK(p, pool_sync(p));
		struct vol_info vi = tp_info(p, "m");
		/* 65 leaves stored whole, 65 compressed to a sector each, + metadata */
		assert_true(vi.referenced < 65 * 16384 + 65 * 4096 + 65536);
		assert_int_equal(vi.logicalreferenced, 131 * 16384); /* 130 leaves, 1 indirect */
		vol_close(v);
		tp_close(&t);
		p = tp_open(&t);
		TP_OK(p, vol_open(p, "m", &v));
		uint8_t *back = malloc(1 << 20);
		TP_OK(p, vol_read(v, back, 1 << 20, 0));
		assert_memory_equal(back, b, 1 << 20);
		TP_OK(p, vol_read(v, back, 1 << 20, 1 << 20));
		assert_memory_equal(back, r, 1 << 20);
		TP_OK(p, vol_read(v, back, 16384, (2 << 20) + 16384));
		assert_memory_equal(back, r, 16384);
		free(back);
		vol_close(v);
		tp_destroy(&t);
	}
	free(b);
	free(r);
}

static void test_resize(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	(void)state;

	TP_OK(p, vol_create(p, "r", 1 << 20, 16384, POOL_COMPRESS_OFF));
	tp_write(p, "r", 0, 1 << 20, 7);
	/* grow beyond one indirect level and write at the end */
	TP_OK(p, vol_resize(p, "r", 64 << 20));
	tp_write(p, "r", (64 << 20) - 65536, 65536, 8);
	assert_true(tp_check(p, "r", 0, 1 << 20, 7));
	TP_OK(p, pool_sync(p));
	assert_true(tp_check(p, "r", 0, 1 << 20, 7));
	/* shrink to 512K: the rest is gone, and comes back as zeros */
	TP_OK(p, vol_resize(p, "r", 512 << 10));
	TP_OK(p, vol_resize(p, "r", 1 << 20));
	assert_true(tp_check(p, "r", 0, 512 << 10, 7));
	struct vol *v;
	uint8_t *b = malloc(512 << 10), *z = calloc(1, 512 << 10);
	TP_OK(p, vol_open(p, "r", &v));
	TP_OK(p, vol_read(v, b, 512 << 10, 512 << 10));
	assert_memory_equal(b, z, 512 << 10);
	vol_close(v);
	free(b);
	free(z);
	assert_int_equal(vol_resize(p, "r", 1000), -EINVAL);
	assert_non_null(strstr(pool_errmsg(p), "not a multiple of the block size"));
	tp_close(&t);
	p = tp_open(&t);
	assert_true(tp_check(p, "r", 0, 512 << 10, 7));
	assert_int_equal(tp_info(p, "r").size, 1 << 20);
	tp_destroy(&t);
}

static void test_bad_input(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	struct pool_status s0, s1;
	(void)state;

	TP_OK(p, vol_create(p, "a", 1 << 20, 16384, POOL_COMPRESS_LZ4));
	pool_get_status(p, &s0);
	assert_int_equal(vol_create(p, "a", 1 << 20, 16384, POOL_COMPRESS_LZ4), -EEXIST);
	assert_int_equal(vol_create(p, "b c", 1 << 20, 16384, POOL_COMPRESS_LZ4), -EINVAL);
	assert_int_equal(vol_create(p, "b@c", 1 << 20, 16384, POOL_COMPRESS_LZ4), -EINVAL);
	assert_int_equal(vol_create(p, "b", 1000, 16384, POOL_COMPRESS_LZ4), -EINVAL);
	assert_int_equal(vol_create(p, "b", 1 << 20, 3000, POOL_COMPRESS_LZ4), -EINVAL);
	assert_int_equal(vol_create(p, "b", 1 << 20, 262144, POOL_COMPRESS_LZ4), -EINVAL);
	assert_int_equal(vol_snapshot(p, "nosuch@s"), -ENOENT);
	assert_non_null(strstr(pool_errmsg(p), "no such volume \"tank/nosuch\""));
	assert_int_equal(vol_snapshot(p, "a@"), -EINVAL);
	assert_int_equal(vol_clone(p, "a@nosuch", "c"), -ENOENT);
	assert_int_equal(vol_rollback(p, "a@nosuch", 0), -ENOENT);
	assert_int_equal(vol_destroy(p, "nosuch", 0), -ENOENT);
	assert_int_equal(vol_set(p, "a", "compression", "gzip"), -EINVAL);
	assert_int_equal(vol_set(p, "a", "used", "1"), -EINVAL);
	assert_int_equal(vol_set(p, "a", "bogus", "1"), -EINVAL);
	pool_get_status(p, &s1);
	assert_int_equal(s0.txg, s1.txg); /* nothing was committed */
	TP_OK(p, vol_set(p, "a", "compression", "zstd"));
	assert_int_equal(tp_info(p, "a").compression, POOL_COMPRESS_ZSTD);
	tp_destroy(&t);
}

static void test_pool_full(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 16 << 20);
	struct vol *v;
	uint8_t *b = malloc(1 << 20);
	int r = 0, i;
	(void)state;

	TP_OK(p, vol_create(p, "big", 64 << 20, 16384, POOL_COMPRESS_OFF));
	TP_OK(p, vol_open(p, "big", &v));
	for (i = 0; i < 64 && r == 0; i++) {
		tp_fill(b, 1 << 20, 100 + (uint64_t)i);
		r = vol_write(v, b, 1 << 20, (uint64_t)i << 20);
	}
	assert_int_equal(r, -ENOSPC);
	assert_non_null(strstr(pool_errmsg(p), "is full"));
	vol_close(v);
	tp_close(&t); /* the commit of what fitted succeeds */
	p = tp_open(&t);
	for (int j = 0; j < i - 1; j++)
		assert_true(tp_check(p, "big", (uint64_t)j << 20, 1 << 20, 100 + (uint64_t)j));
	/* destroying the volume gives the space back */
	TP_OK(p, vol_destroy(p, "big", 0));
	TP_OK(p, pool_sync(p));
	tp_destroy(&t);
	free(b);
}

/* Compare all of NAME (LEN bytes) with MODEL. */
static void expect_content(struct pool *p, const char *name, const uint8_t *model, size_t len)
{
	struct vol *v;
	uint8_t *b = malloc(len);

	TP_OK(p, vol_open(p, name, &v));
	TP_OK(p, vol_read(v, b, len, 0));
	vol_close(v);
	for (size_t off = 0; off < len; off += 4096)
		if (memcmp(b + off, model + off, 4096))
			fail_msg("%s: the 4 KiB at %zu differ from the model", name, off);
	free(b);
}

/*
 * Whole leaves are written ahead to the device by vol_write (tree.c), in
 * no tree until the commit: read back before it, changed in part, written
 * again, zeroed, punched, logged by a flush and replayed after a crash,
 * dropped by a shrink and by a crash without a flush - with the content
 * and every space counter and the allocator exact after each step.
 */
static void test_write_ahead(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	const size_t vsize = 512 << 10, bs = 16384;
	uint8_t *model = calloc(1, vsize), *b = malloc(4 * bs);
	struct vol *v;
	(void)state;

	TP_OK(p, vol_create(p, "v", vsize, bs, POOL_COMPRESS_LZ4));
	TP_OK(p, vol_open(p, "v", &v));
	tp_fill(b, 4 * bs, 1); /* leaves 0-3 */
	TP_OK(p, vol_write(v, b, 4 * bs, 0));
	memcpy(model, b, 4 * bs);
	expect_content(p, "v", model, vsize); /* from the blocks written ahead */
	tp_fill(b, 4096, 2);                  /* part of leaf 1 */
	TP_OK(p, vol_write(v, b, 4096, bs + 4096));
	memcpy(model + bs + 4096, b, 4096);
	tp_fill(b, bs, 3); /* leaf 2 again: its first block is freed */
	TP_OK(p, vol_write(v, b, bs, 2 * bs));
	memcpy(model + 2 * bs, b, bs);
	memset(b, 0, bs); /* leaf 3 zeroed: a hole */
	TP_OK(p, vol_write(v, b, bs, 3 * bs));
	memset(model + 3 * bs, 0, bs);
	tp_fill(b, 4 * bs, 4); /* leaves 8-11, then 9 punched */
	TP_OK(p, vol_write(v, b, 4 * bs, 8 * bs));
	memcpy(model + 8 * bs, b, 4 * bs);
	TP_OK(p, vol_punch(v, 9 * bs, bs));
	memset(model + 9 * bs, 0, bs);
	tp_fill(b, bs, 5); /* leaf 31, the last */
	TP_OK(p, vol_write(v, b, bs, vsize - bs));
	memcpy(model + vsize - bs, b, bs);
	expect_content(p, "v", model, vsize);
	TP_OK(p, vol_flush(v)); /* logged, read back from the device */
	vol_close(v);
	pool_abandon(p); /* a crash: nothing committed since the create */
	t.p = NULL;
	p = tp_open(&t); /* the log replayed */
	expect_content(p, "v", model, vsize);
	check_accounting(p);

	/* written ahead, then neither committed nor flushed: gone after a crash */
	TP_OK(p, vol_open(p, "v", &v));
	tp_fill(b, 4 * bs, 6);
	TP_OK(p, vol_write(v, b, 4 * bs, 4 * bs));
	vol_close(v);
	pool_abandon(p);
	t.p = NULL;
	p = tp_open(&t);
	expect_content(p, "v", model, vsize);

	/* a shrink drops leaves written ahead past the new end */
	TP_OK(p, vol_open(p, "v", &v));
	tp_fill(b, 4 * bs, 7);
	TP_OK(p, vol_write(v, b, 4 * bs, 16 * bs));
	TP_OK(p, vol_write(v, b, 2 * bs, 4 * bs));
	memcpy(model + 4 * bs, b, 2 * bs);
	vol_close(v);
	TP_OK(p, vol_resize(p, "v", 16 * bs));
	TP_OK(p, vol_resize(p, "v", vsize));
	memset(model + 16 * bs, 0, vsize - 16 * bs);
	expect_content(p, "v", model, vsize);
	check_accounting(p);
	tp_close(&t);
	p = tp_open(&t);
	expect_content(p, "v", model, vsize);
	check_accounting(p);
	tp_destroy(&t);
	free(model);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_open_lock),
	    cmocka_unit_test(test_io_16k_lz4),
	    cmocka_unit_test(test_io_4k_off),
	    cmocka_unit_test(test_io_128k_zstd),
	    cmocka_unit_test(test_holes_and_compression),
	    cmocka_unit_test(test_compression_after_random),
	    cmocka_unit_test(test_resize),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_pool_full),
	    cmocka_unit_test(test_write_ahead),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
