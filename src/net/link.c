/*
 * link.c - links through rtnetlink (libnl-route-3): the context, bridges,
 * taps, port attachment, bridge VLANs, deletion by name prefix, statistics.
 *
 * Every call asks the kernel (rtnl_link_get_kernel or a fresh link cache):
 * the kernel is the source of truth for what exists, so a crashed VM's
 * leftovers are found by name and nothing is cached between calls.  We never
 * parse `ip` output.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

int net_fail(struct net_err *err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

/* libnl returns its own negative codes; map the ones we act on. */
static int nl_errno(int nlerr)
{
	switch (-nlerr) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int net_open(struct net_ctx **out, const char *root, struct net_err *err)
{
	struct net_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	if (!ctx)
		return net_fail(err, -ENOMEM, "out of memory");
	if (!root)
		root = getenv("ZONEVM_ROOT");
	if (!root || !*root)
		root = NET_DEFAULT_ROOT;
	if (strlen(root) >= sizeof(ctx->root) - 64) {
		free(ctx);
		return net_fail(err, -ENAMETOOLONG, "zonevm root \"%s\": path too long", root);
	}
	snprintf(ctx->root, sizeof(ctx->root), "%s", root);
	ctx->nl = nl_socket_alloc();
	if (!ctx->nl) {
		free(ctx);
		return net_fail(err, -ENOMEM, "netlink: out of memory");
	}
	r = nl_connect(ctx->nl, NETLINK_ROUTE);
	if (r < 0) {
		net_close(ctx);
		return net_fail(err, nl_errno(r), "netlink: %s", nl_geterror(r));
	}
	ctx->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx->nft) {
		net_close(ctx);
		return net_fail(err, -ENOMEM, "nftables: cannot create a context");
	}
	nft_ctx_buffer_output(ctx->nft);
	nft_ctx_buffer_error(ctx->nft);
	*out = ctx;
	return 0;
}

void net_close(struct net_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->nft)
		nft_ctx_free(ctx->nft);
	if (ctx->nl)
		nl_socket_free(ctx->nl);
	free(ctx);
}

const char *net_root(const struct net_ctx *ctx)
{
	return ctx->root;
}

static int link_get(struct net_ctx *ctx, const char *name, struct rtnl_link **out)
{
	int r = rtnl_link_get_kernel(ctx->nl, 0, name, out);

	return r < 0 ? nl_errno(r) : 0;
}

int link_index(struct net_ctx *ctx, const char *name)
{
	struct rtnl_link *l;
	int r = link_get(ctx, name, &l);

	if (r)
		return r;
	r = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	return r;
}

int link_is_bridge(struct net_ctx *ctx, const char *name)
{
	struct rtnl_link *l;
	int r = link_get(ctx, name, &l);

	if (r)
		return r;
	const char *type = rtnl_link_get_type(l);
	r = type && !strcmp(type, "bridge");
	rtnl_link_put(l);
	return r;
}

int link_bridge_create(struct net_ctx *ctx, const char *name, unsigned mtu, struct net_err *err)
{
	struct rtnl_link *l = rtnl_link_bridge_alloc();
	int r;

	if (!l)
		return net_fail(err, -ENOMEM, "bridge %s: out of memory", name);
	rtnl_link_set_name(l, name);
	if (mtu)
		rtnl_link_set_mtu(l, mtu);
	rtnl_link_set_flags(l, IFF_UP);
	r = rtnl_link_add(ctx->nl, l, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(l);
	if (r < 0)
		return net_fail(err, nl_errno(r), "bridge %s: cannot create: %s", name,
		                nl_geterror(r));
	return 0;
}

int link_set_master_up(struct net_ctx *ctx, const char *name, const char *master,
                       struct net_err *err)
{
	struct rtnl_link *l, *change = rtnl_link_alloc();
	int r, mi = master ? link_index(ctx, master) : 0;

	if (!change)
		return net_fail(err, -ENOMEM, "link %s: out of memory", name);
	if (mi < 0) {
		rtnl_link_put(change);
		return net_fail(err, mi, "bridge %s: %s", master, strerror(-mi));
	}
	r = link_get(ctx, name, &l);
	if (r) {
		rtnl_link_put(change);
		return net_fail(err, r, "link %s: %s", name, strerror(-r));
	}
	if (mi)
		rtnl_link_set_master(change, mi);
	rtnl_link_set_flags(change, IFF_UP);
	r = rtnl_link_change(ctx->nl, l, change, 0);
	rtnl_link_put(l);
	rtnl_link_put(change);
	if (r < 0)
		return net_fail(err, nl_errno(r), "link %s: cannot attach to %s and bring up: %s",
		                name, master ? master : "-", nl_geterror(r));
	return 0;
}

int link_delete(struct net_ctx *ctx, const char *name)
{
	struct rtnl_link *l;
	int r = link_get(ctx, name, &l);

	if (r)
		return r;
	r = rtnl_link_delete(ctx->nl, l);
	rtnl_link_put(l);
	return r < 0 ? nl_errno(r) : 0;
}

/* Call fn on each link; fn returns <0 to stop. */
static int link_each(struct net_ctx *ctx, int (*fn)(struct rtnl_link *, void *), void *arg)
{
	struct nl_cache *cache;
	int r = rtnl_link_alloc_cache(ctx->nl, AF_UNSPEC, &cache);

	if (r < 0)
		return nl_errno(r);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		r = fn((struct rtnl_link *)o, arg);
		if (r < 0)
			break;
	}
	nl_cache_free(cache);
	return r < 0 ? r : 0;
}

