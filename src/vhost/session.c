/*
 * session.c - the vhost-user-blk backend's protocol state machine: one
 * frontend's messages in, replies out, the src/virtio virtio-blk model
 * driven underneath.  No socket here (server.c has it), so the unit tests
 * and the fuzz target feed messages directly.
 *
 * What it owns: validating every message (the frontend is not trusted: a
 * bad size, index, address, fd count or state is refused with a message,
 * never acted on), the guest memory the frontend shares (each region's fd
 * mapped MAP_SHARED and described to the device as a struct gmem), the
 * rings' state (num, addresses, base, kick/call/err fds, enable) and when a
 * ring runs.  What it never does: read a ring or a request itself.
 *
 * A ring runs when it has a size, addresses, a kick fd, the memory table and
 * the features are set, and it is enabled (always, until the frontend
 * negotiates VHOST_USER_F_PROTOCOL_FEATURES; then by SET_VRING_ENABLE).
 * Running = virtio_dev_queue_enable with the ring's guest addresses (the
 * frontend's virtual addresses translated through the memory table), then
 * virtio_dev_queue_set_base.  GET_VRING_BASE stops it: in-flight requests
 * complete first, then the base is returned and the kick fd dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define VHOST_SESS_LOG_MAX    20 /* messages a frontend can cause per connection */
#define VHOST_SESS_MAX_QUEUES 64

/* What the device offers beside its virtio features. */
uint64_t vhost_sess_protocol_features(void)
{
	return VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_MQ) |
	       VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	       VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |
	       VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE);
}

static void vhost_sess_log(struct vhost_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vhost_sess_log(struct vhost_sess *s, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (s->nlogged++ >= VHOST_SESS_LOG_MAX) {
		if (s->nlogged == VHOST_SESS_LOG_MAX + 1)
			fprintf(stderr,
			        "zonevm: %s: further messages of this connection "
			        "suppressed\n",
			        s->name);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "zonevm: %s: %s\n", s->name, buf);
}

/* ---- device callbacks ------------------------------------------------------ */

static void vhost_signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: saturated counter, the event is pending anyway. */
	}
}

static void vhost_sess_interrupt(void *opaque, unsigned q)
{
	struct vhost_sess *s = opaque;

	if (q < s->nq)
		vhost_signal_fd(s->rings[q].call_fd);
}

/* A bad chain broke the device: the frontend hears it on the err fds. */
static void vhost_sess_needs_reset(void *opaque)
{
	struct vhost_sess *s = opaque;

	for (unsigned q = 0; q < s->nq; q++)
		vhost_signal_fd(s->rings[q].err_fd);
}

int vhost_sess_init(struct vhost_sess *s, const char *name, struct vblk_backend *be,
                    const struct vblk_config *cfg)
{
	struct virtio_env env = {.interrupt = vhost_sess_interrupt,
	                         .needs_reset = vhost_sess_needs_reset};
	struct vblk_config c = *cfg;
	int r;

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "vhost-user-blk %s", name);
	gmem_init(&s->gm);
	if (c.num_queues == 0)
		c.num_queues =
		    (uint16_t)(be->nr_queues < VHOST_SESS_MAX_QUEUES ? be->nr_queues
		                                                     : VHOST_SESS_MAX_QUEUES);
	if (c.num_queues > VHOST_SESS_MAX_QUEUES) {
		fprintf(stderr, "zonevm: %s: %u queues asked, at most %u\n", s->name, c.num_queues,
		        VHOST_SESS_MAX_QUEUES);
		be->ops->destroy(be);
		return -EINVAL;
	}
	env.opaque = s;
	r = vblk_create(&c, be, &s->gm, &env, &s->dev);
	if (r < 0) {
		be->ops->destroy(be);
		return r;
	}
	s->nq = s->dev->num_queues;
	s->rings = calloc(s->nq, sizeof(*s->rings));
	if (!s->rings) {
		virtio_dev_destroy(s->dev);
		return -ENOMEM;
	}
	for (unsigned q = 0; q < s->nq; q++)
		s->rings[q] = (struct vhost_ring){.kick_fd = -1, .call_fd = -1, .err_fd = -1};
	return 0;
}

