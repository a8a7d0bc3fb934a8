/*
 * test_pool_snap.c - snapshots, clones, rollback and destroy: behaviour,
 * refusals, and exact space accounting.
 *
 * check_accounting() (test_pool_check.c) runs after each step of a random
 * sequence of operations, checked against an in-memory model of every
 * volume.
 */
#include "test_pool_common.h"

#include "pool/pool_impl.h"
#include "test_pool_check.h"

static void test_snapshot_basics(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 128 << 20);
	(void)state;

	TP_OK(p, vol_create(p, "v", 8 << 20, 16384, POOL_COMPRESS_OFF));
	tp_write(p, "v", 0, 2 << 20, 1);
	TP_OK(p, vol_snapshot(p, "v@a"));
	check_accounting(p);
	struct vol_info va = tp_info(p, "v@a"), vv = tp_info(p, "v");
	assert_int_equal(va.used, 0);
	assert_int_equal(va.referenced, vv.referenced);
	assert_int_equal(vv.written, 0);
	/* overwrite half: the snapshot keeps the old data */
	tp_write(p, "v", 0, 1 << 20, 2);
	check_accounting(p);
	va = tp_info(p, "v@a");
	vv = tp_info(p, "v");
	assert_true(va.used >= 1 << 20);
	assert_true(vv.used >= vv.referenced + (1 << 20));
	assert_true(vv.written >= 1 << 20);
	assert_true(tp_check(p, "v@a", 0, 2 << 20, 1));
	assert_true(tp_check(p, "v", 0, 1 << 20, 2));
	/* snapshots are read-only */
	struct vol *s;
	uint8_t b[16] = {0};
	TP_OK(p, vol_open(p, "v@a", &s));
	assert_int_equal(vol_write(s, b, sizeof(b), 0), -EROFS);
	vol_close(s);
	assert_int_equal(vol_snapshot(p, "v@a"), -EEXIST);
	/* destroy the snapshot: exactly its unique bytes come back */
	uint64_t before = p->alloc_sectors * POOL_SECTOR - pool_alloc_deferred(p);
	TP_OK(p, vol_destroy(p, "v@a", 0));
	check_accounting(p);
	vv = tp_info(p, "v");
	assert_int_equal(vv.used, vv.referenced);
	assert_true(p->alloc_sectors * POOL_SECTOR - pool_alloc_deferred(p) <=
	            before - va.used + 65536);
	tp_destroy(&t);
}

static void test_clone_rollback(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 128 << 20);
	(void)state;

	TP_OK(p, vol_create(p, "base", 4 << 20, 4096, POOL_COMPRESS_LZ4));
	tp_write(p, "base", 0, 4 << 20, 10);
	TP_OK(p, vol_snapshot(p, "base@gold"));
	TP_OK(p, vol_clone(p, "base@gold", "vm1"));
	struct vol_info c = tp_info(p, "vm1");
	assert_int_equal(c.used, 0);
	assert_string_equal(c.origin, "base@gold");
	assert_true(tp_check(p, "vm1", 0, 4 << 20, 10));
	tp_write(p, "vm1", 65536, 65536, 11);
	check_accounting(p);
	assert_true(tp_check(p, "base", 0, 4 << 20, 10));
	/* the origin cannot go while the clone exists; the message names it */
	assert_int_equal(vol_destroy(p, "base@gold", 0), -EBUSY);
	assert_non_null(strstr(pool_errmsg(p), "tank/vm1"));
	assert_int_equal(vol_destroy(p, "base", 1), -EBUSY);
	assert_int_equal(vol_destroy(p, "base", 0), -EBUSY);
	/* rollback */
	TP_OK(p, vol_snapshot(p, "vm1@s1"));
	tp_write(p, "vm1", 0, 8192, 12);
	TP_OK(p, vol_snapshot(p, "vm1@s2"));
	tp_write(p, "vm1", 0, 8192, 13);
	assert_int_equal(vol_rollback(p, "vm1@s1", 0), -EBUSY);
	assert_non_null(strstr(pool_errmsg(p), "tank/vm1@s2"));
	TP_OK(p, vol_rollback(p, "vm1@s2", 0));
	assert_true(tp_check(p, "vm1", 0, 8192, 12));
	check_accounting(p);
	TP_OK(p, vol_rollback(p, "vm1@s1", 1));
	assert_true(tp_check(p, "vm1", 65536, 65536, 11));
	assert_int_equal(vol_get_info(p, "vm1@s2", &c), -ENOENT);
	check_accounting(p);
	tp_close(&t);
	p = tp_open(&t);
	check_accounting(p);
	TP_OK(p, vol_destroy(p, "vm1", 1));
	TP_OK(p, vol_destroy(p, "base", 1));
	check_accounting(p);
	struct pool_status st;
	pool_get_status(p, &st);
	assert_int_equal(st.volumes, 0);
	tp_destroy(&t);
}

