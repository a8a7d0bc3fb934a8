/*
 * test_acpi.c - unit tests of the ACPI tables (src/vmm/acpi.c) and the AML
 * encoder (src/vmm/aml.c).
 *
 * Every table is parsed back from the buffer the way a guest finds it
 * (RSDP -> XSDT -> tables, FADT -> DSDT) and checked field by field; the
 * DSDT is walked by a small AML reader of its own (not the encoder's code)
 * that checks every PkgLength nests exactly and collects the named objects.
 * Buffer-size tests use exact-size heap buffers so that AddressSanitizer
 * catches any write past len.  iasl checks the same tables separately
 * (acpi_iasl.sh).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/acpi.h"
#include "vmm/aml.h"

#define BUF_LEN (1u << 20)
#define GPA     UINT64_C(0xE0000)

static const struct acpi_config base_cfg = {
    .ncpus = 2,
    .lapic_addr = 0xFEE00000,
    .ioapic_addr = 0xFEC00000,
    .ioapic_id = 3,
    .ioapic_gsi_base = 0,
    .ecam_base = 0xB0000000,
    .pci_bus_start = 0,
    .pci_bus_end = 255,
    .pci_mmio32_base = 0xC0000000,
    .pci_mmio32_size = 0x3EC00000,
    .pci_mmio64_base = UINT64_C(0x10000000000),
    .pci_mmio64_size = UINT64_C(0x1000000000),
    .pm_port = 0x600,
    .reset_value = 0x01,
    .com1_port = 0x3F8,
    .com1_irq = 4,
};

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* ------------------------------------------------------------------ */
/* Finding tables as a guest does                                      */

struct tables {
	uint8_t *buf;
	uint64_t gpa;
	long used;
	const uint8_t *rsdp, *xsdt, *fadt, *madt, *mcfg, *dsdt;
};

/* A table by address: header inside the used bytes, checksum, ids. */
static const uint8_t *table_at(const struct tables *t, uint64_t gpa, const char *sig)
{
	assert_true(gpa >= t->gpa);
	uint64_t off = gpa - t->gpa;
	assert_true(off + 36 <= (uint64_t)t->used);
	const uint8_t *p = t->buf + off;
	uint32_t len = (uint32_t)le(p + 4, 4);
	assert_memory_equal(p, sig, 4);
	assert_true(len >= 36);
	assert_true(off + len <= (uint64_t)t->used);
	assert_int_equal(sum8(p, len), 0);
	assert_memory_equal(p + 10, "ZONEVM", 6);
	assert_memory_equal(p + 16, "ZONEVMVM", 8);
	assert_memory_equal(p + 28, "ZVM ", 4);
	return p;
}

static void tables_parse(struct tables *t)
{
	const uint8_t *r = t->buf;

	t->rsdp = r;
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum8(r, 20), 0);
	assert_int_equal(sum8(r, 36), 0);
	assert_memory_equal(r + 9, "ZONEVM", 6);
	assert_int_equal(r[15], 2);
	assert_int_equal(le(r + 20, 4), 36);

	t->xsdt = table_at(t, le(r + 24, 8), "XSDT");
	assert_int_equal(t->xsdt[8], 1);
	assert_int_equal(le(t->xsdt + 4, 4), 36 + 3 * 8);
	t->fadt = table_at(t, le(t->xsdt + 36, 8), "FACP");
	t->madt = table_at(t, le(t->xsdt + 44, 8), "APIC");
	t->mcfg = table_at(t, le(t->xsdt + 52, 8), "MCFG");
	t->dsdt = table_at(t, le(t->fadt + 140, 8), "DSDT");
	assert_int_equal(t->dsdt[8], 2);

	/* No two tables overlap, and none overlaps the RSDP. */
	const uint8_t *all[] = {t->xsdt, t->fadt, t->madt, t->mcfg, t->dsdt};
	for (size_t i = 0; i < 5; i++) {
		size_t ai = (size_t)(all[i] - t->buf), li = le(all[i] + 4, 4);
		assert_true(ai >= 36);
		for (size_t j = i + 1; j < 5; j++) {
			size_t aj = (size_t)(all[j] - t->buf), lj = le(all[j] + 4, 4);
			assert_true(ai + li <= aj || aj + lj <= ai);
		}
	}
}

static void tables_build(struct tables *t, const struct acpi_config *cfg, uint64_t gpa)
{
	t->buf = calloc(1, BUF_LEN);
	assert_non_null(t->buf);
	t->gpa = gpa;
	t->used = acpi_build(cfg, t->buf, gpa, BUF_LEN);
	assert_true(t->used > 0);
	tables_parse(t);
}

static void tables_free(struct tables *t)
{
	free(t->buf);
}

/* ------------------------------------------------------------------ */
/* A small AML reader, independent of aml.c                            */

struct node {
	char path[64];
	const uint8_t *obj; /* the data object (Name) or the method body */
	size_t len;
	bool method;
};

struct walk {
	struct node n[64];
	int count;
};

/* PkgLength: returns its size and the value (which counts itself). */
static size_t rd_pkglen(const uint8_t *p, size_t avail, size_t *val)
{
	assert_true(avail >= 1);
	size_t n = (size_t)(p[0] >> 6) + 1;
	assert_true(avail >= n);
	if (n == 1) {
		*val = p[0] & 0x3F;
		return 1;
	}
	assert_int_equal(p[0] & 0x30, 0);
	*val = p[0] & 0x0F;
	for (size_t i = 1; i < n; i++)
		*val |= (size_t)p[i] << (4 + 8 * (i - 1));
	/* The encoder must use the shortest form. */
	static const size_t min[5] = {0, 0, 0x40, 0x1000, 0x100000};
	assert_true(*val >= min[n]);
	return n;
}

