/*
 * tree.c - an object's block tree: reading leaves, dirtying them, and
 * writing the changes out copy-on-write at commit.
 *
 *   level 2        [ root: 256 bp ]              <- pool_objdesc.root
 *                  /       |       \
 *   level 1   [256 bp]  [256 bp]  ...             indirect blocks, 16 KiB
 *              /   \
 *   level 0  [leaf][leaf] ...                     blocksize bytes each
 *
 * Between commits, changed leaves live in a hash of dirty buffers (a NULL
 * buffer is a hole).  pool_obj_sync() rewrites, bottom up, only the paths
 * from dirty leaves to the root: every new block gets the open txg as its
 * birth and its parent gets its checksum; every replaced block is "killed"
 * through the object's owner (dir.c applies the birth/deadlist rule for
 * volumes; metadata is freed).  An indirect block whose children are all
 * holes becomes a hole itself, with a birth, so incremental send can emit
 * one free for its whole range.  Nothing here is ever written in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

static uint64_t span_of_level(int level)
{
	return 1ull << (POOL_BP_PER_IND_SH * level);
}

uint64_t pool_obj_nblocks(const struct pool_objdesc *d)
{
	return (d->size + d->blocksize - 1) / d->blocksize;
}

void pool_obj_init(struct pool_obj *o, const struct pool_objdesc *d, struct pool_ds *ds)
{
	memset(o, 0, sizeof(*o));
	o->d = *d;
	o->ds = ds;
}

static struct pool_dbuf **dbuf_slot(struct pool_obj *o, uint64_t blkid)
{
	struct pool_dbuf **pp;

	if (!o->tabsize)
		return NULL;
	pp = &o->tab[(blkid * 0x9e3779b97f4a7c15ull >> 20) & (o->tabsize - 1)];
	while (*pp && (*pp)->blkid != blkid)
		pp = &(*pp)->next;
	return pp;
}

static struct pool_dbuf *dbuf_find(struct pool_obj *o, uint64_t blkid)
{
	struct pool_dbuf **pp = dbuf_slot(o, blkid);

	return pp ? *pp : NULL;
}

static int dbuf_grow(struct pool_obj *o)
{
	size_t nsize = o->tabsize ? o->tabsize * 2 : 64;
	struct pool_dbuf **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < o->tabsize; i++) {
		struct pool_dbuf *b = o->tab[i], *next;
		for (; b; b = next) {
			next = b->next;
			size_t h = (b->blkid * 0x9e3779b97f4a7c15ull >> 20) & (nsize - 1);
			b->next = nt[h];
			nt[h] = b;
		}
	}
	free(o->tab);
	o->tab = nt;
	o->tabsize = nsize;
	return 0;
}

/* Find or add the dirty entry of BLKID; new entries have no buffer. */
static int dbuf_get(struct pool *p, struct pool_obj *o, uint64_t blkid, struct pool_dbuf **out,
                    bool *created)
{
	struct pool_dbuf **pp, *b;

	*created = false;
	if (o->ndirty >= o->tabsize && dbuf_grow(o))
		return -ENOMEM;
	pp = dbuf_slot(o, blkid);
	if (!*pp) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		b->blkid = blkid;
		*pp = b;
		o->ndirty++;
		p->dirty_leaves++;
		*created = true;
	}
	*out = *pp;
	return 0;
}

/* The block B was written ahead to goes back: born in the open txg, at once. */
static void dbuf_unwrite(struct pool *p, struct pool_dbuf *b, bool free_block)
{
	if (!b->bp.addr)
		return;
	if (free_block && p->bitmap)
		pool_alloc_free(p, &b->bp);
	p->dirty_ahead -= b->bp.lsize;
	memset(&b->bp, 0, sizeof(b->bp));
}

static void dbuf_drop(struct pool *p, struct pool_obj *o, struct pool_dbuf *b, bool free_block)
{
	if (b->data || b->bp.addr)
		p->dirty_bytes -= o->d.blocksize;
	dbuf_unwrite(p, b, free_block);
	p->dirty_leaves--;
	free(b->data);
	free(b);
}

void pool_dbuf_drop(struct pool *p, struct pool_obj *o, struct pool_dbuf *b)
{
	dbuf_drop(p, o, b, true);
}

