/*
 * pci.c - PCI bus 0: host bridge, type-1 config ports and the ECAM window.
 *
 * Owns configuration space dispatch for bus 0 (32 slots, function 0 each)
 * and the generic write semantics every function shares: a write changes
 * only the bits of wmask, and clears the bits of w1cmask it writes as one.
 * A function's own behaviour (BAR moves, MSI-X enable) hangs off its
 * cfg_written and cfg_reading callbacks.  Absent functions read as all ones.
 *
 *   0xCF8  CONFIG_ADDRESS: bit 31 enable | bus 23:16 | dev 15:11 | fn 10:8 | reg 7:2
 *   0xCFC  CONFIG_DATA: 1, 2 or 4 bytes at reg + (port - 0xCFC)
 *   ECAM   offset = bus << 20 | dev << 15 | fn << 12 | reg (4 KiB per function)
 */
#include <errno.h>
#include <string.h>

#include "devices.h"

#define PCI_VENDOR_REDHAT     0x1b36
#define PCI_DEVICE_HOSTBRIDGE 0x0008
#define PCI_CLASS_HOSTBRIDGE  0x060000

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void pci_func_init(struct pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
                   uint8_t header_type, const char *name)
{
	memset(f, 0, sizeof(*f));
	put16(&f->cfg[0x00], vendor);
	put16(&f->cfg[0x02], device);
	f->cfg[0x08] = 0; /* revision */
	f->cfg[0x09] = (uint8_t)class_code;
	f->cfg[0x0a] = (uint8_t)(class_code >> 8);
	f->cfg[0x0b] = (uint8_t)(class_code >> 16);
	f->cfg[0x0e] = header_type;
	/* Command: I/O, memory, bus master, SERR, INTx disable. */
	put16(&f->wmask[0x04], 0x0547);
	/* Status: error bits are write-one-to-clear. */
	put16(&f->w1cmask[0x06], 0xf900);
	f->wmask[0x0c] = 0xff; /* cache line size */
	f->wmask[0x0d] = 0xff; /* latency timer */
	f->wmask[0x3c] = 0xff; /* interrupt line */
	f->name = name;
}

void pci_bus_init(struct pci_bus *bus)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	pci_func_init(&bus->host_bridge, PCI_VENDOR_REDHAT, PCI_DEVICE_HOSTBRIDGE,
	              PCI_CLASS_HOSTBRIDGE, 0, "host bridge");
	bus->slots[0] = &bus->host_bridge;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pthread_mutex_destroy(&bus->lock);
}

int pci_bus_add(struct pci_bus *bus, unsigned slot, struct pci_func *f)
{
	int ret = 0;

	if (slot >= PCI_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	if (bus->slots[slot])
		ret = -EBUSY;
	else
		bus->slots[slot] = f;
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

static bool pci_access_ok(unsigned off, unsigned len)
{
	if (len != 1 && len != 2 && len != 4)
		return false;
	return off < PCI_CFG_SIZE && (off & (len - 1)) == 0;
}

uint32_t pci_cfg_read(struct pci_bus *bus, unsigned dev, unsigned fn, unsigned off, unsigned len)
{
	uint32_t v = 0;
	struct pci_func *f;

	if (dev >= PCI_SLOTS || fn != 0 || !pci_access_ok(off, len))
		return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	pthread_mutex_lock(&bus->lock);
	f = bus->slots[dev];
	if (!f) {
		v = len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	} else {
		if (f->ops && f->ops->cfg_reading)
			f->ops->cfg_reading(f, off, len);
		for (unsigned i = 0; i < len; i++)
			v |= (uint32_t)f->cfg[off + i] << (8 * i);
	}
	pthread_mutex_unlock(&bus->lock);
	return v;
}

void pci_cfg_write(struct pci_bus *bus, unsigned dev, unsigned fn, unsigned off, unsigned len,
                   uint32_t val)
{
	struct pci_func *f;
	uint32_t old = 0;

	if (dev >= PCI_SLOTS || fn != 0 || !pci_access_ok(off, len))
		return;
	pthread_mutex_lock(&bus->lock);
	f = bus->slots[dev];
	if (f) {
		for (unsigned i = 0; i < len; i++) {
			uint8_t b = (uint8_t)(val >> (8 * i));
			uint8_t *c = &f->cfg[off + i];
			old |= (uint32_t)*c << (8 * i);
			*c = (uint8_t)((*c & ~f->wmask[off + i]) | (b & f->wmask[off + i]));
			*c &= (uint8_t) ~(b & f->w1cmask[off + i]);
		}
		if (f->ops && f->ops->cfg_written)
			f->ops->cfg_written(f, off, len, old);
	}
	pthread_mutex_unlock(&bus->lock);
}

/* ---- type-1 mechanism ------------------------------------------------- */

static uint64_t pci_cf8_read(void *ctx, uint64_t off, unsigned len)
{
	struct pci_bus *bus = ctx;
	uint32_t v;

	if (off != 0 || len != 4)
		return (1ULL << (8 * len)) - 1;
	pthread_mutex_lock(&bus->lock);
	v = bus->cf8;
	pthread_mutex_unlock(&bus->lock);
	return v;
}

static void pci_cf8_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	struct pci_bus *bus = ctx;

	if (off != 0 || len != 4)
		return; /* byte writes to 0xCF8 are not config cycles */
	pthread_mutex_lock(&bus->lock);
	bus->cf8 = (uint32_t)val & 0x80fffffcu;
	pthread_mutex_unlock(&bus->lock);
}

const struct bus_ops pci_cf8_ops = {
    .read = pci_cf8_read,
    .write = pci_cf8_write,
};

/* Decode the latched address; false if disabled or not bus 0. */
static bool pci_cf8_decode(struct pci_bus *bus, unsigned *dev, unsigned *reg)
{
	uint32_t a;

	pthread_mutex_lock(&bus->lock);
	a = bus->cf8;
	pthread_mutex_unlock(&bus->lock);
	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0 || ((a >> 8) & 7) != 0)
		return false;
	*dev = (a >> 11) & 0x1f;
	*reg = a & 0xfc;
	return true;
}

static uint64_t pci_cfc_read(void *ctx, uint64_t off, unsigned len)
{
	struct pci_bus *bus = ctx;
	unsigned dev, reg;

	if (off + len > 4 || !pci_cf8_decode(bus, &dev, &reg))
		return len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	return pci_cfg_read(bus, dev, 0, reg + (unsigned)off, len);
}

static void pci_cfc_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	struct pci_bus *bus = ctx;
	unsigned dev, reg;

	if (off + len > 4 || !pci_cf8_decode(bus, &dev, &reg))
		return;
	pci_cfg_write(bus, dev, 0, reg + (unsigned)off, len, (uint32_t)val);
}

const struct bus_ops pci_cfc_ops = {
    .read = pci_cfc_read,
    .write = pci_cfc_write,
};

/* ---- ECAM ------------------------------------------------------------- */

static uint64_t pci_ecam_read(void *ctx, uint64_t off, unsigned len)
{
	if ((off >> 20) != 0 || len > 4)
		return len >= 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
	return pci_cfg_read(ctx, (off >> 15) & 0x1f, (off >> 12) & 7, off & 0xfff, len);
}

static void pci_ecam_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	if ((off >> 20) != 0 || len > 4)
		return;
	pci_cfg_write(ctx, (off >> 15) & 0x1f, (off >> 12) & 7, off & 0xfff, len, (uint32_t)val);
}

const struct bus_ops pci_ecam_ops = {
    .read = pci_ecam_read,
    .write = pci_ecam_write,
};
