/*
 * internal.h - what the device models in src/virtio/ share and the
 * transport does not see: setting up the generic part of a device, and
 * logging with a rate limit for the messages a guest can trigger.
 */
#ifndef ZONEVM_VIRTIO_INTERNAL_H
#define ZONEVM_VIRTIO_INTERNAL_H

#include "virtio.h"
#include "vq.h"

/* Fill the generic part of a device and allocate its queues. */
int virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, const char *name,
                    uint16_t device_id, uint16_t num_queues, uint16_t queue_size_max,
                    uint64_t features, const struct gmem *gm, const struct virtio_env *env);
void virtio_dev_fini(struct virtio_dev *dev);
bool virtio_dev_has(const struct virtio_dev *dev, unsigned feature);
/* Publish queue q's used elements and interrupt the guest if it asks. */
void virtio_dev_signal(struct virtio_dev *dev, unsigned q);

/* Setup and host-side messages: "zonevm: ..." on stderr. */
void virtio_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Messages a guest can cause or repeat at will (bad requests, host I/O
 * errors it provokes): at most 10 per minute per device. */
void virtio_dev_log_guest(struct virtio_dev *dev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