/* Take back the entry of BLKID that a failed write just made (no data). */
static void dbuf_undo_new(struct pool *p, struct pool_obj *o, uint64_t blkid)
{
	struct pool_dbuf **pp = dbuf_slot(o, blkid), *b = pp ? *pp : NULL;

	if (!b)
		return;
	*pp = b->next;
	o->ndirty--;
	dbuf_drop(p, o, b, true);
}

static void obj_drop_all(struct pool *p, struct pool_obj *o, bool synced)
{
	for (size_t i = 0; i < o->tabsize; i++) {
		struct pool_dbuf *b = o->tab[i], *next;
		for (; b; b = next) {
			next = b->next;
			dbuf_drop(p, o, b, !synced);
		}
	}
	free(o->tab);
	o->tab = NULL;
	o->tabsize = 0;
	o->ndirty = 0;
}

void pool_obj_discard(struct pool *p, struct pool_obj *o)
{
	obj_drop_all(p, o, false);
}

void pool_obj_clean(struct pool *p, struct pool_obj *o)
{
	obj_drop_all(p, o, true);
}

static bool ind_bp_valid(const struct pool_bp *bp, int level)
{
	return bp->type == POOL_BT_INDIRECT && bp->level == level && bp->lsize == POOL_IND_SIZE;
}

/* Index of BLKID's pointer in its indirect block at LEVEL. */
static unsigned ind_index(uint64_t blkid, int level)
{
	return (unsigned)((blkid >> (POOL_BP_PER_IND_SH * (level - 1))) & (POOL_BP_PER_IND - 1));
}

/* Whether leaf pointer BP (not a hole) fits object D. */
static bool leaf_bp_valid(const struct pool_objdesc *d, const struct pool_bp *bp)
{
	return bp->level == 0 && bp->lsize == d->blocksize;
}

int pool_obj_leaf_bp(struct pool *p, const struct pool_objdesc *d, uint64_t blkid,
                     struct pool_bp *out)
{
	struct pool_bp bp = d->root;
	struct pool_bp *ind = NULL;
	int err = 0;

	if (blkid >= span_of_level(d->nlevels - 1)) {
		memset(out, 0, sizeof(*out));
		out->lsize = d->blocksize;
		return 0;
	}
	for (int level = d->nlevels - 1; level > 0 && !pool_bp_is_hole(&bp); level--) {
		if (!ind_bp_valid(&bp, level)) {
			err =
			    pool_err(p, -EIO, "pool \"%s\": bad indirect block pointer at level %d",
			             p->name, level);
			break;
		}
		/* a cached indirect block is read in place: 64 bytes, not 16 KiB */
		const struct pool_bp *kids = pool_arc_peek(p, &bp);
		if (!kids) {
			if (!ind && !(ind = malloc(POOL_IND_SIZE))) {
				err = -ENOMEM;
				break;
			}
			err = pool_blk_read_device(p, &bp, ind);
			if (err)
				break;
			kids = ind;
		}
		bp = kids[ind_index(blkid, level)];
	}
	free(ind);
	if (err)
		return err;
	if (pool_bp_is_hole(&bp)) {
		uint64_t birth = bp.birth;
		memset(&bp, 0, sizeof(bp));
		bp.birth = birth;
	} else if (!leaf_bp_valid(d, &bp)) {
		return pool_err(p, -EIO, "pool \"%s\": leaf %llu has a bad block pointer", p->name,
		                (unsigned long long)blkid);
	}
	bp.lsize = d->blocksize;
	*out = bp;
	return 0;
}

/* Committed content of leaf BLKID into BUF (blocksize bytes). */
static int obj_read_leaf(struct pool *p, struct pool_obj *o, uint64_t blkid, uint8_t *buf)
{
	struct pool_bp bp;
	int err = pool_obj_leaf_bp(p, &o->d, blkid, &bp);

	if (err)
		return err;
	if (pool_bp_is_hole(&bp)) {
		memset(buf, 0, o->d.blocksize);
		return 0;
	}
	return pool_blk_read(p, &bp, buf);
}

