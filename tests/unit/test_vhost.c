/*
 * test_vhost.c - vhost-user-blk: the backend's message handling fed
 * hostile messages directly (session.c), message framing on a socket pair
 * (msg.c), and both ends end to end: the server on a temporary file
 * (io_uring), the frontend (client.c) sharing a memfd as guest memory and
 * the fake driver (vguest.c) playing the guest on the rings.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "memdisk.h"
#include "vguest.h"
#include "vhost/internal.h"

#define MEM_SIZE  (4u << 20)
#define DISK_SIZE (1u << 20)

/* ---- a guest whose memory is a memfd ---------------------------------------- */

struct shguest {
	struct vguest g;
	int memfd;
};

static void shguest_init(struct shguest *s)
{
	assert_int_equal(vguest_init(&s->g, MEM_SIZE), 0);
	munmap(s->g.mem, MEM_SIZE);
	s->memfd = memfd_create("test-guest", MFD_CLOEXEC);
	assert_true(s->memfd >= 0);
	assert_int_equal(ftruncate(s->memfd, MEM_SIZE), 0);
	s->g.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
	assert_true(s->g.mem != MAP_FAILED);
	gmem_init(&s->g.gm);
	assert_int_equal(gmem_add(&s->g.gm, VGUEST_BASE, MEM_SIZE, s->g.mem), 0);
}

static void shguest_fini(struct shguest *s)
{
	vguest_fini(&s->g);
	close(s->memfd);
}

static uint64_t uva(struct shguest *s, uint64_t gpa)
{
	return (uint64_t)(uintptr_t)vguest_ptr(&s->g, gpa);
}

/* ---- the session alone, hostile messages ------------------------------------ */

struct fixture {
	struct vhost_sess sess;
	struct shguest sg;
	struct vhost_msg reply;
};

static int sess_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vblk_config cfg = {.name = "t", .num_queues = 2, .queue_size = 256};

	assert_non_null(f);
	assert_int_equal(vhost_sess_init(&f->sess, "test", memdisk_new(DISK_SIZE, 2, 256), &cfg),
	                 0);
	shguest_init(&f->sg);
	*state = f;
	return 0;
}

static int sess_teardown(void **state)
{
	struct fixture *f = *state;

	vhost_sess_fini(&f->sess);
	shguest_fini(&f->sg);
	free(f);
	return 0;
}

static int send_msg(struct fixture *f, uint32_t req, uint32_t flags, const void *p, uint32_t size,
                    const int *fds, unsigned nfds)
{
	struct vhost_msg m = {.req = req, .flags = VHOST_USER_VERSION | flags, .size = size};

	if (size)
		memcpy(m.p.raw, p, size);
	if (nfds)
		memcpy(m.fds, fds, nfds * sizeof(int));
	m.nfds = nfds;
	return vhost_sess_handle(&f->sess, &m, &f->reply);
}

