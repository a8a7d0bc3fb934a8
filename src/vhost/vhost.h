/*
 * vhost.h - vhost-user-blk, both ends (src/vhost): a backend (server) that
 * serves a struct vblk_backend to any vhost-user frontend (QEMU, zonevm
 * run), and the frontend's side of the protocol that the VMM uses to hand a
 * virtio-blk device's queues to any vhost-user-blk backend.
 *
 * The protocol is QEMU's docs/interop/vhost-user.rst; the subset spoken is
 * in docs/VHOST-USER.md.  Every message on the wire is
 *
 *   +-------------+-----------+----------+--------------------------+
 *   | request u32 | flags u32 | size u32 | payload (size bytes)     |
 *   +-------------+-----------+----------+--------------------------+
 *     flags: bits 0-1 version (1), bit 2 REPLY, bit 3 NEED_REPLY
 *     file descriptors (memory regions, kick/call/err eventfds) travel
 *     beside it as SCM_RIGHTS ancillary data.
 *
 * What it owns: the UNIX socket, message framing and validation, the guest
 * memory the frontend shares (mapped MAP_SHARED), the kick/call/err
 * eventfds and the backend's event thread.  What it never does: parse a
 * virtqueue or a block request (src/virtio does, the same code the VMM runs)
 * or open a disk (the caller gives a struct vblk_backend).
 *
 * Errors are negative errno values; ERR (may be NULL) receives a message
 * naming the socket and the cause.
 */
#ifndef ZONEVM_VHOST_H
#define ZONEVM_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

/* ---- the backend: a vhost-user-blk server (server.c) ------------------------ */

struct vhost_blk_server;

struct vhost_blk_opts {
	/* Listen on this UNIX socket path (created mode 0600; a stale socket
	 * file is replaced), or, when listen_fd >= 0, on that already
	 * listening socket (taken: closed by _stop). */
	const char *socket;
	int listen_fd;
	/* The disk: taken on success and on failure (destroyed by _stop). */
	struct vblk_backend *be;
	/* name (messages), read_only, serial, num_queues (1..be->nr_queues,
	 * 0 means be->nr_queues), queue_size (0: 256; be->depth must be at
	 * least it). */
	struct vblk_config blk;
	/* Serve one frontend connection only: when it ends, accept no other. */
	bool once;
	/* Optional: a frontend connection ended (EOF, protocol error).  Called
	 * on the server's thread, which must not be stopped from inside it. */
	void (*disconnected)(void *arg);
	void *arg;
};

/*
 * Start serving: bind/listen, then one thread runs the socket, the guest's
 * kicks and the backend's completions (epoll).  One frontend at a time; a
 * second connection waits until the first one ends.  When a frontend goes
 * away its in-flight I/O is finished, its memory unmapped and the device
 * reset, ready for the next one.
 */
int vhost_blk_server_start(const struct vhost_blk_opts *opts, struct vhost_blk_server **out,
                           char *err, size_t errlen);
/* Wait up to TIMEOUT_MS (< 0: for ever) for the server to end its one
 * connection (opts.once): 0 once it has, -ETIMEDOUT.  The server's thread
 * blocks every signal, so process signals reach the caller's threads. */
int vhost_blk_server_wait(struct vhost_blk_server *s, int timeout_ms);
/* Stop the thread (in-flight I/O finishes), close the socket, unlink the
 * path it created, destroy the backend.  Any thread but the server's. */
void vhost_blk_server_stop(struct vhost_blk_server *s);

/* ---- the frontend (client.c): the VMM's side of the protocol ------------------ */

/* Feature bits on the wire beside the virtio ones. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VHOST_USER_PROTOCOL_F_MQ           0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK    3
#define VHOST_USER_PROTOCOL_F_CONFIG       9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13

#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_CONFIG_MAX  256

struct vhost_front;

/* A region of guest RAM as the frontend shares it: FD is mapped at
 * OFFSET for SIZE bytes, at HOST in the frontend, at GPA in the guest. */
struct vhost_front_region {
	uint64_t gpa, size, offset;
	void *host;
	int fd;
};

/*
 * Connect to a backend at SOCKET and negotiate: GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES (MQ, CONFIG, REPLY_ACK, RESET_DEVICE as the
 * backend offers; CONFIG is required), SET_OWNER, GET_QUEUE_NUM, then
 * SET_MEM_TABLE with REGIONS.  *features: the backend's virtio features
 * (without VHOST_USER_F_PROTOCOL_FEATURES); *queues: its queue count.
 * Every reply is checked; a timeout of a few seconds guards each one.
 */
int vhost_front_connect(const char *socket, const struct vhost_front_region *regions,
                        unsigned nregions, uint64_t *features, unsigned *queues,
                        struct vhost_front **out, char *err, size_t errlen);
/* GET_CONFIG of LEN bytes (<= VHOST_USER_CONFIG_MAX) into BUF. */
int vhost_front_get_config(struct vhost_front *f, void *buf, uint32_t len);
/* SET_FEATURES (the guest's choice; PROTOCOL_FEATURES added as needed). */
int vhost_front_set_features(struct vhost_front *f, uint64_t features);
/* A ring in the frontend's address space, as the guest laid it out. */
struct vhost_front_ring {
	uint16_t size;
	uint16_t base; /* next avail index the backend processes */
	void *desc, *avail, *used;
};
/* Start ring Q: SET_VRING_NUM/BASE/ADDR/CALL/KICK and ENABLE. */
int vhost_front_start(struct vhost_front *f, unsigned q, const struct vhost_front_ring *ring,
                      int kick_fd, int call_fd);
/* Stop ring Q: GET_VRING_BASE (the backend finishes its in-flight
 * requests first); *base receives the next avail index. */
int vhost_front_stop(struct vhost_front *f, unsigned q, uint16_t *base);
/* RESET_DEVICE (or RESET_OWNER when the backend lacks it). */
int vhost_front_reset(struct vhost_front *f);
/* The socket, to poll for hang-up (the backend died). */
int vhost_front_fd(const struct vhost_front *f);
/* True once a send or receive failed: every later call fails at once. */
bool vhost_front_dead(const struct vhost_front *f);
void vhost_front_close(struct vhost_front *f);

#endif
