/*
 * test_pool_crash.c - crash consistency and corruption.
 *
 * Crash: a fixed sequence of six single-commit operations (write, snapshot,
 * write, destroy a snapshot, clone, write to the clone) runs against a copy
 * of a template pool with the device "stopping" after n writes, for every
 * n from 0 to the number of writes the sequence makes, whole, torn, and with
 * a random part of the writes since the last flush undone (power lost with
 * a volatile write cache).  The
 * reopened pool must be exactly the state after the last operation that
 * returned success, or after the one that failed (its uberblock may have
 * reached the disk before the failing flush) - never anything else; scrub
 * must be clean and every space counter exact; and the pool must take new
 * writes.
 *
 * Corruption: bytes flipped in a data block, an indirect block, the newest
 * uberblocks and a label: reads fail with -EIO naming the volume and
 * offset, never return wrong data; scrub names each damaged block; open
 * falls back to the previous uberblock or the other label.
 */
#include "test_pool_common.h"

#include <time.h>

#include "pool/pool_impl.h"
#include "test_pool_check.h"

#define VSIZE (2u << 20)
#define NOPS  6

/* the stops: whole, torn, and with a random part of what was written since
 * the last flush lost (a volatile write cache losing power) */
static const int MODES[3] = {0, POOL_TEST_TORN, POOL_TEST_LOST};

static uint8_t *model[NOPS + 1][2]; /* state k: content of v, of c (or NULL) */

static void models(void)
{
	uint8_t *b = malloc(VSIZE);

	for (int k = 0; k <= NOPS; k++)
		for (int j = 0; j < 2; j++)
			model[k][j] = NULL;
	model[0][0] = malloc(VSIZE);
	tp_fill(model[0][0], VSIZE, 1);
	/* op 1: write B over [0, 1M) */
	model[1][0] = malloc(VSIZE);
	memcpy(model[1][0], model[0][0], VSIZE);
	tp_fill(b, 1 << 20, 2);
	memcpy(model[1][0], b, 1 << 20);
	/* op 2: snapshot v@b; op 3: write C over [512K, 1.5M); op 4: destroy v@a */
	model[2][0] = model[1][0];
	model[3][0] = malloc(VSIZE);
	memcpy(model[3][0], model[1][0], VSIZE);
	tp_fill(b, 1 << 20, 3);
	memcpy(model[3][0] + (512 << 10), b, 1 << 20);
	model[4][0] = model[3][0];
	/* op 5: clone v@b -> c; op 6: write 64K of zeros and 64K of D into c */
	model[5][0] = model[6][0] = model[3][0];
	model[5][1] = model[1][0];
	model[6][1] = malloc(VSIZE);
	memcpy(model[6][1], model[1][0], VSIZE);
	memset(model[6][1], 0, 65536);
	tp_fill(model[6][1] + 65536, 65536, 4);
	free(b);
}

/* Run op K (1..NOPS); 0 on success. */
static int run_op(struct pool *p, int k)
{
	struct vol *v;
	uint8_t *b = malloc(1 << 20);
	int r = 0;

	switch (k) {
	case 1:
	case 3:
		tp_fill(b, 1 << 20, k == 1 ? 2 : 3);
		r = vol_open(p, "v", &v);
		if (!r) {
			r = vol_write(v, b, 1 << 20, k == 1 ? 0 : 512 << 10);
			vol_close(v);
		}
		if (!r)
			r = pool_sync(p);
		break;
	case 2:
		r = vol_snapshot(p, "v@b");
		break;
	case 4:
		r = vol_destroy(p, "v@a", 0);
		break;
	case 5:
		r = vol_clone(p, "v@b", "c");
		break;
	case 6:
		memset(b, 0, 65536);
		tp_fill(b + 65536, 65536, 4);
		r = vol_open(p, "c", &v);
		if (!r) {
			r = vol_write(v, b, 131072, 0);
			vol_close(v);
		}
		if (!r)
			r = pool_sync(p);
		break;
	}
	free(b);
	return r;
}

