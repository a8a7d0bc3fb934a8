/*
 * export.c - a volume exported to other programs (`zonevm vol serve`):
 * NBD listeners on a UNIX socket or TCP, one thread per NBD client, every
 * pool call under the pool's mutex.
 *
 * What it owns: the listening socket (and its file, removed at stop), the
 * client threads, the volume's attach ("nbd export ADDR").  What it never
 * does: speak NBD itself (nbd.c does) or commit (the daemon's periodic
 * commit, or the caller's final one; FLUSH is durable through the intent
 * log).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "pool/pool.h"

#define EXPORT_MAX_CONNS 64

struct serve_export {
	struct serve_pool *sp;
	struct serve_attach *att;
	struct vol *v;
	char name[320]; /* POOL/VOL: the NBD export name */
	char addr[256];
	bool unix_path;
	struct nbd_export nx;
	struct serve_vhost *vh; /* --vhost-user instead of NBD */
	int lfd;
	pthread_t lthread;
	bool lthread_ok;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int conns[EXPORT_MAX_CONNS];
	unsigned nconns;
	bool stopping;
};

static int exp_read(void *arg, void *buf, uint32_t len, uint64_t off)
{
	struct serve_export *e = arg;
	int r;

	/* shared first (NBD clients' reads side by side), exclusive if it cannot */
	serve_pool_rdlock(e->sp);
	r = vol_read_shared(e->v, buf, len, off, 0);
	serve_pool_unlock(e->sp);
	if (r != -EAGAIN)
		return r;
	serve_pool_lock(e->sp);
	r = vol_read(e->v, buf, len, off);
	serve_pool_unlock(e->sp);
	return r;
}

static int exp_write(void *arg, const void *buf, uint32_t len, uint64_t off)
{
	struct serve_export *e = arg;
	int r;

	serve_pool_lock(e->sp);
	r = vol_write(e->v, buf, len, off);
	serve_pool_dirtied(e->sp);
	serve_pool_unlock(e->sp);
	return r;
}

static int exp_flush(void *arg)
{
	struct serve_export *e = arg;
	int r;

	serve_pool_lock(e->sp);
	r = vol_flush(e->v);
	serve_pool_unlock(e->sp);
	return r;
}

static int exp_punch(void *arg, uint64_t off, uint32_t len)
{
	struct serve_export *e = arg;
	int r;

	serve_pool_lock(e->sp);
	r = vol_punch(e->v, off, len);
	serve_pool_dirtied(e->sp);
	serve_pool_unlock(e->sp);
	return r;
}

static const struct nbd_export_ops exp_ops = {
    .read = exp_read,
    .write = exp_write,
    .flush = exp_flush,
    .trim = exp_punch,
    .zero = exp_punch,
};

int serve_listen(const char *addr, char *err, size_t errlen)
{
	const char *colon = strrchr(addr, ':');
	int fd, r;

	if (strchr(addr, '/') || !colon) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		struct stat st;
		if (strlen(addr) >= sizeof(sa.sun_path))
			return serve_err(err, errlen, -ENAMETOOLONG, "socket path %s is too long",
			                 addr);
		/* Replace a socket left behind, never any other file. */
		if (lstat(addr, &st) == 0 && !S_ISSOCK(st.st_mode))
			return serve_err(err, errlen, -EEXIST, "%s exists and is not a socket",
			                 addr);
		unlink(addr);
		memcpy(sa.sun_path, addr, strlen(addr) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return serve_err(err, errlen, -errno, "socket: %s", strerror(errno));
		mode_t old = umask(0177);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
	} else {
		struct addrinfo hints = {.ai_family = AF_UNSPEC,
		                         .ai_socktype = SOCK_STREAM,
		                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
		                *ai;
		char host[256];
		int one = 1, g;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = 0;
		}
		g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
		if (g)
			return serve_err(err, errlen, -EINVAL, "bad address %s: %s", addr,
			                 gai_strerror(g));
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			freeaddrinfo(ai);
			return serve_err(err, errlen, -errno, "socket: %s", strerror(errno));
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		r = bind(fd, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(ai);
	}
	if (r < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		return serve_err(err, errlen, r, "cannot listen on %s: %s", addr, strerror(-r));
	}
	return fd;
}

struct exp_conn {
	struct serve_export *e;
	int fd;
};

static void *exp_conn_main(void *arg)
{
	struct exp_conn *cn = arg;
	struct serve_export *e = cn->e;
	int r = nbd_session(cn->fd, &e->nx);

	pthread_mutex_lock(&e->m);
	if (r < 0 && r != -EPIPE && r != -ECONNRESET && !e->stopping)
		serve_log("nbd export %s: client session ended: %s", e->name, strerror(-r));
	for (unsigned i = 0; i < e->nconns; i++) {
		if (e->conns[i] == cn->fd) {
			e->conns[i] = e->conns[--e->nconns];
			break;
		}
	}
	close(cn->fd);
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->m);
	free(cn);
	return NULL;
}

