/*
 * internal.h - what the files of src/vhost share (and the unit tests and
 * the fuzz target drive): the wire format, message I/O, and the backend's
 * protocol state machine without its socket (session.c).
 */
#ifndef ZONEVM_VHOST_INTERNAL_H
#define ZONEVM_VHOST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost.h"

/* ---- wire format (vhost-user.rst) ------------------------------------------ */

enum vhost_user_req {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_RESET_DEVICE = 34,
};

#define VHOST_USER_VERSION      0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY        0x4u
#define VHOST_USER_NEED_REPLY   0x8u
#define VHOST_USER_HDR_SIZE     12u
#define VHOST_USER_PAYLOAD_MAX  512u /* largest payload we accept */
#define VHOST_USER_MAX_FDS      8u
#define VHOST_USER_VRING_IDX    0xffu
#define VHOST_USER_VRING_NOFD   0x100u

struct vhost_user_state {
	uint32_t index, num;
};

struct vhost_user_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log; /* frontend virtual addresses */
};

struct vhost_user_region {
	uint64_t gpa, size, uva, mmap_offset;
};

struct vhost_user_mem {
	uint32_t nregions, padding;
	struct vhost_user_region r[VHOST_USER_MAX_REGIONS];
};

struct vhost_user_config {
	uint32_t offset, size, flags;
	uint8_t data[VHOST_USER_CONFIG_MAX];
};

/* One message: header, payload, and the fds that came with it. */
struct vhost_msg {
	uint32_t req, flags, size;
	union {
		uint64_t u64;
		struct vhost_user_state state;
		struct vhost_user_addr addr;
		struct vhost_user_mem mem;
		struct vhost_user_config cfg;
		uint8_t raw[VHOST_USER_PAYLOAD_MAX];
	} p;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

_Static_assert(sizeof(struct vhost_user_addr) == 40, "vring addr");
_Static_assert(sizeof(struct vhost_user_mem) == 8 + 32 * VHOST_USER_MAX_REGIONS, "mem table");

/* Name of a request for messages ("SET_MEM_TABLE", or "request 99"). */
const char *vhost_req_name(uint32_t req, char *buf, size_t len);
/*
 * Receive one message (blocking, with the socket's timeout): 0, -EPIPE at
 * a clean EOF before any byte, -EPROTO for a bad version, an oversized
 * payload, truncated ancillary data or a short read (fds received are
 * closed), or -errno.  Received fds are close-on-exec.
 */
int vhost_msg_recv(int fd, struct vhost_msg *m);
/* Send M (its header, size bytes of payload, and nfds fds); 0 or -errno. */
int vhost_msg_send(int fd, const struct vhost_msg *m);
/* Close the fds a message still holds. */
void vhost_msg_close_fds(struct vhost_msg *m);

/* ---- the backend's protocol state machine (session.c) --------------------- */

struct vhost_ring {
	uint32_t num;
	bool num_set, addr_set, enabled, running, failed;
	uint64_t desc_uva, avail_uva, used_uva;
	uint16_t base;
	int kick_fd, call_fd, err_fd;
};

struct vhost_map {
	uint64_t gpa, size, uva;
	void *map; /* mmap'ed MAP_SHARED */
	size_t map_len;
	uint8_t *host; /* gpa's host address inside map */
};

struct vhost_sess {
	char name[96]; /* "vhost-user-blk SOCKET" for messages */
	struct virtio_dev *dev;
	struct gmem gm; /* what dev translates guest addresses with */
	struct vhost_map maps[VHOST_USER_MAX_REGIONS];
	unsigned nmaps;
	bool owner, features_set;
	uint64_t features, proto;
	unsigned nq;
	struct vhost_ring *rings;
	unsigned nlogged; /* frontend-triggered messages this connection */
	/* The server's hook: ring q's kick fd changed (it polls the new one). */
	void (*kick_changed)(void *arg, unsigned q);
	void *arg;
};

/*
 * Build the device on BE (taken, also on failure) with configuration CFG;
 * the session's gmem is what the device reads guest memory through.
 */
int vhost_sess_init(struct vhost_sess *s, const char *name, struct vblk_backend *be,
                    const struct vblk_config *cfg);
/*
 * Handle one message.  The fds it carries are taken (closed or kept).
 * Returns 1 with a reply in *REPLY to send, 0 with nothing to send, or
 * -EPROTO when the connection must be dropped.  A bad message that the
 * protocol can survive is logged and, if the frontend asked (REPLY_ACK),
 * answered with a non-zero status.
 */
int vhost_sess_handle(struct vhost_sess *s, struct vhost_msg *m, struct vhost_msg *reply);
/* The guest rang ring q (its kick fd was readable). */
void vhost_sess_kick(struct vhost_sess *s, unsigned q);
/* The frontend left: stop the rings (in-flight I/O finishes), unmap its
 * memory, close its fds, reset the device for the next one. */
void vhost_sess_disconnect(struct vhost_sess *s);
/* Disconnect and destroy the device (and its backend). */
void vhost_sess_fini(struct vhost_sess *s);
/* Protocol features the backend offers. */
uint64_t vhost_sess_protocol_features(void);

#endif
