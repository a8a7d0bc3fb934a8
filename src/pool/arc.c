/*
 * arc.c - the adaptive replacement cache of verified, decompressed blocks.
 *
 * Megiddo and Modha's ARC, counted in bytes as OpenZFS does rather than in
 * pages as the paper does:
 *
 *   T1 (MRU)  blocks seen once recently      B1  ghosts evicted from T1
 *   T2 (MFU)  blocks seen at least twice     B2  ghosts evicted from T2
 *
 * A hit in T1 or T2 moves the block to the head of T2.  A miss whose key is
 * a ghost in B1 means T1 was too small: the target size p of T1 grows (by
 * the block size, times |B2|/|B1| when B1 is the smaller); a ghost hit in B2
 * shrinks p.  Eviction takes from T1 while it is over p, else from T2.
 * Ghosts keep no data and are capped at the cache size per side.
 *
 * Blocks are keyed by (sector, birth, first checksum word): a sector freed
 * and reused in the same txg gets another checksum, so a stale entry is
 * never returned.  Only pool_blk_read() puts blocks here, after their
 * checksum matched; nothing else reads the device through this file.
 *
 * Threads: the cache has its own mutex, so that the shared reads of
 * vol_read_shared() (several threads, the rest of the pool unchanged
 * meanwhile) may look blocks up and add them at once.  Every function here
 * takes it, except pool_arc_peek's pointer, which stays valid only while no
 * other thread can put: the exclusive pool calls use it, shared reads copy
 * under the lock (pool_arc_copy).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pool_impl.h"

enum { ARC_T1, ARC_T2, ARC_B1, ARC_B2, ARC_NLISTS };

struct arc_buf {
	uint64_t addr, birth, ck;
	uint32_t size;
	int list;
	uint8_t *data;               /* NULL on a ghost list */
	struct arc_buf *prev, *next; /* list, head = most recent */
	struct arc_buf *hnext;       /* hash chain */
};

struct arc_list {
	struct arc_buf *head, *tail;
	uint64_t bytes;
};

struct pool_arc {
	pthread_mutex_t lock; /* everything below */
	struct arc_buf **hash;
	size_t hsize, count;
	struct arc_list l[ARC_NLISTS];
	uint64_t c, p;
	struct pool_arc_stats st;
};

static size_t hash_of(uint64_t addr, uint64_t birth, uint64_t ck, size_t hsize)
{
	uint64_t h = (addr * 0x9e3779b97f4a7c15ull) ^ (birth * 0xc2b2ae3d27d4eb4full) ^ ck;

	return (size_t)(h ^ (h >> 29)) & (hsize - 1);
}

static size_t arc_hash(const struct pool_arc *a, uint64_t addr, uint64_t birth, uint64_t ck)
{
	return hash_of(addr, birth, ck, a->hsize);
}

int pool_arc_create(struct pool *p, uint64_t cap)
{
	struct pool_arc *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->hsize = 4096;
	a->hash = calloc(a->hsize, sizeof(*a->hash));
	if (!a->hash) {
		free(a);
		return -ENOMEM;
	}
	a->c = cap;
	a->p = cap / 2;
	pthread_mutex_init(&a->lock, NULL);
	p->arc = a;
	return 0;
}

void pool_arc_destroy(struct pool *p)
{
	struct pool_arc *a = p->arc;

	if (!a)
		return;
	for (int i = 0; i < ARC_NLISTS; i++) {
		struct arc_buf *b = a->l[i].head, *n;
		for (; b; b = n) {
			n = b->next;
			free(b->data);
			free(b);
		}
	}
	free(a->hash);
	pthread_mutex_destroy(&a->lock);
	free(a);
	p->arc = NULL;
}

static struct arc_buf **arc_slot(struct pool_arc *a, const struct pool_bp *bp)
{
	struct arc_buf **pp = &a->hash[arc_hash(a, bp->addr, bp->birth, bp->cksum[0])];

	while (*pp &&
	       !((*pp)->addr == bp->addr && (*pp)->birth == bp->birth && (*pp)->ck == bp->cksum[0]))
		pp = &(*pp)->hnext;
	return pp;
}

static void list_remove(struct pool_arc *a, struct arc_buf *b)
{
	struct arc_list *l = &a->l[b->list];

	if (b->prev)
		b->prev->next = b->next;
	else
		l->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		l->tail = b->prev;
	l->bytes -= b->size;
	b->prev = b->next = NULL;
}

static void list_push(struct pool_arc *a, struct arc_buf *b, int list)
{
	struct arc_list *l = &a->l[list];

	b->list = list;
	b->prev = NULL;
	b->next = l->head;
	if (l->head)
		l->head->prev = b;
	else
		l->tail = b;
	l->head = b;
	l->bytes += b->size;
}

