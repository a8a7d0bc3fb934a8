/*
 * test_boot.c - the Linux boot protocol pieces without KVM: bzImage header
 * checks, initrd placement, the zero page layout, the E820 map and where
 * guest RAM is mapped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "vmm/internal.h"
#include "vmm/layout.h"

static uint64_t rd(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void wr(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A synthetic bzImage header, as a 6.1 kernel has it. */
static void fake_header(uint8_t *h, uint16_t version)
{
	memset(h, 0, 0x400);
	h[HDR_SETUP_SECTS] = 27;
	wr(h + HDR_BOOT_FLAG, 0xaa55, 2);
	h[HDR_JUMP] = 0xeb;
	h[HDR_JUMP + 1] = 0x6a; /* header ends at 0x26c */
	memcpy(h + HDR_MAGIC, "HdrS", 4);
	wr(h + HDR_VERSION, version, 2);
	h[HDR_LOADFLAGS] = LOADFLAGS_LOADED_HIGH;
	wr(h + HDR_INITRD_ADDR_MAX, 0x7fffffff, 4);
	wr(h + HDR_XLOADFLAGS, 0x7f, 2);
	wr(h + HDR_CMDLINE_SIZE, 2047, 4);
	wr(h + HDR_INIT_SIZE, 40u << 20, 4);
}

static void test_parse_ok(void **state)
{
	uint8_t h[0x400];
	struct boot_image img;
	char err[128];
	(void)state;

	fake_header(h, 0x020f);
	assert_int_equal(boot_parse(h, sizeof(h), 8 << 20, &img, err, sizeof(err)), 0);
	assert_int_equal(img.version, 0x020f);
	assert_int_equal(img.pm_offset, 28 * 512);
	assert_int_equal(img.pm_size, (8 << 20) - 28 * 512);
	assert_int_equal(img.hdr_end, 0x26c);
	assert_int_equal(img.init_size, 40u << 20);
	/* setup_sects 0 means 4 */
	h[HDR_SETUP_SECTS] = 0;
	assert_int_equal(boot_parse(h, sizeof(h), 8 << 20, &img, err, sizeof(err)), 0);
	assert_int_equal(img.pm_offset, 5 * 512);
}

static void test_parse_bad(void **state)
{
	uint8_t h[0x400];
	struct boot_image img;
	char err[128];
	(void)state;

	memset(h, 0x5a, sizeof(h));
	assert_int_equal(boot_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "not a bzImage"));
	fake_header(h, 0x020b);
	assert_int_equal(boot_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "2.11 is too old"));
	fake_header(h, 0x020f);
	wr(h + HDR_XLOADFLAGS, 0, 2);
	assert_int_equal(boot_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "64-bit"));
	fake_header(h, 0x020f);
	assert_int_equal(boot_parse(h, sizeof(h), 1024, &img, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "truncated"));
	fake_header(h, 0x020f);
	h[HDR_JUMP + 1] = 0x10; /* header too short to hold init_size */
	assert_int_equal(boot_parse(h, sizeof(h), 1 << 20, &img, err, sizeof(err)), -ENOEXEC);
}

static void test_place(void **state)
{
	uint8_t h[0x400];
	struct boot_image img;
	struct boot_layout lay;
	struct vm_mem mem = {0};
	char err[256];
	(void)state;

	fake_header(h, 0x020f);
	assert_int_equal(boot_parse(h, sizeof(h), 8 << 20, &img, err, sizeof(err)), 0);

	mem.size = 256ULL << 20;
	mem_layout(mem.size, &mem.low_size, &mem.high_size);
	assert_int_equal(boot_place(&img, &mem, 10 << 20, &lay, err, sizeof(err)), 0);
	assert_int_equal(lay.initrd_gpa + lay.initrd_size <= mem.low_size, 1);
	assert_int_equal(lay.initrd_gpa % 4096, 0);
	assert_int_equal(lay.initrd_gpa >= lay.kernel_end, 1);

	/* Too small for the kernel's init_size (40 MiB from 1 MiB). */
	mem.size = 32ULL << 20;
	mem_layout(mem.size, &mem.low_size, &mem.high_size);
	assert_int_equal(boot_place(&img, &mem, 0, &lay, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "too small for the kernel"));

	/* The initrd does not fit above the kernel. */
	mem.size = 64ULL << 20;
	mem_layout(mem.size, &mem.low_size, &mem.high_size);
	assert_int_equal(boot_place(&img, &mem, 30 << 20, &lay, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "initrd (30 MiB) does not fit"));

	/* Large guest: the initrd stays below initrd_addr_max (2 GiB). */
	mem.size = 8ULL << 30;
	mem_layout(mem.size, &mem.low_size, &mem.high_size);
	assert_int_equal(boot_place(&img, &mem, 10 << 20, &lay, err, sizeof(err)), 0);
	assert_int_equal(lay.initrd_gpa + lay.initrd_size <= 0x80000000ULL, 1);
}