struct port_count {
	int master;
	const char *prefix;
	int n;
};

static int count_port(struct rtnl_link *l, void *arg)
{
	struct port_count *pc = arg;
	const char *name = rtnl_link_get_name(l);

	if (rtnl_link_get_master(l) == pc->master && name &&
	    !strncmp(name, pc->prefix, strlen(pc->prefix)))
		pc->n++;
	return 0;
}

int link_count_ports(struct net_ctx *ctx, const char *bridge, const char *prefix)
{
	struct port_count pc = {.master = link_index(ctx, bridge), .prefix = prefix};

	if (pc.master < 0)
		return pc.master;
	int r = link_each(ctx, count_port, &pc);
	return r ? r : pc.n;
}

struct prefix_del {
	struct net_ctx *ctx;
	const char *prefix;
	int n;
	int err;
};

static int del_prefixed(struct rtnl_link *l, void *arg)
{
	struct prefix_del *pd = arg;
	const char *name = rtnl_link_get_name(l);

	size_t pl = strlen(pd->prefix);

	/* prefix then digits only: zvm<vmid>n<index> */
	if (name && !strncmp(name, pd->prefix, pl) && name[pl] &&
	    strspn(name + pl, "0123456789") == strlen(name + pl)) {
		int r = rtnl_link_delete(pd->ctx->nl, l);
		if (r < 0 && nl_errno(r) != -ENODEV)
			pd->err = nl_errno(r);
		else
			pd->n++;
	}
	return 0;
}

int link_delete_prefix(struct net_ctx *ctx, const char *prefix)
{
	struct prefix_del pd = {.ctx = ctx, .prefix = prefix};
	int r = link_each(ctx, del_prefixed, &pd);

	if (r)
		return r;
	return pd.err ? pd.err : pd.n;
}

int link_tap_open(const char *name, bool multi, struct net_err *err)
{
	struct ifreq ifr = {0};
	int hdr = NET_VNET_HDR_SIZE;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return net_fail(err, -errno, "tap %s: /dev/net/tun: %s", name, strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* not persistent: the tap goes away with its last descriptor */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return net_fail(err, -e, "tap %s: TUNSETIFF: %s", name, strerror(e));
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		int e = errno;
		close(fd);
		return net_fail(err, -e, "tap %s: TUNSETVNETHDRSZ: %s", name, strerror(e));
	}
	return fd;
}

/*
 * Bridge VLAN filtering: turn it on for the bridge (IFLA_BR_VLAN_FILTERING)
 * and make `vlan` the port's only VLAN, PVID and untagged, so the guest
 * sees plain frames and reaches only ports of the same VLAN.
 */
int link_port_vlan(struct net_ctx *ctx, const char *bridge, const char *port, uint16_t vlan,
                   struct net_err *err)
{
	int bi = link_index(ctx, bridge), pi = link_index(ctx, port);
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct nl_msg *m;
	struct nlattr *li, *data, *spec;
	int r;

