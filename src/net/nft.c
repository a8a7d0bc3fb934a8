/*
 * nft.c - anti-spoofing rules and drop counters in the nftables bridge
 * family, through libnftables (nft_run_cmd_from_buffer).
 *
 * One table per VM, "bridge zonevm_<vmid>", so a VM's rules are removed by
 * name alone ("delete table bridge zonevm_<vmid>"), also after a crash.
 * Its base chain "guest" (hook prerouting, priority -200) sees every frame
 * a guest sends into the bridge, before forwarding and local delivery, and
 * jumps to the NIC's chain "n<i>" by input interface (the tap).  Each rule
 * drops through a named counter "n<i>_<reason>" (reason: mac, ip, arp, dhcp,
 * restricted), which nft_nic_counters() reads back as JSON:
 *
 *   n<i>:  ether saddr != MAC                       -> n<i>_mac        (mac)
 *          ether type != { ip, ip6, arp }           -> n<i>_restricted (restricted)
 *          udp sport 67 (v4) / udp sport 547 (v6)   -> n<i>_dhcp       (dhcp)
 *          arp saddr ether != MAC                   -> n<i>_arp        (mac)
 *          arp saddr ip != { 0.0.0.0, ips }         -> n<i>_arp        (ip)
 *          ip saddr 0.0.0.0 udp 68->67              accept (DHCP discovery)
 *          ip saddr != { ips }                      -> n<i>_ip         (ip)
 *          ip6 saddr != { ::, fe80::EUI-64, ips }   -> n<i>_ip         (ip)
 *
 * The name in parentheses is the allow_*_spoofing flag (restricted:
 * allow_restricted_traffic) that leaves the rule out.  Frames to the guest
 * are not filtered here.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define NFT_BUF_MAX 16384

struct nft_buf {
	char s[NFT_BUF_MAX];
	size_t n;
	bool overflow;
};

static void nft_add(struct nft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void nft_add(struct nft_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(b->s) - b->n)
		b->overflow = true;
	else
		b->n += (size_t)r;
}

static int nft_run(struct net_ctx *ctx, const char *cmd, struct net_err *err, const char *what)
{
	if (nft_run_cmd_from_buffer(ctx->nft, cmd) == 0)
		return 0;
	const char *e = nft_ctx_get_error_buffer(ctx->nft);
	char first[160];
	size_t n = strcspn(e ? e : "", "\n");

	if (n >= sizeof(first))
		n = sizeof(first) - 1;
	memcpy(first, e ? e : "", n);
	first[n] = '\0';
	if (strstr(e ? e : "", "No such file or directory"))
		return net_fail(err, -ENOENT, "%s: %s", what, first);
	return net_fail(err, -EIO, "%s: %s", what, first);
}

/* Does CIDR b contain CIDR a (same family)? */
static bool cidr_within(const struct net_cidr *a, const struct net_cidr *b)
{
	if (a->a.family != b->a.family || b->prefix > a->prefix)
		return false;
	for (unsigned bit = 0; bit < b->prefix; bit++) {
		unsigned m = 0x80u >> (bit % 8);
		if ((a->a.addr[bit / 8] & m) != (b->a.addr[bit / 8] & m))
			return false;
	}
	return true;
}

/*
 * The source set of one family: ip (as a host address) and allowed_ips,
 * without elements another contains (nft rejects overlapping intervals),
 * plus `extra`.  Returns the number of elements written.
 */
static unsigned nft_src_set(const struct net_nic_spec *s, int family, const struct net_cidr *extra,
                            unsigned n_extra, struct nft_buf *b)
{
	struct net_cidr all[NET_MAX_ALLOWED + 4];
	unsigned n = 0, out = 0;

	for (unsigned i = 0; i < n_extra; i++)
		all[n++] = extra[i];
	if (s->has_ip && s->ip.a.family == family) {
		all[n] = s->ip;
		all[n++].prefix = family == AF_INET ? 32 : 128;
	}
	for (unsigned i = 0; i < s->n_allowed; i++)
		if (s->allowed[i].a.family == family)
			all[n++] = s->allowed[i];
	for (unsigned i = 0; i < n; i++) {
		bool skip = false;
		for (unsigned j = 0; j < n && !skip; j++)
			if (j != i && cidr_within(&all[i], &all[j]) &&
			    (!cidr_within(&all[j], &all[i]) || j < i))
				skip = true;
		if (skip)
			continue;
		char a[INET6_ADDRSTRLEN];
		net_addr_format(&all[i].a, a, sizeof(a));
		nft_add(b, "%s%s/%u", out++ ? ", " : "", a, all[i].prefix);
	}
	return out;
}

int nft_nic_rules(struct net_ctx *ctx, const char *vmid, unsigned index, const struct net_nic *nic,
                  struct net_err *err)
{
	static const struct nft_buf zero;
	struct nft_buf *b = malloc(sizeof(*b));
	const struct net_nic_spec *s = &nic->spec;
	char t[32], c[8], mac[18];
	struct net_cidr any4 = {.a.family = AF_INET, .prefix = 32};
	struct net_cidr v6x[2] = {{.a.family = AF_INET6, .prefix = 128}};
	int r;

	if (!b)
		return net_fail(err, -ENOMEM, "out of memory");
	*b = zero;
	snprintf(t, sizeof(t), "bridge zonevm_%s", vmid);
	snprintf(c, sizeof(c), "n%u", index);
	net_mac_format(s->mac, mac);
	net_mac_linklocal(s->mac, &v6x[1].a);
	v6x[1].prefix = 128;