static bool seg_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* NameString into "\\_SB_.PCI0" form; returns bytes read. */
static size_t rd_name(const uint8_t *p, size_t avail, char *out, size_t outlen)
{
	size_t i = 0, o = 0, nseg;

	while (i < avail && (p[i] == '\\' || p[i] == '^')) {
		assert_true(o + 1 < outlen);
		out[o++] = (char)p[i++];
	}
	assert_true(i < avail);
	if (p[i] == 0x00) {
		nseg = 0;
		i++;
	} else if (p[i] == 0x2E) {
		nseg = 2;
		i++;
	} else if (p[i] == 0x2F) {
		assert_true(i + 1 < avail);
		nseg = p[i + 1];
		i += 2;
	} else {
		nseg = 1;
	}
	for (size_t s = 0; s < nseg; s++) {
		assert_true(i + 4 <= avail);
		assert_true(o + 6 < outlen);
		if (s)
			out[o++] = '.';
		for (int c = 0; c < 4; c++) {
			assert_true(seg_char(p[i + c]));
			out[o++] = (char)p[i + c];
		}
		i += 4;
	}
	out[o] = '\0';
	return i;
}

static size_t rd_data(const uint8_t *p, size_t avail);

/* Integer: returns its size, the value in *v. */
static size_t rd_int(const uint8_t *p, size_t avail, uint64_t *v)
{
	static const unsigned width[] = {[0x0A] = 1, [0x0B] = 2, [0x0C] = 4, [0x0E] = 8};

	assert_true(avail >= 1);
	if (p[0] == 0x00 || p[0] == 0x01) {
		*v = p[0];
		return 1;
	}
	if (p[0] == 0xFF) {
		*v = UINT64_MAX;
		return 1;
	}
	assert_true(p[0] < sizeof(width) / sizeof(width[0]) && width[p[0]]);
	unsigned w = width[p[0]];
	assert_true(avail >= 1 + w);
	*v = le(p + 1, w);
	return 1 + w;
}

/* A DataObject: integer, string, buffer or package; returns its size. */
static size_t rd_data(const uint8_t *p, size_t avail)
{
	size_t pl, n;
	uint64_t v;

	assert_true(avail >= 1);
	switch (p[0]) {
	case 0x0D: {
		const uint8_t *z = memchr(p + 1, 0, avail - 1);
		assert_non_null(z);
		return (size_t)(z - p) + 1;
	}
	case 0x11: /* Buffer: PkgLength BufferSize ByteList */
		n = rd_pkglen(p + 1, avail - 1, &pl);
		assert_true(1 + pl <= avail);
		size_t il = rd_int(p + 1 + n, pl - n, &v);
		assert_int_equal(v, pl - n - il);
		return 1 + pl;
	case 0x12: { /* Package: PkgLength NumElements elements */
		n = rd_pkglen(p + 1, avail - 1, &pl);
		assert_true(1 + pl <= avail && pl > n);
		size_t off = n + 1, count = 0;
		while (off < pl) {
			off += rd_data(p + 1 + off, pl - off);
			count++;
		}
		assert_int_equal(off, pl);
		assert_int_equal(count, p[1 + n]);
		return 1 + pl;
	}
	default:
		return rd_int(p, avail, &v);
	}
}

static void join(char *out, size_t outlen, const char *scope, const char *name)
{
	if (name[0] == '\\')
		snprintf(out, outlen, "%s", name);
	else if (!strcmp(scope, "\\"))
		snprintf(out, outlen, "\\%s", name);
	else
		snprintf(out, outlen, "%s.%s", scope, name);
}

static void rd_terms(struct walk *w, const char *scope, const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		char name[48], path[64];
		size_t pl, n;
		const uint8_t *q = p + i;
		size_t avail = len - i;

		if (q[0] == 0x10 || (q[0] == 0x5B && avail > 1 && q[1] == 0x82) || q[0] == 0x14) {
			size_t op = q[0] == 0x5B ? 2 : 1;
			n = rd_pkglen(q + op, avail - op, &pl);
			assert_true(op + pl <= avail); /* nests inside its parent */
			size_t nl = rd_name(q + op + n, pl - n, name, sizeof(name));
			join(path, sizeof(path), scope, name);
			size_t body = op + n + nl;
			if (q[0] == 0x14) {
				assert_true(w->count < 64);
				struct node *m = &w->n[w->count++];
				snprintf(m->path, sizeof(m->path), "%s", path);
				m->obj = q + body + 1; /* after MethodFlags */
				m->len = op + pl - body - 1;
				m->method = true;
			} else {
				rd_terms(w, path, q + body, op + pl - body);
			}
			i += op + pl;
		} else if (q[0] == 0x08) {
			size_t nl = rd_name(q + 1, avail - 1, name, sizeof(name));
			join(path, sizeof(path), scope, name);
			size_t dl = rd_data(q + 1 + nl, avail - 1 - nl);
			assert_true(w->count < 64);
			struct node *m = &w->n[w->count++];
			snprintf(m->path, sizeof(m->path), "%s", path);
			m->obj = q + 1 + nl;
			m->len = dl;
			m->method = false;
			i += 1 + nl + dl;
		} else {
			fail_msg("unexpected AML opcode 0x%02x at %zu", q[0], i);
		}
	}
	assert_int_equal(i, len);
}

static const struct node *find(const struct walk *w, const char *path)
{
	for (int i = 0; i < w->count; i++)
		if (!strcmp(w->n[i].path, path))
			return &w->n[i];
	fail_msg("no %s in the DSDT", path);
	return NULL;
}

