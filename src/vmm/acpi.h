/*
 * acpi.h - ACPI tables the VMM generates for its guest (internal to src/vmm).
 *
 * acpi_build() writes RSDP, XSDT, FADT (hardware-reduced), MADT, DSDT and
 * MCFG into one buffer that the caller places in guest memory.  It owns the
 * table layouts and the AML encoder; it never touches KVM or guest state.
 */
#ifndef ZONEVM_VMM_ACPI_H
#define ZONEVM_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct acpi_config {
	unsigned ncpus;       /* local APICs, ids 0..ncpus-1 (x2APIC entries for ids >= 255) */
	uint64_t lapic_addr;  /* 0xFEE00000 */
	uint64_t ioapic_addr; /* 0xFEC00000 */
	uint8_t ioapic_id;
	uint32_t ioapic_gsi_base;
	uint64_t ecam_base; /* PCI ECAM window, one MiB per bus */
	uint8_t pci_bus_start;
	uint8_t pci_bus_end;
	uint64_t pci_mmio32_base; /* 32-bit PCI memory window for BARs */
	uint64_t pci_mmio32_size;
	uint64_t pci_mmio64_base; /* 64-bit PCI memory window (0 size: none) */
	uint64_t pci_mmio64_size;
	uint16_t pm_port;    /* I/O port: sleep control (S5) / status / reset register */
	uint8_t reset_value; /* value written to pm_port to reset */
	uint16_t com1_port;  /* 0x3F8 */
	uint8_t com1_irq;    /* 4 */
};

/*
 * Build all tables into buf, which the guest sees at guest-physical address
 * buf_gpa.  The RSDP is at buf[0] (so at buf_gpa).  Returns the number of
 * bytes used, or -ENOSPC if len is too small, -EINVAL for a bad config.
 */
long acpi_build(const struct acpi_config *cfg, void *buf, uint64_t buf_gpa, size_t len);

/* ACPI table checksum: the byte that makes the sum of len bytes zero. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
