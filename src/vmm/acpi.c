/*
 * acpi.c - the ACPI tables of an x86-64 guest (see acpi.h, docs/ACPI.md).
 *
 * Owns the layout of RSDP, XSDT, FADT, MADT, MCFG and DSDT in one buffer and
 * the choice of what they describe: a hardware-reduced platform (no PM1
 * blocks, no SCI, no FACS), CPUs and the IOAPIC for a kernel without an
 * MP-table parser, one PCIe host bridge with ECAM, COM1, and S5 / reset
 * through one I/O port.  The AML encoding itself is aml.c's.
 *
 * It never touches KVM or guest state, keeps no state between calls and
 * never writes to buf unless everything fits: sizes are computed first
 * (the DSDT by a measuring pass of the same encoder), then written once.
 */
#include "acpi.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "aml.h"

#define ACPI_OEM_ID           "ZONEVM"   /* 6 bytes */
#define ACPI_OEM_TABLE_ID     "ZONEVMVM" /* 8 bytes */
#define ACPI_OEM_REVISION     1
#define ACPI_CREATOR_ID       "ZVM " /* 4 bytes */
#define ACPI_CREATOR_REVISION 1
#define ACPI_HYPERVISOR_ID    "ZONEVM" /* FADT, padded with NULs to 8 */

/*
 * Linux's MAX_LOCAL_APIC: it ignores CPUs beyond.  The cap also keeps every
 * size computed below far from overflow.
 */
#define ACPI_MAX_CPUS 32768u

/* Table layout: each table starts on a 16-byte boundary after the RSDP. */
#define ACPI_ALIGN    16
#define ACPI_RSDP_LEN 36
#define ACPI_HDR_LEN  36
#define ACPI_XSDT_N   3 /* FACP, APIC, MCFG */
#define ACPI_XSDT_LEN (ACPI_HDR_LEN + 8 * ACPI_XSDT_N)
#define ACPI_FADT_LEN 276
#define ACPI_MCFG_LEN (ACPI_HDR_LEN + 8 + 16)

/* Revisions: ACPI 6.3 throughout. */
#define ACPI_RSDP_REV       2
#define ACPI_XSDT_REV       1
#define ACPI_FADT_REV       6
#define ACPI_FADT_MINOR_REV 3
#define ACPI_MADT_REV       5
#define ACPI_MCFG_REV       1
#define ACPI_DSDT_REV       2 /* 2+: AML integers are 64 bits */

/* FADT field offsets (ACPI 6.3 table 5-34). */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT          40
#define FADT_PM_PROFILE    45
#define FADT_SCI_INT       46
#define FADT_IAPC_BOOT     109
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_ARM_BOOT      129
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT        140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS  256
#define FADT_HYPERVISOR_ID 268

/* FADT Flags (5.2.9 table 5-35). */
#define FADT_F_PWR_BUTTON      (1u << 4) /* no fixed-feature power button */
#define FADT_F_SLP_BUTTON      (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP   (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)

/* IA-PC boot architecture flags (5.2.9.3). */
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_PCIE_ASPM_CTRL  (1u << 4) /* OSPM must not enable ASPM */
#define IAPC_CMOS_RTC_ABSENT (1u << 5)

/* Generic Address Structure (5.2.3.2). */
#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_BYTE      1

/* The hardware-reduced sleep control register (4.8.3.7). */
#define ACPI_SLP_TYP_S5    5
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_EN        (1u << 5)

/* MADT (5.2.12). */
#define MADT_PCAT_COMPAT    1u
#define MADT_LAPIC          0
#define MADT_IOAPIC         1
#define MADT_ISO            2
#define MADT_LAPIC_NMI      4
#define MADT_X2APIC         9
#define MADT_X2APIC_NMI     0xA
#define MADT_LAPIC_LEN      8
#define MADT_IOAPIC_LEN     12
#define MADT_ISO_LEN        10
#define MADT_LAPIC_NMI_LEN  6
#define MADT_X2APIC_LEN     16
#define MADT_X2APIC_NMI_LEN 12
#define MADT_ENABLED        1u
#define MADT_XAPIC_MAX_ID   254       /* 0xFF is the xAPIC broadcast id */
#define MPS_INTI_EDGE       (1u << 2) /* trigger mode 01, polarity 00 (conforming) */

