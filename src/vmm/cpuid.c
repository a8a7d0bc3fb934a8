/*
 * cpuid.c - what each vCPU sees in CPUID.
 *
 * Starts from KVM_GET_SUPPORTED_CPUID (what this host and KVM can offer)
 * and makes it describe one package of ncpus cores, one thread each, with
 * APIC id = vCPU index:
 *   leaf 1          EBX[31:24] APIC id, EBX[23:16] logical count, HTT,
 *                   ECX hypervisor bit, TSC-deadline when KVM has it,
 *                   no VMX (no nested virtualization, seed policy)
 *   leaf 4          cores per package (Intel cache leaves)
 *   leaves 0xB/0x1F SMT level (1 thread) and core level (ncpus), x2APIC id
 *   0x80000001      no SVM, CmpLegacy when ncpus > 1
 *   0x80000008      AMD: NC = ncpus - 1, ApicIdCoreIdSize
 *   0x8000001E      AMD: extended APIC id, core id, one node
 * Pure function over a struct kvm_cpuid2: testable without KVM.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define CPUID_1_ECX_VMX          (1u << 5)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)
#define CPUID_1_EDX_HTT          (1u << 28)
#define CPUID_81_ECX_CMPLEGACY   (1u << 1)
#define CPUID_81_ECX_SVM         (1u << 2)

#define TOPO_LEVEL_SMT  1
#define TOPO_LEVEL_CORE 2

static unsigned ceil_log2(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static bool cpuid_is_amd(const struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != 0)
			continue;
		/* "AuthenticAMD" or "HygonGenuine": EBX holds "Auth" or "Hygo". */
		return e->ebx == 0x68747541 || e->ebx == 0x6f677948;
	}
	return false;
}

static uint32_t cpuid_max_leaf(const struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0)
			return c->entries[i].eax;
	return 0;
}

/* Drop every entry of a function (its subleaves are rebuilt). */
static void cpuid_remove(struct kvm_cpuid2 *c, uint32_t function)
{
	unsigned j = 0;

	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function != function)
			c->entries[j++] = c->entries[i];
	c->nent = j;
}

static int cpuid_add_topology(struct kvm_cpuid2 *c, unsigned cap, uint32_t function, unsigned index,
                              unsigned ncpus)
{
	unsigned core_bits = ceil_log2(ncpus);

	cpuid_remove(c, function);
	if (c->nent + 3 > cap)
		return -ENOSPC;
	for (uint32_t sub = 0; sub < 3; sub++) {
		struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
		memset(e, 0, sizeof(*e));
		e->function = function;
		e->index = sub;
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		e->edx = index; /* x2APIC id */
		e->ecx = sub;
		if (sub == 0) { /* SMT: one thread per core */
			e->eax = 0;
			e->ebx = 1;
			e->ecx |= TOPO_LEVEL_SMT << 8;
		} else if (sub == 1) { /* core: ncpus cores per package */
			e->eax = core_bits;
			e->ebx = ncpus;
			e->ecx |= TOPO_LEVEL_CORE << 8;
		}
	}
	return 0;
}

int cpuid_configure(struct kvm_cpuid2 *c, unsigned cap, unsigned index, unsigned ncpus,
                    bool tsc_deadline)
{
	unsigned core_bits = ceil_log2(ncpus);
	bool amd = cpuid_is_amd(c);
	uint32_t max_leaf = cpuid_max_leaf(c);
	int ret;

	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1: {
			unsigned logical = 1u << core_bits;
			e->ebx = (e->ebx & 0x0000ffffu) | ((index & 0xffu) << 24) |
			         ((logical > 255 ? 255u : logical) << 16);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			e->ecx &= ~CPUID_1_ECX_VMX;
			if (tsc_deadline)
				e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
			else
				e->ecx &= ~CPUID_1_ECX_TSC_DEADLINE;
			if (ncpus > 1)
				e->edx |= CPUID_1_EDX_HTT;
			else
				e->edx &= ~CPUID_1_EDX_HTT;
			break;
		}
		case 4: {
			unsigned cores = (1u << core_bits) - 1;
			unsigned level = (e->eax >> 5) & 7;
			e->eax &= 0x03ffc3ffu; /* keep cache type/level/properties */
			e->eax |= (cores > 63 ? 63u : cores) << 26;
			if (level >= 3) /* the last level is shared by the package */
				e->eax |= (cores > 4095 ? 4095u : cores) << 14;
			break;
		}
		case 0x80000001:
			e->ecx &= ~CPUID_81_ECX_SVM;
			if (amd && ncpus > 1)
				e->ecx |= CPUID_81_ECX_CMPLEGACY;
			else
				e->ecx &= ~CPUID_81_ECX_CMPLEGACY;
			break;
		case 0x80000008:
			if (amd) {
				e->ecx &= ~0xf0ffu;
				e->ecx |= ((ncpus - 1) & 0xffu) | (core_bits << 12);
			}
			break;
		case 0x8000001e:
			if (amd) {
				e->eax = index;
				e->ebx = index & 0xffu; /* core id; threads per core - 1 = 0 */
				e->ecx = 0;             /* node 0, one node */
				e->edx = 0;
			}
			break;
		default:
			break;
		}
	}
	if (max_leaf >= 0xb && (ret = cpuid_add_topology(c, cap, 0xb, index, ncpus)) < 0)
		return ret;
	if (max_leaf >= 0x1f && (ret = cpuid_add_topology(c, cap, 0x1f, index, ncpus)) < 0)
		return ret;
	return 0;
}
