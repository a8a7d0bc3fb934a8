/*
 * internal.h - shared between the files of src/net only (not public).
 *
 * link.c owns the netlink socket (libnl-route-3): links, bridges, taps,
 * addresses and link statistics; tc.c the qdiscs.  nft.c owns the
 * libnftables context and the per-VM table.  vmrec.c the VM records and
 * locks, dhcp.c dnsmasq, guard.c the guard process.  nictag.c and nic.c
 * compose them.
 */
#ifndef ZONEVM_NET_INTERNAL_H
#define ZONEVM_NET_INTERNAL_H

#include <limits.h>

#include "net.h"

struct nl_sock;
struct nft_ctx;

struct net_ctx {
	char root[PATH_MAX];
	struct nl_sock *nl;
	struct nft_ctx *nft;
};

int net_fail(struct net_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* link.c */
int link_index(struct net_ctx *ctx, const char *name); /* ifindex or -ENODEV */
int link_is_bridge(struct net_ctx *ctx, const char *name);
int link_bridge_create(struct net_ctx *ctx, const char *name, unsigned mtu, struct net_err *err);
int link_set_master_up(struct net_ctx *ctx, const char *name, const char *master,
                       struct net_err *err);
int link_delete(struct net_ctx *ctx, const char *name); /* 0 or -ENODEV */
/* Ports of bridge whose name starts with prefix ("" any). */
int link_count_ports(struct net_ctx *ctx, const char *bridge, const char *prefix);
/* Delete every link named prefix + digits; count or negative. */
int link_delete_prefix(struct net_ctx *ctx, const char *prefix);
/* One queue of tap `name` (created by the first call); multi: IFF_MULTI_QUEUE. */
int link_tap_open(const char *name, bool multi, struct net_err *err);
/* Give link `name` the address (no-op when it has it). */
int link_addr_ensure(struct net_ctx *ctx, const char *name, const struct net_cidr *a,
                     struct net_err *err);
int link_port_vlan(struct net_ctx *ctx, const char *bridge, const char *port, uint16_t vlan,
                   struct net_err *err);
int link_stats(struct net_ctx *ctx, const char *name, struct net_nic_stats *st,
               struct net_err *err);

/* tc.c */
int tc_cap(struct net_ctx *ctx, const char *tap, const char *ifb, uint64_t bits_per_s,
           struct net_err *err);

/* nftrules.c: the nft commands for NIC `index` (malloc'd text; 0 or -errno). */
int nft_nic_ruleset(const char *vmid, unsigned index, const struct net_nic *nic, char **out);

/* nft.c */
int nft_nic_rules(struct net_ctx *ctx, const char *vmid, unsigned index, const struct net_nic *nic,
                  struct net_err *err);
int nft_vm_delete(struct net_ctx *ctx, const char *vmid, struct net_err *err);
int nft_nic_counters(struct net_ctx *ctx, const char *vmid, unsigned index,
                     struct net_nic_stats *st, struct net_err *err);

/* nictag.c: read a recorded tag without touching the bridge. */
int nictag_load(struct net_ctx *ctx, const char *name, struct net_nictag *t, struct net_err *err);

/* vmrec.c */
/* snprintf for paths under the root (net_open() keeps the root short). */
void net_path(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int net_mkdirs(const char *path);
int net_write_file(const char *path, const char *text, struct net_err *err); /* tmp + rename */
int vmrec_lock_global(struct net_ctx *ctx, struct net_err *err);             /* fd */
int vmrec_lock_vm(struct net_ctx *ctx, const char *vmid, int tries, struct net_err *err);
int vmrec_live(struct net_ctx *ctx, const char *vmid); /* 1: its lock is held */
int vmrec_write(struct net_ctx *ctx, const struct net_vm *vm, struct net_err *err);
void vmrec_remove(struct net_ctx *ctx, const char *vmid);

/* nic.c: remove a VM's objects, record and DHCP hosts (records lock held). */
int vm_purge(struct net_ctx *ctx, const char *vmid, struct net_err *err);

/* dhcp.c: rebuild a nic tag's DHCP hosts, start/reload/stop its dnsmasq. */
int dhcp_sync(struct net_ctx *ctx, const char *tag, struct net_err *err);
/* dhcp.c: the tag is deleted: stop its dnsmasq, remove all its DHCP files. */
void dhcp_forget(struct net_ctx *ctx, const char *tag);

/* guard.c: end the guard (close its pipe) and wait for it. */
void guard_stop(struct net_vm *vm);

#endif
