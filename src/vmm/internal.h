/*
 * internal.h - what the files of src/vmm share among themselves.
 *
 * struct vm is the whole state of one virtual machine: no file of the VMM
 * keeps mutable state anywhere else.  Other folders include only vmm.h.
 */
#ifndef ZONEVM_VMM_INTERNAL_H
#define ZONEVM_VMM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "devices/devices.h"
#include "vmm.h"

/* ---- messages ---------------------------------------------------------- */

void vm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Human-readable size ("256 MiB", "3.5 GiB", "12 KiB") into buf. */
const char *vm_fmt_size(uint64_t bytes, char *buf, size_t len);

/* ---- guest memory (memory.c) ----------------------------------------- */

struct vm_mem {
	uint8_t *base;      /* one mapping of size bytes, locked */
	uint64_t size;      /* total guest RAM */
	uint64_t low_size;  /* RAM at gpa 0 (below the MMIO hole) */
	uint64_t high_size; /* RAM at LAYOUT_HIGH_RAM */
	int memfd;          /* shared memory: its memfd (low RAM at offset 0), or -1 */
};

/* Split size around the MMIO hole. */
void mem_layout(uint64_t size, uint64_t *low, uint64_t *high);
/* Map and lock (shared: a sealed memfd mapped MAP_SHARED, for vhost-user);
 * returns 0 or -errno with a message already printed. */
int mem_alloc(struct vm_mem *m, uint64_t size, bool shared);
void mem_free(struct vm_mem *m);
/* Host pointer for [gpa, gpa+len) if it lies wholly in RAM, else NULL. */
void *mem_ptr(const struct vm_mem *m, uint64_t gpa, uint64_t len);

/* ---- E820 and the zero page (e820.c, boot.c) ---------------------------- */

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Build the guest's memory map; returns the number of entries. */
unsigned e820_build(uint64_t mem_size, struct e820_entry *tab, unsigned max);

/* Zero page (struct boot_params) offsets, from Documentation/arch/x86/boot.rst. */
#define BP_ACPI_RSDP_ADDR   0x070
#define BP_EXT_RAMDISK_IMG  0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES     0x1e8
#define BP_HDR              0x1f1
#define BP_E820_TABLE       0x2d0
#define BP_SIZE             0x1000

/* Setup header offsets (in the bzImage and in the zero page alike). */
#define HDR_SETUP_SECTS     0x1f1
#define HDR_VID_MODE        0x1fa
#define HDR_BOOT_FLAG       0x1fe
#define HDR_JUMP            0x200
#define HDR_MAGIC           0x202
#define HDR_VERSION         0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS       0x211
#define HDR_CODE32_START    0x214
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_HEAP_END_PTR    0x224
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGN    0x230
#define HDR_RELOCATABLE     0x234
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260

#define LOADFLAGS_LOADED_HIGH  0x01
#define LOADFLAGS_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64          0x01
#define BOOT_PROTOCOL_MIN      0x020c

struct boot_image {
	uint16_t version;
	uint8_t setup_sects;
	uint16_t xloadflags;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	uint32_t init_size;
	uint64_t pm_offset; /* protected-mode kernel: file offset and size */
	uint64_t pm_size;
	size_t hdr_end; /* the setup header spans [0x1f1, hdr_end) */
	uint8_t setup[0x400];
};

/*
 * Check a bzImage's first bytes (at least 1 KiB, len = file size) and fill
 * img.  On error returns -ENOEXEC (not a bzImage) or -EPROTO (too old, no
 * 64-bit entry) with a reason in err.
 */
int boot_parse(const uint8_t *head, size_t head_len, uint64_t file_size, struct boot_image *img,
               char *err, size_t errlen);

struct boot_layout {
	uint64_t kernel_end; /* LAYOUT_KERNEL + room the kernel needs */
	uint64_t initrd_gpa; /* 0 when no initrd */
	uint64_t initrd_size;
};

/*
 * Decide where the initrd goes; -ENOMEM with a reason in err when the
 * kernel or the initrd does not fit in mem.
 */
int boot_place(const struct boot_image *img, const struct vm_mem *mem, uint64_t initrd_size,
               struct boot_layout *out, char *err, size_t errlen);

/* Write the zero page for img into zp (BP_SIZE bytes). */
void boot_zero_page(uint8_t *zp, const struct boot_image *img, uint64_t mem_size,
                    const struct boot_layout *lay, uint64_t cmdline_gpa, uint64_t rsdp_gpa);

/* Write the GDT and the identity page tables (4 GiB, 2 MiB pages) into RAM. */
int boot_write_tables(const struct vm_mem *mem);

/* ---- CPUID (cpuid.c) ---------------------------------------------------- */

/*
 * Rewrite a copy of KVM_GET_SUPPORTED_CPUID for vCPU `index` of `ncpus`:
 * APIC id in leaf 1 and the topology leaves (0x4, 0xB, 0x1F, AMD
 * 0x80000008/0x8000001E), hypervisor bit, TSC-deadline when offered, no
 * nested virtualization.  c must have room for `cap` entries.
 * Returns 0 or -ENOSPC.
 */
int cpuid_configure(struct kvm_cpuid2 *c, unsigned cap, unsigned index, unsigned ncpus,
                    bool tsc_deadline);

/* ---- interrupt routing and doorbells (irq.c) ---------------------------- */

#define IRQ_FIRST_MSI_GSI 24 /* below: the irqchip pins */

struct irq_msi {
	uint64_t addr;
	uint32_t data;
};

struct irq_router {
	pthread_mutex_t lock;
	int vm_fd;
	unsigned max_gsi;       /* KVM_CAP_IRQ_ROUTING */
	bool ioeventfd_any_len; /* KVM_CAP_IOEVENTFD_ANY_LENGTH */
	unsigned nmsi, cap;
	struct irq_msi *msi; /* GSI IRQ_FIRST_MSI_GSI + i */
};