	if (bi < 0 || pi < 0)
		return net_fail(err, -ENODEV, "vlan %u: bridge %s or port %s missing", vlan, bridge,
		                port);
	/* 1. vlan_filtering=1 on the bridge */
	m = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (!m)
		return net_fail(err, -ENOMEM, "out of memory");
	ifi.ifi_index = bi;
	if (nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    !(li = nla_nest_start(m, IFLA_LINKINFO)) ||
	    nla_put_string(m, IFLA_INFO_KIND, "bridge") ||
	    !(data = nla_nest_start(m, IFLA_INFO_DATA)) ||
	    nla_put_u8(m, IFLA_BR_VLAN_FILTERING, 1)) {
		nlmsg_free(m);
		return net_fail(err, -ENOMEM, "out of memory");
	}
	nla_nest_end(m, data);
	nla_nest_end(m, li);
	r = nl_send_sync(ctx->nl, m); /* frees m */
	if (r < 0)
		return net_fail(err, nl_errno(r),
		                "nic tag %s: cannot turn on bridge VLAN filtering (vlan=%u): %s "
		                "(kernel without CONFIG_BRIDGE_VLAN_FILTERING?)",
		                bridge, vlan, nl_geterror(r));
	/* 2. the port: drop default VLAN 1, add vlan as PVID untagged */
	for (int step = 0; step < 2; step++) {
		struct bridge_vlan_info vi = {
		    .flags = step ? BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED : 0,
		    .vid = step ? vlan : 1};
		struct ifinfomsg pm = {.ifi_family = AF_BRIDGE, .ifi_index = pi};

		m = nlmsg_alloc_simple(step ? RTM_SETLINK : RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
		if (!m)
			return net_fail(err, -ENOMEM, "out of memory");
		if (nlmsg_append(m, &pm, sizeof(pm), NLMSG_ALIGNTO) < 0 ||
		    !(spec = nla_nest_start(m, IFLA_AF_SPEC)) ||
		    nla_put(m, IFLA_BRIDGE_VLAN_INFO, sizeof(vi), &vi)) {
			nlmsg_free(m);
			return net_fail(err, -ENOMEM, "out of memory");
		}
		nla_nest_end(m, spec);
		r = nl_send_sync(ctx->nl, m);
		if (r < 0 && step)
			return net_fail(err, nl_errno(r), "port %s: cannot set vlan %u: %s", port,
			                vlan, nl_geterror(r));
	}
	return 0;
}

int link_stats(struct net_ctx *ctx, const char *name, struct net_nic_stats *st, struct net_err *err)
{
	struct rtnl_link *l;
	int r = link_get(ctx, name, &l);

	if (r)
		return net_fail(err, r, "tap %s: %s", name, strerror(-r));
	/* the tap's tx is what it delivered to the guest: the guest's rx */
	st->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
	st->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
	st->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
	st->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
	st->rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
	st->tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
	rtnl_link_put(l);
	return 0;
}

int link_addr_ensure(struct net_ctx *ctx, const char *name, const struct net_cidr *a,
                     struct net_err *err)
{
	int idx = link_index(ctx, name), r;
	struct rtnl_addr *ra = rtnl_addr_alloc();
	struct nl_addr *local =
	    nl_addr_build(a->a.family, a->a.addr, a->a.family == AF_INET ? 4 : 16);
	char text[INET6_ADDRSTRLEN];

	net_addr_format(&a->a, text, sizeof(text));
	if (idx < 0 || !ra || !local) {
		if (ra)
			rtnl_addr_put(ra);
		if (local)
			nl_addr_put(local);
		return net_fail(err, idx < 0 ? idx : -ENOMEM, "%s: cannot add address %s/%u: %s",
		                name, text, a->prefix, idx < 0 ? strerror(-idx) : "out of memory");
	}
	nl_addr_set_prefixlen(local, a->prefix);
	rtnl_addr_set_ifindex(ra, idx);
	rtnl_addr_set_local(ra, local);
	r = rtnl_addr_add(ctx->nl, ra, 0);
	rtnl_addr_put(ra);
	nl_addr_put(local);
	if (r < 0 && nl_errno(r) != -EEXIST)
		return net_fail(err, nl_errno(r), "%s: cannot add address %s/%u: %s", name, text,
		                a->prefix, nl_geterror(r));
	return 0;
}
