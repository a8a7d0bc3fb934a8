/*
 * pool.c - a pool as a whole: create, open (lock, labels, newest good
 * uberblock, allocator rebuild, intent log replay), close, status, scrub.
 *
 * One process at a time: open takes an open-file-description write lock
 * on byte 0 of the device (it conflicts even inside one process) and a
 * classic POSIX lock on byte 1, whose owner F_GETLK can name, for the
 * message `pool "NAME" is in use by process PID`.  Read-only opens take
 * read locks, so they wait for no one but never see a pool mid-commit.
 * This file never interprets dataset records (dir.c) or walks a volume
 * except for scrub.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pool_impl.h"

#define UB_KEEP 32

int pool_err(struct pool *p, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

void pool_strlist_add(char *buf, size_t len, const char *fmt, ...)
{
	size_t o = strlen(buf);
	va_list ap;

	if (o && o + 2 < len) {
		memcpy(buf + o, ", ", 3);
		o += 2;
	}
	if (o + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, len - o, fmt, ap);
	va_end(ap);
}

const char *pool_errmsg(const struct pool *p)
{
	return p->errmsg;
}

const char *pool_name(const struct pool *p)
{
	return p->name;
}

int pool_check_writable(struct pool *p)
{
	if (p->rdonly)
		return pool_err(p, -EROFS, "pool \"%s\" is open read-only", p->name);
	if (p->poisoned)
		return pool_err(p, -ECANCELED,
		                "pool \"%s\": an earlier commit failed; reopen the pool", p->name);
	return 0;
}

uint64_t pool_now(void)
{
	return (uint64_t)time(NULL);
}

uint64_t pool_random64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != sizeof(v) || v == 0)
		;
	return v;
}

static int valid_pool_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > POOL_NAME_MAX)
		return 0;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:",
		            name[i]))
			return 0;
	return 1;
}

static int dev_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* Lock the device; on conflict name the holder. */
static int pool_lock(int fd, int rdonly, const char *name, char *err, size_t errlen)
{
	struct flock fl = {
	    .l_type = rdonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES)
			return -errno;
		struct flock q = {
		    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
		if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK)
			snprintf(err, errlen, "pool \"%s\" is in use by process %ld", name,
			         (long)q.l_pid);
		else
			snprintf(err, errlen, "pool \"%s\" is in use by process %ld", name,
			         (long)getpid());
		return -EBUSY;
	}
	fl.l_start = 1;
	(void)fcntl(fd, F_SETLK, &fl); /* names us to F_GETLK; exclusion is the OFD lock */
	return 0;
}

static struct pool *pool_alloc_struct(void)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->fd = -1;
	p->write_limit = -1;
	p->dirty_max = 64ull << 20;
	return p;
}

