/*
 * vol.c - volumes: names, create, I/O, resize, properties, listing.
 *
 * A volume is a dataset record plus its block tree (tree.c).  Writes land
 * in dirty leaves and reach the disk at the next commit (pool_sync, a
 * mutating command, or when dirty data passes dirty_max); space for them is
 * reserved before anything changes, so a full pool is reported by the write
 * that would not fit, never by a commit.  Every function that changes the
 * directory commits before it returns.  Snapshots and clones are snap.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

static int valid_component(const char *s, size_t n)
{
	if (n == 0 || n > 100)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	      (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!memchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:",
		            s[i], 66))
			return 0;
	return 1;
}

int pool_name_check(const char *name, int want_snap)
{
	const char *at = strchr(name, '@');

	if (want_snap == 1 && !at)
		return -EINVAL;
	if (want_snap == 0 && at)
		return -EINVAL;
	if (!at)
		return valid_component(name, strlen(name)) ? 0 : -EINVAL;
	if (strchr(at + 1, '@'))
		return -EINVAL;
	return valid_component(name, (size_t)(at - name)) && valid_component(at + 1, strlen(at + 1))
	           ? 0
	           : -EINVAL;
}

static const char *const comp_names[] = {"off", "lz4", "zstd"};

const char *pool_compression_name(enum pool_compression c)
{
	return (unsigned)c < 3 ? comp_names[c] : "?";
}

int pool_compression_parse(const char *s, enum pool_compression *out)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, comp_names[i])) {
			*out = (enum pool_compression)i;
			return 0;
		}
	if (!strcmp(s, "on")) {
		*out = POOL_COMPRESS_LZ4;
		return 0;
	}
	return -EINVAL;
}

/* Look up NAME for a command; sets the message when it is missing. */
static int vol_find(struct pool *p, const char *name, int want_snap, struct pool_ds **out)
{
	if (pool_name_check(name, want_snap))
		return pool_err(p, -EINVAL, "invalid %s name \"%s/%s\"",
		                want_snap == 1 ? "snapshot" : "volume", p->name, name);
	*out = pool_ds_lookup(p, name, 0);
	if (!*out)
		return pool_err(p, -ENOENT, "no such %s \"%s/%s\"",
		                strchr(name, '@') ? "snapshot" : "volume", p->name, name);
	return 0;
}

int vol_create(struct pool *p, const char *name, uint64_t size, uint32_t blocksize,
               enum pool_compression comp)
{
	struct pool_ds *ds;
	int err = pool_check_writable(p);

	if (err)
		return err;
	if (pool_name_check(name, 0))
		return pool_err(p, -EINVAL, "invalid volume name \"%s/%s\"", p->name, name);
	if (blocksize < 4096 || blocksize > 131072 || (blocksize & (blocksize - 1)))
		return pool_err(p, -EINVAL, "block size %u is not a power of two from 4K to 128K",
		                blocksize);
	if ((unsigned)comp > POOL_COMPRESS_ZSTD)
		return pool_err(p, -EINVAL, "unknown compression %d", comp);
	if (size == 0 || size % blocksize)
		return pool_err(p, -EINVAL,
		                "volume size %llu is not a multiple of the block size %u",
		                (unsigned long long)size, blocksize);
	if (size / blocksize > (1ull << (POOL_BP_PER_IND_SH * (POOL_MAX_LEVELS - 1))))
		return pool_err(p, -EINVAL, "volume size %llu is too large",
		                (unsigned long long)size);
	if (pool_ds_lookup(p, name, 1))
		return pool_err(p, -EEXIST, "volume \"%s/%s\" already exists", p->name, name);
	err = pool_vol_new(p, name, size, blocksize, comp, &ds);
	if (err)
		return err;
	return pool_txg_commit(p);
}

int pool_vol_new(struct pool *p, const char *name, uint64_t size, uint32_t blocksize, int comp,
                 struct pool_ds **out)
{
	struct pool_ds *ds;
	int err = pool_ds_new(p, &ds);