static int content_is(struct pool *p, const char *name, const uint8_t *want)
{
	struct vol *v;
	uint8_t *b = malloc(VSIZE);
	int ok;

	TP_OK(p, vol_open(p, name, &v));
	TP_OK(p, vol_read(v, b, VSIZE, 0));
	vol_close(v);
	ok = !memcmp(b, want, VSIZE);
	free(b);
	return ok;
}

/* Which state the reopened pool is in, or -1. */
static int observed_state(struct pool *p)
{
	struct vol_info vi;
	int has_b = vol_get_info(p, "v@b", &vi) == 0, has_a = vol_get_info(p, "v@a", &vi) == 0;
	int has_c = vol_get_info(p, "c", &vi) == 0;

	if (has_a && !content_is(p, "v@a", model[0][0]))
		return -1;
	if (has_c) {
		if (has_a || !has_b || !content_is(p, "v", model[3][0]))
			return -1;
		if (content_is(p, "c", model[6][1]))
			return 6;
		return content_is(p, "c", model[5][1]) ? 5 : -1;
	}
	if (!has_a)
		return (has_b && content_is(p, "v", model[3][0])) ? 4 : -1;
	if (has_b) {
		if (!content_is(p, "v@b", model[1][0]))
			return -1;
		if (content_is(p, "v", model[3][0]))
			return 3;
		return content_is(p, "v", model[1][0]) ? 2 : -1;
	}
	if (content_is(p, "v", model[1][0]))
		return 1;
	return content_is(p, "v", model[0][0]) ? 0 : -1;
}

static uint8_t *template_img;
static uint64_t template_size;

static void make_template(struct tpool *t)
{
	struct pool *p = tp_create(t, 16 << 20);

	TP_OK(p, vol_create(p, "v", VSIZE, 4096, POOL_COMPRESS_LZ4));
	tp_write(p, "v", 0, VSIZE, 1);
	TP_OK(p, vol_snapshot(p, "v@a"));
	tp_close(t);
	int fd = open(t->path, O_RDONLY);
	template_size = (uint64_t)lseek(fd, 0, SEEK_END);
	template_img = malloc(template_size);
	assert_int_equal(pread(fd, template_img, template_size, 0), (ssize_t)template_size);
	close(fd);
}

static void restore_template(struct tpool *t)
{
	int fd = open(t->path, O_RDWR | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)template_size), 0);
	for (uint64_t off = 0; off < template_size; off += 4096)
		if (!pool_is_zero(template_img + off, 4096))
			assert_int_equal(pwrite(fd, template_img + off, 4096, (off_t)off), 4096);
	close(fd);
}

static void test_crash_every_write(void **state)
{
	struct tpool t;
	struct pool *p;
	int trials = 0;
	(void)state;

	models();
	make_template(&t);
	/* count the writes of the whole sequence */
	p = tp_open(&t);
	pool_test_write_limit(p, 1000000, 0);
	for (int k = 1; k <= NOPS; k++)
		TP_OK(p, run_op(p, k));
	long total = 1000000 - p->write_limit;
	pool_abandon(p);
	t.p = NULL;
	assert_true(total > 20);
	/* every write point with ZONEVM_CRASH_ALL=1, else at least 110 of
	 * them (whole, torn and lost: at least 330 trials), from a random start so
	 * that successive runs cover different points (the seed is printed) */
	long stride = getenv("ZONEVM_CRASH_ALL") ? 1 : total / 110 > 1 ? total / 110 : 1;
	unsigned seed = getenv("ZONEVM_CRASH_SEED") ? (unsigned)atol(getenv("ZONEVM_CRASH_SEED"))
	                                            : (unsigned)time(NULL);
	long first = stride > 1 ? (long)(seed % (unsigned)stride) : 0;
	print_message(
	    "crash: seed %u (ZONEVM_CRASH_SEED), every %ld of %ld write points from %ld\n", seed,
	    stride, total, first);
	for (long n = first; n <= total; n += stride) {
		for (int torn = 0; torn < 3; torn++) { /* whole, torn, unflushed lost */
			int ok = 0;
			restore_template(&t);
			p = tp_open(&t);
			pool_test_write_limit(p, n, MODES[torn]);
			while (ok < NOPS && run_op(p, ok + 1) == 0)
				ok++;
			pool_abandon(p);
			t.p = NULL;
			p = tp_open(&t);
			int obs = observed_state(p);
			if (obs != ok && obs != ok + 1)
				fail_msg(
				    "crash after %ld writes (torn %d): %d ops succeeded, state %d",
				    n, torn, ok, obs);
			struct pool_scrub_result sr;
			TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
			check_accounting(p);
			/* the pool takes writes again */
			tp_write(p, "v", VSIZE - 8192, 8192, 99);
			TP_OK(p, pool_sync(p));
			tp_close(&t);
			p = tp_open(&t);
			assert_true(tp_check(p, "v", VSIZE - 8192, 8192, 99));
			tp_close(&t);
			trials++;
		}
	}
	print_message("crash: %d trials over %ld write points, all consistent\n", trials, total);
	free(template_img);
	tp_destroy(&t);
}

