/*
 * test_serve_nbd.c - the NBD server (src/serve/nbd.c) against a hostile
 * client: the test speaks raw protocol bytes over a socketpair to
 * nbd_session() running on a thread with an in-memory export, and checks
 * every reply, every refusal, and that nothing outside the export is
 * touched.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "serve/internal.h"

#define DISK     (1u << 20)
#define IHAVEOPT 0x49484156454f5054ull
#define REPMAGIC 0x3e889045565a9ull

struct memdisk {
	uint8_t data[DISK];
	unsigned flushes;
};

static int md_read(void *a, void *buf, uint32_t len, uint64_t off)
{
	struct memdisk *m = a;
	assert_true(off <= DISK && len <= DISK - off);
	memcpy(buf, m->data + off, len);
	return 0;
}

static int md_write(void *a, const void *buf, uint32_t len, uint64_t off)
{
	struct memdisk *m = a;
	assert_true(off <= DISK && len <= DISK - off);
	memcpy(m->data + off, buf, len);
	return 0;
}

static int md_flush(void *a)
{
	((struct memdisk *)a)->flushes++;
	return 0;
}

static int md_zero(void *a, uint64_t off, uint32_t len)
{
	struct memdisk *m = a;
	assert_true(off <= DISK && len <= DISK - off);
	memset(m->data + off, 0, len);
	return 0;
}

static const struct nbd_export_ops md_ops = {md_read, md_write, md_flush, md_zero, md_zero};

struct session {
	struct memdisk *md;
	struct nbd_export ex;
	int fds[2]; /* [0] test (client), [1] server */
	pthread_t t;
	int result;
};

static void *session_main(void *arg)
{
	struct session *s = arg;

	s->result = nbd_session(s->fds[1], &s->ex);
	shutdown(s->fds[1], SHUT_RDWR);
	return NULL;
}

static struct session *start(bool ro)
{
	struct session *s = calloc(1, sizeof(*s));

	s->md = calloc(1, sizeof(*s->md));
	for (unsigned i = 0; i < DISK; i++)
		s->md->data[i] = (uint8_t)(i * 7 + 1);
	s->ex = (struct nbd_export){
	    .name = "tank/v", .size = DISK, .ro = ro, .ops = &md_ops, .arg = s->md};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s->fds), 0);
	assert_int_equal(pthread_create(&s->t, NULL, session_main, s), 0);
	return s;
}

/* Join the server and return what nbd_session returned. */
static int finish(struct session *s)
{
	int r;

	shutdown(s->fds[0], SHUT_WR);
	pthread_join(s->t, NULL);
	r = s->result;
	close(s->fds[0]);
	close(s->fds[1]);
	free(s->md);
	free(s);
	return r;
}

static void rd(struct session *s, void *buf, size_t len)
{
	assert_int_equal(serve_read_full(s->fds[0], buf, len), 0);
}

static void wr(struct session *s, const void *buf, size_t len)
{
	assert_int_equal(serve_write_full(s->fds[0], buf, len), 0);
}

static void wr32(struct session *s, uint32_t v)
{
	v = htobe32(v);
	wr(s, &v, 4);
}

static uint32_t rd32(struct session *s)
{
	uint32_t v;
	rd(s, &v, 4);
	return be32toh(v);
}

static uint64_t rd64(struct session *s)
{
	uint64_t v;
	rd(s, &v, 8);
	return be64toh(v);
}

static uint16_t rd16(struct session *s)
{
	uint16_t v;
	rd(s, &v, 2);
	return be16toh(v);
}

/* Server greeting, then our flags. */
static void greet(struct session *s, uint32_t cflags)
{
	assert_true(rd64(s) == 0x4e42444d41474943ull);
	assert_true(rd64(s) == IHAVEOPT);
	assert_int_equal(rd16(s), 3); /* FIXED_NEWSTYLE | NO_ZEROES */
	wr32(s, cflags);
}

static void opt(struct session *s, uint32_t o, const void *data, uint32_t len)
{
	uint64_t m = htobe64(IHAVEOPT);
	wr(s, &m, 8);
	wr32(s, o);
	wr32(s, len);
	if (len)
		wr(s, data, len);
}

