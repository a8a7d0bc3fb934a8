/*
 * blk.c - one block on the device: the raw I/O under it, compression, the
 * checksum, and the block pointer that describes it.
 *
 * pool_blk_write() compresses a leaf (when that saves at least 1/8),
 * allocates whole sectors, writes, and fills a block pointer with the
 * xxh128 of the stored bytes and the open txg as its birth.  pool_blk_read()
 * returns a block only after its checksum matched (or from the ARC, which
 * holds only verified blocks); a mismatch is -EIO with a message that names
 * the block.  This file never decides where a pointer is kept or when a
 * block is freed.
 *
 * Blocks written to consecutive sectors (the allocator's next fit makes
 * most of a commit consecutive) are staged and written with one pwritev:
 * leaves stored as they are straight from their dirty buffers, the rest
 * (compressed or indirect blocks) copied into the stage; any other I/O (a read, a flush, an
 * uberblock or log write) writes the stage out first, so ordering is exactly as if each block were
 * written at once.
 *
 * The test hook write_limit makes the device "stop" after N writes (each
 * later write fails with -EIO, the Nth optionally torn in half): a crash at
 * any instant, reproducibly.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <zstd.h>

#include "pool_impl.h"

#define SCRATCH_LEN   (2 * 131072 + 4096)
#define STAGE_LEN     (1u << 20)
#define STAGE_IOV     256
#define BLK_PROBE_LEN 4096u
#define STAGE_KICK    (256u << 10)

/*
 * xxh128 through libxxhash's run-time dispatch, which picks the widest
 * vector unit the CPU has (AVX-512 or AVX2 on x86-64): the same hash, about
 * 15 times faster on 16 KiB than the SSE2 code XXH_INLINE_ALL compiles to
 * at -O2 (41 vs 2.5 GB/s here), and it is computed for every block written,
 * read from the device, sent and received.
 */
void pool_cksum(const void *buf, size_t len, uint64_t out[2])
{
	XXH128_hash_t h = XXH3_128bits_dispatch(buf, len);

	out[0] = h.low64;
	out[1] = h.high64;
}