/* Check the capabilities; -ENOTSUP with a message when one is missing. */
int irq_init(struct irq_router *r, int kvm_fd, int vm_fd);
void irq_destroy(struct irq_router *r);
/* A new MSI GSI bound to eventfd efd with KVM_IRQFD; returns it or -errno. */
int irq_msi_alloc(struct irq_router *r, int efd);
/* The guest's message for an MSI GSI; pushes the table when it changed. */
int irq_msi_set(struct irq_router *r, unsigned gsi, uint64_t addr, uint32_t data);
/* Bind (assign) or unbind an eventfd to guest writes at gpa (KVM_IOEVENTFD). */
int irq_ioeventfd(struct irq_router *r, uint64_t gpa, int efd, bool assign);

/* ---- virtio devices on PCI (vdev.c) -------------------------------------- */

struct vm;
struct vdev_set;

/* Create every virtio device of cfg on the PCI bus, with its eventfds on
 * the event loop; returns 0 or -errno with a message printed. */
int vdev_setup(struct vm *vm);
/* After the vCPUs stopped: finish in-flight I/O, close everything. */
void vdev_teardown(struct vm *vm);

/* ---- vhost-net (vhost_net.c) -------------------------------------------- */

struct gmem;
struct vhost_net;

/* A ring as the device model mapped it (host addresses, size). */
struct vhost_net_ring {
	uint16_t size;
	void *desc, *avail, *used;
};

/* One /dev/vhost-net per queue pair, owned, with the guest's memory table;
 * *features: what the kernel's data path offers.  -errno with a message
 * naming the NIC (a clear one when the host has no /dev/vhost-net). */
int vhost_net_open(const char *name, unsigned pairs, const struct gmem *gm, uint64_t *features,
                   struct vhost_net **out);
/* Start device queue q (rx 2i, tx 2i+1) in the kernel with the negotiated
 * features, the doorbell's ioeventfd, the vector's irqfd and the tap. */
int vhost_net_start(struct vhost_net *vh, unsigned q, uint64_t features,
                    const struct vhost_net_ring *ring, int kick_fd, int call_fd, int tap_fd);
/* Detach every running ring from the tap (device reset). */
void vhost_net_stop(struct vhost_net *vh);
void vhost_net_close(struct vhost_net *vh);

/* ---- vhost-user-blk disks (vhost_blk.c) --------------------------------- */

struct vhost_blk;
struct virtio_env;
struct virtio_dev;

/* Connect to the backend of DISK (vhost_user set), share guest memory (the
 * memfd), read its config; *dev: the model the transport drives. */
int vhost_blk_create(struct vm *vm, const struct vmm_disk *disk, const struct gmem *gm,
                     const struct virtio_env *env, struct virtio_dev **dev,
                     struct vhost_blk **out);
/* Queue q was enabled: hand its rings, doorbell and irqfd to the backend.
 * 0, -errno (refused: NEEDS_RESET), or 1: the backend is gone, take the
 * rings back. */
int vhost_blk_start(struct vhost_blk *vb, struct virtio_dev *dev, unsigned q, int kick_fd,
                    int call_fd);
/* Device reset: stop the backend's rings and reset it; 1 if it is gone. */
int vhost_blk_reset(struct vhost_blk *vb);
/* The socket to watch; a readable socket means the backend hung up. */
int vhost_blk_fd(const struct vhost_blk *vb);
/* True the first time the backend is found gone (logged once). */
bool vhost_blk_check_gone(struct vhost_blk *vb);
void vhost_blk_close(struct vhost_blk *vb);

/* ---- the machine (vm.c, vcpu.c) ----------------------------------------- */

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	uint64_t exits_io, exits_mmio;
};

struct vm {
	const struct vmm_config *cfg;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	bool tsc_deadline;
	struct kvm_cpuid2 *supported_cpuid;
	struct vm_mem mem;
	unsigned ncpus;
	struct vcpu *vcpus;
	struct bus pio;
	struct bus mmio;
	struct uart com1;
	struct pm pm;
	struct pci_bus pci;
	int exit_efd;        /* vCPU threads -> event loop: the VM must stop */
	int exit_status;     /* first enum vmm_exit set wins; -1 while running */
	int stopping;        /* atomic: vCPU threads leave KVM_RUN */
	uint64_t log_budget; /* rate limit for guest-triggered messages */
	int epfd;            /* the event loop (vm_watch_fd) */
	struct vm_watch *watches;
	unsigned nwatches;
	struct irq_router irq;
	struct vdev_set *vdevs;
};

/* A file descriptor the event loop polls for the devices: cb runs on the
 * main thread when fd is readable. */
struct vm_watch {
	int fd;
	void (*cb)(void *ctx);
	void *ctx;
};

/* Poll fd for readability from now on; 0 or -errno. */
int vm_watch_fd(struct vm *vm, int fd, void (*cb)(void *ctx), void *ctx);
/* Stop (on = false) or resume polling a watched fd; 0 or -errno.  Any
 * thread (epoll_ctl). */
int vm_watch_set(struct vm *vm, int fd, bool on);
/* Run the event loop until the VM must stop; returns its enum vmm_exit. */
int vm_loop(struct vm *vm, sigset_t *sigs);

/* Record why the VM ends (first caller wins) and wake the event loop. */
void vm_request_exit(struct vm *vm, int status);
/* Guest-triggerable message, rate-limited per VM. */
void vm_log_guest(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index);
void vcpu_destroy(struct vcpu *v);
void *vcpu_thread(void *arg);
/* Make a vCPU thread leave KVM_RUN soon. */
void vcpu_kick(struct vcpu *v);

#endif
