/*
 * net.h - the host side of zonevm networking (src/net, libnet).
 *
 * A guest NIC is a tap device on a host bridge (a "nic tag").  Everything
 * that protects the network from the guest lives in the host kernel and is
 * configured here, by the trusted side of zonevm, before the VMM starts:
 *
 *   - nftables rules (bridge family, one table per VM, "zonevm_<vmid>")
 *     drop frames with a forged source MAC, IPv4/IPv6 source, ARP sender,
 *     DHCP server replies and restricted ethertypes, each reason counted;
 *   - tc token buckets cap both directions (tbf on the tap for traffic to
 *     the guest, tbf on an ifb fed from the tap's ingress for the rest);
 *   - dnsmasq answers DHCP for zonevm NICs' MACs only (dhcp.c);
 *   - a guard process removes it all when the VMM dies (guard.c).
 *
 * The VMM only receives the tap file descriptor (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, vnet header size 12) and needs no network privilege.
 * Names are derived from the VM id so that a later `net_vm_cleanup()` can
 * remove everything by name after a crash (see docs/NETWORK.md):
 *
 *   tap   zvm<vmid>n<index>      (disappears with its last fd)
 *   ifb   zvm<vmid>i<index>      (only with max_bandwidth)
 *   nft   table bridge zonevm_<vmid>
 *
 * This library never touches KVM or guest memory.  Functions return 0 or a
 * negative errno and fill a struct net_err whose message names the object
 * and the cause.
 */
#ifndef ZONEVM_NET_H
#define ZONEVM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_IFNAME_MAX    15 /* IFNAMSIZ - 1 */
#define NET_TAG_MAX       15 /* a nic tag is a bridge: its name is a link name */
#define NET_VMID_MAX      8  /* [a-z0-9]{1,8}: keeps zvm<vmid>n<idx> <= 15 */
#define NET_MAX_NICS      16
#define NET_MAX_RESOLVERS 4
#define NET_MAX_ALLOWED   16
#define NET_MAX_QUEUES    8  /* tap queues per NIC (= VMM_NIC_MAX_QUEUES) */
#define NET_VNET_HDR_SIZE 12 /* struct virtio_net_hdr_mrg_rxbuf */
#define NET_DEFAULT_ROOT  "/var/lib/zonevm"

struct net_err {
	char msg[256];
};

/* ---- addresses and the NIC spec (nicspec.c) ---- */

struct net_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
};

struct net_cidr {
	struct net_addr a;
	uint8_t prefix; /* 0..32 or 0..128 */
};

enum {
	NET_ALLOW_IP_SPOOF = 1u << 0,   /* allow_ip_spoofing */
	NET_ALLOW_MAC_SPOOF = 1u << 1,  /* allow_mac_spoofing */
	NET_ALLOW_DHCP_SPOOF = 1u << 2, /* allow_dhcp_spoofing */
	NET_ALLOW_RESTRICTED = 1u << 3, /* allow_restricted_traffic */
};

struct net_nic_spec {
	char tag[NET_TAG_MAX + 1];
	uint8_t mac[6];
	bool mac_set; /* false: net_nic_spec_finish() generates one */
	bool has_ip;
	struct net_cidr ip; /* the NIC's address; prefix is its netmask */
	bool has_gateway;
	struct net_addr gateway;
	unsigned n_resolvers;
	struct net_addr resolvers[NET_MAX_RESOLVERS];
	unsigned n_allowed;
	struct net_cidr allowed[NET_MAX_ALLOWED]; /* allowed_ips */
	uint16_t vlan;                            /* 0: none, else 1..4094 */
	uint64_t max_bandwidth;                   /* bits per second, 0: no cap */
	unsigned allow;                           /* NET_ALLOW_* */
	bool vhost;
	unsigned queues; /* queue pairs, 1..NET_MAX_QUEUES (queues=N); > 1: IFF_MULTI_QUEUE */
};

/*
 * Parse "tag=NAME[,mac=MAC][,ip=CIDR][,gateway=IP][,resolvers=IP;IP]
 * [,allowed_ips=CIDR;CIDR][,vlan=ID][,max_bandwidth=RATE][,queues=N][,allow_*]
 * [,vhost]".
 * Returns 0 or -EINVAL with a message naming the field.  Does not check
 * that the nic tag exists (net_nictag_get() does).
 */