/* ---- rings ----------------------------------------------------------------- */

static void vhost_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A frontend virtual address range inside one region, as a guest address. */
static bool vhost_uva_to_gpa(const struct vhost_sess *s, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	for (unsigned i = 0; i < s->nmaps; i++) {
		const struct vhost_map *m = &s->maps[i];

		if (uva >= m->uva && uva - m->uva < m->size && len <= m->size - (uva - m->uva)) {
			*gpa = m->gpa + (uva - m->uva);
			return true;
		}
	}
	return false;
}

static bool vhost_ring_wants_run(const struct vhost_sess *s, const struct vhost_ring *r)
{
	return r->num_set && r->addr_set && r->kick_fd >= 0 && r->enabled && !r->failed &&
	       s->nmaps > 0 && s->features_set;
}

static void vhost_ring_stop(struct vhost_sess *s, unsigned q)
{
	struct vhost_ring *r = &s->rings[q];
	uint16_t base;

	if (!r->running)
		return;
	if (virtio_dev_queue_stop(s->dev, q, &base) == 0)
		r->base = base;
	r->running = false;
}

/* Start or stop ring q as its state now asks. */
static void vhost_ring_update(struct vhost_sess *s, unsigned q)
{
	struct vhost_ring *r = &s->rings[q];
	uint64_t d, a, u;
	uint16_t n = (uint16_t)r->num;

	if (!vhost_ring_wants_run(s, r)) {
		vhost_ring_stop(s, q);
		return;
	}
	if (r->running)
		return;
	if (!vhost_uva_to_gpa(s, r->desc_uva, 16ull * n, &d) ||
	    !vhost_uva_to_gpa(s, r->avail_uva, 6ull + 2ull * n, &a) ||
	    !vhost_uva_to_gpa(s, r->used_uva, 6ull + 8ull * n, &u)) {
		vhost_sess_log(s,
		               "ring %u: addresses desc 0x%llx avail 0x%llx used 0x%llx are "
		               "not inside the memory table",
		               q, (unsigned long long)r->desc_uva, (unsigned long long)r->avail_uva,
		               (unsigned long long)r->used_uva);
		r->failed = true;
		return;
	}
	if (virtio_dev_queue_enable(s->dev, q, n, d, a, u) < 0) {
		vhost_sess_log(s, "ring %u: size %u or ring alignment refused by the device", q, n);
		r->failed = true;
		return;
	}
	virtio_dev_queue_set_base(s->dev, q, r->base);
	r->running = true;
	/* Requests may have been queued before we watched the kick fd. */
	virtio_dev_queue_notify(s->dev, q);
}

static void vhost_update_all(struct vhost_sess *s)
{
	for (unsigned q = 0; q < s->nq; q++)
		vhost_ring_update(s, q);
}

