/*
 * test_pool_check.c - white-box invariants of a pool, for the unit tests.
 *
 * check_accounting() recomputes, by walking every tree, what each counter
 * must be (referenced, written, used, a snapshot's unique bytes) and checks
 * that the allocator holds exactly the reachable blocks plus the deferred
 * frees: no leak, no double free.
 */
#include "test_pool_common.h"

#include "pool/pool_impl.h"
#include "test_pool_check.h"

struct set {
	uint64_t *bm;
	uint64_t bytes;
	const struct set *exclude; /* count only blocks not in this set */
};

static int set_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	struct set *s = arg;
	(void)level;
	(void)blkid;

	if (pool_bp_is_hole(bp))
		return 0;
	if ((s->bm[bp->addr / 64] >> (bp->addr % 64)) & 1)
		return 1;
	s->bm[bp->addr / 64] |= 1ull << (bp->addr % 64);
	if (!s->exclude || !((s->exclude->bm[bp->addr / 64] >> (bp->addr % 64)) & 1))
		s->bytes += pool_bp_asize(bp);
	return 0;
}

static void set_init(struct pool *p, struct set *s)
{
	s->bm = calloc((p->nsectors + 63) / 64, 8);
	s->bytes = 0;
	s->exclude = NULL;
}

static void walk(struct pool *p, const struct pool_objdesc *d, uint64_t mintxg, struct set *s)
{
	assert_int_equal(pool_obj_walk(p, d, mintxg, set_fn, s), 0);
}

static uint64_t reach(struct pool *p, const struct pool_objdesc *d, uint64_t mintxg)
{
	struct set s;

	set_init(p, &s);
	walk(p, d, mintxg, &s);
	free(s.bm);
	return s.bytes;
}

void check_accounting(struct pool *p)
{
	struct set all;

	TP_OK(p, pool_sync(p));
	set_init(p, &all);
	walk(p, &p->dir.d, 0, &all);
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_ds *ds = p->ds[i];
		if (!ds)
			continue;
		walk(p, &ds->obj.d, 0, &all);
		walk(p, &ds->dl.d, 0, &all);
		assert_int_equal(reach(p, &ds->obj.d, 0), ds->r.referenced);
		assert_int_equal(reach(p, &ds->obj.d, ds->r.prev_snap_txg), ds->r.written);
		if (ds->r.type == POOL_DS_VOLUME) {
			struct pool_ds *o = pool_ds_get(p, ds->r.origin_id);
			uint64_t min = o ? o->r.creation_txg : 0;
			struct set u;
			set_init(p, &u);
			walk(p, &ds->obj.d, min, &u);
			for (size_t j = 0; j < p->nds; j++)
				if (p->ds[j] && p->ds[j]->r.type == POOL_DS_SNAPSHOT &&
				    p->ds[j]->r.head_id == ds->r.id)
					walk(p, &p->ds[j]->obj.d, min, &u);
			assert_int_equal(u.bytes, ds->r.used);
			free(u.bm);
		} else {
			struct set nb, s;
			struct pool_ds *prev = pool_ds_get(p, ds->r.prev_snap_id);
			struct pool_ds *next = pool_ds_next(p, ds);
			uint64_t used, lused;
			assert_non_null(next);
			set_init(p, &nb);
			walk(p, &next->obj.d, 0, &nb);
			if (prev)
				walk(p, &prev->obj.d, 0, &nb);
			set_init(p, &s);
			s.exclude = &nb;
			walk(p, &ds->obj.d, 0, &s);
			TP_OK(p, pool_snap_unique(p, ds, &used, &lused));
			assert_int_equal(s.bytes, used);
			free(nb.bm);
			free(s.bm);
		}
	}
	uint64_t log = (p->zil_nused + (p->zil_next ? 1 : 0)) * (uint64_t)POOL_ZIL_SLOT;
	assert_int_equal(all.bytes + pool_alloc_deferred(p) + log, p->alloc_sectors * POOL_SECTOR);
	free(all.bm);
}
