/*
 * alloc.c - the space allocator: one bit per 4 KiB sector, kept in memory.
 *
 * The allocator has no on-disk state of its own: at open it is rebuilt by
 * walking every tree reachable from the newest verified uberblock and from
 * the two before it (pruning at blocks already marked, so shared subtrees
 * are read once); blocks only the older two hold go on the deferred list.  That makes it
 * crash-proof by construction: there is no space map to get out of step with the trees.  Its cost
 * is one read of all indirect blocks at open; docs/POOL-FORMAT.md says when a persistent space map
 * will replace it.
 *
 * Frees of blocks born in a committed txg are deferred: the sectors become
 * allocatable only after two more txgs have committed, so the trees of the
 * last three uberblocks stay intact for an open that must fall back to an
 * older one.  A block born in the open txg is reusable at once (no committed
 * uberblock can reference it).  This file never decides *whether* a block is
 * free (dir.c and snap.c do, by the birth/deadlist rule), only *when*.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

static inline void bit_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

static inline void bit_clear(uint64_t *bm, uint64_t i)
{
	bm[i / 64] &= ~(1ull << (i % 64));
}

static inline bool bit_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

int pool_alloc_init(struct pool *p)
{
	p->nsectors = p->devsize / POOL_SECTOR;
	p->first_sector = POOL_LABEL_SIZE / POOL_SECTOR;
	p->end_sector = p->nsectors - POOL_LABEL_SIZE / POOL_SECTOR;
	p->cursor = p->first_sector;
	p->alloc_sectors = 0;
	p->bitmap = calloc((p->nsectors + 63) / 64, sizeof(uint64_t));
	if (!p->bitmap)
		return -ENOMEM;
	for (int i = 0; i < 3; i++)
		p->defer[i] = (struct pool_defer){0};
	return 0;
}

void pool_alloc_fini(struct pool *p)
{
	free(p->bitmap);
	p->bitmap = NULL;
	for (int i = 0; i < 3; i++) {
		free(p->defer[i].addr);
		free(p->defer[i].nsec);
		p->defer[i] = (struct pool_defer){0};
	}
}

bool pool_alloc_is_set(const struct pool *p, uint64_t addr)
{
	return addr < p->nsectors && bit_test(p->bitmap, addr);
}

void pool_alloc_mark(struct pool *p, uint64_t addr, uint32_t nsec)
{
	for (uint64_t i = addr; i < addr + nsec && i < p->nsectors; i++) {
		if (!bit_test(p->bitmap, i)) {
			bit_set(p->bitmap, i);
			p->alloc_sectors++;
		}
	}
}

static void alloc_release(struct pool *p, uint64_t addr, uint32_t nsec)
{
	for (uint64_t i = addr; i < addr + nsec && i < p->nsectors; i++) {
		if (bit_test(p->bitmap, i)) {
			bit_clear(p->bitmap, i);
			p->alloc_sectors--;
		}
	}
}

/* Next fit: search from the cursor for NSEC clear bits in a row. */
int pool_alloc(struct pool *p, uint32_t nsec, uint64_t *addr)
{
	uint64_t span = p->end_sector - p->first_sector;
	uint64_t i = p->cursor, run = 0, start = 0, seen = 0;

	if (nsec == 0)
		return -EINVAL;
	while (seen < span + nsec) {
		if (i >= p->end_sector) {
			i = p->first_sector;
			run = 0;
		}
		/* skip full words quickly */
		if (run == 0 && i % 64 == 0 && p->bitmap[i / 64] == ~0ull &&
		    i + 64 <= p->end_sector) {
			i += 64;
			seen += 64;
			continue;
		}
		if (bit_test(p->bitmap, i)) {
			run = 0;
		} else {
			if (run == 0)
				start = i;
			if (++run == nsec) {
				pool_alloc_mark(p, start, nsec);
				p->cursor = start + nsec;
				*addr = start;
				return 0;
			}
		}
		i++;
		seen++;
	}
	return -ENOSPC;
}

void pool_alloc_free(struct pool *p, const struct pool_bp *bp)
{
	uint32_t nsec = (uint32_t)(pool_bp_asize(bp) / POOL_SECTOR);
	struct pool_defer *d;

	if (!bp->addr || !nsec)
		return;
	if (bp->birth > p->txg) { /* born in the open txg: no uberblock knows it */
		pool_arc_put(p, bp, NULL);
		alloc_release(p, bp->addr, nsec);
		return;
	}
	d = &p->defer[(p->txg + 1) % 3];
	if (d->txg != p->txg + 1) {
		d->n = 0;
		d->txg = p->txg + 1;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 256;
		uint64_t *a = realloc(d->addr, cap * sizeof(*a));
		if (!a)
			goto leak;
		d->addr = a;
		uint32_t *s = realloc(d->nsec, cap * sizeof(*s));
		if (!s)
			goto leak;
		d->nsec = s;
		d->cap = cap;
	}
	d->addr[d->n] = bp->addr;
	d->nsec[d->n] = nsec;
	d->n++;
	return;
leak:
	/* out of memory: the sectors stay allocated until the next open rebuilds */
	return;
}

