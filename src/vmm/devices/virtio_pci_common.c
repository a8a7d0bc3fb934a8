/*
 * virtio_pci_common.c - the common configuration registers of a virtio-pci
 * function (virtio 1.x, 4.1.4.3) and the device status state machine.
 *
 * It owns: the feature windows, FEATURES_OK (refused unless the device core
 * accepts the driver's features, VERSION_1 among them), queue selection and
 * setup (size, MSI-X vector, ring addresses, frozen once the queue is
 * enabled), reset on status 0, and NEEDS_RESET, which only a reset clears.
 * It never touches the BAR layout or config space (virtio_pci.c does).  All
 * calls come with the function's lock held.
 *
 *   0x00 device_feature_select  0x04 device_feature (ro)
 *   0x08 driver_feature_select  0x0c driver_feature
 *   0x10 config_msix_vector     0x12 num_queues (ro)
 *   0x14 device_status (u8)     0x15 config_generation (u8, ro)
 *   0x16 queue_select           0x18 queue_size
 *   0x1a queue_msix_vector      0x1c queue_enable
 *   0x1e queue_notify_off (ro)  0x20 queue_desc (le64)
 *   0x28 queue_driver (le64)    0x30 queue_device (le64)
 *   0x38 queue_notif_config_data, 0x3a queue_reset: read as 0
 *
 * Any access size and alignment works: each field an access touches is
 * read whole, patched bytewise, and written whole.
 */
#include "virtio/virtio.h"
#include "virtio_pci.h"

/* Common configuration registers (virtio 1.x, 4.1.4.3): offsets. */
enum {
	CC_DFSELECT = 0x00,
	CC_DF = 0x04,
	CC_GFSELECT = 0x08,
	CC_GF = 0x0c,
	CC_MSIX_CONFIG = 0x10,
	CC_NUM_QUEUES = 0x12,
	CC_STATUS = 0x14,
	CC_CFGGEN = 0x15,
	CC_Q_SELECT = 0x16,
	CC_Q_SIZE = 0x18,
	CC_Q_MSIX = 0x1a,
	CC_Q_ENABLE = 0x1c,
	CC_Q_NOFF = 0x1e,
	CC_Q_DESC = 0x20,
	CC_Q_DRIVER = 0x28,
	CC_Q_DEVICE = 0x30,
	CC_Q_NOTIF_DATA = 0x38,
	CC_Q_RESET = 0x3a,
};

static const struct {
	uint8_t off, width;
} vpci_cc_fields[] = {
    {CC_DFSELECT, 4},     {CC_DF, 4},         {CC_GFSELECT, 4}, {CC_GF, 4},
    {CC_MSIX_CONFIG, 2},  {CC_NUM_QUEUES, 2}, {CC_STATUS, 1},   {CC_CFGGEN, 1},
    {CC_Q_SELECT, 2},     {CC_Q_SIZE, 2},     {CC_Q_MSIX, 2},   {CC_Q_ENABLE, 2},
    {CC_Q_NOFF, 2},       {CC_Q_DESC, 8},     {CC_Q_DRIVER, 8}, {CC_Q_DEVICE, 8},
    {CC_Q_NOTIF_DATA, 2}, {CC_Q_RESET, 2},
};

void vpci_reset(struct vpci *v)
{
	if (v->host.reset)
		v->host.reset(v->host.ctx);
	virtio_dev_reset(v->dev);
	v->dfselect = v->gfselect = 0;
	v->driver_features = 0;
	v->config_vector = VIRTIO_NO_VECTOR;
	v->status = 0;
	v->isr = 0;
	v->queue_select = 0;
	for (unsigned q = 0; q < v->nq; q++)
		v->queues[q] =
		    (struct vpci_queue){.size = v->dev->queue_size_max, .vector = VIRTIO_NO_VECTOR};
}

static uint16_t vpci_vector_ok(const struct vpci *v, uint64_t vec)
{
	return vec < v->msix.nvec ? (uint16_t)vec : VIRTIO_NO_VECTOR;
}

static uint64_t vpci_cc_get(struct vpci *v, unsigned off)
{
	uint64_t feat = virtio_dev_features(v->dev);
	struct vpci_queue *q = v->queue_select < v->nq ? &v->queues[v->queue_select] : NULL;

	switch (off) {
	case CC_DFSELECT:
		return v->dfselect;
	case CC_DF:
		return v->dfselect < 2 ? (uint32_t)(feat >> (32 * v->dfselect)) : 0;
	case CC_GFSELECT:
		return v->gfselect;
	case CC_GF:
		return v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0;
	case CC_MSIX_CONFIG:
		return v->config_vector;
	case CC_NUM_QUEUES:
		return v->nq;
	case CC_STATUS:
		return v->status;
	case CC_CFGGEN:
		return v->config_generation;
	case CC_Q_SELECT:
		return v->queue_select;
	case CC_Q_SIZE:
		return q ? q->size : 0;
	case CC_Q_MSIX:
		return q ? q->vector : VIRTIO_NO_VECTOR;
	case CC_Q_ENABLE:
		return q ? q->enabled : 0;
	case CC_Q_NOFF:
		return q ? v->queue_select : 0;
	case CC_Q_DESC:
		return q ? q->desc : 0;
	case CC_Q_DRIVER:
		return q ? q->driver : 0;
	case CC_Q_DEVICE:
		return q ? q->device : 0;
	default:
		return 0;
	}
}

