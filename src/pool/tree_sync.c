/*
 * tree_sync.c - writing an object's dirty leaves out copy-on-write, walking
 * a committed tree, and changing an object's size.
 *
 * Sync visits only the paths from dirty leaves to the root.  A node above
 * the old root (the tree grew a level) is "virtual": its child 0 is the old
 * root, which stays referenced and is not killed.  See tree.c for the
 * picture and the hole rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

struct sync_ent {
	uint64_t blkid;
	uint8_t *data;
	const struct pool_bp *ahead; /* the leaf's block written ahead, or NULL */
};

struct sync_ctx {
	struct pool_obj *o;
	struct sync_ent *ents;
	int oldtop; /* level of the committed root */
};

static uint64_t span_of(int level)
{
	return 1ull << (POOL_BP_PER_IND_SH * level);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct sync_ent *x = a, *y = b;

	return x->blkid < y->blkid ? -1 : x->blkid > y->blkid;
}

static int obj_kill(struct pool *p, struct pool_obj *o, const struct pool_bp *bp)
{
	if (pool_bp_is_hole(bp))
		return 0;
	if (o->ds)
		return pool_ds_kill(p, o->ds, bp);
	pool_alloc_free(p, bp);
	return 0;
}

static void obj_birth(struct pool *p, struct pool_obj *o, const struct pool_bp *bp)
{
	if (o->ds && !pool_bp_is_hole(bp))
		pool_ds_birth(p, o->ds, bp);
}

static void make_hole(struct pool *p, struct pool_bp *bp, uint32_t lsize, int type, int level)
{
	memset(bp, 0, sizeof(*bp));
	bp->lsize = lsize;
	bp->type = (uint8_t)type;
	bp->level = (uint8_t)level;
	bp->birth = p->txg + 1;
}

/*
 * Rewrite the node at LEVEL covering leaves from BASE, whose committed
 * pointer is OLD (NULL: a virtual node above the old root), for the dirty
 * entries [lo, hi).  The new pointer goes to OUT.
 */
static int sync_node(struct pool *p, struct sync_ctx *c, int level, uint64_t base,
                     const struct pool_bp *old, size_t lo, size_t hi, struct pool_bp *out)
{
	struct pool_obj *o = c->o;
	struct pool_bp *kids;
	uint64_t fill = 0;
	int err = 0;

	if (level == 0) {
		const struct sync_ent *e = &c->ents[lo];
		if (e->ahead) { /* on the device already (tree.c) */
			*out = *e->ahead;
			obj_birth(p, o, out);
		} else if (!e->data || pool_is_zero(e->data, o->d.blocksize)) {
			if (pool_bp_is_hole(old)) {
				*out = *old;
				out->lsize = o->d.blocksize;
				return 0;
			}
			make_hole(p, out, o->d.blocksize, o->d.type, 0);
		} else {
			err = pool_blk_write(p, e->data, o->d.blocksize, o->d.comp, o->d.type, 0,
			                     out);
			if (err)
				return err;
			obj_birth(p, o, out);
		}
		return obj_kill(p, o, old);
	}

	kids = calloc(POOL_BP_PER_IND, sizeof(*kids));
	if (!kids)
		return -ENOMEM;
	if (!old) {
		for (uint32_t i = 0; i < POOL_BP_PER_IND; i++)
			kids[i].lsize = level == 1 ? o->d.blocksize : POOL_IND_SIZE;
		if (level - 1 == c->oldtop)
			kids[0] = o->d.root;
	} else if (pool_bp_is_hole(old)) {
		for (uint32_t i = 0; i < POOL_BP_PER_IND; i++) {
			kids[i].birth = old->birth; /* a hole's children were holes since then */
			kids[i].lsize = level == 1 ? o->d.blocksize : POOL_IND_SIZE;
			kids[i].level = (uint8_t)(level - 1);
		}
	} else {
		if (old->type != POOL_BT_INDIRECT || old->level != level) {
			free(kids);
			return pool_err(p, -EIO,
			                "pool \"%s\": bad indirect block pointer at level %d",
			                p->name, level);
		}
		err = pool_blk_read(p, old, kids);
		if (err) {
			free(kids);
			return err;
		}
	}
	size_t i = lo;
	if (!old && level - 1 > c->oldtop) {
		/* the virtual chain down to the old root is built even when
		 * nothing under it is dirty */
		size_t j = i;
		struct pool_bp nk;
		while (j < hi && c->ents[j].blkid < base + span_of(level - 1))
			j++;
		err = sync_node(p, c, level - 1, base, NULL, i, j, &nk);
		if (!err)
			kids[0] = nk;
		i = j;
	}
	while (i < hi && !err) {
		uint32_t slot = (uint32_t)((c->ents[i].blkid - base) / span_of(level - 1));
		uint64_t kbase = base + slot * span_of(level - 1);
		size_t j = i;
		while (j < hi && c->ents[j].blkid < kbase + span_of(level - 1))
			j++;
		struct pool_bp nk;
		err = sync_node(p, c, level - 1, kbase, &kids[slot], i, j, &nk);
		if (!err)
			kids[slot] = nk;
		i = j;
	}
	if (err) {
		free(kids);
		return err;
	}
	for (uint32_t k = 0; k < POOL_BP_PER_IND; k++)
		fill += pool_bp_is_hole(&kids[k]) ? 0 : (kids[k].level ? kids[k].fill : 1);
	if (fill == 0) {
		if (old && pool_bp_is_hole(old))
			*out = *old;
		else
			make_hole(p, out, POOL_IND_SIZE, POOL_BT_INDIRECT, level);
	} else {
		err = pool_blk_write(p, kids, POOL_IND_SIZE, POOL_COMP_LZ4, POOL_BT_INDIRECT, level,
		                     out);
		if (!err) {
			out->fill = fill;
			obj_birth(p, o, out);
		}
	}
	free(kids);
	if (err)
		return err;
	return old ? obj_kill(p, o, old) : 0;
}

