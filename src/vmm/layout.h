/*
 * layout.h - the guest-physical address map zonevm presents (internal).
 *
 *   0x0000_0000  +-------------------------------+
 *                | real-mode area: GDT 0x500,    |
 *                | zero page 0x7000, boot stack, |
 *                | page tables 0x9000-0xDFFF     |
 *   0x0002_0000  | kernel command line           |
 *   0x0009_FC00  +-- EBDA (reserved) ------------+
 *   0x000E_0000  | ACPI: RSDP + tables (reserved)|
 *   0x0010_0000  +-------------------------------+
 *                | kernel (protected-mode part), |
 *                | then RAM; initrd at the top   |
 *                | of low RAM                    |
 *   low_end      +-------------------------------+  min(mem, 3 GiB)
 *   0xC000_0000  | PCI MMIO window (32-bit BARs) |
 *   0xE000_0000  | PCI ECAM (bus 0: 1 MiB)       |
 *   0xFEC0_0000  | IOAPIC                        |
 *   0xFEE0_0000  | local APIC                    |
 *   0xFFFB_C000  | KVM identity map + TSS pages  |
 *   0x1_0000_0000+-------------------------------+
 *                | RAM above 4 GiB (mem - 3 GiB) |
 *                +-------------------------------+
 *                | PCI 64-bit MMIO window        |
 */
#ifndef ZONEVM_VMM_LAYOUT_H
#define ZONEVM_VMM_LAYOUT_H

#define LAYOUT_GDT             0x500ULL
#define LAYOUT_IDT             0x520ULL
#define LAYOUT_ZERO_PAGE       0x7000ULL
#define LAYOUT_BOOT_STACK      0x8ff0ULL
#define LAYOUT_PML4            0x9000ULL
#define LAYOUT_PDPT            0xa000ULL
#define LAYOUT_PD              0xb000ULL /* 4 pages: identity map of 4 GiB */
#define LAYOUT_CMDLINE         0x20000ULL
#define LAYOUT_CMDLINE_MAX     0x10000ULL
#define LAYOUT_EBDA            0x9fc00ULL
#define LAYOUT_ACPI            0xe0000ULL
#define LAYOUT_ACPI_SIZE       0x20000ULL
#define LAYOUT_RESET_VECTOR    0xffff0ULL /* F000:FFF0, inside the reserved ACPI area */
#define LAYOUT_KERNEL          0x100000ULL
#define LAYOUT_MMIO_HOLE       0xc0000000ULL
#define LAYOUT_PCI_MMIO32      0xc0000000ULL
#define LAYOUT_PCI_MMIO32_SIZE 0x20000000ULL
#define LAYOUT_ECAM            0xe0000000ULL
#define LAYOUT_ECAM_BUSES      1
#define LAYOUT_ECAM_SIZE       (LAYOUT_ECAM_BUSES * 0x100000ULL)
#define LAYOUT_IOAPIC          0xfec00000ULL
#define LAYOUT_LAPIC           0xfee00000ULL
#define LAYOUT_IDENTITY_MAP    0xfffbc000ULL
#define LAYOUT_TSS             0xfffbd000ULL
#define LAYOUT_HIGH_RAM        0x100000000ULL
#define LAYOUT_PCI_MMIO64_SIZE (64ULL << 30)

/* I/O ports. */
#define LAYOUT_PORT_COM1 0x3f8
#define LAYOUT_IRQ_COM1  4
#define LAYOUT_PORT_PM   0x600 /* ACPI sleep control/status + reset register */
#define LAYOUT_PM_RESET  0x01  /* value the guest writes to reset */

#endif