static void test_zero_page(void **state)
{
	uint8_t h[0x400];
	uint8_t *zp = calloc(1, BP_SIZE);
	struct boot_image img;
	struct boot_layout lay = {
	    .kernel_end = 41 << 20, .initrd_gpa = 0x7000000, .initrd_size = 0x123456};
	char err[128];
	(void)state;

	assert_non_null(zp);
	fake_header(h, 0x020f);
	assert_int_equal(boot_parse(h, sizeof(h), 8 << 20, &img, err, sizeof(err)), 0);
	boot_zero_page(zp, &img, 256ULL << 20, &lay, LAYOUT_CMDLINE, LAYOUT_ACPI);
	assert_memory_equal(zp + HDR_MAGIC, "HdrS", 4);
	assert_int_equal(rd(zp + HDR_VERSION, 2), 0x020f);
	assert_int_equal(zp[HDR_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[HDR_LOADFLAGS] & (LOADFLAGS_LOADED_HIGH | LOADFLAGS_CAN_USE_HEAP),
	                 LOADFLAGS_LOADED_HIGH | LOADFLAGS_CAN_USE_HEAP);
	assert_int_equal(rd(zp + HDR_CMD_LINE_PTR, 4), LAYOUT_CMDLINE);
	assert_int_equal(rd(zp + HDR_RAMDISK_IMAGE, 4), 0x7000000);
	assert_int_equal(rd(zp + HDR_RAMDISK_SIZE, 4), 0x123456);
	assert_int_equal(rd(zp + BP_ACPI_RSDP_ADDR, 8), LAYOUT_ACPI);
	assert_int_equal(rd(zp + HDR_VID_MODE, 2), 0xffff);
	/* Nothing past the setup header was copied from the image. */
	assert_int_equal(zp[0x26c], 0);
	unsigned n = zp[BP_E820_ENTRIES];
	assert_true(n >= 4);
	/* The first entry: RAM from 0 to the EBDA. */
	assert_int_equal(rd(zp + BP_E820_TABLE, 8), 0);
	assert_int_equal(rd(zp + BP_E820_TABLE + 8, 8), LAYOUT_EBDA);
	assert_int_equal(rd(zp + BP_E820_TABLE + 16, 4), E820_RAM);
	free(zp);
}

/* Sum of RAM in the map, and checks that entries are sorted and disjoint. */
static uint64_t e820_ram(const struct e820_entry *t, unsigned n)
{
	uint64_t ram = 0, end = 0;
	for (unsigned i = 0; i < n; i++) {
		assert_true(t[i].addr >= end);
		end = t[i].addr + t[i].size;
		if (t[i].type == E820_RAM)
			ram += t[i].size;
	}
	return ram;
}

static void test_e820_sizes(void **state)
{
	static const uint64_t sizes[] = {
	    16ULL << 20, 256ULL << 20, 3ULL << 30, 3584ULL << 20, 4ULL << 30, 64ULL << 30,
	};
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct e820_entry t[E820_MAX];
		unsigned n = e820_build(sizes[i], t, E820_MAX);
		uint64_t lost = LAYOUT_KERNEL - LAYOUT_EBDA; /* EBDA + ACPI + BIOS area */
		assert_int_equal(e820_ram(t, n), sizes[i] - lost);
		int has_high = 0, has_ecam = 0;
		for (unsigned j = 0; j < n; j++) {
			if (t[j].type == E820_RAM && t[j].addr >= LAYOUT_MMIO_HOLE) {
				assert_int_equal(t[j].addr, LAYOUT_HIGH_RAM);
				has_high = 1;
			}
			if (t[j].type == E820_RAM)
				assert_true(t[j].addr + t[j].size <= LAYOUT_MMIO_HOLE ||
				            t[j].addr >= LAYOUT_HIGH_RAM);
			if (t[j].addr == LAYOUT_ECAM && t[j].type == E820_RESERVED)
				has_ecam = 1;
		}
		assert_int_equal(has_high, sizes[i] > LAYOUT_MMIO_HOLE);
		assert_true(has_ecam);
	}
}

