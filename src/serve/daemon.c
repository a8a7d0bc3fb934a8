/*
 * daemon.c - `zonevm pool serve NAME`: the one process that owns a pool
 * while guests run from it.
 *
 * What it owns: the control socket ROOT/run/NAME.sock (mode 0600), one
 * thread per control connection, the periodic commit (every
 * SERVE_COMMIT_SECS when something was written), SIGTERM/SIGINT handling
 * and the final commit, and the systemd notifications.  The pool lock
 * (pool_open's) was taken by the caller, so a stale socket left by a
 * daemon that died can be replaced safely.  What it never does: run a
 * command itself (the CLI's hook does) or leave the pool open after it
 * returns.
 *
 *   main thread: poll(listen socket, signalfd, timerfd)
 *     accept   -> client thread: one request (RUN / VHOST), one reply
 *     timer    -> serve_pool_commit
 *     signal   -> stop accepting, hang up every client (their `vol serve`
 *                 exports end), wait for them, final commit, return
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pool/pool.h"

#define SERVE_COMMIT_SECS 5
#define SERVE_MAX_CLIENTS 256
#define SERVE_MAX_ARGS    128

struct serve_client {
	struct serve_daemon *d;
	int fd;
	bool used;
};

/* A volume exported over vhost-user-blk for one frontend (a VMM). */
struct serve_vx {
	struct serve_daemon *d;
	struct serve_vhost *v; /* NULL while starting */
	bool gone;             /* its frontend left: stop it */
	pid_t pid;             /* who asked; its death ends an export never used */
	unsigned seq;          /* N of ROOT/run/POOL.N.vhost */
	struct serve_vx *next;
};

struct serve_daemon {
	const char *root, *name;
	struct serve_pool *sp;
	const struct serve_hooks *hooks;
	pthread_mutex_t m;
	pthread_cond_t idle;
	unsigned nclients;
	bool stopping;
	struct serve_vx *vxs;
	unsigned vx_seq;
	int vx_efd; /* a vhost export's frontend left */
	struct serve_client clients[SERVE_MAX_CLIENTS];
};

/* systemd's notification protocol: one datagram to $NOTIFY_SOCKET. */
static void serve_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		serve_log("cannot notify systemd: %s", strerror(errno));
	close(fd);
}

/* Who is at the other end of FD: "pid N (COMM)"; returns N (0: unknown). */
static pid_t serve_peer_name(int fd, char *buf, size_t len)
{
	struct ucred uc;
	socklen_t l = sizeof(uc);
	char path[64], comm[64] = "?";
	int cf;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0) {
		snprintf(buf, len, "an unknown process");
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)uc.pid);
	cf = open(path, O_RDONLY | O_CLOEXEC);
	if (cf >= 0) {
		ssize_t n = read(cf, comm, sizeof(comm) - 1);
		comm[n > 0 ? n : 0] = 0;
		comm[strcspn(comm, "\n")] = 0;
		close(cf);
	}
	snprintf(buf, len, "pid %d (%s)", (int)uc.pid, comm);
	return uc.pid;
}

static void serve_do_run(struct serve_client *c, char *payload, size_t len, int *fds, unsigned nfds)
{
	char *argv[SERVE_MAX_ARGS + 1];
	int argc = serve_ctl_split_argv(payload, len, argv, SERVE_MAX_ARGS);
	int st;

	if (nfds != 4 || argc < 1) {
		serve_log("control: a RUN request with %u descriptors and %d arguments refused",
		          nfds, argc);
		serve_ctl_reply(c->fd, 2, "bad request");
		return;
	}
	st = c->d->hooks->run(c->d->hooks->arg, argc, argv, fds, fds[3], c->fd);
	serve_ctl_reply(c->fd, st, "");
}

/* On the vhost server's thread: its one frontend left. */
static void serve_vx_gone(void *arg)
{
	struct serve_vx *vx = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&vx->d->m);
	vx->gone = true;
	pthread_mutex_unlock(&vx->d->m);
	if (write(vx->d->vx_efd, &one, sizeof(one)) < 0)
		serve_log("eventfd write: %s", strerror(errno));
}

static void serve_vx_reap(struct serve_daemon *d, bool all);

/*
 * An export whose asker died before its frontend came (a VMM killed while
 * it started) would hold its volume forever: mark it gone.  One that was
 * used ends through serve_vx_gone when the frontend's connection closes.
 */