static uint64_t node_int(const struct walk *w, const char *path)
{
	const struct node *n = find(w, path);
	uint64_t v;

	assert_int_equal(rd_int(n->obj, n->len, &v), n->len);
	return v;
}

/* Resource descriptors of a ResourceTemplate: tag, body, body length. */
struct res {
	uint8_t tag;
	const uint8_t *d; /* body, after the tag (and length for large items) */
	size_t len;
};

static int rd_restemplate(const uint8_t *obj, size_t len, struct res *out, int max)
{
	size_t pl, n = rd_pkglen(obj + 1, len - 1, &pl);
	uint64_t size;
	size_t il = rd_int(obj + 1 + n, pl - n, &size);
	const uint8_t *p = obj + 1 + n + il;
	size_t i = 0;
	int count = 0;

	assert_int_equal(obj[0], 0x11);
	while (i < size) {
		struct res r;
		if (p[i] & 0x80) {
			assert_true(i + 3 <= size);
			r.tag = p[i];
			r.len = le(p + i + 1, 2);
			r.d = p + i + 3;
			i += 3 + r.len;
		} else {
			r.tag = (uint8_t)(p[i] & 0xF8);
			r.len = p[i] & 7;
			r.d = p + i + 1;
			i += 1 + r.len;
		}
		assert_true(i <= size);
		assert_true(count < max);
		out[count++] = r;
		if (r.tag == 0x78) /* EndTag */
			break;
	}
	assert_int_equal(i, size); /* EndTag is the last byte pair */
	assert_true(count > 0 && out[count - 1].tag == 0x78);
	assert_int_equal(out[count - 1].len, 1);
	return count - 1;
}

static void dsdt_walk(const uint8_t *dsdt, struct walk *w)
{
	memset(w, 0, sizeof(*w));
	rd_terms(w, "\\", dsdt + 36, le(dsdt + 4, 4) - 36);
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

static void test_rsdp_xsdt(void **state)
{
	struct tables t;

	(void)state;
	tables_build(&t, &base_cfg, GPA);
	/* The RSDP starts the buffer; every table lies within the bytes used. */
	assert_int_equal(le(t.rsdp + 16, 4), 0);
	size_t end = 0;
	const uint8_t *all[] = {t.xsdt, t.fadt, t.madt, t.mcfg, t.dsdt};
	for (size_t i = 0; i < 5; i++) {
		size_t e = (size_t)(all[i] - t.buf) + le(all[i] + 4, 4);
		end = e > end ? e : end;
	}
	assert_int_equal(end, (size_t)t.used);
	tables_free(&t);
}

static void test_fadt(void **state)
{
	struct tables t;

	(void)state;
	tables_build(&t, &base_cfg, GPA);
	const uint8_t *f = t.fadt;
	assert_int_equal(le(f + 4, 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(f[131], 3);        /* minor version */
	assert_int_equal(le(f + 36, 4), 0); /* no FACS */
	assert_int_equal(le(f + 40, 4), (uint64_t)(t.dsdt - t.buf) + GPA);
	assert_int_equal(le(f + 140, 8), (uint64_t)(t.dsdt - t.buf) + GPA);
	assert_int_equal(le(f + 46, 2), 0); /* SCI */
	/* No PM1/GPE/PM timer blocks on a hardware-reduced platform. */
	for (size_t off = 48; off < 109; off++)
		assert_int_equal(f[off], 0);
	for (size_t off = 148; off < 244; off++)
		assert_int_equal(f[off], 0);

	uint32_t flags = (uint32_t)le(f + 112, 4);
	assert_int_equal(flags, (1u << 20) | (1u << 10) | (1u << 4) | (1u << 5));
	uint16_t boot = (uint16_t)le(f + 109, 2);
	assert_true(boot & (1u << 2));       /* VGA not present */
	assert_true(boot & (1u << 5));       /* CMOS RTC not present */
	assert_false(boot & (1u << 1));      /* no 8042 */
	assert_false(boot & (1u << 0));      /* no legacy devices */
	assert_false(boot & (1u << 3));      /* MSI supported */
	assert_int_equal(le(f + 129, 2), 0); /* ARM boot arch */

	/* RESET_REG, SLEEP_CONTROL_REG, SLEEP_STATUS_REG: 8-bit System I/O. */
	static const struct {
		size_t off;
		uint16_t port;
	} regs[] = {{116, 0x600}, {244, 0x600}, {256, 0x601}};
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *g = f + regs[i].off;
		assert_int_equal(g[0], 1);
		assert_int_equal(g[1], 8);
		assert_int_equal(g[2], 0);
		assert_int_equal(g[3], 1);
		assert_int_equal(le(g + 4, 8), regs[i].port);
	}
	assert_int_equal(f[128], 0x01);
	assert_memory_equal(f + 268, "ZONEVM\0\0", 8);
	tables_free(&t);
}

static void test_fadt_dsdt_above_4g(void **state)
{
	struct tables t;

	(void)state;
	tables_build(&t, &base_cfg, UINT64_C(0x100000000));
	assert_int_equal(le(t.fadt + 40, 4), 0); /* does not fit in 32 bits */
	assert_int_equal(le(t.fadt + 140, 8), UINT64_C(0x100000000) + (uint64_t)(t.dsdt - t.buf));
	tables_free(&t);
}

static void check_madt(unsigned ncpus)
{
	struct acpi_config cfg = base_cfg;
	struct tables t;

	cfg.ncpus = ncpus;
	tables_build(&t, &cfg, GPA);
	const uint8_t *m = t.madt;
	size_t len = le(m + 4, 4);
	assert_int_equal(m[8], 5);
	assert_int_equal(le(m + 36, 4), 0xFEE00000);
	assert_int_equal(le(m + 40, 4), 1); /* PCAT_COMPAT */

	unsigned nlapic = 0, nx2apic = 0, nioapic = 0, niso = 0, nnmi = 0, nx2nmi = 0;
	size_t off = 44;
	while (off < len) {
		const uint8_t *e = m + off;
		assert_true(off + 2 <= len && e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(nx2apic, 0);   /* xAPIC entries come first */
			assert_int_equal(e[2], nlapic); /* UID */
			assert_int_equal(e[3], nlapic); /* APIC id */
			assert_int_equal(le(e + 4, 4), 1);
			nlapic++;
			break;
		case 9:
			assert_int_equal(e[1], 16);
			assert_int_equal(le(e + 2, 2), 0);
			assert_int_equal(le(e + 4, 4), 255 + nx2apic);
			assert_int_equal(le(e + 8, 4), 1);
			assert_int_equal(le(e + 12, 4), 255 + nx2apic);
			nx2apic++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], 3);
			assert_int_equal(le(e + 4, 4), 0xFEC00000);
			assert_int_equal(le(e + 8, 4), 0);
			nioapic++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);
			assert_int_equal(e[3], 0);
			assert_int_equal(le(e + 4, 4), 2);
			assert_int_equal(le(e + 8, 2), 0x0004); /* edge, conforming polarity */
			niso++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xFF);
			assert_int_equal(e[5], 1);
			nnmi++;
			break;
		case 0xA:
			assert_int_equal(e[1], 12);
			assert_int_equal(le(e + 4, 4), 0xFFFFFFFF);
			assert_int_equal(e[8], 1);
			nx2nmi++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(nlapic + nx2apic, ncpus);
	assert_int_equal(nlapic, ncpus < 255 ? ncpus : 255);
	assert_int_equal(nioapic, 1);
	assert_int_equal(niso, 1);
	assert_int_equal(nnmi, 1);
	assert_int_equal(nx2nmi, ncpus > 255 ? 1 : 0);
	tables_free(&t);
}

