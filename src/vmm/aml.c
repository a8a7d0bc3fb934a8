/*
 * aml.c - AML byte-code encoder (see aml.h for the contract).
 *
 * Owns the byte encodings of ACPI 6.x chapter 20 and 6.4 (resource
 * descriptors).  It never decides table contents, never allocates and never
 * writes outside b->p[0 .. b->cap): every write goes through aml_put() or
 * aml_insert(), which stop writing at the first error and only count.
 */
#include "aml.h"

#include <errno.h>
#include <string.h>

/* AML opcodes (ACPI 6.x 20.3) used here. */
#define AML_ZERO_OP       0x00
#define AML_ONE_OP        0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0A
#define AML_WORD_PREFIX   0x0B
#define AML_DWORD_PREFIX  0x0C
#define AML_STRING_PREFIX 0x0D
#define AML_QWORD_PREFIX  0x0E
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_METHOD_OP     0x14
#define AML_DUAL_NAME     0x2E
#define AML_MULTI_NAME    0x2F
#define AML_EXT_OP_PREFIX 0x5B
#define AML_DEVICE_OP     0x82 /* after AML_EXT_OP_PREFIX */
#define AML_RETURN_OP     0xA4
#define AML_ONES_OP       0xFF

/* Resource descriptor tags (ACPI 6.x 6.4). */
#define AML_RES_IRQ_NOFLAGS  0x22 /* small item 0x04, length 2 */
#define AML_RES_IO           0x47 /* small item 0x08, length 7 */
#define AML_RES_END_TAG      0x79 /* small item 0x0F, length 1 */
#define AML_RES_MEMORY32_FIX 0x86
#define AML_RES_DWORD_ADDR   0x87
#define AML_RES_WORD_ADDR    0x88
#define AML_RES_QWORD_ADDR   0x8A

/* Address space resource types and flags (6.4.3.5). */
#define AML_ADDR_MEMORY     0
#define AML_ADDR_IO         1
#define AML_ADDR_BUS        2
#define AML_ADDR_MIN_FIXED  (1u << 2)
#define AML_ADDR_MAX_FIXED  (1u << 3)
#define AML_IO_ENTIRE_RANGE 3

#define AML_PKGLENGTH_MAX 0x0FFFFFFFu /* 28 bits */

static void aml_fail(struct aml_buf *b, int err)
{
	if (!b->err)
		b->err = err;
}

void aml_init(struct aml_buf *b, void *p, size_t cap)
{
	b->p = p;
	b->cap = p ? cap : 0;
	b->len = 0;
	b->err = 0;
	b->depth = 0;
	b->measure = !p;
}

int aml_finish(const struct aml_buf *b)
{
	if (b->err)
		return b->err;
	return b->depth ? -EINVAL : 0;
}

/* Append n bytes; after an error only count them. */
static void aml_put(struct aml_buf *b, const void *data, size_t n)
{
	if (!b->err && !b->measure) {
		if (n > b->cap - b->len)
			aml_fail(b, -ENOSPC);
		else if (n)
			memcpy(b->p + b->len, data, n);
	}
	b->len += n;
}

/* Insert n bytes at offset at (<= len), moving what follows up by n. */
static void aml_insert(struct aml_buf *b, size_t at, const uint8_t *data, size_t n)
{
	if (!b->err && !b->measure) {
		if (n > b->cap - b->len) {
			aml_fail(b, -ENOSPC);
		} else {
			memmove(b->p + at + n, b->p + at, b->len - at);
			memcpy(b->p + at, data, n);
		}
	}
	b->len += n;
}

void aml_byte(struct aml_buf *b, uint8_t v)
{
	aml_put(b, &v, 1);
}

void aml_bytes(struct aml_buf *b, const void *data, size_t n)
{
	aml_put(b, data, n);
}

static void aml_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * PkgLength (20.2.4) counts itself: 1 byte up to 63, else a lead byte with
 * the number of follow bytes in bits 7:6 and the low nibble in bits 3:0,
 * then the rest of the value 8 bits at a time.  Returns 0 if too large.
 */
static size_t aml_pkglength_encode(size_t content_len, uint8_t out[4])
{
	static const size_t max[5] = {0, 0x3F, 0xFFF, 0xFFFFF, AML_PKGLENGTH_MAX};

	for (size_t n = 1; n <= 4; n++) {
		if (content_len > max[n] - n)
			continue;
		size_t total = content_len + n;
		if (n == 1) {
			out[0] = (uint8_t)total;
			return 1;
		}
		out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0F));
		for (size_t i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return n;
	}
	return 0;
}

