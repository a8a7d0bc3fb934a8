/*
 * nic.c - a VM's NICs: validate, set up, read counters, tear down.
 *
 * Order of net_vm_setup(), so that bad input creates nothing:
 *   1. check vmid and specs (MACs present, none twice in the VM, queues),
 *      every nic tag exists (its bridge is recreated if the host lost it);
 *   2. take the VM id's lock (refused while a VM or its guard holds it),
 *      then the records lock; purge stale records of dead VMs; refuse a MAC
 *      that a running VM uses on the same nic tag; remove this id's own
 *      leftovers;
 *   3. per NIC: open the tap queues (not persistent), attach the tap to the
 *      bridge, VLAN, nft rules, tc caps.  Any failure undoes everything;
 *   4. record the VM (vmrec.c) and refresh the nic tags' DHCP (dhcp.c).
 *
 * The tap descriptors are the only thing the VMM needs.  When the process
 * holding them dies the kernel removes the taps (and their qdiscs); the nft
 * table, the ifbs, the record and the DHCP hosts are removed by name by
 * the guard (guard.c), by net_vm_teardown() or by `zonevm nic cleanup`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

static void nic_names(const char *vmid, unsigned i, struct net_nic *nic)
{
	snprintf(nic->tap, sizeof(nic->tap), "zvm%sn%u", vmid, i);
	if (nic->spec.max_bandwidth)
		snprintf(nic->ifb, sizeof(nic->ifb), "zvm%si%u", vmid, i);
	else
		nic->ifb[0] = '\0';
}

static int nic_setup_one(struct net_ctx *ctx, const char *vmid, unsigned i, struct net_nic *nic,
                         struct net_err *err)
{
	int r;

	for (unsigned q = 0; q < nic->spec.queues; q++) {
		nic->tap_fds[q] = link_tap_open(nic->tap, nic->spec.queues > 1, err);
		if (nic->tap_fds[q] < 0)
			return nic->tap_fds[q];
	}
	r = link_set_master_up(ctx, nic->tap, nic->spec.tag, err);
	if (!r && nic->spec.vlan)
		r = link_port_vlan(ctx, nic->spec.tag, nic->tap, nic->spec.vlan, err);
	if (!r)
		r = nft_nic_rules(ctx, vmid, i, nic, err);
	if (!r && nic->spec.max_bandwidth)
		r = tc_cap(ctx, nic->tap, nic->ifb, nic->spec.max_bandwidth, err);
	return r;
}

static void nic_close_fds(struct net_vm *vm)
{
	for (unsigned i = 0; i < NET_MAX_NICS; i++)
		for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
			if (vm->nics[i].tap_fds[q] >= 0) {
				close(vm->nics[i].tap_fds[q]);
				vm->nics[i].tap_fds[q] = -1;
			}
}

static void vm_init(struct net_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	for (unsigned i = 0; i < NET_MAX_NICS; i++)
		for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
			vm->nics[i].tap_fds[q] = -1;
	vm->lock_fd = vm->guard_fd = -1;
}

/* The kernel objects of a VM, by name: nft table, ifbs, taps. */
static int vm_remove_objects(struct net_ctx *ctx, const char *vmid, struct net_err *err)
{
	char prefix[NET_IFNAME_MAX + 1];
	int r = nft_vm_delete(ctx, vmid, err);

	if (r)
		return r;
	/*
	 * zvm<vmid>n* / zvm<vmid>i* followed by digits only: the letter after
	 * the vmid keeps "zvm1" from matching "zvm12"'s links.
	 */
	for (int k = 0; k < 2; k++) {
		snprintf(prefix, sizeof(prefix), "zvm%s%c", vmid, k ? 'i' : 'n');
		r = link_delete_prefix(ctx, prefix);
		if (r < 0)
			return net_fail(err, r, "vm %s: cannot delete links %s*: %s", vmid, prefix,
			                strerror(-r));
	}
	return 0;
}

int vm_purge(struct net_ctx *ctx, const char *vmid, struct net_err *err)
{
	struct net_vm *old = malloc(sizeof(*old));
	struct net_err ignore;
	int r;

	if (!old)
		return net_fail(err, -ENOMEM, "out of memory");
	bool had = net_vm_load(ctx, vmid, old, &ignore) == 0;
	r = vm_remove_objects(ctx, vmid, err);
	if (!r) {
		vmrec_remove(ctx, vmid);
		for (unsigned i = 0; had && i < old->n_nics && !r; i++) {
			bool done = false;
			for (unsigned j = 0; j < i; j++)
				done |= !strcmp(old->nics[j].spec.tag, old->nics[i].spec.tag);
			if (!done)
				r = dhcp_sync(ctx, old->nics[i].spec.tag, err);
		}
	}
	free(old);
	return r;
}

/*
 * With the records lock held: purge records of dead VMs, and refuse a MAC
 * of `specs` that a running VM uses on the same nic tag.
 */
static int vm_check_others(struct net_ctx *ctx, const char *vmid, const struct net_nic_spec *specs,
                           unsigned n, struct net_err *err)
{
	char(*ids)[NET_VMID_MAX + 1];
	size_t cnt;
	struct net_vm *other = malloc(sizeof(*other));
	struct net_err ignore;
	int r = other ? net_vm_list(ctx, &ids, &cnt, err) : net_fail(err, -ENOMEM, "out of memory");

	if (r) {
		free(other);
		return r;
	}
	for (size_t k = 0; k < cnt && !r; k++) {
		if (!strcmp(ids[k], vmid))
			continue;
		if (!vmrec_live(ctx, ids[k])) {
			r = vm_purge(ctx, ids[k], err);
			continue;
		}
		if (net_vm_load(ctx, ids[k], other, &ignore))
			continue;
		for (unsigned i = 0; i < n && !r; i++)
			for (unsigned j = 0; j < other->n_nics && !r; j++)
				if (!strcmp(specs[i].tag, other->nics[j].spec.tag) &&
				    !memcmp(specs[i].mac, other->nics[j].spec.mac, 6)) {
					char m[18];
					net_mac_format(specs[i].mac, m);
					r = net_fail(
					    err, -EEXIST,
					    "nic %u: mac %s is already used on nic tag %s by "
					    "vm %s nic %u",
					    i, m, specs[i].tag, ids[k], j);
				}
	}
	free(ids);
	free(other);
	return r;
}