static void *exp_listen_main(void *arg)
{
	struct serve_export *e = arg;

	for (;;) {
		int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down by serve_export_stop */
		}
		struct exp_conn *cn = malloc(sizeof(*cn));
		pthread_attr_t at;
		pthread_t t;
		pthread_mutex_lock(&e->m);
		if (!cn || e->stopping || e->nconns == EXPORT_MAX_CONNS) {
			pthread_mutex_unlock(&e->m);
			free(cn);
			close(fd);
			continue;
		}
		cn->e = e;
		cn->fd = fd;
		e->conns[e->nconns++] = fd;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, exp_conn_main, cn)) {
			e->nconns--;
			close(fd);
			free(cn);
		}
		pthread_attr_destroy(&at);
		pthread_mutex_unlock(&e->m);
	}
	return NULL;
}

static void exp_free(struct serve_export *e)
{
	if (e->v) {
		serve_pool_lock(e->sp);
		vol_close(e->v);
		serve_pool_unlock(e->sp);
	}
	serve_detach(e->att);
	pthread_mutex_destroy(&e->m);
	pthread_cond_destroy(&e->cv);
	free(e);
}

int serve_export_start(struct serve_pool *sp, const char *vol, bool ro, const char *nbd_addr,
                       const char *vhost_sock, struct serve_export **out, char *err, size_t errlen)
{
	struct serve_export *e;
	char holder[300];
	int r;

	if (!nbd_addr == !vhost_sock)
		return serve_err(err, errlen, -EINVAL, "give one of --nbd and --vhost-user");
	e = calloc(1, sizeof(*e));
	if (!e)
		return serve_err(err, errlen, -ENOMEM, "out of memory");
	pthread_mutex_init(&e->m, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->sp = sp;
	e->lfd = -1;
	if (vhost_sock) {
		snprintf(holder, sizeof(holder), "vhost-user export %s", vhost_sock);
		r = serve_vhost_start(sp, vol, ro, holder, vhost_sock, false, NULL, NULL, &e->vh,
		                      err, errlen);
		if (r)
			goto fail;
		*out = e;
		return 0;
	}
	snprintf(e->name, sizeof(e->name), "%s/%s", serve_pool_name(sp), vol);
	snprintf(e->addr, sizeof(e->addr), "%s", nbd_addr);
	snprintf(holder, sizeof(holder), "nbd export %s", nbd_addr);
	r = serve_attach(sp, vol, ro, holder, &e->att, err, errlen);
	if (r)
		goto fail;
	serve_pool_lock(sp);
	r = vol_open(serve_pool_get(sp), vol, &e->v);
	if (r)
		serve_err(err, errlen, r, "%s", pool_errmsg(serve_pool_get(sp)));
	else
		e->nx.size = vol_size(e->v);
	serve_pool_unlock(sp);
	if (r)
		goto fail;
	e->nx.name = e->name;
	e->nx.ro = ro;
	e->nx.ops = &exp_ops;
	e->nx.arg = e;
	e->lfd = serve_listen(nbd_addr, err, errlen);
	if (e->lfd < 0) {
		r = e->lfd;
		goto fail;
	}
	e->unix_path = strchr(nbd_addr, '/') || !strchr(nbd_addr, ':');
	if (pthread_create(&e->lthread, NULL, exp_listen_main, e)) {
		r = serve_err(err, errlen, -EAGAIN, "cannot start a thread");
		close(e->lfd);
		goto fail;
	}
	e->lthread_ok = true;
	*out = e;
	return 0;
fail:
	exp_free(e);
	return r;
}

void serve_export_stop(struct serve_export *e)
{
	if (!e)
		return;
	if (e->vh) {
		serve_vhost_stop(e->vh); /* finishes in-flight I/O, detaches */
		exp_free(e);
		return;
	}
	pthread_mutex_lock(&e->m);
	e->stopping = true;
	pthread_mutex_unlock(&e->m);
	shutdown(e->lfd, SHUT_RDWR); /* wakes accept() */
	if (e->lthread_ok)
		pthread_join(e->lthread, NULL);
	close(e->lfd);
	if (e->unix_path)
		unlink(e->addr);
	pthread_mutex_lock(&e->m);
	for (unsigned i = 0; i < e->nconns; i++)
		shutdown(e->conns[i], SHUT_RDWR);
	while (e->nconns)
		pthread_cond_wait(&e->cv, &e->m);
	pthread_mutex_unlock(&e->m);
	exp_free(e);
}
