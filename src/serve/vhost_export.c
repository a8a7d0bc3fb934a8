/*
 * vhost_export.c - a volume over vhost-user-blk: a vblk backend on the
 * volume (vblk_vol.c) handed to the vhost-user-blk server of src/vhost,
 * which maps the frontend's memory and drives src/virtio's virtio-blk
 * device on it.
 *
 * What it owns: the pairing of the two and the name they share.  What it
 * never does: speak vhost-user (src/vhost does).  Built without src/vhost,
 * it says so instead of exporting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#ifdef ZONEVM_SERVE_VHOST
#include "vhost/vhost.h"

#define SERVE_VHOST_DEPTH 256 /* the server's default queue size */
/* Queues offered (VIRTIO_BLK_F_MQ): one per CPU of this host, as many as a
 * frontend takes (zonevm run takes one per guest vCPU, up to this; QEMU
 * refuses a backend with fewer queues than its num-queues), each with its
 * own workers (vblk_vol.c). */
#define SERVE_VHOST_MAX_QUEUES 8

static unsigned serve_vhost_queues(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		return 2; /* a guest of two vCPUs still gets two */
	return n > SERVE_VHOST_MAX_QUEUES ? SERVE_VHOST_MAX_QUEUES : (unsigned)n;
}

struct serve_vhost {
	struct vhost_blk_server *srv;
	char name[320];
};

int serve_vhost_start(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                      const char *sock, bool once, void (*gone)(void *), void *arg,
                      struct serve_vhost **out, char *err, size_t errlen)
{
	struct serve_vhost *v = calloc(1, sizeof(*v));
	struct vblk_backend *be;
	int r;

	if (!v)
		return serve_err(err, errlen, -ENOMEM, "out of memory");
	snprintf(v->name, sizeof(v->name), "%s/%s", serve_pool_name(sp), vol);
	r = serve_vblk_create(sp, vol, ro, holder, serve_vhost_queues(), SERVE_VHOST_DEPTH, &be,
	                      err, errlen);
	if (r) {
		free(v);
		return r;
	}
	struct vhost_blk_opts o = {
	    .socket = sock,
	    .listen_fd = -1,
	    .be = be,
	    .blk = {.name = v->name, .read_only = ro},
	    .once = once,
	    .disconnected = gone,
	    .arg = arg,
	};
	snprintf(o.blk.serial, sizeof(o.blk.serial), "%.20s", vol);
	r = vhost_blk_server_start(&o, &v->srv, err, errlen); /* takes be */
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	return 0;
}

void serve_vhost_stop(struct serve_vhost *v)
{
	if (!v)
		return;
	vhost_blk_server_stop(v->srv);
	free(v);
}

#else

int serve_vhost_start(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                      const char *sock, bool once, void (*gone)(void *), void *arg,
                      struct serve_vhost **out, char *err, size_t errlen)
{
	return serve_err(err, errlen, -ENOTSUP,
	                 "%s/%s: vhost-user-blk is not built into this zonevm (no src/vhost)",
	                 serve_pool_name(sp), vol);
}

void serve_vhost_stop(struct serve_vhost *v)
{
}

#endif