	if (err)
		return err;
	ds->r.type = POOL_DS_VOLUME;
	snprintf(ds->r.name, sizeof(ds->r.name), "%s", name);
	ds->obj.d.size = size;
	ds->obj.d.blocksize = blocksize;
	ds->obj.d.nlevels = 1;
	ds->obj.d.type = POOL_BT_VOLDATA;
	ds->obj.d.comp = (uint8_t)comp;
	ds->obj.d.root.lsize = blocksize;
	ds->obj.d.root.type = POOL_BT_VOLDATA;
	*out = ds;
	return 0;
}

int vol_open(struct pool *p, const char *name, struct vol **out)
{
	struct pool_ds *ds;
	int err = vol_find(p, name, -1, &ds);

	if (err)
		return err;
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->p = p;
	(*out)->id = ds->r.id;
	return 0;
}

void vol_close(struct vol *v)
{
	free(v);
}

static struct pool_ds *vol_ds(struct vol *v)
{
	struct pool_ds *ds = pool_ds_get(v->p, v->id);

	if (!ds)
		pool_err(v->p, -ENOENT, "volume was destroyed");
	return ds;
}

uint64_t vol_size(const struct vol *v)
{
	struct pool_ds *ds = pool_ds_get(v->p, v->id);

	return ds ? ds->obj.d.size : 0;
}

uint32_t vol_blocksize(const struct vol *v)
{
	struct pool_ds *ds = pool_ds_get(v->p, v->id);

	return ds ? ds->obj.d.blocksize : 0;
}

static int range_check(struct pool *p, struct pool_ds *ds, size_t len, uint64_t off)
{
	char n[300];

	if (off > ds->obj.d.size || len > ds->obj.d.size - off) {
		pool_ds_fullname(p, ds, n, sizeof(n));
		return pool_err(p, -EINVAL, "%s: range %llu+%zu is past the end (%llu bytes)", n,
		                (unsigned long long)off, len, (unsigned long long)ds->obj.d.size);
	}
	return 0;
}

int vol_read(struct vol *v, void *buf, size_t len, uint64_t off)
{
	struct pool *p = v->p;
	struct pool_ds *ds = vol_ds(v);
	int err;

	if (!ds)
		return -ENOENT;
	if ((err = range_check(p, ds, len, off)) != 0)
		return err;
	err = pool_obj_read(p, &ds->obj, buf, len, off);
	if (err == -EIO) {
		char n[300], cause[POOL_ERRMSG_MAX];
		pool_ds_fullname(p, ds, n, sizeof(n));
		snprintf(cause, sizeof(cause), "%s", p->errmsg);
		pool_err(p, err, "%s: read at offset %llu: %s", n,
		         (unsigned long long)p->err_offset, cause);
	}
	return err;
}

int vol_read_shared(struct vol *v, void *buf, size_t len, uint64_t off, int flags)
{
	struct pool_ds *ds = pool_ds_get(v->p, v->id);

	if (!ds)
		return -EAGAIN;
	return pool_obj_read_shared(v->p, &ds->obj, buf, len, off, flags & VOL_READ_CACHED);
}

static int vol_writable(struct vol *v, struct pool_ds **out)
{
	struct pool *p = v->p;
	struct pool_ds *ds = vol_ds(v);
	char n[300];
	int err;

	if (!ds)
		return -ENOENT;
	if ((err = pool_check_writable(p)) != 0)
		return err;
	if (ds->r.type == POOL_DS_SNAPSHOT) {
		pool_ds_fullname(p, ds, n, sizeof(n));
		return pool_err(p, -EROFS, "%s is a snapshot (read-only)", n);
	}
	*out = ds;
	return 0;
}

