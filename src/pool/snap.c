/*
 * snap.c - snapshots, clones, rollback and destroy: the deadlist rule.
 *
 * A snapshot copies its volume's tree root (O(1)) and takes over the
 * volume's deadlist; the volume starts an empty one and remembers the
 * snapshot as prev_snap.  A clone is a new volume whose root is a
 * snapshot's root and whose prev_snap is that snapshot (its origin).
 *
 * Destroying snapshot S, with P = S.prev_snap and N the dataset after S
 * (the next snapshot, or the volume itself) - as ZFS's
 * dsl_destroy_snapshot_sync:
 *   - each bp on N's deadlist born after P's txg was held by S alone (born
 *     after P, killed before N): free it, charge it off the volume's used;
 *   - the rest stay on N's deadlist (P still holds them), joined by S's
 *     deadlist (blocks P holds that S had already dropped);
 *   - N.prev_snap = P; N.written grows by what S wrote that N still holds.
 * Destroying a volume with no snapshots frees every block born after its
 * prev_snap_txg (its origin's txg for a clone, else all), pruning the walk
 * at older subtrees.  Every operation here commits first (so nothing is
 * dirty), validates everything, then changes memory and commits; an error
 * after the first change poisons the pool, never the disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

static int free_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	struct pool_ds *head = arg;

	if (pool_bp_is_hole(bp))
		return 0;
	if (head) {
		head->r.used -= pool_bp_asize(bp);
		head->r.used_logical -= bp->lsize;
	}
	pool_alloc_free(p, bp);
	return 0;
}

/* Free every block of a metadata tree (a deadlist). */
static int free_tree(struct pool *p, struct pool_obj *o)
{
	int err = pool_obj_walk(p, &o->d, 0, free_fn, NULL);

	pool_obj_discard(p, o);
	return err;
}

static int dl_load(struct pool *p, struct pool_obj *dl, struct pool_bp **out, size_t *n)
{
	*n = dl->d.size / sizeof(struct pool_bp);
	*out = malloc((*n ? *n : 1) * sizeof(struct pool_bp));
	if (!*out)
		return -ENOMEM;
	int err = *n ? pool_obj_read(p, dl, *out, *n * sizeof(struct pool_bp), 0) : 0;
	if (err)
		free(*out);
	return err;
}

/* Replace the deadlist DL by N entries. */
static int dl_replace(struct pool *p, struct pool_obj *dl, const struct pool_bp *v, size_t n)
{
	int err = free_tree(p, dl);

	if (err)
		return err;
	memset(&dl->d.root, 0, sizeof(dl->d.root));
	dl->d.root.lsize = POOL_META_BLOCKSIZE;
	dl->d.root.type = POOL_BT_DEADLIST;
	dl->d.nlevels = 1;
	dl->d.size = n * sizeof(*v);
	return n ? pool_obj_write(p, dl, v, n * sizeof(*v), 0) : 0;
}

