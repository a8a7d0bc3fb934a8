/*
 * nftrules.c - the nft commands for one NIC's anti-spoofing rules, as text
 * (the table, chain and rule layout is described in nft.c).  Pure: no
 * libnftables here, so the unit tests check the rules each spec produces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
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

int nft_nic_ruleset(const char *vmid, unsigned index, const struct net_nic *nic, char **out)
{
	static const struct nft_buf zero;
	struct nft_buf *b = malloc(sizeof(*b));
	const struct net_nic_spec *s = &nic->spec;
	char t[32], c[8], mac[18];
	struct net_cidr any4 = {.a.family = AF_INET, .prefix = 32};
	struct net_cidr v6x[2] = {{.a.family = AF_INET6, .prefix = 128}};

	*out = NULL;
	if (!b)
		return -ENOMEM;
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
	else /* a guest's VLAN is its port's; a tag would carry IP, ARP or DHCP
	      * past the rules below, which read the outer EtherType */
		RULE("ether type { 8021q, 8021ad } counter name %s_restricted", c);
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
			return -ENOMEM;
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
		return -E2BIG;
	}
	*out = strdup(b->s);
	free(b);
	return *out ? 0 : -ENOMEM;
}