void aml_pkglength(struct aml_buf *b, size_t content_len)
{
	uint8_t enc[4];
	size_t n = aml_pkglength_encode(content_len, enc);

	if (!n) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_put(b, enc, n);
}

/* Smallest integer encoding (20.2.3); returns its size (1-9 bytes). */
static size_t aml_integer_encode(uint64_t v, uint8_t out[9])
{
	if (v == 0) {
		out[0] = AML_ZERO_OP;
		return 1;
	}
	if (v == 1) {
		out[0] = AML_ONE_OP;
		return 1;
	}
	/* Ones is all 64 bits set: our DSDT has revision 2 (64-bit integers). */
	if (v == UINT64_MAX) {
		out[0] = AML_ONES_OP;
		return 1;
	}
	if (v <= UINT8_MAX) {
		out[0] = AML_BYTE_PREFIX;
		aml_le(out + 1, v, 1);
		return 2;
	}
	if (v <= UINT16_MAX) {
		out[0] = AML_WORD_PREFIX;
		aml_le(out + 1, v, 2);
		return 3;
	}
	if (v <= UINT32_MAX) {
		out[0] = AML_DWORD_PREFIX;
		aml_le(out + 1, v, 4);
		return 5;
	}
	out[0] = AML_QWORD_PREFIX;
	aml_le(out + 1, v, 8);
	return 9;
}

void aml_integer(struct aml_buf *b, uint64_t v)
{
	uint8_t enc[9];

	aml_put(b, enc, aml_integer_encode(v, enc));
}

void aml_string(struct aml_buf *b, const char *s)
{
	if (!s) {
		aml_fail(b, -EINVAL);
		return;
	}
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c > 0x7F) {
			aml_fail(b, -EINVAL);
			return;
		}
	}
	aml_byte(b, AML_STRING_PREFIX);
	aml_put(b, s, strlen(s) + 1);
}

static bool aml_seg_char(char c, bool lead)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !lead && c >= '0' && c <= '9';
}

/* Length of the NameSeg at s (up to '.' or NUL), 0 if it is not one. */
static size_t aml_seg_len(const char *s)
{
	size_t n = 0;

	while (s[n] && s[n] != '.') {
		if (n == 4 || !aml_seg_char(s[n], n == 0))
			return 0;
		n++;
	}
	return n;
}

void aml_namestring(struct aml_buf *b, const char *path)
{
	const char *s = path;
	size_t nseg = 0;

	if (!s) {
		aml_fail(b, -EINVAL);
		return;
	}
	/* Validate first so that a bad path emits nothing. */
	if (*s == '\\')
		s++;
	else
		while (*s == '^')
			s++;
	for (const char *t = s; *t;) {
		size_t n = aml_seg_len(t);
		if (!n) {
			aml_fail(b, -EINVAL);
			return;
		}
		nseg++;
		t += n;
		if (*t == '.' && !*++t) { /* trailing dot */
			aml_fail(b, -EINVAL);
			return;
		}
	}
	if (nseg > 255) {
		aml_fail(b, -EINVAL);
		return;
	}

	aml_put(b, path, (size_t)(s - path)); /* '\' or '^' prefixes as they are */
	if (nseg == 0) {
		aml_byte(b, AML_ZERO_OP); /* NullName */
		return;
	}
	if (nseg == 2) {
		aml_byte(b, AML_DUAL_NAME);
	} else if (nseg > 2) {
		aml_byte(b, AML_MULTI_NAME);
		aml_byte(b, (uint8_t)nseg);
	}
	while (*s) {
		size_t n = aml_seg_len(s);
		char seg[4] = {'_', '_', '_', '_'};

		memcpy(seg, s, n);
		aml_put(b, seg, 4);
		s += n;
		if (*s == '.')
			s++;
	}
}

static int aml_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * EISA id (ASL EisaId, 19.6.35): three letters of 5 bits each ('A' = 1)
 * and four hex digits, stored big-endian in a 32-bit little-endian integer.
 */