static void test_madt(void **state)
{
	static const unsigned counts[] = {1, 2, 3, 64, 254, 255, 256, 300, 1024, 32768};

	(void)state;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		check_madt(counts[i]);
}

static void test_mcfg(void **state)
{
	struct acpi_config cfg = base_cfg;
	struct tables t;

	(void)state;
	cfg.pci_bus_start = 0;
	cfg.pci_bus_end = 15;
	tables_build(&t, &cfg, GPA);
	const uint8_t *m = t.mcfg;
	assert_int_equal(le(m + 4, 4), 60);
	assert_int_equal(m[8], 1);
	assert_int_equal(le(m + 36, 8), 0);
	assert_int_equal(le(m + 44, 8), 0xB0000000);
	assert_int_equal(le(m + 52, 2), 0);
	assert_int_equal(m[54], 0);
	assert_int_equal(m[55], 15);
	assert_int_equal(le(m + 56, 4), 0);
	tables_free(&t);
}

/* ------------------------------------------------------------------ */
/* DSDT                                                                */

static bool contains(const uint8_t *p, size_t len, const void *needle, size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(p + i, needle, n))
			return true;
	return false;
}

static void test_dsdt_bytes(void **state)
{
	struct tables t;

	(void)state;
	tables_build(&t, &base_cfg, GPA);
	size_t len = le(t.dsdt + 4, 4);
	/* EisaId("PNP0A08") as iasl encodes it, the names, and \_S5. */
	static const uint8_t pnp0a08[] = {0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x08};
	static const uint8_t pnp0a03[] = {0x08, '_', 'C', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03};
	static const uint8_t pnp0501[] = {0x0C, 0x41, 0xD0, 0x05, 0x01};
	static const uint8_t pnp0c02[] = {0x0C, 0x41, 0xD0, 0x0C, 0x02};
	static const uint8_t s5[] = {0x08, '\\', '_',  'S',  '5',  '_', 0x12,
	                             0x06, 0x02, 0x0A, 0x05, 0x0A, 0x05};
	assert_true(contains(t.dsdt, len, pnp0a08, sizeof(pnp0a08)));
	assert_true(contains(t.dsdt, len, pnp0a03, sizeof(pnp0a03)));
	assert_true(contains(t.dsdt, len, pnp0501, sizeof(pnp0501)));
	assert_true(contains(t.dsdt, len, pnp0c02, sizeof(pnp0c02)));
	assert_true(contains(t.dsdt, len, "_CRS", 4));
	assert_true(contains(t.dsdt, len, s5, sizeof(s5)));
	tables_free(&t);
}

