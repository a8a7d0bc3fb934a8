/*
 * virtio_pci.h - what the two files of the virtio-pci transport share
 * (virtio_pci.c: the PCI function and its BAR; virtio_pci_common.c: the
 * common configuration state machine).  Private to src/vmm/devices.
 */
#ifndef ZONEVM_DEVICES_VIRTIO_PCI_H
#define ZONEVM_DEVICES_VIRTIO_PCI_H

#include <stdint.h>

#include "devices.h"

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80
#define VIRTIO_NO_VECTOR          0xffff
#define VPCI_ISR_QUEUE            0x1
#define VPCI_ISR_CONFIG           0x2

struct vpci_queue {
	uint16_t size;
	uint16_t vector;
	bool enabled;
	uint64_t desc, driver, device;
};

struct vpci {
	struct pci_func func;
	pthread_mutex_t lock;
	struct virtio_dev *dev;
	struct bus *mmio;
	struct vpci_host host;
	struct msix msix;
	char name[VIRTIO_NAME_MAX];
	uint64_t mapped_at; /* BAR address decoded on mmio, or 0 */
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t config_vector;
	uint8_t status, config_generation, isr;
	uint16_t queue_select;
	uint16_t nq;
	struct vpci_queue *queues;
	uint64_t nr_needs_reset;
};

void vpci_log(struct vpci *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set ISR bits and raise an MSI-X vector (NO_VECTOR: nothing to raise). */
void vpci_signal(struct vpci *v, uint16_t vector, uint8_t isr_bit);
/* Device status 0: the device, the registers, the queues, as at power-on. */
void vpci_reset(struct vpci *v);
/* Common configuration accesses, any offset and size; lock held. */
uint64_t vpci_common_read(struct vpci *v, uint64_t off, unsigned len);
void vpci_common_write(struct vpci *v, uint64_t off, unsigned len, uint64_t val);

#endif