/* Read one option reply; returns its type, data (up to 512 bytes) in BUF. */
static uint32_t opt_reply(struct session *s, uint32_t o, uint8_t *buf, uint32_t *len)
{
	uint32_t type, l;

	assert_true(rd64(s) == REPMAGIC);
	assert_int_equal(rd32(s), o);
	type = rd32(s);
	l = rd32(s);
	assert_true(l <= 512);
	if (l)
		rd(s, buf, l);
	if (len)
		*len = l;
	return type;
}

/* INFO/GO data: name, then N info requests. */
static uint32_t go_data(uint8_t *d, const char *name, uint16_t n, const uint16_t *req)
{
	uint32_t nl = (uint32_t)strlen(name), be = htobe32(nl);
	uint16_t bn = htobe16(n);

	memcpy(d, &be, 4);
	memcpy(d + 4, name, nl);
	memcpy(d + 4 + nl, &bn, 2);
	for (uint16_t i = 0; i < n; i++) {
		uint16_t r = htobe16(req[i]);
		memcpy(d + 6 + nl + 2 * i, &r, 2);
	}
	return 4 + nl + 2 + 2u * n;
}

/* A good GO: returns the transmission flags. */
static uint16_t go(struct session *s, const char *name)
{
	uint8_t d[300], buf[512];
	uint32_t len = go_data(d, name, 0, NULL), l;
	uint16_t flags = 0;
	uint32_t t;

	opt(s, 7, d, len);
	while ((t = opt_reply(s, 7, buf, &l)) == 3) {
		if (buf[0] == 0 && buf[1] == 0) { /* INFO_EXPORT */
			uint64_t size;
			memcpy(&size, buf + 2, 8);
			assert_true(be64toh(size) == DISK);
			flags = (uint16_t)(buf[10] << 8 | buf[11]);
		}
	}
	assert_int_equal(t, 1); /* ACK */
	return flags;
}

static void req(struct session *s, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
                uint32_t len)
{
	uint8_t h[28];
	uint32_t m = htobe32(0x25609513), l = htobe32(len);
	uint16_t f = htobe16(flags), t = htobe16(type);
	uint64_t o = htobe64(off);

	memcpy(h, &m, 4);
	memcpy(h + 4, &f, 2);
	memcpy(h + 6, &t, 2);
	memcpy(h + 8, &cookie, 8);
	memcpy(h + 16, &o, 8);
	memcpy(h + 24, &l, 4);
	wr(s, h, 28);
}

/* A simple reply: returns its error. */
static uint32_t simple(struct session *s, uint64_t cookie)
{
	uint64_t c;
	uint32_t e;

	assert_int_equal(rd32(s), 0x67446698);
	e = rd32(s);
	rd(s, &c, 8);
	assert_true(c == cookie);
	return e;
}

static void test_handshake_refusals(void **state)
{
	(void)state;
	struct session *s = start(false);
	uint8_t buf[512], d[300];
	uint32_t len;
	uint16_t bad_req[1] = {1};

	greet(s, 1);
	opt(s, 99, "x", 1);
	assert_true(opt_reply(s, 99, buf, NULL) == 0x80000001u); /* ERR_UNSUP */
	opt(s, 3, "x", 1);                                       /* LIST with data */
	assert_true(opt_reply(s, 3, buf, NULL) == 0x80000003u);
	opt(s, 3, NULL, 0);
	assert_int_equal(opt_reply(s, 3, buf, &len), 2); /* SERVER */
	assert_int_equal(len, 4 + 6);
	assert_memory_equal(buf + 4, "tank/v", 6);
	assert_int_equal(opt_reply(s, 3, buf, NULL), 1);
	/* GO: name length past the data, a count that does not match, a
	 * wrong name */
	memset(d, 0xff, 4);
	opt(s, 7, d, 6);
	assert_true(opt_reply(s, 7, buf, NULL) == 0x80000003u);
	len = go_data(d, "tank/v", 1, bad_req);
	opt(s, 7, d, len - 2);
	assert_true(opt_reply(s, 7, buf, NULL) == 0x80000003u);
	opt(s, 6, d, 3); /* INFO shorter than a header */
	assert_true(opt_reply(s, 6, buf, NULL) == 0x80000003u);
	len = go_data(d, "tank/w", 0, NULL);
	opt(s, 7, d, len);
	assert_true(opt_reply(s, 7, buf, NULL) == 0x80000006u); /* ERR_UNKNOWN */
	/* INFO does not start transmission; NAME comes when asked */
	len = go_data(d, "tank/v", 1, bad_req);
	opt(s, 6, d, len);
	bool named = false;
	uint32_t t;
	while ((t = opt_reply(s, 6, buf, &len)) == 3)
		if (buf[1] == 1)
			named = len == 8 && !memcmp(buf + 2, "tank/v", 6);
	assert_int_equal(t, 1);
	assert_true(named);
	opt(s, 8, "x", 1); /* STRUCTURED_REPLY with data */
	assert_true(opt_reply(s, 8, buf, NULL) == 0x80000003u);
	opt(s, 2, NULL, 0); /* ABORT */
	assert_int_equal(opt_reply(s, 2, buf, NULL), 1);
	assert_int_equal(finish(s), 0);
}

