/*
 * nbd.c - the NBD protocol, server side (the protocol document is
 * github.com/NetworkBlockDevice/nbd doc/proto.md): one session on a
 * connected socket, on any struct nbd_export.
 *
 * What it owns: every byte a client sends, checked before use.  The client
 * is hostile: lengths are bounded before anything is allocated, offsets are
 * checked against the export size without overflow, unknown options get
 * ERR_UNSUP and unknown commands EINVAL.  Only what cannot be skipped ends
 * the session: a bad magic, an option longer than NBD_OPT_MAX, a WRITE
 * payload over NBD_MAX_PAYLOAD.  What it never does: open a volume or a
 * socket (nbd_export.c does).
 *
 * Handshake (fixed newstyle; all numbers big-endian):
 *   S: "NBDMAGIC" "IHAVEOPT" u16 flags (FIXED_NEWSTYLE | NO_ZEROES)
 *   C: u32 flags
 *   C: "IHAVEOPT" u32 option u32 length, data      (repeated)
 *   S: u64 0x3e889045565a9 u32 option u32 type u32 length, data
 *   EXPORT_NAME: S: u64 size u16 flags [124 zero bytes]  -> transmission
 *   GO/INFO:     S: INFO(EXPORT), INFO(BLOCK_SIZE)[, INFO(NAME)], ACK
 *
 * Transmission:
 *   C: u32 0x25609513 u16 flags u16 type u64 cookie u64 offset u32 length
 *      [length bytes for WRITE]
 *   S: simple:     u32 0x67446698 u32 error u64 cookie [data for READ]
 *      structured: u32 0x668e33ef u16 flags(DONE) u16 type u64 cookie
 *                  u32 length, payload  (READ only, once negotiated)
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define NBD_MAGIC         0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT      0x49484156454f5054ull
#define NBD_REP_MAGIC     0x3e889045565a9ull
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_MAGIC  0x67446698u
#define NBD_STRUCT_MAGIC  0x668e33efu
#define NBD_OPT_MAX       4096u /* longest option data accepted */
#define NBD_MAX_OPTIONS   1024u /* options before transmission */

#define NBD_FLAG_FIXED_NEWSTYLE 1u
#define NBD_FLAG_NO_ZEROES      2u

enum {
	NBD_OPT_EXPORT_NAME = 1,
	NBD_OPT_ABORT = 2,
	NBD_OPT_LIST = 3,
	NBD_OPT_INFO = 6,
	NBD_OPT_GO = 7,
	NBD_OPT_STRUCTURED_REPLY = 8,
};

#define NBD_REP_ACK         1u
#define NBD_REP_SERVER      2u
#define NBD_REP_INFO        3u
#define NBD_REP_ERR_UNSUP   0x80000001u
#define NBD_REP_ERR_INVALID 0x80000003u
#define NBD_REP_ERR_UNKNOWN 0x80000006u

enum { NBD_INFO_EXPORT = 0, NBD_INFO_NAME = 1, NBD_INFO_BLOCK_SIZE = 3 };

#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)

enum {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_WRITE_ZEROES = 6,
};

#define NBD_CMD_FLAG_FUA     (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF      (1u << 2)

#define NBD_REPLY_FLAG_DONE   1u
#define NBD_REPLY_OFFSET_DATA 1u
#define NBD_REPLY_ERROR       32769u

/* NBD error values (the protocol's own numbers). */
enum {
	NBD_EPERM = 1,
	NBD_EIO = 5,
	NBD_ENOMEM = 12,
	NBD_EINVAL = 22,
	NBD_ENOSPC = 28,
	NBD_EOVERFLOW = 75,
	NBD_ENOTSUP = 95,
};

struct nbd_conn {
	int fd;
	const struct nbd_export *ex;
	bool structured;
	bool no_zeroes;
	uint8_t *buf;
	size_t buflen;
};

static int nbd_errno(int r)
{
	switch (-r) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	default:
		return NBD_EIO;
	}
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

/* A buffer of at least LEN bytes (LEN <= NBD_MAX_PAYLOAD). */
static int nbd_buf(struct nbd_conn *c, size_t len)
{
	if (len <= c->buflen)
		return 0;
	uint8_t *b = realloc(c->buf, len);
	if (!b)
		return -ENOMEM;
	c->buf = b;
	c->buflen = len;
	return 0;
}

static int nbd_opt_reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                         uint32_t len)
{
	uint8_t h[20];
	int r;

	put64(h, NBD_REP_MAGIC);
	put32(h + 8, opt);
	put32(h + 12, type);
	put32(h + 16, len);
	r = serve_write_full(c->fd, h, sizeof(h));
	if (!r && len)
		r = serve_write_full(c->fd, data, len);
	return r;
}

static uint16_t nbd_tx_flags(const struct nbd_export *ex)
{
	uint16_t f =
	    NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF;

	if (ex->ro)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
	return f;
}

/* Does NAME (LEN bytes, not NUL-ended) select our export?  "" does too. */
static bool nbd_name_ok(const struct nbd_export *ex, const uint8_t *name, uint32_t len)
{
	return len == 0 || (len == strlen(ex->name) && !memcmp(name, ex->name, len));
}

