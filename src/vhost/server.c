/*
 * server.c - the vhost-user-blk backend's socket and thread: listen, accept
 * one frontend at a time, and run everything on one epoll thread: the
 * frontend's messages (session.c), the guest's kicks (one eventfd per
 * ring) and the disk backend's completions (one eventfd per queue).
 *
 *   epoll data: STOP (eventfd) | LISTEN | CONN | KICK + q | DONE + q
 *
 * What it owns: the listening socket and the path it created, the
 * connection fd (with a receive timeout so a half-sent message cannot hold
 * the thread), and the thread's lifetime.  What it never does: interpret
 * a message (session.c) or a ring (src/virtio).
 */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define VHOST_EV_STOP       0u
#define VHOST_EV_LISTEN     1u
#define VHOST_EV_CONN       2u
#define VHOST_EV_KICK       0x10000u
#define VHOST_EV_DONE       0x20000u
#define VHOST_MSG_TIMEOUT_S 5

struct vhost_blk_server {
	struct vhost_sess sess;
	char path[108]; /* the socket file we created, or "" */
	int listen_fd, conn_fd, stop_fd, epfd;
	int *kick_watched; /* per ring: the fd in epoll, or -1 */
	bool once, ended;
	void (*disconnected)(void *arg);
	void *arg;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static int vhost_err(char *err, size_t len, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int vhost_err(char *err, size_t len, int e, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return e;
}

static void vhost_epoll(struct vhost_blk_server *s, int op, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

	if (fd >= 0)
		epoll_ctl(s->epfd, op, fd, &ev);
}

/* session hook: ring q's kick fd changed; poll the new one. */
static void vhost_kick_changed(void *arg, unsigned q)
{
	struct vhost_blk_server *s = arg;
	int fd = s->sess.rings[q].kick_fd;

	if (s->kick_watched[q] == fd)
		return;
	if (s->kick_watched[q] >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->kick_watched[q], NULL);
	s->kick_watched[q] = -1;
	if (fd >= 0) {
		vhost_epoll(s, EPOLL_CTL_ADD, fd, VHOST_EV_KICK + q);
		s->kick_watched[q] = fd;
	}
}

static void vhost_conn_end(struct vhost_blk_server *s)
{
	if (s->conn_fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->conn_fd, NULL);
	vhost_sess_disconnect(&s->sess); /* drops the kick fds through the hook */
	close(s->conn_fd);
	s->conn_fd = -1;
	if (s->disconnected)
		s->disconnected(s->arg);
	if (s->once) {
		pthread_mutex_lock(&s->lock);
		s->ended = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		if (s->listen_fd >= 0)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
	} else if (s->listen_fd >= 0) {
		vhost_epoll(s, EPOLL_CTL_ADD, s->listen_fd, VHOST_EV_LISTEN);
	}
}

static void vhost_accept(struct vhost_blk_server *s)
{
	struct timeval tv = {.tv_sec = VHOST_MSG_TIMEOUT_S};
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	s->conn_fd = fd;
	s->sess.nlogged = 0;
	/* One frontend at a time: the next one waits in the backlog. */
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
	vhost_epoll(s, EPOLL_CTL_ADD, fd, VHOST_EV_CONN);
}

static void vhost_conn_readable(struct vhost_blk_server *s)
{
	struct vhost_msg m, reply;
	char nb[32];
	int r = vhost_msg_recv(s->conn_fd, &m);

	if (r == -EPIPE) {
		vhost_conn_end(s);
		return;
	}
	if (r < 0) {
		fprintf(stderr, "zonevm: %s: bad message from the frontend (%s); dropping it\n",
		        s->sess.name, strerror(-r));
		vhost_conn_end(s);
		return;
	}
	r = vhost_sess_handle(&s->sess, &m, &reply);
	if (r == 1)
		r = vhost_msg_send(s->conn_fd, &reply);
	if (r < 0) {
		fprintf(stderr, "zonevm: %s: %s: %s; dropping the frontend\n", s->sess.name,
		        vhost_req_name(m.req, nb, sizeof(nb)), strerror(-r));
		vhost_conn_end(s);
	}
}

static void *vhost_server_thread(void *arg)
{
	struct vhost_blk_server *s = arg;
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(s->epfd, ev, 32, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			uint64_t t = ev[i].data.u64;

			if (t == VHOST_EV_STOP)
				goto out;
			if (t == VHOST_EV_LISTEN && s->conn_fd < 0)
				vhost_accept(s);
			else if (t == VHOST_EV_CONN && s->conn_fd >= 0)
				vhost_conn_readable(s);
			else if (t >= VHOST_EV_DONE)
				vblk_queue_poll(s->sess.dev, (unsigned)(t - VHOST_EV_DONE));
			else if (t >= VHOST_EV_KICK)
				vhost_sess_kick(&s->sess, (unsigned)(t - VHOST_EV_KICK));
		}
	}
out:
	vhost_conn_end(s);
	return NULL;
}

static int vhost_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vhost_err(err, errlen, -ENAMETOOLONG, "socket \"%s\": path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return vhost_err(err, errlen, -EEXIST,
			                 "socket \"%s\": exists and is not a socket", path);
		unlink(path); /* stale */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vhost_err(err, errlen, -errno, "socket \"%s\": %s", path, strerror(errno));
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;

