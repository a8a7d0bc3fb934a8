/*
 * tc.c - bandwidth caps (max_bandwidth) with tc through libnl-route-3.
 *
 * Both directions are shaped by a token bucket (tbf), never policed, so a
 * TCP flow slows down instead of losing packets:
 *
 *   to the guest:    host -> bridge -> tap egress [tbf]           -> guest
 *   from the guest:  guest -> tap ingress [u32 match-all, mirred redirect]
 *                          -> ifb zvm<vmid>i<n> egress [tbf] -> back into
 *                             the tap's receive path -> bridge (nft rules)
 *
 * The ifb is needed because Linux shapes only on egress; an ingress policer
 * (act_police) would do without it but drops instead of queueing, and is
 * not in every kernel.  Burst: 20 ms worth of rate, at least 64 KiB so one
 * GSO super-packet from the vnet header path fits.  Queue limit: 50 ms of
 * latency to the guest; 200 ms from it, because the guest's TSO sends 64 KiB
 * super-packets in bursts and a tap write gets no back-pressure from the
 * ifb: with 50 ms (7 super-packets at 50 Mbit/s) the queue overflowed and a
 * guest's TCP flow reached only 41 of 50 Mbit/s on a loaded host.  The
 * qdiscs on the tap vanish with it; the ifb is deleted by name.
 */
#include <errno.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <string.h>

#include "internal.h"

#define TC_BURST_MIN      (64 * 1024)
#define TC_LATENCY_US     50000  /* to the guest (tap egress) */
#define TC_LATENCY_IFB_US 200000 /* from the guest (ifb egress) */
#define TC_INGRESS        0xffff0000u
#define TC_ROOT_HANDLE    0x00010000u

static int tc_tbf(struct net_ctx *ctx, int ifindex, const char *name, uint64_t bits_per_s,
                  int latency_us, struct net_err *err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	uint64_t rate = bits_per_s / 8; /* bytes/s, fits 32 bits (nicspec.c) */
	uint64_t burst = rate / 50;
	int r;

	if (!q)
		return net_fail(err, -ENOMEM, "out of memory");
	if (burst < TC_BURST_MIN)
		burst = TC_BURST_MIN;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	rtnl_tc_set_handle(TC_CAST(q), TC_ROOT_HANDLE);
	r = rtnl_tc_set_kind(TC_CAST(q), "tbf");
	if (r == 0) {
		rtnl_qdisc_tbf_set_rate(q, (int)rate, (int)burst, 0);
		r = rtnl_qdisc_tbf_set_limit_by_latency(q, latency_us);
	}
	if (r == 0)
		r = rtnl_qdisc_add(ctx->nl, q, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_qdisc_put(q);
	if (r < 0)
		return net_fail(err, -EIO, "%s: cannot add tbf qdisc: %s", name, nl_geterror(r));
	return 0;
}

/* ingress qdisc on the tap and a match-all u32 filter redirecting to the ifb */
static int tc_redirect(struct net_ctx *ctx, int tapi, int ifbi, const char *tap,
                       struct net_err *err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	struct rtnl_cls *c = NULL;
	struct rtnl_act *a = NULL;
	int r = -NLE_NOMEM;

	if (!q)
		goto out;
	rtnl_tc_set_ifindex(TC_CAST(q), tapi);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), TC_INGRESS);
	r = rtnl_tc_set_kind(TC_CAST(q), "ingress");
	if (r == 0)
		r = rtnl_qdisc_add(ctx->nl, q, NLM_F_CREATE | NLM_F_REPLACE);
	if (r < 0)
		goto out;
	r = -NLE_NOMEM;
	c = rtnl_cls_alloc();
	a = rtnl_act_alloc();
	if (!c || !a)
		goto out;
	rtnl_tc_set_ifindex(TC_CAST(c), tapi);
	rtnl_tc_set_parent(TC_CAST(c), TC_INGRESS);
	rtnl_cls_set_protocol(c, ETH_P_ALL);
	rtnl_cls_set_prio(c, 1);
	r = rtnl_tc_set_kind(TC_CAST(c), "u32");
	if (r == 0)
		r = rtnl_tc_set_kind(TC_CAST(a), "mirred");
	if (r < 0)
		goto out;
	rtnl_mirred_set_action(a, TCA_EGRESS_REDIR);
	rtnl_mirred_set_policy(a, TC_ACT_STOLEN);
	rtnl_mirred_set_ifindex(a, (uint32_t)ifbi);
	rtnl_u32_add_key_uint32(c, 0, 0, 0, 0); /* match every frame */
	rtnl_u32_set_cls_terminal(c);
	r = rtnl_u32_add_action(c, a);
	if (r == 0)
		r = rtnl_cls_add(ctx->nl, c, NLM_F_CREATE | NLM_F_EXCL);
out:
	if (a)
		rtnl_act_put(a);
	if (c)
		rtnl_cls_put(c);
	if (q)
		rtnl_qdisc_put(q);
	if (r < 0)
		return net_fail(err, -EIO, "%s: cannot redirect ingress to its ifb: %s", tap,
		                nl_geterror(r));
	return 0;
}

static int tc_ifb_create(struct net_ctx *ctx, const char *ifb, struct net_err *err)
{
	struct rtnl_link *l = rtnl_link_alloc();
	int r;

	if (!l)
		return net_fail(err, -ENOMEM, "out of memory");
	rtnl_link_set_name(l, ifb);
	r = rtnl_link_set_type(l, "ifb");
	if (r == 0) {
		rtnl_link_set_flags(l, IFF_UP);
		r = rtnl_link_add(ctx->nl, l, NLM_F_CREATE | NLM_F_EXCL);
	}
	rtnl_link_put(l);
	if (r < 0)
		return net_fail(err, -EIO, "ifb %s: cannot create: %s (kernel without ifb?)", ifb,
		                nl_geterror(r));
	return 0;
}

int tc_cap(struct net_ctx *ctx, const char *tap, const char *ifb, uint64_t bits_per_s,
           struct net_err *err)
{
	int tapi = link_index(ctx, tap), ifbi;
	int r;

	if (tapi < 0)
		return net_fail(err, tapi, "tap %s: missing", tap);
	r = tc_ifb_create(ctx, ifb, err);
	if (r)
		return r;
	ifbi = link_index(ctx, ifb);
	if (ifbi < 0)
		return net_fail(err, ifbi, "ifb %s: missing after creation", ifb);
	r = tc_tbf(ctx, tapi, tap, bits_per_s, TC_LATENCY_US, err);
	if (!r)
		r = tc_tbf(ctx, ifbi, ifb, bits_per_s, TC_LATENCY_IFB_US, err);
	if (!r)
		r = tc_redirect(ctx, tapi, ifbi, tap, err);
	return r;
}
