/*
 * bus.c - address-range dispatch for port I/O and MMIO exits.
 *
 * A bus is a sorted array of disjoint ranges, read-locked by vCPU threads on
 * every lookup and write-locked only when a device moves (a BAR is
 * reprogrammed).  The device is called after the lock is dropped, so that
 * an access may itself move a device (a BAR write through ECAM, which is on
 * this very bus); devices live as long as the bus, and an access racing a
 * move may still reach the old range, as on real hardware.  It owns
 * dispatch only; devices serialise their own state.
 * Accesses no device claims read as all ones and are counted, never fatal.
 */
#include <errno.h>
#include <string.h>

#include "devices.h"

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	pthread_rwlock_destroy(&b->lock);
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops, void *ctx,
                 const char *name)
{
	unsigned i;
	int ret = 0;

	if (!len || base + len < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	if (b->nranges == BUS_MAX_RANGES) {
		ret = -ENOSPC;
		goto out;
	}
	for (i = 0; i < b->nranges; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (base < r->base + r->len && r->base < base + len) {
			ret = -EEXIST;
			goto out;
		}
		if (r->base > base)
			break;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (b->nranges - i) * sizeof(b->ranges[0]));
	b->ranges[i] =
	    (struct bus_range){.base = base, .len = len, .ops = ops, .ctx = ctx, .name = name};
	b->nranges++;
out:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	for (unsigned i = 0; i < b->nranges; i++) {
		if (b->ranges[i].base != base)
			continue;
		memmove(&b->ranges[i], &b->ranges[i + 1],
		        (b->nranges - i - 1) * sizeof(b->ranges[0]));
		b->nranges--;
		ret = 0;
		break;
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

/* Binary search; caller holds the lock. */
static const struct bus_range *bus_find(const struct bus *b, uint64_t addr, unsigned len)
{
	unsigned lo = 0, hi = b->nranges;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const struct bus_range *r = &b->ranges[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return (addr - r->base) + len <= r->len ? r : NULL;
	}
	return NULL;
}

bool bus_read(struct bus *b, uint64_t addr, unsigned len, uint64_t *val)
{
	const struct bus_range *r;
	bool claimed = false;

	struct bus_range hit;

	pthread_rwlock_rdlock(&b->lock);
	r = bus_find(b, addr, len);
	if (r && r->ops->read) {
		hit = *r;
		claimed = true;
	}
	pthread_rwlock_unlock(&b->lock);
	if (claimed)
		*val = hit.ops->read(hit.ctx, addr - hit.base, len);
	else {
		*val = len >= 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
		__atomic_add_fetch(&b->unhandled, 1, __ATOMIC_RELAXED);
	}
	return claimed;
}

bool bus_write(struct bus *b, uint64_t addr, unsigned len, uint64_t val)
{
	const struct bus_range *r;
	bool claimed = false;

	struct bus_range hit;

	pthread_rwlock_rdlock(&b->lock);
	r = bus_find(b, addr, len);
	if (r && r->ops->write) {
		hit = *r;
		claimed = true;
	}
	pthread_rwlock_unlock(&b->lock);
	if (claimed)
		hit.ops->write(hit.ctx, addr - hit.base, len, val);
	else
		__atomic_add_fetch(&b->unhandled, 1, __ATOMIC_RELAXED);
	return claimed;
}
