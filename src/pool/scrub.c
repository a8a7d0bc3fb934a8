/*
 * scrub.c - read every reachable block once and verify its checksum.
 *
 * Walks the directory, then each dataset's tree and deadlist; a block
 * shared by several snapshots and clones is read once (a visited bitmap by
 * sector).  Each damaged block is reported with the dataset, the byte range
 * of the volume it covers and the block pointer; the walk does not descend
 * below a damaged indirect block (its children cannot be found), and counts
 * it as one error.  Scrub never repairs (one copy) and never writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

struct scrub_ctx {
	uint64_t *seen;
	const char *what;   /* "tank/vm1@s" or "directory" */
	const char *part;   /* "" or " deadlist" */
	uint32_t blocksize; /* 0 for metadata */
	pool_report_fn report;
	void *arg;
	struct pool_scrub_result *res;
};

static int scrub_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	struct scrub_ctx *c = arg;
	char msg[POOL_ERRMSG_MAX + 300];
	int err;

	if (pool_bp_is_hole(bp))
		return 0;
	if ((c->seen[bp->addr / 64] >> (bp->addr % 64)) & 1)
		return 1; /* verified through another dataset */
	c->seen[bp->addr / 64] |= 1ull << (bp->addr % 64);
	err = pool_blk_verify(p, bp);
	c->res->blocks++;
	c->res->bytes += bp->psize;
	if (!err)
		return 0;
	c->res->errors++;
	if (c->report) {
		if (c->blocksize) {
			uint64_t span = 1ull << (POOL_BP_PER_IND_SH * level);
			snprintf(msg, sizeof(msg), "%s%s: offset %llu (%s %llu bytes): %s", c->what,
			         c->part, (unsigned long long)(blkid * c->blocksize),
			         level ? "indirect block covering" : "data block of",
			         (unsigned long long)(span * c->blocksize), p->errmsg);
		} else {
			snprintf(msg, sizeof(msg), "%s%s: %s", c->what, c->part, p->errmsg);
		}
		c->report(c->arg, msg);
	}
	return 1;
}

int pool_scrub(struct pool *p, pool_report_fn report, void *arg, struct pool_scrub_result *res)
{
	struct scrub_ctx c = {.report = report, .arg = arg, .res = res};
	char name[300];
	int err = 0;

	memset(res, 0, sizeof(*res));
	if (p->dirty_leaves && !p->rdonly && !p->poisoned && (err = pool_txg_commit(p)) != 0)
		return err;
	c.seen = calloc((p->nsectors + 63) / 64, sizeof(uint64_t));
	if (!c.seen)
		return -ENOMEM;
	c.what = "directory";
	c.part = "";
	err = pool_obj_walk(p, &p->dir.d, 0, scrub_fn, &c);
	for (size_t i = 0; i < p->nds && err >= 0; i++) {
		struct pool_ds *ds = p->ds[i];
		if (!ds)
			continue;
		pool_ds_fullname(p, ds, name, sizeof(name));
		c.what = name;
		c.part = "";
		c.blocksize = ds->obj.d.blocksize;
		err = pool_obj_walk(p, &ds->obj.d, 0, scrub_fn, &c);
		if (err >= 0) {
			c.part = " deadlist";
			c.blocksize = 0;
			err = pool_obj_walk(p, &ds->dl.d, 0, scrub_fn, &c);
		}
	}
	free(c.seen);
	if (err < 0)
		return err;
	if (res->errors)
		return pool_err(p, -EIO, "pool \"%s\": scrub found %llu damaged blocks", p->name,
		                (unsigned long long)res->errors);
	p->errmsg[0] = 0;
	return 0;
}