bool pool_is_zero(const void *buf, size_t len)
{
	const uint8_t *b = buf;
	const uint64_t *w = buf;
	size_t i;

	if (len % 8)
		return (len == 0 || (b[0] == 0 && !memcmp(b, b + 1, len - 1)));
	for (i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

static int raw_write(struct pool *p, const void *buf, size_t len, uint64_t off);

void pool_iov_advance(struct iovec **iov, int *n, size_t done)
{
	while (*n && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

/* Write IOV (N entries, LEN bytes) at OFF, resuming after short writes. */
static int raw_writev(struct pool *p, struct iovec *iov, int n, size_t len, uint64_t off)
{
	if (p->write_limit >= 0) { /* the crash hook counts (and tears) each block */
		for (int i = 0; i < n; off += iov[i].iov_len, i++) {
			int err = raw_write(p, iov[i].iov_base, iov[i].iov_len, off);
			if (err)
				return err;
		}
		return 0;
	}
	while (len) {
		ssize_t w = pwritev(p->fd, iov, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		len -= (size_t)w;
		off += (uint64_t)w;
		pool_iov_advance(&iov, &n, (size_t)w);
	}
	return 0;
}

/* Write the staged blocks out. */
int pool_blk_stage_flush(struct pool *p)
{
	size_t len = p->stage_len;
	int n = p->stage_niov;

	if (!len)
		return 0;
	p->stage_len = 0;
	p->stage_copied = 0;
	p->stage_niov = 0;
	int err = raw_writev(p, p->stage_iov, n, len, p->stage_sec * POOL_SECTOR);
	if (err) /* staged blocks may be in dirty leaves (written ahead) or a tree
	          * being synced already: memory no longer matches what can be read */
		p->poisoned = err;
	/* start writing a long run back now, so that the device works while
	 * the next leaves are compressed and checksummed, and the fdatasync
	 * of the commit waits for less (only a hint: errors are the flush's) */
	if (!err && len >= STAGE_KICK)
		sync_file_range(p->fd, (off_t)(p->stage_sec * POOL_SECTOR), (off_t)len,
		                SYNC_FILE_RANGE_WRITE);
	return err;
}

/*
 * Stage NSEC sectors for SEC, or write them when they cannot be staged.
 * BYREF: BUF stays as it is until pool_blk_stage_flush (a dirty leaf, kept
 * until its object's sync ends), so it is written from where it is rather
 * than copied into the stage.
 */
static int stage_write(struct pool *p, const void *buf, uint32_t nsec, uint64_t sec, int byref)
{
	size_t len = (size_t)nsec * POOL_SECTOR;
	int err = 0;

	if (!p->stage || p->write_limit >= 0) /* crash tests: every block a write point */
		return raw_write(p, buf, len, sec * POOL_SECTOR);
	if (p->stage_len && (sec != p->stage_sec + p->stage_len / POOL_SECTOR ||
	                     p->stage_len + len > STAGE_LEN || p->stage_niov == STAGE_IOV))
		err = pool_blk_stage_flush(p);
	if (err)
		return err;
	if (!p->stage_len)
		p->stage_sec = sec;
	if (!byref) {
		memcpy(p->stage + p->stage_copied, buf, len);
		buf = p->stage + p->stage_copied;
		p->stage_copied += len;
	}
	struct iovec *last = p->stage_niov ? &p->stage_iov[p->stage_niov - 1] : NULL;
	if (last && (const uint8_t *)last->iov_base + last->iov_len == buf)
		last->iov_len += len; /* copies follow each other in the stage */
	else
		p->stage_iov[p->stage_niov++] = (struct iovec){(void *)buf, len};
	p->stage_len += len;
	return 0;
}

/* pread LEN bytes exactly; -EIO past the end of the file (a lost block). */
static int io_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) /* past the end of a short file: the block is lost */
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int pool_io_read(struct pool *p, void *buf, size_t len, uint64_t off)
{
	int err = pool_blk_stage_flush(p);

	return err ? err : io_pread(p->fd, buf, len, off);
}

int pool_io_write(struct pool *p, const void *buf, size_t len, uint64_t off)
{
	int err = pool_blk_stage_flush(p);

	return err ? err : raw_write(p, buf, len, off);
}

/*
 * The crash hook's lost cache (POOL_TEST_LOST): each write since the last
 * flush is remembered with the bytes it replaced; at the stop each one is
 * undone or kept at random, newest first, as a volatile write cache that
 * loses power keeps what it likes of what was not flushed.
 */
struct pool_undo {
	uint64_t off;
	size_t len;
	uint8_t *old;
};

static void undo_forget(struct pool *p)
{
	for (size_t i = 0; i < p->nundo; i++)
		free(p->undo[i].old);
	free(p->undo);
	p->undo = NULL;
	p->nundo = 0;
}

static void undo_record(struct pool *p, size_t len, uint64_t off)
{
	struct pool_undo *u = realloc(p->undo, (p->nundo + 1) * sizeof(*u));
	uint8_t *old = malloc(len);

	if (!u || !old || pread(p->fd, old, len, (off_t)off) != (ssize_t)len)
		abort(); /* a test hook: no way to go on faithfully */
	p->undo = u;
	p->undo[p->nundo++] = (struct pool_undo){off, len, old};
}

static void undo_some(struct pool *p)
{
	for (size_t i = p->nundo; i-- > 0;) {
		p->undo_seed = p->undo_seed * 6364136223846793005ull + 1442695040888963407ull;
		if ((p->undo_seed >> 33) & 1)
			continue; /* this one reached the disk */
		if (pwrite(p->fd, p->undo[i].old, p->undo[i].len, (off_t)p->undo[i].off) !=
		    (ssize_t)p->undo[i].len)
			abort();
	}
	undo_forget(p);
}

static int raw_write(struct pool *p, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	if (p->write_limit == 0)
		return -EIO;
	if (p->write_limit > 0 && (p->write_torn & POOL_TEST_LOST))
		undo_record(p, len, off);
	if (p->write_limit > 0 && --p->write_limit == 0 && (p->write_torn & POOL_TEST_TORN))
		len /= 2; /* the last write before the "crash" is torn */
	while (done < len) {
		ssize_t n =
		    pwrite(p->fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	if (p->write_limit == 0 && (p->write_torn & POOL_TEST_LOST))
		undo_some(p); /* the machine stops now */
	if (p->write_limit == 0 && (p->write_torn & POOL_TEST_TORN))
		return -EIO;
	return 0;
}

int pool_io_flush(struct pool *p)
{
	int err = pool_blk_stage_flush(p);

	if (err)
		return err;
	if (p->write_limit == 0)
		return -EIO;
	if (fdatasync(p->fd) < 0)
		return -errno;
	p->ub_unflushed = 0;
	undo_forget(p); /* flushed: no longer in the cache */
	return 0;
}

int pool_blk_init(struct pool *p)
{
	p->scratch_len = SCRATCH_LEN;
	p->scratch = malloc(SCRATCH_LEN);
	p->stage = malloc(STAGE_LEN); /* without it, blocks are written one by one */
	p->stage_iov = malloc(STAGE_IOV * sizeof(*p->stage_iov));
	if (!p->stage_iov) {
		free(p->stage);
		p->stage = NULL;
	}
	p->stage_len = p->stage_copied = 0;
	p->stage_niov = 0;
	p->lz4 = LZ4_createStream();
	p->comp_miss = 0;
	return p->scratch && p->lz4 ? 0 : -ENOMEM;
}

void pool_blk_fini(struct pool *p)
{
	free(p->scratch);
	p->scratch = NULL;
	LZ4_freeStream(p->lz4);
	p->lz4 = NULL;
	undo_forget(p);
	free(p->stage); /* staged blocks are dropped, as in a crash */
	p->stage = NULL;
	free(p->stage_iov);
	p->stage_iov = NULL;
	p->stage_len = p->stage_copied = 0;
	p->stage_niov = 0;
}

void pool_blk_describe(const struct pool_bp *bp, char *buf, size_t len)
{
	snprintf(buf, len, "block at sector %llu (level %u, %u bytes, birth %llu)",
	         (unsigned long long)bp->addr, bp->level, bp->psize, (unsigned long long)bp->birth);
}

/* lz4 of LEN bytes into at most LIMIT; 0 when it does not fit. */
static size_t blk_lz4(struct pool *p, const void *data, uint32_t len, uint8_t *out, size_t limit,
                      int accel)
{
	int r;

	/* a reset stream's first block is a plain lz4 block, and resetting
	 * it costs less than the 16 KiB memset LZ4_compress_default pays */
	LZ4_resetStream_fast(p->lz4);
	r = LZ4_compress_fast_continue(p->lz4, data, (char *)out, (int)len, (int)limit, accel);
	return r > 0 ? (size_t)r : 0;
}

/*
 * Compress DATA into OUT; returns the compressed size, or 0 when not worth
 * it.  Early abort: after a leaf that did not compress, the next one is
 * first probed by lz4 at acceleration 16 on its first 4 KiB, whatever its
 * codec (as OpenZFS probes zstd with lz4); a probe that does not save 1/8
 * stores the leaf as is, and a leaf that compresses ends the probing.  On
 * random or already compressed data the probe costs about a sixth of a full
 * lz4 attempt on a 16 KiB leaf (lz4 only finds out at the end of its input
 * that literals do not fit), less for bigger leaves, and zstd is never
 * tried.  What is lost is the rare leaf whose first 4 KiB do not compress
 * but the rest does: it is stored whole.  Metadata (indirect blocks, whose
 * tails are often holes) is never probed.
 */
static size_t blk_compress(struct pool *p, int comp, int leaf, const void *data, uint32_t lsize,
                           uint8_t *out, size_t outlen)
{
	size_t limit = lsize - lsize / 8;
	size_t n = 0;

	if (leaf && p->comp_miss && lsize > BLK_PROBE_LEN &&
	    !blk_lz4(p, data, BLK_PROBE_LEN, out, BLK_PROBE_LEN - BLK_PROBE_LEN / 8, 16))
		return 0;
	if (comp == POOL_COMP_LZ4) {
		n = blk_lz4(p, data, lsize, out, limit, 1);
	} else if (comp == POOL_COMP_ZSTD) {
		size_t r = ZSTD_compress(out, limit < outlen ? limit : outlen, data, lsize, 3);
		n = ZSTD_isError(r) ? 0 : r;
	}
	n = (n > 0 && n <= limit) ? n : 0;
	if (leaf)
		p->comp_miss = n == 0;
	return n;
}

static int blk_decompress(const struct pool_bp *bp, const uint8_t *in, void *out)
{
	if (bp->comp == POOL_COMP_LZ4) {
		int r = LZ4_decompress_safe((const char *)in, out, (int)bp->psize, (int)bp->lsize);
		return r == (int)bp->lsize ? 0 : -EBADMSG;
	}
	if (bp->comp == POOL_COMP_ZSTD) {
		size_t r = ZSTD_decompress(out, bp->lsize, in, bp->psize);
		return (!ZSTD_isError(r) && r == bp->lsize) ? 0 : -EBADMSG;
	}
	if (bp->comp == POOL_COMP_OFF && bp->psize == bp->lsize) {
		memcpy(out, in, bp->lsize);
		return 0;
	}
	return -EBADMSG;
}

int pool_blk_write(struct pool *p, const void *data, uint32_t lsize, int comp, int type, int level,
                   struct pool_bp *bp)
{
	uint8_t *buf = p->scratch;
	const void *src = data;
	uint32_t psize = lsize;
	uint64_t addr;
	size_t n = 0;
	int err;

	if (lsize > 131072 || lsize == 0)
		return -EINVAL;
	if (comp != POOL_COMP_OFF)
		n = blk_compress(p, comp, type == POOL_BT_VOLDATA, data, lsize, buf,
		                 p->scratch_len);
	if (n) {
		psize = (uint32_t)n;
	} else {
		comp = POOL_COMP_OFF;
	}
	uint32_t nsec = (psize + POOL_SECTOR - 1) / POOL_SECTOR;
	if (n) {
		/* zero the tail of the last sector so that reads are reproducible */
		memset(buf + psize, 0, (size_t)nsec * POOL_SECTOR - psize);
		src = buf;
	} else if (lsize % POOL_SECTOR) {
		memcpy(buf, data, lsize);
		memset(buf + lsize, 0, (size_t)nsec * POOL_SECTOR - lsize);
		src = buf;
	}
	err = pool_alloc(p, nsec, &addr);
	if (err)
		return pool_err(p, err, "pool \"%s\" is full (needed %u bytes)", p->name,
		                nsec * POOL_SECTOR);
	/* a leaf written as it is comes from a dirty buffer that outlives the
	 * stage (pool_obj_sync flushes it before freeing them) */
	err = stage_write(p, src, nsec, addr, level == 0 && src == data);
	if (err) {
		pool_alloc_free(
		    p, &(struct pool_bp){.addr = addr, .psize = psize, .birth = p->txg + 1});
		return pool_err(p, err, "pool \"%s\": write of %u bytes at sector %llu failed",
		                p->name, nsec * POOL_SECTOR, (unsigned long long)addr);
	}
	memset(bp, 0, sizeof(*bp));
	bp->addr = addr;
	bp->psize = psize;
	bp->lsize = lsize;
	bp->comp = (uint8_t)comp;
	bp->type = (uint8_t)type;
	bp->level = (uint8_t)level;
	bp->birth = p->txg + 1;
	bp->fill = 1;
	pool_cksum(src, psize, bp->cksum);
	p->txg_blocks++;
	return 0;
}

/* Read the stored bytes of BP into BUF (the scratch buffer when NULL) and
 * verify them. */
/* Whether BP's sizes, compression and place on the device are possible. */
static bool blk_bp_valid(const struct pool *p, const struct pool_bp *bp)
{
	return !(bp->psize == 0 || bp->psize > 131072 || bp->lsize == 0 || bp->lsize > 131072 ||
	         bp->comp >= POOL_COMP_MAX || bp->addr < p->first_sector ||
	         bp->addr + (bp->psize + POOL_SECTOR - 1) / POOL_SECTOR > p->end_sector);
}

static int blk_read_raw(struct pool *p, const struct pool_bp *bp, uint8_t *buf, uint8_t **out)
{
	uint64_t ck[2];
	char what[128];
	int err;

	if (!blk_bp_valid(p, bp)) {
		pool_blk_describe(bp, what, sizeof(what));
		p->read_errors++;
		return pool_err(p, -EIO, "pool \"%s\": invalid block pointer (%s)", p->name, what);
	}
	if (!buf)
		buf = p->scratch + 131072 + 4096;
	err = pool_io_read(p, buf, bp->psize, bp->addr * POOL_SECTOR);
	if (err) {
		pool_blk_describe(bp, what, sizeof(what));
		p->read_errors++;
		return pool_err(p, err, "pool \"%s\": read error on %s", p->name, what);
	}
	pool_cksum(buf, bp->psize, ck);
	if (!pool_cksum_eq(ck, bp->cksum)) {
		memset(buf, 0, bp->psize); /* the caller's buffer never holds bad bytes */
		pool_blk_describe(bp, what, sizeof(what));
		p->read_errors++;
		return pool_err(p, -EIO, "pool \"%s\": checksum mismatch on %s", p->name, what);
	}
	*out = buf;
	return 0;
}

int pool_blk_verify(struct pool *p, const struct pool_bp *bp)
{
	uint8_t *raw;

	return blk_read_raw(p, bp, NULL, &raw);
}

int pool_blk_read(struct pool *p, const struct pool_bp *bp, void *buf)
{
	if (pool_bp_is_hole(bp)) {
		memset(buf, 0, bp->lsize);
		return 0;
	}
	if (pool_arc_get(p, bp, buf) == 0)
		return 0;
	return pool_blk_read_device(p, bp, buf);
}

int pool_blk_read_uncached(struct pool *p, const struct pool_bp *bp, void *buf)
{
	/* a block stored as it is is read where it goes, not copied there */
	bool direct = bp->comp == POOL_COMP_OFF && bp->psize == bp->lsize;
	uint8_t *raw;
	char what[128];
	int err = blk_read_raw(p, bp, direct ? buf : NULL, &raw);

	if (err || direct)
		return err;
	err = blk_decompress(bp, raw, buf);
	if (err) {
		pool_blk_describe(bp, what, sizeof(what));
		p->read_errors++;
		return pool_err(p, -EIO, "pool \"%s\": cannot decompress %s", p->name, what);
	}
	return 0;
}

int pool_blk_read_device(struct pool *p, const struct pool_bp *bp, void *buf)
{
	int err = pool_blk_read_uncached(p, bp, buf);

	if (!err)
		pool_arc_put(p, bp, buf);
	return err;
}

/*
 * Shared reads: several threads at once, so nothing of struct pool is
 * written here (no scratch buffer, no message, no error count, no stage
 * flush: pool_obj_read_shared refuses while blocks are staged).  The block
 * is read into buffers of its own, verified, decompressed and then put in
 * the ARC, whose lock makes that safe; two threads missing the same block
 * both read it and the second put finds it cached.  The checksum's
 * dispatcher (xxh_x86dispatch) picks its function at its first call, which
 * pool_open makes (uberblocks) before any thread can read shared-ly.
 */
static int blk_read_shared_device(struct pool *p, const struct pool_bp *bp, uint8_t *whole)
{
	bool direct = bp->comp == POOL_COMP_OFF && bp->psize == bp->lsize;
	uint8_t *raw = direct ? whole : malloc(bp->psize);
	uint64_t ck[2];
	int err;

	if (!raw)
		return -EAGAIN;
	err = io_pread(p->fd, raw, bp->psize, bp->addr * POOL_SECTOR);
	if (!err) {
		pool_cksum(raw, bp->psize, ck);
		err = pool_cksum_eq(ck, bp->cksum) ? 0 : -EIO;
	}
	if (!err && !direct)
		err = blk_decompress(bp, raw, whole);
	if (!direct)
		free(raw);
	return err;
}

int pool_blk_read_shared(struct pool *p, const struct pool_bp *bp, uint32_t off, uint32_t len,
                         void *buf, bool cached_only, bool *hit)
{
	uint8_t *whole;
	int err;

	*hit = false;
	if (pool_bp_is_hole(bp)) {
		memset(buf, 0, len);
		return 0;
	}
	if (off > bp->lsize || len > bp->lsize - off)
		return -EAGAIN;
	if (pool_arc_copy(p, bp, off, len, buf, !cached_only) == 0) {
		*hit = true;
		return 0;
	}
	if (cached_only || !blk_bp_valid(p, bp))
		return -EAGAIN;
	/* the whole block, for the ARC; straight into BUF when it is all of it */
	whole = off == 0 && len == bp->lsize ? buf : malloc(bp->lsize);
	if (!whole)
		return -EAGAIN;
	err = blk_read_shared_device(p, bp, whole);
	if (!err) {
		pool_arc_put(p, bp, whole);
		if (whole != buf)
			memcpy(buf, whole + off, len);
	} else if (whole == buf) {
		memset(buf, 0, len); /* the caller's buffer never holds bad bytes */
	}
	if (whole != buf)
		free(whole);
	return err ? -EAGAIN : 0;
}