/* Fixed parts of the x86 platform the tables must keep clear of. */
#define X86_MSI_BASE   0xFEE00000u
#define X86_MSI_SIZE   0x100000u
#define X86_APIC_SIZE  0x1000u
#define PCI_CFG_PORT   0x0CF8
#define PCI_CFG_PORTS  8
#define ACPI_PM_PORTS  2 /* sleep control, sleep status */
#define COM_PORTS      8
#define ECAM_BUS_SHIFT 20

struct acpi_layout {
	size_t xsdt, fadt, madt, mcfg, dsdt, end;
	size_t madt_len, dsdt_len;
};

struct acpi_range {
	uint64_t base, size; /* size > 0, base + size - 1 does not wrap */
};

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return (uint8_t)(0u - sum);
}

static void acpi_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t acpi_align(size_t v)
{
	return (v + ACPI_ALIGN - 1) & ~(size_t)(ACPI_ALIGN - 1);
}

static bool acpi_overlap(struct acpi_range a, struct acpi_range b)
{
	return a.base <= b.base + (b.size - 1) && b.base <= a.base + (a.size - 1);
}

static bool acpi_port_overlap(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
	return a < b + blen && b < a + alen;
}

static struct acpi_range acpi_ecam_range(const struct acpi_config *cfg)
{
	/* The MCFG base is the address of bus 0, even if the range starts later. */
	uint64_t first = (uint64_t)cfg->pci_bus_start << ECAM_BUS_SHIFT;
	uint64_t n = (uint64_t)(cfg->pci_bus_end - cfg->pci_bus_start + 1) << ECAM_BUS_SHIFT;

	return (struct acpi_range){cfg->ecam_base + first, n};
}

