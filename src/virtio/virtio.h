/*
 * virtio.h - the VMM-independent virtio core: guest memory map, split
 * virtqueues, the virtio-blk and virtio-rng device models and the raw-file
 * block backend.
 *
 * What it owns: every read of guest-supplied ring data and every
 * translation of a guest address into a host pointer.  What it never does:
 * touch PCI, KVM, eventfds of the transport, or a file path.  A transport
 * (virtio-pci in the VMM, vhost-user in the pool daemon) drives a device
 * through the virtio_dev_* calls below and receives two callbacks: one to
 * interrupt the guest, one to set DEVICE_NEEDS_RESET.  docs/VIRTIO.md has
 * the call sequence and the error policy.
 *
 * The split virtqueue (virtio 1.x, 2.7), three areas in guest memory that
 * the driver allocates and the transport tells us the addresses of:
 *
 *   descriptor table (16-byte aligned, 16 * size bytes), written by driver
 *   +-------------------+----------+-----------+----------+
 *   | addr (le64, gpa)  | len le32 | flags le16| next le16|  x size
 *   +-------------------+----------+-----------+----------+
 *        flags: NEXT (chain continues at next), WRITE (device writes),
 *               INDIRECT (addr/len point to a table of descriptors)
 *
 *   available ring (2-byte aligned, 6 + 2 * size bytes), written by driver
 *   +-----------+---------+------------------------------+--------------+
 *   | flags le16| idx le16| ring[size]: head indexes le16| used_event   |
 *   +-----------+---------+------------------------------+--------------+
 *        idx counts heads ever made available (free-running, mod 2^16);
 *        used_event (EVENT_IDX): interrupt me when used idx passes this.
 *
 *   used ring (4-byte aligned, 6 + 8 * size bytes), written by device
 *   +-----------+---------+------------------------------+--------------+
 *   | flags le16| idx le16| ring[size]: {id le32, len le32}| avail_event|
 *   +-----------+---------+------------------------------+--------------+
 *        id is the head of a completed chain, len the bytes written into
 *        its device-writable buffers; avail_event (EVENT_IDX): notify me
 *        when avail idx passes this.
 *
 *   driver:  fill descs -> ring[avail.idx % size] = head -> wmb -> avail.idx++
 *   device:  read avail.idx -> rmb -> walk chain -> do I/O ->
 *            used.ring[used.idx % size] = {head, len} -> wmb -> used.idx++
 *
 * Threading: the calls for one queue come from one thread at a time; two
 * queues of one device may run on two threads.  No global state.
 */
#ifndef ZONEVM_VIRTIO_H
#define ZONEVM_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---- feature bits and ids (virtio 1.x) ----------------------------------- */

#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG   4

#define VIRTIO_F_BIT(n)             (UINT64_C(1) << (n))
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32

#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_F_CTRL_VQ    17
#define VIRTIO_NET_F_MQ         22

/* ---- guest memory map ----------------------------------------------------- */

/*
 * A sorted list of non-overlapping regions of guest-physical memory, each
 * mapped at a host address.  The VMM builds it from its memslots, the pool
 * daemon from a vhost-user memory table.  It is read-only once devices use
 * it; gmem_translate() may be called from any thread.
 */
#define GMEM_MAX_REGIONS 32

struct gmem_region {
	uint64_t gpa;  /* first guest-physical address */
	uint64_t size; /* bytes, > 0; gpa + size does not overflow */
	uint8_t *host; /* where gpa is mapped in this process */
};

struct gmem {
	unsigned nr;
	struct gmem_region r[GMEM_MAX_REGIONS];
};

void gmem_init(struct gmem *gm);
/* Add a region; -EINVAL if empty, wrapping or overlapping, -ENOSPC if full. */
int gmem_add(struct gmem *gm, uint64_t gpa, uint64_t size, void *host);
/*
 * Host pointer for [gpa, gpa + len), or NULL when len is 0 or the range is
 * not wholly inside one region.  Never fails open: every caller checks.
 */
void *gmem_translate(const struct gmem *gm, uint64_t gpa, uint64_t len);

/* ---- devices as a transport sees them --------------------------------------- */

