/*
 * txg.c - how a transaction group reaches the disk: the two labels, the
 * uberblock ring in each, and the commit order.
 *
 * Label 0 is the first 256 KiB of the device, label 1 the last 256 KiB.
 * Each starts with a header written once at create (pool name, guid, size)
 * and holds a ring of 32 uberblock slots; txg N goes to slot N % 32 of
 * label 0, then of label 1.  An open reads all 64 slots and keeps those
 * whose magic, version, guid and xxh128 verify, newest txg first; a torn
 * or rotten slot only costs the txgs it held, and a damaged end of the
 * device only its own copy.  (pool.c then takes the newest whose directory
 * verifies.)
 *
 * The commit order is the whole crash-consistency argument:
 *
 *   1. sync every volume tree (new leaves, then new indirect blocks up to a
 *      new root; replaced blocks are killed, which may append to deadlists)
 *   2. sync every deadlist, then the directory (records now hold the new
 *      roots)                           -- all into sectors no committed
 *                                          uberblock of the last three uses
 *   3. fdatasync                        -- the new tree is durable
 *   4. write uberblock txg N into slot N % 32 of label 0, then of label 1
 *   5. fdatasync                        -- txg N is committed
 *   6. the intent log written since N-1 is obsolete (its slots are freed);
 *      frees deferred in txg N-2 become allocatable
 *
 * A crash before 4 completes leaves uberblock N-1 the newest that verifies,
 * and its tree untouched (step 2 writes only free sectors); a torn
 * uberblock fails its checksum.  Any error poisons the pool (LMDB's rule):
 * in-memory state is no longer the committed state, so every later call
 * returns -ECANCELED until the pool is closed and opened again.
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

static int txg_sync_all(struct pool *p)
{
	int err;

	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && (err = pool_obj_sync(p, &p->ds[i]->obj)) != 0)
			return err;
	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && (err = pool_obj_sync(p, &p->ds[i]->dl)) != 0)
			return err;
	return pool_dir_sync(p);
}

/*
 * Commit the open txg.  DURABLE: the uberblock is flushed before this
 * returns.  Without it (a commit only because dirty data piled up) the
 * second fdatasync is left to the next flush of the device (the next
 * commit's first one, vol_flush's, or a durable commit with nothing else
 * to do): until then the previous uberblock may be the newest on disk, and
 * its tree is intact, since frees wait two more commits and this commit's
 * blocks were flushed before its uberblock was written.
 */
static int txg_commit(struct pool *p, int durable)
{
	struct pool_ub ub;
	int err;

	err = pool_check_writable(p);
	if (err)
		return err;
	p->errmsg[0] = 0;
	err = txg_sync_all(p);
	if (err)
		goto poison;
	if (p->txg_blocks == 0 && !p->ub_scrub.scrub_time) {
		/* nothing changed (a scrub's result alone is a change), but the
		 * last uberblock may wait for its flush */
		if (durable && p->ub_unflushed && (err = pool_io_flush(p)) != 0)
			goto poison;
		return 0;
	}
	err = pool_io_flush(p);
	if (err)
		goto poison;
	memset(&ub, 0, sizeof(ub));
	ub.magic = POOL_UB_MAGIC;
	ub.version = POOL_VERSION;
	ub.txg = p->txg + 1;
	ub.guid = p->guid;
	ub.time = pool_now();
	ub.dir = p->dir.d;
	ub.next_id = p->next_id;
	ub.zil_addr = pool_zil_new_slot(p); /* 0 when full: flushes then commit */
	/* a scrub's new result, or the last one carried on */
	const struct pool_ub *sc = p->ub_scrub.scrub_time ? &p->ub_scrub : &p->ub;
	ub.scrub_txg = sc->scrub_txg;
	ub.scrub_time = sc->scrub_time;
	ub.scrub_blocks = sc->scrub_blocks;
	ub.scrub_errors = sc->scrub_errors;
	pool_cksum(&ub, offsetof(struct pool_ub, cksum), ub.cksum);
	err = pool_ub_write(p, &ub);
	if (!err && durable)
		err = pool_io_flush(p);
	else if (!err)
		p->ub_unflushed = 1; /* pool_io_flush clears it */
	if (err)
		goto poison;
	p->txg = ub.txg;
	p->ub = ub;
	p->txg_blocks = 0;
	memset(&p->ub_scrub, 0, sizeof(p->ub_scrub));
	pool_alloc_txg_done(p, p->txg); /* before new frees land in the same slot */
	pool_zil_committed(p, ub.zil_addr);
	return 0;
poison:
	p->poisoned = err;
	char cause[POOL_ERRMSG_MAX];
	snprintf(cause, sizeof(cause), "%s", p->errmsg[0] ? p->errmsg : strerror(-err));
	return pool_err(p, err, "commit of txg %llu failed: %s", (unsigned long long)(p->txg + 1),
	                cause);
}

int pool_txg_commit(struct pool *p)
{
	return txg_commit(p, 1);
}

int pool_txg_maybe_commit(struct pool *p)
{
	if (p->dirty_bytes < p->dirty_max)
		return 0;
	return txg_commit(p, 0);
}