static void test_promote(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 128 << 20);
	(void)state;

	TP_OK(p, vol_create(p, "base", 4 << 20, 4096, POOL_COMPRESS_LZ4));
	tp_write(p, "base", 0, 4 << 20, 1);
	TP_OK(p, vol_snapshot(p, "base@a"));
	tp_write(p, "base", 0, 1 << 20, 2);
	TP_OK(p, vol_snapshot(p, "base@b"));
	tp_write(p, "base", 0, 65536, 3);
	TP_OK(p, vol_snapshot(p, "base@c"));
	TP_OK(p, vol_clone(p, "base@b", "vm"));
	tp_write(p, "vm", 2 << 20, 65536, 4);
	TP_OK(p, vol_snapshot(p, "vm@x"));
	check_accounting(p);
	assert_int_equal(vol_promote(p, "base"), -EINVAL);
	TP_OK(p, vol_promote(p, "vm"));
	check_accounting(p);
	struct vol_info vi = tp_info(p, "base");
	assert_string_equal(vi.origin, "vm@b");
	assert_string_equal(tp_info(p, "vm").origin, "");
	assert_true(tp_check(p, "vm@a", 0, 4 << 20, 1));
	assert_true(tp_check(p, "vm@b", 0, 1 << 20, 2));
	assert_true(tp_check(p, "base@c", 0, 65536, 3));
	assert_int_equal(vol_get_info(p, "base@a", &vi), -ENOENT);
	/* now the old parent can go, and the promoted clone keeps everything */
	TP_OK(p, vol_destroy(p, "base", 1));
	check_accounting(p);
	assert_true(tp_check(p, "vm@a", 0, 4 << 20, 1));
	assert_true(tp_check(p, "vm", 2 << 20, 65536, 4));
	tp_close(&t);
	p = tp_open(&t);
	check_accounting(p);
	TP_OK(p, vol_destroy(p, "vm", 1));
	check_accounting(p);
	tp_destroy(&t);
}

#define MODEL_MAX 12
#define MSIZE     (1u << 20)

struct model {
	char name[96];
	uint8_t *data;
};

static int model_find(struct model *m, const char *name)
{
	for (int i = 0; i < MODEL_MAX; i++)
		if (m[i].data && !strcmp(m[i].name, name))
			return i;
	return -1;
}

static int model_slot(struct model *m)
{
	for (int i = 0; i < MODEL_MAX; i++)
		if (!m[i].data)
			return i;
	return -1;
}

static void model_check(struct pool *p, struct model *m)
{
	uint8_t *b = malloc(MSIZE);
	for (int i = 0; i < MODEL_MAX; i++) {
		struct vol *v;
		if (!m[i].data)
			continue;
		TP_OK(p, vol_open(p, m[i].name, &v));
		TP_OK(p, vol_read(v, b, MSIZE, 0));
		vol_close(v);
		if (memcmp(b, m[i].data, MSIZE))
			fail_msg("content of %s differs from the model", m[i].name);
	}
	free(b);
}

