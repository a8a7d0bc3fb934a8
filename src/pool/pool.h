/*
 * pool.h - the zonevm pool: an embedded, ZFS-like copy-on-write volume store.
 *
 * This is the one public header of src/pool.  A pool lives in one file or
 * block device; it holds volumes (POOL/VOL), their snapshots (POOL/VOL@SNAP)
 * and clones.  Every block is checksummed and copied on write; changes are
 * grouped in transaction groups (txgs) that end with an uberblock written
 * into a ring kept at both ends of the device, so that a crash at any instant
 * leaves the last committed txg intact.  docs/POOL.md explains the model,
 * docs/POOL-FORMAT.md the bytes.
 *
 * Names given to this API are relative to the pool: "vm1", "vm1@monday".
 * A struct pool is used by one thread at a time; all state lives in it.
 * The one exception is vol_read_shared(), which several threads may call at
 * once while no other call on the pool runs (a readers-writer lock whose
 * read side it takes and whose write side every other call takes).
 *
 * Errors are negative errno values; pool_errmsg() then holds a message that
 * names the object and the cause.  The codes:
 *   -ENOENT        no such pool file, volume or snapshot
 *   -EEXIST        the name is taken
 *   -EINVAL        bad name syntax, size or property value (nothing changed)
 *   -EBUSY         the pool is open in another process ("in use by process
 *                  PID"), or a snapshot/volume has dependent clones
 *   -ENOSPC        the pool is full (checked before anything changes)
 *   -EIO           an I/O error, or a block whose checksum does not match
 *                  (the message names the volume, offset and block)
 *   -EBADMSG       not a pool / corrupted metadata or a corrupted stream
 *   -EXDEV         an incremental stream for another origin
 *   -ENOTSUP       an unsupported format or stream version
 *   -ECANCELED     the pool is poisoned: an earlier commit failed; close
 *                  it and open it again (the last committed txg is intact)
 */
#ifndef ZONEVM_POOL_H
#define ZONEVM_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct pool;
struct vol;

#define POOL_ERRMSG_MAX        512
#define POOL_DEFAULT_BLOCKSIZE (16u << 10)

/* Compression of a volume's new blocks. */
enum pool_compression { POOL_COMPRESS_OFF = 0, POOL_COMPRESS_LZ4 = 1, POOL_COMPRESS_ZSTD = 2 };

/*
 * Create a pool named NAME in PATH.  A missing file is created sparse with
 * SIZE bytes; an existing file or block device keeps its size (SIZE 0) or is
 * grown to SIZE.  ERR (may be NULL) receives a message on failure.
 */
int pool_create(const char *path, const char *name, uint64_t size, char *err, size_t errlen);

/* Open flags */
#define POOL_OPEN_RDONLY 0x1 /* no writes, no lock beyond a shared one */

/*
 * Open the pool in PATH, taking an exclusive lock (-EBUSY with the holder's
 * PID when another process has it).  Takes the newest uberblock whose
 * checksum and directory root verify.
 */
int pool_open(const char *path, int flags, struct pool **out, char *err, size_t errlen);

/* Erase the labels of the pool in PATH (it must not be in use). */
int pool_destroy(const char *path, char *err, size_t errlen);

/* Read the label of PATH without opening the pool: name and guid. */
int pool_probe(const char *path, char *name, size_t namelen, uint64_t *guid, char *err,
               size_t errlen);

/* Commit what is dirty, then close.  Returns the commit's status. */
int pool_close(struct pool *p);

/* Close without committing: everything since the last commit is lost. */
void pool_abandon(struct pool *p);

/* Commit the open transaction group now (durable when it returns). */
int pool_sync(struct pool *p);

const char *pool_name(const struct pool *p);
const char *pool_errmsg(const struct pool *p);

struct pool_arc_stats {
	uint64_t hits, misses, ghost_hits_mru, ghost_hits_mfu;
	uint64_t size, cap, mru_size, mfu_size, target_mru;
};

struct pool_status {
	uint64_t guid;
	uint64_t txg;  /* last committed */
	uint64_t size; /* allocatable bytes */
	uint64_t allocated;
	uint64_t deferred; /* freed, reusable after two more commits */
	uint64_t volumes, snapshots;
	uint64_t read_errors; /* checksum or I/O errors met since open */
	uint64_t created;
	uint64_t log_flushes, log_blocks; /* intent log, since open */
	/* the last completed scrub (time 0: never), kept in the uberblock */
	uint64_t scrub_txg, scrub_time, scrub_blocks, scrub_errors;
	struct pool_arc_stats arc;
};
int pool_get_status(struct pool *p, struct pool_status *st);

/*
 * Scrub: read every reachable block and verify its checksum.  The result
 * (blocks, damaged blocks, time) is committed into the pool unless it is
 * open read-only, and pool_get_status reports it from then on.
 */
struct pool_scrub_result {
	uint64_t blocks, bytes, errors;
};
typedef void (*pool_report_fn)(void *arg, const char *msg);
int pool_scrub(struct pool *p, pool_report_fn report, void *arg, struct pool_scrub_result *res);

/* ---- volumes, snapshots, clones ---- */

/* Check a pool-relative name: "VOL" (want_snap 0) or "VOL@SNAP" (1). */
int pool_name_check(const char *name, int want_snap);

