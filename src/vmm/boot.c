/*
 * boot.c - the Linux x86 boot protocol, 64-bit entry (no firmware).
 *
 * Owns: checking a bzImage's setup header (boot protocol >= 2.12 with
 * XLF_KERNEL_64), placing the kernel at 1 MiB and the initrd at the top of
 * low RAM, filling the zero page (struct boot_params: setup header, command
 * line pointer, initrd, E820 table, ACPI RSDP address), and writing the GDT
 * and identity-mapped page tables the 64-bit entry expects, and a reset
 * stub at the real-mode reset vector.  It never talks
 * to KVM: vcpu.c loads the registers that point at what this file wrote.
 * Reference: Documentation/arch/x86/boot.rst of the Linux kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "layout.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

int boot_parse(const uint8_t *head, size_t head_len, uint64_t file_size, struct boot_image *img,
               char *err, size_t errlen)
{
	memset(img, 0, sizeof(*img));
	if (head_len < sizeof(img->setup) || get16(head + HDR_BOOT_FLAG) != 0xaa55 ||
	    memcmp(head + HDR_MAGIC, "HdrS", 4) != 0) {
		snprintf(err, errlen, "not a bzImage (no Linux boot header \"HdrS\" at 0x202)");
		return -ENOEXEC;
	}
	img->version = get16(head + HDR_VERSION);
	if (img->version < BOOT_PROTOCOL_MIN) {
		snprintf(err, errlen,
		         "boot protocol %u.%02u is too old (zonevm needs 2.12 or later)",
		         img->version >> 8, img->version & 0xff);
		return -EPROTO;
	}
	img->xloadflags = get16(head + HDR_XLOADFLAGS);
	if (!(img->xloadflags & XLF_KERNEL_64)) {
		snprintf(err, errlen, "kernel has no 64-bit entry point (XLF_KERNEL_64 not set)");
		return -EPROTO;
	}
	if (!(head[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH)) {
		snprintf(err, errlen, "not a bzImage (zImage kernels load below 1 MiB)");
		return -ENOEXEC;
	}
	img->setup_sects = head[HDR_SETUP_SECTS] ? head[HDR_SETUP_SECTS] : 4;
	img->initrd_addr_max = get32(head + HDR_INITRD_ADDR_MAX);
	img->cmdline_size = get32(head + HDR_CMDLINE_SIZE);
	img->init_size = get32(head + HDR_INIT_SIZE);
	img->pm_offset = (uint64_t)(img->setup_sects + 1) * 512;
	if (img->pm_offset >= file_size) {
		snprintf(err, errlen, "bzImage is truncated (setup is %llu bytes, file %llu)",
		         (unsigned long long)img->pm_offset, (unsigned long long)file_size);
		return -ENOEXEC;
	}
	img->pm_size = file_size - img->pm_offset;
	/* The header's length is in the second byte of its jump instruction. */
	img->hdr_end = HDR_JUMP + 2 + head[HDR_JUMP + 1];
	if (img->hdr_end > sizeof(img->setup) || img->hdr_end < HDR_INIT_SIZE + 4) {
		snprintf(err, errlen, "bzImage setup header has a bad length (%zu)", img->hdr_end);
		return -ENOEXEC;
	}
	memcpy(img->setup, head, sizeof(img->setup));
	return 0;
}

int boot_place(const struct boot_image *img, const struct vm_mem *mem, uint64_t initrd_size,
               struct boot_layout *out, char *err, size_t errlen)
{
	uint64_t need = img->init_size > img->pm_size ? img->init_size : img->pm_size;
	uint64_t top;
	char a[32], b[32];

	memset(out, 0, sizeof(*out));
	out->kernel_end = (LAYOUT_KERNEL + need + 0xfff) & ~0xfffULL;
	if (out->kernel_end > mem->low_size) {
		snprintf(err, errlen,
		         "guest memory (%s) is too small for the kernel, which needs %s from 1 MiB",
		         vm_fmt_size(mem->size, a, sizeof(a)), vm_fmt_size(need, b, sizeof(b)));
		return -ENOMEM;
	}
	if (!initrd_size)
		return 0;
	top = mem->low_size;
	if (img->initrd_addr_max && top > (uint64_t)img->initrd_addr_max + 1)
		top = (uint64_t)img->initrd_addr_max + 1;
	if (initrd_size > top || ((top - initrd_size) & ~0xfffULL) < out->kernel_end) {
		snprintf(
		    err, errlen,
		    "initrd (%s) does not fit in guest memory: %s is free between the kernel and "
		    "%s",
		    vm_fmt_size(initrd_size, a, sizeof(a)),
		    vm_fmt_size(top > out->kernel_end ? top - out->kernel_end : 0, b, sizeof(b)),
		    top == mem->low_size ? "the end of low memory" : "initrd_addr_max");
		return -ENOMEM;
	}
	out->initrd_gpa = (top - initrd_size) & ~0xfffULL;
	out->initrd_size = initrd_size;
	return 0;
}

