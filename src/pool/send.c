/*
 * send.c - writing a snapshot as a stream (stream.h), full or incremental,
 * and the record checks shared with recv.c.
 *
 * An incremental send walks the snapshot's tree with mintxg = the origin
 * snapshot's txg: every subtree born at or before it is the same in both
 * snapshots and is skipped without being read (dmu_send.c's traversal by
 * birth).  Data leaves born later become WRITE records; holes born later
 * (punched, shrunk, or overwritten by zeros) become FREE records - this is
 * why holes carry a birth.  Records come out in offset order, so a resume
 * token (toguid, fromguid, offset) lets a second send skip what the
 * receiver already has.  This file never changes the pool.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t */
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>

#include "pool_impl.h"
#include "stream.h"

int pool_stream_check_header(const struct pool_rec *h)
{
	if (h->magic != POOL_STREAM_MAGIC || h->type < POOL_REC_BEGIN || h->type > POOL_REC_END ||
	    h->payload_len > POOL_STREAM_MAXPAY || h->flags || h->reserved)
		return -EBADMSG;
	if (h->type == POOL_REC_BEGIN && h->payload_len != sizeof(struct pool_rec_begin))
		return -EBADMSG;
	if (h->type == POOL_REC_END && h->payload_len != sizeof(struct pool_rec_end))
		return -EBADMSG;
	if (h->type == POOL_REC_WRITE && (h->length != h->payload_len || h->length == 0))
		return -EBADMSG;
	if (h->type == POOL_REC_FREE && (h->payload_len || h->length == 0))
		return -EBADMSG;
	return 0;
}

static void rec_cksum(const struct pool_rec *h, const void *payload, uint64_t out[2])
{
	struct pool_rec c = *h;
	XXH3_state_t st;

	c.cksum[0] = c.cksum[1] = 0;
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, &c, sizeof(c));
	if (h->payload_len) /* the vector code, as pool_cksum (blk.c) */
		XXH3_128bits_update_dispatch(&st, payload, h->payload_len);
	XXH128_hash_t r = XXH3_128bits_digest(&st);
	out[0] = r.low64;
	out[1] = r.high64;
}

void pool_stream_chain(uint64_t run[2], const uint64_t cksum[2])
{
	uint64_t b[4] = {run[0], run[1], cksum[0], cksum[1]};

	pool_cksum(b, sizeof(b), run);
}

void pool_stream_seal(struct pool_rec *h, const void *payload)
{
	rec_cksum(h, payload, h->cksum);
}

int pool_stream_verify(const struct pool_rec *h, const void *payload)
{
	uint64_t ck[2];

	rec_cksum(h, payload, ck);
	return pool_cksum_eq(ck, h->cksum) ? 0 : -EBADMSG;
}

struct send_ctx {
	struct pool *p;
	int fd;
	uint32_t bs;
	uint64_t volsize, resume, nrec;
	uint64_t run[2];
	uint8_t *buf;
};

/* Write IOV (N entries) whole, resuming after short writes. */
static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		pool_iov_advance(&iov, &n, (size_t)w);
	}
	return 0;
}

static int emit(struct send_ctx *c, uint16_t type, uint64_t off, uint64_t len, const void *pay,
                uint32_t plen)
{
	struct pool_rec h = {.magic = POOL_STREAM_MAGIC,
	                     .type = type,
	                     .offset = off,
	                     .length = len,
	                     .payload_len = plen};
	int err;

	pool_stream_seal(&h, pay);
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)pay, plen}}; /* one write per record */
	err = writev_all(c->fd, iov, plen ? 2 : 1);
	if (!err && c->p->progress)
		c->p->progress(c->p->progress_arg, sizeof(h) + plen);
	if (type != POOL_REC_END) {
		pool_stream_chain(c->run, h.cksum);
		c->nrec++;
	}
	return err;
}

static int send_fn(struct pool *p, void *arg, const struct pool_bp *bp, int level, uint64_t blkid)
{
	struct send_ctx *c = arg;
	uint64_t start = blkid * c->bs;
	uint64_t end = start + ((uint64_t)1 << (POOL_BP_PER_IND_SH * level)) * c->bs;
	int err;

	if (end > c->volsize)
		end = c->volsize;
	if (start >= end || end <= c->resume)
		return 1;
	if (start < c->resume)
		start = c->resume;
	if (pool_bp_is_hole(bp)) {
		err = emit(c, POOL_REC_FREE, start, end - start, NULL, 0);
		return err ? err : 1;
	}
	if (level > 0)
		return 0;
	/* a cached leaf is sent from the cache (emit touches no other block);
	 * others are not cached: a send reads each block once, and would push
	 * out of the ARC what the volume's users read again */
	const uint8_t *data = pool_arc_peek(p, bp);
	if (!data) {
		err = pool_blk_read_uncached(p, bp, c->buf);
		if (err)
			return err;
		data = c->buf;
	}
	return emit(c, POOL_REC_WRITE, start, end - start, data + (start - blkid * c->bs),
	            (uint32_t)(end - start));
}