int vol_create(struct pool *p, const char *name, uint64_t size, uint32_t blocksize,
               enum pool_compression comp);
/* Open a volume or a snapshot (read-only) for I/O. */
int vol_open(struct pool *p, const char *name, struct vol **out);
void vol_close(struct vol *v);
uint64_t vol_size(const struct vol *v);
uint32_t vol_blocksize(const struct vol *v);
int vol_read(struct vol *v, void *buf, size_t len, uint64_t off);
/*
 * vol_read for several threads at once (see the top of this file): the
 * same bytes, verified the same way, from dirty data, the cache or the
 * device, but it writes nothing of the pool except the cache (which has
 * its own lock).  -EAGAIN when it cannot: blocks staged for writing not
 * yet on the device, a block not cached (VOL_READ_CACHED: serve only from
 * memory, never wait for the device), or any error; then call vol_read
 * exclusively, which gives the error with its message and counts it.
 */
#define VOL_READ_CACHED 0x1
int vol_read_shared(struct vol *v, void *buf, size_t len, uint64_t off, int flags);
/* Write; all-zero blocks become holes.  Durable after pool_sync(). */
int vol_write(struct vol *v, const void *buf, size_t len, uint64_t off);
/*
 * Make every write so far durable (the guest's FLUSH): through the intent
 * log, one write and one fdatasync, without committing a txg.
 */
int vol_flush(struct vol *v);
/* Make the range [off, off+len) a hole (whole blocks; partial ones zeroed). */
int vol_punch(struct vol *v, uint64_t off, uint64_t len);

int vol_resize(struct pool *p, const char *name, uint64_t size);
int vol_snapshot(struct pool *p, const char *snapname);
int vol_clone(struct pool *p, const char *snapname, const char *newname);
/* Make clone NAME independent of its origin: the origin snapshot and the
 * snapshots before it move to NAME, and the origin's volume becomes a clone. */
int vol_promote(struct pool *p, const char *name);
/* Roll back to SNAP; RECURSIVE destroys newer snapshots first. */
int vol_rollback(struct pool *p, const char *snapname, int recursive);
/* Destroy a volume (RECURSIVE: with its snapshots) or a snapshot. */
int vol_destroy(struct pool *p, const char *name, int recursive);

enum vol_type { VOL_TYPE_VOLUME = 1, VOL_TYPE_SNAPSHOT = 2 };

struct vol_info {
	char name[256];   /* "VOL" or "VOL@SNAP" */
	char origin[256]; /* clone origin "VOL@SNAP" or "" */
	enum vol_type type;
	uint64_t size, used, referenced, written, logicalused, logicalreferenced;
	uint64_t creation, creation_txg, guid;
	uint32_t blocksize;
	enum pool_compression compression;
	uint32_t num_clones;
	int hidden; /* a receive temporary */
};
int vol_get_info(struct pool *p, const char *name, struct vol_info *info);
/* Call FN for each dataset (volumes in name order, each followed by its snapshots). */
int vol_iterate(struct pool *p, int include_hidden, int (*fn)(void *arg, const struct vol_info *),
                void *arg);
/* Set a property: "compression" (off|lz4|zstd) or "size". */
int vol_set(struct pool *p, const char *name, const char *prop, const char *value);

const char *pool_compression_name(enum pool_compression c);
int pool_compression_parse(const char *s, enum pool_compression *out);

/* ---- send / receive (src/pool/send.c, recv.c) ---- */

/*
 * Write a stream of SNAPNAME to FD; FROMSNAP (a snapshot name, or NULL for a
 * full stream) makes it incremental.  TOKEN (or NULL) resumes an interrupted
 * receive: it is what vol_recv_token() returned on the receiving side.
 */
int vol_send(struct pool *p, const char *snapname, const char *fromsnap, const char *token, int fd);
/*
 * Dirty bytes past which vol_write commits on its own (default 64 MiB).
 * UINT64_MAX: never; then a write that fails (a full pool, bad input)
 * leaves the disk unchanged, and the caller commits once at the end.
 */
void pool_set_dirty_max(struct pool *p, uint64_t bytes);

/* Called with the bytes of each stream record sent or received (NULL: off). */
void pool_set_progress(struct pool *p, void (*fn)(void *arg, uint64_t bytes), void *arg);
/* Receive a stream from FD into volume NAME (created, or updated incrementally). */
int vol_recv(struct pool *p, const char *name, int fd, int resumable);
/* The resume token of an interrupted receive into NAME (-ENOENT if none). */
int vol_recv_token(struct pool *p, const char *name, char *buf, size_t len);
/* Discard an interrupted receive into NAME. */
int vol_recv_abort(struct pool *p, const char *name);

/* ---- test hooks (tests only; never used by zonevm itself) ---- */

/*
 * After N more device writes, every write fails with -EIO as if the machine
 * had stopped; -1 disables.  MODE: POOL_TEST_TORN cuts the Nth write in
 * half; POOL_TEST_LOST also undoes, at the stop, a random part of the
 * writes since the last flush (a volatile write cache losing power).
 */
#define POOL_TEST_TORN 1
#define POOL_TEST_LOST 2
void pool_test_write_limit(struct pool *p, long n, int mode);

#endif
