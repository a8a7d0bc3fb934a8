/*
 * devices.h - emulated devices of the VMM (src/vmm/devices).
 *
 * Devices are reached through one I/O bus per address space (ports, MMIO);
 * a device registers a range with an ops table.  Devices never touch KVM
 * directly: interrupts go through a struct dev_irq the VMM gives them, and
 * console bytes through file descriptors.  Every device handles any guest
 * access, in any size, at any offset, without crashing the VMM.
 */
#ifndef ZONEVM_DEVICES_H
#define ZONEVM_DEVICES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- I/O bus --------------------------------------------------------- */

struct bus_ops {
	/* off is relative to the registered base; len is 1, 2, 4 or 8. */
	uint64_t (*read)(void *ctx, uint64_t off, unsigned len);
	void (*write)(void *ctx, uint64_t off, unsigned len, uint64_t val);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *ctx;
	const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name; /* "pio" or "mmio" */
	pthread_rwlock_t lock;
	unsigned nranges;
	struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base, disjoint */
	uint64_t unhandled;                      /* accesses no device claimed */
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);
/* Returns 0, -EEXIST if it overlaps a range, -ENOSPC if full, -EINVAL if empty. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops, void *ctx,
                 const char *name);
int bus_unregister(struct bus *b, uint64_t base);
/* Unclaimed reads return all ones; unclaimed writes are dropped. Return: claimed. */
bool bus_read(struct bus *b, uint64_t addr, unsigned len, uint64_t *val);
bool bus_write(struct bus *b, uint64_t addr, unsigned len, uint64_t val);

/* ---- interrupts ------------------------------------------------------ */

struct dev_irq {
	void (*set_level)(void *ctx, unsigned gsi, int level);
	void *ctx;
	unsigned gsi;
};

/* ---- 8250 UART (16550A) ---------------------------------------------- */

#define UART_RX_FIFO 1024

struct uart {
	pthread_mutex_t lock;
	struct dev_irq irq;
	int out_fd;
	uint8_t ier, iir_thri_pending, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr;
	int irq_level;
	uint8_t rx[UART_RX_FIFO];
	unsigned rx_head, rx_len;
	uint64_t tx_bytes, rx_bytes, tx_errors;
};

extern const struct bus_ops uart_ops;
void uart_init(struct uart *u, struct dev_irq irq, int out_fd);
void uart_destroy(struct uart *u);
/* Queue host input for the guest; returns how many bytes were taken. */
size_t uart_input(struct uart *u, const uint8_t *buf, size_t len);
size_t uart_rx_space(struct uart *u);

/* ---- ACPI power management: sleep control/status and reset register -- */

enum pm_event {
	PM_EVENT_POWEROFF = 1,
	PM_EVENT_RESET = 2,
};

struct pm {
	uint8_t reset_value;
	void (*event)(void *ctx, enum pm_event ev); /* called from a vCPU thread */
	void *ctx;
};

extern const struct bus_ops pm_ops;
void pm_init(struct pm *p, uint8_t reset_value, void (*event)(void *, enum pm_event), void *ctx);

/* ---- PCI: bus 0 with type-1 config ports and ECAM -------------------- */

#define PCI_SLOTS    32
#define PCI_CFG_SIZE 4096 /* extended (PCIe) config space, reached through ECAM */

struct pci_func;

struct pci_func_ops {
	/* Optional: called after the generic config write was applied. */
	void (*cfg_written)(struct pci_func *f, unsigned off, unsigned len, uint32_t old);
	/* Optional: called before a config read, to refresh bytes of cfg. */
	void (*cfg_reading)(struct pci_func *f, unsigned off, unsigned len);
};

struct pci_func {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];   /* bits the guest may change */
	uint8_t w1cmask[PCI_CFG_SIZE]; /* bits a guest 1 clears */
	const struct pci_func_ops *ops;
	void *ctx;
	const char *name;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t cf8; /* latched CONFIG_ADDRESS */
	struct pci_func *slots[PCI_SLOTS];
	struct pci_func host_bridge;
};

extern const struct bus_ops pci_cf8_ops; /* port 0xCF8, 4 bytes */
extern const struct bus_ops pci_cfc_ops; /* ports 0xCFC-0xCFF */
extern const struct bus_ops pci_ecam_ops;

/* Initialise bus 0 with a host bridge at 00:00.0. */
void pci_bus_init(struct pci_bus *bus);
void pci_bus_destroy(struct pci_bus *bus);
/* Place f in slot (device number); -EBUSY if taken, -EINVAL if out of range. */
int pci_bus_add(struct pci_bus *bus, unsigned slot, struct pci_func *f);
/* Config space access by (device, function, register), as both mechanisms use. */
uint32_t pci_cfg_read(struct pci_bus *bus, unsigned dev, unsigned fn, unsigned off, unsigned len);
void pci_cfg_write(struct pci_bus *bus, unsigned dev, unsigned fn, unsigned off, unsigned len,
                   uint32_t val);
/* Fill the standard type-0 header fields of f. */
void pci_func_init(struct pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
                   uint8_t header_type, const char *name);

