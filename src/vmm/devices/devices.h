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
	uint64_t unhandled;                       /* accesses no device claimed */
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
};

struct pci_func {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
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

#endif