/* What the transport gives a device. */
struct virtio_env {
	/* Used buffers were added to queue q: raise its interrupt (irqfd). */
	void (*interrupt)(void *opaque, unsigned q);
	/* Optional: stop (on = false) or resume polling the fd the device gave
	 * for queue q (e.g. a tap while the guest has no rx buffers). */
	void (*queue_fd_watch)(void *opaque, unsigned q, bool on);
	/* Optional: call queue_notify for q again later, after the events
	 * waiting now (a device that stopped at its budget). */
	void (*requeue)(void *opaque, unsigned q);
	/* The guest broke the device: set DEVICE_NEEDS_RESET and a config
	 * change interrupt.  The device does nothing until virtio_dev_reset. */
	void (*needs_reset)(void *opaque);
	void *opaque;
};

struct vq;
struct virtio_dev;

/* One per device model (blk.c, rng.c); the transport never calls these. */
struct virtio_dev_ops {
	int (*queue_start)(struct virtio_dev *dev, unsigned q);
	void (*queue_notify)(struct virtio_dev *dev, unsigned q);
	void (*reset)(struct virtio_dev *dev); /* after the queues stopped */
	/* Optional: finish queue q's in-flight requests (used ring filled). */
	void (*queue_drain)(struct virtio_dev *dev, unsigned q);
	void (*destroy)(struct virtio_dev *dev);
};

#define VIRTIO_CONFIG_MAX 64
/* A device's name in messages: "virtio-blk PATH"; a vhost-user socket path
 * (at most 107 bytes) fits whole. */
#define VIRTIO_NAME_MAX 128

/* Fields a transport may read; only virtio.c and the device write them. */
struct virtio_dev {
	const struct virtio_dev_ops *ops;
	char name[VIRTIO_NAME_MAX]; /* for messages: "virtio-blk PATH" */
	uint16_t device_id;         /* VIRTIO_ID_* */
	uint16_t num_queues;        /* queues the device offers */
	uint16_t queue_size_max;    /* largest queue size accepted */
	uint64_t host_features;     /* offered */
	uint64_t guest_features;    /* accepted by virtio_dev_set_features */
	uint32_t config_len;        /* bytes of device config space */
	uint8_t config[VIRTIO_CONFIG_MAX];
	const struct gmem *gm;
	struct virtio_env env;
	struct vq *vqs; /* num_queues */
	int broken;     /* atomic: set by a bad chain, cleared by reset */
	uint64_t nr_broken;
	/* rate limit for messages a guest can trigger */
	uint64_t log_window_ns;
	unsigned log_count;
	unsigned log_dropped;
};

/* Features offered, VIRTIO_F_VERSION_1 always among them. */
uint64_t virtio_dev_features(const struct virtio_dev *dev);
/* Driver's choice; -EINVAL if not a subset or VERSION_1 missing (the
 * transport then refuses FEATURES_OK). */
int virtio_dev_set_features(struct virtio_dev *dev, uint64_t features);
/* Device config space; -EINVAL when [off, off+len) is outside it. */
int virtio_dev_config_read(struct virtio_dev *dev, uint32_t off, void *buf, uint32_t len);
/*
 * Queue q was enabled (queue_enable = 1 or DRIVER_OK) with these guest
 * addresses and size.  -EINVAL when the size is not a power of two within
 * queue_size_max or a ring is misaligned or outside guest memory: the
 * transport then sets NEEDS_RESET.
 */
int virtio_dev_queue_enable(struct virtio_dev *dev, unsigned q, uint16_t size, uint64_t desc,
                            uint64_t avail, uint64_t used);
/* The guest notified queue q (ioeventfd fired). */
void virtio_dev_queue_notify(struct virtio_dev *dev, unsigned q);
/* Status written 0: wait for in-flight I/O, forget queues and features. */
void virtio_dev_reset(struct virtio_dev *dev);
void virtio_dev_destroy(struct virtio_dev *dev);
/* Queue q's rings as mapped in this process (for vhost); -EINVAL if not
 * enabled. */
int virtio_dev_queue_rings(struct virtio_dev *dev, unsigned q, uint16_t *size, void **desc,
                           void **avail, void **used);
