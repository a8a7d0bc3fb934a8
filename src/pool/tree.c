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

void pool_obj_discard(struct pool *p, struct pool_obj *o)
{
	for (size_t i = 0; i < o->tabsize; i++) {
		struct pool_dbuf *b = o->tab[i], *next;
		for (; b; b = next) {
			next = b->next;
			if (b->data)
				p->dirty_bytes -= o->d.blocksize;
			p->dirty_leaves--;
			free(b->data);
			free(b);
		}
	}
	free(o->tab);
	o->tab = NULL;
	o->tabsize = 0;
	o->ndirty = 0;
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
		if (bp.type != POOL_BT_INDIRECT || bp.level != level || bp.lsize != POOL_IND_SIZE) {
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
		bp = kids[(blkid >> (POOL_BP_PER_IND_SH * (level - 1))) & (POOL_BP_PER_IND - 1)];
	}
	free(ind);
	if (err)
		return err;
	if (pool_bp_is_hole(&bp)) {
		uint64_t birth = bp.birth;
		memset(&bp, 0, sizeof(bp));
		bp.birth = birth;
	} else if (bp.level != 0 || bp.lsize != d->blocksize) {
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

		if (b) {
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

int pool_obj_write(struct pool *p, struct pool_obj *o, const void *buf, size_t len, uint64_t off)
{
	uint32_t bs = o->d.blocksize;
	const uint8_t *in = buf;
	int err;

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
			return err;
		if (!b->data) {
			b->data = malloc(bs);
			if (!b->data)
				return -ENOMEM;
			p->dirty_bytes += bs;
			if (n == bs)
				; /* overwritten whole below */
			else if (!created)
				memset(b->data, 0, bs); /* punched in this txg */
			else if ((err = obj_read_leaf(p, o, blkid, b->data)) != 0)
				return err;
		}
		memcpy(b->data + boff, in, n);
		b->logged = 0;
		in += n;
		off += n;
		len -= n;
	}
	return 0;
}

int pool_obj_punch_blocks(struct pool *p, struct pool_obj *o, uint64_t first, uint64_t last)
{
	for (uint64_t blkid = first; blkid <= last; blkid++) {
		struct pool_dbuf *b;
		bool created;
		int err = dbuf_get(p, o, blkid, &b, &created);

		if (err)
			return err;
		if (b->data) {
			free(b->data);
			b->data = NULL;
			p->dirty_bytes -= o->d.blocksize;
		}
		b->logged = 0;
	}
	return 0;
}
