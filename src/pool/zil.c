/*
 * zil.c - the intent log: a volume flush that is durable when it returns,
 * without committing a transaction group.
 *
 * Each commit allocates a 256 KiB slot and names it in the uberblock
 * (zil_addr).  A flush writes the dirty blocks not yet logged, as records,
 * into that slot - header and records in one write - with the address of
 * a freshly allocated next slot in the header, then fdatasyncs: one write
 * and one flush, no tree rewrite, no uberblock.  Larger flushes chain more
 * blocks.  The next commit puts everything logged into the trees, and the
 * chain becomes garbage (its slots are freed, deferred like any block).
 *
 * At open the chain of the chosen uberblock is followed while each block
 * verifies (magic, pool guid, that uberblock's txg, sequence number, its own
 * xxh128): a block torn by a crash, or stale bytes in a reused slot, end it.
 * The valid blocks are marked allocated, their records applied to the
 * volumes, and (unless read-only) committed at once.  A record is a whole
 * block, so replay is idempotent.  This is ZFS's ZIL reduced to what a
 * block volume needs (no per-dataset logs, no separate log device).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

static void zil_note(struct pool *p, uint64_t addr)
{
	if (p->zil_nused == p->zil_cap) {
		size_t cap = p->zil_cap ? p->zil_cap * 2 : 16;
		uint64_t *n = realloc(p->zil_used, cap * sizeof(*n));
		if (!n)
			return; /* the slot stays allocated until the next open */
		p->zil_used = n;
		p->zil_cap = cap;
	}
	p->zil_used[p->zil_nused++] = addr;
}

static void zil_free_slot(struct pool *p, uint64_t addr)
{
	struct pool_bp bp = {.addr = addr, .psize = POOL_ZIL_SLOT, .birth = 1};

	if (addr)
		pool_alloc_free(p, &bp); /* born in a committed txg: deferred */
}

uint64_t pool_zil_new_slot(struct pool *p)
{
	uint64_t addr;

	return pool_alloc(p, POOL_ZIL_SLOT_SECS, &addr) ? 0 : addr;
}

void pool_zil_committed(struct pool *p, uint64_t new_slot)
{
	for (size_t i = 0; i < p->zil_nused; i++)
		zil_free_slot(p, p->zil_used[i]);
	zil_free_slot(p, p->zil_next);
	p->zil_nused = 0;
	p->zil_next = new_slot;
	p->zil_seq = 0;
	/* everything dirty is in the trees now; nothing is "logged" any more */
}

void pool_zil_fini(struct pool *p)
{
	free(p->zil_used);
	p->zil_used = NULL;
	p->zil_nused = p->zil_cap = 0;
}

static void zil_seal(struct pool_zil_hdr *h, uint8_t *block)
{
	h->cksum[0] = h->cksum[1] = 0;
	memcpy(block, h, sizeof(*h));
	pool_cksum(block, sizeof(*h) + h->used, h->cksum);
	memcpy(block, h, sizeof(*h));
}

/* Write BLOCK (header H filled but for next and cksum) to the current slot. */
static int zil_write_block(struct pool *p, struct pool_zil_hdr *h, uint8_t *block)
{
	uint64_t next;
	int err;

	if (pool_alloc(p, POOL_ZIL_SLOT_SECS, &next))
		return -ENOSPC;
	h->next = next;
	h->seq = p->zil_seq;
	zil_seal(h, block);
	size_t len = (sizeof(*h) + h->used + POOL_SECTOR - 1) & ~(size_t)(POOL_SECTOR - 1);
	err = pool_io_write(p, block, len, p->zil_next * POOL_SECTOR);
	if (err) {
		zil_free_slot(p, next);
		return err;
	}
	zil_note(p, p->zil_next);
	p->zil_next = next;
	p->zil_seq++;
	p->zil_blocks++;
	return 0;
}

struct zil_item {
	struct pool_ds *ds;
	struct pool_dbuf *b;
};

static int cmp_item(const void *x, const void *y)
{
	const struct zil_item *a = x, *b = y;

	if (a->ds->r.id != b->ds->r.id)
		return a->ds->r.id < b->ds->r.id ? -1 : 1;
	return a->b->blkid < b->b->blkid ? -1 : a->b->blkid > b->b->blkid;
}

/*
 * Log every dirty block not yet logged, in (dataset, offset) order, so that
 * a chain cut short by a crash replays a prefix of the flush by offset;
 * durable when it returns.
 */
