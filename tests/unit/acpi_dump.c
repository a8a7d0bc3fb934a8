/*
 * acpi_dump.c - write zonevm's ACPI tables to files, for iasl -d.
 *
 * Usage: acpi_dump OUTDIR [NCPUS [GPA]]
 *
 * Builds the tables for a typical configuration and finds them the way a
 * guest does: RSDP -> XSDT -> FACP, APIC, MCFG, and FACP -> X_DSDT.  Each is
 * written to OUTDIR/<signature>.dat (rsdp, xsdt, facp, apic, mcfg, dsdt).
 * It only reads what acpi_build() produced; it checks no more than it needs
 * to walk safely (tests/unit/test_acpi.c checks the contents).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm/acpi.h"

#define DUMP_BUF_LEN (1u << 20)

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "acpi_dump: %s: %s\n", path, strerror(errno));
		return -1;
	}
	printf("%s: %zu bytes\n", path, len);
	return 0;
}

/* The table at gpa, if its header and length lie inside the buffer. */
static const uint8_t *table_at(const uint8_t *buf, uint64_t gpa0, long used, uint64_t gpa,
                               size_t *len)
{
	if (gpa < gpa0 || gpa - gpa0 > (uint64_t)used - 36)
		return NULL;
	const uint8_t *t = buf + (gpa - gpa0);
	*len = (size_t)le(t + 4, 4);
	if (*len < 36 || *len > (uint64_t)used - (gpa - gpa0))
		return NULL;
	return t;
}

static int dump_table(const char *dir, const uint8_t *t, size_t len)
{
	char name[5];

	for (int i = 0; i < 4; i++)
		name[i] = (char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] - 'A' + 'a' : t[i]);
	name[4] = '\0';
	return write_file(dir, name, t, len);
}

int main(int argc, char **argv)
{
	/* The machine vm.c describes (src/vmm/layout.h), with 4 GiB of RAM. */
	struct acpi_config cfg = {
	    .ncpus = 2,
	    .lapic_addr = 0xFEE00000,
	    .ioapic_addr = 0xFEC00000,
	    .ioapic_id = 0,
	    .ioapic_gsi_base = 0,
	    .ecam_base = 0xE0000000,
	    .pci_bus_start = 0,
	    .pci_bus_end = 0,
	    .pci_mmio32_base = 0xC0000000,
	    .pci_mmio32_size = 0x20000000,
	    .pci_mmio64_base = UINT64_C(0x140000000),
	    .pci_mmio64_size = UINT64_C(64) << 30,
	    .pm_port = 0x600,
	    .reset_value = 0x01,
	    .com1_port = 0x3F8,
	    .com1_irq = 4,
	};
	uint64_t gpa = 0xE0000;
	size_t len;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: acpi_dump OUTDIR [NCPUS [GPA]]\n");
		return 2;
	}
	if (argc > 2)
		cfg.ncpus = (unsigned)strtoul(argv[2], NULL, 0);
	if (argc > 3)
		gpa = strtoull(argv[3], NULL, 0);
	if (mkdir(argv[1], 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "acpi_dump: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}

	uint8_t *buf = calloc(1, DUMP_BUF_LEN);
	if (!buf)
		return 1;
	long used = acpi_build(&cfg, buf, gpa, DUMP_BUF_LEN);
	if (used < 36) {
		fprintf(stderr, "acpi_dump: acpi_build: %s\n",
		        strerror(used < 0 ? (int)-used : EIO));
		free(buf);
		return 1;
	}
	printf("acpi_build: %ld bytes at gpa 0x%" PRIx64 ", %u cpus\n", used, gpa, cfg.ncpus);

	int rc = write_file(argv[1], "rsdp", buf, 36);
	const uint8_t *xsdt = table_at(buf, gpa, used, le(buf + 24, 8), &len);
	if (!xsdt) {
		fprintf(stderr, "acpi_dump: RSDP does not point at a table\n");
		free(buf);
		return 1;
	}
	rc |= dump_table(argv[1], xsdt, len);
	for (size_t off = 36; off + 8 <= len; off += 8) {
		size_t tlen;
		const uint8_t *t = table_at(buf, gpa, used, le(xsdt + off, 8), &tlen);
		if (!t) {
			fprintf(stderr, "acpi_dump: XSDT entry %zu is outside the tables\n",
			        (off - 36) / 8);
			rc = 1;
			continue;
		}
		rc |= dump_table(argv[1], t, tlen);
		if (!memcmp(t, "FACP", 4) && tlen >= 148) {
			size_t dlen;
			const uint8_t *d = table_at(buf, gpa, used, le(t + 140, 8), &dlen);
			if (d)
				rc |= dump_table(argv[1], d, dlen);
			else
				rc = 1;
		}
	}
	free(buf);
	return rc ? 1 : 0;
}