	umask(old);
	if (r < 0 || listen(fd, 4) < 0) {
		e = r < 0 ? e : errno;
		close(fd);
		return vhost_err(err, errlen, -e, "socket \"%s\": %s", path, strerror(e));
	}
	return fd;
}

static void vhost_server_free(struct vhost_blk_server *s)
{
	if (s->sess.dev)
		vhost_sess_fini(&s->sess);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->path[0])
		unlink(s->path);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->epfd >= 0)
		close(s->epfd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->kick_watched);
	free(s);
}

int vhost_blk_server_start(const struct vhost_blk_opts *o, struct vhost_blk_server **out, char *err,
                           size_t errlen)
{
	const char *label = o->socket ? o->socket : "(listening fd)";
	struct vhost_blk_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		o->be->ops->destroy(o->be);
		if (o->listen_fd >= 0)
			close(o->listen_fd);
		return vhost_err(err, errlen, -ENOMEM, "out of memory");
	}
	s->listen_fd = o->listen_fd;
	s->conn_fd = s->stop_fd = s->epfd = -1;
	s->once = o->once;
	s->disconnected = o->disconnected;
	s->arg = o->arg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	r = vhost_sess_init(&s->sess, label, o->be, &o->blk);
	if (r < 0) {
		vhost_server_free(s);
		return vhost_err(err, errlen, r, "vhost-user-blk %s: cannot build the device: %s",
		                 label, strerror(-r));
	}
	s->sess.kick_changed = vhost_kick_changed;
	s->sess.arg = s;
	s->kick_watched = malloc(s->sess.nq * sizeof(int));
	if (!s->kick_watched) {
		vhost_server_free(s);
		return vhost_err(err, errlen, -ENOMEM, "out of memory");
	}
	for (unsigned q = 0; q < s->sess.nq; q++)
		s->kick_watched[q] = -1;
	if (s->listen_fd < 0) {
		if (!o->socket) {
			vhost_server_free(s);
			return vhost_err(err, errlen, -EINVAL, "vhost-user-blk: no socket given");
		}
		r = vhost_listen(o->socket, err, errlen);
		if (r < 0) {
			vhost_server_free(s);
			return r;
		}
		s->listen_fd = r;
		snprintf(s->path, sizeof(s->path), "%s", o->socket);
	}
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->stop_fd < 0 || s->epfd < 0) {
		r = -errno;
		vhost_server_free(s);
		return vhost_err(err, errlen, r, "vhost-user-blk %s: %s", label, strerror(-r));
	}
	vhost_epoll(s, EPOLL_CTL_ADD, s->stop_fd, VHOST_EV_STOP);
	vhost_epoll(s, EPOLL_CTL_ADD, s->listen_fd, VHOST_EV_LISTEN);
	for (unsigned q = 0; q < s->sess.nq; q++)
		vhost_epoll(s, EPOLL_CTL_ADD, vblk_queue_fd(s->sess.dev, q), VHOST_EV_DONE + q);
	/* The thread takes no process signals: they are the caller's. */
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&s->thread, NULL, vhost_server_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		vhost_server_free(s);
		return vhost_err(err, errlen, -r, "vhost-user-blk %s: thread: %s", label,
		                 strerror(r));
	}
	s->thread_started = true;
	*out = s;
	return 0;
}

int vhost_blk_server_wait(struct vhost_blk_server *s, int timeout_ms)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->ended && r == 0)
		r = timeout_ms < 0 ? pthread_cond_wait(&s->cond, &s->lock)
		                   : pthread_cond_timedwait(&s->cond, &s->lock, &until);
	r = s->ended ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void vhost_blk_server_stop(struct vhost_blk_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->thread_started) {
		if (write(s->stop_fd, &one, sizeof(one)) < 0) {
			/* cannot fail on a fresh eventfd */
		}
		pthread_join(s->thread, NULL);
	}
	vhost_server_free(s);
}