int net_nic_spec_parse(const char *s, struct net_nic_spec *spec, struct net_err *err);

/* Generate the MAC when none was given: stable for (vm identity, index). */
void net_nic_spec_finish(struct net_nic_spec *spec, const char *vm_identity, unsigned index);
void net_mac_generate(const char *vm_identity, unsigned index, uint8_t mac[6]);

/* Duplicate MACs between a VM's NICs; -EINVAL with the index. */
int net_nic_specs_check(const struct net_nic_spec *specs, unsigned n, struct net_err *err);

/* Helpers, public for the CLI and the tests.  0 or -EINVAL. */
int net_mac_parse(const char *s, uint8_t mac[6]);
int net_addr_parse(const char *s, struct net_addr *a);
int net_cidr_parse(const char *s, struct net_cidr *c);   /* bare address = host route */
int net_rate_parse(const char *s, uint64_t *bits_per_s); /* 50M, 1G, 800K, 100000 */
int net_vmid_check(const char *vmid);
void net_mac_format(const uint8_t mac[6], char out[18]);
void net_addr_format(const struct net_addr *a, char *out, size_t len);
/* The IPv6 link-local address (fe80::/64 + modified EUI-64) of a MAC. */
void net_mac_linklocal(const uint8_t mac[6], struct net_addr *out);

/* ---- the context: netlink socket, nft context, zonevm root ---- */

struct net_ctx;

/* root NULL: $ZONEVM_ROOT or NET_DEFAULT_ROOT. */
int net_open(struct net_ctx **out, const char *root, struct net_err *err);
void net_close(struct net_ctx *ctx);
const char *net_root(const struct net_ctx *ctx);

/* ---- nic tags (nictag.c) ---- */

struct net_nictag {
	char name[NET_TAG_MAX + 1];
	char uplink[NET_IFNAME_MAX + 1]; /* "" none */
	unsigned mtu;                    /* 0: kernel default */
	bool has_address;                /* the host's address on the bridge (--address) */
	struct net_cidr address;         /* needed for DHCP; also the guests' gateway */
	bool present;                    /* the bridge exists now */
	unsigned nics;                   /* zonevm taps attached now */
};

int net_nictag_check_name(const char *name, struct net_err *err);
/* Record the tag under <root>/nictags/NAME.json and create the bridge. */
int net_nictag_create(struct net_ctx *ctx, const struct net_nictag *tag, struct net_err *err);
/* -EBUSY while a zonevm tap is attached; removes bridge and record. */
int net_nictag_delete(struct net_ctx *ctx, const char *name, struct net_err *err);
/* Load a recorded tag (-ENOENT: unknown nic tag) and recreate its bridge. */
int net_nictag_get(struct net_ctx *ctx, const char *name, struct net_nictag *tag,
                   struct net_err *err);
/* All recorded tags, sorted by name; free(*tags). */
int net_nictag_list(struct net_ctx *ctx, struct net_nictag **tags, size_t *n, struct net_err *err);

/* ---- a VM's NICs (nic.c, vmrec.c, guard.c) ---- */

struct net_nic {
	char tap[NET_IFNAME_MAX + 1];
	char ifb[NET_IFNAME_MAX + 1]; /* "" without max_bandwidth */
	union {
		int tap_fd;                  /* queue 0: what a one-queue VMM gets */
		int tap_fds[NET_MAX_QUEUES]; /* spec.queues fds, one per queue pair */
	};
	struct net_nic_spec spec;
};

/*
 * The tap fds stay owned by the struct net_vm: the VMM works on dups of
 * them (or on them while net_vm_teardown() has not run) and
 * net_vm_teardown() closes them.  lock_fd holds <root>/netvms/<vmid>.lock
 * (flock) for the VM's life, so a second VM with the same id is refused
 * and a dead VM's leftovers are told from a live VM's.
 */
struct net_vm {
	char vmid[NET_VMID_MAX + 1];
	unsigned n_nics;
	struct net_nic nics[NET_MAX_NICS];
	int lock_fd;   /* -1: none */
	int guard_fd;  /* write end of the guard's pipe, -1: no guard */
	int guard_pid; /* the guard process, 0: none */
};

