/*
 * rng.c - the virtio-rng (entropy) device model (virtio 1.x, 5.4).
 *
 * What it owns: filling the device-writable buffers of each chain on its
 * one queue from getrandom(), and reporting how many bytes it wrote.  What
 * it never does: block the event loop (GRND_NONBLOCK; if the host pool is
 * not ready the request completes with fewer or no bytes, which the driver
 * accepts), or hand out more than VRNG_REQ_MAX bytes per request, so that
 * one request with a huge buffer cannot stall the loop.  Readable buffers
 * in a chain carry nothing for this device and are ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "internal.h"

#define VRNG_QUEUE_SIZE 256
#define VRNG_IOV_MAX    64
#define VRNG_REQ_MAX    (64u * 1024)

struct vrng {
	struct virtio_dev dev; /* first: virtio.c hands it back */
	struct iovec iov[VRNG_IOV_MAX];
	uint64_t nr_bytes;
};

/* Fill up to VRNG_REQ_MAX bytes of the writable iovecs; bytes written. */
static uint32_t vrng_fill(const struct iovec *iov, unsigned n)
{
	uint32_t total = 0;

	for (unsigned i = 0; i < n && total < VRNG_REQ_MAX; i++) {
		size_t want = iov[i].iov_len;
		size_t got = 0;

		if (want > VRNG_REQ_MAX - total)
			want = VRNG_REQ_MAX - total;
		while (got < want) {
			ssize_t r =
			    getrandom((uint8_t *)iov[i].iov_base + got, want - got, GRND_NONBLOCK);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return total + (uint32_t)got;
			got += (size_t)r;
		}
		total += (uint32_t)got;
	}
	return total;
}

static void vrng_notify(struct virtio_dev *dev, unsigned q)
{
	struct vrng *r = (struct vrng *)dev;
	struct vq *vq = &dev->vqs[q];
	struct vq_chain ch = {.iov = r->iov, .iov_cap = VRNG_IOV_MAX};
	int got;

	do {
		vq_disable_notify(vq);
		while ((got = vq_pop(vq, &ch)) > 0) {
			/* Only the writable iovecs we kept; a truncated chain
			 * gets fewer bytes, which is allowed. */
			uint32_t len = vrng_fill(ch.iov + ch.rd, ch.wr);

			r->nr_bytes += len;
			vq_push(vq, ch.head, len);
		}
	} while (got == 0 && vq_enable_notify(vq));
	virtio_dev_signal(dev, q);
}

static void vrng_destroy(struct virtio_dev *dev)
{
	virtio_dev_fini(dev);
	free(dev);
}

static const struct virtio_dev_ops vrng_ops = {
    .queue_notify = vrng_notify,
    .destroy = vrng_destroy,
};

int vrng_create(const struct gmem *gm, const struct virtio_env *env, struct virtio_dev **out)
{
	struct vrng *r = calloc(1, sizeof(*r));
	int e;

	if (r == NULL)
		return -ENOMEM;
	e = virtio_dev_init(&r->dev, &vrng_ops, "virtio-rng", VIRTIO_ID_RNG, 1, VRNG_QUEUE_SIZE,
	                    VIRTIO_F_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	                        VIRTIO_F_BIT(VIRTIO_RING_F_EVENT_IDX),
	                    gm, env);
	if (e < 0) {
		free(r);
		return e;
	}
	r->dev.config_len = 0;
	*out = &r->dev;
	return 0;
}