/* TXG committed: frees deferred in txg - 2 become allocatable. */
void pool_alloc_txg_done(struct pool *p, uint64_t txg)
{
	struct pool_defer *d = &p->defer[(txg + 1) % 3]; /* == (txg - 2) % 3 */

	if (d->txg + 2 == txg) {
		for (size_t i = 0; i < d->n; i++)
			alloc_release(p, d->addr[i], d->nsec[i]);
		d->n = 0;
	}
}

uint64_t pool_alloc_deferred(const struct pool *p)
{
	uint64_t n = 0;

	for (int i = 0; i < 3; i++)
		for (size_t j = 0; j < p->defer[i].n; j++)
			n += p->defer[i].nsec[j];
	return n * POOL_SECTOR;
}

uint64_t pool_alloc_free_bytes(const struct pool *p)
{
	return (p->end_sector - p->first_sector - p->alloc_sectors) * POOL_SECTOR;
}

int pool_alloc_reserve_check(struct pool *p, uint64_t bytes)
{
	/* room for the dirty leaves (but those written ahead, which hold their
	 * sectors already), one L1 each, and a slop for upper levels, deadlists
	 * and the directory */
	uint64_t slop = (1ull << 20) + (p->end_sector - p->first_sector) * POOL_SECTOR / 128;
	uint64_t need = p->dirty_bytes - p->dirty_ahead + bytes +
	                (p->dirty_leaves + bytes / 4096 + 1) * 1024 + slop;

	return need <= pool_alloc_free_bytes(p) ? 0 : -ENOSPC;
}

static int mark_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	int *prune = arg;

	if (pool_bp_is_hole(bp))
		return 0;
	if (*prune && pool_alloc_is_set(p, bp->addr))
		return 1;
	if (bp->addr < p->first_sector ||
	    bp->addr + pool_bp_asize(bp) / POOL_SECTOR > p->end_sector)
		return pool_err(p, -EBADMSG, "pool \"%s\": block pointer outside the device",
		                p->name);
	pool_alloc_mark(p, bp->addr, (uint32_t)(pool_bp_asize(bp) / POOL_SECTOR));
	if (*prune) /* only an older uberblock holds it: free once the defer ends */
		pool_alloc_free(p, bp);
	return 0;
}

/* Mark everything reachable from UB. */
static int alloc_mark_ub(struct pool *p, const struct pool_ub *ub, int prune)
{
	struct pool_obj dir;
	struct pool_dsrec rec;
	int err;

	err = pool_obj_walk(p, &ub->dir, 0, mark_fn, &prune);
	if (err)
		return err;
	pool_obj_init(&dir, &ub->dir, NULL);
	for (uint64_t off = 0; off + sizeof(rec) <= ub->dir.size; off += sizeof(rec)) {
		err = pool_obj_read(p, &dir, &rec, sizeof(rec), off);
		if (err)
			return err;
		if (rec.type == POOL_DS_FREE)
			continue;
		if (rec.obj.nlevels < 1 || rec.obj.nlevels > POOL_MAX_LEVELS ||
		    rec.deadlist.nlevels < 1 || rec.deadlist.nlevels > POOL_MAX_LEVELS)
			return pool_err(p, -EBADMSG, "pool \"%s\": dataset %llu has a bad tree",
			                p->name, (unsigned long long)rec.id);
		err = pool_obj_walk(p, &rec.obj, 0, mark_fn, &prune);
		if (!err)
			err = pool_obj_walk(p, &rec.deadlist, 0, mark_fn, &prune);
		if (err)
			return err;
	}
	return 0;
}

int pool_alloc_rebuild(struct pool *p, const struct pool_ub *ubs, int nub)
{
	int err;

	memset(p->bitmap, 0, (p->nsectors + 63) / 64 * sizeof(uint64_t));
	p->alloc_sectors = 0;
	/* the labels are never allocatable */
	pool_alloc_mark(p, 0, (uint32_t)p->first_sector);
	pool_alloc_mark(p, p->end_sector, (uint32_t)(p->nsectors - p->end_sector));
	uint64_t base = p->alloc_sectors;
	/* a damaged volume tree must not stop the open: what is below a block
	 * that cannot be read cannot be reached either; scrub reports it */
	p->walk_tolerant = 1;
	err = alloc_mark_ub(p, &ubs[0], 0);
	/* older uberblocks: best effort, their frees are still deferred */
	for (int i = 1; i < nub && !err; i++)
		(void)alloc_mark_ub(p, &ubs[i], 1);
	p->walk_tolerant = 0;
	p->alloc_sectors -= base; /* labels are outside the allocatable span */
	return err;
}