/* The value Linux writes for S5: (SLP_TYP << 2) | SLP_EN, see docs/ACPI.md. */
static uint8_t acpi_s5_value(void)
{
	return (uint8_t)((ACPI_SLP_TYP_S5 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN);
}

/* A range fits in 64 bits and is not empty. */
static bool acpi_range_ok(uint64_t base, uint64_t size)
{
	return size && size - 1 <= UINT64_MAX - base;
}

static int acpi_config_check(const struct acpi_config *cfg)
{
	if (!cfg || cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS)
		return -EINVAL;
	/* MADT fields are 32 bits; we emit no Local APIC Address Override. */
	if (cfg->lapic_addr > UINT32_MAX - (X86_APIC_SIZE - 1) || cfg->lapic_addr % X86_APIC_SIZE)
		return -EINVAL;
	if (cfg->ioapic_addr > UINT32_MAX - (X86_APIC_SIZE - 1) || cfg->ioapic_addr % X86_APIC_SIZE)
		return -EINVAL;

	/* ECAM: 1 MiB per bus from bus 0 at ecam_base, aligned, not at 0. */
	if (cfg->pci_bus_start > cfg->pci_bus_end || !cfg->ecam_base ||
	    cfg->ecam_base % (1u << ECAM_BUS_SHIFT) ||
	    !acpi_range_ok(cfg->ecam_base, (uint64_t)(cfg->pci_bus_end + 1) << ECAM_BUS_SHIFT))
		return -EINVAL;

	/* The 32-bit window must exist and end at or below 4 GiB. */
	if (!cfg->pci_mmio32_size || cfg->pci_mmio32_base > UINT32_MAX ||
	    cfg->pci_mmio32_size > (uint64_t)UINT32_MAX + 1 - cfg->pci_mmio32_base)
		return -EINVAL;
	if (cfg->pci_mmio64_size && !acpi_range_ok(cfg->pci_mmio64_base, cfg->pci_mmio64_size))
		return -EINVAL;

	/* Windows and ECAM must not overlap each other or the APICs / MSI. */
	struct acpi_range fixed[] = {
	    {cfg->lapic_addr, X86_APIC_SIZE},
	    {cfg->ioapic_addr, X86_APIC_SIZE},
	    {X86_MSI_BASE, X86_MSI_SIZE},
	};
	struct acpi_range mine[3] = {
	    acpi_ecam_range(cfg),
	    {cfg->pci_mmio32_base, cfg->pci_mmio32_size},
	    {cfg->pci_mmio64_base, cfg->pci_mmio64_size},
	};
	size_t nmine = cfg->pci_mmio64_size ? 3 : 2;
	for (size_t i = 0; i < nmine; i++) {
		for (size_t j = 0; j < sizeof(fixed) / sizeof(fixed[0]); j++)
			if (acpi_overlap(mine[i], fixed[j]))
				return -EINVAL;
		for (size_t j = i + 1; j < nmine; j++)
			if (acpi_overlap(mine[i], mine[j]))
				return -EINVAL;
	}

	/* I/O ports: the PM pair, COM1 and the PCI config ports are distinct. */
	unsigned pm = cfg->pm_port, com = cfg->com1_port;
	if (!pm || pm + ACPI_PM_PORTS - 1 > UINT16_MAX || !com || com + COM_PORTS - 1 > UINT16_MAX)
		return -EINVAL;
	if (acpi_port_overlap(pm, ACPI_PM_PORTS, PCI_CFG_PORT, PCI_CFG_PORTS) ||
	    acpi_port_overlap(com, COM_PORTS, PCI_CFG_PORT, PCI_CFG_PORTS) ||
	    acpi_port_overlap(pm, ACPI_PM_PORTS, com, COM_PORTS))
		return -EINVAL;
	/* ISA IRQ: not the timer (0) and not 2, where the IRQ 0 override lands. */
	if (cfg->com1_irq == 0 || cfg->com1_irq == 2 || cfg->com1_irq > 15)
		return -EINVAL;
	/* One port for reset and S5: the device could not tell them apart. */
	if (cfg->reset_value == acpi_s5_value())
		return -EINVAL;
	return 0;
}

/*
 * The DSDT body (everything after the header).  Kept to the objects Linux
 * needs; docs/ACPI.md shows the ASL this encodes.
 */
static void acpi_dsdt_aml(struct aml_buf *b, const struct acpi_config *cfg)
{
	struct aml_mark sb = aml_scope_begin(b, "\\_SB");

	/* PCIe host bridge: without it, Linux with ACPI finds no PCI bus. */
	struct aml_mark dev = aml_device_begin(b, "PCI0");
	aml_name_eisaid(b, "_HID", "PNP0A08");
	aml_name_eisaid(b, "_CID", "PNP0A03");
	aml_name_integer(b, "_ADR", 0);
	aml_name_integer(b, "_SEG", 0);
	aml_name_integer(b, "_UID", 0);
	aml_name_integer(b, "_BBN", cfg->pci_bus_start);
	aml_name(b, "_CRS");
	struct aml_mark rt = aml_restemplate_begin(b);
	aml_res_word_bus(b, AML_PRODUCER, cfg->pci_bus_start, cfg->pci_bus_end);
	aml_res_io(b, PCI_CFG_PORT, PCI_CFG_PORT, 1, PCI_CFG_PORTS);
	aml_res_word_io(b, AML_PRODUCER, 0x0000, PCI_CFG_PORT - 1);
	aml_res_word_io(b, AML_PRODUCER, PCI_CFG_PORT + PCI_CFG_PORTS, 0xFFFF);
	aml_res_dword_memory(b, AML_PRODUCER, AML_NON_CACHEABLE, AML_READ_WRITE,
	                     (uint32_t)cfg->pci_mmio32_base,
	                     (uint32_t)(cfg->pci_mmio32_base + cfg->pci_mmio32_size - 1));
	if (cfg->pci_mmio64_size)
		aml_res_qword_memory(b, AML_PRODUCER, AML_NON_CACHEABLE, AML_READ_WRITE,
		                     cfg->pci_mmio64_base,
		                     cfg->pci_mmio64_base + cfg->pci_mmio64_size - 1);
	aml_end(b, rt);
	aml_end(b, dev);

	/* COM1: the 8250 driver binds to PNP0501 and gets port and IRQ here. */
	dev = aml_device_begin(b, "COM1");
	aml_name_eisaid(b, "_HID", "PNP0501");
	aml_name_integer(b, "_UID", 1);
	struct aml_mark sta = aml_method_begin(b, "_STA", 0, false);
	aml_return(b);
	aml_integer(b, 0x0F); /* present, enabled, shown, functioning */
	aml_end(b, sta);
	aml_name(b, "_CRS");
	rt = aml_restemplate_begin(b);
	aml_res_io(b, cfg->com1_port, cfg->com1_port, 1, COM_PORTS);
	aml_res_irq_noflags(b, cfg->com1_irq);
	aml_end(b, rt);
	aml_end(b, dev);

	/*
	 * Motherboard resources: Linux accepts the MCFG ECAM window only if a
	 * PNP0C01/PNP0C02 device reserves it, and the PM ports are kept out
	 * of PCI I/O allocation.
	 */
	dev = aml_device_begin(b, "MRES");
	aml_name_eisaid(b, "_HID", "PNP0C02");
	aml_name_integer(b, "_UID", 0);
	aml_name(b, "_CRS");
	rt = aml_restemplate_begin(b);
	struct acpi_range ecam = acpi_ecam_range(cfg);
	if (ecam.base + ecam.size - 1 <= UINT32_MAX)
		aml_res_memory32_fixed(b, AML_READ_WRITE, (uint32_t)ecam.base, (uint32_t)ecam.size);
	else
		aml_res_qword_memory(b, AML_CONSUMER, AML_NON_CACHEABLE, AML_READ_WRITE, ecam.base,
		                     ecam.base + ecam.size - 1);
	aml_res_io(b, cfg->pm_port, cfg->pm_port, 1, ACPI_PM_PORTS);
	aml_end(b, rt);
	aml_end(b, dev);

	aml_end(b, sb);

	/* S5 (soft off): SLP_TYPa = SLP_TYPb = 5, see acpi_s5_value(). */
	aml_name(b, "\\_S5");
	struct aml_mark pkg = aml_package_begin(b, 2);
	aml_integer(b, ACPI_SLP_TYP_S5);
	aml_integer(b, ACPI_SLP_TYP_S5);
	aml_end(b, pkg);
}

static size_t acpi_madt_len(unsigned ncpus)
{
	size_t nx = ncpus > MADT_XAPIC_MAX_ID + 1 ? ncpus - (MADT_XAPIC_MAX_ID + 1) : 0;
	size_t len = ACPI_HDR_LEN + 8 + (size_t)(ncpus - nx) * MADT_LAPIC_LEN +
	             nx * MADT_X2APIC_LEN + MADT_IOAPIC_LEN + MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;

	return nx ? len + MADT_X2APIC_NMI_LEN : len;
}

/* Sizes and offsets of every table; -EINVAL if the DSDT cannot be encoded. */
static int acpi_layout(const struct acpi_config *cfg, struct acpi_layout *l)
{
	struct aml_buf m;
	int err;

	aml_init(&m, NULL, 0);
	acpi_dsdt_aml(&m, cfg);
	err = aml_finish(&m);
	if (err)
		return err;

	l->madt_len = acpi_madt_len(cfg->ncpus);
	l->dsdt_len = ACPI_HDR_LEN + m.len;
	if (l->dsdt_len > UINT32_MAX)
		return -EINVAL;
	l->xsdt = acpi_align(ACPI_RSDP_LEN);
	l->fadt = acpi_align(l->xsdt + ACPI_XSDT_LEN);
	l->madt = acpi_align(l->fadt + ACPI_FADT_LEN);
	l->mcfg = acpi_align(l->madt + l->madt_len);
	l->dsdt = acpi_align(l->mcfg + ACPI_MCFG_LEN);
	l->end = l->dsdt + l->dsdt_len;
	return 0;
}

static void acpi_header(uint8_t *t, const char sig[4], size_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	acpi_le(t + 4, len, 4);
	t[8] = rev;
	t[9] = 0; /* checksum, set by acpi_seal() */
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	acpi_le(t + 24, ACPI_OEM_REVISION, 4);
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	acpi_le(t + 32, ACPI_CREATOR_REVISION, 4);
}

static void acpi_seal(uint8_t *t, size_t len)
{
	t[9] = 0;
	t[9] = acpi_checksum(t, len);
}

/* An 8-bit System I/O register, accessed with byte accesses. */
static void acpi_gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = ACPI_GAS_SYSTEM_IO;
	g[1] = 8; /* bit width */
	g[2] = 0; /* bit offset */
	g[3] = ACPI_GAS_BYTE;
	acpi_le(g + 4, port, 8);
}