static void pool_free(struct pool *p)
{
	pool_dir_free(p);
	pool_zil_fini(p);
	pool_alloc_fini(p);
	pool_blk_fini(p);
	pool_arc_destroy(p);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static int pool_setup(struct pool *p, char *err, size_t errlen)
{
	int e = pool_blk_init(p);

	if (!e)
		e = pool_alloc_init(p);
	if (!e)
		e = pool_arc_create(p, 256ull << 20);
	if (e)
		snprintf(err, errlen, "pool \"%s\": %s", p->name, strerror(-e));
	return e;
}

int pool_create(const char *path, const char *name, uint64_t size, char *err, size_t errlen)
{
	char dummy[POOL_ERRMSG_MAX];
	struct pool_label lab;
	struct pool *p;
	int e;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!valid_pool_name(name)) {
		snprintf(err, errlen,
		         "invalid pool name \"%s\" (a letter, then letters, digits, _ . - :; at "
		         "most %d)",
		         name, POOL_NAME_MAX);
		return -EINVAL;
	}
	p = pool_alloc_struct();
	if (!p)
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (p->fd < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	e = pool_lock(p->fd, 0, name, err, errlen);
	if (e)
		goto out;
	e = dev_size(p->fd, &p->devsize);
	if (e) {
		snprintf(err, errlen, "%s: not a regular file or block device", path);
		goto out;
	}
	if (p->devsize >= POOL_MIN_SIZE &&
	    pool_label_read(p->fd, p->devsize, &lab, dummy, sizeof(dummy)) == 0) {
		snprintf(err, errlen, "%s already holds pool \"%s\"", path, lab.name);
		e = -EEXIST;
		goto out;
	}
	if (size > p->devsize) {
		if (ftruncate(p->fd, (off_t)size) < 0) {
			e = -errno;
			snprintf(err, errlen, "cannot size %s: %s", path, strerror(errno));
			goto out;
		}
		p->devsize = size;
	}
	p->devsize &= ~(uint64_t)(POOL_SECTOR - 1);
	if (p->devsize < POOL_MIN_SIZE) {
		snprintf(err, errlen, "pool \"%s\": %s is too small (%llu bytes; at least %llu)",
		         name, path, (unsigned long long)p->devsize,
		         (unsigned long long)POOL_MIN_SIZE);
		e = -EINVAL;
		goto out;
	}
	p->guid = pool_random64();
	p->created = pool_now();
	p->next_id = 1;
	e = pool_setup(p, err, errlen);
	if (e)
		goto out;
	pool_alloc_mark(p, 0, (uint32_t)p->first_sector);
	pool_alloc_mark(p, p->end_sector, (uint32_t)(p->nsectors - p->end_sector));
	p->alloc_sectors = 0;
	struct pool_objdesc dir = {.blocksize = POOL_META_BLOCKSIZE,
	                           .nlevels = 1,
	                           .type = POOL_BT_DIR,
	                           .comp = POOL_COMP_LZ4};
	dir.root.lsize = POOL_META_BLOCKSIZE;
	dir.root.type = POOL_BT_DIR;
	pool_obj_init(&p->dir, &dir, NULL);
	e = pool_label_write_new(p);
	if (!e) {
		p->txg_blocks = 1; /* commit txg 1 even though it holds nothing */
		e = pool_txg_commit(p);
	}
	if (e)
		snprintf(err, errlen, "pool \"%s\": cannot write %s: %s", name, path,
		         p->errmsg[0] ? p->errmsg : strerror(-e));
out:
	pool_free(p);
	return e;
}

int pool_probe(const char *path, char *name, size_t namelen, uint64_t *guid, char *err,
               size_t errlen)
{
	struct pool_label lab;
	uint64_t size;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return e;
	}
	e = dev_size(fd, &size);
	if (!e)
		e = pool_label_read(fd, size, &lab, err, errlen);
	else
		snprintf(err, errlen, "%s: not a regular file or block device", path);
	close(fd);
	if (e)
		return e;
	snprintf(name, namelen, "%s", lab.name);
	if (guid)
		*guid = lab.guid;
	return 0;
}

