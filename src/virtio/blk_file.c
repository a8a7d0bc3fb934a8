/*
 * blk_file.c - virtio-blk backend on a raw file or block device, with
 * io_uring (liburing).
 *
 * What it owns: one io_uring and one eventfd per device queue, so that each
 * queue submits and completes without locks and the event loop learns of
 * completions by polling the eventfd (registered with the ring: the kernel
 * signals it for every completion).  What it never does: open a path (the
 * VMM opens the file before it enters its sandbox and hands us the fd),
 * parse a request (blk.c does), or report success for an operation the
 * host did not complete.
 *
 *   READ/WRITE    readv/writev at the byte offset; a short transfer is
 *                 resumed where it stopped; RWF_DSYNC on a write when the
 *                 driver did not negotiate FLUSH (write-through)
 *   FLUSH         fsync with IORING_FSYNC_DATASYNC (fdatasync)
 *   DISCARD       fallocate(PUNCH_HOLE | KEEP_SIZE): the file's blocks are
 *                 freed, reads return zeroes
 *   WRITE_ZEROES  fallocate(ZERO_RANGE | KEEP_SIZE), or PUNCH_HOLE when the
 *                 driver allows unmapping or the file system has no
 *                 ZERO_RANGE (both read back as zeroes)
 *
 * Direct I/O: when the caller opened the file with O_DIRECT (`--disk
 * ...,cache=none`, the default), READ and WRITE bypass the host page cache
 * as QEMU's cache=none does, and a twin descriptor without O_DIRECT is
 * opened here (through /proc/self/fd, before any sandbox) for the requests
 * the kernel refuses to do directly: a guest buffer or offset that is not
 * aligned for the host device completes with EINVAL and is retried once,
 * whole, on the twin.  Flushes still go to the file, so a FLUSH covers both.
 *
 * Any other negative result reaches blk.c as io->result and becomes
 * VIRTIO_BLK_S_IOERR.  Capacity is the file size, or BLKGETSIZE64 for a
 * block device; a size that is not a multiple of 512 is refused with a
 * message naming the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define VBLK_FILE_PUNCHED  1u /* be_flags: WRITE_ZEROES retried as a punch */
#define VBLK_FILE_BUFFERED 2u /* be_flags: READ/WRITE retried without O_DIRECT */

struct vblk_file_queue {
	struct io_uring ring;
	bool ring_ok;
	int efd;
	bool queued; /* SQEs prepared but not yet submitted */
};

struct vblk_file {
	struct vblk_backend be; /* first: blk.c hands it back */
	int fd;
	int buffered_fd; /* the twin without O_DIRECT, or -1 (fd is buffered) */
	char name[128];
	struct vblk_file_queue *q;
};

static struct vblk_file *vblk_file_of(struct vblk_backend *be)
{
	return (struct vblk_file *)be;
}

