/*
 * spool.c - one open pool shared by the daemon's threads: the lock that
 * every pool call is made under (a struct pool serves one thread at a
 * time), the "written since the last commit" mark the periodic commit
 * reads, and the table of attached volumes (one read-write holder each).
 *
 * The lock is a readers-writer lock: every pool call takes it exclusively
 * (serve_pool_lock), except vol_read_shared, which pool.h allows from
 * several threads at once while nothing else runs, under the read side
 * (serve_pool_rdlock).  It prefers writers, so that a stream of guest
 * reads cannot hold a commit or a write off for ever.
 *
 * What it never does: I/O of its own, or decide when to commit (daemon.c
 * does, every few seconds and at shutdown).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "pool/pool.h"

struct serve_attach {
	struct serve_pool *sp;
	struct serve_attach *next;
	char vol[256];
	char holder[160];
	bool ro;
};

struct serve_pool {
	pthread_rwlock_t lock;
	struct pool *p;
	char name[64];
	uint64_t written; /* serve_pool_dirtied calls since the last commit */
	struct serve_attach *attached;
};

int serve_err(char *err, size_t len, int errno_neg, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return errno_neg;
}

int serve_log_fd = -1;

void serve_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (serve_log_fd >= 0)
		dprintf(serve_log_fd, "zonevm serve: %s\n", buf);
	else
		fprintf(stderr, "zonevm serve: %s\n", buf);
}

int serve_pool_wrap(struct pool *p, struct serve_pool **out)
{
	struct serve_pool *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return -ENOMEM;
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&sp->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	sp->p = p;
	snprintf(sp->name, sizeof(sp->name), "%s", pool_name(p));
	*out = sp;
	return 0;
}

void serve_pool_lock(struct serve_pool *sp)
{
	pthread_rwlock_wrlock(&sp->lock);
}

void serve_pool_rdlock(struct serve_pool *sp)
{
	pthread_rwlock_rdlock(&sp->lock);
}

bool serve_pool_tryrdlock(struct serve_pool *sp)
{
	return pthread_rwlock_tryrdlock(&sp->lock) == 0;
}

void serve_pool_unlock(struct serve_pool *sp)
{
	pthread_rwlock_unlock(&sp->lock);
}

struct pool *serve_pool_get(struct serve_pool *sp)
{
	return sp->p;
}

const char *serve_pool_name(struct serve_pool *sp)
{
	return sp->name;
}

void serve_pool_dirtied(struct serve_pool *sp)
{
	sp->written++; /* called with the lock held */
}

int serve_pool_commit(struct serve_pool *sp)
{
	int r = 0;

	serve_pool_lock(sp);
	if (sp->written) {
		r = pool_sync(sp->p);
		if (r)
			serve_log("pool \"%s\": commit failed: %s", sp->name,
			          pool_errmsg(sp->p)[0] ? pool_errmsg(sp->p) : strerror(-r));
		else
			sp->written = 0;
	}
	serve_pool_unlock(sp);
	return r;
}

int serve_pool_close(struct serve_pool *sp)
{
	int r;

	serve_pool_lock(sp);
	r = pool_close(sp->p);
	sp->p = NULL;
	while (sp->attached) { /* a holder that was not detached: forget it */
		struct serve_attach *a = sp->attached;
		serve_log("%s/%s: still attached by %s at close", sp->name, a->vol, a->holder);
		sp->attached = a->next;
		free(a);
	}
	serve_pool_unlock(sp);
	if (r)
		serve_log("pool \"%s\": final commit failed: %s", sp->name, strerror(-r));
	pthread_rwlock_destroy(&sp->lock);
	free(sp);
	return r;
}

/* The base volume of "vol@snap" into BUF. */
static void attach_base(const char *vol, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)strcspn(vol, "@"), vol);
}

static struct serve_attach *attach_find_rw(struct serve_pool *sp, const char *vol)
{
	for (struct serve_attach *a = sp->attached; a; a = a->next)
		if (!a->ro && !strcmp(a->vol, vol))
			return a;
	return NULL;
}

int serve_attach(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                 struct serve_attach **out, char *err, size_t errlen)
{
	struct vol_info info;
	struct serve_attach *a, *h;
	char base[256];
	int r;

	if (pool_name_check(vol, strchr(vol, '@') != NULL))
		return serve_err(err, errlen, -EINVAL, "invalid volume name \"%s/%s\"", sp->name,
		                 vol);
	attach_base(vol, base, sizeof(base));
	serve_pool_lock(sp);
	r = vol_get_info(sp->p, vol, &info);
	if (r) {
		serve_err(err, errlen, r, "%s",
		          pool_errmsg(sp->p)[0] ? pool_errmsg(sp->p) : strerror(-r));
		goto out;
	}
	if (!ro && info.type == VOL_TYPE_SNAPSHOT) {
		r = serve_err(err, errlen, -EROFS, "%s/%s is a snapshot: attach it read-only",
		              sp->name, vol);
		goto out;
	}
	if (!ro && (h = attach_find_rw(sp, vol)) != NULL) {
		r = serve_err(err, errlen, -EBUSY, "%s/%s is attached read-write by %s", sp->name,
		              vol, h->holder);
		goto out;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		r = serve_err(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	a->sp = sp;
	a->ro = ro;
	snprintf(a->vol, sizeof(a->vol), "%s", vol);
	snprintf(a->holder, sizeof(a->holder), "%s", holder);
	a->next = sp->attached;
	sp->attached = a;
	*out = a;
out:
	serve_pool_unlock(sp);
	return r;
}

void serve_detach(struct serve_attach *a)
{
	struct serve_pool *sp;

	if (!a)
		return;
	sp = a->sp;
	serve_pool_lock(sp);
	for (struct serve_attach **pp = &sp->attached; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	serve_pool_unlock(sp);
	free(a);
}

bool serve_attach_holder(struct serve_pool *sp, const char *vol, char *buf, size_t len)
{
	struct serve_attach *a;

	serve_pool_lock(sp);
	a = attach_find_rw(sp, vol);
	if (a)
		snprintf(buf, len, "%s", a->holder);
	serve_pool_unlock(sp);
	return a != NULL;
}

bool serve_attach_busy(struct serve_pool *sp, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);
	bool snap = strchr(name, '@') != NULL, found = false;

	for (struct serve_attach *a = sp->attached; a && !found; a = a->next) {
		/* NAME itself, or for a volume one of its snapshots */
		found = !strcmp(a->vol, name) ||
		        (!snap && !strncmp(a->vol, name, nl) && a->vol[nl] == '@');
		if (found)
			snprintf(buf, len, "%s/%s is attached %s by %s", sp->name, a->vol,
			         a->ro ? "read-only" : "read-write", a->holder);
	}
	return found;
}