void boot_zero_page(uint8_t *zp, const struct boot_image *img, uint64_t mem_size,
                    const struct boot_layout *lay, uint64_t cmdline_gpa, uint64_t rsdp_gpa)
{
	struct e820_entry e820[E820_MAX];
	unsigned n;

	memset(zp, 0, BP_SIZE);
	memcpy(zp + BP_HDR, img->setup + BP_HDR, img->hdr_end - BP_HDR);
	put16(zp + HDR_VID_MODE, 0xffff); /* "normal" */
	zp[HDR_TYPE_OF_LOADER] = 0xff;    /* undefined boot loader */
	zp[HDR_LOADFLAGS] |= LOADFLAGS_CAN_USE_HEAP;
	put16(zp + HDR_HEAP_END_PTR, 0xfe00);
	put32(zp + HDR_CMD_LINE_PTR, (uint32_t)cmdline_gpa);
	put32(zp + BP_EXT_CMD_LINE_PTR, (uint32_t)(cmdline_gpa >> 32));
	put32(zp + HDR_RAMDISK_IMAGE, (uint32_t)lay->initrd_gpa);
	put32(zp + HDR_RAMDISK_SIZE, (uint32_t)lay->initrd_size);
	put32(zp + BP_EXT_RAMDISK_IMG, (uint32_t)(lay->initrd_gpa >> 32));
	put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(lay->initrd_size >> 32));
	put32(zp + HDR_CODE32_START, (uint32_t)LAYOUT_KERNEL);
	put64(zp + BP_ACPI_RSDP_ADDR, rsdp_gpa);

	n = e820_build(mem_size, e820, E820_MAX);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
}

int boot_write_tables(const struct vm_mem *mem)
{
	/*
	 * There is no firmware, so the reset vector holds what a BIOS would
	 * end up doing there: reset the machine.  Linux on a hardware-reduced
	 * ACPI platform reboots through "BIOS" (a jump to F000:FFF0 in real
	 * mode) before it tries the ACPI reset register.
	 *   mov dx, LAYOUT_PORT_PM; mov al, LAYOUT_PM_RESET; out dx, al; hlt; jmp $-1
	 */
	static const uint8_t reset_stub[] = {
	    0xba,
	    LAYOUT_PORT_PM & 0xff,
	    LAYOUT_PORT_PM >> 8,
	    0xb0,
	    LAYOUT_PM_RESET,
	    0xee,
	    0xf4,
	    0xeb,
	    0xfd,
	};
	uint8_t *rv = mem_ptr(mem, LAYOUT_RESET_VECTOR, sizeof(reset_stub));

	/* Null, 64-bit code (0x08), data (0x10), TSS (0x18): flat, DPL 0. */
	static const uint64_t gdt[] = {
	    0x0000000000000000ULL,
	    0x00af9b000000ffffULL,
	    0x00cf93000000ffffULL,
	    0x00808b0000000000ULL,
	};
	uint8_t *g = mem_ptr(mem, LAYOUT_GDT, sizeof(gdt));
	uint8_t *idt = mem_ptr(mem, LAYOUT_IDT, 8);
	uint8_t *pml4 = mem_ptr(mem, LAYOUT_PML4, 0x1000);
	uint8_t *pdpt = mem_ptr(mem, LAYOUT_PDPT, 0x1000);
	uint8_t *pd = mem_ptr(mem, LAYOUT_PD, 4 * 0x1000);

	if (!g || !idt || !pml4 || !pdpt || !pd || !rv)
		return -ENOMEM;
	memcpy(rv, reset_stub, sizeof(reset_stub));
	for (unsigned i = 0; i < 4; i++)
		put64(g + 8 * i, gdt[i]);
	put64(idt, 0);
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	put64(pml4, LAYOUT_PDPT | 0x03); /* present, writable */
	for (unsigned i = 0; i < 4; i++)
		put64(pdpt + 8 * i, (LAYOUT_PD + 0x1000ULL * i) | 0x03);
	for (uint64_t i = 0; i < 4 * 512; i++)
		put64(pd + 8 * i, (i << 21) | 0x83); /* present, writable, 2 MiB page */
	return 0;
}