/* With REPLY_ACK negotiated: the status the backend acknowledges with. */
static uint64_t ack(struct fixture *f, uint32_t req, const void *p, uint32_t size, const int *fds,
                    unsigned nfds)
{
	int r = send_msg(f, req, VHOST_USER_NEED_REPLY, p, size, fds, nfds);

	assert_int_equal(r, 1);
	assert_int_equal(f->reply.size, 8);
	assert_int_equal(f->reply.flags, VHOST_USER_VERSION | VHOST_USER_REPLY);
	return f->reply.p.u64;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void negotiate(struct fixture *f)
{
	uint64_t v = vhost_sess_protocol_features();
	uint64_t feat =
	    VIRTIO_F_BIT(VIRTIO_F_VERSION_1) | VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES);

	assert_int_equal(send_msg(f, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &v, 8, NULL, 0), 0);
	assert_int_equal(ack(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	assert_int_equal(ack(f, VHOST_USER_SET_FEATURES, &feat, 8, NULL, 0), 0);
}

static struct vhost_user_mem one_region(struct fixture *f)
{
	struct vhost_user_mem m = {.nregions = 1};

	m.r[0] = (struct vhost_user_region){
	    .gpa = VGUEST_BASE, .size = MEM_SIZE, .uva = uva(&f->sg, VGUEST_BASE)};
	return m;
}

static void test_features(void **state)
{
	struct fixture *f = *state;
	uint64_t bad = VIRTIO_F_BIT(VIRTIO_F_VERSION_1) | VIRTIO_F_BIT(40);
	uint64_t legacy = VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH);
	uint64_t proto = UINT64_C(1) << 20;

	assert_int_equal(send_msg(f, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0), 1);
	assert_true(f->reply.p.u64 & VIRTIO_F_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	assert_true(f->reply.p.u64 & VIRTIO_F_BIT(VIRTIO_BLK_F_MQ));
	assert_int_equal(send_msg(f, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0, NULL, 0), 1);
	assert_int_equal(f->reply.p.u64, 2);
	/* not offered, unknown protocol feature */
	assert_int_equal(send_msg(f, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &proto, 8, NULL, 0), 0);
	assert_int_equal(f->sess.proto, 0);
	negotiate(f);
	assert_int_equal(ack(f, VHOST_USER_SET_FEATURES, &bad, 8, NULL, 0), 1);
	assert_int_equal(ack(f, VHOST_USER_SET_FEATURES, &legacy, 8, NULL, 0), 1);
	/* wrong payload size */
	assert_int_equal(ack(f, VHOST_USER_SET_FEATURES, &legacy, 4, NULL, 0), 1);
	/* unknown request, log requests (no dirty logging offered) */
	assert_int_equal(ack(f, 99, NULL, 0, NULL, 0), 1);
	assert_int_equal(ack(f, VHOST_USER_SET_LOG_BASE, &legacy, 8, NULL, 0), 1);
	/* a REPLY flag on a request drops the connection */
	assert_int_equal(send_msg(f, VHOST_USER_SET_OWNER, VHOST_USER_REPLY, NULL, 0, NULL, 0),
	                 -EPROTO);
	/* a GET that cannot be answered drops it too (the frontend would wait) */
	struct vhost_user_state st = {.index = 7};
	assert_int_equal(send_msg(f, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0),
	                 -EPROTO);
}

static void test_ring_state(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_state st;
	struct vhost_user_addr a = {.index = 0};

	negotiate(f);
	st = (struct vhost_user_state){.index = 2, .num = 128}; /* 2 queues: 0, 1 */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 1);
	st = (struct vhost_user_state){.index = 0, .num = 100}; /* not a power of two */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 1);
	st.num = 2048; /* above the maximum */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 1);
	st.num = 0;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 1);
	st.num = 64;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, 4, NULL, 0), 1); /* short */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 0);
	st.num = 70000;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0), 1);
	st.num = 3;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0), 1);
	a.flags = 1; /* dirty log */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	a.flags = 0;
	a.index = 9;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	a.index = 0;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, 32, NULL, 0), 1);
}

static void test_mem_table(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_mem m = one_region(f);
	int fd = f->sg.memfd, fds[2], small;

	negotiate(f);
	/* fd count differs from the region count; the fds are closed */
	fds[0] = dup(fd);
	fds[1] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, fds, 2), 1);
	assert_false(fd_open(fds[0]));
	assert_false(fd_open(fds[1]));
	/* payload size does not match nregions */
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 64, fds, 1), 1);
	m.nregions = 9;
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, fds, 1), 1);
	/* zero size, wrapping ranges */
	m = one_region(f);
	m.r[0].size = 0;
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, fds, 1), 1);
	m = one_region(f);
	m.r[0].mmap_offset = UINT64_MAX - 10;
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, fds, 1), 1);
	/* a file shorter than the region (it would SIGBUS us) */
	small = memfd_create("small", MFD_CLOEXEC);
	assert_int_equal(ftruncate(small, 4096), 0);
	m = one_region(f);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &small, 1), 1);
	/* overlapping regions, in guest or frontend address space */
	m = one_region(f);
	m.nregions = 2;
	m.r[1] = m.r[0];
	m.r[1].uva += MEM_SIZE;
	fds[0] = dup(fd);
	fds[1] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 64, fds, 2), 1);
	m.r[1] = m.r[0];
	m.r[1].gpa += 2 * MEM_SIZE;
	m.r[1].uva += 4096;
	fds[0] = dup(fd);
	fds[1] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 64, fds, 2), 1);
	assert_int_equal(f->sess.nmaps, 0);
	/* and a good one */
	m = one_region(f);
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, fds, 1), 0);
	assert_int_equal(f->sess.nmaps, 1);
	assert_false(fd_open(fds[0])); /* the mapping keeps the memory, not the fd */
	/* an fd on a message that takes none is closed, not kept */
	fds[0] = dup(fd);
	assert_int_equal(ack(f, VHOST_USER_SET_OWNER, NULL, 0, fds, 1), 0);
	assert_false(fd_open(fds[0]));
}