bool aml_eisaid_value(const char *id, uint32_t *out)
{
	uint8_t v[4];
	int h[4];

	*out = 0;
	if (!id || strlen(id) != 7)
		return false;
	for (int i = 0; i < 3; i++)
		if (id[i] < 'A' || id[i] > 'Z')
			return false;
	for (int i = 0; i < 4; i++) {
		h[i] = aml_hex(id[3 + i]);
		if (h[i] < 0)
			return false;
	}
	unsigned c0 = (unsigned)id[0] & 0x1F, c1 = (unsigned)id[1] & 0x1F,
	         c2 = (unsigned)id[2] & 0x1F;
	v[0] = (uint8_t)((c0 << 2) | (c1 >> 3));
	v[1] = (uint8_t)(((c1 & 7) << 5) | c2);
	v[2] = (uint8_t)((h[0] << 4) | h[1]);
	v[3] = (uint8_t)((h[2] << 4) | h[3]);
	*out = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
	return true;
}

void aml_eisaid(struct aml_buf *b, const char *id)
{
	uint32_t v;

	if (!aml_eisaid_value(id, &v)) {
		aml_fail(b, -EINVAL);
		return;
	}
	/* Always a DWord, as iasl emits it, so the id is easy to find. */
	uint8_t enc[5] = {AML_DWORD_PREFIX};
	aml_le(enc + 1, v, 4);
	aml_put(b, enc, sizeof(enc));
}

void aml_name(struct aml_buf *b, const char *name)
{
	aml_byte(b, AML_NAME_OP);
	aml_namestring(b, name);
}

void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v)
{
	aml_name(b, name);
	aml_integer(b, v);
}

void aml_name_eisaid(struct aml_buf *b, const char *name, const char *id)
{
	aml_name(b, name);
	aml_eisaid(b, id);
}

void aml_name_string(struct aml_buf *b, const char *name, const char *s)
{
	aml_name(b, name);
	aml_string(b, s);
}

void aml_return(struct aml_buf *b)
{
	aml_byte(b, AML_RETURN_OP);
}

static struct aml_mark aml_open(struct aml_buf *b, enum aml_kind kind)
{
	b->depth++;
	return (struct aml_mark){.start = b->len, .kind = kind};
}

struct aml_mark aml_scope_begin(struct aml_buf *b, const char *path)
{
	aml_byte(b, AML_SCOPE_OP);
	struct aml_mark m = aml_open(b, AML_KIND_PKG);
	aml_namestring(b, path);
	return m;
}

struct aml_mark aml_device_begin(struct aml_buf *b, const char *name)
{
	static const uint8_t op[2] = {AML_EXT_OP_PREFIX, AML_DEVICE_OP};

	aml_put(b, op, sizeof(op));
	struct aml_mark m = aml_open(b, AML_KIND_PKG);
	aml_namestring(b, name);
	return m;
}

struct aml_mark aml_method_begin(struct aml_buf *b, const char *name, unsigned nargs,
                                 bool serialized)
{
	aml_byte(b, AML_METHOD_OP);
	struct aml_mark m = aml_open(b, AML_KIND_PKG);
	aml_namestring(b, name);
	if (nargs > 7)
		aml_fail(b, -EINVAL);
	/* MethodFlags: ArgCount 2:0, SerializeFlag 3, SyncLevel 7:4 (0) */
	aml_byte(b, (uint8_t)((nargs & 7) | (serialized ? 1u << 3 : 0)));
	return m;
}

struct aml_mark aml_package_begin(struct aml_buf *b, unsigned nelem)
{
	aml_byte(b, AML_PACKAGE_OP);
	struct aml_mark m = aml_open(b, AML_KIND_PKG);
	if (nelem > 255)
		aml_fail(b, -EINVAL); /* would need VarPackage */
	aml_byte(b, (uint8_t)nelem);
	return m;
}

struct aml_mark aml_buffer_begin(struct aml_buf *b)
{
	aml_byte(b, AML_BUFFER_OP);
	return aml_open(b, AML_KIND_BUFFER);
}

struct aml_mark aml_restemplate_begin(struct aml_buf *b)
{
	aml_byte(b, AML_BUFFER_OP);
	return aml_open(b, AML_KIND_RESTEMPLATE);
}

