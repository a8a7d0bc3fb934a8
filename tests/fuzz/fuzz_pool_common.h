/*
 * fuzz_pool_common.h - helpers of the pool fuzz targets: a scratch pool
 * file in /dev/shm (or /tmp) that each input starts from, restored from a
 * template image kept in memory.
 */
#ifndef ZONEVM_FUZZ_POOL_COMMON_H
#define ZONEVM_FUZZ_POOL_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool/pool.h"

#define FZ_POOL_SIZE (16u << 20)

static char fz_path[128];

static inline void fz_path_init(const char *tag)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(fz_path, sizeof(fz_path), "%s/zvm-fuzz-%s-%d.img", dir, tag, (int)getpid());
}

/* Write IMG (LEN bytes, the rest zero) as the pool file. */
static inline void fz_write_image(const uint8_t *img, size_t len)
{
	int fd = open(fz_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, FZ_POOL_SIZE) < 0)
		abort();
	for (size_t off = 0; off < len; off += 4096) {
		size_t n = len - off < 4096 ? len - off : 4096;
		int zero = 1;
		for (size_t i = 0; i < n && zero; i++)
			zero = !img[off + i];
		if (!zero && pwrite(fd, img + off, n, (off_t)off) != (ssize_t)n)
			abort();
	}
	close(fd);
}

/* Read the whole pool file (FZ_POOL_SIZE bytes, malloc'd). */
static inline uint8_t *fz_read_image(void)
{
	uint8_t *img = malloc(FZ_POOL_SIZE);
	int fd = open(fz_path, O_RDONLY);

	if (!img || fd < 0 || pread(fd, img, FZ_POOL_SIZE, 0) != FZ_POOL_SIZE)
		abort();
	close(fd);
	return img;
}

static inline int fz_visit(void *arg, const struct vol_info *vi)
{
	struct pool *p = arg;
	struct vol *v;
	uint8_t buf[65536];

	if (vol_open(p, vi->name, &v) == 0) {
		uint64_t n = vol_size(v) < sizeof(buf) ? vol_size(v) : sizeof(buf);
		(void)vol_read(v, buf, (size_t)n, 0);
		vol_close(v);
	}
	return 0;
}

/* Everything a reader does to an open pool. */
static inline void fz_exercise(struct pool *p)
{
	struct pool_scrub_result r;
	struct pool_status st;

	(void)vol_iterate(p, 1, fz_visit, p);
	(void)pool_scrub(p, NULL, NULL, &r);
	(void)pool_get_status(p, &st);
}

#endif