static void test_dsdt_objects(void **state)
{
	struct tables t;
	struct walk w;
	struct res r[16];
	uint64_t v;

	(void)state;
	tables_build(&t, &base_cfg, GPA);
	dsdt_walk(t.dsdt, &w);

	/* Host bridge. */
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._HID"), 0x080AD041);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._CID"), 0x030AD041);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._UID"), 0);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._SEG"), 0);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._BBN"), 0);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._ADR"), 0);
	const struct node *crs = find(&w, "\\_SB_.PCI0._CRS");
	int n = rd_restemplate(crs->obj, crs->len, r, 16);
	assert_int_equal(n, 6);
	/* WordBusNumber 0-255: producer, MinFixed, MaxFixed. */
	assert_int_equal(r[0].tag, 0x88);
	assert_int_equal(r[0].len, 13);
	assert_int_equal(r[0].d[0], 2);
	assert_int_equal(r[0].d[1], 0x0C);
	assert_int_equal(le(r[0].d + 5, 2), 0);
	assert_int_equal(le(r[0].d + 7, 2), 255);
	assert_int_equal(le(r[0].d + 11, 2), 256);
	/* IO (Decode16, 0xCF8, 0xCF8, 1, 8) */
	assert_int_equal(r[1].tag, 0x40);
	assert_int_equal(r[1].len, 7);
	assert_int_equal(r[1].d[0], 1);
	assert_int_equal(le(r[1].d + 1, 2), 0xCF8);
	assert_int_equal(le(r[1].d + 3, 2), 0xCF8);
	assert_int_equal(r[1].d[6], 8);
	/* WordIO 0-0xCF7 and 0xD00-0xFFFF. */
	static const uint16_t io[2][3] = {{0, 0xCF7, 0xCF8}, {0xD00, 0xFFFF, 0xF300}};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[2 + i].tag, 0x88);
		assert_int_equal(r[2 + i].d[0], 1);
		assert_int_equal(r[2 + i].d[2], 3); /* EntireRange */
		assert_int_equal(le(r[2 + i].d + 5, 2), io[i][0]);
		assert_int_equal(le(r[2 + i].d + 7, 2), io[i][1]);
		assert_int_equal(le(r[2 + i].d + 11, 2), io[i][2]);
	}
	/* DWordMemory for the 32-bit window. */
	assert_int_equal(r[4].tag, 0x87);
	assert_int_equal(r[4].len, 23);
	assert_int_equal(r[4].d[0], 0);
	assert_int_equal(r[4].d[2] & 1, 1); /* ReadWrite */
	assert_int_equal(le(r[4].d + 7, 4), 0xC0000000);
	assert_int_equal(le(r[4].d + 11, 4), 0xFEBFFFFF);
	assert_int_equal(le(r[4].d + 19, 4), 0x3EC00000);
	/* QWordMemory for the 64-bit window. */
	assert_int_equal(r[5].tag, 0x8A);
	assert_int_equal(r[5].len, 43);
	assert_int_equal(le(r[5].d + 11, 8), UINT64_C(0x10000000000));
	assert_int_equal(le(r[5].d + 19, 8), UINT64_C(0x10FFFFFFFFF));
	assert_int_equal(le(r[5].d + 35, 8), UINT64_C(0x1000000000));

	/* COM1. */
	assert_int_equal(node_int(&w, "\\_SB_.COM1._HID"), 0x0105D041);
	assert_int_equal(node_int(&w, "\\_SB_.COM1._UID"), 1);
	const struct node *sta = find(&w, "\\_SB_.COM1._STA");
	assert_true(sta->method);
	assert_int_equal(sta->obj[0], 0xA4); /* Return */
	assert_int_equal(rd_int(sta->obj + 1, sta->len - 1, &v), sta->len - 1);
	assert_int_equal(v, 0x0F);
	crs = find(&w, "\\_SB_.COM1._CRS");
	n = rd_restemplate(crs->obj, crs->len, r, 16);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].tag, 0x40);
	assert_int_equal(le(r[0].d + 1, 2), 0x3F8);
	assert_int_equal(le(r[0].d + 3, 2), 0x3F8);
	assert_int_equal(r[0].d[5], 1);
	assert_int_equal(r[0].d[6], 8);
	assert_int_equal(r[1].tag, 0x20);
	assert_int_equal(r[1].len, 2);
	assert_int_equal(le(r[1].d, 2), 1u << 4);

	/* Motherboard resources: ECAM and the PM ports. */
	assert_int_equal(node_int(&w, "\\_SB_.MRES._HID"), 0x020CD041);
	crs = find(&w, "\\_SB_.MRES._CRS");
	n = rd_restemplate(crs->obj, crs->len, r, 16);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].tag, 0x86); /* Memory32Fixed */
	assert_int_equal(r[0].d[0], 1);
	assert_int_equal(le(r[0].d + 1, 4), 0xB0000000);
	assert_int_equal(le(r[0].d + 5, 4), 0x10000000);
	assert_int_equal(r[1].tag, 0x40);
	assert_int_equal(le(r[1].d + 1, 2), 0x600);
	assert_int_equal(r[1].d[6], 2);

	/* \_S5 = Package () { 5, 5 }: Linux writes (5 << 2) | SLP_EN = 0x34. */
	const struct node *s5 = find(&w, "\\_S5_");
	assert_int_equal(s5->obj[0], 0x12);
	assert_int_equal(s5->obj[2], 2);
	assert_int_equal(rd_int(s5->obj + 3, 2, &v), 2);
	assert_int_equal(v, 5);
	assert_int_equal(rd_int(s5->obj + 5, 2, &v), 2);
	assert_int_equal(v, 5);
	assert_int_equal(((v << 2) & 0x1C) | 0x20, 0x34);
	tables_free(&t);
}