int pool_obj_sync(struct pool *p, struct pool_obj *o)
{
	struct sync_ctx c = {.o = o, .oldtop = o->d.nlevels - 1};
	struct pool_bp root;
	size_t n = 0;
	int err, levels = o->d.nlevels;

	if (!o->ndirty)
		return 0;
	c.ents = malloc(o->ndirty * sizeof(*c.ents));
	if (!c.ents)
		return -ENOMEM;
	for (size_t i = 0; i < o->tabsize; i++)
		for (struct pool_dbuf *b = o->tab[i]; b; b = b->next)
			c.ents[n++] =
			    (struct sync_ent){b->blkid, b->data, b->bp.addr ? &b->bp : NULL};
	qsort(c.ents, n, sizeof(*c.ents), cmp_ent);
	while (levels < POOL_MAX_LEVELS && span_of(levels - 1) <= c.ents[n - 1].blkid)
		levels++;
	if (span_of(levels - 1) <= c.ents[n - 1].blkid) {
		free(c.ents);
		return pool_err(p, -EFBIG, "pool \"%s\": object too large", p->name);
	}
	err =
	    sync_node(p, &c, levels - 1, 0, levels > o->d.nlevels ? NULL : &o->d.root, 0, n, &root);
	free(c.ents);
	/* the stage may point into the dirty buffers: out before they go */
	int ferr = pool_blk_stage_flush(p);
	if (!err)
		err = ferr;
	if (err)
		return err;
	pool_obj_clean(p, o); /* blocks written ahead are in the tree now */
	o->d.root = root;
	o->d.nlevels = (uint8_t)levels;
	return 0;
}

struct walk_ctx {
	pool_walk_fn fn;
	void *arg;
	uint64_t mintxg;
};

static int walk_node(struct pool *p, struct walk_ctx *w, const struct pool_bp *bp, int level,
                     uint64_t base)
{
	struct pool_bp *kids;
	int r;

	if (bp->birth <= w->mintxg)
		return 0;
	r = w->fn(p, w->arg, bp, level, base);
	if (r < 0)
		return r;
	if (r == 1 || level == 0 || pool_bp_is_hole(bp))
		return 0;
	if (bp->type != POOL_BT_INDIRECT || bp->level != level || bp->lsize != POOL_IND_SIZE)
		return pool_err(p, -EIO, "pool \"%s\": bad indirect block pointer at level %d",
		                p->name, level);
	kids = malloc(POOL_IND_SIZE);
	if (!kids)
		return -ENOMEM;
	r = pool_blk_read(p, bp, kids);
	if (r == -EIO && p->walk_tolerant) { /* its children are lost; scrub names it */
		p->walk_skipped++;
		free(kids);
		return 0;
	}
	for (uint32_t i = 0; !r && i < POOL_BP_PER_IND; i++)
		r = walk_node(p, w, &kids[i], level - 1, base + i * span_of(level - 1));
	free(kids);
	return r;
}

int pool_obj_walk(struct pool *p, const struct pool_objdesc *d, uint64_t mintxg, pool_walk_fn fn,
                  void *arg)
{
	struct walk_ctx w = {.fn = fn, .arg = arg, .mintxg = mintxg};

	if (d->nlevels < 1 || d->nlevels > POOL_MAX_LEVELS)
		return pool_err(p, -EBADMSG, "pool \"%s\": tree of %u levels", p->name, d->nlevels);
	return walk_node(p, &w, &d->root, d->nlevels - 1, 0);
}

struct trunc_ctx {
	struct pool_obj *o;
	uint64_t nb;
};

static int trunc_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	struct trunc_ctx *t = arg;

	if (blkid + span_of(level) <= t->nb)
		return 1; /* wholly inside the new size */
	if (level == 0 && !pool_bp_is_hole(bp))
		return pool_obj_punch_blocks(p, t->o, blkid, blkid);
	return 0;
}

int pool_obj_set_size(struct pool *p, struct pool_obj *o, uint64_t size)
{
	uint32_t bs = o->d.blocksize;
	uint64_t nb = (size + bs - 1) / bs;
	int err;

	if (size >= o->d.size) {
		o->d.size = size;
		return 0;
	}
	/* drop dirty leaves past the end, punch committed ones */
	for (size_t i = 0; i < o->tabsize; i++) {
		struct pool_dbuf **pp = &o->tab[i];
		while (*pp) {
			struct pool_dbuf *b = *pp;
			if (b->blkid >= nb) {
				*pp = b->next;
				o->ndirty--;
				pool_dbuf_drop(p, o, b);
			} else {
				pp = &b->next;
			}
		}
	}
	struct trunc_ctx t = {.o = o, .nb = nb};
	err = pool_obj_walk(p, &o->d, 0, trunc_fn, &t);
	if (err)
		return err;
	if (size % bs) { /* zero the tail of the last block, so a regrow reads zeros */
		uint64_t tail = bs - size % bs;
		uint8_t *z = calloc(1, tail);
		if (!z)
			return -ENOMEM;
		err = pool_obj_write(p, o, z, tail, size);
		free(z);
		if (err)
			return err;
	}
	o->d.size = size;
	return 0;
}
