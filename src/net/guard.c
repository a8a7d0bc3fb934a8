/*
 * guard.c - remove a VM's network objects when its VMM dies, however it
 * dies (SIGKILL included).
 *
 * net_vm_guard() forks a guard process that holds only the read end of a
 * pipe, the VM's lock and stderr.  The VMM keeps the write end (O_CLOEXEC,
 * so no program it executes inherits it).  When the VMM exits or is
 * killed, the kernel closes the write end, the guard's read() returns 0,
 * and the guard purges the VM by name (taps, ifbs, nft table, record,
 * DHCP hosts) with a netlink socket of its own, then exits; its exit
 * releases the VM id's lock, so a new VM with the same id waits for the
 * purge to finish.  It holds no tap fd, so the taps disappear as soon as
 * the VMM is gone.  It never touches guest memory or KVM.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Close every fd but 2 and the two kept ones. */
static void guard_close_others(int keep1, int keep2)
{
	int lo = keep1 < keep2 ? keep1 : keep2, hi = keep1 < keep2 ? keep2 : keep1;

	close_range(3, (unsigned)lo - 1, 0);
	close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0u, 0);
}

static void guard_main(const char *root, const char *vmid, int rfd, int lock_fd)
{
	char buf[64];
	struct net_ctx *ctx;
	struct net_err err;
	ssize_t n;

	setsid();
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NAME, "zonevm-netguard");
	guard_close_others(rfd, lock_fd);
	do
		n = read(rfd, buf, sizeof(buf));
	while (n > 0 || (n < 0 && errno == EINTR));
	if (net_open(&ctx, root, &err) == 0) {
		int glock = vmrec_lock_global(ctx, &err);
		if (glock >= 0 && vm_purge(ctx, vmid, &err) == 0) {
			close(glock);
			net_close(ctx);
			_exit(0);
		}
		net_close(ctx);
	}
	fprintf(stderr, "zonevm: network guard of vm %s: %s\n", vmid, err.msg);
	_exit(1);
}

int net_vm_guard(struct net_ctx *ctx, struct net_vm *vm, struct net_err *err)
{
	int p[2];

	if (!vm->vmid[0] || vm->lock_fd < 0)
		return net_fail(err, -EINVAL, "network guard: the VM's NICs are not set up");
	if (vm->guard_pid > 0)
		return 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return net_fail(err, -errno, "network guard of vm %s: pipe: %s", vm->vmid,
		                strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return net_fail(err, -e, "network guard of vm %s: fork: %s", vm->vmid, strerror(e));
	}
	if (pid == 0)
		guard_main(ctx->root, vm->vmid, p[0], vm->lock_fd);
	close(p[0]);
	vm->guard_fd = p[1];
	vm->guard_pid = pid;
	return 0;
}

void guard_stop(struct net_vm *vm)
{
	if (vm->guard_fd >= 0)
		close(vm->guard_fd);
	vm->guard_fd = -1;
	if (vm->guard_pid > 0)
		while (waitpid(vm->guard_pid, NULL, 0) < 0 && errno == EINTR)
			;
	vm->guard_pid = 0;
}
