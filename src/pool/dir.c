/*
 * dir.c - the dataset directory and the birth/kill accounting.
 *
 * The directory is one object whose bytes are an array of 512-byte dataset
 * records (format.h), record id-1 at offset (id-1)*512.  It is loaded whole
 * at open and rewritten at commit, record by record, only where a record
 * changed.  Names are components ("vm1", snapshot "monday" with head_id of
 * vm1); the pool name is not stored in them.
 *
 * Accounting, the birth/kill rule (as ZFS's dsl_dataset_block_born/kill):
 *   birth(bp) in head H:  H.referenced += asize, H.written += asize,
 *                         H.used += asize (and the logical twins).
 *   kill(bp) in head H:   H.referenced -= asize;
 *     bp.birth > H.prev_snap_txg: no snapshot holds it -> free it,
 *                         H.used -= asize, H.written -= asize;
 *     otherwise:          a snapshot still holds it -> append bp to H's
 *                         deadlist; it is freed when the last snapshot that
 *                         holds it is destroyed (snap.c).
 * This file never walks trees; snap.c does the bulk work of destroy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

#define REC sizeof(struct pool_dsrec)

static void ds_attach(struct pool_ds *ds)
{
	pool_obj_init(&ds->obj, &ds->r.obj, ds);
	pool_obj_init(&ds->dl, &ds->r.deadlist, NULL);
}

int pool_dir_load(struct pool *p)
{
	size_t n = p->dir.d.size / REC;
	int err;

	p->ds = calloc(n ? n : 1, sizeof(*p->ds));
	p->dir_image = calloc(n ? n : 1, REC);
	if (!p->ds || !p->dir_image)
		return -ENOMEM;
	p->nds = n;
	p->dir_image_recs = n;
	if (n) {
		err = pool_obj_read(p, &p->dir, p->dir_image, n * REC, 0);
		if (err)
			return err;
	}
	for (size_t i = 0; i < n; i++) {
		struct pool_dsrec rec;
		memcpy(&rec, p->dir_image + i * REC, REC);
		if (rec.type == POOL_DS_FREE)
			continue;
		if (rec.id != i + 1 || rec.type > POOL_DS_SNAPSHOT || !memchr(rec.name, 0, 128) ||
		    rec.obj.nlevels < 1 || rec.obj.nlevels > POOL_MAX_LEVELS ||
		    rec.deadlist.nlevels < 1 || rec.deadlist.nlevels > POOL_MAX_LEVELS ||
		    rec.obj.blocksize < 4096 || rec.obj.blocksize > 131072 ||
		    rec.deadlist.blocksize != POOL_META_BLOCKSIZE || rec.deadlist.size % 64 ||
		    rec.deadlist.size > p->devsize ||
		    (rec.obj.blocksize & (rec.obj.blocksize - 1)) ||
		    rec.obj.size / rec.obj.blocksize > (1ull << (POOL_BP_PER_IND_SH * 6)) ||
		    rec.obj.comp >= POOL_COMP_MAX)
			return pool_err(p, -EBADMSG, "pool \"%s\": dataset record %zu is corrupt",
			                p->name, i + 1);
		struct pool_ds *ds = calloc(1, sizeof(*ds));
		if (!ds)
			return -ENOMEM;
		ds->r = rec;
		ds_attach(ds);
		p->ds[i] = ds;
	}
	return 0;
}

void pool_dir_free(struct pool *p)
{
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_ds *ds = p->ds[i];
		if (!ds)
			continue;
		pool_obj_discard(p, &ds->obj);
		pool_obj_discard(p, &ds->dl);
		free(ds);
	}
	free(p->ds);
	p->ds = NULL;
	p->nds = 0;
	pool_obj_discard(p, &p->dir);
	free(p->dir_image);
	p->dir_image = NULL;
}

/* Write changed records into the directory object, then sync it. */
int pool_dir_sync(struct pool *p)
{
	int err;

	if (p->nds > p->dir_image_recs) {
		uint8_t *img = realloc(p->dir_image, p->nds * REC);
		if (!img)
			return -ENOMEM;
		memset(img + p->dir_image_recs * REC, 0, (p->nds - p->dir_image_recs) * REC);
		p->dir_image = img;
		p->dir_image_recs = p->nds;
		err = pool_obj_set_size(p, &p->dir, p->nds * REC);
		if (err)
			return err;
	}
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_dsrec rec;
		memset(&rec, 0, REC);
		if (p->ds[i]) {
			rec = p->ds[i]->r;
			rec.obj = p->ds[i]->obj.d;
			rec.deadlist = p->ds[i]->dl.d;
		}
		if (memcmp(&rec, p->dir_image + i * REC, REC)) {
			err = pool_obj_write(p, &p->dir, &rec, REC, i * REC);
			if (err)
				return err;
			memcpy(p->dir_image + i * REC, &rec, REC);
		}
	}
	return pool_obj_sync(p, &p->dir);
}

struct pool_ds *pool_ds_get(struct pool *p, uint64_t id)
{
	if (id == 0 || id > p->nds)
		return NULL;
	return p->ds[id - 1];
}