int net_vm_setup(struct net_ctx *ctx, const char *vmid, const struct net_nic_spec *specs,
                 unsigned n, struct net_vm *vm, struct net_err *err)
{
	struct net_nictag tag;
	int r, glock;

	vm_init(vm);
	if (net_vmid_check(vmid))
		return net_fail(err, -EINVAL, "vm id \"%s\": want 1 to %d of [a-z0-9]", vmid,
		                NET_VMID_MAX);
	r = net_nic_specs_check(specs, n, err);
	if (r)
		return r;
	for (unsigned i = 0; i < n; i++) {
		if (!specs[i].mac_set)
			return net_fail(err, -EINVAL, "nic %u: no MAC (net_nic_spec_finish)", i);
		if (specs[i].queues > NET_MAX_QUEUES)
			return net_fail(err, -EINVAL, "nic %u: %u queues, at most %d", i,
			                specs[i].queues, NET_MAX_QUEUES);
		r = net_nictag_get(ctx, specs[i].tag, &tag, err);
		if (r)
			return r;
	}
	snprintf(vm->vmid, sizeof(vm->vmid), "%s", vmid);
	vm->lock_fd = vmrec_lock_vm(ctx, vmid, 30, err);
	if (vm->lock_fd < 0) {
		r = vm->lock_fd;
		vm->lock_fd = -1;
		vm->vmid[0] = '\0';
		return r;
	}
	glock = vmrec_lock_global(ctx, err);
	if (glock < 0) {
		r = glock;
		goto fail_nolock;
	}
	r = vm_check_others(ctx, vmid, specs, n, err);
	if (!r)
		r = vm_purge(ctx, vmid, err);
	for (unsigned i = 0; i < n && !r; i++) {
		struct net_nic *nic = &vm->nics[i];

		nic->spec = specs[i];
		if (!nic->spec.queues)
			nic->spec.queues = 1;
		nic_names(vmid, i, nic);
		vm->n_nics = i + 1;
		r = nic_setup_one(ctx, vmid, i, nic, err);
	}
	if (!r)
		r = vmrec_write(ctx, vm, err);
	for (unsigned i = 0; i < n && !r; i++)
		r = dhcp_sync(ctx, specs[i].tag, err);
	if (r) {
		struct net_err ignore;
		nic_close_fds(vm);
		vm_purge(ctx, vmid, &ignore);
	}
	close(glock);
	if (!r)
		return 0;
fail_nolock:
	nic_close_fds(vm);
	close(vm->lock_fd);
	vm->lock_fd = -1;
	vm->vmid[0] = '\0';
	vm->n_nics = 0;
	return r;
}

int net_vm_teardown(struct net_ctx *ctx, struct net_vm *vm, struct net_err *err)
{
	int r = 0;

	nic_close_fds(vm);
	if (vm->vmid[0] && vm->lock_fd >= 0) {
		int glock = vmrec_lock_global(ctx, err);
		if (glock < 0)
			r = glock;
		else {
			r = vm_purge(ctx, vm->vmid, err);
			close(glock);
		}
	}
	guard_stop(vm);
	if (vm->lock_fd >= 0)
		close(vm->lock_fd);
	vm->lock_fd = -1;
	vm->vmid[0] = '\0';
	vm->n_nics = 0;
	return r;
}

int net_vm_cleanup(struct net_ctx *ctx, const char *vmid, struct net_err *err)
{
	int lock, glock, r;

	if (net_vmid_check(vmid))
		return net_fail(err, -EINVAL, "vm id \"%s\": want 1 to %d of [a-z0-9]", vmid,
		                NET_VMID_MAX);
	lock = vmrec_lock_vm(ctx, vmid, 1, err);
	if (lock < 0)
		return lock;
	glock = vmrec_lock_global(ctx, err);
	if (glock < 0) {
		close(lock);
		return glock;
	}
	r = vm_purge(ctx, vmid, err);
	close(glock);
	close(lock);
	return r;
}

int net_nic_stats(struct net_ctx *ctx, const char *vmid, unsigned index, struct net_nic_stats *st,
                  struct net_err *err)
{
	char tap[NET_IFNAME_MAX + 1];

	memset(st, 0, sizeof(*st));
	if (net_vmid_check(vmid) || index >= NET_MAX_NICS)
		return net_fail(err, -EINVAL, "vm id \"%s\" nic %u: invalid", vmid, index);
	snprintf(tap, sizeof(tap), "zvm%sn%u", vmid, index);
	int r = link_stats(ctx, tap, st, err);
	return r ? r : nft_nic_counters(ctx, vmid, index, st, err);
}

void net_vmid_default(char out[NET_VMID_MAX + 1])
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char tmp[NET_VMID_MAX];
	unsigned long v = (unsigned long)getpid();
	int n = 0;

	do {
		tmp[n++] = digits[v % 36];
		v /= 36;
	} while (v && n < NET_VMID_MAX - 1);
	out[0] = 'p';
	for (int i = 0; i < n; i++)
		out[1 + i] = tmp[n - 1 - i];
	out[1 + n] = '\0';
}