static void test_ring_fds_and_start(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_mem m = one_region(f);
	struct vguest_ring ring;
	struct vhost_user_state st = {.index = 0, .num = 64};
	struct vhost_user_addr a = {.index = 0};
	uint64_t v;
	int fd = dup(f->sg.memfd), kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), two[2];

	negotiate(f);
	assert_int_equal(ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &fd, 1), 0);
	vguest_ring_init(&f->sg.g, &ring, 64);
	a.desc = uva(&f->sg, ring.desc_gpa);
	a.avail = uva(&f->sg, ring.avail_gpa);
	a.used = MEM_SIZE * 8ull; /* nowhere near the table */
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 0);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	/* kick: no fd (polling) refused; bits beyond the index refused; NOFD
	 * with an fd refused */
	v = 0 | VHOST_USER_VRING_NOFD;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0), 1);
	v = 0x200;
	two[0] = dup(kick);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_KICK, &v, 8, two, 1), 1);
	v = VHOST_USER_VRING_NOFD;
	two[0] = dup(kick);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_CALL, &v, 8, two, 1), 1);
	assert_false(fd_open(two[0]));
	v = 5;
	two[0] = dup(kick);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ERR, &v, 8, two, 1), 1);
	/* a good kick, but the used ring is outside the memory table: the
	 * ring does not start */
	v = 0;
	two[0] = dup(kick);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_KICK, &v, 8, two, 1), 0);
	st.num = 1;
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0), 0);
	assert_false(f->sess.rings[0].running);
	/* fix the address: a new ADDR and KICK start it */
	a.used = uva(&f->sg, ring.used_gpa);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	two[0] = dup(kick);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_KICK, &v, 8, two, 1), 0);
	assert_true(f->sess.rings[0].running);
	/* while running, the ring's layout cannot change */
	st = (struct vhost_user_state){.index = 0, .num = 128};
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 1);
	assert_int_equal(ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1);
	/* GET_VRING_BASE stops it */
	st.num = 0;
	assert_int_equal(send_msg(f, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0), 1);
	assert_int_equal(f->reply.p.state.num, 0);
	assert_false(f->sess.rings[0].running);
	/* GET_CONFIG: bounds, then a good read of the capacity */
	struct vhost_user_config c = {.offset = 250, .size = 10};
	assert_int_equal(send_msg(f, VHOST_USER_GET_CONFIG, 0, &c, 22, NULL, 0), -EPROTO);
	c = (struct vhost_user_config){.offset = 0, .size = 300};
	assert_int_equal(send_msg(f, VHOST_USER_GET_CONFIG, 0, &c, 12, NULL, 0), -EPROTO);
	c = (struct vhost_user_config){.offset = 0, .size = 8};
	assert_int_equal(send_msg(f, VHOST_USER_GET_CONFIG, 0, &c, 12 + 8, NULL, 0), 1);
	memcpy(&v, f->reply.p.cfg.data, 8);
	assert_int_equal(le64toh(v), DISK_SIZE / 512);
	close(kick);
}

/* ---- framing on a socket -------------------------------------------------- */

static void test_framing(void **state)
{
	int sv[2], efd = eventfd(0, EFD_CLOEXEC);
	struct vhost_msg m = {.req = VHOST_USER_SET_VRING_CALL,
	                      .flags = VHOST_USER_VERSION,
	                      .size = 8,
	                      .p.u64 = 1},
	                 in;
	uint32_t hdr[3];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	m.fds[0] = efd;
	m.nfds = 1;
	assert_int_equal(vhost_msg_send(sv[0], &m), 0);
	assert_int_equal(vhost_msg_recv(sv[1], &in), 0);
	assert_int_equal(in.req, m.req);
	assert_int_equal(in.p.u64, 1);
	assert_int_equal(in.nfds, 1);
	vhost_msg_close_fds(&in);
	/* bad version */
	hdr[0] = 1;
	hdr[1] = 2;
	hdr[2] = 0;
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(vhost_msg_recv(sv[1], &in), -EPROTO);
	/* payload over the cap */
	hdr[1] = VHOST_USER_VERSION;
	hdr[2] = 100000;
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(vhost_msg_recv(sv[1], &in), -EPROTO);
	/* a payload cut short by EOF */
	hdr[2] = 8;
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(sv[0], hdr, 4), 4);
	close(sv[0]);
	assert_int_equal(vhost_msg_recv(sv[1], &in), -EPROTO);
	assert_int_equal(vhost_msg_recv(sv[1], &in), -EPIPE);
	close(sv[1]);
	close(efd);
}

/* ---- both ends on a real file ------------------------------------------------ */

struct blkreq {
	uint32_t type, ioprio;
	uint64_t sector;
};

static bool wait_fd(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint64_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &n, sizeof(n)) == sizeof(n);
}

/* One request of type T at SECTOR with LEN data bytes at DATA; status. */
static int do_req(struct shguest *sg, struct vguest_ring *r, int kick, int call, uint32_t t,
                  uint64_t sector, uint64_t data, uint32_t len)
{
	uint64_t hdr = vguest_alloc(&sg->g, 16, 16), st = vguest_alloc(&sg->g, 1, 1);
	struct blkreq *h = vguest_ptr(&sg->g, hdr);
	struct vguest_buf b[3] = {{hdr, 16, false}, {data, len, t == 0}, {st, 1, true}};
	uint64_t one = 1;
	uint32_t id, ulen;

	*(uint8_t *)vguest_ptr(&sg->g, st) = 0xff;
	h->type = htole32(t);
	h->sector = htole64(sector);
	vguest_add_chain(&sg->g, r, b, 3, false);
	assert_int_equal(write(kick, &one, 8), 8);
	assert_true(wait_fd(call, 5000));
	assert_true(vguest_get_used(r, &id, &ulen));
	return *(uint8_t *)vguest_ptr(&sg->g, st);
}

