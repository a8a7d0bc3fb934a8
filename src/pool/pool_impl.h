/*
 * pool_impl.h - the pool's in-memory structures, shared by the files of
 * src/pool and by nothing else (other folders include only pool.h).
 *
 * Layering, bottom up, one file each:
 *   blk.c    device I/O (write staging, the write-stop test hook) and one
 *            block: compress, checksum, allocate, write; read, verify
 *   alloc.c  sector bitmap, deferred frees, rebuild by traversal at open
 *   arc.c    the adaptive replacement cache of verified, decompressed blocks
 *   tree.c   an object's block tree: dirty leaves, sync (copy on write), walk
 *   dir.c    the dataset directory, names, birth/kill accounting
 *   txg.c    labels, the uberblock ring, commit order
 *   pool.c   create, open, close, lock, status, scrub
 *   vol.c    volume I/O, create, resize, properties
 *   snap.c   snapshot, clone, rollback, destroy (the deadlist rule)
 *   zil.c    the intent log: vol_flush without a commit, replay at open
 *   send.c, recv.c   the send stream (format in stream.h)
 *   tree_sync.c      the copy-on-write sync and walks of tree.c's trees
 */
#ifndef ZONEVM_POOL_IMPL_H
#define ZONEVM_POOL_IMPL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "format.h"
#include "pool.h"

/*
 * One dirty leaf of an object: blocksize bytes in DATA; or, for a volume
 * leaf written whole, the block already written ahead to the device (BP,
 * born in the open txg, in no tree until the commit puts it in; DATA is
 * NULL); or neither: a hole.
 */
struct pool_dbuf {
	uint64_t blkid;
	uint8_t *data;
	struct pool_bp bp; /* addr != 0: written ahead */
	int logged;        /* already in the intent log */
	struct pool_dbuf *next;
};

struct pool_ds;

/* An object (block tree) being read and changed. */
struct pool_obj {
	struct pool_objdesc d;
	struct pool_dbuf **tab; /* hash of dirty leaves by blkid */
	size_t tabsize, ndirty;
	struct pool_ds *ds; /* owner charged for births and kills; NULL = pool metadata */
};

/* A dataset: a volume or a snapshot, with its tree and deadlist. */
struct pool_ds {
	struct pool_dsrec r;
	struct pool_obj obj; /* the volume's blocks */
	struct pool_obj dl;  /* deadlist: killed block pointers, appended */
};

/* Deferred frees of one txg: sectors reusable once two more txgs commit. */
struct pool_defer {
	uint64_t *addr;
	uint32_t *nsec;
	size_t n, cap;
	uint64_t txg;
};

struct pool_arc;

struct pool {
	char name[POOL_NAME_MAX + 1];
	char path[PATH_MAX];
	int fd;
	int rdonly;
	uint64_t guid, devsize, created;

	uint64_t txg;            /* last committed; the open txg is txg + 1 */
	struct pool_ub ub;       /* last committed uberblock */
	struct pool_ub ub_scrub; /* scrub_* of a scrub not committed yet (time 0: none) */
	int ub_unflushed;        /* ub is written but not flushed yet (txg.c) */
	uint64_t next_id;
	struct pool_ds **ds; /* by id - 1; NULL = free slot */
	size_t nds;
	struct pool_obj dir;
	uint8_t *dir_image; /* the directory as last written, nds records */
	size_t dir_image_recs;

	/* allocator (alloc.c) */
	uint64_t *bitmap; /* one bit per sector, 1 = allocated */
	uint64_t nsectors, first_sector, end_sector, cursor;
	uint64_t alloc_sectors;
	struct pool_defer defer[3]; /* by txg % 3 */

	/* dirty data (tree.c, vol.c) */
	uint64_t dirty_bytes, dirty_max, dirty_leaves;
	uint64_t dirty_ahead; /* of dirty_bytes, leaves written ahead (allocated already) */
	int wbuf_stable;      /* callers' write buffers outlive the stage (recv.c) */
	uint64_t txg_blocks;  /* blocks written in the open txg */