static void vblk_file_prep(struct vblk_file *f, struct io_uring_sqe *sqe, struct vblk_io *io)
{
	int rwfd = io->be_flags & VBLK_FILE_BUFFERED ? f->buffered_fd : f->fd;
	int mode;

	switch (io->op) {
	case VBLK_OP_READ:
		io_uring_prep_readv(sqe, rwfd, io->iov, io->iovcnt, io->offset + io->done);
		break;
	case VBLK_OP_WRITE:
		io_uring_prep_writev(sqe, rwfd, io->iov, io->iovcnt, io->offset + io->done);
		if (io->dsync)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case VBLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case VBLK_OP_DISCARD:
		io_uring_prep_fallocate(sqe, f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		                        io->offset, io->len);
		break;
	case VBLK_OP_WRITE_ZEROES:
		mode = io->unmap || (io->be_flags & VBLK_FILE_PUNCHED) ? FALLOC_FL_PUNCH_HOLE
		                                                       : FALLOC_FL_ZERO_RANGE;
		io_uring_prep_fallocate(sqe, f->fd, mode | FALLOC_FL_KEEP_SIZE, io->offset,
		                        io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
}

static int vblk_file_queue_io(struct vblk_file *f, struct vblk_file_queue *fq, struct vblk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fq->ring);

	if (sqe == NULL) {
		/* The SQ is full of prepared entries: hand them over first. */
		io_uring_submit(&fq->ring);
		sqe = io_uring_get_sqe(&fq->ring);
		if (sqe == NULL)
			return -EBUSY;
	}
	vblk_file_prep(f, sqe, io);
	fq->queued = true;
	return 0;
}

static int vblk_file_submit(struct vblk_backend *be, unsigned q, struct vblk_io *io)
{
	struct vblk_file *f = vblk_file_of(be);

	io->done = 0;
	io->be_flags = 0;
	io->result = 0;
	return vblk_file_queue_io(f, &f->q[q], io);
}

static void vblk_file_commit(struct vblk_backend *be, unsigned q)
{
	struct vblk_file *f = vblk_file_of(be);
	struct vblk_file_queue *fq = &f->q[q];
	int r;

	if (!fq->queued)
		return;
	r = io_uring_submit(&fq->ring);
	if (r < 0)
		virtio_log("disk \"%s\": io_uring submit failed: %s (will retry)", f->name,
		           strerror(-r));
	else
		fq->queued = false;
}

/* Skip n transferred bytes in a READ/WRITE's iovec array. */
static void vblk_file_advance(struct vblk_io *io, uint64_t n)
{
	while (io->iovcnt > 0 && n >= io->iov->iov_len) {
		n -= io->iov->iov_len;
		io->iov++;
		io->iovcnt--;
	}
	if (io->iovcnt > 0) {
		io->iov->iov_base = (uint8_t *)io->iov->iov_base + n;
		io->iov->iov_len -= n;
	}
}

/* Account one completion; false if the io went back to the ring. */
static bool vblk_file_finish(struct vblk_file *f, struct vblk_file_queue *fq, struct vblk_io *io,
                             int res)
{
	bool resubmit = false;

	if (res == -EAGAIN || res == -EINTR) {
		resubmit = true;
	} else if (io->op == VBLK_OP_READ || io->op == VBLK_OP_WRITE) {
		if (res == -EINVAL && f->buffered_fd >= 0 && !(io->be_flags & VBLK_FILE_BUFFERED)) {
			/* Not aligned for direct I/O: once more through the page
			 * cache, from where the direct part stopped. */
			io->be_flags |= VBLK_FILE_BUFFERED;
			resubmit = true;
		} else if (res < 0) {
			io->result = res;
		} else if (res == 0) {
			io->result = -EIO; /* no progress: the file shrank under us */
		} else {
			io->done += (uint64_t)res;
			if (io->done < io->len) {
				vblk_file_advance(io, (uint64_t)res);
				resubmit = true;
			}
		}
	} else if (io->op == VBLK_OP_WRITE_ZEROES && res == -EOPNOTSUPP &&
	           !(io->be_flags & VBLK_FILE_PUNCHED) && !io->unmap) {
		/* No ZERO_RANGE here (tmpfs, some block devices): a punched
		 * hole reads back as zeroes too. */
		io->be_flags |= VBLK_FILE_PUNCHED;
		resubmit = true;
	} else {
		io->result = res < 0 ? res : 0;
	}
	if (resubmit && vblk_file_queue_io(f, fq, io) < 0) {
		io->result = -EBUSY;
		resubmit = false;
	}
	return !resubmit;
}

static unsigned vblk_file_reap(struct vblk_backend *be, unsigned q, struct vblk_io **done,
                               unsigned max)
{
	struct vblk_file *f = vblk_file_of(be);
	struct vblk_file_queue *fq = &f->q[q];
	struct io_uring_cqe *cqe;
	uint64_t ticks;
	unsigned n = 0;

	/* Clear the eventfd before looking: a completion that lands after
	 * the peek below signals it again, so none is missed. */
	if (read(fq->efd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		virtio_log("disk \"%s\": eventfd read: %s", f->name, strerror(errno));
	while (n < max && io_uring_peek_cqe(&fq->ring, &cqe) == 0) {
		struct vblk_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&fq->ring, cqe);
		if (vblk_file_finish(f, fq, io, res))
			done[n++] = io;
	}
	vblk_file_commit(be, q);
	return n;
}

static int vblk_file_wait(struct vblk_backend *be, unsigned q)
{
	struct vblk_file *f = vblk_file_of(be);
	struct io_uring_cqe *cqe;

	vblk_file_commit(be, q);
	return io_uring_wait_cqe(&f->q[q].ring, &cqe);
}

static int vblk_file_queue_fd(struct vblk_backend *be, unsigned q)
{
	return vblk_file_of(be)->q[q].efd;
}

static void vblk_file_free(struct vblk_file *f)
{
	for (unsigned i = 0; i < f->be.nr_queues; i++) {
		if (f->q[i].ring_ok)
			io_uring_queue_exit(&f->q[i].ring);
		if (f->q[i].efd >= 0)
			close(f->q[i].efd);
	}
	if (f->buffered_fd >= 0)
		close(f->buffered_fd);
	free(f->q);
	free(f);
}

static void vblk_file_destroy(struct vblk_backend *be)
{
	struct vblk_file *f = vblk_file_of(be);

	close(f->fd);
	vblk_file_free(f);
}

static const struct vblk_backend_ops vblk_file_ops = {
    .name = "file",
    .queue_fd = vblk_file_queue_fd,
    .submit = vblk_file_submit,
    .commit = vblk_file_commit,
    .reap = vblk_file_reap,
    .wait = vblk_file_wait,
    .destroy = vblk_file_destroy,
};

static int vblk_file_size(int fd, const char *name, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		virtio_log("disk \"%s\": fstat: %s", name, strerror(errno));
		return -errno;
	}
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			virtio_log("disk \"%s\": BLKGETSIZE64: %s", name, strerror(errno));
			return -errno;
		}
	} else {
		virtio_log("disk \"%s\": not a regular file or a block device", name);
		return -EINVAL;
	}
	if (*size % 512 != 0) {
		virtio_log("disk \"%s\": size %llu bytes is not a multiple of 512 (pad the file, "
		           "e.g. truncate -s %llu)",
		           name, (unsigned long long)*size,
		           (unsigned long long)((*size + 511) / 512 * 512));
		return -EINVAL;
	}
	return 0;
}