/* Other windows: no 64-bit window, ECAM above 4 GiB, buses 16-31. */
static void test_dsdt_variants(void **state)
{
	struct acpi_config cfg = base_cfg;
	struct tables t;
	struct walk w;
	struct res r[16];

	(void)state;
	cfg.pci_mmio64_size = 0;
	cfg.ecam_base = UINT64_C(0x8000000000);
	cfg.pci_bus_start = 16;
	cfg.pci_bus_end = 31;
	tables_build(&t, &cfg, GPA);
	dsdt_walk(t.dsdt, &w);
	assert_int_equal(node_int(&w, "\\_SB_.PCI0._BBN"), 16);
	const struct node *crs = find(&w, "\\_SB_.PCI0._CRS");
	int n = rd_restemplate(crs->obj, crs->len, r, 16);
	assert_int_equal(n, 5); /* no QWordMemory */
	assert_int_equal(le(r[0].d + 5, 2), 16);
	assert_int_equal(le(r[0].d + 7, 2), 31);
	assert_int_equal(le(r[0].d + 11, 2), 16);
	for (int i = 0; i < n; i++)
		assert_int_not_equal(r[i].tag, 0x8A);

	crs = find(&w, "\\_SB_.MRES._CRS");
	n = rd_restemplate(crs->obj, crs->len, r, 16);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].tag, 0x8A); /* QWordMemory, consumer */
	assert_int_equal(r[0].d[1] & 1, 1);
	assert_int_equal(le(r[0].d + 11, 8), UINT64_C(0x8000000000) + (16u << 20));
	assert_int_equal(le(r[0].d + 19, 8), UINT64_C(0x8000000000) + (32u << 20) - 1);
	assert_int_equal(le(r[0].d + 35, 8), 16u << 20);

	assert_int_equal(t.mcfg[54], 16);
	assert_int_equal(t.mcfg[55], 31);
	assert_int_equal(le(t.mcfg + 44, 8), UINT64_C(0x8000000000));
	tables_free(&t);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static long build_len(const struct acpi_config *cfg)
{
	uint8_t *buf = malloc(BUF_LEN);
	assert_non_null(buf);
	long used = acpi_build(cfg, buf, GPA, BUF_LEN);
	free(buf);
	assert_true(used > 0);
	return used;
}

/* Exact-size heap buffers: ASan reports any write at or past len. */
static void check_enospc(const struct acpi_config *cfg, size_t step)
{
	long used = build_len(cfg);

	for (size_t len = 0; len < (size_t)used; len += step) {
		uint8_t *buf = malloc(len ? len : 1);
		assert_non_null(buf);
		memset(buf, 0xA5, len);
		assert_int_equal(acpi_build(cfg, buf, GPA, len), -ENOSPC);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(buf[i], 0xA5); /* untouched */
		free(buf);
	}
	uint8_t *buf = malloc((size_t)used);
	assert_non_null(buf);
	assert_int_equal(acpi_build(cfg, buf, GPA, (size_t)used), used);
	free(buf);
}

static void test_enospc(void **state)
{
	struct acpi_config cfg = base_cfg;

	(void)state;
	check_enospc(&cfg, 1);
	cfg.ncpus = 300;
	check_enospc(&cfg, 7);
}

static void test_einval(void **state)
{
	uint8_t *buf = malloc(BUF_LEN);
	struct acpi_config c;

	(void)state;
	assert_non_null(buf);
#define EXPECT_EINVAL(stmt)                                                                        \
	do {                                                                                       \
		c = base_cfg;                                                                      \
		stmt;                                                                              \
		assert_int_equal(acpi_build(&c, buf, GPA, BUF_LEN), -EINVAL);                      \
	} while (0)
	EXPECT_EINVAL(c.ncpus = 0);
	EXPECT_EINVAL(c.ncpus = 32769);
	EXPECT_EINVAL(c.ncpus = UINT32_MAX);
	EXPECT_EINVAL(c.pci_bus_start = 5; c.pci_bus_end = 4);
	EXPECT_EINVAL(c.ecam_base = 0);
	EXPECT_EINVAL(c.ecam_base = 0xB0001000);
	EXPECT_EINVAL(c.ecam_base = UINT64_MAX - 0xFFFFF);
	EXPECT_EINVAL(c.ecam_base = 0xC0000000); /* overlaps mmio32 */
	EXPECT_EINVAL(c.pci_mmio32_size = 0);
	EXPECT_EINVAL(c.pci_mmio32_size = 0x40000001); /* past 4 GiB */
	EXPECT_EINVAL(c.pci_mmio32_base = UINT64_C(0x100000000));
	EXPECT_EINVAL(c.pci_mmio32_size = 0x3EC01000); /* covers the IOAPIC */
	EXPECT_EINVAL(c.pci_mmio64_base = UINT64_MAX); /* wraps */
	EXPECT_EINVAL(c.pci_mmio64_base = 0xA0000000); /* overlaps ECAM */
	EXPECT_EINVAL(c.lapic_addr = UINT64_C(0x100000000));
	EXPECT_EINVAL(c.lapic_addr = 0xFEE00800);
	EXPECT_EINVAL(c.ioapic_addr = UINT64_C(0x1FEC00000));
	EXPECT_EINVAL(c.pm_port = 0);
	EXPECT_EINVAL(c.pm_port = 0xFFFF);
	EXPECT_EINVAL(c.pm_port = 0xCF7); /* status port hits 0xCF8 */
	EXPECT_EINVAL(c.pm_port = 0x3FF); /* inside COM1 */
	EXPECT_EINVAL(c.com1_port = 0xFFF9);
	EXPECT_EINVAL(c.com1_irq = 16);
	EXPECT_EINVAL(c.com1_irq = 2);
	EXPECT_EINVAL(c.reset_value = 0x34); /* the S5 value */
#undef EXPECT_EINVAL
	assert_int_equal(acpi_build(NULL, buf, GPA, BUF_LEN), -EINVAL);
	assert_int_equal(acpi_build(&base_cfg, NULL, GPA, BUF_LEN), -EINVAL);
	assert_int_equal(acpi_build(&base_cfg, buf, GPA + 8, BUF_LEN), -EINVAL);
	assert_int_equal(acpi_build(&base_cfg, buf, UINT64_MAX - 15, BUF_LEN), -EINVAL);
	/* A bad config is -EINVAL even when the buffer is also too small. */
	c = base_cfg;
	c.ncpus = 0;
	assert_int_equal(acpi_build(&c, buf, GPA, 0), -EINVAL);
	free(buf);
}