static void test_handshake_fatal(void **state)
{
	(void)state;
	struct session *s = start(false);
	uint64_t m = 0;

	greet(s, 0x80); /* unknown client flag */
	assert_int_equal(finish(s), -EPROTO);

	s = start(false);
	greet(s, 3);
	wr(s, &m, 8); /* not IHAVEOPT */
	wr32(s, 1);
	wr32(s, 0);
	assert_int_equal(finish(s), -EPROTO);

	s = start(false); /* an option longer than the server accepts */
	greet(s, 3);
	m = htobe64(IHAVEOPT);
	wr(s, &m, 8);
	wr32(s, 3);
	wr32(s, 0xfffffff0u);
	assert_int_equal(finish(s), -EPROTO);

	s = start(false);
	greet(s, 3);
	opt(s, 1, "nope", 4); /* EXPORT_NAME of another export: closed */
	assert_int_equal(finish(s), -ENOENT);
}

static void test_export_name(void **state)
{
	(void)state;
	struct session *s = start(true);
	uint8_t zero[124], want[124] = {0};

	greet(s, 1); /* without NO_ZEROES: 124 zero bytes follow */
	opt(s, 1, "tank/v", 6);
	assert_true(rd64(s) == DISK);
	uint16_t f = rd16(s);
	assert_true(f & 2); /* READ_ONLY */
	assert_false(f & (1u << 5));
	rd(s, zero, sizeof(zero));
	assert_memory_equal(zero, want, sizeof(want));
	req(s, 0, 1, 9, 0, 512); /* WRITE on a read-only export: EPERM */
	wr(s, s->md->data + 1024, 512);
	assert_int_equal(simple(s, 9), 1);
	req(s, 0, 4, 10, 0, 512); /* TRIM too */
	assert_int_equal(simple(s, 10), 1);
	req(s, 0, 3, 11, 0, 0); /* FLUSH is fine */
	assert_int_equal(simple(s, 11), 0);
	req(s, 0, 2, 0, 0, 0); /* DISC */
	assert_int_equal(finish(s), 0);
}

