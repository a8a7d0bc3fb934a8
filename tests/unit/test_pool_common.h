/*
 * test_pool_common.h - helpers shared by the pool unit tests: a temporary
 * pool file, deterministic data, and open/close shorthands that fail the
 * test with the pool's own message.
 */
#ifndef ZONEVM_TEST_POOL_COMMON_H
#define ZONEVM_TEST_POOL_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pool/pool.h"

struct tpool {
	char dir[64];
	char path[128];
	struct pool *p;
};

static inline void tp_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *b = buf;
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

static inline struct pool *tp_open(struct tpool *t)
{
	char err[POOL_ERRMSG_MAX];
	int r = pool_open(t->path, 0, &t->p, err, sizeof(err));

	if (r)
		fail_msg("pool_open: %d %s", r, err);
	return t->p;
}

static inline struct pool *tp_create(struct tpool *t, uint64_t size)
{
	char err[POOL_ERRMSG_MAX];

	snprintf(t->dir, sizeof(t->dir), "/tmp/zvm-pool-test-XXXXXX");
	if (!mkdtemp(t->dir))
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(t->path, sizeof(t->path), "%s/pool.img", t->dir);
	int r = pool_create(t->path, "tank", size, err, sizeof(err));
	if (r)
		fail_msg("pool_create: %d %s", r, err);
	return tp_open(t);
}

static inline void tp_close(struct tpool *t)
{
	if (t->p) {
		int r = pool_close(t->p);
		if (r)
			fail_msg("pool_close: %d", r);
	}
	t->p = NULL;
}

static inline void tp_destroy(struct tpool *t)
{
	tp_close(t);
	unlink(t->path);
	rmdir(t->dir);
}

#define TP_OK(p, expr)                                                                             \
	do {                                                                                       \
		int r_ = (expr);                                                                   \
		if (r_)                                                                            \
			fail_msg("%s = %d: %s", #expr, r_, pool_errmsg(p));                        \
	} while (0)

static inline void tp_write(struct pool *p, const char *name, uint64_t off, size_t len,
                            uint64_t seed)
{
	struct vol *v;
	uint8_t *b = malloc(len);

	tp_fill(b, len, seed);
	TP_OK(p, vol_open(p, name, &v));
	TP_OK(p, vol_write(v, b, len, off));
	vol_close(v);
	free(b);
}

/* 1 if [off, off+len) of NAME holds the data of SEED. */
static inline int tp_check(struct pool *p, const char *name, uint64_t off, size_t len,
                           uint64_t seed)
{
	struct vol *v;
	uint8_t *b = malloc(len), *e = malloc(len);
	int ok;

	tp_fill(e, len, seed);
	TP_OK(p, vol_open(p, name, &v));
	TP_OK(p, vol_read(v, b, len, off));
	vol_close(v);
	ok = !memcmp(b, e, len);
	free(b);
	free(e);
	return ok;
}

static inline struct vol_info tp_info(struct pool *p, const char *name)
{
	struct vol_info vi;

	TP_OK(p, vol_get_info(p, name, &vi));
	return vi;
}

#endif
