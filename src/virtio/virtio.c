/*
 * virtio.c - the generic part of a device: what a transport calls
 * (features, config space, queue enable/notify, reset) and the error policy
 * shared by every device model.
 *
 * It owns the device state machine as far as the device side sees it:
 * features are fixed by virtio_dev_set_features, queues become live with
 * virtio_dev_queue_enable, a bad chain marks the whole device broken, and
 * only virtio_dev_reset clears that.  It never decides what to do with a
 * request (blk.c, rng.c) and never touches the transport's registers: the
 * transport learns about a broken device through env.needs_reset.
 *
 * Error policy (STYLE rule 2): a guest value is never asserted on.  A bad
 * ring address, size or chain breaks the device (NEEDS_RESET, counted,
 * logged once per breakage); a bad request inside a good chain is the
 * device model's business and completes with an error status.  Every
 * message a guest can trigger goes through virtio_dev_log_guest, which
 * lets VIRTIO_LOG_BURST messages through per minute and counts the rest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define VIRTIO_LOG_BURST     10
#define VIRTIO_LOG_WINDOW_NS (60ull * 1000000000ull)

static void virtio_vlog(const char *prefix, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "zonevm: %s%s\n", prefix, buf);
}

void virtio_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	virtio_vlog("", fmt, ap);
	va_end(ap);
}

static uint64_t virtio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void virtio_dev_log_guest(struct virtio_dev *dev, const char *fmt, ...)
{
	char prefix[VIRTIO_NAME_MAX + 2];
	va_list ap;
	uint64_t now = virtio_now_ns();
	uint64_t start = __atomic_load_n(&dev->log_window_ns, __ATOMIC_RELAXED);
	unsigned n;

	/* A new window: whoever wins the exchange reopens the budget. */
	if (now - start >= VIRTIO_LOG_WINDOW_NS &&
	    __atomic_compare_exchange_n(&dev->log_window_ns, &start, now, false, __ATOMIC_RELAXED,
	                                __ATOMIC_RELAXED)) {
		unsigned dropped = __atomic_exchange_n(&dev->log_dropped, 0, __ATOMIC_RELAXED);

		__atomic_store_n(&dev->log_count, 0, __ATOMIC_RELAXED);
		if (dropped)
			virtio_log("%s: %u messages suppressed", dev->name, dropped);
	}
	n = __atomic_fetch_add(&dev->log_count, 1, __ATOMIC_RELAXED);
	if (n >= VIRTIO_LOG_BURST) {
		__atomic_fetch_add(&dev->log_dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	snprintf(prefix, sizeof(prefix), "%s: ", dev->name);
	va_start(ap, fmt);
	virtio_vlog(prefix, fmt, ap);
	va_end(ap);
}

/* vq_fail callback: the first bad chain on any queue breaks the device. */
static void virtio_dev_vq_failed(void *ctx, unsigned q, const char *msg)
{
	struct virtio_dev *dev = ctx;

	if (__atomic_exchange_n(&dev->broken, 1, __ATOMIC_ACQ_REL))
		return;
	__atomic_fetch_add(&dev->nr_broken, 1, __ATOMIC_RELAXED);
	/* Stop the other queues too: the guest must reset the device. */
	for (unsigned i = 0; i < dev->num_queues; i++)
		__atomic_store_n(&dev->vqs[i].broken, 1, __ATOMIC_RELEASE);
	virtio_dev_log_guest(dev, "queue %u: %s; device needs reset", q, msg);
	if (dev->env.needs_reset)
		dev->env.needs_reset(dev->env.opaque);
}

int virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, const char *name,
                    uint16_t device_id, uint16_t num_queues, uint16_t queue_size_max,
                    uint64_t features, const struct gmem *gm, const struct virtio_env *env)
{
	dev->ops = ops;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	dev->device_id = device_id;
	dev->num_queues = num_queues;
	dev->queue_size_max = queue_size_max;
	dev->host_features = features | VIRTIO_F_BIT(VIRTIO_F_VERSION_1);
	dev->guest_features = 0;
	dev->gm = gm;
	dev->env = *env;
	dev->broken = 0;
	dev->vqs = calloc(num_queues, sizeof(*dev->vqs));
	if (dev->vqs == NULL)
		return -ENOMEM;
	return 0;
}

void virtio_dev_fini(struct virtio_dev *dev)
{
	free(dev->vqs);
	dev->vqs = NULL;
}

bool virtio_dev_has(const struct virtio_dev *dev, unsigned feature)
{
	return dev->guest_features & VIRTIO_F_BIT(feature);
}

void virtio_dev_signal(struct virtio_dev *dev, unsigned q)
{
	if (vq_publish(&dev->vqs[q]) && dev->env.interrupt)
		dev->env.interrupt(dev->env.opaque, q);
}

uint64_t virtio_dev_features(const struct virtio_dev *dev)
{
	return dev->host_features;
}