struct pool_ds *pool_ds_head(struct pool *p, const struct pool_ds *ds)
{
	if (ds->r.type == POOL_DS_SNAPSHOT)
		return pool_ds_get(p, ds->r.head_id);
	return (struct pool_ds *)ds;
}

struct pool_ds *pool_ds_lookup(struct pool *p, const char *name, int hidden)
{
	const char *at = strchr(name, '@');
	size_t vlen = at ? (size_t)(at - name) : strlen(name);
	struct pool_ds *head = NULL;

	for (size_t i = 0; i < p->nds && !head; i++) {
		struct pool_ds *ds = p->ds[i];
		if (ds && ds->r.type == POOL_DS_VOLUME && strlen(ds->r.name) == vlen &&
		    !memcmp(ds->r.name, name, vlen) && (hidden || !(ds->r.flags & POOL_DSF_RECV)))
			head = ds;
	}
	if (!head || !at)
		return head;
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_ds *ds = p->ds[i];
		if (ds && ds->r.type == POOL_DS_SNAPSHOT && ds->r.head_id == head->r.id &&
		    !strcmp(ds->r.name, at + 1))
			return ds;
	}
	return NULL;
}

struct pool_ds *pool_ds_next(struct pool *p, const struct pool_ds *snap)
{
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_ds *ds = p->ds[i];
		if (ds && ds->r.prev_snap_id == snap->r.id &&
		    (ds->r.id == snap->r.head_id ||
		     (ds->r.type == POOL_DS_SNAPSHOT && ds->r.head_id == snap->r.head_id)))
			return ds;
	}
	return NULL;
}

int pool_ds_new(struct pool *p, struct pool_ds **out)
{
	struct pool_ds *ds = calloc(1, sizeof(*ds));
	size_t slot = p->nds;

	if (!ds)
		return -ENOMEM;
	for (size_t i = 0; i < p->nds; i++)
		if (!p->ds[i]) {
			slot = i;
			break;
		}
	/* a slot freed in the open txg is reused only after it committed free */
	if (slot < p->dir_image_recs &&
	    ((struct pool_dsrec *)(p->dir_image + slot * REC))->type != POOL_DS_FREE)
		slot = p->nds;
	if (slot == p->nds) {
		struct pool_ds **n = realloc(p->ds, (p->nds + 1) * sizeof(*n));
		if (!n) {
			free(ds);
			return -ENOMEM;
		}
		p->ds = n;
		p->ds[p->nds++] = NULL;
	}
	ds->r.id = slot + 1;
	ds->r.guid = pool_random64();
	ds->r.creation_time = pool_now();
	ds->r.creation_txg = p->txg;
	ds->r.deadlist.blocksize = POOL_META_BLOCKSIZE;
	ds->r.deadlist.nlevels = 1;
	ds->r.deadlist.type = POOL_BT_DEADLIST;
	ds->r.deadlist.comp = POOL_COMP_LZ4;
	ds->r.deadlist.root.lsize = POOL_META_BLOCKSIZE;
	ds->r.deadlist.root.type = POOL_BT_DEADLIST;
	ds_attach(ds);
	p->ds[slot] = ds;
	*out = ds;
	return 0;
}

/* Forget DS (its blocks have been dealt with by the caller). */
void pool_ds_remove(struct pool *p, struct pool_ds *ds)
{
	pool_obj_discard(p, &ds->obj);
	pool_obj_discard(p, &ds->dl);
	p->ds[ds->r.id - 1] = NULL;
	free(ds);
}

void pool_ds_fullname(struct pool *p, const struct pool_ds *ds, char *buf, size_t len)
{
	if (ds->r.type == POOL_DS_SNAPSHOT) {
		struct pool_ds *h = pool_ds_get(p, ds->r.head_id);
		snprintf(buf, len, "%s/%s@%s", p->name, h ? h->r.name : "?", ds->r.name);
	} else {
		snprintf(buf, len, "%s/%s", p->name, ds->r.name);
	}
}

void pool_ds_birth(struct pool *p, struct pool_ds *ds, const struct pool_bp *bp)
{
	uint64_t a = pool_bp_asize(bp);

	ds->r.referenced += a;
	ds->r.ref_logical += bp->lsize;
	ds->r.written += a;
	ds->r.used += a;
	ds->r.used_logical += bp->lsize;
}

int pool_ds_kill(struct pool *p, struct pool_ds *ds, const struct pool_bp *bp)
{
	uint64_t a = pool_bp_asize(bp);
	int err;

	ds->r.referenced -= a;
	ds->r.ref_logical -= bp->lsize;
	if (bp->birth > ds->r.prev_snap_txg) {
		pool_alloc_free(p, bp);
		ds->r.used -= a;
		ds->r.used_logical -= bp->lsize;
		ds->r.written -= a;
		return 0;
	}
	uint64_t off = ds->dl.d.size;
	err = pool_obj_set_size(p, &ds->dl, off + sizeof(*bp));
	if (!err)
		err = pool_obj_write(p, &ds->dl, bp, sizeof(*bp), off);
	return err;
}