void vhost_sess_kick(struct vhost_sess *s, unsigned q)
{
	uint64_t n;

	if (q >= s->nq)
		return;
	if (s->rings[q].kick_fd >= 0 && read(s->rings[q].kick_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: already drained by an earlier wakeup. */
	}
	if (s->rings[q].running)
		virtio_dev_queue_notify(s->dev, q);
}

/* ---- memory table ---------------------------------------------------------- */

static void vhost_unmap_all(struct vhost_sess *s)
{
	for (unsigned i = 0; i < s->nmaps; i++)
		munmap(s->maps[i].map, s->maps[i].map_len);
	s->nmaps = 0;
	gmem_init(&s->gm);
}

static int vhost_map_region(struct vhost_sess *s, const struct vhost_user_region *reg, int fd,
                            struct vhost_map *out)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = reg->mmap_offset & ~(page - 1), lead = reg->mmap_offset - start;
	struct stat st;
	void *p;

	if (reg->size == 0 || reg->mmap_offset > UINT64_MAX - reg->size ||
	    reg->gpa > UINT64_MAX - reg->size || reg->uva > UINT64_MAX - reg->size ||
	    reg->size + lead > SIZE_MAX) {
		vhost_sess_log(s,
		               "memory region gpa 0x%llx size 0x%llx offset 0x%llx: size "
		               "zero or range wraps",
		               (unsigned long long)reg->gpa, (unsigned long long)reg->size,
		               (unsigned long long)reg->mmap_offset);
		return -EINVAL;
	}
	/* A file shorter than the region would SIGBUS us on first touch. */
	if (fstat(fd, &st) < 0 ||
	    (S_ISREG(st.st_mode) && (uint64_t)st.st_size < reg->mmap_offset + reg->size)) {
		vhost_sess_log(s,
		               "memory region gpa 0x%llx: its file is shorter than offset "
		               "0x%llx + size 0x%llx",
		               (unsigned long long)reg->gpa, (unsigned long long)reg->mmap_offset,
		               (unsigned long long)reg->size);
		return -EINVAL;
	}
	p = mmap(NULL, (size_t)(reg->size + lead), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_NORESERVE, fd, (off_t)start);
	if (p == MAP_FAILED) {
		int e = errno;

		vhost_sess_log(s, "memory region gpa 0x%llx size 0x%llx: mmap: %s",
		               (unsigned long long)reg->gpa, (unsigned long long)reg->size,
		               strerror(e));
		return -e;
	}
	*out = (struct vhost_map){.gpa = reg->gpa,
	                          .size = reg->size,
	                          .uva = reg->uva,
	                          .map = p,
	                          .map_len = (size_t)(reg->size + lead),
	                          .host = (uint8_t *)p + lead};
	return 0;
}

static int vhost_set_mem_table(struct vhost_sess *s, struct vhost_msg *m)
{
	const struct vhost_user_mem *mem = &m->p.mem;
	bool was_running[VHOST_SESS_MAX_QUEUES] = {false};
	int r = 0;

	if (m->size < 8 || mem->nregions == 0 || mem->nregions > VHOST_USER_MAX_REGIONS ||
	    m->size != 8 + 32 * mem->nregions || m->nfds != mem->nregions) {
		vhost_sess_log(s, "SET_MEM_TABLE: %u regions in %u bytes with %u fds",
		               mem->nregions, m->size, m->nfds);
		return -EINVAL;
	}
	for (unsigned i = 0; i < mem->nregions; i++)
		for (unsigned j = 0; j < i; j++) {
			const struct vhost_user_region *a = &mem->r[i], *b = &mem->r[j];

			if (a->uva < b->uva + b->size && b->uva < a->uva + a->size) {
				vhost_sess_log(s,
				               "SET_MEM_TABLE: regions %u and %u overlap in the "
				               "frontend's address space",
				               j, i);
				return -EINVAL;
			}
		}
	/* The rings hold pointers into the old mappings: stop, remap, restart. */
	for (unsigned q = 0; q < s->nq; q++) {
		was_running[q] = s->rings[q].running;
		vhost_ring_stop(s, q);
	}
	vhost_unmap_all(s);
	for (unsigned i = 0; i < mem->nregions && r == 0; i++) {
		r = vhost_map_region(s, &mem->r[i], m->fds[i], &s->maps[i]);
		if (r == 0) {
			s->nmaps++;
			r = gmem_add(&s->gm, s->maps[i].gpa, s->maps[i].size, s->maps[i].host);
			if (r < 0)
				vhost_sess_log(s,
				               "SET_MEM_TABLE: region %u (gpa 0x%llx) overlaps "
				               "another or the table is full",
				               i, (unsigned long long)s->maps[i].gpa);
		}
	}
	if (r < 0)
		vhost_unmap_all(s);
	for (unsigned q = 0; q < s->nq; q++)
		if (was_running[q])
			s->rings[q].failed = false;
	vhost_update_all(s);
	return r;
}

/* ---- messages -------------------------------------------------------------- */