static void acpi_rsdp(uint8_t *r, uint64_t xsdt_gpa)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[15] = ACPI_RSDP_REV;
	acpi_le(r + 16, 0, 4); /* no RSDT: revision 2 readers use the XSDT */
	acpi_le(r + 20, ACPI_RSDP_LEN, 4);
	acpi_le(r + 24, xsdt_gpa, 8);
	r[8] = acpi_checksum(r, 20);             /* ACPI 1.0 part */
	r[32] = acpi_checksum(r, ACPI_RSDP_LEN); /* whole structure */
}

static void acpi_fadt(uint8_t *t, const struct acpi_config *cfg, uint64_t dsdt_gpa)
{
	acpi_header(t, "FACP", ACPI_FADT_LEN, ACPI_FADT_REV);
	/* No FACS: allowed with HW_REDUCED_ACPI (no firmware waking vector). */
	acpi_le(t + FADT_FIRMWARE_CTRL, 0, 4);
	if (dsdt_gpa <= UINT32_MAX)
		acpi_le(t + FADT_DSDT, dsdt_gpa, 4);
	t[FADT_PM_PROFILE] = 0;          /* unspecified */
	acpi_le(t + FADT_SCI_INT, 0, 2); /* no SCI on a hardware-reduced platform */
	acpi_le(t + FADT_IAPC_BOOT,
	        IAPC_VGA_NOT_PRESENT | IAPC_PCIE_ASPM_CTRL | IAPC_CMOS_RTC_ABSENT, 2);
	acpi_le(t + FADT_FLAGS,
	        FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP | FADT_F_PWR_BUTTON |
	            FADT_F_SLP_BUTTON,
	        4);
	acpi_gas_io8(t + FADT_RESET_REG, cfg->pm_port);
	t[FADT_RESET_VALUE] = cfg->reset_value;
	acpi_le(t + FADT_ARM_BOOT, 0, 2);
	t[FADT_MINOR_VERSION] = ACPI_FADT_MINOR_REV;
	acpi_le(t + FADT_X_DSDT, dsdt_gpa, 8);
	acpi_gas_io8(t + FADT_SLEEP_CONTROL, cfg->pm_port);
	acpi_gas_io8(t + FADT_SLEEP_STATUS, (uint16_t)(cfg->pm_port + 1));
	memcpy(t + FADT_HYPERVISOR_ID, ACPI_HYPERVISOR_ID, sizeof(ACPI_HYPERVISOR_ID) - 1);
	acpi_seal(t, ACPI_FADT_LEN);
}