int pool_snap_unique(struct pool *p, struct pool_ds *snap, uint64_t *used, uint64_t *logical)
{
	struct pool_ds *next = pool_ds_next(p, snap);
	struct pool_bp *v;
	size_t n;
	int err;

	*used = *logical = 0;
	if (!next)
		return 0;
	err = dl_load(p, &next->dl, &v, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		if (v[i].birth > snap->r.prev_snap_txg) {
			*used += pool_bp_asize(&v[i]);
			*logical += v[i].lsize;
		}
	free(v);
	return 0;
}

int pool_snap_destroy_one(struct pool *p, struct pool_ds *s)
{
	struct pool_ds *next = pool_ds_next(p, s), *head = pool_ds_head(p, s);
	struct pool_bp *nv, *sv, *all;
	size_t nn, sn, kept = 0;
	uint64_t freed = 0;
	int err;

	if (!next || !head)
		return pool_err(p, -EBADMSG, "pool \"%s\": snapshot %llu has no successor", p->name,
		                (unsigned long long)s->r.id);
	err = dl_load(p, &next->dl, &nv, &nn);
	if (err)
		return err;
	err = dl_load(p, &s->dl, &sv, &sn);
	if (err) {
		free(nv);
		return err;
	}
	all = malloc((nn + sn + 1) * sizeof(*all));
	if (!all) {
		free(nv);
		free(sv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nn; i++) {
		if (nv[i].birth > s->r.prev_snap_txg) {
			freed += pool_bp_asize(&nv[i]);
			free_fn(p, head, &nv[i], 0, 0);
		} else {
			all[kept++] = nv[i];
		}
	}
	memcpy(all + kept, sv, sn * sizeof(*sv));
	err = dl_replace(p, &next->dl, all, kept + sn);
	if (!err)
		err = free_tree(p, &s->dl);
	free(nv);
	free(sv);
	free(all);
	if (err)
		return err;
	next->r.written = next->r.written + s->r.written - freed;
	next->r.prev_snap_id = s->r.prev_snap_id;
	next->r.prev_snap_txg = s->r.prev_snap_txg;
	pool_ds_remove(p, s);
	return 0;
}

int pool_vol_destroy_head(struct pool *p, struct pool_ds *h)
{
	struct pool_ds *origin = pool_ds_get(p, h->r.origin_id);
	int err;

	err = pool_obj_walk(p, &h->obj.d, h->r.prev_snap_txg, free_fn, h);
	if (!err)
		err = free_tree(p, &h->dl);
	if (err)
		return err;
	if (origin && origin->r.num_clones)
		origin->r.num_clones--;
	pool_ds_remove(p, h);
	return 0;
}

int pool_vol_rollback_to(struct pool *p, struct pool_ds *h, struct pool_ds *s)
{
	uint8_t comp = h->obj.d.comp;
	int err;

	pool_obj_discard(p, &h->obj);
	err = pool_obj_walk(p, &h->obj.d, s->r.creation_txg, free_fn, h);
	if (!err)
		err = dl_replace(p, &h->dl, NULL, 0);
	if (err)
		return err;
	h->obj.d = s->obj.d;
	h->obj.d.comp = comp;
	h->r.referenced = s->r.referenced;
	h->r.ref_logical = s->r.ref_logical;
	h->r.written = 0;
	return 0;
}

/* Append "POOL/NAME" of every clone of S to BUF. */
static void list_clones(struct pool *p, const struct pool_ds *s, char *buf, size_t len)
{
	for (size_t i = 0; i < p->nds; i++) {
		struct pool_ds *c = p->ds[i];
		if (c && c->r.type == POOL_DS_VOLUME && c->r.origin_id == s->r.id)
			pool_strlist_add(buf, len, "%s/%s", p->name, c->r.name);
	}
}

/* Validate a command on NAME: commit, then find it. */
static int snap_prepare(struct pool *p, const char *name, int want_snap, struct pool_ds **out)
{
	int err = pool_check_writable(p);

	if (!err)
		err = pool_txg_commit(p);
	if (err)
		return err;
	if (pool_name_check(name, want_snap))
		return pool_err(p, -EINVAL, "invalid %s name \"%s/%s\"",
		                want_snap == 1 ? "snapshot" : "volume", p->name, name);
	*out = pool_ds_lookup(p, name, 0);
	if (!*out)
		return pool_err(p, -ENOENT, "no such %s \"%s/%s\"",
		                strchr(name, '@') ? "snapshot" : "volume", p->name, name);
	return 0;
}

static int finish(struct pool *p, int err)
{
	if (err) {
		p->poisoned = err;
		return err;
	}
	return pool_txg_commit(p);
}

int vol_snapshot(struct pool *p, const char *snapname)
{
	char vol[POOL_DS_NAME_MAX + 1];
	struct pool_ds *h, *s;
	const char *at = strchr(snapname, '@');
	int err;

	if (pool_name_check(snapname, 1))
		return pool_err(p, -EINVAL, "invalid snapshot name \"%s/%s\"", p->name, snapname);
	snprintf(vol, sizeof(vol), "%.*s", (int)(at - snapname), snapname);
	if ((err = snap_prepare(p, vol, 0, &h)) != 0)
		return err;
	if (pool_ds_lookup(p, snapname, 0))
		return pool_err(p, -EEXIST, "snapshot \"%s/%s\" already exists", p->name, snapname);
	err = pool_snap_create(p, h, at + 1, &s);
	return err ? err : finish(p, 0);
}

/* Snapshot H (which has nothing dirty) as NAME, in memory. */
int pool_snap_create(struct pool *p, struct pool_ds *h, const char *name, struct pool_ds **out)
{
	struct pool_ds *s;
	int err = pool_ds_new(p, &s);

	if (err)
		return err;
	s->r.type = POOL_DS_SNAPSHOT;
	s->r.head_id = h->r.id;
	snprintf(s->r.name, sizeof(s->r.name), "%s", name);
	s->obj.d = h->obj.d;
	s->dl.d = h->dl.d;
	s->r.prev_snap_id = h->r.prev_snap_id;
	s->r.prev_snap_txg = h->r.prev_snap_txg;
	s->r.creation_txg = p->txg;
	s->r.referenced = h->r.referenced;
	s->r.ref_logical = h->r.ref_logical;
	s->r.written = h->r.written;
	memset(&h->dl.d.root, 0, sizeof(h->dl.d.root));
	h->dl.d.root.lsize = POOL_META_BLOCKSIZE;
	h->dl.d.root.type = POOL_BT_DEADLIST;
	h->dl.d.nlevels = 1;
	h->dl.d.size = 0;
	h->r.prev_snap_id = s->r.id;
	h->r.prev_snap_txg = p->txg;
	h->r.written = 0;
	*out = s;
	return 0;
}

int vol_clone(struct pool *p, const char *snapname, const char *newname)
{
	struct pool_ds *s, *c;
	int err;

	if ((err = snap_prepare(p, snapname, 1, &s)) != 0)
		return err;
	if (pool_name_check(newname, 0))
		return pool_err(p, -EINVAL, "invalid volume name \"%s/%s\"", p->name, newname);
	if (pool_ds_lookup(p, newname, 1))
		return pool_err(p, -EEXIST, "volume \"%s/%s\" already exists", p->name, newname);
	err = pool_clone_new(p, s, newname, &c);
	return err ? err : finish(p, 0);
}

/* A new volume NAME whose origin is snapshot S, in memory (O(1)). */
int pool_clone_new(struct pool *p, struct pool_ds *s, const char *name, struct pool_ds **out)
{
	struct pool_ds *c;
	int err = pool_ds_new(p, &c);

	if (err)
		return err;
	c->r.type = POOL_DS_VOLUME;
	snprintf(c->r.name, sizeof(c->r.name), "%s", name);
	c->obj.d = s->obj.d;
	c->r.origin_id = s->r.id;
	c->r.prev_snap_id = s->r.id;
	c->r.prev_snap_txg = s->r.creation_txg;
	c->r.referenced = s->r.referenced;
	c->r.ref_logical = s->r.ref_logical;
	s->r.num_clones++;
	*out = c;
	return 0;
}

struct promote_ctx {
	uint64_t *seen;
	uint64_t bytes, logical;
};

static int promote_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level,
                      uint64_t blkid)
{
	struct promote_ctx *c = arg;

	if (pool_bp_is_hole(bp))
		return 0;
	if ((c->seen[bp->addr / 64] >> (bp->addr % 64)) & 1)
		return 1;
	c->seen[bp->addr / 64] |= 1ull << (bp->addr % 64);
	c->bytes += pool_bp_asize(bp);
	c->logical += bp->lsize;
	return 0;
}

/*
 * Promote clone C of snapshot S of volume V: S and V's snapshots before it
 * move to C, and V becomes a clone of S.  Deadlists stay where they are
 * (each is relative to its dataset's prev_snap, which does not change);
 * what moves is the charge for the blocks those snapshots hold that were
 * born in V's own lineage - found by walking them (not O(1), as in ZFS).
 */
int vol_promote(struct pool *p, const char *name)
{
	char clash[POOL_ERRMSG_MAX / 2] = "";
	struct promote_ctx c = {0};
	struct pool_ds *cl, *s, *v, *x, *vo;
	int err;

	if ((err = snap_prepare(p, name, 0, &cl)) != 0)
		return err;
	s = pool_ds_get(p, cl->r.origin_id);
	v = s ? pool_ds_head(p, s) : NULL;
	if (!s || !v)
		return pool_err(p, -EINVAL, "%s/%s is not a clone", p->name, name);
	for (x = s; x && x->r.type == POOL_DS_SNAPSHOT && x->r.head_id == v->r.id;
	     x = pool_ds_get(p, x->r.prev_snap_id)) {
		for (size_t i = 0; i < p->nds; i++)
			if (p->ds[i] && p->ds[i]->r.type == POOL_DS_SNAPSHOT &&
			    p->ds[i]->r.head_id == cl->r.id && !strcmp(p->ds[i]->r.name, x->r.name))
				pool_strlist_add(clash, sizeof(clash), "%s/%s@%s", p->name, name,
				                 x->r.name);
	}
	if (clash[0])
		return pool_err(p, -EEXIST, "cannot promote %s/%s: snapshot names clash: %s",
		                p->name, name, clash);
	vo = pool_ds_get(p, v->r.origin_id);
	c.seen = calloc((p->nsectors + 63) / 64, sizeof(uint64_t));
	if (!c.seen)
		return -ENOMEM;
	for (x = s; !err && x && x->r.type == POOL_DS_SNAPSHOT && x->r.head_id == v->r.id;
	     x = pool_ds_get(p, x->r.prev_snap_id))
		err = pool_obj_walk(p, &x->obj.d, vo ? vo->r.creation_txg : 0, promote_fn, &c);
	free(c.seen);
	if (err)
		return err;
	for (x = s; x && x->r.type == POOL_DS_SNAPSHOT && x->r.head_id == v->r.id;) {
		struct pool_ds *prev = pool_ds_get(p, x->r.prev_snap_id);
		x->r.head_id = cl->r.id;
		x = prev;
	}
	cl->r.origin_id = v->r.origin_id;
	v->r.origin_id = s->r.id;
	v->r.used -= c.bytes;
	v->r.used_logical -= c.logical;
	cl->r.used += c.bytes;
	cl->r.used_logical += c.logical;
	return finish(p, 0);
}

int vol_rollback(struct pool *p, const char *snapname, int recursive)
{
	char newer[POOL_ERRMSG_MAX / 2] = "", clones[POOL_ERRMSG_MAX / 2] = "";
	struct pool_ds *s, *h, *x;
	int err;

	if ((err = snap_prepare(p, snapname, 1, &s)) != 0)
		return err;
	h = pool_ds_head(p, s);
	for (x = pool_ds_get(p, h->r.prev_snap_id); x && x != s;
	     x = pool_ds_get(p, x->r.prev_snap_id)) {
		pool_strlist_add(newer, sizeof(newer), "%s/%s@%s", p->name, h->r.name, x->r.name);
		list_clones(p, x, clones, sizeof(clones));
	}
	if (newer[0] && !recursive)
		return pool_err(p, -EBUSY,
		                "cannot roll back to %s/%s: newer snapshots exist: %s (use -r)",
		                p->name, snapname, newer);
	if (clones[0])
		return pool_err(p, -EBUSY,
		                "cannot roll back to %s/%s: newer snapshots have clones: %s",
		                p->name, snapname, clones);
	while (!err && h->r.prev_snap_id != s->r.id)
		err = pool_snap_destroy_one(p, pool_ds_get(p, h->r.prev_snap_id));
	if (!err)
		err = pool_vol_rollback_to(p, h, s);
	return finish(p, err);
}

int vol_destroy(struct pool *p, const char *name, int recursive)
{
	char buf[POOL_ERRMSG_MAX / 2] = "", snaps[POOL_ERRMSG_MAX / 2] = "";
	struct pool_ds *ds, *x;
	int err;

	if ((err = snap_prepare(p, name, -1, &ds)) != 0)
		return err;
	if (ds->r.type == POOL_DS_SNAPSHOT) {
		list_clones(p, ds, buf, sizeof(buf));
		if (buf[0])
			return pool_err(p, -EBUSY,
			                "cannot destroy %s/%s: it has dependent clones: %s",
			                p->name, name, buf);
		return finish(p, pool_snap_destroy_one(p, ds));
	}
	for (x = pool_ds_get(p, ds->r.prev_snap_id); x && x->r.head_id == ds->r.id;
	     x = pool_ds_get(p, x->r.prev_snap_id)) {
		pool_strlist_add(snaps, sizeof(snaps), "%s/%s@%s", p->name, ds->r.name, x->r.name);
		list_clones(p, x, buf, sizeof(buf));
	}
	if (buf[0])
		return pool_err(p, -EBUSY,
		                "cannot destroy %s/%s: its snapshots have dependent clones: %s",
		                p->name, name, buf);
	if (snaps[0] && !recursive)
		return pool_err(p, -EBUSY, "cannot destroy %s/%s: it has snapshots: %s (use -r)",
		                p->name, name, snaps);
	while (!err && (x = pool_ds_get(p, ds->r.prev_snap_id)) && x->r.head_id == ds->r.id)
		err = pool_snap_destroy_one(p, x);
	if (!err)
		err = pool_vol_destroy_head(p, ds);
	return finish(p, err);
}