static void test_mem_ptr(void **state)
{
	struct vm_mem m = {0};
	uint8_t *fake;
	(void)state;

	/* An address-space reservation only: nothing is touched. */
	m.size = 4ULL << 30;
	fake = mmap(NULL, m.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(fake != MAP_FAILED);
	m.base = fake;
	mem_layout(m.size, &m.low_size, &m.high_size);
	assert_int_equal(m.low_size, LAYOUT_MMIO_HOLE);
	assert_int_equal(m.high_size, 1ULL << 30);
	assert_ptr_equal(mem_ptr(&m, 0, 16), fake);
	assert_null(mem_ptr(&m, LAYOUT_MMIO_HOLE - 8, 16)); /* runs into the hole */
	assert_null(mem_ptr(&m, LAYOUT_ECAM, 4));
	assert_ptr_equal(mem_ptr(&m, LAYOUT_HIGH_RAM, 8), fake + LAYOUT_MMIO_HOLE);
	assert_null(mem_ptr(&m, LAYOUT_HIGH_RAM + (1ULL << 30) - 4, 8));
	assert_null(mem_ptr(&m, UINT64_MAX - 2, 8));
	assert_null(mem_ptr(&m, 0, UINT64_MAX));
	munmap(fake, m.size);
}

/*
 * Guest RAM is mapped on a 2 MiB boundary (so that KVM can use 2 MiB nested
 * pages), locked, exactly SIZE (rounded to pages) long, between two guard
 * pages; the rest of the alignment reservation is given back.  A size that is not a multiple of
 * 2 MiB or even of a page, private and shared (memfd) alike.
 */
static void test_mem_alloc_aligned(void **state)
{
	static const uint64_t sizes[] = {4ULL << 20, (2ULL << 20) + 4096, (1ULL << 20) + 100};
	const uint64_t align = 2ULL << 20, page = 4096;
	(void)state;

	for (int shared = 0; shared <= 1; shared++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			struct vm_mem m;
			uint64_t mapped = (sizes[i] + page - 1) / page * page;
			static unsigned char vec[1024];

			if (mem_alloc(&m, sizes[i], shared) < 0)
				skip(); /* RLIMIT_MEMLOCK below a few MiB here */
			assert_int_equal((uintptr_t)m.base % align, 0);
			assert_int_equal(m.size, sizes[i]);
			memset(m.base, 0xa5, sizes[i]);
			assert_true(mapped / page <= sizeof(vec));
			assert_int_equal(mincore(m.base, mapped, vec), 0);
			/* A guard page on each side, unusable; beyond them, nothing. */
			uint8_t *lo = m.base - page, *hi = m.base + mapped;
			assert_int_equal(mincore(lo, page, vec), 0);
			assert_int_equal(mincore(hi, page, vec), 0);
			assert_int_equal(mprotect(lo, page, PROT_NONE), 0);
			assert_int_equal(mprotect(hi, page, PROT_NONE), 0);
			errno = 0;
			assert_int_equal(mincore(hi + page, page, vec), -1);
			assert_int_equal(errno, ENOMEM);
			mem_free(&m);
			assert_null(m.base);
			/* mem_free() unmapped the guards with the memory. */
			assert_int_equal(mincore(lo, page, vec), -1);
			assert_int_equal(mincore(hi, page, vec), -1);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_ok),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_place),
	    cmocka_unit_test(test_zero_page),
	    cmocka_unit_test(test_e820_sizes),
	    cmocka_unit_test(test_mem_ptr),
	    cmocka_unit_test(test_mem_alloc_aligned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