int virtio_dev_set_features(struct virtio_dev *dev, uint64_t features)
{
	if (features & ~dev->host_features) {
		virtio_dev_log_guest(dev, "driver accepted features 0x%llx that were not offered",
		                     (unsigned long long)(features & ~dev->host_features));
		return -EINVAL;
	}
	if (!(features & VIRTIO_F_BIT(VIRTIO_F_VERSION_1))) {
		virtio_dev_log_guest(dev, "driver did not accept VIRTIO_F_VERSION_1 (legacy "
		                          "drivers are not supported)");
		return -EINVAL;
	}
	dev->guest_features = features;
	return 0;
}

int virtio_dev_config_read(struct virtio_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	if (off > dev->config_len || len > dev->config_len - off)
		return -EINVAL;
	memcpy(buf, dev->config + off, len);
	return 0;
}

int virtio_dev_queue_enable(struct virtio_dev *dev, unsigned q, uint16_t size, uint64_t desc,
                            uint64_t avail, uint64_t used)
{
	int r;

	if (q >= dev->num_queues) {
		virtio_dev_log_guest(dev, "enable of queue %u, the device has %u", q,
		                     dev->num_queues);
		return -EINVAL;
	}
	if (size > dev->queue_size_max) {
		virtio_dev_log_guest(dev, "queue %u: size %u is above the maximum %u", q, size,
		                     dev->queue_size_max);
		return -EINVAL;
	}
	r = vq_setup(&dev->vqs[q], dev->gm, q, size, desc, avail, used, dev->guest_features,
	             virtio_dev_vq_failed, dev);
	if (r < 0) {
		virtio_dev_log_guest(dev,
		                     "queue %u: size %u, rings desc 0x%llx avail 0x%llx used "
		                     "0x%llx: bad size, alignment or address",
		                     q, size, (unsigned long long)desc, (unsigned long long)avail,
		                     (unsigned long long)used);
		return r;
	}
	if (dev->ops->queue_start)
		return dev->ops->queue_start(dev, q);
	return 0;
}

void virtio_dev_queue_notify(struct virtio_dev *dev, unsigned q)
{
	if (q >= dev->num_queues) {
		virtio_dev_log_guest(dev, "notify for queue %u, the device has %u", q,
		                     dev->num_queues);
		return;
	}
	if (virtio_dev_is_broken(dev) || !dev->vqs[q].ready)
		return;
	dev->ops->queue_notify(dev, q);
}

void virtio_dev_reset(struct virtio_dev *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
	for (unsigned i = 0; i < dev->num_queues; i++)
		vq_reset(&dev->vqs[i]);
	dev->guest_features = 0;
	__atomic_store_n(&dev->broken, 0, __ATOMIC_RELEASE);
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	if (dev != NULL)
		dev->ops->destroy(dev);
}

int virtio_dev_queue_rings(struct virtio_dev *dev, unsigned q, uint16_t *size, void **desc,
                           void **avail, void **used)
{
	if (q >= dev->num_queues || !dev->vqs[q].ready)
		return -EINVAL;
	*size = dev->vqs[q].size;
	*desc = dev->vqs[q].desc;
	*avail = dev->vqs[q].avail;
	*used = dev->vqs[q].used;
	return 0;
}

bool virtio_dev_is_broken(const struct virtio_dev *dev)
{
	return __atomic_load_n(&dev->broken, __ATOMIC_ACQUIRE) != 0;
}

static struct vq *virtio_dev_ready_vq(struct virtio_dev *dev, unsigned q)
{
	if (q >= dev->num_queues || !dev->vqs[q].ready)
		return NULL;
	return &dev->vqs[q];
}

int virtio_dev_queue_set_base(struct virtio_dev *dev, unsigned q, uint16_t avail_base)
{
	struct vq *vq = virtio_dev_ready_vq(dev, q);

	if (!vq)
		return -EINVAL;
	vq_set_base(vq, avail_base);
	return 0;
}

int virtio_dev_queue_stop(struct virtio_dev *dev, unsigned q, uint16_t *avail_base)
{
	struct vq *vq = virtio_dev_ready_vq(dev, q);

	if (!vq)
		return -EINVAL;
	if (dev->ops->queue_drain)
		dev->ops->queue_drain(dev, q);
	*avail_base = vq->last_avail;
	vq->ready = false;
	return 0;
}

int virtio_dev_queue_used_idx(struct virtio_dev *dev, unsigned q, uint16_t *used_idx)
{
	struct vq *vq = virtio_dev_ready_vq(dev, q);

	if (!vq)
		return -EINVAL;
	*used_idx = vq_used_idx(vq);
	return 0;
}

int virtio_dev_override(struct virtio_dev *dev, uint64_t features, const void *config, uint32_t len)
{
	if (len > VIRTIO_CONFIG_MAX)
		return -EINVAL;
	dev->host_features = features | VIRTIO_F_BIT(VIRTIO_F_VERSION_1);
	memset(dev->config, 0, sizeof(dev->config));
	memcpy(dev->config, config, len);
	dev->config_len = len;
	return 0;
}