static void test_end_to_end(void **state)
{
	char dir[] = "/tmp/zvm-vhost-XXXXXX", sock[128], file[128], err[256];
	struct vhost_blk_opts o = {.listen_fd = -1, .blk = {.name = "disk", .queue_size = 256}};
	struct vhost_blk_server *srv;
	struct vhost_front *fr;
	struct shguest sg;
	struct vguest_ring ring;
	struct vblk_backend *be;
	struct vhost_front_region reg;
	struct vhost_front_ring fring;
	uint8_t cfg[60], buf[4096];
	uint64_t feat, cap, data;
	unsigned nq;
	uint16_t base;
	int fd, kick, call;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/s", dir);
	snprintf(file, sizeof(file), "%s/disk", dir);
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 8192), sizeof(buf));
	assert_int_equal(ftruncate(fd, DISK_SIZE), 0);
	assert_int_equal(vblk_file_open(fd, file, 1, 256, &be), 0);
	o.socket = sock;
	o.be = be;
	o.once = true;
	assert_int_equal(vhost_blk_server_start(&o, &srv, err, sizeof(err)), 0);

	shguest_init(&sg);
	reg = (struct vhost_front_region){
	    .gpa = VGUEST_BASE, .size = MEM_SIZE, .host = sg.g.mem, .fd = sg.memfd};
	assert_int_equal(vhost_front_connect(sock, &reg, 1, &feat, &nq, &fr, err, sizeof(err)), 0);
	assert_int_equal(nq, 1);
	assert_true(feat & VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH));
	assert_int_equal(vhost_front_get_config(fr, cfg, sizeof(cfg)), 0);
	memcpy(&cap, cfg, 8);
	assert_int_equal(le64toh(cap), DISK_SIZE / 512);
	assert_int_equal(vhost_front_set_features(fr, VIRTIO_F_BIT(VIRTIO_F_VERSION_1) |
	                                                  VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH)),
	                 0);
	vguest_ring_init(&sg.g, &ring, 64);
	kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fring = (struct vhost_front_ring){
	    .size = 64, .desc = ring.desc, .avail = ring.avail, .used = ring.used};
	assert_int_equal(vhost_front_start(fr, 0, &fring, kick, call), 0);
	/* read what the host wrote */
	data = vguest_alloc(&sg.g, 4096, 4096);
	assert_int_equal(do_req(&sg, &ring, kick, call, 0, 16, data, 4096), 0);
	assert_memory_equal(vguest_ptr(&sg.g, data), buf, 4096);
	/* write a pattern, flush; it is in the file */
	memset(vguest_ptr(&sg.g, data), 0x5a, 4096);
	assert_int_equal(do_req(&sg, &ring, kick, call, 1, 32, data, 4096), 0);
	assert_int_equal(do_req(&sg, &ring, kick, call, 4, 0, data, 0), 0);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, buf, 4096, 32 * 512), 4096);
	close(fd);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0x5a);
	/* out of range: IOERR from the same device model as the VMM's */
	assert_int_equal(do_req(&sg, &ring, kick, call, 0, DISK_SIZE / 512, data, 512), 1);
	/* stop: the base is where the guest is; restart there and go on */
	assert_int_equal(vhost_front_stop(fr, 0, &base), 0);
	assert_int_equal(base, 4);
	fring.base = base;
	assert_int_equal(vhost_front_start(fr, 0, &fring, kick, call), 0);
	assert_int_equal(do_req(&sg, &ring, kick, call, 0, 16, data, 4096), 0);
	assert_int_equal(vhost_front_reset(fr), 0);
	vhost_front_close(fr);
	assert_int_equal(vhost_blk_server_wait(srv, 5000), 0);
	vhost_blk_server_stop(srv);
	assert_int_equal(access(sock, F_OK), -1);
	close(kick);
	close(call);
	shguest_fini(&sg);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_features, sess_setup, sess_teardown),
	    cmocka_unit_test_setup_teardown(test_ring_state, sess_setup, sess_teardown),
	    cmocka_unit_test_setup_teardown(test_mem_table, sess_setup, sess_teardown),
	    cmocka_unit_test_setup_teardown(test_ring_fds_and_start, sess_setup, sess_teardown),
	    cmocka_unit_test(test_framing),
	    cmocka_unit_test(test_end_to_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