static int zil_flush(struct pool *p)
{
	struct pool_zil_hdr h = {.magic = POOL_ZIL_MAGIC, .guid = p->guid, .txg = p->txg};
	struct zil_item *items = NULL;
	uint8_t *block = malloc(POOL_ZIL_SLOT);
	size_t n = 0, cap = 0;
	int err = 0;

	for (size_t i = 0; block && i < p->nds && !err; i++) {
		struct pool_obj *o = p->ds[i] ? &p->ds[i]->obj : NULL;
		for (size_t k = 0; o && k < o->tabsize && !err; k++) {
			for (struct pool_dbuf *b = o->tab[k]; b && !err; b = b->next) {
				if (b->logged)
					continue;
				if (n == cap) {
					cap = cap ? cap * 2 : 256;
					struct zil_item *ni = realloc(items, cap * sizeof(*ni));
					if (!ni) {
						err = -ENOMEM;
						break;
					}
					items = ni;
				}
				items[n++] = (struct zil_item){p->ds[i], b};
			}
		}
	}
	if (!block)
		err = -ENOMEM;
	if (!err && n)
		qsort(items, n, sizeof(*items), cmp_item);
	for (size_t i = 0; i < n && !err; i++) {
		struct pool_dbuf *b = items[i].b;
		uint32_t len = b->data || b->bp.addr ? items[i].ds->obj.d.blocksize : 0;
		struct pool_zil_rec r = {.ds_id = items[i].ds->r.id, .blkid = b->blkid, .len = len};
		if (sizeof(h) + h.used + sizeof(r) + len > POOL_ZIL_SLOT) {
			err = zil_write_block(p, &h, block);
			h.used = 0;
			if (err)
				break;
		}
		uint8_t *at = block + sizeof(h) + h.used;
		memcpy(at, &r, sizeof(r));
		if (b->data)
			memcpy(at + sizeof(r), b->data, len);
		else if (len && (err = pool_blk_read(p, &b->bp, at + sizeof(r))) != 0)
			break; /* written ahead (tree.c): its bytes from the device */
		h.used += (uint32_t)(sizeof(r) + len);
	}
	if (!err && h.used)
		err = zil_write_block(p, &h, block);
	if (!err && n)
		err = pool_io_flush(p);
	if (!err) /* marked only once durable */
		for (size_t i = 0; i < n; i++)
			items[i].b->logged = 1;
	free(items);
	free(block);
	if (err)
		return err;
	p->zil_flushes++;
	return 0;
}

int vol_flush(struct vol *v)
{
	struct pool *p = v->p;
	int err = pool_check_writable(p);

	if (err)
		return err;
	if (!p->zil_next)
		return pool_txg_commit(p); /* no log slot yet (just opened, or full) */
	err = zil_flush(p);
	if (err == -ENOSPC)
		return pool_txg_commit(p);
	if (err)
		return pool_err(p, err, "pool \"%s\": intent log write failed: %s", p->name,
		                strerror(-err));
	return 0;
}

/* Read and verify the log block at ADDR with sequence SEQ into BLOCK. */
static int zil_read(struct pool *p, uint64_t addr, uint64_t txg, uint64_t seq, uint8_t *block,
                    struct pool_zil_hdr *h)
{
	uint64_t ck[2];

	if (addr < p->first_sector || addr + POOL_ZIL_SLOT_SECS > p->end_sector)
		return -EINVAL;
	if (pool_io_read(p, block, POOL_SECTOR, addr * POOL_SECTOR))
		return -EIO;
	memcpy(h, block, sizeof(*h));
	if (h->magic != POOL_ZIL_MAGIC || h->guid != p->guid || h->txg != txg || h->seq != seq ||
	    h->used > POOL_ZIL_SLOT - sizeof(*h))
		return -EINVAL;
	size_t len = (sizeof(*h) + h->used + POOL_SECTOR - 1) & ~(size_t)(POOL_SECTOR - 1);
	if (len > POOL_SECTOR && pool_io_read(p, block, len, addr * POOL_SECTOR))
		return -EIO;
	struct pool_zil_hdr c = *h;
	c.cksum[0] = c.cksum[1] = 0;
	memcpy(block, &c, sizeof(c));
	pool_cksum(block, sizeof(c) + h->used, ck);
	return pool_cksum_eq(ck, h->cksum) ? 0 : -EINVAL;
}

void pool_zil_mark(struct pool *p, const struct pool_ub *ub)
{
	uint8_t *block = malloc(POOL_ZIL_SLOT);
	struct pool_zil_hdr h;
	uint64_t addr = ub->zil_addr;

	p->zil_nused = 0;
	for (uint64_t seq = 0; block && addr && seq < p->nsectors / POOL_ZIL_SLOT_SECS; seq++) {
		if (pool_alloc_is_set(p, addr) || zil_read(p, addr, ub->txg, seq, block, &h))
			break;
		pool_alloc_mark(p, addr, POOL_ZIL_SLOT_SECS);
		zil_note(p, addr);
		addr = h.next;
	}
	free(block);
}

int pool_zil_replay(struct pool *p)
{
	uint8_t *block = malloc(POOL_ZIL_SLOT);
	struct pool_zil_hdr h;
	int err = 0;

	if (!block)
		return -ENOMEM;
	for (size_t i = 0; i < p->zil_nused && !err; i++) {
		if (zil_read(p, p->zil_used[i], p->ub.txg, i, block, &h)) {
			err = pool_err(p, -EIO,
			               "pool \"%s\": intent log block %zu changed during open",
			               p->name, i);
			break;
		}
		for (uint32_t off = 0; off + sizeof(struct pool_zil_rec) <= h.used && !err;) {
			struct pool_zil_rec r;
			memcpy(&r, block + sizeof(h) + off, sizeof(r));
			off += (uint32_t)sizeof(r);
			struct pool_ds *ds = pool_ds_get(p, r.ds_id);
			if (!ds || ds->r.type != POOL_DS_VOLUME ||
			    r.blkid >= pool_obj_nblocks(&ds->obj.d) ||
			    (r.len && r.len != ds->obj.d.blocksize) || r.len > h.used - off) {
				err = pool_err(p, -EBADMSG, "pool \"%s\": bad intent log record",
				               p->name);
				break;
			}
			uint64_t boff = r.blkid * ds->obj.d.blocksize;
			uint64_t len = ds->obj.d.blocksize;
			if (boff + len > ds->obj.d.size)
				len = ds->obj.d.size - boff;
			if (r.len)
				err =
				    pool_obj_write(p, &ds->obj, block + sizeof(h) + off, len, boff);
			else
				err = pool_obj_punch_blocks(p, &ds->obj, r.blkid, r.blkid);
			off += r.len;
		}
	}
	free(block);
	if (err || !p->zil_nused)
		return err;
	return p->rdonly ? 0 : pool_txg_commit(p);
}
