/*
 * memory.c - guest RAM: one mapping, locked before any vCPU runs: anonymous
 * and private, or, when another process must reach guest memory (a
 * vhost-user backend), a memfd mapped MAP_SHARED whose fd is passed on.
 *
 * Owns the placement of the mapping (2 MiB-aligned, for huge pages), the
 * split of RAM around the 32-bit MMIO hole (RAM below
 * LAYOUT_MMIO_HOLE at gpa 0, the rest at 4 GiB) and the translation of
 * guest-physical ranges to host pointers.  The seed's policy is no
 * overcommit: if the memory cannot be locked the VM does not start, and the
 * message says how much was asked and which limit stopped it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "layout.h"

/*
 * Guest RAM starts on a 2 MiB boundary of the host's address space.  KVM
 * maps guest memory with 2 MiB nested page-table entries only where the
 * host virtual address and the guest-physical address agree modulo 2 MiB
 * and a transparent huge page backs it.  mmap() does not promise that
 * alignment (Debian 12's kernel does not give it), and then every guest
 * page needs its own 4 KiB entry whose first touch is a nested page fault:
 * about 28,600 in one boot of the guest kit to power-off (2 vCPUs,
 * 256 MiB), against 1,700 for QEMU, which aligns its RAM the same way.
 */
#define MEM_ALIGN (2ULL << 20)

void mem_layout(uint64_t size, uint64_t *low, uint64_t *high)
{
	*low = size < LAYOUT_MMIO_HOLE ? size : LAYOUT_MMIO_HOLE;
	*high = size - *low;
}

static void mem_explain_lock_failure(uint64_t size, int err)
{
	struct rlimit rl;
	char want[32], lim[32];

	vm_fmt_size(size, want, sizeof(want));
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < size && geteuid() != 0) {
		vm_log("cannot lock %s of guest memory: RLIMIT_MEMLOCK is %s "
		       "(raise it with 'ulimit -l' or run with CAP_IPC_LOCK); "
		       "zonevm does not overcommit guest memory",
		       want, vm_fmt_size(rl.rlim_cur, lim, sizeof(lim)));
		return;
	}
	long avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	vm_log("cannot lock %s of guest memory: %s (the host has %s free); "
	       "zonevm does not overcommit guest memory",
	       want, strerror(err),
	       vm_fmt_size((uint64_t)(avail > 0 ? avail : 0) * (uint64_t)page, lim, sizeof(lim)));
}

/*
 * A memfd of SIZE bytes, sealed so that nobody (the backend included) can
 * shrink it under a mapping and SIGBUS the other side.
 */
static int mem_memfd(uint64_t size)
{
	int fd = memfd_create("zonevm-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static uint64_t mem_page(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

/*
 * Map SIZE bytes at a MEM_ALIGN boundary of this process's address space,
 * between two PROT_NONE guard pages: reserve enough address space, map the
 * real thing over the reservation's first aligned address past one page
 * (MAP_FIXED replaces only our own reservation) and give back what is left
 * outside the guards.  The guards make a VMM overrun of guest RAM fault
 * instead of reaching a neighbour, and keep every other mapping from
 * abutting guest RAM: a thread stack placed right below would otherwise
 * end on a 2 MiB boundary, and with transparent huge pages "always" its
 * top would get a 2 MiB page (2 MiB more resident memory, seen in the
 * emulated host).  Returns MAP_FAILED with errno set; mem_free() unmaps
 * the guards too.
 */
static void *mem_map_aligned(uint64_t size, int flags, int fd)
{
	uint64_t page = mem_page();
	uint64_t span, mapped;
	uintptr_t r, a, end;
	void *res, *p;

	if (size == 0 || size > UINT64_MAX - 2 * MEM_ALIGN) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	mapped = (size + page - 1) / page * page;
	span = mapped + MEM_ALIGN + page;
	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	r = (uintptr_t)res;
	a = (r + page + MEM_ALIGN - 1) & ~(uintptr_t)(MEM_ALIGN - 1); /* a - r in [page, 2 MiB] */
	p = mmap((void *)a, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;
		munmap(res, span);
		errno = err;
		return MAP_FAILED;
	}
	end = a + mapped + page; /* past the upper guard; <= r + span */
	if (a - page > r)
		munmap(res, a - page - r);
	if (r + span > end)
		munmap((void *)end, r + span - end);
	return p;
}

int mem_alloc(struct vm_mem *m, uint64_t size, bool shared)
{
	char want[32];
	void *p;
	int err;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	mem_layout(size, &m->low_size, &m->high_size);
	if (shared && (m->memfd = mem_memfd(size)) < 0) {
		err = -m->memfd;
		m->memfd = -1;
		vm_log("cannot create %s of shared guest memory (memfd): %s",
		       vm_fmt_size(size, want, sizeof(want)), strerror(err));
		return -err;
	}
	p = mem_map_aligned(size, shared ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	                    m->memfd);
	if (p == MAP_FAILED) {
		err = errno;
		vm_log("cannot map %s of guest memory: %s", vm_fmt_size(size, want, sizeof(want)),
		       strerror(err));
		if (m->memfd >= 0)
			close(m->memfd);
		m->memfd = -1;
		return -err;
	}
	/* Huge pages make locking faster and nested paging cheaper; a hint only. */
	madvise(p, size, MADV_HUGEPAGE);
	madvise(p, size, MADV_DONTFORK);
	if (mlock(p, size) != 0) {
		err = errno;
		mem_explain_lock_failure(size, err);
		munmap(p, size);
		if (m->memfd >= 0)
			close(m->memfd);
		m->memfd = -1;
		return -err;
	}
	m->base = p;
	m->size = size;
	return 0;
}

void mem_free(struct vm_mem *m)
{
	/* memfd is only valid while mapped (a zeroed vm_mem has base NULL). */
	if (m->base) {
		uint64_t page = mem_page();
		munmap(m->base - page, m->size + 2 * page); /* with the guards */
		if (m->memfd >= 0)
			close(m->memfd);
	}
	m->base = NULL;
	m->memfd = -1;
}

void *mem_ptr(const struct vm_mem *m, uint64_t gpa, uint64_t len)
{
	if (gpa < m->low_size) {
		if (len > m->low_size - gpa)
			return NULL;
		return m->base + gpa;
	}
	if (gpa >= LAYOUT_HIGH_RAM && gpa - LAYOUT_HIGH_RAM < m->high_size) {
		uint64_t off = gpa - LAYOUT_HIGH_RAM;
		if (len > m->high_size - off)
			return NULL;
		return m->base + m->low_size + off;
	}
	return NULL;
}