int pool_open(const char *path, int flags, struct pool **out, char *err, size_t errlen)
{
	char dummy[POOL_ERRMSG_MAX];
	struct pool_label lab;
	struct pool_ub *ubs = NULL;
	struct pool *p;
	int e, n, i;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	p = pool_alloc_struct();
	if (!p)
		return -ENOMEM;
	p->rdonly = !!(flags & POOL_OPEN_RDONLY);
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->fd = open(path, (p->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (p->fd < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	e = dev_size(p->fd, &p->devsize);
	if (e) {
		snprintf(err, errlen, "%s: not a regular file or block device", path);
		goto fail;
	}
	e = pool_label_read(p->fd, p->devsize, &lab, err, errlen);
	if (e) {
		char tmp[POOL_ERRMSG_MAX] = "";
		pool_strlist_add(tmp, sizeof(tmp), "%s: %s", path, err);
		snprintf(err, errlen, "%s", tmp);
		goto fail;
	}
	snprintf(p->name, sizeof(p->name), "%s", lab.name);
	e = pool_lock(p->fd, p->rdonly, p->name, err, errlen);
	if (e)
		goto fail;
	p->guid = lab.guid;
	p->devsize = lab.size;
	p->created = lab.created;
	e = pool_setup(p, err, errlen);
	if (e)
		goto fail;
	ubs = calloc(UB_KEEP, sizeof(*ubs));
	if (!ubs) {
		e = -ENOMEM;
		goto fail;
	}
	n = pool_ub_scan(p, ubs, UB_KEEP);
	for (i = 0; i < n; i++) {
		pool_dir_free(p);
		pool_obj_init(&p->dir, &ubs[i].dir, NULL);
		if (pool_dir_load(p) == 0)
			break;
	}
	if (i == n) {
		snprintf(err, errlen, "pool \"%s\": no uberblock with a valid directory (%d found)",
		         p->name, n);
		e = -EBADMSG;
		goto fail;
	}
	p->ub = ubs[i];
	p->txg = ubs[0].txg; /* newer but broken uberblocks stay older than our next */
	p->next_id = ubs[i].next_id;
	e = pool_alloc_rebuild(p, &ubs[i], n - i < 3 ? n - i : 3);
	if (!e) {
		pool_zil_mark(p, &p->ub);
		e = pool_zil_replay(p); /* flushed writes of the txg that never committed */
	}
	if (e) {
		snprintf(err, errlen, "%s", p->errmsg);
		goto fail;
	}
	p->errmsg[0] = 0;
	free(ubs);
	*out = p;
	return 0;
fail:
	free(ubs);
	pool_free(p);
	return e;
}

int pool_destroy(const char *path, char *err, size_t errlen)
{
	struct pool *p;
	uint8_t *zero;
	int e = pool_open(path, 0, &p, err, errlen);

	if (e)
		return e;
	zero = calloc(1, POOL_LABEL_SIZE);
	e = zero ? 0 : -ENOMEM;
	/* the back label first: a crash in between leaves an unopenable front */
	if (!e)
		e = pool_io_write(p, zero, POOL_LABEL_SIZE, p->devsize - POOL_LABEL_SIZE);
	if (!e)
		e = pool_io_write(p, zero, POOL_LABEL_SIZE, 0);
	if (!e)
		e = pool_io_flush(p);
	if (e)
		snprintf(err, errlen, "pool \"%s\": cannot erase labels: %s", p->name,
		         strerror(-e));
	free(zero);
	pool_abandon(p);
	return e;
}

int pool_sync(struct pool *p)
{
	return pool_txg_commit(p);
}

int pool_close(struct pool *p)
{
	int e = 0;

	if (!p)
		return 0;
	if (!p->rdonly && !p->poisoned)
		e = pool_txg_commit(p);
	pool_free(p);
	return e;
}

void pool_abandon(struct pool *p)
{
	if (p)
		pool_free(p);
}

void pool_set_progress(struct pool *p, void (*fn)(void *arg, uint64_t bytes), void *arg)
{
	p->progress = fn;
	p->progress_arg = arg;
}

void pool_test_write_limit(struct pool *p, long n, int mode)
{
	p->write_limit = n;
	p->write_torn = mode;
	p->undo_seed = (uint64_t)n * 0x9e3779b97f4a7c15ull + (uint64_t)mode;
}

void pool_set_dirty_max(struct pool *p, uint64_t bytes)
{
	p->dirty_max = bytes;
}

int pool_get_status(struct pool *p, struct pool_status *st)
{
	memset(st, 0, sizeof(*st));
	st->guid = p->guid;
	st->txg = p->ub.txg;
	st->size = (p->end_sector - p->first_sector) * POOL_SECTOR;
	st->allocated = p->alloc_sectors * POOL_SECTOR;
	st->deferred = pool_alloc_deferred(p);
	st->read_errors = p->read_errors;
	st->created = p->created;
	st->log_flushes = p->zil_flushes;
	st->log_blocks = p->zil_blocks;
	const struct pool_ub *sc = p->ub_scrub.scrub_time ? &p->ub_scrub : &p->ub;
	st->scrub_txg = sc->scrub_txg;
	st->scrub_time = sc->scrub_time;
	st->scrub_blocks = sc->scrub_blocks;
	st->scrub_errors = sc->scrub_errors;
	for (size_t i = 0; i < p->nds; i++) {
		if (!p->ds[i] || (p->ds[i]->r.flags & POOL_DSF_RECV))
			continue;
		if (p->ds[i]->r.type == POOL_DS_VOLUME)
			st->volumes++;
		else
			st->snapshots++;
	}
	pool_arc_stats(p, &st->arc);
	return 0;
}

/*
 * Scrub: read every reachable block once and verify its checksum.  Walks
 * the directory, then each dataset's tree and deadlist; a block shared by
 * several snapshots and clones is read once (a visited bitmap by sector).
 * Each damaged block is reported with the dataset, the byte range of the
 * volume it covers and the block pointer; the walk does not descend below
 * a damaged indirect block, and counts it as one error.  Scrub never
 * repairs (one copy); the only thing it writes is its result, committed
 * in the next uberblock (pool_status reports it after a reopen).
 */
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
	/* the result is kept in the next uberblock, committed now when we may
	 * write (so that a command that then fails on -EIO keeps it too) */
	p->ub_scrub.scrub_txg = p->ub.txg;
	p->ub_scrub.scrub_time = pool_now();
	p->ub_scrub.scrub_blocks = res->blocks;
	p->ub_scrub.scrub_errors = res->errors;
	if (!p->rdonly && !p->poisoned && (err = pool_txg_commit(p)) != 0)
		return err;
	if (res->errors)
		return pool_err(p, -EIO, "pool \"%s\": scrub found %llu damaged blocks", p->name,
		                (unsigned long long)res->errors);
	p->errmsg[0] = 0;
	return 0;
}