void aml_end(struct aml_buf *b, struct aml_mark m)
{
	uint8_t prefix[4 + 9];
	size_t n, intlen = 0;

	if (!b->depth || m.start > b->len) {
		aml_fail(b, -EINVAL);
		return;
	}
	b->depth--;
	if (m.kind == AML_KIND_RESTEMPLATE) {
		/* EndTag; checksum 0 means "treat as correct" (6.4.2.9). */
		static const uint8_t end[2] = {AML_RES_END_TAG, 0};
		aml_put(b, end, sizeof(end));
	}
	switch (m.kind) {
	case AML_KIND_RESTEMPLATE:
	case AML_KIND_BUFFER: {
		uint8_t size[9];
		intlen = aml_integer_encode(b->len - m.start, size);
		n = aml_pkglength_encode(b->len - m.start + intlen, prefix);
		if (n)
			memcpy(prefix + n, size, intlen);
		break;
	}
	case AML_KIND_PKG:
		n = aml_pkglength_encode(b->len - m.start, prefix);
		break;
	default:
		aml_fail(b, -EINVAL);
		return;
	}
	if (!n) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_insert(b, m.start, prefix, n + intlen);
}

void aml_res_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	uint8_t d[8] = {AML_RES_IO, 1 /* Decode16 */};

	if (min > max)
		aml_fail(b, -EINVAL);
	aml_le(d + 2, min, 2);
	aml_le(d + 4, max, 2);
	d[6] = align;
	d[7] = len;
	aml_put(b, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml_buf *b, unsigned irq)
{
	uint8_t d[3] = {AML_RES_IRQ_NOFLAGS};

	if (irq > 15) {
		aml_fail(b, -EINVAL);
		irq = 0;
	}
	aml_le(d + 1, 1u << irq, 2);
	aml_put(b, d, sizeof(d));
}

void aml_res_memory32_fixed(struct aml_buf *b, enum aml_rw rw, uint32_t base, uint32_t len)
{
	uint8_t d[12] = {AML_RES_MEMORY32_FIX, 9, 0};

	d[3] = rw == AML_READ_WRITE;
	aml_le(d + 4, base, 4);
	aml_le(d + 8, len, 4);
	aml_put(b, d, sizeof(d));
}

/*
 * Word/DWord/QWord address space descriptor (6.4.3.5.1-3): tag, length,
 * resource type, general flags, type-specific flags, then granularity,
 * min, max, translation offset and length, each width bytes.
 */
static void aml_res_addr(struct aml_buf *b, unsigned width, uint8_t type, enum aml_owner owner,
                         uint8_t tflags, uint64_t min, uint64_t max)
{
	uint8_t d[6 + 5 * 8];
	size_t size = 6 + 5 * (size_t)width;
	uint64_t limit = width == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * width)) - 1;

	/* _LEN = max - min + 1 must fit in the field too. */
	if (min > max || max > limit || max - min == limit)
		aml_fail(b, -EINVAL);
	memset(d, 0, sizeof(d));
	d[0] = width == 2   ? AML_RES_WORD_ADDR
	       : width == 4 ? AML_RES_DWORD_ADDR
	                    : AML_RES_QWORD_ADDR;
	aml_le(d + 1, size - 3, 2);
	d[3] = type;
	d[4] = (uint8_t)(AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED | (owner == AML_CONSUMER));
	d[5] = tflags;
	/* granularity 0 */
	aml_le(d + 6 + 1 * width, min, width);
	aml_le(d + 6 + 2 * width, max, width);
	/* translation 0 */
	aml_le(d + 6 + 4 * width, max - min + 1, width);
	aml_put(b, d, size);
}

void aml_res_word_bus(struct aml_buf *b, enum aml_owner owner, uint16_t min, uint16_t max)
{
	aml_res_addr(b, 2, AML_ADDR_BUS, owner, 0, min, max);
}

void aml_res_word_io(struct aml_buf *b, enum aml_owner owner, uint16_t min, uint16_t max)
{
	aml_res_addr(b, 2, AML_ADDR_IO, owner, AML_IO_ENTIRE_RANGE, min, max);
}

/* Memory type-specific flags: _MEM in bits 2:1, _RW in bit 0. */
static uint8_t aml_mem_flags(enum aml_cache cache, enum aml_rw rw)
{
	return (uint8_t)(((unsigned)cache & 3) << 1 | (rw == AML_READ_WRITE));
}

void aml_res_dword_memory(struct aml_buf *b, enum aml_owner owner, enum aml_cache cache,
                          enum aml_rw rw, uint32_t min, uint32_t max)
{
	aml_res_addr(b, 4, AML_ADDR_MEMORY, owner, aml_mem_flags(cache, rw), min, max);
}

void aml_res_qword_memory(struct aml_buf *b, enum aml_owner owner, enum aml_cache cache,
                          enum aml_rw rw, uint64_t min, uint64_t max)
{
	aml_res_addr(b, 8, AML_ADDR_MEMORY, owner, aml_mem_flags(cache, rw), min, max);
}