static void test_random_sequence(void **state)
{
	struct tpool t;
	struct pool *p = tp_create(&t, 256 << 20);
	struct model m[MODEL_MAX] = {0};
	uint64_t x = 42;
	int nsnap = 0, nvol = 1, done = 0;
	(void)state;

	TP_OK(p, vol_create(p, "v0", MSIZE, 4096, POOL_COMPRESS_LZ4));
	snprintf(m[0].name, sizeof(m[0].name), "v0");
	m[0].data = calloc(1, MSIZE);
	for (int step = 0; step < 1000; step++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int op = (int)((x >> 33) % 10), k, live[MODEL_MAX], nlive = 0;
		char name[90];
		for (int i = 0; i < MODEL_MAX; i++)
			if (m[i].data)
				live[nlive++] = i;
		if (nlive == 0) { /* everything was destroyed: start a new volume */
			snprintf(m[0].name, sizeof(m[0].name), "v%d", nvol++);
			TP_OK(p, vol_create(p, m[0].name, MSIZE, 4096, POOL_COMPRESS_LZ4));
			m[0].data = calloc(1, MSIZE);
			continue;
		}
		k = live[(x >> 20) % (uint64_t)nlive];
		int is_snap = strchr(m[k].name, '@') != NULL;
		if (op <= 3 && !is_snap) { /* write data or zeros */
			uint64_t off = (x >> 7) % MSIZE, len = 1 + (x >> 40) % 40000;
			if (off + len > MSIZE)
				len = MSIZE - off;
			uint8_t *b = malloc(len);
			if (op == 3)
				memset(b, 0, len);
			else
				tp_fill(b, len, x);
			struct vol *v;
			TP_OK(p, vol_open(p, m[k].name, &v));
			TP_OK(p, vol_write(v, b, len, off));
			vol_close(v);
			memcpy(m[k].data + off, b, len);
			free(b);
		} else if (op == 4 && !is_snap) {
			int s = model_slot(m);
			if (s < 0)
				continue;
			snprintf(name, sizeof(name), "%s@s%d", m[k].name, nsnap++);
			TP_OK(p, vol_snapshot(p, name));
			snprintf(m[s].name, sizeof(m[s].name), "%s", name);
			m[s].data = malloc(MSIZE);
			memcpy(m[s].data, m[k].data, MSIZE);
		} else if (op == 5 && is_snap) {
			int s = model_slot(m);
			if (s < 0)
				continue;
			snprintf(name, sizeof(name), "v%d", nvol++);
			TP_OK(p, vol_clone(p, m[k].name, name));
			snprintf(m[s].name, sizeof(m[s].name), "%s", name);
			m[s].data = malloc(MSIZE);
			memcpy(m[s].data, m[k].data, MSIZE);
		} else if (op == 6 && is_snap) {
			struct vol_info vi = tp_info(p, m[k].name);
			int r = vol_destroy(p, m[k].name, 0);
			if (vi.num_clones) {
				assert_int_equal(r, -EBUSY);
				continue;
			}
			TP_OK(p, r);
			free(m[k].data);
			m[k].data = NULL;
		} else if (op == 7 && !is_snap) {
			int r = vol_destroy(p, m[k].name, 1);
			if (r == -EBUSY)
				continue;
			TP_OK(p, r);
			size_t n = strlen(m[k].name);
			for (int i = 0; i < MODEL_MAX; i++)
				if (m[i].data && i != k && !strncmp(m[i].name, m[k].name, n) &&
				    m[i].name[n] == '@') {
					free(m[i].data);
					m[i].data = NULL;
				}
			free(m[k].data);
			m[k].data = NULL;
		} else if (op == 8 && is_snap) {
			char head[64];
			snprintf(head, sizeof(head), "%.*s",
			         (int)(strchr(m[k].name, '@') - m[k].name), m[k].name);
			int r = vol_rollback(p, m[k].name, 0);
			if (r == -EBUSY)
				continue;
			TP_OK(p, r);
			memcpy(m[model_find(m, head)].data, m[k].data, MSIZE);
		} else if (op == 9) {
			tp_close(&t);
			p = tp_open(&t);
		} else {
			continue;
		}
		check_accounting(p);
		model_check(p, m);
		done++;
	}
	print_message("random sequence: %d operations checked\n", done);
	assert_true(done > 150);
	struct pool_scrub_result sr;
	TP_OK(p, pool_scrub(p, NULL, NULL, &sr));
	for (int i = 0; i < MODEL_MAX; i++)
		free(m[i].data);
	tp_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_snapshot_basics),
	    cmocka_unit_test(test_clone_rollback),
	    cmocka_unit_test(test_promote),
	    cmocka_unit_test(test_random_sequence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