int pool_obj_read(struct pool *p, struct pool_obj *o, void *buf, size_t len, uint64_t off)
{
	uint32_t bs = o->d.blocksize;
	uint8_t *tmp = NULL, *out = buf;
	int err = 0;

	if (off > o->d.size || len > o->d.size - off)
		return -EINVAL;
	while (len) {
		uint64_t blkid = off / bs;
		uint32_t boff = (uint32_t)(off % bs);
		size_t n = bs - boff < len ? bs - boff : len;
		struct pool_dbuf *b = dbuf_find(o, blkid);

		if (b && b->bp.addr) { /* written ahead */
			if (n == bs) {
				err = pool_blk_read(p, &b->bp, out);
			} else {
				if (!tmp && !(tmp = malloc(bs))) {
					err = -ENOMEM;
					break;
				}
				err = pool_blk_read(p, &b->bp, tmp);
				if (!err)
					memcpy(out, tmp + boff, n);
			}
		} else if (b) {
			if (b->data)
				memcpy(out, b->data + boff, n);
			else
				memset(out, 0, n);
		} else if (n == bs) {
			err = obj_read_leaf(p, o, blkid, out);
		} else {
			if (!tmp && !(tmp = malloc(bs))) {
				err = -ENOMEM;
				break;
			}
			err = obj_read_leaf(p, o, blkid, tmp);
			if (!err)
				memcpy(out, tmp + boff, n);
		}
		if (err) {
			p->err_offset = blkid * bs;
			break;
		}
		out += n;
		off += n;
		len -= n;
	}
	free(tmp);
	return err;
}

/*
 * Shared reads (vol_read_shared): the same walk as pool_obj_leaf_bp and
 * pool_obj_read, but every block through pool_blk_read_shared, an indirect
 * block's one pointer copied out of the ARC (no pointer into it is kept,
 * another thread may evict it), and any failure -EAGAIN without a message:
 * the caller then reads exclusively, which reports it.  Nothing of P or O
 * is written; the dirty leaves and the trees are only read, which is safe
 * because no exclusive call runs meanwhile (the caller's lock).
 */
static int leaf_bp_shared(struct pool *p, const struct pool_objdesc *d, uint64_t blkid,
                          bool cached_only, struct pool_bp *out, unsigned *hits)
{
	struct pool_bp bp = d->root;
	bool hit;

	if (blkid >= span_of_level(d->nlevels - 1)) {
		memset(out, 0, sizeof(*out));
		out->lsize = d->blocksize;
		return 0;
	}
	for (int level = d->nlevels - 1; level > 0 && !pool_bp_is_hole(&bp); level--) {
		struct pool_bp kid;
		if (!ind_bp_valid(&bp, level) ||
		    pool_blk_read_shared(p, &bp, ind_index(blkid, level) * (uint32_t)sizeof(kid),
		                         sizeof(kid), &kid, cached_only, &hit))
			return -EAGAIN;
		*hits += hit;
		bp = kid;
	}
	if (pool_bp_is_hole(&bp)) {
		uint64_t birth = bp.birth;
		memset(&bp, 0, sizeof(bp));
		bp.birth = birth;
	} else if (!leaf_bp_valid(d, &bp)) {
		return -EAGAIN;
	}
	bp.lsize = d->blocksize;
	*out = bp;
	return 0;
}

int pool_obj_read_shared(struct pool *p, struct pool_obj *o, void *buf, size_t len, uint64_t off,
                         bool cached_only)
{
	uint32_t bs = o->d.blocksize;
	uint8_t *out = buf;
	unsigned hits = 0;

	/* a block written ahead may still be in the stage, not on the device */
	if (p->stage_len || off > o->d.size || len > o->d.size - off)
		return -EAGAIN;
	while (len) {
		uint64_t blkid = off / bs;
		uint32_t boff = (uint32_t)(off % bs);
		uint32_t n = bs - boff < len ? bs - boff : (uint32_t)len;
		struct pool_dbuf *b = dbuf_find(o, blkid);
		struct pool_bp bp;
		bool hit = false;

		if (b && !b->bp.addr) {
			if (b->data)
				memcpy(out, b->data + boff, n);
			else
				memset(out, 0, n);
		} else if (b) { /* written ahead */
			if (pool_blk_read_shared(p, &b->bp, boff, n, out, cached_only, &hit))
				return -EAGAIN;
		} else if (leaf_bp_shared(p, &o->d, blkid, cached_only, &bp, &hits) ||
		           pool_blk_read_shared(p, &bp, boff, n, out, cached_only, &hit)) {
			return -EAGAIN;
		}
		hits += hit;
		out += n;
		off += n;
		len -= n;
	}
	if (cached_only) /* counted only now: a refusal leaves the stats alone */
		pool_arc_count_hits(p, hits);
	return 0;
}