static void serve_vx_orphans(struct serve_daemon *d)
{
	bool any = false;

	pthread_mutex_lock(&d->m);
	for (struct serve_vx *vx = d->vxs; vx; vx = vx->next) {
		if (vx->v && !vx->gone && vx->pid > 0 && kill(vx->pid, 0) < 0 && errno == ESRCH) {
			serve_log("export %u: pid %d is gone; stopping it", vx->seq, (int)vx->pid);
			vx->gone = any = true;
		}
	}
	pthread_mutex_unlock(&d->m);
	if (any)
		serve_vx_reap(d, false);
}

/* Stop the exports whose frontend left (ALL: every one, at shutdown). */
static void serve_vx_reap(struct serve_daemon *d, bool all)
{
	for (;;) {
		struct serve_vx *vx = NULL;
		pthread_mutex_lock(&d->m);
		for (struct serve_vx **pp = &d->vxs; *pp; pp = &(*pp)->next) {
			if ((*pp)->v && ((*pp)->gone || all)) {
				vx = *pp;
				*pp = vx->next;
				break;
			}
		}
		pthread_mutex_unlock(&d->m);
		if (!vx)
			return;
		serve_vhost_stop(vx->v);
		free(vx);
	}
}

static void serve_do_vhost(struct serve_client *c, char *payload, size_t len)
{
	struct serve_daemon *d = c->d;
	char holder[128], sock[PATH_MAX], err[512];
	const char *vol = payload + 1;
	struct serve_vx *vx;
	int r;

	if (len < 3 || payload[len - 1] != 0 || strlen(vol) != len - 2 || payload[0] > 1 ||
	    pool_name_check(vol, strchr(vol, '@') != NULL)) {
		serve_ctl_reply(c->fd, -EINVAL, "bad vhost-user export request");
		return;
	}
	pid_t pid = serve_peer_name(c->fd, holder, sizeof(holder));
	vx = calloc(1, sizeof(*vx));
	if (!vx) {
		serve_ctl_reply(c->fd, -ENOMEM, "out of memory");
		return;
	}
	vx->d = d;
	vx->pid = pid;
	pthread_mutex_lock(&d->m);
	vx->seq = ++d->vx_seq;
	snprintf(sock, sizeof(sock), "%s/run/%s.%u.vhost", d->root, d->name, vx->seq);
	vx->next = d->vxs;
	d->vxs = vx;
	pthread_mutex_unlock(&d->m);
	struct serve_vhost *v = NULL;
	r = serve_vhost_start(d->sp, vol, payload[0], holder, sock, true, serve_vx_gone, vx, &v,
	                      err, sizeof(err));
	pthread_mutex_lock(&d->m);
	vx->v = v; /* now the reaper may stop it */
	pthread_mutex_unlock(&d->m);
	if (r) {
		pthread_mutex_lock(&d->m);
		for (struct serve_vx **pp = &d->vxs; *pp; pp = &(*pp)->next) {
			if (*pp == vx) {
				*pp = vx->next;
				break;
			}
		}
		pthread_mutex_unlock(&d->m);
		free(vx);
		serve_ctl_reply(c->fd, r, err);
		return;
	}
	serve_log("%s/%s exported over vhost-user on %s for %s", d->name, vol, sock, holder);
	serve_ctl_reply(c->fd, 0, sock);
}

static void *serve_client_main(void *arg)
{
	struct serve_client *c = arg;
	struct serve_daemon *d = c->d;
	char payload[SERVE_CTL_MAX];
	int fds[SERVE_CTL_FDS];
	unsigned nfds = SERVE_CTL_FDS;
	uint32_t type;
	size_t len;
	int r = serve_ctl_recv(c->fd, &type, payload, &len, fds, &nfds);

	if (r == 0 && type == SERVE_CTL_RUN)
		serve_do_run(c, payload, len, fds, nfds);
	else if (r == 0 && type == SERVE_CTL_VHOST && nfds == 0)
		serve_do_vhost(c, payload, len);
	else if (r != -EPIPE)
		serve_log("control: bad request (%s)", r ? strerror(-r) : "unknown type");
	if (r == 0)
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
	pthread_mutex_lock(&d->m);
	close(c->fd);
	c->used = false;
	d->nclients--;
	pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->m);
	return NULL;
}

