/*
 * virtio_pci.c - the virtio-pci transport, virtio 1.x "modern" only: one
 * PCI function per virtio device, its registers in one 32-bit memory BAR.
 *
 * It owns the PCI face of a device (ids, capabilities, the BAR and where it
 * is decoded, the doorbells that follow it), the ISR and MSI-X (msix.c);
 * the common configuration state machine is in virtio_pci_common.c.  It never reads a ring or a
 * request (src/virtio does, through virtio_dev_*), and never calls KVM: doorbells and interrupts go
 * through struct vpci_host.  Every register access and every call into the
 * device happens under the function's lock, so a vCPU writing device_status
 * and the event loop completing I/O never meet inside the device.
 *
 *   BAR0 (32 KiB, 32-bit, non-prefetchable)
 *   0x0000  common configuration        (virtio_pci_common_cfg, 0x3c bytes)
 *   0x1000  ISR status                  (1 byte, read clears)
 *   0x2000  device configuration        (dev->config, read-only here)
 *   0x3000  doorbells: queue q at 0x3000 + 4 * q (notify_off_multiplier 4),
 *           each bound to its own ioeventfd while the BAR is decoded
 *   0x4000  MSI-X table                 (vector 0: config, 1 + q: queue q)
 *   0x6000  MSI-X pending bit array
 *
 *   config space: header | 0x40 common cap -> 0x50 notify cap -> 0x64 ISR
 *   cap -> 0x74 device cap (if the device has config) -> 0x84 MSI-X cap
 *   -> 0x90 PCI configuration access cap (the BAR through config space:
 *   bar, offset, length, then pci_cfg_data reads or writes the BAR)
 *
 * Guest values are never trusted: a bad queue setup breaks the device
 * (NEEDS_RESET plus a config interrupt), a register outside the layout
 * reads as zero, and every message a guest can provoke goes to log_guest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "virtio_pci.h"

#define VPCI_VENDOR      0x1af4
#define VPCI_DEVICE_BASE 0x1040 /* + virtio device id: modern-only device */
#define VPCI_SUBSYS_ID   0x1100
#define VPCI_REVISION    1

#define VPCI_BAR_SIZE    0x8000u
#define VPCI_COMMON_OFF  0x0000u
#define VPCI_ISR_OFF     0x1000u
#define VPCI_DEVCFG_OFF  0x2000u
#define VPCI_NOTIFY_OFF  0x3000u
#define VPCI_MSIX_OFF    0x4000u
#define VPCI_PBA_OFF     0x6000u
#define VPCI_REGION      0x1000u
#define VPCI_NOTIFY_MULT 4u
#define VPCI_COMMON_LEN  0x3cu

#define VPCI_CAP_COMMON 1
#define VPCI_CAP_NOTIFY 2
#define VPCI_CAP_ISR    3
#define VPCI_CAP_DEVICE 4
#define VPCI_CAP_PCICFG 5
#define PCI_CAP_VNDR    0x09
#define PCI_CMD_MEMORY  0x0002
#define PCI_STATUS_CAPS 0x0010

#define VPCI_CAPOFF_COMMON 0x40u
#define VPCI_CAPOFF_NOTIFY 0x50u
#define VPCI_CAPOFF_ISR    0x64u
#define VPCI_CAPOFF_DEVICE 0x74u
#define VPCI_CAPOFF_MSIX   0x84u
#define VPCI_CAPOFF_PCICFG 0x90u

/* PCI class code per virtio device type; unknown types are "other". */
static const struct {
	uint16_t virtio_id;
	uint32_t class_code;
} vpci_classes[] = {
    {VIRTIO_ID_BLOCK, 0x010000}, /* mass storage, SCSI (as QEMU) */
    {VIRTIO_ID_RNG, 0xff0000},   /* unclassified device */
    {VIRTIO_ID_NET, 0x020000},   /* network, Ethernet */
};

void vpci_log(struct vpci *v, const char *fmt, ...)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "%s: ", v->name);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (v->host.log_guest)
		v->host.log_guest(v->host.ctx, msg);
}

/* ---- interrupts ---------------------------------------------------------- */

void vpci_signal(struct vpci *v, uint16_t vector, uint8_t isr_bit)
{
	v->isr |= isr_bit;
	if (vector != VIRTIO_NO_VECTOR)
		msix_raise(&v->msix, vector);
	/* Without a vector the driver would need INTx, which we do not offer. */
}

void vpci_interrupt(struct vpci *v, unsigned q)
{
	if (q < v->nq)
		vpci_signal(v, v->queues[q].vector, VPCI_ISR_QUEUE);
}

