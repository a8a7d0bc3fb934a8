/*
 * vcpu.c - one vCPU: its KVM state at power-on and its thread.
 *
 * Owns per-vCPU setup (CPUID, the MSRs Linux expects, FPU, local APIC LINT
 * pins; and for the boot vCPU the 64-bit entry state: long mode, flat
 * segments, identity page tables, rip at the kernel's 64-bit entry, rsi at
 * the zero page) and the KVM_RUN loop that hands port and MMIO exits to the
 * buses.  The other vCPUs stay in KVM's wait-for-SIPI state until Linux
 * starts them through the in-kernel local APIC.  A guest can end the VM
 * (power-off, reset, triple fault) but nothing it does stops this process.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"

#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_MTRR_DEF_TYPE       0x2ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MISC_ENABLE_FAST_STRING 0x1
#define MTRR_ENABLE_WB          ((1u << 11) | 6)

#define X86_CR0_PE   0x1
#define X86_CR0_ET   0x10
#define X86_CR0_NE   0x20
#define X86_CR0_PG   0x80000000
#define X86_CR4_PAE  0x20
#define X86_EFER_LME 0x100
#define X86_EFER_LMA 0x400

#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_NMI    0x4
#define APIC_MODE_EXTINT 0x7

static int vcpu_set_cpuid(struct vcpu *v)
{
	const struct kvm_cpuid2 *sup = v->vm->supported_cpuid;
	unsigned cap = sup->nent + 8;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + cap * sizeof(c->entries[0]));
	int ret;

	if (!c)
		return -ENOMEM;
	c->nent = sup->nent;
	memcpy(c->entries, sup->entries, sup->nent * sizeof(c->entries[0]));
	ret = cpuid_configure(c, cap, v->index, v->vm->ncpus, v->vm->tsc_deadline);
	if (ret == 0 && ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		ret = -errno;
		vm_log("vCPU %u: KVM_SET_CPUID2: %s", v->index, strerror(errno));
	}
	free(c);
	return ret;
}

static int vcpu_set_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} boot_msrs[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_LSTAR, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB},
	};
	enum { N = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct kvm_msrs *m = calloc(1, sizeof(*m) + N * sizeof(m->entries[0]));
	int ret;

	if (!m)
		return -ENOMEM;
	m->nmsrs = N;
	for (unsigned i = 0; i < N; i++) {
		m->entries[i].index = boot_msrs[i].index;
		m->entries[i].data = boot_msrs[i].data;
	}
	ret = ioctl(v->fd, KVM_SET_MSRS, m);
	if (ret != N)
		vm_log("vCPU %u: KVM_SET_MSRS: MSR 0x%x refused", v->index,
		       ret >= 0 && ret < N ? m->entries[ret].index : 0);
	free(m);
	return ret == N ? 0 : -EIO;
}

static int vcpu_set_fpu(struct vcpu *v)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static void lapic_set_mode(struct kvm_lapic_state *l, unsigned reg, unsigned mode)
{
	uint32_t val;

	memcpy(&val, &l->regs[reg], 4);
	val = (val & ~0x700u) | (mode << 8);
	memcpy(&l->regs[reg], &val, 4);
}

static int vcpu_set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state l;

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	lapic_set_mode(&l, APIC_LVT0, APIC_MODE_EXTINT);
	lapic_set_mode(&l, APIC_LVT1, APIC_MODE_NMI);
	return ioctl(v->fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static struct kvm_segment vcpu_flat_segment(uint16_t selector, uint8_t type, uint8_t s, uint8_t l)
{
	return (struct kvm_segment){
	    .limit = 0xfffff,
	    .selector = selector,
	    .type = type,
	    .present = 1,
	    .s = s,
	    .l = l,
	    .db = s && !l, /* 32-bit default size for data, not for 64-bit code */
	    .g = 1,
	};
}

