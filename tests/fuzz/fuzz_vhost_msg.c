/*
 * fuzz_vhost_msg.c - libFuzzer target for the vhost-user-blk backend's
 * message handling (src/vhost/session.c) as a hostile frontend drives it:
 * any sequence of requests, with any flags, sizes, payloads and file
 * descriptor counts, plus the guest's side (bytes written into the shared
 * memory, kicks, completion polls), so that rings the fuzzer manages to
 * start run src/virtio's virtio-blk model on an in-memory disk
 * (tests/unit/memdisk.c aborts on a range outside the disk).  The oracle:
 * no crash, no sanitizer report, no leak; -EPROTO (connection dropped)
 * ends the input as a real server would.
 *
 * Input: a sequence of records [op][flags][size le16][nfds] then size
 * payload bytes.  op < 0xf0 is a vhost-user request number; 0xf0 writes
 * the payload into the shared memory at offset (flags << 12); 0xf1 kicks
 * ring flags; 0xf2 polls ring flags' completions.  Descriptors attached
 * are dups of the shared memfd (SET_MEM_TABLE) or fresh eventfds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memdisk.h"
#include "vhost/internal.h"

#define MEM_BYTES (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vhost_sess sess;
	static int memfd = -1;
	static uint8_t *mem;
	struct vhost_msg m, reply;

	if (memfd < 0) {
		struct vblk_config cfg = {.name = "fuzz", .num_queues = 2, .queue_size = 64};

		memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, MEM_BYTES) < 0)
			abort();
		mem = mmap(NULL, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		if (mem == MAP_FAILED ||
		    vhost_sess_init(&sess, "fuzz", memdisk_new(64 * 512, 2, 64), &cfg) < 0)
			abort();
		sess.nlogged = 1000; /* keep the output quiet */
	}
	memset(mem, 0, MEM_BYTES);
	while (size >= 5) {
		uint8_t op = data[0], flags = data[1], nfds = data[4] % (VHOST_USER_MAX_FDS + 1);
		uint32_t len = (uint32_t)(data[2] | data[3] << 8) % (VHOST_USER_PAYLOAD_MAX + 1);

		data += 5;
		size -= 5;
		if (len > size)
			len = (uint32_t)size;
		if (op == 0xf0) {
			size_t off = ((size_t)flags << 12) % MEM_BYTES;

			memcpy(mem + off, data, len < MEM_BYTES - off ? len : MEM_BYTES - off);
		} else if (op == 0xf1) {
			vhost_sess_kick(&sess, flags);
		} else if (op == 0xf2) {
			if (flags < sess.nq)
				vblk_queue_poll(sess.dev, flags);
		} else {
			memset(&m, 0, sizeof(m));
			m.req = op;
			m.flags = VHOST_USER_VERSION | ((uint32_t)flags & ~VHOST_USER_VERSION_MASK);
			m.size = len;
			memcpy(m.p.raw, data, len);
			for (unsigned i = 0; i < nfds; i++)
				m.fds[m.nfds++] = op == VHOST_USER_SET_MEM_TABLE
				                      ? dup(memfd)
				                      : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			int r = vhost_sess_handle(&sess, &m, &reply);

			if (r == 1 && (reply.size > VHOST_USER_PAYLOAD_MAX || reply.nfds))
				abort(); /* a reply that could not go on the wire */
			if (r < 0)
				break; /* the server drops the connection */
		}
		data += len;
		size -= len;
	}
	/* The frontend leaves: everything it set up must go. */
	vhost_sess_disconnect(&sess);
	sess.nlogged = 1000;
	return 0;
}