void vpci_needs_reset(struct vpci *v)
{
	if (v->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	v->nr_needs_reset++;
	v->status |= VIRTIO_STATUS_NEEDS_RESET;
	v->config_generation++;
	vpci_signal(v, v->config_vector, VPCI_ISR_CONFIG);
}

static void vpci_msix_route(void *ctx, unsigned vec, uint64_t addr, uint32_t data)
{
	struct vpci *v = ctx;

	if (v->host.msi_route)
		v->host.msi_route(v->host.ctx, vec, addr, data);
}

static void vpci_msix_fire(void *ctx, unsigned vec)
{
	struct vpci *v = ctx;

	if (v->host.msi_fire)
		v->host.msi_fire(v->host.ctx, vec);
}

/* ---- the BAR --------------------------------------------------------------- */

static uint64_t vpci_bar_read(void *ctx, uint64_t off, unsigned len)
{
	struct vpci *v = ctx;
	uint64_t val = 0;
	uint8_t buf[8] = {0};

	pthread_mutex_lock(&v->lock);
	if (off + len <= VPCI_COMMON_OFF + VPCI_REGION) {
		val = vpci_common_read(v, off - VPCI_COMMON_OFF, len);
	} else if (off >= VPCI_ISR_OFF && off < VPCI_ISR_OFF + VPCI_REGION) {
		if (off == VPCI_ISR_OFF) {
			val = v->isr;
			v->isr = 0; /* reading acknowledges */
		}
	} else if (off >= VPCI_DEVCFG_OFF && off + len <= VPCI_DEVCFG_OFF + VPCI_REGION) {
		if (virtio_dev_config_read(v->dev, (uint32_t)(off - VPCI_DEVCFG_OFF), buf, len) ==
		    0)
			for (unsigned i = 0; i < len; i++)
				val |= (uint64_t)buf[i] << (8 * i);
	} else if (off >= VPCI_MSIX_OFF && off + len <= VPCI_PBA_OFF) {
		val = msix_table_read(&v->msix, off - VPCI_MSIX_OFF, len);
	} else if (off >= VPCI_PBA_OFF && off + len <= VPCI_BAR_SIZE) {
		val = msix_pba_read(&v->msix, off - VPCI_PBA_OFF, len);
	}
	pthread_mutex_unlock(&v->lock);
	return val;
}

static void vpci_bar_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	struct vpci *v = ctx;

	if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_REGION) {
		/* Only when no ioeventfd caught it (e.g. an odd width). */
		uint64_t q = (off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT;
		if (q < v->nq && v->host.notify_kick)
			v->host.notify_kick(v->host.ctx, (unsigned)q);
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (off + len <= VPCI_COMMON_OFF + VPCI_REGION)
		vpci_common_write(v, off - VPCI_COMMON_OFF, len, val);
	else if (off >= VPCI_MSIX_OFF && off + len <= VPCI_PBA_OFF)
		msix_table_write(&v->msix, off - VPCI_MSIX_OFF, len, val);
	/* ISR, device config (no writable fields offered) and PBA: read-only */
	pthread_mutex_unlock(&v->lock);
}

static const struct bus_ops vpci_bar_ops = {
    .read = vpci_bar_read,
    .write = vpci_bar_write,
};

static uint32_t vpci_cfg32(const struct pci_func *f, unsigned off)
{
	return (uint32_t)f->cfg[off] | (uint32_t)f->cfg[off + 1] << 8 |
	       (uint32_t)f->cfg[off + 2] << 16 | (uint32_t)f->cfg[off + 3] << 24;
}

static void vpci_doorbells(struct vpci *v, uint64_t base, bool on)
{
	for (unsigned q = 0; q < v->nq && v->host.notify_map; q++) {
		int r = v->host.notify_map(
		    v->host.ctx, q, base + VPCI_NOTIFY_OFF + (uint64_t)q * VPCI_NOTIFY_MULT, on);
		if (r < 0)
			vpci_log(v, "queue %u doorbell at 0x%llx: %s", q,
			         (unsigned long long)(base + VPCI_NOTIFY_OFF), strerror(-r));
	}
}

/* Decode the BAR where the guest put it, or nowhere while memory is off. */
static void vpci_update_bar(struct vpci *v)
{
	uint16_t cmd = (uint16_t)(v->func.cfg[0x04] | v->func.cfg[0x05] << 8);
	uint64_t addr = vpci_cfg32(&v->func, 0x10) & ~(uint64_t)0xf;
	uint64_t want = (cmd & PCI_CMD_MEMORY) ? addr : 0;

	if (want == v->mapped_at)
		return;
	if (v->mapped_at) {
		vpci_doorbells(v, v->mapped_at, false);
		bus_unregister(v->mmio, v->mapped_at);
		v->mapped_at = 0;
	}
	if (!want)
		return;
	int r = bus_register(v->mmio, want, VPCI_BAR_SIZE, &vpci_bar_ops, v, v->name);
	if (r < 0) {
		vpci_log(v, "BAR0 at 0x%llx cannot be decoded: %s", (unsigned long long)want,
		         strerror(-r));
		return;
	}
	v->mapped_at = want;
	vpci_doorbells(v, want, true);
}

/*
 * The PCI configuration access capability: the window the guest chose
 * (BAR0 only, 1, 2 or 4 bytes inside the BAR), or false.
 */
static bool vpci_pcicfg_window(const struct pci_func *f, uint32_t *off, unsigned *len)
{
	const uint8_t *c = &f->cfg[VPCI_CAPOFF_PCICFG];

	*off = vpci_cfg32(f, VPCI_CAPOFF_PCICFG + 8);
	*len = vpci_cfg32(f, VPCI_CAPOFF_PCICFG + 12);
	if (c[4] != 0 || (*len != 1 && *len != 2 && *len != 4))
		return false;
	return *off < VPCI_BAR_SIZE && *len <= VPCI_BAR_SIZE - *off;
}

static bool vpci_touches(unsigned off, unsigned len, unsigned reg, unsigned reg_len)
{
	return off < reg + reg_len && off + len > reg;
}

/* Called with the bus lock held, after the generic write. */
static void vpci_cfg_written(struct pci_func *f, unsigned off, unsigned len, uint32_t old)
{
	struct vpci *v = f->ctx;
	const unsigned ctl = VPCI_CAPOFF_MSIX + 2;
	uint32_t win_off;
	unsigned win_len;

	(void)old;
	pthread_mutex_lock(&v->lock);
	if (vpci_touches(off, len, 0x04, 2) || vpci_touches(off, len, 0x10, 4))
		vpci_update_bar(v);
	if (vpci_touches(off, len, ctl, 2))
		msix_set_control(&v->msix, (uint16_t)(f->cfg[ctl] | f->cfg[ctl + 1] << 8));
	pthread_mutex_unlock(&v->lock);
	/* A write to pci_cfg_data is a write to the BAR (which takes the lock). */
	if (vpci_touches(off, len, VPCI_CAPOFF_PCICFG + 16, 4) &&
	    vpci_pcicfg_window(f, &win_off, &win_len))
		vpci_bar_write(v, win_off, win_len, vpci_cfg32(f, VPCI_CAPOFF_PCICFG + 16));
}

/* Called with the bus lock held, before a read: pci_cfg_data reads the BAR. */
static void vpci_cfg_reading(struct pci_func *f, unsigned off, unsigned len)
{
	uint32_t win_off, val = 0;
	unsigned win_len;

	if (!vpci_touches(off, len, VPCI_CAPOFF_PCICFG + 16, 4))
		return;
	if (vpci_pcicfg_window(f, &win_off, &win_len))
		val = (uint32_t)vpci_bar_read(f->ctx, win_off, win_len);
	for (unsigned i = 0; i < 4; i++)
		f->cfg[VPCI_CAPOFF_PCICFG + 16 + i] = (uint8_t)(val >> (8 * i));
}

static const struct pci_func_ops vpci_func_ops = {
    .cfg_written = vpci_cfg_written,
    .cfg_reading = vpci_cfg_reading,
};

/* ---- setup ----------------------------------------------------------------- */

static unsigned vpci_vndr_cap(struct pci_func *f, unsigned off, unsigned next, uint8_t type,
                              uint32_t bar_off, uint32_t len, unsigned cap_len)
{
	uint8_t *c = &f->cfg[off];

	c[0] = PCI_CAP_VNDR;
	c[1] = (uint8_t)next;
	c[2] = (uint8_t)cap_len;
	c[3] = type;
	c[4] = 0; /* BAR0 */
	for (unsigned i = 0; i < 4; i++) {
		c[8 + i] = (uint8_t)(bar_off >> (8 * i));
		c[12 + i] = (uint8_t)(len >> (8 * i));
	}
	return off;
}

static void vpci_init_config(struct vpci *v, uint64_t bar_addr)
{
	struct pci_func *f = &v->func;
	uint32_t class_code = 0xff0000;
	unsigned after_isr = v->dev->config_len ? VPCI_CAPOFF_DEVICE : VPCI_CAPOFF_MSIX;

	for (size_t i = 0; i < sizeof(vpci_classes) / sizeof(vpci_classes[0]); i++)
		if (vpci_classes[i].virtio_id == v->dev->device_id)
			class_code = vpci_classes[i].class_code;
	pci_func_init(f, VPCI_VENDOR, (uint16_t)(VPCI_DEVICE_BASE + v->dev->device_id), class_code,
	              0, v->name);
	f->cfg[0x08] = VPCI_REVISION;
	f->cfg[0x06] |= PCI_STATUS_CAPS;
	f->cfg[0x2c] = VPCI_VENDOR & 0xff;
	f->cfg[0x2d] = VPCI_VENDOR >> 8;
	f->cfg[0x2e] = VPCI_SUBSYS_ID & 0xff;
	f->cfg[0x2f] = VPCI_SUBSYS_ID >> 8;
	f->cfg[0x34] = VPCI_CAPOFF_COMMON;
	f->cfg[0x3d] = 0; /* no INTx pin: MSI-X only */
	/* BAR0: 32-bit memory, not prefetchable; the size bits stay zero. */
	for (unsigned i = 0; i < 4; i++) {
		f->cfg[0x10 + i] = (uint8_t)(bar_addr >> (8 * i));
		f->wmask[0x10 + i] = (uint8_t)(~(VPCI_BAR_SIZE - 1) >> (8 * i));
	}
	f->cfg[0x10] &= 0xf0;
	f->wmask[0x10] &= 0xf0;

	vpci_vndr_cap(f, VPCI_CAPOFF_COMMON, VPCI_CAPOFF_NOTIFY, VPCI_CAP_COMMON, VPCI_COMMON_OFF,
	              VPCI_COMMON_LEN, 16);
	vpci_vndr_cap(f, VPCI_CAPOFF_NOTIFY, VPCI_CAPOFF_ISR, VPCI_CAP_NOTIFY, VPCI_NOTIFY_OFF,
	              (uint32_t)v->nq * VPCI_NOTIFY_MULT, 20);
	for (unsigned i = 0; i < 4; i++)
		f->cfg[VPCI_CAPOFF_NOTIFY + 16 + i] = (uint8_t)(VPCI_NOTIFY_MULT >> (8 * i));
	vpci_vndr_cap(f, VPCI_CAPOFF_ISR, after_isr, VPCI_CAP_ISR, VPCI_ISR_OFF, VPCI_REGION, 16);
	if (v->dev->config_len)
		vpci_vndr_cap(f, VPCI_CAPOFF_DEVICE, VPCI_CAPOFF_MSIX, VPCI_CAP_DEVICE,
		              VPCI_DEVCFG_OFF, VPCI_REGION, 16);
	msix_cap_init(f, VPCI_CAPOFF_MSIX, VPCI_CAPOFF_PCICFG, v->msix.nvec, 0, VPCI_MSIX_OFF,
	              VPCI_PBA_OFF);
	vpci_vndr_cap(f, VPCI_CAPOFF_PCICFG, 0, VPCI_CAP_PCICFG, 0, 0, 20);
	f->wmask[VPCI_CAPOFF_PCICFG + 4] = 0xff;             /* bar */
	memset(&f->wmask[VPCI_CAPOFF_PCICFG + 8], 0xff, 12); /* offset, length, data */
	f->ops = &vpci_func_ops;
	f->ctx = v;
}

int vpci_create(struct virtio_dev *dev, struct bus *mmio, uint64_t bar_addr,
                const struct vpci_host *host, struct vpci **out)
{
	struct msix_host mh = {.route = vpci_msix_route, .fire = vpci_msix_fire};
	struct vpci *v;
	int r;

	if (dev->num_queues == 0 || dev->num_queues > VPCI_MAX_QUEUES ||
	    (bar_addr & (VPCI_BAR_SIZE - 1)) || bar_addr > UINT32_MAX - VPCI_BAR_SIZE)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->queues = calloc(dev->num_queues, sizeof(*v->queues));
	mh.ctx = v;
	if (!v->queues || (r = msix_init(&v->msix, dev->num_queues + 1u, &mh)) < 0) {
		free(v->queues);
		free(v);
		return -ENOMEM;
	}
	pthread_mutex_init(&v->lock, NULL);
	v->dev = dev;
	v->mmio = mmio;
	v->host = *host;
	v->nq = dev->num_queues;
	snprintf(v->name, sizeof(v->name), "%s", dev->name);
	vpci_reset(v);
	vpci_init_config(v, bar_addr);
	*out = v;
	return 0;
}

void vpci_destroy(struct vpci *v)
{
	if (!v)
		return;
	if (v->mapped_at)
		bus_unregister(v->mmio, v->mapped_at);
	msix_destroy(&v->msix);
	pthread_mutex_destroy(&v->lock);
	free(v->queues);
	free(v);
}

struct pci_func *vpci_func(struct vpci *v)
{
	return &v->func;
}

uint64_t vpci_bar_size(void)
{
	return VPCI_BAR_SIZE;
}

void vpci_call(struct vpci *v, void (*fn)(struct virtio_dev *, unsigned), unsigned q)
{
	pthread_mutex_lock(&v->lock);
	fn(v->dev, q);
	pthread_mutex_unlock(&v->lock);
}
