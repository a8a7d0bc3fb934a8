/*
 * gmem.c - the guest memory map: which guest-physical ranges exist and
 * where this process sees them.
 *
 * It owns the one check every guest address goes through (STYLE rule 1):
 * gmem_translate(gpa, len) answers a host pointer only when the whole range
 * lies inside one region, and NULL otherwise; no caller dereferences guest
 * memory without it.  It never maps or unmaps memory itself: the VMM (from
 * its KVM memslots) or the pool daemon (from a vhost-user memory table)
 * owns the mappings and keeps them alive while devices run.
 *
 * Regions are kept sorted by gpa so that a lookup is a binary search; the
 * map is read-only after setup, so lookups need no lock.  All arithmetic is
 * done so that it cannot wrap: a region is stored only when gpa + size fits
 * in 64 bits, and a lookup compares lengths against the room left in the
 * region instead of adding gpa + len.
 */
#include <errno.h>
#include <string.h>

#include "virtio.h"

void gmem_init(struct gmem *gm)
{
	memset(gm, 0, sizeof(*gm));
}

/* Index of the first region whose gpa is greater than gpa. */
static unsigned gmem_upper(const struct gmem *gm, uint64_t gpa)
{
	unsigned lo = 0, hi = gm->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (gm->r[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int gmem_add(struct gmem *gm, uint64_t gpa, uint64_t size, void *host)
{
	unsigned at;

	if (size == 0 || host == NULL || gpa + size - 1 < gpa)
		return -EINVAL;
	if (gm->nr == GMEM_MAX_REGIONS)
		return -ENOSPC;
	at = gmem_upper(gm, gpa);
	/* The region before must end at or before gpa ... */
	if (at > 0) {
		const struct gmem_region *p = &gm->r[at - 1];

		if (gpa - p->gpa < p->size)
			return -EINVAL;
	}
	/* ... and the one after must start after our last byte. */
	if (at < gm->nr && gm->r[at].gpa - gpa < size)
		return -EINVAL;
	memmove(&gm->r[at + 1], &gm->r[at], (gm->nr - at) * sizeof(gm->r[0]));
	gm->r[at] = (struct gmem_region){.gpa = gpa, .size = size, .host = host};
	gm->nr++;
	return 0;
}

void *gmem_translate(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	unsigned at;
	const struct gmem_region *r;
	uint64_t off;

	if (len == 0)
		return NULL;
	at = gmem_upper(gm, gpa);
	if (at == 0)
		return NULL;
	r = &gm->r[at - 1];
	off = gpa - r->gpa; /* r->gpa <= gpa, no wrap */
	if (off >= r->size || len > r->size - off)
		return NULL;
	return r->host + off;
}