static void acpi_madt(uint8_t *t, const struct acpi_config *cfg, size_t len)
{
	uint8_t *e = t + ACPI_HDR_LEN + 8;
	bool x2apic = cfg->ncpus > MADT_XAPIC_MAX_ID + 1;

	acpi_header(t, "APIC", len, ACPI_MADT_REV);
	acpi_le(t + 36, cfg->lapic_addr, 4);
	acpi_le(t + 40, MADT_PCAT_COMPAT, 4);

	/* CPU i: ACPI processor UID i, APIC id i; the boot CPU (0) first. */
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		if (i <= MADT_XAPIC_MAX_ID) {
			e[0] = MADT_LAPIC;
			e[1] = MADT_LAPIC_LEN;
			e[2] = (uint8_t)i; /* ACPI processor UID */
			e[3] = (uint8_t)i; /* APIC id */
			acpi_le(e + 4, MADT_ENABLED, 4);
			e += MADT_LAPIC_LEN;
		} else {
			e[0] = MADT_X2APIC;
			e[1] = MADT_X2APIC_LEN;
			acpi_le(e + 2, 0, 2);
			acpi_le(e + 4, i, 4); /* x2APIC id */
			acpi_le(e + 8, MADT_ENABLED, 4);
			acpi_le(e + 12, i, 4); /* ACPI processor UID */
			e += MADT_X2APIC_LEN;
		}
	}

	e[0] = MADT_IOAPIC;
	e[1] = MADT_IOAPIC_LEN;
	e[2] = cfg->ioapic_id;
	e[3] = 0;
	acpi_le(e + 4, cfg->ioapic_addr, 4);
	acpi_le(e + 8, cfg->ioapic_gsi_base, 4);
	e += MADT_IOAPIC_LEN;

	/* The PIT's ISA IRQ 0 is wired to IOAPIC pin 2, as on every PC. */
	e[0] = MADT_ISO;
	e[1] = MADT_ISO_LEN;
	e[2] = 0; /* bus: ISA */
	e[3] = 0; /* source: IRQ 0 */
	acpi_le(e + 4, 2, 4);
	acpi_le(e + 8, MPS_INTI_EDGE, 2);
	e += MADT_ISO_LEN;

	/* NMI arrives on LINT1 of every local APIC. */
	e[0] = MADT_LAPIC_NMI;
	e[1] = MADT_LAPIC_NMI_LEN;
	e[2] = 0xFF; /* all processors */
	acpi_le(e + 3, 0, 2);
	e[5] = 1; /* LINT1 */
	e += MADT_LAPIC_NMI_LEN;

	if (x2apic) {
		e[0] = MADT_X2APIC_NMI;
		e[1] = MADT_X2APIC_NMI_LEN;
		acpi_le(e + 2, 0, 2);
		acpi_le(e + 4, UINT32_MAX, 4); /* all processors */
		e[8] = 1;                      /* LINT1 */
		e += MADT_X2APIC_NMI_LEN;
	}
	acpi_seal(t, len);
}