/* ---- MSI-X table and PBA (msix.c) ------------------------------------ */

/*
 * The MSI-X state of one PCI function: the table (16 bytes per vector:
 * address low, address high, data, vector control) and the pending bit
 * array, both reached through a BAR, and the enable / function-mask bits
 * of the capability's message control.  The owner serialises all calls.
 */
#define MSIX_MAX_VECTORS  2048
#define MSIX_ENTRY_SIZE   16
#define MSIX_CAP_SIZE     12
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000

struct msix_host {
	/* Vector vec has a new message: route it (called masked or not). */
	void (*route)(void *ctx, unsigned vec, uint64_t addr, uint32_t data);
	/* Deliver vector vec now. */
	void (*fire)(void *ctx, unsigned vec);
	void *ctx;
};

struct msix {
	unsigned nvec;
	uint8_t *table; /* nvec * MSIX_ENTRY_SIZE bytes, little endian */
	uint64_t *pba;  /* one bit per vector */
	bool enabled;   /* message control: MSI-X enable */
	bool maskall;   /* message control: function mask */
	struct msix_host host;
	uint64_t nr_fired, nr_pended;
};

/* Table and PBA bytes for nvec vectors. */
#define MSIX_TABLE_BYTES(nvec) ((uint64_t)(nvec)*MSIX_ENTRY_SIZE)
#define MSIX_PBA_BYTES(nvec)   ((((uint64_t)(nvec) + 63) / 64) * 8)

/* All vectors masked, none pending. Returns 0, -EINVAL or -ENOMEM. */
int msix_init(struct msix *m, unsigned nvec, const struct msix_host *host);
void msix_destroy(struct msix *m);
/* Write the capability at config offset off (next: the following one). */
void msix_cap_init(struct pci_func *f, unsigned off, unsigned next, unsigned nvec, unsigned bir,
                   uint32_t table_off, uint32_t pba_off);
/* The guest wrote message control; delivers what became unmasked. */
void msix_set_control(struct msix *m, uint16_t ctrl);
/* Table and PBA accesses at any offset and size (1, 2, 4 or 8). */
uint64_t msix_table_read(struct msix *m, uint64_t off, unsigned len);
void msix_table_write(struct msix *m, uint64_t off, unsigned len, uint64_t val);
uint64_t msix_pba_read(struct msix *m, uint64_t off, unsigned len);
/* Raise vector vec: delivered now, or left pending while masked. */
void msix_raise(struct msix *m, unsigned vec);
bool msix_pending(const struct msix *m, unsigned vec);

/* ---- virtio-pci transport (virtio_pci.c) ----------------------------- */

struct virtio_dev;
struct vpci;

/* What the VMM gives a virtio-pci function; the function never calls KVM. */
struct vpci_host {
	/* MSI-X vector vec has a new message (KVM_SET_GSI_ROUTING). */
	void (*msi_route)(void *ctx, unsigned vec, uint64_t addr, uint32_t data);
	/* Signal vector vec (write its irqfd). */
	void (*msi_fire)(void *ctx, unsigned vec);
	/* Queue q's doorbell now is at gpa (on) or is gone (off): bind or
	 * unbind its ioeventfd.  Returns 0 or -errno. */
	int (*notify_map)(void *ctx, unsigned q, uint64_t gpa, bool on);
	/* A doorbell write reached us instead of the ioeventfd: kick queue q. */
	void (*notify_kick)(void *ctx, unsigned q);
	/* A message a guest can trigger (the host rate-limits it). */
	void (*log_guest)(void *ctx, const char *msg);
	/* Optional, for a data path outside the device model (vhost): queue q
	 * was enabled with MSI-X vector `vector` (VIRTIO_NO_VECTOR: none), and
	 * the device is being reset (before the model forgets its rings).
	 * Returns 0 or -errno: the function then sets NEEDS_RESET. */
	int (*queue_enabled)(void *ctx, unsigned q, uint16_t vector);
	void (*reset)(void *ctx);
	void *ctx;
};

#define VPCI_MAX_QUEUES 256

/*
 * A PCI function for dev, its BAR initially at bar_addr (not decoded until
 * the guest enables memory space), mapped on mmio when it is.  Returns 0,
 * -EINVAL (too many queues) or -ENOMEM.  dev stays the caller's.
 */
int vpci_create(struct virtio_dev *dev, struct bus *mmio, uint64_t bar_addr,
                const struct vpci_host *host, struct vpci **out);
void vpci_destroy(struct vpci *v);
struct pci_func *vpci_func(struct vpci *v);
/* Bytes of BAR0 (a power of two; the BAR must be aligned to it). */
uint64_t vpci_bar_size(void);
/* Call fn(dev, q) with the function's lock held: the event loop's way in
 * (virtio_dev_queue_notify, vblk_queue_poll). */
void vpci_call(struct vpci *v, void (*fn)(struct virtio_dev *, unsigned), unsigned q);
/* virtio_env callbacks; only from inside a virtio_dev_* call made under the
 * function's lock (vpci_call, or a register access). */
void vpci_interrupt(struct vpci *v, unsigned q);
void vpci_needs_reset(struct vpci *v);

#endif