/* Boot vCPU: 64-bit mode, flat segments, paging on, entry at kernel + 0x200. */
static int vcpu_set_boot_state(struct vcpu *v)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	/* Flat 4 GiB segments of the GDT boot.c wrote (limit in 4 KiB units). */
	struct kvm_segment code = vcpu_flat_segment(0x08, 0xb, 1, 1);
	struct kvm_segment data = vcpu_flat_segment(0x10, 0x3, 1, 0);
	struct kvm_segment tss = vcpu_flat_segment(0x18, 0xb, 0, 0);

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = tss;
	s.gdt.base = LAYOUT_GDT;
	s.gdt.limit = 4 * 8 - 1;
	s.idt.base = LAYOUT_IDT;
	s.idt.limit = 7;
	s.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
	s.cr3 = LAYOUT_PML4;
	s.cr4 = X86_CR4_PAE;
	s.efer = X86_EFER_LME | X86_EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;

	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	r.rip = LAYOUT_KERNEL + 0x200;
	r.rsi = LAYOUT_ZERO_PAGE;
	r.rsp = r.rbp = LAYOUT_BOOT_STACK;
	return ioctl(v->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		ret = -errno;
		vm_log("cannot create vCPU %u: KVM_CREATE_VCPU: %s", index, strerror(errno));
		return ret;
	}
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		vm_log("vCPU %u: cannot map kvm_run: %s", index, strerror(errno));
		return ret;
	}
	if ((ret = vcpu_set_cpuid(v)) < 0 || (ret = vcpu_set_msrs(v)) < 0)
		return ret;
	if ((ret = vcpu_set_fpu(v)) < 0 || (ret = vcpu_set_lapic(v)) < 0) {
		vm_log("vCPU %u: cannot set FPU/LAPIC state: %s", index, strerror(-ret));
		return ret;
	}
	if (index == 0 && (ret = vcpu_set_boot_state(v)) < 0) {
		vm_log("vCPU 0: cannot set boot registers: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vcpu_kick(struct vcpu *v)
{
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread_started)
		pthread_kill(v->thread, SIGUSR1);
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;

	v->exits_io++;
	if (size != 1 && size != 2 && size != 4)
		return;
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		uint64_t val = 0;
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&val, data, size);
			bus_write(&v->vm->pio, run->io.port, size, val);
		} else {
			bus_read(&v->vm->pio, run->io.port, size, &val);
			memcpy(data, &val, size);
		}
	}
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;
	uint64_t val = 0;

	v->exits_mmio++;
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return;
	if (run->mmio.is_write) {
		memcpy(&val, run->mmio.data, len);
		bus_write(&v->vm->mmio, run->mmio.phys_addr, len, val);
	} else {
		bus_read(&v->vm->mmio, run->mmio.phys_addr, len, &val);
		memcpy(run->mmio.data, &val, len);
	}
}

/*
 * What a crashed vCPU was doing: the registers QEMU also prints on a triple
 * fault, so that a crash report says where the guest died.
 */
static void vcpu_log_crash_state(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events e;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	vm_log("vCPU %u: rip=%016llx rsp=%016llx rflags=%08llx cs=%04x cr0=%08llx cr2=%016llx "
	       "cr3=%016llx cr4=%08llx efer=%llx",
	       v->index, (unsigned long long)r.rip, (unsigned long long)r.rsp,
	       (unsigned long long)r.rflags, s.cs.selector, (unsigned long long)s.cr0,
	       (unsigned long long)s.cr2, (unsigned long long)s.cr3, (unsigned long long)s.cr4,
	       (unsigned long long)s.efer);
	vm_log("vCPU %u: idt=%016llx/%x gdt=%016llx/%x tr=%04x", v->index,
	       (unsigned long long)s.idt.base, s.idt.limit, (unsigned long long)s.gdt.base,
	       s.gdt.limit, s.tr.selector);
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e) == 0 && e.exception.injected)
		vm_log("vCPU %u: pending exception %u (error code %x)", v->index, e.exception.nr,
		       e.exception.error_code);
}

/* Returns false when this vCPU must stop. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(v);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		vm_log("guest vCPU %u triple-faulted (KVM_EXIT_SHUTDOWN): the guest crashed",
		       v->index);
		vcpu_log_crash_state(v);
		vm_request_exit(v->vm, VMM_EXIT_CRASH);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_exit(v->vm, VMM_EXIT_REBOOT);
		else
			vm_request_exit(v->vm, VMM_EXIT_POWEROFF);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm_log("vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", v->index,
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_exit(v->vm, VMM_EXIT_ERROR);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_log("vCPU %u: KVM internal error (suberror %u)", v->index,
		       run->internal.suberror);
		vm_request_exit(v->vm, VMM_EXIT_ERROR);
		return false;
	case KVM_EXIT_HLT:
		/* Without an in-kernel LAPIC only; ours has one. Treat as a crash. */
		vm_log("vCPU %u halted with interrupts off", v->index);
		vm_request_exit(v->vm, VMM_EXIT_CRASH);
		return false;
	default:
		vm_log("vCPU %u: unexpected KVM exit reason %u", v->index, run->exit_reason);
		vm_request_exit(v->vm, VMM_EXIT_ERROR);
		return false;
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (!__atomic_load_n(&v->vm->stopping, __ATOMIC_SEQ_CST)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm_log("vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
			vm_request_exit(v->vm, VMM_EXIT_ERROR);
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	return NULL;
}
