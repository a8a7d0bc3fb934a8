/*
 * aml.h - a small encoder for ACPI Machine Language (AML) byte code.
 *
 * It owns the encoding rules of ACPI 6.x chapter 20 (PkgLength, NameString,
 * integer and data objects, named and nested objects) and of the resource
 * descriptors of chapter 6.4, so that acpi.c can describe the DSDT in terms
 * of Scope / Device / Name / Method.  It never decides what a table
 * contains, never allocates and never writes past the buffer it was given.
 *
 * Every function appends to a struct aml_buf.  Errors are sticky: the first
 * one is kept in b->err and later calls only count bytes, so a caller checks
 * once at the end.  With p == NULL the encoder only measures: it writes
 * nothing, reports no -ENOSPC, and b->len is the exact size the same calls
 * need in a real buffer.
 *
 * Nested objects (Scope, Device, Method, Package, Buffer, ResourceTemplate)
 * are opened with a *_begin() call that returns a mark and closed with
 * aml_end(); the PkgLength, whose own size depends on the content, is
 * inserted at aml_end() by moving the content up.
 */
#ifndef ZONEVM_VMM_AML_H
#define ZONEVM_VMM_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml_buf {
	uint8_t *p;     /* output; NULL to measure only */
	size_t cap;     /* bytes available at p */
	size_t len;     /* bytes produced so far; may exceed cap, then err is set */
	int err;        /* 0, -ENOSPC (ran past cap) or -EINVAL (bad argument) */
	bool measure;   /* p == NULL: count bytes, write none */
	unsigned depth; /* open nested objects, for aml_finish() */
};

/* What a mark opened; aml_end() checks that it closes the right kind. */
enum aml_kind {
	AML_KIND_PKG = 1,     /* PkgLength only: Scope, Device, Method, Package */
	AML_KIND_BUFFER,      /* PkgLength + BufferSize */
	AML_KIND_RESTEMPLATE, /* as Buffer, after an EndTag */
};

struct aml_mark {
	size_t start; /* offset of the first content byte (after the opcode) */
	enum aml_kind kind;
};

void aml_init(struct aml_buf *b, void *p, size_t cap);
/* 0 when everything fit and every mark was closed, else a negative errno. */
int aml_finish(const struct aml_buf *b);

/* Raw bytes (used for ByteList content). */
void aml_byte(struct aml_buf *b, uint8_t v);
void aml_bytes(struct aml_buf *b, const void *data, size_t n);

/*
 * PkgLength for a package whose content (everything after the PkgLength)
 * is content_len bytes: writes 1-4 bytes.  Exposed for tests; nested
 * objects use it through aml_end().  Sets -EINVAL beyond 2^28 - 1.
 */
void aml_pkglength(struct aml_buf *b, size_t content_len);

/* Integer with its smallest encoding: Zero, One, Ones, Byte/Word/DWord/QWord. */
void aml_integer(struct aml_buf *b, uint64_t v);
/* String (ASCII 0x01-0x7F), NUL terminated in the stream. */
void aml_string(struct aml_buf *b, const char *s);
/*
 * NameString from an ASL-style path: "\\_SB.PCI0", "^PCI0", "_S5", "COM1".
 * Segments shorter than four characters are padded with '_'.  A segment
 * starts with A-Z or '_', continues with A-Z, 0-9 or '_'.
 */
void aml_namestring(struct aml_buf *b, const char *path);
/* EisaId("PNP0A08") as the compressed 32-bit integer ACPI expects. */
void aml_eisaid(struct aml_buf *b, const char *id);
/* The compressed value itself: 0 and false for a malformed id. */
bool aml_eisaid_value(const char *id, uint32_t *out);

/* Name (name, ...): call, then append exactly one data object. */
void aml_name(struct aml_buf *b, const char *name);
void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v);
void aml_name_eisaid(struct aml_buf *b, const char *name, const char *id);
void aml_name_string(struct aml_buf *b, const char *name, const char *s);

/* Return (...): call, then append the returned term (e.g. aml_integer). */
void aml_return(struct aml_buf *b);

/* Nested objects; close each with aml_end() in reverse order. */
struct aml_mark aml_scope_begin(struct aml_buf *b, const char *path);
struct aml_mark aml_device_begin(struct aml_buf *b, const char *name);
struct aml_mark aml_method_begin(struct aml_buf *b, const char *name, unsigned nargs,
                                 bool serialized);
/* Package with nelem (<= 255) elements; the caller appends them. */
struct aml_mark aml_package_begin(struct aml_buf *b, unsigned nelem);
/* Buffer: the caller appends raw bytes; BufferSize is filled in at aml_end(). */
struct aml_mark aml_buffer_begin(struct aml_buf *b);
/* ResourceTemplate: a Buffer of descriptors; aml_end() adds the EndTag. */
struct aml_mark aml_restemplate_begin(struct aml_buf *b);
void aml_end(struct aml_buf *b, struct aml_mark m);

/*
 * Resource descriptors (ACPI 6.x 6.4), appended inside a ResourceTemplate.
 * Address space descriptors are always MinFixed, MaxFixed, PosDecode with
 * granularity 0 and no translation, so _LEN = max - min + 1.
 */
enum aml_rw { AML_READ_ONLY = 0, AML_READ_WRITE = 1 };
enum aml_owner { AML_PRODUCER = 0, AML_CONSUMER = 1 }; /* general flags bit 0 */
enum aml_cache {
	AML_NON_CACHEABLE = 0,
	AML_CACHEABLE = 1,
	AML_WRITE_COMBINING = 2,
	AML_PREFETCHABLE = 3,
};

/* IO (Decode16, min, max, align, len) */
void aml_res_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags () {irq}, irq 0-15 */
void aml_res_irq_noflags(struct aml_buf *b, unsigned irq);
/* Memory32Fixed (rw, base, len) */
void aml_res_memory32_fixed(struct aml_buf *b, enum aml_rw rw, uint32_t base, uint32_t len);
/* WordBusNumber (owner, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len) */
void aml_res_word_bus(struct aml_buf *b, enum aml_owner owner, uint16_t min, uint16_t max);
/* WordIO (owner, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len) */
void aml_res_word_io(struct aml_buf *b, enum aml_owner owner, uint16_t min, uint16_t max);
/* DWordMemory (owner, PosDecode, MinFixed, MaxFixed, cache, rw, 0, min, max, 0, len) */
void aml_res_dword_memory(struct aml_buf *b, enum aml_owner owner, enum aml_cache cache,
                          enum aml_rw rw, uint32_t min, uint32_t max);
/* QWordMemory (owner, PosDecode, MinFixed, MaxFixed, cache, rw, 0, min, max, 0, len) */
void aml_res_qword_memory(struct aml_buf *b, enum aml_owner owner, enum aml_cache cache,
                          enum aml_rw rw, uint64_t min, uint64_t max);

#endif
