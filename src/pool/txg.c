/*
 * txg.c - committing a transaction group.
 *
 * The commit order is the whole crash-consistency argument:
 *
 *   1. sync every volume tree (new leaves, then new indirect blocks up to a
 *      new root; replaced blocks are killed, which may append to deadlists)
 *   2. sync every deadlist, then the directory (records now hold the new
 *      roots)                           -- all into sectors no committed
 *                                          uberblock of the last three uses
 *   3. fdatasync                        -- the new tree is durable
 *   4. write uberblock txg N into slot N % 32 of label 0, then of label 1
 *   5. fdatasync                        -- txg N is committed
 *   6. the intent log written since N-1 is obsolete (its slots are freed);
 *      frees deferred in txg N-2 become allocatable
 *
 * A crash before 4 completes leaves uberblock N-1 the newest that verifies,
 * and its tree untouched (step 2 writes only free sectors); a torn
 * uberblock fails its checksum.  Any error poisons the pool (LMDB's rule):
 * in-memory state is no longer the committed state, so every later call
 * returns -ECANCELED until the pool is closed and opened again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pool_impl.h"

static int txg_sync_all(struct pool *p)
{
	int err;

	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && (err = pool_obj_sync(p, &p->ds[i]->obj)) != 0)
			return err;
	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && (err = pool_obj_sync(p, &p->ds[i]->dl)) != 0)
			return err;
	return pool_dir_sync(p);
}

int pool_txg_commit(struct pool *p)
{
	struct pool_ub ub;
	int err;

	err = pool_check_writable(p);
	if (err)
		return err;
	p->errmsg[0] = 0;
	err = txg_sync_all(p);
	if (err)
		goto poison;
	if (p->txg_blocks == 0)
		return 0; /* nothing changed */
	err = pool_io_flush(p);
	if (err)
		goto poison;
	memset(&ub, 0, sizeof(ub));
	ub.magic = POOL_UB_MAGIC;
	ub.version = POOL_VERSION;
	ub.txg = p->txg + 1;
	ub.guid = p->guid;
	ub.time = pool_now();
	ub.dir = p->dir.d;
	ub.next_id = p->next_id;
	ub.zil_addr = pool_zil_new_slot(p); /* 0 when full: flushes then commit */
	pool_cksum(&ub, offsetof(struct pool_ub, cksum), ub.cksum);
	err = pool_ub_write(p, &ub);
	if (!err)
		err = pool_io_flush(p);
	if (err)
		goto poison;
	p->txg = ub.txg;
	p->ub = ub;
	p->txg_blocks = 0;
	pool_alloc_txg_done(p, p->txg); /* before new frees land in the same slot */
	pool_zil_committed(p, ub.zil_addr);
	return 0;
poison:
	p->poisoned = err;
	char cause[POOL_ERRMSG_MAX];
	snprintf(cause, sizeof(cause), "%s", p->errmsg[0] ? p->errmsg : strerror(-err));
	return pool_err(p, err, "commit of txg %llu failed: %s", (unsigned long long)(p->txg + 1),
	                cause);
}

int pool_txg_maybe_commit(struct pool *p)
{
	if (p->dirty_bytes < p->dirty_max)
		return 0;
	return pool_txg_commit(p);
}
