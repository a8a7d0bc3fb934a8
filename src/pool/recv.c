/*
 * recv.c - receiving a send stream into a hidden temporary, then making it
 * appear whole in one commit.
 *
 * A full stream lands in a new hidden volume "VOL%recv"; an incremental
 * one in a hidden clone of VOL's newest snapshot, which must be the
 * stream's origin (same guid) and VOL must not have changed since.  At END
 * (record count and chained checksum verified), one txg renames the
 * temporary to VOL - or, incrementally, moves the temporary's tree,
 * deadlist and counters into VOL (its prev_snap is the same snapshot, so
 * the birth/deadlist state carries over exactly) - and snapshots it with
 * the sender's guid.  Until then nothing visible changes.
 *
 * Progress is committed with the temporary's recv_offset: the end of the
 * last record applied, in offset order.  With `resumable`, a failed
 * receive keeps the temporary, and vol_recv_token() gives the token that
 * makes the sender start at that offset; otherwise it is destroyed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_impl.h"
#include "stream.h"

#define TMP_SUFFIX "%recv"
#define RECV_ARENA ((1u << 20) + POOL_STREAM_MAXPAY + sizeof(struct pool_rec))

/*
 * Stream input.  A record costs one read: the read of a payload also asks
 * for the next record's header (never for anything past an END record, so
 * a stream is read exactly, and what follows it on FD stays there).
 */
struct rec_in {
	int fd;
	uint8_t next[sizeof(struct pool_rec)]; /* the next header, or its start */
	size_t nnext;
};

