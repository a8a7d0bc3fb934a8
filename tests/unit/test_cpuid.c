/*
 * test_cpuid.c - per-vCPU CPUID: APIC ids and topology for 1, 2, 3 and 64
 * vCPUs, on an AMD-like and an Intel-like supported list, without KVM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/internal.h"

#define CAP 64

static struct kvm_cpuid2 *fake_supported(bool amd)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CAP * sizeof(c->entries[0]));
	unsigned n = 0;

	assert_non_null(c);
#define ADD(fn, idx, a, b, cc, d)                                                                  \
	c->entries[n++] = (struct kvm_cpuid_entry2)                                                \
	{                                                                                          \
		.function = fn, .index = idx, .eax = a, .ebx = b, .ecx = cc, .edx = d              \
	}
	if (amd)
		ADD(0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65); /* AuthenticAMD */
	else
		ADD(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69); /* GenuineIntel */
	ADD(1, 0, 0x00a00f11, 0x00010800, 0x7ed8320b | (1u << 5), 0x178bfbff);
	ADD(4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0);
	ADD(4, 1, 0x1c004163, 0x01c0003f, 0x3ff, 0);
	ADD(0xb, 0, 1, 2, 0x100, 7);
	ADD(0xb, 1, 4, 16, 0x201, 7);
	if (!amd) {
		ADD(0x1f, 0, 1, 2, 0x100, 7);
		ADD(0x1f, 1, 4, 16, 0x201, 7);
	}
	ADD(0x80000000, 0, 0x8000001f, 0, 0, 0);
	ADD(0x80000001, 0, 0, 0, 0x75c237ff | (1u << 2), 0x2fd3fbff);
	ADD(0x80000008, 0, 0x3030, 0, 0x700f, 0);
	if (amd)
		ADD(0x8000001e, 0, 7, 0x103, 0, 0);
#undef ADD
	c->nent = n;
	return c;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	fail_msg("leaf 0x%x.%u missing", fn, idx);
	return NULL;
}

static void check_topology(bool amd, unsigned ncpus)
{
	unsigned bits = 0;
	while ((1u << bits) < ncpus)
		bits++;
	for (unsigned idx = 0; idx < ncpus; idx++) {
		struct kvm_cpuid2 *c = fake_supported(amd);
		assert_int_equal(cpuid_configure(c, CAP, idx, ncpus, true), 0);

		const struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);
		assert_int_equal(l1->ebx >> 24, idx);
		assert_int_equal((l1->ebx >> 16) & 0xff, 1u << bits);
		assert_true(l1->ecx & (1u << 31)); /* hypervisor */
		assert_true(l1->ecx & (1u << 24)); /* TSC deadline */
		assert_false(l1->ecx & (1u << 5)); /* no VMX */
		assert_int_equal(!!(l1->edx & (1u << 28)), ncpus > 1);

		const struct kvm_cpuid_entry2 *smt = find(c, 0xb, 0), *core = find(c, 0xb, 1);
		assert_int_equal(smt->ebx, 1);
		assert_int_equal((smt->ecx >> 8) & 0xff, 1);
		assert_int_equal(smt->edx, idx);
		assert_int_equal(core->eax & 0x1f, bits);
		assert_int_equal(core->ebx, ncpus);
		assert_int_equal((core->ecx >> 8) & 0xff, 2);
		assert_int_equal(core->edx, idx);
		assert_int_equal((find(c, 0xb, 2)->ecx >> 8) & 0xff, 0); /* end of levels */

		assert_int_equal(find(c, 4, 0)->eax >> 26, (1u << bits) - 1);
		assert_false(find(c, 0x80000001, 0)->ecx & (1u << 2)); /* no SVM */
		if (amd) {
			assert_int_equal(find(c, 0x80000008, 0)->ecx & 0xff, ncpus - 1);
			assert_int_equal((find(c, 0x80000008, 0)->ecx >> 12) & 0xf, bits);
			assert_int_equal(find(c, 0x8000001e, 0)->eax, idx);
			assert_int_equal(!!(find(c, 0x80000001, 0)->ecx & 2), ncpus > 1);
		} else {
			assert_int_equal(find(c, 0x1f, 1)->ebx, ncpus);
			assert_int_equal(find(c, 0x1f, 0)->edx, idx);
			assert_int_equal(find(c, 0x80000008, 0)->ecx, 0x700f); /* untouched */
		}
		free(c);
	}
}

static void test_amd(void **state)
{
	(void)state;
	check_topology(true, 1);
	check_topology(true, 2);
	check_topology(true, 3);
	check_topology(true, 64);
}

static void test_intel(void **state)
{
	(void)state;
	check_topology(false, 1);
	check_topology(false, 2);
	check_topology(false, 3);
	check_topology(false, 64);
}

static void test_no_tsc_deadline_and_room(void **state)
{
	struct kvm_cpuid2 *c = fake_supported(false);
	(void)state;

	assert_int_equal(cpuid_configure(c, CAP, 0, 1, false), 0);
	assert_false(find(c, 1, 0)->ecx & (1u << 24));
	free(c);
	c = fake_supported(false);
	assert_int_equal(cpuid_configure(c, c->nent, 0, 2, true), -ENOSPC);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_amd),
	    cmocka_unit_test(test_intel),
	    cmocka_unit_test(test_no_tsc_deadline_and_room),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