bool virtio_dev_is_broken(const struct virtio_dev *dev);

/*
 * Rings that move between processes (vhost-user, docs/VHOST-USER.md).
 * set_base: right after virtio_dev_queue_enable, before any notify, resume
 * queue q at avail index AVAIL_BASE, appending used elements after the used
 * ring's current index (SET_VRING_BASE).  stop: complete queue q's
 * in-flight requests (used ring, interrupt), make it not ready and return
 * the next avail index (GET_VRING_BASE).  used_idx: the used ring's index
 * as the guest sees it.  Each returns -EINVAL for a queue that does not
 * exist or is not enabled.
 */
int virtio_dev_queue_set_base(struct virtio_dev *dev, unsigned q, uint16_t avail_base);
int virtio_dev_queue_stop(struct virtio_dev *dev, unsigned q, uint16_t *avail_base);
int virtio_dev_queue_used_idx(struct virtio_dev *dev, unsigned q, uint16_t *used_idx);
/*
 * A device whose data path runs in another process (the VMM's vhost-user
 * frontend): offer FEATURES (VERSION_1 is added) and answer config reads
 * with CONFIG (LEN <= VIRTIO_CONFIG_MAX) instead of the model's own.
 */
int virtio_dev_override(struct virtio_dev *dev, uint64_t features, const void *config,
                        uint32_t len);

/* ---- virtio-blk ------------------------------------------------------------ */

#define VBLK_SECTOR_SHIFT 9
#define VBLK_ID_BYTES     20

struct vblk_backend;

struct vblk_config {
	const char *name;               /* for messages, e.g. the path or "vda" */
	bool read_only;                 /* offer VIRTIO_BLK_F_RO, fail writes */
	char serial[VBLK_ID_BYTES + 1]; /* GET_ID answer, may be empty */
	uint16_t num_queues;            /* >= 1; > 1 offers VIRTIO_BLK_F_MQ */
	uint16_t queue_size;            /* max queue size, power of 2, <= 1024 */
	uint32_t blk_size;              /* logical block size, 512 if 0 */
};

/*
 * Build a virtio-blk device on a backend (which it then owns).  The backend
 * must have at least cfg->num_queues queues.
 */
int vblk_create(const struct vblk_config *cfg, struct vblk_backend *be, const struct gmem *gm,
                const struct virtio_env *env, struct virtio_dev **out);
/* The eventfd the event loop polls for queue q's completions, or -1. */
int vblk_queue_fd(struct virtio_dev *dev, unsigned q);
/* That fd was readable: complete finished requests, start waiting ones. */
void vblk_queue_poll(struct virtio_dev *dev, unsigned q);

/* A backend operation, prepared by blk.c, carried out by a backend. */
enum vblk_op {
	VBLK_OP_READ,
	VBLK_OP_WRITE,
	VBLK_OP_FLUSH,
	VBLK_OP_DISCARD,
	VBLK_OP_WRITE_ZEROES,
};

struct vblk_io {
	enum vblk_op op;
	bool dsync;        /* WRITE: durable on completion (no FLUSH negotiated) */
	bool unmap;        /* WRITE_ZEROES: may deallocate */
	uint64_t offset;   /* bytes */
	uint64_t len;      /* bytes */
	struct iovec *iov; /* READ/WRITE; the backend may advance it */
	unsigned iovcnt;
	int result;        /* set at completion: 0 or -errno */
	uint64_t done;     /* backend's progress */
	unsigned be_flags; /* backend's private state */
};

/*
 * A block backend: raw file now, pool volume and vhost-user later.  The
 * implementation embeds struct vblk_backend first.  submit() only queues;
 * commit() starts what was queued; reap() returns finished ios without
 * blocking; wait() blocks until reap() has something (used by reset).
 */
struct vblk_backend_ops {
	const char *name;
	int (*queue_fd)(struct vblk_backend *be, unsigned q);
	int (*submit)(struct vblk_backend *be, unsigned q, struct vblk_io *io);
	void (*commit)(struct vblk_backend *be, unsigned q);
	unsigned (*reap)(struct vblk_backend *be, unsigned q, struct vblk_io **done, unsigned max);
	int (*wait)(struct vblk_backend *be, unsigned q);
	void (*destroy)(struct vblk_backend *be);
};