static void serve_accept(struct serve_daemon *d, int lfd)
{
	struct serve_client *c = NULL;
	pthread_attr_t at;
	pthread_t t;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	pthread_mutex_lock(&d->m);
	for (unsigned i = 0; i < SERVE_MAX_CLIENTS && !c; i++)
		if (!d->clients[i].used)
			c = &d->clients[i];
	if (c) {
		c->used = true;
		c->fd = fd;
		c->d = d;
		d->nclients++;
	}
	pthread_mutex_unlock(&d->m);
	if (!c) {
		serve_log("control: %d clients already, one refused", SERVE_MAX_CLIENTS);
		close(fd);
		return;
	}
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, serve_client_main, c)) {
		pthread_mutex_lock(&d->m);
		close(fd);
		c->used = false;
		d->nclients--;
		pthread_mutex_unlock(&d->m);
	}
	pthread_attr_destroy(&at);
}

static int serve_make_socket(const char *root, const char *name, char *path, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s/run", root);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		serve_log("cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	serve_sock_path(root, name, path, len);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		serve_log("socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path); /* a dead daemon's: we hold the pool's lock */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		serve_log("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

int serve_signalfd(void)
{
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	/* Blocked before any thread starts, so that every thread inherits it. */
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void serve_shutdown_clients(struct serve_daemon *d)
{
	struct timespec until;

	pthread_mutex_lock(&d->m);
	d->stopping = true;
	for (unsigned i = 0; i < SERVE_MAX_CLIENTS; i++)
		if (d->clients[i].used)
			shutdown(d->clients[i].fd, SHUT_RD); /* their stop_fd fires */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	while (d->nclients && pthread_cond_timedwait(&d->idle, &d->m, &until) != ETIMEDOUT)
		;
	if (d->nclients)
		serve_log("%u commands still running after 30 s; closing the pool anyway",
		          d->nclients);
	pthread_mutex_unlock(&d->m);
}

int serve_daemon(const char *root, const char *name, struct serve_pool *sp,
                 const struct serve_hooks *hooks)
{
	struct serve_daemon *d = calloc(1, sizeof(*d));
	struct itimerspec it = {.it_interval = {SERVE_COMMIT_SECS, 0},
	                        .it_value = {SERVE_COMMIT_SECS, 0}};
	char path[PATH_MAX];
	int lfd = -1, sfd = -1, tfd = -1, r = 0;

	if (!d)
		return -ENOMEM;
	d->vx_efd = -1;
	d->root = root;
	d->name = name;
	d->sp = sp;
	d->hooks = hooks;
	pthread_mutex_init(&d->m, NULL);
	pthread_cond_init(&d->idle, NULL);
	/* Our log stays on the daemon's stderr while commands borrow fd 2. */
	serve_log_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	sfd = serve_signalfd();
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d->vx_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || tfd < 0 || d->vx_efd < 0 || timerfd_settime(tfd, 0, &it, NULL) < 0) {
		r = -errno;
		serve_log("signalfd/timerfd: %s", strerror(errno));
		goto out;
	}
	lfd = serve_make_socket(root, name, path, sizeof(path));
	if (lfd < 0) {
		r = lfd;
		goto out;
	}
	serve_log("pool \"%s\" served on %s (pid %d)", name, path, (int)getpid());
	serve_notify("READY=1\nSTATUS=serving");
	for (;;) {
		struct pollfd pf[4] = {
		    {lfd, POLLIN, 0}, {sfd, POLLIN, 0}, {tfd, POLLIN, 0}, {d->vx_efd, POLLIN, 0}};
		if (poll(pf, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			serve_log("poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				serve_log("%s: stopping", strsignal((int)si.ssi_signo));
				break;
			}
		}
		if (pf[2].revents) {
			uint64_t ticks;
			if (read(tfd, &ticks, sizeof(ticks)) > 0) {
				serve_pool_commit(sp);
				serve_vx_orphans(d);
			}
		}
		if (pf[3].revents) {
			uint64_t ticks;
			if (read(d->vx_efd, &ticks, sizeof(ticks)) > 0)
				serve_vx_reap(d, false);
		}
		if (pf[0].revents)
			serve_accept(d, lfd);
	}
	serve_notify("STOPPING=1");
	close(lfd);
	unlink(path);
	serve_shutdown_clients(d);
	serve_vx_reap(d, true);
out:
	if (serve_pool_close(sp) && !r)
		r = -EIO;
	else if (!r)
		serve_log("pool \"%s\": final commit done", name);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	if (d->vx_efd >= 0)
		close(d->vx_efd);
	if (d->nclients == 0) {
		pthread_mutex_destroy(&d->m);
		pthread_cond_destroy(&d->idle);
		free(d);
	}
	return r;
}