static void acpi_mcfg(uint8_t *t, const struct acpi_config *cfg)
{
	acpi_header(t, "MCFG", ACPI_MCFG_LEN, ACPI_MCFG_REV);
	/* 8 reserved bytes, then one allocation structure. */
	acpi_le(t + 44, cfg->ecam_base, 8);
	acpi_le(t + 52, 0, 2); /* PCI segment */
	t[54] = cfg->pci_bus_start;
	t[55] = cfg->pci_bus_end;
	acpi_seal(t, ACPI_MCFG_LEN);
}

static void acpi_xsdt(uint8_t *t, const uint64_t entries[ACPI_XSDT_N])
{
	acpi_header(t, "XSDT", ACPI_XSDT_LEN, ACPI_XSDT_REV);
	for (size_t i = 0; i < ACPI_XSDT_N; i++)
		acpi_le(t + ACPI_HDR_LEN + 8 * i, entries[i], 8);
	acpi_seal(t, ACPI_XSDT_LEN);
}

static int acpi_dsdt(uint8_t *t, const struct acpi_config *cfg, size_t len)
{
	struct aml_buf b;

	acpi_header(t, "DSDT", len, ACPI_DSDT_REV);
	aml_init(&b, t + ACPI_HDR_LEN, len - ACPI_HDR_LEN);
	acpi_dsdt_aml(&b, cfg);
	/* Same calls as the measuring pass: anything else is our bug. */
	if (aml_finish(&b) || b.len != len - ACPI_HDR_LEN)
		return -EIO;
	acpi_seal(t, len);
	return 0;
}

long acpi_build(const struct acpi_config *cfg, void *buf, uint64_t buf_gpa, size_t len)
{
	struct acpi_layout l;
	uint8_t *p = buf;
	int err;

	if (!buf || buf_gpa % ACPI_ALIGN)
		return -EINVAL;
	err = acpi_config_check(cfg);
	if (!err)
		err = acpi_layout(cfg, &l);
	if (err)
		return err;
	if (buf_gpa > UINT64_MAX - l.end)
		return -EINVAL;
	if (l.end > len)
		return -ENOSPC;

	memset(p, 0, l.end);
	err = acpi_dsdt(p + l.dsdt, cfg, l.dsdt_len);
	if (err)
		return err;
	acpi_fadt(p + l.fadt, cfg, buf_gpa + l.dsdt);
	acpi_madt(p + l.madt, cfg, l.madt_len);
	acpi_mcfg(p + l.mcfg, cfg);
	const uint64_t xsdt[ACPI_XSDT_N] = {buf_gpa + l.fadt, buf_gpa + l.madt, buf_gpa + l.mcfg};
	acpi_xsdt(p + l.xsdt, xsdt);
	acpi_rsdp(p, buf_gpa + l.xsdt);
	return (long)l.end;
}