/*
 * A volume leaf written whole goes to the device at once, compressed and
 * checksummed, straight from the caller's buffer (staged by reference;
 * pool_obj_write writes the stage out before it returns unless
 * p->wbuf_stable): one copy, into the page cache, as a plain file write
 * makes, instead of one into a dirty buffer and another at the commit.
 * Its block is born in the open txg and is in no tree until the commit, so
 * a crash before it leaves nothing pointing at it; a later write to the
 * same leaf in this txg frees it at once.  All-zero leaves become holes.
 */
static int dbuf_write_ahead(struct pool *p, struct pool_obj *o, struct pool_dbuf *b,
                            const uint8_t *in)
{
	uint32_t bs = o->d.blocksize;
	bool counted = b->data || b->bp.addr, zero = pool_is_zero(in, bs);
	struct pool_bp bp;

	if (zero) {
		if (counted)
			p->dirty_bytes -= bs;
	} else {
		int err = pool_blk_write(p, in, bs, o->d.comp, o->d.type, 0, &bp);
		if (err)
			return err; /* the leaf is as it was */
		if (!counted)
			p->dirty_bytes += bs;
	}
	free(b->data);
	b->data = NULL;
	dbuf_unwrite(p, b, true);
	if (!zero) {
		b->bp = bp;
		p->dirty_ahead += bs;
	}
	return 0;
}

int pool_obj_write(struct pool *p, struct pool_obj *o, const void *buf, size_t len, uint64_t off)
{
	uint32_t bs = o->d.blocksize;
	const uint8_t *in = buf;
	bool staged = false;
	int err = 0;

	if (off > o->d.size || len > o->d.size - off)
		return -EINVAL;
	while (len) {
		uint64_t blkid = off / bs;
		uint32_t boff = (uint32_t)(off % bs);
		size_t n = bs - boff < len ? bs - boff : len;
		struct pool_dbuf *b;
		bool created;

		err = dbuf_get(p, o, blkid, &b, &created);
		if (err)
			break;
		if (n == bs && o->d.type == POOL_BT_VOLDATA) {
			err = dbuf_write_ahead(p, o, b, in);
			if (err) {
				if (created) /* else it would read as a hole */
					dbuf_undo_new(p, o, blkid);
				break;
			}
			staged = true;
		} else if (!b->data) {
			uint8_t *data = malloc(bs);
			if (!data) {
				if (created)
					dbuf_undo_new(p, o, blkid);
				err = -ENOMEM;
				break;
			}
			if (n == bs)
				; /* overwritten whole below */
			else if (b->bp.addr)
				err = pool_blk_read(p, &b->bp, data); /* written ahead */
			else if (!created)
				memset(data, 0, bs); /* punched in this txg */
			else
				err = obj_read_leaf(p, o, blkid, data);
			if (err) {
				free(data);
				if (created)
					dbuf_undo_new(p, o, blkid);
				break;
			}
			if (!b->bp.addr)
				p->dirty_bytes += bs;
			dbuf_unwrite(p, b, true);
			b->data = data;
		}
		if (b->data)
			memcpy(b->data + boff, in, n);
		b->logged = 0;
		in += n;
		off += n;
		len -= n;
	}
	/* the stage may point into BUF */
	if (staged && !p->wbuf_stable) {
		int ferr = pool_blk_stage_flush(p);
		if (ferr) { /* leaves point at blocks that are not on the device */
			p->poisoned = ferr;
			err = pool_err(p, ferr, "pool \"%s\": write failed: %s", p->name,
			               strerror(-ferr));
		}
	}
	return err;
}

int pool_obj_punch_blocks(struct pool *p, struct pool_obj *o, uint64_t first, uint64_t last)
{
	for (uint64_t blkid = first; blkid <= last; blkid++) {
		struct pool_dbuf *b;
		bool created;
		int err = dbuf_get(p, o, blkid, &b, &created);

		if (err)
			return err;
		if (b->data || b->bp.addr)
			p->dirty_bytes -= o->d.blocksize;
		free(b->data);
		b->data = NULL;
		dbuf_unwrite(p, b, true);
		b->logged = 0;
	}
	return 0;
}