	int poisoned;          /* an earlier commit failed: -ECANCELED until reopened */
	int walk_tolerant;     /* walks skip unreadable indirect blocks (open, scrub) */
	uint64_t walk_skipped; /* subtrees skipped so */
	uint64_t read_errors;
	uint64_t err_offset; /* byte offset of the leaf a failed object read stopped at */
	char errmsg[POOL_ERRMSG_MAX];

	long write_limit;       /* test hook: writes left before the "crash"; -1 = off */
	int write_torn;         /* POOL_TEST_TORN | POOL_TEST_LOST */
	struct pool_undo *undo; /* POOL_TEST_LOST: writes since the last flush */
	size_t nundo;
	uint64_t undo_seed;

	/* intent log (zil.c) */
	uint64_t zil_next; /* slot the next log block goes to; 0 = no log */
	uint64_t zil_seq;
	uint64_t *zil_used; /* slots written (or replayed) since the last commit */
	size_t zil_nused, zil_cap;
	uint64_t zil_flushes, zil_blocks;

	void (*progress)(void *arg, uint64_t bytes); /* send/recv progress */
	void *progress_arg;

	/* write combining (blk.c): blocks at consecutive sectors, one pwritev
	 * of dirty leaves in place and of other blocks copied into STAGE */
	uint8_t *stage;
	uint64_t stage_sec;
	size_t stage_len, stage_copied;
	struct iovec *stage_iov;
	int stage_niov;

	struct pool_arc *arc;
	uint8_t *scratch; /* compression output, 2 x 128K + bound */
	size_t scratch_len;
	void *lz4;     /* an LZ4_stream_t, initialised once, reset fast per block */
	int comp_miss; /* the last leaf did not compress: probe the next first */
};

struct vol {
	struct pool *p;
	uint64_t id;
};

/* pool.c */
int pool_err(struct pool *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int pool_check_writable(struct pool *p);
/* Append to a NUL-terminated string in BUF, ", " first if it is not empty. */
void pool_strlist_add(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t pool_now(void);
uint64_t pool_random64(void);
void pool_cksum(const void *buf, size_t len, uint64_t out[2]);

/* blk.c: device I/O */
struct iovec;
/* Step the N entries of IOV past DONE bytes written (after a short writev). */
void pool_iov_advance(struct iovec **iov, int *n, size_t done);
int pool_io_read(struct pool *p, void *buf, size_t len, uint64_t off);
int pool_io_write(struct pool *p, const void *buf, size_t len, uint64_t off);
int pool_io_flush(struct pool *p);

/* alloc.c */
int pool_alloc_init(struct pool *p);
void pool_alloc_fini(struct pool *p);
int pool_alloc(struct pool *p, uint32_t nsec, uint64_t *addr);
void pool_alloc_mark(struct pool *p, uint64_t addr, uint32_t nsec);
bool pool_alloc_is_set(const struct pool *p, uint64_t addr);
/* Free a block killed now: at once if born in the open txg, else deferred. */
void pool_alloc_free(struct pool *p, const struct pool_bp *bp);
void pool_alloc_txg_done(struct pool *p, uint64_t txg);
uint64_t pool_alloc_deferred(const struct pool *p);
uint64_t pool_alloc_free_bytes(const struct pool *p);
int pool_alloc_rebuild(struct pool *p, const struct pool_ub *ubs, int nub);
/* Whether BYTES more may be dirtied without risking a full pool at commit. */
int pool_alloc_reserve_check(struct pool *p, uint64_t bytes);

/*
 * Checksum comparison.  Fuzzing builds accept any checksum, so that the
 * fuzzer reaches the parsers behind them; nothing else defines this.
 */
static inline bool pool_cksum_eq(const uint64_t a[2], const uint64_t b[2])
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)a;
	(void)b;
	return true;
#else
	return a[0] == b[0] && a[1] == b[1];
#endif
}

static inline uint64_t pool_bp_asize(const struct pool_bp *bp)
{
	return bp->addr ? (((uint64_t)bp->psize + POOL_SECTOR - 1) & ~(uint64_t)(POOL_SECTOR - 1))
	                : 0;
}

static inline bool pool_bp_is_hole(const struct pool_bp *bp)
{
	return bp->addr == 0;
}