int vol_write(struct vol *v, const void *buf, size_t len, uint64_t off)
{
	struct pool *p = v->p;
	struct pool_ds *ds;
	int err;

	if ((err = vol_writable(v, &ds)) != 0)
		return err;
	if ((err = range_check(p, ds, len, off)) != 0)
		return err;
	if (pool_alloc_reserve_check(p, len + ds->obj.d.blocksize)) {
		/* dirty data may be holding the reserve, unless the caller wants
		 * no commit but its own */
		err = p->dirty_max == UINT64_MAX ? 0 : pool_txg_commit(p);
		if (err)
			return err;
		if (pool_alloc_reserve_check(p, len + ds->obj.d.blocksize))
			return pool_err(p, -ENOSPC, "pool \"%s\" is full (%llu bytes free)",
			                p->name, (unsigned long long)pool_alloc_free_bytes(p));
	}
	err = pool_obj_write(p, &ds->obj, buf, len, off);
	if (err)
		return err;
	return pool_txg_maybe_commit(p);
}

int vol_punch(struct vol *v, uint64_t off, uint64_t len)
{
	struct pool *p = v->p;
	struct pool_ds *ds;
	uint8_t *zero;
	int err;

	if ((err = vol_writable(v, &ds)) != 0)
		return err;
	if ((err = range_check(p, ds, len, off)) != 0)
		return err;
	uint32_t bs = ds->obj.d.blocksize;
	uint64_t first = (off + bs - 1) / bs, end = (off + len) / bs;
	zero = calloc(1, bs);
	if (!zero)
		return -ENOMEM;
	if (first >= end) { /* within one block */
		err = pool_obj_write(p, &ds->obj, zero, len, off);
	} else {
		if (off < first * bs)
			err = pool_obj_write(p, &ds->obj, zero, first * bs - off, off);
		if (!err && off + len > end * bs)
			err = pool_obj_write(p, &ds->obj, zero, off + len - end * bs, end * bs);
		if (!err)
			err = pool_obj_punch_blocks(p, &ds->obj, first, end - 1);
	}
	free(zero);
	return err;
}

int vol_resize(struct pool *p, const char *name, uint64_t size)
{
	struct pool_ds *ds;
	int err = pool_check_writable(p);

	if (err || (err = vol_find(p, name, 0, &ds)) != 0)
		return err;
	uint32_t bs = ds->obj.d.blocksize;
	if (size == 0 || size % bs)
		return pool_err(p, -EINVAL,
		                "volume size %llu is not a multiple of the block size %u",
		                (unsigned long long)size, bs);
	if (size / bs > (1ull << (POOL_BP_PER_IND_SH * (POOL_MAX_LEVELS - 1))))
		return pool_err(p, -EINVAL, "volume size %llu is too large",
		                (unsigned long long)size);
	err = pool_obj_set_size(p, &ds->obj, size);
	if (err) {
		p->poisoned = err; /* a half-applied shrink is not the committed state */
		return err;
	}
	return pool_txg_commit(p);
}

static void fill_info(struct pool *p, struct pool_ds *ds, struct vol_info *vi)
{
	struct pool_ds *head = pool_ds_head(p, ds);

	memset(vi, 0, sizeof(*vi));
	if (ds->r.type == POOL_DS_SNAPSHOT) {
		snprintf(vi->name, sizeof(vi->name), "%s@%s", head ? head->r.name : "?",
		         ds->r.name);
		vi->type = VOL_TYPE_SNAPSHOT;
		if (pool_snap_unique(p, ds, &vi->used, &vi->logicalused))
			vi->used = vi->logicalused = 0;
	} else {
		snprintf(vi->name, sizeof(vi->name), "%s", ds->r.name);
		vi->type = VOL_TYPE_VOLUME;
		vi->used = ds->r.used;
		vi->logicalused = ds->r.used_logical;
		struct pool_ds *o = pool_ds_get(p, ds->r.origin_id);
		struct pool_ds *oh = o ? pool_ds_head(p, o) : NULL;
		if (o && oh)
			snprintf(vi->origin, sizeof(vi->origin), "%s@%s", oh->r.name, o->r.name);
	}
	vi->size = ds->obj.d.size;
	vi->referenced = ds->r.referenced;
	vi->logicalreferenced = ds->r.ref_logical;
	vi->written = ds->r.written;
	vi->creation = ds->r.creation_time;
	vi->creation_txg = ds->r.creation_txg;
	vi->guid = ds->r.guid;
	vi->blocksize = ds->obj.d.blocksize;
	vi->compression = (enum pool_compression)ds->obj.d.comp;
	vi->num_clones = ds->r.num_clones;
	vi->hidden = !!(ds->r.flags & POOL_DSF_RECV);
}