struct reports {
	int n;
	char last[600];
};

static void report_fn(void *arg, const char *msg)
{
	struct reports *r = arg;

	r->n++;
	snprintf(r->last, sizeof(r->last), "%s", msg);
}

static void flip(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/* The 2 MiB write of test_crash_autocommit, then pool_sync: 0 or an error. */
static int autocommit_op(struct pool *p, const uint8_t *newc)
{
	struct vol *v;
	int err = 0;

	pool_set_dirty_max(p, 64 << 10);
	TP_OK(p, vol_open(p, "v", &v));
	for (uint64_t off = 0; off < VSIZE && !err; off += 32768)
		err = vol_write(v, newc + off, 32768, off);
	vol_close(v);
	return err ? err : pool_sync(p);
}

/*
 * Commits a write makes on its own (dirty data past dirty_max, here every
 * 64 KiB) in the middle of a 2 MiB write, then pool_sync: stopped at write
 * points whole, torn and lost, the volume must hold each block old or new
 * (never anything else), all new once pool_sync returned, its snapshot
 * intact, a clean scrub and exact accounting.
 */
static void test_crash_autocommit(void **state)
{
	struct tpool t;
	struct pool *p;
	int trials = 0;
	uint8_t *newc = malloc(VSIZE), *now = malloc(VSIZE);
	(void)state;

	if (!model[0][0]) /* built once (test_crash_every_write) */
		models();
	make_template(&t);
	tp_fill(newc, VSIZE, 7);
	p = tp_open(&t); /* count the writes */
	pool_test_write_limit(p, 1000000, 0);
	TP_OK(p, autocommit_op(p, newc));
	long total = 1000000 - p->write_limit;
	pool_abandon(p);
	assert_true(total > 40);
	long stride = getenv("ZONEVM_CRASH_ALL") ? 1 : total / 40; /* every point, or 41 */
	for (long n = 0; n <= total; n += stride) {
		for (int mode = 0; mode < 3; mode++) {
			restore_template(&t);
			p = tp_open(&t);
			pool_test_write_limit(p, n, MODES[mode]);
			int err = autocommit_op(p, newc);
			pool_abandon(p);
			p = tp_open(&t);
			struct vol *v;
			TP_OK(p, vol_open(p, "v", &v));
			TP_OK(p, vol_read(v, now, VSIZE, 0));
			vol_close(v);
			for (uint64_t off = 0; off < VSIZE; off += 4096)
				if (memcmp(now + off, newc + off, 4096) &&
				    (err == 0 || memcmp(now + off, model[0][0] + off, 4096)))
					fail_msg("stop after %ld writes (mode %d, op %d): block at "
					         "%llu is "
					         "neither old nor new",
					         n, MODES[mode], err, (unsigned long long)off);
			assert_true(content_is(p, "v@a", model[0][0]));
			struct pool_scrub_result sr;
			TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
			check_accounting(p);
			tp_close(&t);
			trials++;
		}
	}
	print_message("autocommit: %d trials over %ld write points, all consistent\n", trials,
	              total);
	free(newc);
	free(now);
	free(template_img);
	tp_destroy(&t);
}

static void test_corruption(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	struct pool_bp bp, root;
	struct reports rep = {0};
	struct pool_scrub_result sr;
	struct vol *v;
	uint8_t *b = malloc(16384);
	(void)state;

	TP_OK(p, vol_create(p, "v", 8 << 20, 16384, POOL_COMPRESS_OFF));
	tp_write(p, "v", 0, 8 << 20, 5);
	TP_OK(p, pool_sync(p));
	struct pool_ds *ds = pool_ds_lookup(p, "v", 0);
	TP_OK(p, pool_obj_leaf_bp(p, &ds->obj.d, 5, &bp));
	root = ds->obj.d.root;
	uint64_t txg_before = p->txg;
	tp_close(&t);

	/* a data block */
	flip(t.path, bp.addr * POOL_SECTOR + 100);
	p = tp_open(&t);
	TP_OK(p, vol_open(p, "v", &v));
	assert_int_equal(vol_read(v, b, 16384, 5 * 16384), -EIO);
	assert_non_null(strstr(pool_errmsg(p), "tank/v: read at offset 81920"));
	assert_non_null(strstr(pool_errmsg(p), "checksum mismatch"));
	TP_OK(p, vol_read(v, b, 16384, 4 * 16384)); /* the neighbour is fine */
	vol_close(v);
	assert_int_equal(pool_scrub(p, report_fn, &rep, &sr), -EIO);
	assert_int_equal(sr.errors, 1);
	assert_int_equal(rep.n, 1);
	assert_non_null(strstr(rep.last, "tank/v: offset 81920 (data block"));
	struct pool_status st;
	pool_get_status(p, &st);
	assert_true(st.read_errors >= 2);
	tp_close(&t);
	/* the scrub's result outlives the process: it is in the uberblock */
	p = tp_open(&t);
	pool_get_status(p, &st);
	assert_int_equal(st.read_errors, 0);
	assert_int_equal(st.scrub_errors, 1);
	assert_true(st.scrub_blocks > 512 && st.scrub_time > 0 && st.scrub_txg > 0);
	tp_close(&t);
	flip(t.path, bp.addr * POOL_SECTOR + 100); /* repair */

	/* the root indirect block */
	flip(t.path, root.addr * POOL_SECTOR + 7);
	p = tp_open(&t);
	TP_OK(p, vol_open(p, "v", &v));
	assert_int_equal(vol_read(v, b, 16384, 0), -EIO);
	vol_close(v);
	rep.n = 0;
	assert_int_equal(pool_scrub(p, report_fn, &rep, &sr), -EIO);
	assert_int_equal(sr.errors, 1);
	assert_non_null(strstr(rep.last, "indirect block covering"));
	tp_close(&t);
	flip(t.path, root.addr * POOL_SECTOR + 7);
	/* repaired: a clean scrub replaces the damaged result */
	p = tp_open(&t);
	TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
	tp_close(&t);
	p = tp_open(&t);
	pool_get_status(p, &st);
	assert_int_equal(st.scrub_errors, 0);
	assert_int_equal(st.scrub_blocks, sr.blocks);
	tp_close(&t);

	/* the newest uberblock, in both labels: open falls back one txg */
	p = tp_open(&t);
	tp_write(p, "v", 0, 16384, 6);
	TP_OK(p, pool_sync(p));
	uint64_t newest = p->txg;
	assert_true(newest > txg_before);
	uint64_t devsize = p->devsize;
	tp_close(&t); /* nothing dirty: no further commit */
	uint64_t slot = (newest % POOL_UB_SLOTS) * POOL_UB_SLOT_SIZE + POOL_UB_RING_OFF;
	flip(t.path, slot + 20);
	flip(t.path, devsize - POOL_LABEL_SIZE + slot + 20);
	p = tp_open(&t);
	assert_true(p->ub.txg < newest);
	assert_true(tp_check(p, "v", 0, 8 << 20, 5)); /* the previous state */
	TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
	tp_close(&t);

	/* label 0 destroyed: label 1 still names the pool */
	flip(t.path, 0);
	p = tp_open(&t);
	assert_string_equal(pool_name(p), "tank");
	tp_destroy(&t);
	free(b);
}

/* The intent log: flushed writes survive a crash without a commit. */
static void test_intent_log(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 64 << 20);
	struct pool_status st0, st1;
	struct vol *v;
	(void)state;

	TP_OK(p, vol_create(p, "v", VSIZE, 4096, POOL_COMPRESS_LZ4));
	tp_write(p, "v", 0, VSIZE, 1);
	TP_OK(p, pool_sync(p));
	pool_get_status(p, &st0);
	tp_write(p, "v", 0, 65536, 2);
	TP_OK(p, vol_open(p, "v", &v));
	TP_OK(p, vol_flush(v));
	tp_write(p, "v", 1 << 20, 600 << 10, 3); /* a chain of several log blocks */
	uint8_t z[8192] = {0};
	TP_OK(p, vol_write(v, z, sizeof(z), 65536)); /* holes are logged too */
	TP_OK(p, vol_flush(v));
	TP_OK(p, vol_flush(v)); /* nothing new: no write */
	pool_get_status(p, &st1);
	assert_int_equal(st1.txg, st0.txg); /* no commit */
	assert_int_equal(st1.log_flushes, 3);
	assert_true(st1.log_blocks >= 3);
	tp_write(p, "v", VSIZE - 4096, 4096, 4); /* never flushed */
	vol_close(v);
	pool_abandon(p); /* the crash */
	t.p = NULL;
	p = tp_open(&t);
	assert_true(tp_check(p, "v", 0, 65536, 2));
	assert_true(tp_check(p, "v", 1 << 20, 600 << 10, 3));
	uint8_t b[8192];
	TP_OK(p, vol_open(p, "v", &v));
	TP_OK(p, vol_read(v, b, sizeof(b), 65536));
	assert_memory_equal(b, z, sizeof(b));
	uint8_t *m = malloc(VSIZE);
	tp_fill(m, VSIZE, 1);
	TP_OK(p, vol_read(v, b, 4096, VSIZE - 4096));
	assert_memory_equal(b, m + VSIZE - 4096, 4096); /* the unflushed write is gone */
	free(m);
	vol_close(v);
	struct pool_scrub_result sr;
	TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
	check_accounting(p);
	/* the replay was committed: a second crash loses nothing */
	pool_abandon(p);
	t.p = NULL;
	p = tp_open(&t);
	assert_true(tp_check(p, "v", 1 << 20, 600 << 10, 3));

	/* a flush cut at every write point: what returned success is there */
	for (long n = 0; n < 6; n++) {
		for (int torn = 0; torn < 3; torn++) {
			uint64_t seed = 100 + (uint64_t)(n * 3 + torn);
			tp_write(p, "v", VSIZE - 4096, 4096, seed); /* a commit gives a log slot */
			TP_OK(p, pool_sync(p));
			tp_write(p, "v", 0, 300 << 10, seed);
			TP_OK(p, vol_open(p, "v", &v));
			pool_test_write_limit(p, n, MODES[torn]);
			int r = vol_flush(v);
			vol_close(v);
			pool_abandon(p);
			t.p = NULL;
			p = tp_open(&t);
			if (r == 0)
				assert_true(tp_check(p, "v", 0, 300 << 10, seed));
			assert_true(tp_check(p, "v", VSIZE - 4096, 4096, seed));
			TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
			check_accounting(p);
		}
	}
	tp_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crash_every_write),
	    cmocka_unit_test(test_crash_autocommit),
	    cmocka_unit_test(test_corruption),
	    cmocka_unit_test(test_intent_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