static void hash_remove(struct pool_arc *a, struct arc_buf *b)
{
	struct arc_buf **pp = &a->hash[arc_hash(a, b->addr, b->birth, b->ck)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	a->count--;
}

static void buf_drop(struct pool_arc *a, struct arc_buf *b)
{
	list_remove(a, b);
	hash_remove(a, b);
	free(b->data);
	free(b);
}

static void hash_grow(struct pool_arc *a)
{
	size_t nsize = a->hsize * 2;
	struct arc_buf **nh = calloc(nsize, sizeof(*nh));

	if (!nh)
		return;
	for (size_t i = 0; i < a->hsize; i++) {
		struct arc_buf *b = a->hash[i], *n;
		for (; b; b = n) {
			n = b->hnext;
			size_t h = hash_of(b->addr, b->birth, b->ck, nsize);
			b->hnext = nh[h];
			nh[h] = b;
		}
	}
	free(a->hash);
	a->hash = nh;
	a->hsize = nsize;
}

/* Move the LRU end of a resident list to its ghost list. */
static void arc_evict_one(struct pool_arc *a, int from)
{
	struct arc_buf *b = a->l[from].tail;

	list_remove(a, b);
	free(b->data);
	b->data = NULL;
	list_push(a, b, from == ARC_T1 ? ARC_B1 : ARC_B2);
}

static void arc_make_room(struct pool_arc *a, uint32_t size, int ghost_b2)
{
	while (a->l[ARC_T1].bytes + a->l[ARC_T2].bytes + size > a->c &&
	       (a->l[ARC_T1].tail || a->l[ARC_T2].tail)) {
		uint64_t t1 = a->l[ARC_T1].bytes;
		if (a->l[ARC_T1].tail &&
		    (t1 > a->p || (ghost_b2 && t1 == a->p) || !a->l[ARC_T2].tail))
			arc_evict_one(a, ARC_T1);
		else
			arc_evict_one(a, ARC_T2);
	}
	/* ghosts: each side at most c bytes */
	while (a->l[ARC_B1].bytes > a->c && a->l[ARC_B1].tail)
		buf_drop(a, a->l[ARC_B1].tail);
	while (a->l[ARC_B2].bytes > a->c && a->l[ARC_B2].tail)
		buf_drop(a, a->l[ARC_B2].tail);
}

/* The resident block of BP, moved to the head of T2; NULL on a miss.
 * COUNT: counted in the statistics.  Called locked. */
static const uint8_t *arc_lookup(struct pool_arc *a, const struct pool_bp *bp, bool count)
{
	struct arc_buf *b = *arc_slot(a, bp);

	if (!b || !b->data || b->size != bp->lsize) {
		a->st.misses += count;
		return NULL;
	}
	a->st.hits += count;
	list_remove(a, b);
	list_push(a, b, ARC_T2);
	return b->data;
}

const void *pool_arc_peek(struct pool *p, const struct pool_bp *bp)
{
	struct pool_arc *a = p->arc;
	const void *data;

	if (!a)
		return NULL;
	pthread_mutex_lock(&a->lock);
	data = arc_lookup(a, bp, true);
	pthread_mutex_unlock(&a->lock);
	return data;
}

int pool_arc_get(struct pool *p, const struct pool_bp *bp, void *buf)
{
	return pool_arc_copy(p, bp, 0, bp->lsize, buf, true);
}

int pool_arc_copy(struct pool *p, const struct pool_bp *bp, size_t off, size_t len, void *buf,
                  bool count)
{
	struct pool_arc *a = p->arc;
	const uint8_t *data;

	if (!a || off > bp->lsize || len > bp->lsize - off)
		return -ENOENT;
	pthread_mutex_lock(&a->lock);
	data = arc_lookup(a, bp, count);
	if (data)
		memcpy(buf, data + off, len);
	pthread_mutex_unlock(&a->lock);
	return data ? 0 : -ENOENT;
}

void pool_arc_count_hits(struct pool *p, uint64_t n)
{
	struct pool_arc *a = p->arc;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->st.hits += n;
	pthread_mutex_unlock(&a->lock);
}

/* pool_arc_put, called locked. */
static void arc_put_locked(struct pool_arc *a, const struct pool_bp *bp, const void *buf)
{
	struct arc_buf **pp, *b;
	int ghost_b2 = 0, target = ARC_T1;

	pp = arc_slot(a, bp);
	b = *pp;
	if (!buf) { /* evict */
		if (b)
			buf_drop(a, b);
		return;
	}
	if (bp->lsize > a->c)
		return;
	if (b && b->data)
		return; /* already cached */
	if (b) {        /* a ghost: adapt the target, then the block goes to T2 */
		uint64_t b1 = a->l[ARC_B1].bytes ? a->l[ARC_B1].bytes : 1;
		uint64_t b2 = a->l[ARC_B2].bytes ? a->l[ARC_B2].bytes : 1;
		if (b->list == ARC_B1) {
			uint64_t d = bp->lsize * (b2 > b1 ? b2 / b1 : 1);
			a->p = a->p + d > a->c ? a->c : a->p + d;
			a->st.ghost_hits_mru++;
		} else {
			uint64_t d = bp->lsize * (b1 > b2 ? b1 / b2 : 1);
			a->p = a->p > d ? a->p - d : 0;
			a->st.ghost_hits_mfu++;
			ghost_b2 = 1;
		}
		buf_drop(a, b);
		target = ARC_T2;
	}
	arc_make_room(a, bp->lsize, ghost_b2);
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->data = malloc(bp->lsize);
	if (!b->data) {
		free(b);
		return;
	}
	memcpy(b->data, buf, bp->lsize);
	b->addr = bp->addr;
	b->birth = bp->birth;
	b->ck = bp->cksum[0];
	b->size = bp->lsize;
	if (a->count >= a->hsize)
		hash_grow(a);
	pp = &a->hash[arc_hash(a, b->addr, b->birth, b->ck)];
	b->hnext = *pp;
	*pp = b;
	a->count++;
	list_push(a, b, target);
}

void pool_arc_put(struct pool *p, const struct pool_bp *bp, const void *buf)
{
	struct pool_arc *a = p->arc;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	arc_put_locked(a, bp, buf);
	pthread_mutex_unlock(&a->lock);
}

void pool_arc_stats(const struct pool *p, struct pool_arc_stats *st)
{
	struct pool_arc *a = p->arc;

	memset(st, 0, sizeof(*st));
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	*st = a->st;
	st->cap = a->c;
	st->target_mru = a->p;
	st->mru_size = a->l[ARC_T1].bytes;
	st->mfu_size = a->l[ARC_T2].bytes;
	st->size = st->mru_size + st->mfu_size;
	pthread_mutex_unlock(&a->lock);
}