/* Ring index of a vring state/addr message, or -1 (logged). */
static int vhost_ring_index(struct vhost_sess *s, const char *what, uint32_t index)
{
	if (index >= s->nq) {
		vhost_sess_log(s, "%s: ring %u, the device has %u", what, index, s->nq);
		return -1;
	}
	return (int)index;
}

/* SET_VRING_KICK/CALL/ERR: the u64 names the ring and whether an fd came. */
static int vhost_set_ring_fd(struct vhost_sess *s, struct vhost_msg *m, const char *what)
{
	uint64_t v = m->p.u64;
	bool nofd = v & VHOST_USER_VRING_NOFD;
	int q, *slot;

	if (m->size != 8 || (v & ~(uint64_t)(VHOST_USER_VRING_IDX | VHOST_USER_VRING_NOFD)) ||
	    m->nfds != (nofd ? 0u : 1u)) {
		vhost_sess_log(s, "%s: payload 0x%llx of %u bytes with %u fds", what,
		               (unsigned long long)v, m->size, m->nfds);
		return -EINVAL;
	}
	if ((q = vhost_ring_index(s, what, (uint32_t)(v & VHOST_USER_VRING_IDX))) < 0)
		return -EINVAL;
	if (m->req == VHOST_USER_SET_VRING_KICK) {
		if (nofd) {
			vhost_sess_log(s, "%s: ring %d without an fd (polling) is not supported",
			               what, q);
			return -ENOTSUP;
		}
		slot = &s->rings[q].kick_fd;
	} else {
		slot = m->req == VHOST_USER_SET_VRING_CALL ? &s->rings[q].call_fd
		                                           : &s->rings[q].err_fd;
	}
	vhost_close_fd(slot);
	if (!nofd) {
		*slot = m->fds[0];
		m->nfds = 0;
	}
	if (m->req == VHOST_USER_SET_VRING_KICK) {
		/* No PROTOCOL_FEATURES: a ring starts enabled on its kick. */
		if (!(s->features & VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
			s->rings[q].enabled = true;
		if (s->kick_changed)
			s->kick_changed(s->arg, (unsigned)q);
		vhost_ring_update(s, (unsigned)q);
	}
	return 0;
}

static int vhost_set_ring_state(struct vhost_sess *s, struct vhost_msg *m, const char *what)
{
	struct vhost_user_state st = m->p.state;
	struct vhost_ring *r;
	int q;

	if (m->size != sizeof(st) || (q = vhost_ring_index(s, what, st.index)) < 0) {
		if (m->size != sizeof(st))
			vhost_sess_log(s, "%s: payload of %u bytes", what, m->size);
		return -EINVAL;
	}
	r = &s->rings[q];
	if (m->req == VHOST_USER_SET_VRING_ENABLE) {
		if (st.num > 1) {
			vhost_sess_log(s, "%s: ring %d: value %u", what, q, st.num);
			return -EINVAL;
		}
		r->enabled = st.num;
		vhost_ring_update(s, (unsigned)q);
		return 0;
	}
	if (r->running) {
		vhost_sess_log(s, "%s: ring %d is running", what, q);
		return -EBUSY;
	}
	if (m->req == VHOST_USER_SET_VRING_NUM) {
		if (st.num == 0 || (st.num & (st.num - 1)) || st.num > s->dev->queue_size_max) {
			vhost_sess_log(s, "%s: ring %d: size %u is not a power of two up to %u",
			               what, q, st.num, s->dev->queue_size_max);
			return -EINVAL;
		}
		r->num = st.num;
		r->num_set = true;
	} else { /* SET_VRING_BASE */
		if (st.num > UINT16_MAX) {
			vhost_sess_log(s, "%s: ring %d: base %u", what, q, st.num);
			return -EINVAL;
		}
		r->base = (uint16_t)st.num;
	}
	r->failed = false;
	return 0;
}

static int vhost_set_ring_addr(struct vhost_sess *s, struct vhost_msg *m)
{
	const struct vhost_user_addr *a = &m->p.addr;
	struct vhost_ring *r;
	int q;

	if (m->size != sizeof(*a)) {
		vhost_sess_log(s, "SET_VRING_ADDR: payload of %u bytes", m->size);
		return -EINVAL;
	}
	if ((q = vhost_ring_index(s, "SET_VRING_ADDR", a->index)) < 0)
		return -EINVAL;
	if (a->flags != 0) {
		vhost_sess_log(s,
		               "SET_VRING_ADDR: ring %d: flags 0x%x (dirty logging is not "
		               "offered)",
		               q, a->flags);
		return -EINVAL;
	}
	r = &s->rings[q];
	if (r->running) {
		vhost_sess_log(s, "SET_VRING_ADDR: ring %d is running", q);
		return -EBUSY;
	}
	r->desc_uva = a->desc;
	r->avail_uva = a->avail;
	r->used_uva = a->used;
	r->addr_set = true;
	r->failed = false;
	return 0;
}

static int vhost_get_vring_base(struct vhost_sess *s, struct vhost_msg *m, struct vhost_msg *reply)
{
	int q;

	if (m->size != sizeof(struct vhost_user_state) ||
	    (q = vhost_ring_index(s, "GET_VRING_BASE", m->p.state.index)) < 0)
		return -EINVAL;
	vhost_ring_stop(s, (unsigned)q);
	vhost_close_fd(&s->rings[q].kick_fd);
	if (s->kick_changed)
		s->kick_changed(s->arg, (unsigned)q);
	reply->size = sizeof(struct vhost_user_state);
	reply->p.state = (struct vhost_user_state){.index = (uint32_t)q, .num = s->rings[q].base};
	return 1;
}

static int vhost_get_config(struct vhost_sess *s, struct vhost_msg *m, struct vhost_msg *reply)
{
	const struct vhost_user_config *c = &m->p.cfg;
	uint8_t buf[VIRTIO_CONFIG_MAX] = {0};

	if (m->size < 12 || c->size > VHOST_USER_CONFIG_MAX || m->size != 12 + c->size ||
	    c->offset > VHOST_USER_CONFIG_MAX || c->size > VHOST_USER_CONFIG_MAX - c->offset) {
		vhost_sess_log(s, "GET_CONFIG: offset %u size %u in a payload of %u bytes",
		               c->offset, c->size, m->size);
		return -EINVAL;
	}
	virtio_dev_config_read(s->dev, 0, buf, s->dev->config_len);
	reply->size = m->size;
	reply->p.cfg = (struct vhost_user_config){.offset = c->offset, .size = c->size};
	for (uint32_t i = 0; i < c->size; i++)
		if (c->offset + i < sizeof(buf))
			reply->p.cfg.data[i] = buf[c->offset + i];
	return 1;
}

/* Forget the rings and the features; the memory table stays. */
static void vhost_reset_device(struct vhost_sess *s)
{
	for (unsigned q = 0; q < s->nq; q++) {
		struct vhost_ring *r = &s->rings[q];

		vhost_ring_stop(s, q);
		vhost_close_fd(&r->kick_fd);
		vhost_close_fd(&r->call_fd);
		vhost_close_fd(&r->err_fd);
		*r = (struct vhost_ring){.kick_fd = -1, .call_fd = -1, .err_fd = -1};
		if (s->kick_changed)
			s->kick_changed(s->arg, q);
	}
	virtio_dev_reset(s->dev);
	s->features = 0;
	s->features_set = false;
}

static int vhost_set_features(struct vhost_sess *s, struct vhost_msg *m)
{
	uint64_t offered =
	    virtio_dev_features(s->dev) | VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	uint64_t f = m->p.u64;

	if (m->size != 8 || (f & ~offered) ||
	    virtio_dev_set_features(s->dev, f & ~VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) <
	        0) {
		vhost_sess_log(s,
		               "SET_FEATURES: 0x%llx refused (offered 0x%llx, VERSION_1 "
		               "required)",
		               (unsigned long long)f, (unsigned long long)offered);
		return -EINVAL;
	}
	s->features = f;
	s->features_set = true;
	vhost_update_all(s);
	return 0;
}

/* Messages with an answer of their own; 1 = reply ready, <0 = refused. */
static int vhost_dispatch(struct vhost_sess *s, struct vhost_msg *m, struct vhost_msg *reply)
{
	char nb[32];

	switch (m->req) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_QUEUE_NUM:
		reply->size = 8;
		reply->p.u64 =
		    m->req == VHOST_USER_GET_FEATURES
		        ? virtio_dev_features(s->dev) | VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES)
		    : m->req == VHOST_USER_GET_QUEUE_NUM ? s->nq
		                                         : vhost_sess_protocol_features();
		return 1;
	case VHOST_USER_SET_FEATURES:
		return vhost_set_features(s, m);
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (m->size != 8 || (m->p.u64 & ~vhost_sess_protocol_features())) {
			vhost_sess_log(s, "SET_PROTOCOL_FEATURES: 0x%llx not offered",
			               (unsigned long long)m->p.u64);
			return -EINVAL;
		}
		s->proto = m->p.u64;
		return 0;
	case VHOST_USER_SET_OWNER:
		s->owner = true;
		return 0;
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		vhost_reset_device(s);
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return vhost_set_mem_table(s, m);
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		return vhost_set_ring_state(s, m, vhost_req_name(m->req, nb, sizeof(nb)));
	case VHOST_USER_SET_VRING_ADDR:
		return vhost_set_ring_addr(s, m);
	case VHOST_USER_GET_VRING_BASE:
		return vhost_get_vring_base(s, m, reply);
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return vhost_set_ring_fd(s, m, vhost_req_name(m->req, nb, sizeof(nb)));
	case VHOST_USER_GET_CONFIG:
		return vhost_get_config(s, m, reply);
	default:
		vhost_sess_log(s, "%s is not supported", vhost_req_name(m->req, nb, sizeof(nb)));
		return -ENOTSUP;
	}
}