int vol_get_info(struct pool *p, const char *name, struct vol_info *info)
{
	struct pool_ds *ds;
	int err = vol_find(p, name, -1, &ds);

	if (err)
		return err;
	if (p->dirty_leaves && !p->rdonly && !p->poisoned && (err = pool_txg_commit(p)) != 0)
		return err;
	fill_info(p, ds, info);
	return 0;
}

static int cmp_ds(const void *a, const void *b)
{
	const struct pool_ds *x = *(struct pool_ds *const *)a, *y = *(struct pool_ds *const *)b;
	int c = strcmp(x->r.name, y->r.name);

	if (x->r.type != y->r.type)
		return x->r.type < y->r.type ? -1 : 1;
	if (x->r.type == POOL_DS_SNAPSHOT && x->r.creation_txg != y->r.creation_txg)
		return x->r.creation_txg < y->r.creation_txg ? -1 : 1;
	return c ? c : (x->r.id < y->r.id ? -1 : 1);
}

int vol_iterate(struct pool *p, int include_hidden, int (*fn)(void *arg, const struct vol_info *),
                void *arg)
{
	struct pool_ds **v = calloc(p->nds + 1, sizeof(*v));
	struct vol_info vi;
	size_t n = 0;
	int err = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && p->ds[i]->r.type == POOL_DS_VOLUME &&
		    (include_hidden || !(p->ds[i]->r.flags & POOL_DSF_RECV)))
			v[n++] = p->ds[i];
	qsort(v, n, sizeof(*v), cmp_ds);
	for (size_t i = 0; i < n && !err; i++) {
		struct pool_ds **s = calloc(p->nds + 1, sizeof(*s));
		size_t m = 0;
		if (!s) {
			err = -ENOMEM;
			break;
		}
		for (size_t j = 0; j < p->nds; j++)
			if (p->ds[j] && p->ds[j]->r.type == POOL_DS_SNAPSHOT &&
			    p->ds[j]->r.head_id == v[i]->r.id)
				s[m++] = p->ds[j];
		qsort(s, m, sizeof(*s), cmp_ds);
		fill_info(p, v[i], &vi);
		err = fn(arg, &vi);
		for (size_t j = 0; j < m && !err; j++) {
			fill_info(p, s[j], &vi);
			err = fn(arg, &vi);
		}
		free(s);
	}
	free(v);
	return err;
}

int vol_set(struct pool *p, const char *name, const char *prop, const char *value)
{
	struct pool_ds *ds;
	int err = pool_check_writable(p);

	if (err || (err = vol_find(p, name, -1, &ds)) != 0)
		return err;
	if (ds->r.type == POOL_DS_SNAPSHOT)
		return pool_err(p, -EINVAL, "cannot set \"%s\" on snapshot %s/%s", prop, p->name,
		                name);
	if (!strcmp(prop, "compression")) {
		enum pool_compression c;
		if (pool_compression_parse(value, &c))
			return pool_err(p, -EINVAL,
			                "compression must be off, lz4 or zstd, not \"%s\"", value);
		ds->obj.d.comp = (uint8_t)c;
		return pool_txg_commit(p);
	}
	if (!strcmp(prop, "size") || !strcmp(prop, "volsize"))
		return pool_err(p, -EINVAL, "use vol resize to change the size");
	static const char *const ro[] = {
	    "used",     "referenced", "written",   "logicalused",       "compressratio", "origin",
	    "creation", "guid",       "blocksize", "logicalreferenced", "type",          "name"};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		if (!strcmp(prop, ro[i]))
			return pool_err(p, -EINVAL, "property \"%s\" is read-only", prop);
	return pool_err(p, -EINVAL, "no such property \"%s\"", prop);
}
