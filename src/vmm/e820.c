/*
 * e820.c - the guest's BIOS memory map, given to Linux in the zero page.
 *
 * RAM below the EBDA, the EBDA and the ACPI area reserved, RAM from 1 MiB
 * to the MMIO hole, the PCI ECAM window reserved (Linux accepts MMCONFIG
 * only in a reserved range), and the RAM that did not fit below the hole at
 * 4 GiB.  Pure function: no KVM, no allocation.
 */
#include "internal.h"
#include "layout.h"

static unsigned e820_add(struct e820_entry *tab, unsigned n, unsigned max, uint64_t addr,
                         uint64_t size, uint32_t type)
{
	if (n < max && size)
		tab[n++] = (struct e820_entry){.addr = addr, .size = size, .type = type};
	return n;
}

unsigned e820_build(uint64_t mem_size, struct e820_entry *tab, unsigned max)
{
	uint64_t low, high;
	unsigned n = 0;

	mem_layout(mem_size, &low, &high);
	n = e820_add(tab, n, max, 0, low < LAYOUT_EBDA ? low : LAYOUT_EBDA, E820_RAM);
	n = e820_add(tab, n, max, LAYOUT_EBDA, LAYOUT_ACPI - LAYOUT_EBDA, E820_RESERVED);
	n = e820_add(tab, n, max, LAYOUT_ACPI, LAYOUT_KERNEL - LAYOUT_ACPI, E820_RESERVED);
	if (low > LAYOUT_KERNEL)
		n = e820_add(tab, n, max, LAYOUT_KERNEL, low - LAYOUT_KERNEL, E820_RAM);
	n = e820_add(tab, n, max, LAYOUT_ECAM, LAYOUT_ECAM_SIZE, E820_RESERVED);
	n = e820_add(tab, n, max, LAYOUT_HIGH_RAM, high, E820_RAM);
	return n;
}