	nft_add(b, "add table %s\n", t);
	nft_add(b,
	        "add chain %s guest { type filter hook prerouting priority -200; "
	        "policy accept; }\n",
	        t);
	for (int d = 0; d < NET_DROP_COUNT; d++)
		nft_add(b, "add counter %s %s_%s\n", t, c, net_drop_name((enum net_drop)d));
	nft_add(b, "add chain %s %s\n", t, c);
	nft_add(b, "add rule %s guest iifname \"%s\" jump %s\n", t, nic->tap, c);
#define RULE(...)                                                                                  \
	do {                                                                                       \
		nft_add(b, "add rule %s %s ", t, c);                                               \
		nft_add(b, __VA_ARGS__);                                                           \
		nft_add(b, " drop\n");                                                             \
	} while (0)
	if (!(s->allow & NET_ALLOW_MAC_SPOOF))
		RULE("ether saddr != %s counter name %s_mac", mac, c);
	if (!(s->allow & NET_ALLOW_RESTRICTED))
		RULE("ether type != { ip, ip6, arp } counter name %s_restricted", c);
	if (!(s->allow & NET_ALLOW_DHCP_SPOOF)) {
		RULE("ether type ip udp sport 67 counter name %s_dhcp", c);
		RULE("ether type ip6 udp sport 547 counter name %s_dhcp", c);
	}
	if (!(s->allow & NET_ALLOW_MAC_SPOOF))
		RULE("ether type arp arp saddr ether != %s counter name %s_arp", mac, c);
	if (!(s->allow & NET_ALLOW_IP_SPOOF)) {
		struct nft_buf *sb = calloc(3, sizeof(*sb));
		if (!sb) {
			free(b);
			return net_fail(err, -ENOMEM, "out of memory");
		}
		/* ARP probes (RFC 5227) have sender IP 0.0.0.0; DAD uses :: */
		nft_src_set(s, AF_INET, &any4, 1, &sb[0]);
		unsigned n4 = nft_src_set(s, AF_INET, NULL, 0, &sb[1]);
		nft_src_set(s, AF_INET6, v6x, 2, &sb[2]);
		RULE("ether type arp arp saddr ip != { %s } counter name %s_arp", sb[0].s, c);
		nft_add(b,
		        "add rule %s %s ether type ip ip saddr 0.0.0.0 udp sport 68 "
		        "udp dport 67 accept\n",
		        t, c);
		if (n4)
			RULE("ether type ip ip saddr != { %s } counter name %s_ip", sb[1].s, c);
		else
			RULE("ether type ip counter name %s_ip", c);
		RULE("ether type ip6 ip6 saddr != { %s } counter name %s_ip", sb[2].s, c);
		free(sb);
	}
#undef RULE
	if (b->overflow) {
		free(b);
		return net_fail(err, -E2BIG, "nic %u: nft rules too long", index);
	}
	char what[64];
	snprintf(what, sizeof(what), "nft table zonevm_%s nic %u", vmid, index);
	r = nft_run(ctx, b->s, err, what);
	free(b);
	return r;
}

int nft_vm_delete(struct net_ctx *ctx, const char *vmid, struct net_err *err)
{
	char cmd[64], what[48];

	snprintf(cmd, sizeof(cmd), "delete table bridge zonevm_%s", vmid);
	snprintf(what, sizeof(what), "nft table zonevm_%s", vmid);
	int r = nft_run(ctx, cmd, err, what);
	return r == -ENOENT ? 0 : r;
}

int nft_nic_counters(struct net_ctx *ctx, const char *vmid, unsigned index,
                     struct net_nic_stats *st, struct net_err *err)
{
	char cmd[64], what[48];
	unsigned flags = nft_ctx_output_get_flags(ctx->nft);
	int r;

	snprintf(cmd, sizeof(cmd), "list table bridge zonevm_%s", vmid);
	snprintf(what, sizeof(what), "nft table zonevm_%s", vmid);
	nft_ctx_output_set_flags(ctx->nft, flags | NFT_CTX_OUTPUT_JSON);
	r = nft_run(ctx, cmd, err, what);
	nft_ctx_output_set_flags(ctx->nft, flags);
	if (r)
		return r;
	cJSON *root = cJSON_Parse(nft_ctx_get_output_buffer(ctx->nft));
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "nftables");
	cJSON *item;
	char prefix[8];
	size_t pl = (size_t)snprintf(prefix, sizeof(prefix), "n%u_", index);

	if (!cJSON_IsArray(list)) {
		cJSON_Delete(root);
		return net_fail(err, -EIO, "%s: unexpected JSON from libnftables", what);
	}
	cJSON_ArrayForEach(item, list)
	{
		cJSON *ctr = cJSON_GetObjectItemCaseSensitive(item, "counter");
		cJSON *name = cJSON_GetObjectItemCaseSensitive(ctr, "name");
		if (!cJSON_IsString(name) || strncmp(name->valuestring, prefix, pl))
			continue;
		for (int d = 0; d < NET_DROP_COUNT; d++)
			if (!strcmp(name->valuestring + pl, net_drop_name((enum net_drop)d))) {
				cJSON *p = cJSON_GetObjectItemCaseSensitive(ctr, "packets");
				cJSON *by = cJSON_GetObjectItemCaseSensitive(ctr, "bytes");
				st->drops[d] = cJSON_IsNumber(p) ? (uint64_t)p->valuedouble : 0;
				st->drop_bytes[d] =
				    cJSON_IsNumber(by) ? (uint64_t)by->valuedouble : 0;
			}
	}
	cJSON_Delete(root);
	return 0;
}