/*
 * INFO or GO: data is u32 namelen, name, u16 n, n x u16 info requests.
 * 1 when the export was described and ACKed, 0 after an error reply.
 */
static int nbd_opt_info(struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
	uint8_t info[12 + 256];
	bool want_name = false;
	uint32_t nl;
	uint16_t n;
	int r;

	if (len < 6 || (nl = get32(d)) > len - 6)
		return nbd_opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
	n = get16(d + 4 + nl);
	if ((uint64_t)4 + nl + 2 + 2ull * n != len)
		return nbd_opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
	for (uint16_t i = 0; i < n; i++)
		if (get16(d + 6 + nl + 2u * i) == NBD_INFO_NAME)
			want_name = true;
	if (!nbd_name_ok(c->ex, d + 4, nl))
		return nbd_opt_reply(c, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
	put16(info, NBD_INFO_EXPORT);
	put64(info + 2, c->ex->size);
	put16(info + 10, nbd_tx_flags(c->ex));
	r = nbd_opt_reply(c, opt, NBD_REP_INFO, info, 12);
	if (r)
		return r;
	/* Any alignment works; 4 KiB is what the pool prefers. */
	put16(info, NBD_INFO_BLOCK_SIZE);
	put32(info + 2, 1);
	put32(info + 6, 4096);
	put32(info + 10, NBD_MAX_PAYLOAD);
	r = nbd_opt_reply(c, opt, NBD_REP_INFO, info, 14);
	if (!r && want_name) {
		size_t l = strnlen(c->ex->name, 255);
		put16(info, NBD_INFO_NAME);
		memcpy(info + 2, c->ex->name, l);
		r = nbd_opt_reply(c, opt, NBD_REP_INFO, info, (uint32_t)(2 + l));
	}
	if (!r)
		r = nbd_opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	return r ? r : 1;
}

/* Option haggling: 1 when transmission starts, 0 when the client left. */
static int nbd_handshake(struct nbd_conn *c)
{
	uint8_t h[18], d[NBD_OPT_MAX];
	uint32_t cflags;
	int r;

	put64(h, NBD_MAGIC);
	put64(h + 8, NBD_IHAVEOPT);
	put16(h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	r = serve_write_full(c->fd, h, 18);
	if (r || (r = serve_read_full(c->fd, h, 4)))
		return r;
	cflags = get32(h);
	if (cflags & ~(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))
		return -EPROTO; /* the protocol says: close */
	c->no_zeroes = cflags & NBD_FLAG_NO_ZEROES;
	for (unsigned k = 0; k < NBD_MAX_OPTIONS; k++) {
		r = serve_read_full(c->fd, h, 16);
		if (r)
			return r == -EPIPE ? 0 : r;
		uint32_t opt = get32(h + 8), len = get32(h + 12);
		if (get64(h) != NBD_IHAVEOPT || len > NBD_OPT_MAX)
			return -EPROTO;
		if (len && (r = serve_read_full(c->fd, d, len)))
			return r;
		switch (opt) {
		case NBD_OPT_EXPORT_NAME: {
			uint8_t e[10 + 124] = {0};
			if (!nbd_name_ok(c->ex, d, len))
				return -ENOENT; /* the only answer is to close */
			put64(e, c->ex->size);
			put16(e + 8, nbd_tx_flags(c->ex));
			r = serve_write_full(c->fd, e, c->no_zeroes ? 10 : sizeof(e));
			return r ? r : 1;
		}
		case NBD_OPT_ABORT:
			nbd_opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
			return 0;
		case NBD_OPT_LIST:
			if (len) {
				r = nbd_opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
			} else {
				size_t l = strnlen(c->ex->name, 255);
				put32(d, (uint32_t)l);
				memcpy(d + 4, c->ex->name, l);
				r = nbd_opt_reply(c, opt, NBD_REP_SERVER, d, (uint32_t)(4 + l));
				if (!r)
					r = nbd_opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
			}
			break;
		case NBD_OPT_STRUCTURED_REPLY:
			if (!len)
				c->structured = true;
			r = nbd_opt_reply(c, opt, len ? NBD_REP_ERR_INVALID : NBD_REP_ACK, NULL, 0);
			break;
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			r = nbd_opt_info(c, opt, d, len);
			/* Transmission starts after a GO that was answered with ACK. */
			if (r == 1 && opt == NBD_OPT_GO)
				return 1;
			if (r == 1)
				r = 0;
			break;
		default:
			r = nbd_opt_reply(c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
		}
		if (r)
			return r;
	}
	return -EPROTO;
}

/* Check a request against the export: 0 or an NBD error value. */
static int nbd_check(const struct nbd_export *ex, uint16_t flags, uint16_t type, uint64_t off,
                     uint32_t len)
{
	bool data = type == NBD_CMD_READ || type == NBD_CMD_WRITE;
	bool range = data || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;

	if (flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF))
		return NBD_EINVAL;
	if (type != NBD_CMD_READ && type != NBD_CMD_WRITE && type != NBD_CMD_FLUSH &&
	    type != NBD_CMD_TRIM && type != NBD_CMD_WRITE_ZEROES)
		return NBD_EINVAL;
	if (ex->ro && type != NBD_CMD_READ && type != NBD_CMD_FLUSH)
		return NBD_EPERM;
	if (!range)
		return 0;
	if (len == 0 || (data && len > NBD_MAX_PAYLOAD))
		return NBD_EINVAL;
	if (off > ex->size || len > ex->size - off)
		return type == NBD_CMD_READ ? NBD_EINVAL : NBD_ENOSPC;
	return 0;
}

static int nbd_simple_reply(struct nbd_conn *c, uint32_t err, const uint8_t *cookie,
                            const void *data, uint32_t len)
{
	uint8_t h[16];
	struct iovec iov[2] = {{h, 16}, {(void *)data, len}};
	ssize_t n;

	put32(h, NBD_SIMPLE_MAGIC);
	put32(h + 4, err);
	memcpy(h + 8, cookie, 8);
	n = writev(c->fd, iov, data && len ? 2 : 1);
	if (n == (ssize_t)(16 + (data ? len : 0)))
		return 0;
	if (n < 0)
		return -errno;
	/* A short writev: finish it byte-exact. */
	size_t done = (size_t)n;
	if (done < 16) {
		int r = serve_write_full(c->fd, h + done, 16 - done);
		if (r)
			return r;
		done = 16;
	}
	return data
	           ? serve_write_full(c->fd, (const uint8_t *)data + (done - 16), len - (done - 16))
	           : 0;
}

/* READ's reply once structured replies were negotiated: one chunk. */
static int nbd_struct_read_reply(struct nbd_conn *c, uint32_t err, const uint8_t *cookie,
                                 uint64_t off, uint32_t len)
{
	uint8_t h[20 + 8];
	int r;

	put32(h, NBD_STRUCT_MAGIC);
	put16(h + 4, NBD_REPLY_FLAG_DONE);
	memcpy(h + 8, cookie, 8);
	if (err) {
		put16(h + 6, NBD_REPLY_ERROR);
		put32(h + 16, 6);
		put32(h + 20, err);
		put16(h + 24, 0); /* no message */
		return serve_write_full(c->fd, h, 26);
	}
	put16(h + 6, NBD_REPLY_OFFSET_DATA);
	put32(h + 16, 8 + len);
	put64(h + 20, off);
	r = serve_write_full(c->fd, h, 28);
	return r ? r : serve_write_full(c->fd, c->buf, len);
}

static int nbd_do(struct nbd_conn *c, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
	const struct nbd_export_ops *o = c->ex->ops;
	void *a = c->ex->arg;
	int r = 0;

	switch (type) {
	case NBD_CMD_READ:
		return o->read(a, c->buf, len, off);
	case NBD_CMD_WRITE:
		r = o->write(a, c->buf, len, off);
		break;
	case NBD_CMD_FLUSH:
		return o->flush(a);
	case NBD_CMD_TRIM:
		r = o->trim(a, off, len);
		break;
	case NBD_CMD_WRITE_ZEROES:
		r = o->zero(a, off, len);
		break;
	}
	if (!r && (flags & NBD_CMD_FLAG_FUA))
		r = o->flush(a);
	return r;
}

static int nbd_transmission(struct nbd_conn *c)
{
	uint8_t h[28];

	for (;;) {
		int r = serve_read_full(c->fd, h, 28);
		if (r)
			return r == -EPIPE ? 0 : r;
		uint16_t flags = get16(h + 4), type = get16(h + 6);
		uint64_t off = get64(h + 16);
		uint32_t len = get32(h + 24), err;
		const uint8_t *cookie = h + 8;

		if (get32(h) != NBD_REQUEST_MAGIC)
			return -EPROTO;
		if (type == NBD_CMD_DISC)
			return 0;
		if (type == NBD_CMD_WRITE) {
			/* The payload follows whatever we think of the request. */
			if (len > NBD_MAX_PAYLOAD)
				return -EPROTO;
			if ((r = nbd_buf(c, len)) || (r = serve_read_full(c->fd, c->buf, len)))
				return r;
		}
		err = (uint32_t)nbd_check(c->ex, flags, type, off, len);
		if (!err && type == NBD_CMD_READ && nbd_buf(c, len))
			err = NBD_ENOMEM;
		if (!err)
			err = (uint32_t)nbd_errno(nbd_do(c, flags, type, off, len));
		if (type == NBD_CMD_READ && c->structured)
			r = nbd_struct_read_reply(c, err, cookie, off, len);
		else
			r = nbd_simple_reply(c, err, cookie,
			                     type == NBD_CMD_READ && !err ? c->buf : NULL, len);
		if (r)
			return r;
	}
}

int nbd_session(int fd, const struct nbd_export *ex)
{
	struct nbd_conn c = {.fd = fd, .ex = ex};
	int r = nbd_handshake(&c);

	if (r == 1)
		r = nbd_transmission(&c);
	free(c.buf);
	return r;
}