int vhost_sess_handle(struct vhost_sess *s, struct vhost_msg *m, struct vhost_msg *reply)
{
	bool get = m->req == VHOST_USER_GET_FEATURES ||
	           m->req == VHOST_USER_GET_PROTOCOL_FEATURES ||
	           m->req == VHOST_USER_GET_QUEUE_NUM || m->req == VHOST_USER_GET_VRING_BASE ||
	           m->req == VHOST_USER_GET_CONFIG;
	int r;

	memset(reply, 0, sizeof(*reply));
	reply->req = m->req;
	reply->flags = VHOST_USER_VERSION | VHOST_USER_REPLY;
	if (m->flags & VHOST_USER_REPLY) {
		vhost_sess_log(s, "a reply flag on a request");
		vhost_msg_close_fds(m);
		return -EPROTO;
	}
	r = vhost_dispatch(s, m, reply);
	vhost_msg_close_fds(m); /* whatever the handler did not keep */
	if (get) {
		if (r == 1)
			return 1;
		/* A GET the frontend waits for: answer or the connection
		 * hangs; it cannot be answered, so drop the connection. */
		return -EPROTO;
	}
	if ((m->flags & VHOST_USER_NEED_REPLY) &&
	    (s->proto & VIRTIO_F_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
		reply->size = 8;
		reply->p.u64 = r < 0 ? 1 : 0;
		return 1;
	}
	return 0;
}

void vhost_sess_disconnect(struct vhost_sess *s)
{
	if (!s->dev)
		return;
	vhost_reset_device(s);
	vhost_unmap_all(s);
	s->owner = false;
	s->proto = 0;
	s->nlogged = 0;
}

void vhost_sess_fini(struct vhost_sess *s)
{
	if (!s->dev)
		return;
	vhost_sess_disconnect(s);
	virtio_dev_destroy(s->dev);
	s->dev = NULL;
	free(s->rings);
	s->rings = NULL;
}