static void vpci_set_status(struct vpci *v, uint8_t val)
{
	uint8_t old = v->status;

	if (val == 0) {
		vpci_reset(v);
		return;
	}
	/* The driver only adds bits; NEEDS_RESET is ours to set. */
	val = (uint8_t)((val & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    virtio_dev_set_features(v->dev, v->driver_features) < 0) {
		/* Refused: the driver reads the status back and gives up. */
		val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((old & VIRTIO_STATUS_FEATURES_OK) && !(val & VIRTIO_STATUS_FEATURES_OK)) {
		vpci_log(v, "driver cleared FEATURES_OK without a reset");
		val |= VIRTIO_STATUS_FEATURES_OK;
	}
	v->status = val;
}

static void vpci_queue_enable(struct vpci *v, struct vpci_queue *q, unsigned idx)
{
	int r;

	if (q->enabled)
		return;
	if (!(v->status & VIRTIO_STATUS_FEATURES_OK)) {
		vpci_log(v, "queue %u enabled before FEATURES_OK", idx);
		vpci_needs_reset(v);
		return;
	}
	r = virtio_dev_queue_enable(v->dev, idx, q->size, q->desc, q->driver, q->device);
	if (r == 0 && v->host.queue_enabled)
		r = v->host.queue_enabled(v->host.ctx, idx, q->vector);
	if (r < 0) {
		vpci_needs_reset(v);
		return;
	}
	q->enabled = true;
}

static void vpci_cc_set(struct vpci *v, unsigned off, uint64_t val)
{
	struct vpci_queue *q = v->queue_select < v->nq ? &v->queues[v->queue_select] : NULL;
	bool q_writable = q && !q->enabled;

	switch (off) {
	case CC_DFSELECT:
		v->dfselect = (uint32_t)val;
		break;
	case CC_GFSELECT:
		v->gfselect = (uint32_t)val;
		break;
	case CC_GF:
		if (v->status & VIRTIO_STATUS_FEATURES_OK)
			break; /* features are fixed until reset */
		if (v->gfselect < 2) {
			uint64_t mask = UINT64_C(0xffffffff) << (32 * v->gfselect);
			v->driver_features = (v->driver_features & ~mask) |
			                     ((val & 0xffffffff) << (32 * v->gfselect));
		}
		break;
	case CC_MSIX_CONFIG:
		v->config_vector = vpci_vector_ok(v, val);
		break;
	case CC_STATUS:
		vpci_set_status(v, (uint8_t)val);
		break;
	case CC_Q_SELECT:
		v->queue_select = (uint16_t)val;
		break;
	case CC_Q_SIZE:
		if (q_writable)
			q->size = (uint16_t)val;
		break;
	case CC_Q_MSIX:
		if (q)
			q->vector = vpci_vector_ok(v, val);
		break;
	case CC_Q_ENABLE:
		if (q && val == 1)
			vpci_queue_enable(v, q, v->queue_select);
		break;
	case CC_Q_DESC:
		if (q_writable)
			q->desc = val;
		break;
	case CC_Q_DRIVER:
		if (q_writable)
			q->driver = val;
		break;
	case CC_Q_DEVICE:
		if (q_writable)
			q->device = val;
		break;
	default:
		break; /* read-only */
	}
}

/*
 * Any access, any size, any alignment: the registers are laid out as bytes
 * and each field the access touches is read, patched and written whole.
 */
uint64_t vpci_common_read(struct vpci *v, uint64_t off, unsigned len)
{
	uint64_t out = 0;

	for (size_t i = 0; i < sizeof(vpci_cc_fields) / sizeof(vpci_cc_fields[0]); i++) {
		unsigned fo = vpci_cc_fields[i].off, fw = vpci_cc_fields[i].width;
		uint64_t fv;

		if (fo >= off + len || fo + fw <= off)
			continue;
		fv = vpci_cc_get(v, fo);
		for (unsigned b = 0; b < fw; b++)
			if (fo + b >= off && fo + b < off + len)
				out |= ((fv >> (8 * b)) & 0xff) << (8 * (fo + b - off));
	}
	return out;
}

void vpci_common_write(struct vpci *v, uint64_t off, unsigned len, uint64_t val)
{
	for (size_t i = 0; i < sizeof(vpci_cc_fields) / sizeof(vpci_cc_fields[0]); i++) {
		unsigned fo = vpci_cc_fields[i].off, fw = vpci_cc_fields[i].width;
		uint64_t fv;

		if (fo >= off + len || fo + fw <= off)
			continue;
		fv = vpci_cc_get(v, fo);
		for (unsigned b = 0; b < fw; b++) {
			if (fo + b < off || fo + b >= off + len)
				continue;
			fv &= ~(UINT64_C(0xff) << (8 * b));
			fv |= ((val >> (8 * (fo + b - off))) & 0xff) << (8 * b);
		}
		vpci_cc_set(v, fo, fv);
	}
}