static void test_transmission(void **state)
{
	(void)state;
	struct session *s = start(false);
	static uint8_t buf[8192], data[4096];
	uint16_t f;

	greet(s, 3);
	f = go(s, "");
	assert_true(f & 1);          /* HAS_FLAGS */
	assert_true(f & (1u << 2));  /* FLUSH */
	assert_true(f & (1u << 5));  /* TRIM */
	assert_false(f & (1u << 1)); /* read-write */

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	req(s, 0, 1, 1, 4096, 4096);
	wr(s, data, 4096);
	assert_int_equal(simple(s, 1), 0);
	req(s, 0, 0, 2, 4096, 4096);
	assert_int_equal(simple(s, 2), 0);
	rd(s, buf, 4096);
	assert_memory_equal(buf, data, 4096);

	/* out of range, wrapping, empty, too long, unknown: errors, session goes on */
	req(s, 0, 0, 3, DISK - 100, 200);
	assert_int_equal(simple(s, 3), 22);
	req(s, 0, 0, 4, UINT64_MAX - 10, 4096);
	assert_int_equal(simple(s, 4), 22);
	req(s, 0, 0, 5, 0, 0);
	assert_int_equal(simple(s, 5), 22);
	req(s, 0, 0, 6, 0, 64u << 20);
	assert_int_equal(simple(s, 6), 22);
	req(s, 0, 1, 7, DISK - 10, 512); /* payload still consumed */
	wr(s, data, 512);
	assert_int_equal(simple(s, 7), 28);
	req(s, 0, 4, 8, DISK, 1);
	assert_int_equal(simple(s, 8), 28);
	req(s, 0, 5, 9, 0, 512); /* CACHE: not offered */
	assert_int_equal(simple(s, 9), 22);
	req(s, 0, 77, 10, 0, 512);
	assert_int_equal(simple(s, 10), 22);
	req(s, 0x100, 0, 11, 0, 512); /* unknown command flag */
	assert_int_equal(simple(s, 11), 22);
	assert_int_equal(s->md->data[DISK - 1], (uint8_t)((DISK - 1) * 7 + 1));

	/* FUA flushes; FLUSH flushes; TRIM and WRITE_ZEROES read back zero */
	req(s, 1, 1, 12, 0, 512);
	wr(s, data, 512);
	assert_int_equal(simple(s, 12), 0);
	assert_int_equal(s->md->flushes, 1);
	req(s, 0, 3, 13, 0, 0);
	assert_int_equal(simple(s, 13), 0);
	assert_int_equal(s->md->flushes, 2);
	req(s, 0, 4, 14, 4096, 1000);
	assert_int_equal(simple(s, 14), 0);
	req(s, 2, 6, 15, 5096, 100); /* NO_HOLE */
	assert_int_equal(simple(s, 15), 0);
	for (unsigned i = 4096; i < 5196; i++)
		assert_int_equal(s->md->data[i], 0);
	assert_int_equal(s->md->data[5196], data[1100]);

	/* a WRITE longer than the server takes cannot be skipped: closed */
	req(s, 0, 1, 16, 0, 0xffffffffu);
	assert_int_equal(finish(s), -EPROTO);
}

static void test_structured(void **state)
{
	(void)state;
	struct session *s = start(false);
	uint8_t buf[600];
	uint64_t c;

	greet(s, 3);
	opt(s, 8, NULL, 0);
	assert_int_equal(opt_reply(s, 8, buf, NULL), 1);
	go(s, "tank/v");
	req(s, 4, 0, 21, 100, 512); /* DF: one chunk anyway */
	assert_int_equal(rd32(s), 0x668e33ef);
	assert_int_equal(rd16(s), 1); /* DONE */
	assert_int_equal(rd16(s), 1); /* OFFSET_DATA */
	rd(s, &c, 8);
	assert_true(c == 21);
	assert_int_equal(rd32(s), 8 + 512);
	assert_true(rd64(s) == 100);
	rd(s, buf, 512);
	assert_memory_equal(buf, s->md->data + 100, 512);
	req(s, 0, 0, 22, DISK, 512); /* an error chunk */
	assert_int_equal(rd32(s), 0x668e33ef);
	assert_int_equal(rd16(s), 1);
	assert_int_equal(rd16(s), 32769);
	rd(s, &c, 8);
	assert_int_equal(rd32(s), 6);
	assert_int_equal(rd32(s), 22);
	assert_int_equal(rd16(s), 0);
	req(s, 0, 3, 23, 0, 0); /* others: simple replies */
	assert_int_equal(simple(s, 23), 0);
	/* a bad request magic ends the session */
	wr32(s, 0x12345678);
	wr(s, buf, 24);
	assert_int_equal(finish(s), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_refusals), cmocka_unit_test(test_handshake_fatal),
	    cmocka_unit_test(test_export_name),        cmocka_unit_test(test_transmission),
	    cmocka_unit_test(test_structured),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