/* The snapshot with GUID, or NULL. */
static struct pool_ds *snap_by_guid(struct pool *p, uint64_t guid)
{
	for (size_t i = 0; i < p->nds; i++)
		if (p->ds[i] && p->ds[i]->r.type == POOL_DS_SNAPSHOT && p->ds[i]->r.guid == guid)
			return p->ds[i];
	return NULL;
}

int pool_token_parse(const char *token, uint64_t *toguid, uint64_t *fromguid, uint64_t *off)
{
	unsigned int ck;
	char tail;

	if (sscanf(token, "1-%16" SCNx64 "-%16" SCNx64 "-%16" SCNx64 "-%8x%c", toguid, fromguid,
	           off, &ck, &tail) != 4)
		return -EINVAL;
	uint64_t v[3] = {*toguid, *fromguid, *off};
	return (uint32_t)XXH3_64bits(v, sizeof(v)) == ck ? 0 : -EINVAL;
}

void pool_token_format(char *buf, size_t len, uint64_t toguid, uint64_t fromguid, uint64_t off)
{
	uint64_t v[3] = {toguid, fromguid, off};

	snprintf(buf, len, "1-%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 "-%08x", toguid, fromguid,
	         off, (uint32_t)XXH3_64bits(v, sizeof(v)));
}

int vol_send(struct pool *p, const char *snapname, const char *fromsnap, const char *token, int fd)
{
	struct send_ctx c = {.p = p, .fd = fd};
	struct pool_ds *s = NULL, *f = NULL;
	struct pool_rec_begin b;
	uint64_t toguid, fromguid;
	char n1[300], n2[300];
	int err;

	p->errmsg[0] = 0;
	if (token) {
		if (pool_token_parse(token, &toguid, &fromguid, &c.resume))
			return pool_err(p, -EINVAL, "invalid resume token \"%s\"", token);
		s = snap_by_guid(p, toguid);
		f = fromguid ? snap_by_guid(p, fromguid) : NULL;
		if (!s || (fromguid && !f))
			return pool_err(p, -ENOENT, "pool \"%s\" has no snapshot for this token",
			                p->name);
	} else {
		if (pool_name_check(snapname, 1) || !(s = pool_ds_lookup(p, snapname, 0)))
			return pool_err(p, pool_name_check(snapname, 1) ? -EINVAL : -ENOENT,
			                "no such snapshot \"%s/%s\"", p->name, snapname);
		if (fromsnap) {
			char full[300];
			struct pool_ds *h = pool_ds_head(p, s);
			if (fromsnap[0] == '@')
				snprintf(full, sizeof(full), "%s%s", h ? h->r.name : "", fromsnap);
			else
				snprintf(full, sizeof(full), "%s", fromsnap);
			if (pool_name_check(full, 1) || !(f = pool_ds_lookup(p, full, 0)))
				return pool_err(p, -ENOENT, "no such snapshot \"%s/%s\"", p->name,
				                full);
		}
	}
	struct pool_ds *head = pool_ds_head(p, s);
	if (f && (f->r.creation_txg >= s->r.creation_txg ||
	          (f->r.head_id != s->r.head_id && (!head || head->r.origin_id != f->r.id)))) {
		pool_ds_fullname(p, f, n1, sizeof(n1));
		pool_ds_fullname(p, s, n2, sizeof(n2));
		return pool_err(p, -EXDEV, "%s is not an earlier snapshot of %s's volume", n1, n2);
	}
	c.bs = s->obj.d.blocksize;
	c.volsize = s->obj.d.size;
	c.buf = malloc(c.bs);
	if (!c.buf)
		return -ENOMEM;
	memset(&b, 0, sizeof(b));
	b.version = POOL_STREAM_VERSION;
	b.blocksize = c.bs;
	b.volsize = c.volsize;
	b.toguid = s->r.guid;
	b.fromguid = f ? f->r.guid : 0;
	b.resume_offset = c.resume;
	b.creation = s->r.creation_time;
	b.compression = s->obj.d.comp;
	snprintf(b.snapname, sizeof(b.snapname), "%s", s->r.name);
	err = emit(&c, POOL_REC_BEGIN, 0, 0, &b, sizeof(b));
	if (!err)
		err = pool_obj_walk(p, &s->obj.d, f ? f->r.creation_txg : 0, send_fn, &c);
	if (!err) {
		struct pool_rec_end e = {.nrecords = c.nrec, .cksum = {c.run[0], c.run[1]}};
		err = emit(&c, POOL_REC_END, 0, 0, &e, sizeof(e));
	}
	free(c.buf);
	if (err == -EPIPE)
		return pool_err(p, err, "send of %s/%s@%s: the receiving end closed the stream",
		                p->name, head ? head->r.name : "?", b.snapname);
	if (err && !p->errmsg[0])
		return pool_err(p, err, "send of %s/%s@%s: %s", p->name, head ? head->r.name : "?",
		                b.snapname, strerror(-err));
	return err;
}