/* Read at least MIN and at most MAX bytes; *GOT says how many. */
static int read_some(int fd, void *buf, size_t min, size_t max, size_t *got)
{
	uint8_t *b = buf;

	*got = 0;
	while (*got < min) {
		ssize_t n = read(fd, b + *got, max - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* truncated */
		*got += (size_t)n;
	}
	return 0;
}

/* Read one record; PAYLOAD has POOL_STREAM_MAXPAY + sizeof(struct pool_rec) bytes. */
static int read_rec(struct pool *p, struct rec_in *in, struct pool_rec *h, uint8_t *payload)
{
	size_t got;
	int err = read_some(in->fd, in->next + in->nnext, sizeof(*h) - in->nnext,
	                    sizeof(*h) - in->nnext, &got);

	if (err)
		return err;
	memcpy(h, in->next, sizeof(*h));
	in->nnext = 0;
	if (pool_stream_check_header(h))
		return -EBADMSG;
	if (h->payload_len) {
		size_t ahead = h->type == POOL_REC_END ? 0 : sizeof(*h);
		err = read_some(in->fd, payload, h->payload_len, h->payload_len + ahead, &got);
		if (err)
			return err;
		in->nnext = got - h->payload_len;
		memcpy(in->next, payload + h->payload_len, in->nnext);
	}
	if (p->progress)
		p->progress(p->progress_arg, sizeof(*h) + h->payload_len);
	return pool_stream_verify(h, payload);
}

static void tmp_name(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s%s", name, TMP_SUFFIX);
}

static int check_begin(struct pool *p, const struct pool_rec_begin *b)
{
	if (b->version != POOL_STREAM_VERSION)
		return pool_err(p, -ENOTSUP, "unsupported stream version %u (this is %u)",
		                b->version, POOL_STREAM_VERSION);
	if (b->blocksize < 4096 || b->blocksize > 131072 || (b->blocksize & (b->blocksize - 1)) ||
	    !b->volsize || b->volsize % b->blocksize || b->compression > POOL_COMP_ZSTD ||
	    !memchr(b->snapname, 0, sizeof(b->snapname)) || pool_name_check(b->snapname, 0) ||
	    !b->toguid || b->volsize / b->blocksize > (1ull << (POOL_BP_PER_IND_SH * 6)))
		return pool_err(p, -EBADMSG, "corrupted stream: bad BEGIN record");
	return 0;
}

/* Find or make the temporary for stream B into NAME. */
static int recv_target(struct pool *p, const char *name, const struct pool_rec_begin *b,
                       struct pool_ds **out)
{
	char tmp[POOL_DS_NAME_MAX + 1];
	struct pool_ds *t, *h;
	int err;

	tmp_name(tmp, sizeof(tmp), name);
	t = pool_ds_lookup(p, tmp, 1);
	if (b->resume_offset) {
		if (!t || t->r.recv_toguid != b->toguid || t->r.recv_fromguid != b->fromguid ||
		    t->r.recv_offset != b->resume_offset)
			return pool_err(p, -EINVAL,
			                "stream resumes at byte %llu, which is not where the "
			                "interrupted receive into %s/%s stopped",
			                (unsigned long long)b->resume_offset, p->name, name);
		*out = t;
		return 0;
	}
	if (t)
		return pool_err(p, -EEXIST,
		                "an interrupted receive into %s/%s exists: resume it (vol send -t "
		                "TOKEN) or discard it (vol recv -A)",
		                p->name, name);
	h = pool_ds_lookup(p, name, 0);
	if (!b->fromguid) {
		if (h)
			return pool_err(p, -EEXIST, "volume \"%s/%s\" already exists", p->name,
			                name);
		err = pool_vol_new(p, tmp, b->volsize, b->blocksize, b->compression, &t);
	} else {
		if (!h)
			return pool_err(p, -ENOENT,
			                "no such volume \"%s/%s\" for an incremental stream",
			                p->name, name);
		struct pool_ds *a = pool_ds_get(p, h->r.prev_snap_id);
		if (!a || a->r.guid != b->fromguid)
			return pool_err(
			    p, -EXDEV,
			    "stream is incremental from snapshot guid %llu, but the newest "
			    "snapshot of %s/%s is %s (guid %llu)",
			    (unsigned long long)b->fromguid, p->name, name, a ? a->r.name : "none",
			    a ? (unsigned long long)a->r.guid : 0ull);
		if (h->obj.ndirty || h->obj.d.size != a->obj.d.size ||
		    memcmp(&h->obj.d.root, &a->obj.d.root, sizeof(a->obj.d.root)))
			return pool_err(p, -EBUSY,
			                "%s/%s has changed since snapshot %s; roll it back first",
			                p->name, name, a->r.name);
		err = pool_clone_new(p, a, tmp, &t);
		if (!err)
			err = pool_obj_set_size(p, &t->obj, b->volsize);
	}
	if (err)
		return err;
	t->r.flags |= POOL_DSF_RECV;
	t->r.recv_toguid = b->toguid;
	t->r.recv_fromguid = b->fromguid;
	*out = t;
	return pool_txg_commit(p);
}

/* Write out the blocks staged from the payload arena before it is reused. */
static int recv_stage_out(struct pool *p)
{
	int err = pool_blk_stage_flush(p);

	if (err) { /* leaves written ahead point at blocks not on the device */
		p->poisoned = err;
		return pool_err(p, err, "pool \"%s\": write failed: %s", p->name, strerror(-err));
	}
	return 0;
}

/*
 * Apply WRITE/FREE records until END.  Payloads are read one after another
 * into the arena PAY (RECV_ARENA bytes), and whole leaves are written ahead
 * from there by reference (tree.c, p->wbuf_stable): no copy into dirty
 * buffers, and the stage goes out in runs of up to 1 MiB, written out
 * before the arena wraps and before this returns.
 */
static int recv_records(struct pool *p, struct rec_in *in, struct pool_ds *t,
                        const struct pool_rec *begin, uint8_t *pay)
{
	struct vol v = {.p = p, .id = t->r.id};
	struct pool_rec h;
	uint64_t nrec = 1, run[2] = {0, 0};
	size_t pos = 0;
	int err;

	pool_stream_chain(run, begin->cksum);
	p->wbuf_stable = 1;
	for (;;) {
		if (pos + POOL_STREAM_MAXPAY + sizeof(struct pool_rec) > RECV_ARENA) {
			if ((err = recv_stage_out(p)) != 0)
				break;
			pos = 0;
		}
		err = read_rec(p, in, &h, pay + pos);
		if (err)
			break;
		if (h.type == POOL_REC_END) {
			struct pool_rec_end e;
			memcpy(&e, pay + pos, sizeof(e));
			if (e.nrecords != nrec || !pool_cksum_eq(e.cksum, run))
				err = -EBADMSG;
			break;
		}
		if (h.type == POOL_REC_BEGIN || h.offset < t->r.recv_offset ||
		    h.offset > t->obj.d.size || h.length > t->obj.d.size - h.offset) {
			err = -EBADMSG;
			break;
		}
		if (h.type == POOL_REC_WRITE)
			err = vol_write(&v, pay + pos, h.payload_len, h.offset);
		else
			err = vol_punch(&v, h.offset, h.length);
		if (err)
			break;
		pos += h.payload_len;
		pool_stream_chain(run, h.cksum);
		nrec++;
		t->r.recv_offset = h.offset + h.length; /* committed with the data */
	}
	p->wbuf_stable = 0;
	int ferr = recv_stage_out(p);
	return err ? err : ferr;
}

/* Make the received volume appear: one txg. */
static int recv_finish(struct pool *p, const char *name, struct pool_ds *t,
                       const struct pool_rec_begin *b)
{
	struct pool_ds *h = t, *s;
	int err = pool_txg_commit(p);

	if (err)
		return err;
	if (!b->fromguid) {
		snprintf(t->r.name, sizeof(t->r.name), "%s", name);
	} else {
		struct pool_ds *a = pool_ds_get(p, t->r.origin_id);
		h = pool_ds_lookup(p, name, 0);
		if (!h || !a)
			return -ENOENT;
		/* H is unchanged since A (checked at BEGIN, and we hold the pool),
		 * so its deadlist holds nothing A does not; T's replaces it */
		struct pool_objdesc dl = h->dl.d;
		uint8_t comp = h->obj.d.comp;
		h->dl.d = t->dl.d;
		t->dl.d = dl;
		h->obj.d = t->obj.d;
		h->obj.d.comp = comp;
		h->r.referenced = t->r.referenced;
		h->r.ref_logical = t->r.ref_logical;
		h->r.written = t->r.written;
		h->r.used += t->r.used;
		h->r.used_logical += t->r.used_logical;
		/* T's tree now belongs to H: forget T without freeing it */
		t->obj.d.root.addr = 0;
		t->obj.d.nlevels = 1;
		t->r.prev_snap_txg = UINT64_MAX;
		err = pool_vol_destroy_head(p, t); /* frees only T's old (H's) deadlist */
		if (err)
			return err;
	}
	h->r.flags &= (uint8_t)~POOL_DSF_RECV;
	h->r.recv_offset = h->r.recv_toguid = h->r.recv_fromguid = 0;
	err = pool_snap_create(p, h, b->snapname, &s);
	if (err)
		return err;
	s->r.guid = b->toguid;
	s->r.creation_time = b->creation;
	return pool_txg_commit(p);
}

int vol_recv(struct pool *p, const char *name, int fd, int resumable)
{
	struct pool_rec_begin b;
	struct pool_rec h;
	struct pool_ds *t = NULL;
	uint8_t *pay;
	int err = pool_check_writable(p);

	if (err)
		return err;
	p->errmsg[0] = 0;
	if (pool_name_check(name, 0))
		return pool_err(p, -EINVAL, "invalid volume name \"%s/%s\"", p->name, name);
	struct rec_in in = {.fd = fd};
	pay = malloc(RECV_ARENA);
	if (!pay)
		return -ENOMEM;
	err = read_rec(p, &in, &h, pay);
	if (!err && h.type != POOL_REC_BEGIN)
		err = -EBADMSG;
	if (err) {
		free(pay);
		return pool_err(p, err, "%s stream: no valid BEGIN record",
		                err == -ENODATA ? "truncated" : "corrupted");
	}
	memcpy(&b, pay, sizeof(b));
	if ((err = check_begin(p, &b)) != 0 || (err = recv_target(p, name, &b, &t)) != 0) {
		free(pay);
		return err;
	}
	err = recv_records(p, &in, t, &h, pay);
	free(pay);
	if (!err)
		return recv_finish(p, name, t, &b) ? (p->poisoned = -EIO, -EIO) : 0;
	char cause[POOL_ERRMSG_MAX];
	snprintf(cause, sizeof(cause), "%s",
	         err == -ENODATA   ? "truncated stream"
	         : err == -EBADMSG ? "corrupted stream"
	         : p->errmsg[0]    ? p->errmsg
	                           : strerror(-err));
	if (err == -ENODATA)
		err = -EBADMSG;
	if (resumable && !p->poisoned && pool_txg_commit(p) == 0) {
		char tok[100];
		pool_token_format(tok, sizeof(tok), t->r.recv_toguid, t->r.recv_fromguid,
		                  t->r.recv_offset);
		return pool_err(p, err,
		                "receive into %s/%s stopped at byte %llu: %s; resume with "
		                "'zonevm vol send -t %s'",
		                p->name, name, (unsigned long long)t->r.recv_offset, cause, tok);
	}
	if (!p->poisoned) {
		pool_obj_discard(p, &t->obj);
		if (pool_vol_destroy_head(p, t) || pool_txg_commit(p))
			p->poisoned = -EIO;
	}
	return pool_err(p, err, "receive into %s/%s failed: %s (nothing was changed)", p->name,
	                name, cause);
}

int vol_recv_token(struct pool *p, const char *name, char *buf, size_t len)
{
	char tmp[POOL_DS_NAME_MAX + 1];
	struct pool_ds *t;

	tmp_name(tmp, sizeof(tmp), name);
	t = pool_ds_lookup(p, tmp, 1);
	if (!t)
		return pool_err(p, -ENOENT, "no interrupted receive into %s/%s", p->name, name);
	pool_token_format(buf, len, t->r.recv_toguid, t->r.recv_fromguid, t->r.recv_offset);
	return 0;
}

int vol_recv_abort(struct pool *p, const char *name)
{
	char tmp[POOL_DS_NAME_MAX + 1];
	struct pool_ds *t;
	int err = pool_check_writable(p);

	if (err || (err = pool_txg_commit(p)) != 0)
		return err;
	tmp_name(tmp, sizeof(tmp), name);
	t = pool_ds_lookup(p, tmp, 1);
	if (!t)
		return pool_err(p, -ENOENT, "no interrupted receive into %s/%s", p->name, name);
	err = pool_vol_destroy_head(p, t);
	if (err) {
		p->poisoned = err;
		return err;
	}
	return pool_txg_commit(p);
}