static void test_checksum(void **state)
{
	uint8_t b[5] = {1, 2, 3, 4, 0};

	(void)state;
	assert_int_equal(acpi_checksum(b, 4), (uint8_t)(0x100 - 10));
	b[4] = acpi_checksum(b, 4);
	assert_int_equal(sum8(b, 5), 0);
	assert_int_equal(acpi_checksum(b, 0), 0);
}

/* ------------------------------------------------------------------ */
/* AML encoder                                                         */

static size_t emit(void (*fn)(struct aml_buf *, const void *), const void *arg, uint8_t *out,
                   size_t cap, int *err)
{
	struct aml_buf b;

	aml_init(&b, out, cap);
	fn(&b, arg);
	*err = aml_finish(&b);
	return b.len;
}

static void emit_pkglength(struct aml_buf *b, const void *arg)
{
	aml_pkglength(b, *(const size_t *)arg);
}

static void test_aml_pkglength(void **state)
{
	static const struct {
		size_t content;
		size_t n;
	} cases[] = {
	    {0, 1},    {62, 1},      {63, 2},      {4093, 2},
	    {4094, 3}, {0xFFFFC, 3}, {0xFFFFD, 4}, {0x0FFFFFFB, 4},
	};
	uint8_t out[4];
	int err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = emit(emit_pkglength, &cases[i].content, out, sizeof(out), &err);
		size_t val;
		assert_int_equal(err, 0);
		assert_int_equal(n, cases[i].n);
		assert_int_equal(rd_pkglen(out, n, &val), n);
		assert_int_equal(val, cases[i].content + n);
	}
	size_t too_big = 0x0FFFFFFC;
	emit(emit_pkglength, &too_big, out, sizeof(out), &err);
	assert_int_equal(err, -EINVAL);
}

static void emit_integer(struct aml_buf *b, const void *arg)
{
	aml_integer(b, *(const uint64_t *)arg);
}

static void test_aml_integer(void **state)
{
	static const struct {
		uint64_t v;
		size_t n;
		uint8_t op;
	} cases[] = {
	    {0, 1, 0x00},           {1, 1, 0x01},
	    {2, 2, 0x0A},           {0xFF, 2, 0x0A},
	    {0x100, 3, 0x0B},       {0xFFFF, 3, 0x0B},
	    {0x10000, 5, 0x0C},     {0xFFFFFFFF, 5, 0x0C},
	    {0x100000000, 9, 0x0E}, {UINT64_MAX - 1, 9, 0x0E},
	    {UINT64_MAX, 1, 0xFF},
	};
	uint8_t out[9];
	uint64_t v;
	int err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = emit(emit_integer, &cases[i].v, out, sizeof(out), &err);
		assert_int_equal(err, 0);
		assert_int_equal(n, cases[i].n);
		assert_int_equal(out[0], cases[i].op);
		assert_int_equal(rd_int(out, n, &v), n);
		assert_int_equal(v, cases[i].v);
	}
}

static void emit_name(struct aml_buf *b, const void *arg)
{
	aml_namestring(b, arg);
}

static void test_aml_namestring(void **state)
{
	static const struct {
		const char *in;
		const char *bytes;
		size_t n;
	} ok[] = {
	    {"_SB", "_SB_", 4},
	    {"PCI0", "PCI0", 4},
	    {"\\_SB.PCI0", "\\\x2E_SB_PCI0", 10},
	    {"\\_SB.PCI0.S08", "\\\x2F\x03_SB_PCI0S08_", 15},
	    {"^^FOO", "^^FOO_", 6},
	    {"\\", "\\\x00", 2},
	    {"\\_S5", "\\_S5_", 5},
	};
	static const char *bad[] = {"pci0", "ABCDE", "A..B", "A.", "0ABC", ".A", "\\^A", "A-B"};
	uint8_t out[32];
	int err;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t n = emit(emit_name, ok[i].in, out, sizeof(out), &err);
		assert_int_equal(err, 0);
		assert_int_equal(n, ok[i].n);
		assert_memory_equal(out, ok[i].bytes, n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		emit(emit_name, bad[i], out, sizeof(out), &err);
		assert_int_equal(err, -EINVAL);
	}
	emit(emit_name, NULL, out, sizeof(out), &err);
	assert_int_equal(err, -EINVAL);
}

static void test_aml_eisaid(void **state)
{
	uint32_t v;

	(void)state;
	assert_true(aml_eisaid_value("PNP0A08", &v));
	assert_int_equal(v, 0x080AD041);
	assert_true(aml_eisaid_value("PNP0A03", &v));
	assert_int_equal(v, 0x030AD041);
	assert_true(aml_eisaid_value("PNP0501", &v));
	assert_int_equal(v, 0x0105D041);
	assert_true(aml_eisaid_value("PNP0C02", &v));
	assert_int_equal(v, 0x020CD041);
	assert_true(aml_eisaid_value("QEMU0002", &v) == false);
	assert_false(aml_eisaid_value("pnp0a08", &v));
	assert_false(aml_eisaid_value("PNP0A0G", &v));
	assert_false(aml_eisaid_value("PNP0A0", &v));
	assert_false(aml_eisaid_value(NULL, &v));
}

/* A Buffer large enough for a 3-byte PkgLength and a Word BufferSize. */
static void emit_big_buffer(struct aml_buf *b, const void *arg)
{
	size_t n = *(const size_t *)arg;
	struct aml_mark m = aml_buffer_begin(b);

	for (size_t i = 0; i < n; i++)
		aml_byte(b, (uint8_t)i);
	aml_end(b, m);
}

