/*
 * vm.c - build one virtual machine, run it, tear it down.
 *
 * Owns the order of setup (KVM VM, irqchip and PIT, locked memory, kernel
 * and initrd, ACPI tables, zero page, devices, vCPUs), the event loop of the
 * main thread (vCPU exit requests, signals, console input, and the file
 * descriptors devices register with vm_watch_fd) and the teardown that
 * always restores the terminal.  Setup errors are reported before any
 * vCPU runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi.h"
#include "internal.h"
#include "layout.h"

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] then 'q' quits */

static int kvm_open(int *api)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	*api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (*api != KVM_API_VERSION) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static void kvm_open_error(int err, int api)
{
	if (err == -EPROTO)
		vm_log("/dev/kvm has API version %d, zonevm needs %d", api, KVM_API_VERSION);
	else
		vm_log("cannot open /dev/kvm: %s%s", strerror(-err),
		       err == -ENOENT ? " (is the kvm module loaded?)" : "");
}

int vmm_query_limits(struct vmm_limits *out)
{
	int api, fd = kvm_open(&api);
	int n;

	if (fd < 0)
		return fd;
	n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (n <= 0)
		n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	out->max_vcpus = n > 0 ? (unsigned)n : 4;
	close(fd);
	return 0;
}

void vm_request_exit(struct vm *vm, int status)
{
	int expected = -1;
	uint64_t one = 1;

	/*
	 * The first reason wins, except that a stop signal overrides a guest
	 * reboot: with --on-reboot restart, a SIGTERM read while the guest was
	 * rebooting was otherwise lost and the VM restarted forever.
	 */
	if (!__atomic_compare_exchange_n(&vm->exit_status, &expected, status, false,
	                                 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
	    status == VMM_EXIT_SIGNAL && expected == VMM_EXIT_REBOOT)
		__atomic_compare_exchange_n(&vm->exit_status, &expected, status, false,
		                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (write(vm->exit_efd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow here; nothing else to do. */
	}
}

static void vm_irq_line(void *ctx, unsigned gsi, int level)
{
	struct vm *vm = ctx;
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		vm_log_guest(vm, "KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

static void vm_pm_event(void *ctx, enum pm_event ev)
{
	vm_request_exit(ctx, ev == PM_EVENT_RESET ? VMM_EXIT_REBOOT : VMM_EXIT_POWEROFF);
}

static int vm_check_caps(struct vm *vm)
{
	static const struct {
		long cap;
		const char *name;
	} need[] = {
	    {KVM_CAP_IRQCHIP, "IRQCHIP"},
	    {KVM_CAP_USER_MEMORY, "USER_MEMORY"},
	    {KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR"},
	    {KVM_CAP_EXT_CPUID, "EXT_CPUID"},
	    {KVM_CAP_PIT2, "PIT2"},
	    {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"},
	};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			vm_log("this host's KVM lacks KVM_CAP_%s, which zonevm needs",
			       need[i].name);
			return -ENOTSUP;
		}
	}
	vm->tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	return 0;
}

static int vm_get_supported_cpuid(struct vm *vm)
{
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->supported_cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			break;
	}
	vm_log("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	return -EIO;
}

static int vm_create_kvm(struct vm *vm)
{
	int api, ret;

	vm->kvm_fd = kvm_open(&api);
	if (vm->kvm_fd < 0) {
		kvm_open_error(vm->kvm_fd, api);
		return vm->kvm_fd;
	}
	if ((ret = vm_check_caps(vm)) < 0 || (ret = vm_get_supported_cpuid(vm)) < 0)
		return ret;
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		vm_log("KVM_CREATE_VM: %s", strerror(errno));
		return ret;
	}
	uint64_t idmap = LAYOUT_IDENTITY_MAP;
	struct kvm_pit_config pit = {.flags = 0};
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		vm_log("cannot set up the VM's irqchip, PIT and TSS: %s", strerror(errno));
		return ret;
	}
	if (vm->ncpus > 255) {
		struct kvm_enable_cap cap = {
		    .cap = KVM_CAP_X2APIC_API,
		    .args[0] =
		        KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
		};
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
			ret = -errno;
			vm_log("%u vCPUs need x2APIC ids, but KVM_CAP_X2APIC_API failed: %s",
			       vm->ncpus, strerror(errno));
			return ret;
		}
	}
	return 0;
}

static int vm_map_memory(struct vm *vm)
{
	struct kvm_userspace_memory_region r = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = vm->mem.low_size,
	    .userspace_addr = (uintptr_t)vm->mem.base,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		goto fail;
	if (vm->mem.high_size) {
		r.slot = 1;
		r.guest_phys_addr = LAYOUT_HIGH_RAM;
		r.memory_size = vm->mem.high_size;
		r.userspace_addr = (uintptr_t)(vm->mem.base + vm->mem.low_size);
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			goto fail;
	}
	return 0;
fail:
	vm_log("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	return -errno;
}

/* Read exactly len bytes at off; a short file is an error. */
static int read_full(int fd, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int vm_load_kernel(struct vm *vm, uint64_t rsdp)
{
	const struct vmm_config *cfg = vm->cfg;
	struct boot_image img;
	struct boot_layout lay;
	struct stat st;
	uint8_t head[sizeof(img.setup)];
	char err[256];
	uint64_t initrd_size = 0;
	size_t cmdlen = strlen(cfg->cmdline);
	int ret;

	if (fstat(cfg->kernel_fd, &st) < 0)
		return -errno;
	memset(head, 0, sizeof(head));
	if ((uint64_t)st.st_size < sizeof(head) ||
	    read_full(cfg->kernel_fd, head, sizeof(head), 0) < 0) {
		vm_log("kernel %s: not a bzImage (only %lld bytes)", cfg->kernel_name,
		       (long long)st.st_size);
		return -ENOEXEC;
	}
	if ((ret = boot_parse(head, sizeof(head), (uint64_t)st.st_size, &img, err, sizeof(err))) <
	    0) {
		vm_log("kernel %s: %s", cfg->kernel_name, err);
		return ret;
	}
	if (cfg->initrd_fd >= 0) {
		struct stat ist;
		if (fstat(cfg->initrd_fd, &ist) < 0)
			return -errno;
		initrd_size = (uint64_t)ist.st_size;
	}
	if ((ret = boot_place(&img, &vm->mem, initrd_size, &lay, err, sizeof(err))) < 0) {
		vm_log("%s", err);
		return ret;
	}
	if (cmdlen + 1 > LAYOUT_CMDLINE_MAX || (img.cmdline_size && cmdlen > img.cmdline_size)) {
		vm_log("kernel command line is %zu bytes; this kernel takes at most %u", cmdlen,
		       img.cmdline_size);
		return -E2BIG;
	}
	ret = read_full(cfg->kernel_fd, mem_ptr(&vm->mem, LAYOUT_KERNEL, img.pm_size), img.pm_size,
	                img.pm_offset);
	if (ret < 0) {
		vm_log("kernel %s: read failed: %s", cfg->kernel_name, strerror(-ret));
		return ret;
	}
	if (initrd_size) {
		ret = read_full(cfg->initrd_fd, mem_ptr(&vm->mem, lay.initrd_gpa, initrd_size),
		                initrd_size, 0);
		if (ret < 0) {
			vm_log("initrd %s: read failed: %s", cfg->initrd_name, strerror(-ret));
			return ret;
		}
	}
	memcpy(mem_ptr(&vm->mem, LAYOUT_CMDLINE, cmdlen + 1), cfg->cmdline, cmdlen + 1);
	boot_zero_page(mem_ptr(&vm->mem, LAYOUT_ZERO_PAGE, BP_SIZE), &img, vm->mem.size, &lay,
	               LAYOUT_CMDLINE, rsdp);
	return boot_write_tables(&vm->mem);
}

static int vm_build_acpi(struct vm *vm, uint64_t *rsdp)
{
	uint64_t high_end = LAYOUT_HIGH_RAM + vm->mem.high_size;
	struct acpi_config c = {
	    .ncpus = vm->ncpus,
	    .lapic_addr = LAYOUT_LAPIC,
	    .ioapic_addr = LAYOUT_IOAPIC,
	    .ioapic_id = 0,
	    .ioapic_gsi_base = 0,
	    .ecam_base = LAYOUT_ECAM,
	    .pci_bus_start = 0,
	    .pci_bus_end = LAYOUT_ECAM_BUSES - 1,
	    .pci_mmio32_base = LAYOUT_PCI_MMIO32,
	    .pci_mmio32_size = LAYOUT_PCI_MMIO32_SIZE,
	    .pci_mmio64_base = (high_end + (1ULL << 30) - 1) & ~((1ULL << 30) - 1),
	    .pci_mmio64_size = LAYOUT_PCI_MMIO64_SIZE,
	    .pm_port = LAYOUT_PORT_PM,
	    .reset_value = LAYOUT_PM_RESET,
	    .com1_port = LAYOUT_PORT_COM1,
	    .com1_irq = LAYOUT_IRQ_COM1,
	};
	/* The tables stop below the reset vector stub that boot.c writes. */
	const uint64_t room = LAYOUT_RESET_VECTOR - LAYOUT_ACPI;
	long n = acpi_build(&c, mem_ptr(&vm->mem, LAYOUT_ACPI, room), LAYOUT_ACPI, room);

	if (n < 0) {
		vm_log("cannot build ACPI tables for %u vCPUs: %s", vm->ncpus, strerror((int)-n));
		return (int)n;
	}
	*rsdp = LAYOUT_ACPI;
	return 0;
}

static int vm_add_devices(struct vm *vm)
{
	struct dev_irq com1_irq = {.set_level = vm_irq_line, .ctx = vm, .gsi = LAYOUT_IRQ_COM1};
	int ret;

	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	uart_init(&vm->com1, com1_irq, vm->cfg->console_out);
	pm_init(&vm->pm, LAYOUT_PM_RESET, vm_pm_event, vm);
	pci_bus_init(&vm->pci);
	if ((ret = bus_register(&vm->pio, LAYOUT_PORT_COM1, 8, &uart_ops, &vm->com1, "com1")) ||
	    (ret = bus_register(&vm->pio, LAYOUT_PORT_PM, 2, &pm_ops, &vm->pm, "acpi-pm")) ||
	    (ret = bus_register(&vm->pio, 0xcf8, 4, &pci_cf8_ops, &vm->pci, "pci-cf8")) ||
	    (ret = bus_register(&vm->pio, 0xcfc, 4, &pci_cfc_ops, &vm->pci, "pci-cfc")) ||
	    (ret = bus_register(&vm->mmio, LAYOUT_ECAM, LAYOUT_ECAM_SIZE, &pci_ecam_ops, &vm->pci,
	                        "pci-ecam"))) {
		vm_log("cannot register devices: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void vm_sigusr1(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

static void vm_teardown(struct vm *vm)
{
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
		if (vm->vcpus[i].thread_started)
			pthread_join(vm->vcpus[i].thread, NULL);
	if (getenv("ZONEVM_STATS")) /* until `zonevm stat` exists */
		for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
			vm_log("stats: vCPU %u: %llu port exits, %llu MMIO exits; unclaimed: "
			       "%llu port, %llu MMIO accesses",
			       i, (unsigned long long)vm->vcpus[i].exits_io,
			       (unsigned long long)vm->vcpus[i].exits_mmio,
			       (unsigned long long)vm->pio.unhandled,
			       (unsigned long long)vm->mmio.unhandled);
	for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vdev_teardown(vm);
	free(vm->watches);
	vm->watches = NULL;
	if (vm->epfd >= 0)
		close(vm->epfd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->exit_efd >= 0)
		close(vm->exit_efd);
	mem_free(&vm->mem);
	free(vm->supported_cpuid);
	vm->supported_cpuid = NULL;
}

static int vm_start_vcpus(struct vm *vm)
{
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int ret = vcpu_create(vm, &vm->vcpus[i], i);
		if (ret < 0)
			return ret;
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (ret) {
			vm_log("cannot start vCPU %u thread: %s", i, strerror(ret));
			return -ret;
		}
		vm->vcpus[i].thread_started = true;
	}
	return 0;
}

/* One boot of the machine, from power-on to power-off/reset/error. */
/* Guest RAM must be a shared memfd when a vhost-user backend reaches it. */
static bool vm_shared_memory(const struct vmm_config *cfg)
{
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (cfg->disks[i].vhost_user)
			return true;
	return false;
}

static int vm_boot_once(const struct vmm_config *cfg, sigset_t *sigs)
{
	struct vm vm;
	uint64_t rsdp = 0;
	int status = VMM_EXIT_ERROR;

	memset(&vm, 0, sizeof(vm));
	vm.cfg = cfg;
	vm.ncpus = cfg->ncpus;
	vm.kvm_fd = vm.vm_fd = -1;
	vm.exit_status = -1;
	vm.exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (vm.exit_efd < 0 || vm.epfd < 0) {
		vm_log("cannot set up the event loop: %s", strerror(errno));
		if (vm.exit_efd >= 0)
			close(vm.exit_efd);
		if (vm.epfd >= 0)
			close(vm.epfd);
		return VMM_EXIT_ERROR;
	}
	if (vm_create_kvm(&vm) < 0 ||
	    mem_alloc(&vm.mem, cfg->mem_size, vm_shared_memory(cfg)) < 0 ||
	    vm_map_memory(&vm) < 0 || vm_build_acpi(&vm, &rsdp) < 0 ||
	    vm_load_kernel(&vm, rsdp) < 0 || vm_add_devices(&vm) < 0 || vdev_setup(&vm) < 0)
		goto out;
	if (vm_start_vcpus(&vm) < 0) {
		vm_request_exit(&vm, VMM_EXIT_ERROR);
		goto out;
	}
	status = vm_loop(&vm, sigs);
out:
	vm_teardown(&vm);
	if (vm.pio.name) {
		uart_destroy(&vm.com1);
		pci_bus_destroy(&vm.pci);
		bus_destroy(&vm.pio);
		bus_destroy(&vm.mmio);
	}
	return status;
}

int vmm_run(const struct vmm_config *cfg)
{
	struct sigaction sa;
	sigset_t sigs, old;
	int status;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vm_sigusr1; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Signals go to the event loop's signalfd; vCPU threads unblock SIGUSR1. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	sigdelset(&sigs, SIGUSR1);

	for (;;) {
		status = vm_boot_once(cfg, &sigs);
		if (status != VMM_EXIT_REBOOT || !cfg->reboot_restart)
			break;
		vm_log("guest rebooted: restarting it (--on-reboot restart)");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