int vblk_file_open(int fd, const char *name, unsigned nr_queues, unsigned depth,
                   struct vblk_backend **out)
{
	struct vblk_file *f;
	uint64_t size;
	int r;

	if (nr_queues == 0 || nr_queues > 256 || depth == 0 || depth > 32768) {
		virtio_log("disk \"%s\": bad queue count %u or depth %u", name, nr_queues, depth);
		return -EINVAL;
	}
	r = vblk_file_size(fd, name, &size);
	if (r < 0)
		return r;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->q = calloc(nr_queues, sizeof(*f->q));
	if (f->q == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->be = (struct vblk_backend){
	    .ops = &vblk_file_ops,
	    .size = size,
	    .nr_queues = nr_queues,
	    .depth = depth,
	};
	f->fd = fd;
	f->buffered_fd = -1;
	snprintf(f->name, sizeof(f->name), "%s", name);
	for (unsigned i = 0; i < nr_queues; i++)
		f->q[i].efd = -1;
	r = fcntl(fd, F_GETFL);
	if (r >= 0 && (r & O_DIRECT)) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		f->buffered_fd = open(path, (r & O_ACCMODE) | O_CLOEXEC);
		if (f->buffered_fd < 0) {
			r = -errno;
			virtio_log("disk \"%s\": cannot reopen it without O_DIRECT for unaligned "
			           "requests: %s",
			           name, strerror(errno));
			goto fail;
		}
	}
	for (unsigned i = 0; i < nr_queues; i++) {
		struct vblk_file_queue *fq = &f->q[i];

		r = io_uring_queue_init(depth, &fq->ring, 0);
		if (r < 0) {
			virtio_log("disk \"%s\": io_uring with %u entries: %s", name, depth,
			           strerror(-r));
			goto fail;
		}
		fq->ring_ok = true;
		fq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fq->efd < 0) {
			r = -errno;
			virtio_log("disk \"%s\": eventfd: %s", name, strerror(errno));
			goto fail;
		}
		r = io_uring_register_eventfd(&fq->ring, fq->efd);
		if (r < 0) {
			virtio_log("disk \"%s\": io_uring eventfd: %s", name, strerror(-r));
			goto fail;
		}
	}
	*out = &f->be;
	return 0;
fail:
	vblk_file_free(f); /* the fd stays the caller's */
	return r;
}
