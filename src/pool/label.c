/*
 * label.c - the two labels and the uberblock ring in each.
 *
 * Label 0 is the first 256 KiB of the device, label 1 the last 256 KiB.
 * Each starts with a header written once at create (pool name, guid, size)
 * and holds a ring of 32 uberblock slots; txg N goes to slot N % 32 of
 * label 0, then of label 1.  The caller (txg.c) flushes before and after.
 * An open reads all 64 slots and keeps those whose magic, version, guid and
 * xxh128 verify, newest txg first; a torn or rotten slot only costs the
 * txgs it held, and a damaged end of the device only its own copy.
 * This file never decides which uberblock's tree is good (pool.c verifies
 * the directory root).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_impl.h"

static uint64_t label_offset(uint64_t devsize, int l)
{
	return l == 0 ? 0 : (devsize / POOL_SECTOR) * POOL_SECTOR - POOL_LABEL_SIZE;
}

int pool_label_write_new(struct pool *p)
{
	uint8_t *buf = calloc(1, POOL_LABEL_SIZE);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (int l = 0; l < 2 && !err; l++) {
		struct pool_label lab = {
		    .magic = POOL_LABEL_MAGIC,
		    .version = POOL_VERSION,
		    .label = (uint32_t)l,
		    .guid = p->guid,
		    .size = p->devsize,
		    .created = p->created,
		};
		snprintf(lab.name, sizeof(lab.name), "%s", p->name);
		pool_cksum(&lab, offsetof(struct pool_label, cksum), lab.cksum);
		memcpy(buf, &lab, sizeof(lab));
		err = pool_io_write(p, buf, POOL_LABEL_SIZE, label_offset(p->devsize, l));
	}
	free(buf);
	return err;
}

static int label_check(const struct pool_label *lab)
{
	uint64_t ck[2];

	if (lab->magic != POOL_LABEL_MAGIC)
		return -EBADMSG;
	pool_cksum(lab, offsetof(struct pool_label, cksum), ck);
	if (!pool_cksum_eq(ck, lab->cksum))
		return -EBADMSG;
	if (lab->version != POOL_VERSION)
		return -ENOTSUP;
	if (memchr(lab->name, 0, sizeof(lab->name)) == NULL || !lab->name[0])
		return -EBADMSG;
	return 0;
}

int pool_label_read(int fd, uint64_t devsize, struct pool_label *out, char *err, size_t errlen)
{
	struct pool_label lab[2];
	int st[2];

	if (devsize < POOL_MIN_SIZE) {
		snprintf(err, errlen, "too small to be a pool (%llu bytes)",
		         (unsigned long long)devsize);
		return -EBADMSG;
	}
	for (int l = 0; l < 2; l++) {
		ssize_t n = pread(fd, &lab[l], sizeof(lab[l]), (off_t)label_offset(devsize, l));
		st[l] = n == (ssize_t)sizeof(lab[l]) ? label_check(&lab[l]) : -EBADMSG;
	}
	for (int l = 0; l < 2; l++) {
		if (st[l] == 0 && lab[l].size <= devsize) {
			*out = lab[l];
			return 0;
		}
	}
	if (st[0] == -ENOTSUP || st[1] == -ENOTSUP) {
		snprintf(err, errlen, "unsupported pool version %u",
		         st[0] == -ENOTSUP ? lab[0].version : lab[1].version);
		return -ENOTSUP;
	}
	snprintf(err, errlen, "not a zonevm pool (no label verifies)");
	return -EBADMSG;
}

static int ub_check(const struct pool *p, const struct pool_ub *ub)
{
	uint64_t ck[2];

	if (ub->magic != POOL_UB_MAGIC || ub->version != POOL_VERSION || ub->guid != p->guid)
		return -EBADMSG;
	pool_cksum(ub, offsetof(struct pool_ub, cksum), ck);
	if (!pool_cksum_eq(ck, ub->cksum))
		return -EBADMSG;
	if (ub->dir.nlevels < 1 || ub->dir.nlevels > POOL_MAX_LEVELS || ub->dir.size > p->devsize ||
	    ub->dir.blocksize != POOL_META_BLOCKSIZE || ub->dir.size % sizeof(struct pool_dsrec))
		return -EBADMSG;
	return 0;
}

static int cmp_ub_desc(const void *a, const void *b)
{
	const struct pool_ub *x = a, *y = b;

	return x->txg < y->txg ? 1 : x->txg > y->txg ? -1 : 0;
}

int pool_ub_scan(struct pool *p, struct pool_ub *out, int n)
{
	uint8_t *ring = malloc(POOL_UB_SLOTS * POOL_UB_SLOT_SIZE);
	struct pool_ub *all = calloc(2 * POOL_UB_SLOTS, sizeof(*all));
	int found = 0, kept = 0;

	if (!ring || !all) {
		free(ring);
		free(all);
		return -ENOMEM;
	}
	for (int l = 0; l < 2; l++) {
		if (pool_io_read(p, ring, POOL_UB_SLOTS * POOL_UB_SLOT_SIZE,
		                 label_offset(p->devsize, l) + POOL_UB_RING_OFF))
			continue;
		for (uint32_t s = 0; s < POOL_UB_SLOTS; s++) {
			struct pool_ub ub;
			memcpy(&ub, ring + s * POOL_UB_SLOT_SIZE, sizeof(ub));
			if (ub_check(p, &ub) == 0 && ub.txg % POOL_UB_SLOTS == s)
				all[found++] = ub;
		}
	}
	qsort(all, (size_t)found, sizeof(*all), cmp_ub_desc);
	for (int i = 0; i < found && kept < n; i++)
		if (kept == 0 || all[i].txg != out[kept - 1].txg)
			out[kept++] = all[i];
	free(ring);
	free(all);
	return kept;
}

int pool_ub_write(struct pool *p, const struct pool_ub *ub)
{
	uint8_t slot[POOL_UB_SLOT_SIZE] = {0};
	int err = 0;

	memcpy(slot, ub, sizeof(*ub));
	for (int l = 0; l < 2 && !err; l++)
		err = pool_io_write(p, slot, sizeof(slot),
		                    label_offset(p->devsize, l) + POOL_UB_RING_OFF +
		                        (ub->txg % POOL_UB_SLOTS) * POOL_UB_SLOT_SIZE);
	return err;
}