/* blk.c */
int pool_blk_write(struct pool *p, const void *data, uint32_t lsize, int comp, int type, int level,
                   struct pool_bp *bp);
/* Read and verify BP into BUF (bp->lsize bytes). */
/* Write out the blocks pool_blk_write staged (before their leaves' dirty
 * buffers are freed or changed; reads, flushes and log writes do it too). */
int pool_blk_stage_flush(struct pool *p);
int pool_blk_read(struct pool *p, const struct pool_bp *bp, void *buf);
/* The same for a block that is not a hole and missed the ARC (pool_arc_peek). */
int pool_blk_read_device(struct pool *p, const struct pool_bp *bp, void *buf);
/* The same without putting the block in the ARC. */
int pool_blk_read_uncached(struct pool *p, const struct pool_bp *bp, void *buf);
/* Read and verify without the cache and without decompressing into BUF. */
int pool_blk_verify(struct pool *p, const struct pool_bp *bp);
/*
 * A shared read (vol_read_shared: several threads, nothing else running on
 * the pool): bytes [OFF, OFF+LEN) of BP's block into BUF, from the ARC or,
 * unless CACHED_ONLY, from the device (verified, then cached).  Changes
 * nothing but the ARC: no message, no error count, no staging.  -EAGAIN
 * for a miss when CACHED_ONLY and for any failure (the caller retries
 * exclusively, which reports it).  *HIT: whether the ARC had it.
 */
int pool_blk_read_shared(struct pool *p, const struct pool_bp *bp, uint32_t off, uint32_t len,
                         void *buf, bool cached_only, bool *hit);
int pool_blk_init(struct pool *p);
void pool_blk_fini(struct pool *p);
bool pool_is_zero(const void *buf, size_t len);
void pool_blk_describe(const struct pool_bp *bp, char *buf, size_t len);

/* arc.c */
int pool_arc_create(struct pool *p, uint64_t cap);
void pool_arc_destroy(struct pool *p);
/* Copy a cached block into BUF; 0 if found, -ENOENT if not. */
int pool_arc_get(struct pool *p, const struct pool_bp *bp, void *buf);
/* The cached bytes of BP (a hit, as pool_arc_get), valid until the next
 * pool_arc_put; NULL on a miss.  Not for shared reads (another thread may
 * put): they use pool_arc_copy. */
const void *pool_arc_peek(struct pool *p, const struct pool_bp *bp);
/* Copy bytes [OFF, OFF+LEN) of a cached block into BUF under the cache's
 * lock; 0 if found, -ENOENT if not.  COUNT: a hit or miss in the stats. */
int pool_arc_copy(struct pool *p, const struct pool_bp *bp, size_t off, size_t len, void *buf,
                  bool count);
/* Add N hits to the stats (shared reads that succeeded, counted at the end). */
void pool_arc_count_hits(struct pool *p, uint64_t n);
void pool_arc_put(struct pool *p, const struct pool_bp *bp, const void *buf);
void pool_arc_stats(const struct pool *p, struct pool_arc_stats *st);

/* tree.c */
void pool_obj_init(struct pool_obj *o, const struct pool_objdesc *d, struct pool_ds *ds);
/* Drop the dirty leaves (blocks written ahead are freed). */
void pool_obj_discard(struct pool *p, struct pool_obj *o);
/* Forget the dirty leaves once a sync put them in the tree. */
void pool_obj_clean(struct pool *p, struct pool_obj *o);
/* Drop dirty leaf B of O (unlinked by the caller). */
void pool_dbuf_drop(struct pool *p, struct pool_obj *o, struct pool_dbuf *b);
int pool_obj_read(struct pool *p, struct pool_obj *o, void *buf, size_t len, uint64_t off);
/* pool_obj_read for vol_read_shared (same rules as pool_blk_read_shared). */
int pool_obj_read_shared(struct pool *p, struct pool_obj *o, void *buf, size_t len, uint64_t off,
                         bool cached_only);