struct vblk_backend {
	const struct vblk_backend_ops *ops;
	uint64_t size;      /* bytes, a multiple of 512 */
	unsigned nr_queues; /* independent submission queues */
	unsigned depth;     /* ios in flight per queue */
};

/*
 * Raw file or block device backend on io_uring, one ring and one eventfd
 * per queue.  Takes ownership of fd (opened by the VMM before it sandboxes
 * itself); name is only for messages.  Fails with a message naming the file
 * when its size is not a multiple of 512.
 */
int vblk_file_open(int fd, const char *name, unsigned nr_queues, unsigned depth,
                   struct vblk_backend **out);

/* ---- virtio-rng ------------------------------------------------------------ */

/* Entropy device: one queue, buffers filled from getrandom(). */
int vrng_create(const struct gmem *gm, const struct virtio_env *env, struct virtio_dev **out);

/* ---- virtio-net ------------------------------------------------------------- */

/*
 * The header in front of every packet, on the rings and on the tap alike
 * (virtio 1.x 5.1.6; the tap's vnet header size is set to 12).
 */
struct vnet_hdr {
	uint8_t flags; /* 1: NEEDS_CSUM */
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers; /* rx: chains this packet spans (MRG_RXBUF) */
};

#define VNET_HDR_LEN    12
#define VNET_MAX_PAIRS  8
#define VNET_QUEUE_SIZE 256

/*
 * A packet backend: one fd per queue pair that reads and writes one packet
 * (with its 12-byte header) per readv/writev, non-blocking: a tap in the
 * VMM, a datagram socket pair in the tests.  The optional hooks are the
 * tap's (net_tap.c).
 */
struct vnet_backend_ops {
	/* Offloads the guest accepted (its GUEST_* features) for packets to it. */
	int (*set_offload)(int fd, uint64_t guest_features);
	/* Attach (on) or detach a queue pair's fd from the backend's steering. */
	int (*set_queue)(int fd, bool on);
};

struct vnet_config {
	const char *name; /* for messages: "virtio-net zvmab12n0" */
	uint8_t mac[6];
	uint16_t pairs;                     /* queue pairs, 1..VNET_MAX_PAIRS; > 1 offers MQ */
	int fds[VNET_MAX_PAIRS];            /* owned by the device on success */
	const struct vnet_backend_ops *ops; /* NULL: a plain fd */
	/*
	 * The rx/tx rings are served elsewhere (vhost-net): the device answers
	 * config reads, applies offloads to the fds and runs the control
	 * queue, but never touches an rx or tx ring.  features_clear: ring
	 * features that data path cannot do (withdrawn from the offer).
	 */
	bool external;
	uint64_t features_clear;
};

/* Queue numbering (5.1.2): rx of pair i is 2i, tx 2i+1, control 2 * pairs. */
int vnet_create(const struct vnet_config *cfg, const struct gmem *gm, const struct virtio_env *env,
                struct virtio_dev **out);
/* Queue pair's backend fd (the device keeps it), or -1. */
int vnet_backend_fd(struct virtio_dev *dev, unsigned pair);
/* The fd to poll for queue q (an rx queue's backend fd), or -1. */
int vnet_queue_fd(struct virtio_dev *dev, unsigned q);
/* That fd is readable: move packets into the guest's rx queue q. */
void vnet_queue_poll(struct virtio_dev *dev, unsigned q);

struct vnet_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped; /* to the guest */
	uint64_t tx_packets, tx_bytes, tx_dropped; /* from the guest */
};
void vnet_get_stats(struct virtio_dev *dev, struct vnet_stats *st);
/* Active queue pairs (VQ_PAIRS_SET). */
unsigned vnet_active_pairs(struct virtio_dev *dev);

/* The tap backend (net_tap.c): check an fd is a tap with IFF_VNET_HDR, set
 * its header size to 12 and make it non-blocking; message names the tap. */
int vnet_tap_prepare(int fd, const char *name);
extern const struct vnet_backend_ops vnet_tap_ops;

#endif