/* Drops by reason, from the nft counters of one NIC. */
enum net_drop {
	NET_DROP_MAC,        /* source MAC not the NIC's */
	NET_DROP_IP,         /* IPv4/IPv6 source not allowed */
	NET_DROP_ARP,        /* ARP sender MAC or IP not the NIC's */
	NET_DROP_DHCP,       /* DHCP/DHCPv6 server reply from the guest */
	NET_DROP_RESTRICTED, /* ethertype other than IPv4, IPv6, ARP */
	NET_DROP_COUNT
};
const char *net_drop_name(enum net_drop d); /* "mac", "ip", "arp", ... */

struct net_nic_stats {
	/* from the guest's point of view: rx = to the guest */
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	uint64_t rx_dropped, tx_dropped; /* the tap's own drops (queue full, cap) */
	uint64_t drops[NET_DROP_COUNT];  /* anti-spoofing drops, packets */
	uint64_t drop_bytes[NET_DROP_COUNT];
};

/* A default VM id for a VM without a name: "p" + the pid in base 36. */
void net_vmid_default(char out[NET_VMID_MAX + 1]);

/*
 * Validate everything first (vmid, specs finished, every nic tag exists,
 * no MAC used twice on a nic tag by this VM or a running one, the VM id not
 * in use), then create each NIC's tap(s), attach them to the bridge, set
 * the VLAN, install the nft rules and tc caps, record the VM under
 * <root>/netvms/<vmid>.json and update the nic tags' DHCP hosts.  On
 * failure nothing is left behind and err names what was wrong.  A dead
 * VM's leftovers under the same id are removed first.
 */
int net_vm_setup(struct net_ctx *ctx, const char *vmid, const struct net_nic_spec *specs,
                 unsigned n, struct net_vm *vm, struct net_err *err);

/*
 * Call right after net_vm_setup() (added for `zonevm run`): forks a small
 * guard process that keeps no tap fd, waits for this process to die (EOF
 * on a pipe whose write end only we hold; O_CLOEXEC) and then removes
 * everything net_vm_setup() created, as net_vm_cleanup() does.  So a
 * SIGKILLed VMM leaves nothing behind.  The guard leaves the terminal's
 * process group (setsid) and ignores SIGINT/SIGTERM/SIGHUP, so a Ctrl-C
 * that ends the VMM does not end it first.  net_vm_teardown() ends the
 * guard and waits for it.  Call it before creating threads.
 */
int net_vm_guard(struct net_ctx *ctx, struct net_vm *vm, struct net_err *err);

/*
 * Close the tap fds, remove all the VM's objects (taps, ifbs, nft table,
 * record, DHCP hosts), stop the guard and release the VM id.  Safe to call
 * twice and on a struct net_vm that net_vm_setup() failed to fill.
 */
int net_vm_teardown(struct net_ctx *ctx, struct net_vm *vm, struct net_err *err);

/*
 * By name only, for a VM whose process died without its guard: table,
 * ifbs, taps, record, DHCP hosts.  -EBUSY while the VM (or its guard) runs.
 */
int net_vm_cleanup(struct net_ctx *ctx, const char *vmid, struct net_err *err);

/* Counters of NIC `index` of VM `vmid` while it runs (-ENODEV: no such NIC). */
int net_nic_stats(struct net_ctx *ctx, const char *vmid, unsigned index, struct net_nic_stats *st,
                  struct net_err *err);

/*
 * The recorded VM (from <root>/netvms/<vmid>.json): its NICs' names and
 * specs, for `zonevm nic`.  Fds are -1.  -ENOENT: no such VM.
 */
int net_vm_load(struct net_ctx *ctx, const char *vmid, struct net_vm *vm, struct net_err *err);

/* VM ids with a record, sorted; free(*ids).  Each entry NET_VMID_MAX + 1 bytes. */
int net_vm_list(struct net_ctx *ctx, char (**ids)[NET_VMID_MAX + 1], size_t *n,
                struct net_err *err);

/*
 * DHCP (dhcp.c) happens inside net_vm_setup/teardown: per nic tag that
 * has an IPv4 address (nictag create --address), one dnsmasq bound to the
 * bridge answers only the MACs of running zonevm NICs with an ip
 * (dhcp-ignore=tag:!known, static ranges), giving their ip, netmask,
 * gateway and resolvers; it is started with the first such NIC and
 * stopped with the last.  Files: <root>/nictags/NAME.dhcp-{conf,hosts,opts,
 * leases,pid}.
 */

#endif