int pool_obj_write(struct pool *p, struct pool_obj *o, const void *buf, size_t len, uint64_t off);
/* Make whole blocks [first, last] holes. */
int pool_obj_punch_blocks(struct pool *p, struct pool_obj *o, uint64_t first, uint64_t last);
int pool_obj_set_size(struct pool *p, struct pool_obj *o, uint64_t size);
int pool_obj_sync(struct pool *p, struct pool_obj *o);
/* Leaf pointer of block BLKID as committed (ignores dirty data). */
int pool_obj_leaf_bp(struct pool *p, const struct pool_objdesc *d, uint64_t blkid,
                     struct pool_bp *out);

/*
 * Visit the tree of D.  Subtrees whose birth is <= MINTXG are skipped, as
 * are never-written holes (birth 0).  FN sees every other pointer, parents
 * before children, with its level and the first leaf blkid it covers;
 * returning 1 skips the children, a negative value stops the walk.
 */
typedef int (*pool_walk_fn)(struct pool *p, void *arg, const struct pool_bp *bp, int level,
                            uint64_t blkid);
int pool_obj_walk(struct pool *p, const struct pool_objdesc *d, uint64_t mintxg, pool_walk_fn fn,
                  void *arg);
uint64_t pool_obj_nblocks(const struct pool_objdesc *d);

/* txg.c: labels and uberblocks */
int pool_label_write_new(struct pool *p);
int pool_label_read(int fd, uint64_t devsize, struct pool_label *out, char *err, size_t errlen);
/* Uberblocks that verify, newest first (at most N). */
int pool_ub_scan(struct pool *p, struct pool_ub *out, int n);
int pool_ub_write(struct pool *p, const struct pool_ub *ub);

/* dir.c */
int pool_dir_load(struct pool *p);
int pool_dir_sync(struct pool *p);
void pool_dir_free(struct pool *p);
struct pool_ds *pool_ds_get(struct pool *p, uint64_t id);
/* Find "VOL" or "VOL@SNAP"; hidden receive temporaries only when HIDDEN. */
struct pool_ds *pool_ds_lookup(struct pool *p, const char *name, int hidden);
int pool_ds_new(struct pool *p, struct pool_ds **out);
void pool_ds_remove(struct pool *p, struct pool_ds *ds);
void pool_ds_fullname(struct pool *p, const struct pool_ds *ds, char *buf, size_t len);
void pool_ds_birth(struct pool *p, struct pool_ds *ds, const struct pool_bp *bp);
int pool_ds_kill(struct pool *p, struct pool_ds *ds, const struct pool_bp *bp);
/* The dataset whose prev_snap is SNAP among SNAP's lineage (NULL if none). */
struct pool_ds *pool_ds_next(struct pool *p, const struct pool_ds *snap);
struct pool_ds *pool_ds_head(struct pool *p, const struct pool_ds *ds);

/* zil.c */
/* Commit: a slot for the next txg's log, and the obsolete log freed. */
uint64_t pool_zil_new_slot(struct pool *p);
void pool_zil_committed(struct pool *p, uint64_t new_slot);
/* Open: mark the valid chain of UB allocated; then replay it. */
void pool_zil_mark(struct pool *p, const struct pool_ub *ub);
int pool_zil_replay(struct pool *p);
void pool_zil_fini(struct pool *p);

/* txg.c */
int pool_txg_commit(struct pool *p);
int pool_txg_maybe_commit(struct pool *p);

/* vol.c */
int pool_vol_new(struct pool *p, const char *name, uint64_t size, uint32_t blocksize, int comp,
                 struct pool_ds **out);

/* send.c */
int pool_token_parse(const char *token, uint64_t *toguid, uint64_t *fromguid, uint64_t *off);
void pool_token_format(char *buf, size_t len, uint64_t toguid, uint64_t fromguid, uint64_t off);

/* snap.c */
int pool_snap_create(struct pool *p, struct pool_ds *h, const char *name, struct pool_ds **out);
int pool_clone_new(struct pool *p, struct pool_ds *s, const char *name, struct pool_ds **out);
int pool_snap_unique(struct pool *p, struct pool_ds *snap, uint64_t *used, uint64_t *logical);
int pool_snap_destroy_one(struct pool *p, struct pool_ds *snap);
int pool_vol_destroy_head(struct pool *p, struct pool_ds *head);
int pool_vol_rollback_to(struct pool *p, struct pool_ds *head, struct pool_ds *snap);

#endif