static void test_aml_buffer(void **state)
{
	static const size_t sizes[] = {0, 1, 58, 59, 60, 61, 62, 255, 256, 4089, 4090, 5000, 70000};
	int err;

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t want = emit(emit_big_buffer, &sizes[i], NULL, 0, &err); /* measure */
		assert_int_equal(err, 0);
		uint8_t *out = malloc(want);
		assert_non_null(out);
		assert_int_equal(emit(emit_big_buffer, &sizes[i], out, want, &err), want);
		assert_int_equal(err, 0);
		assert_int_equal(rd_data(out, want), want);
		/* The content survived the move that made room for the PkgLength. */
		size_t pl, n = rd_pkglen(out + 1, want - 1, &pl);
		uint64_t size;
		size_t il = rd_int(out + 1 + n, want - 1 - n, &size);
		assert_int_equal(size, sizes[i]);
		for (size_t j = 0; j < sizes[i]; j++)
			assert_int_equal(out[1 + n + il + j], (uint8_t)j);
		/* Every shorter buffer: -ENOSPC, and nothing written past it. */
		for (size_t cap = 0; cap < want; cap += 1 + cap / 8) {
			uint8_t *small = malloc(cap ? cap : 1);
			assert_non_null(small);
			assert_int_equal(emit(emit_big_buffer, &sizes[i], small, cap, &err), want);
			assert_int_equal(err, -ENOSPC);
			free(small);
		}
		free(out);
	}
}

static void emit_nested(struct aml_buf *b, const void *arg)
{
	(void)arg;
	struct aml_mark s = aml_scope_begin(b, "\\_SB");
	struct aml_mark d = aml_device_begin(b, "DEV0");
	aml_name_string(b, "_STR", "zonevm");
	struct aml_mark m = aml_method_begin(b, "_STA", 0, true);
	aml_return(b);
	aml_integer(b, 0x0F);
	aml_end(b, m);
	aml_name(b, "PKG0");
	struct aml_mark p = aml_package_begin(b, 3);
	aml_integer(b, 1);
	aml_string(b, "x");
	struct aml_mark inner = aml_package_begin(b, 1);
	aml_integer(b, 0x12345678);
	aml_end(b, inner);
	aml_end(b, p);
	aml_end(b, d);
	aml_end(b, s);
}

static void test_aml_nested(void **state)
{
	uint8_t out[256];
	struct walk w;
	int err;

	(void)state;
	size_t n = emit(emit_nested, NULL, out, sizeof(out), &err);
	assert_int_equal(err, 0);
	memset(&w, 0, sizeof(w));
	rd_terms(&w, "\\", out, n);
	assert_int_equal(w.count, 3);
	const struct node *str = find(&w, "\\_SB_.DEV0._STR");
	assert_int_equal(str->len, 8);
	assert_memory_equal(str->obj, "\x0Dzonevm", 8);
	const struct node *sta = find(&w, "\\_SB_.DEV0._STA");
	assert_true(sta->method);
	assert_int_equal(sta->obj[-1], 0x08); /* MethodFlags: serialized, 0 args */
	find(&w, "\\_SB_.DEV0.PKG0");
	assert_int_equal(emit(emit_nested, NULL, NULL, 0, &err), n);
	assert_int_equal(err, 0);
}

static void emit_unbalanced(struct aml_buf *b, const void *arg)
{
	(void)arg;
	aml_device_begin(b, "DEV0");
}

static void emit_bad_args(struct aml_buf *b, const void *arg)
{
	(void)arg;
	struct aml_mark m = aml_method_begin(b, "FOO", 8, false);
	aml_end(b, m);
}

static void emit_bad_res(struct aml_buf *b, const void *arg)
{
	(void)arg;
	struct aml_mark m = aml_restemplate_begin(b);
	aml_res_word_io(b, AML_PRODUCER, 0, 0xFFFF); /* _LEN 0x10000 does not fit */
	aml_end(b, m);
}

static void test_aml_errors(void **state)
{
	uint8_t out[64];
	int err;

	(void)state;
	emit(emit_unbalanced, NULL, out, sizeof(out), &err);
	assert_int_equal(err, -EINVAL);
	emit(emit_bad_args, NULL, out, sizeof(out), &err);
	assert_int_equal(err, -EINVAL);
	emit(emit_bad_res, NULL, out, sizeof(out), &err);
	assert_int_equal(err, -EINVAL);

	struct aml_buf b;
	aml_init(&b, out, sizeof(out));
	aml_end(&b, (struct aml_mark){0, AML_KIND_PKG}); /* nothing open */
	assert_int_equal(aml_finish(&b), -EINVAL);
	aml_init(&b, out, sizeof(out));
	aml_string(&b, "\xC3\xA9");
	assert_int_equal(aml_finish(&b), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checksum),      cmocka_unit_test(test_rsdp_xsdt),
	    cmocka_unit_test(test_fadt),          cmocka_unit_test(test_fadt_dsdt_above_4g),
	    cmocka_unit_test(test_madt),          cmocka_unit_test(test_mcfg),
	    cmocka_unit_test(test_dsdt_bytes),    cmocka_unit_test(test_dsdt_objects),
	    cmocka_unit_test(test_dsdt_variants), cmocka_unit_test(test_enospc),
	    cmocka_unit_test(test_einval),        cmocka_unit_test(test_aml_pkglength),
	    cmocka_unit_test(test_aml_integer),   cmocka_unit_test(test_aml_namestring),
	    cmocka_unit_test(test_aml_eisaid),    cmocka_unit_test(test_aml_buffer),
	    cmocka_unit_test(test_aml_nested),    cmocka_unit_test(test_aml_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
