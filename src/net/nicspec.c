/*
 * nicspec.c - the `--nic` spec: parse, validate, generate MACs.
 *
 * A spec is "key=value" and bare flags separated by commas; list values
 * (resolvers, allowed_ips) use ';'.  Every error names the field and the
 * value that was wrong.  Nothing here touches the host: checking that the
 * nic tag exists is nictag.c's job, so this file can be fuzzed alone.
 *
 * Generated MACs are locally administered unicast (02:xx:..), from an
 * FNV-1a hash of the VM identity and the NIC index, so a VM keeps its MACs
 * across reboots without storing them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

#define NIC_SPEC_MAX 4096

static int spec_fail(struct net_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int spec_fail(struct net_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int net_mac_parse(const char *s, uint8_t mac[6])
{
	/* exactly xx:xx:xx:xx:xx:xx (or '-' separators), two hex digits each */
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval((unsigned char)s[i * 3]);
		int lo = hexval((unsigned char)s[i * 3 + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		if (i < 5 && s[i * 3 + 2] != ':' && s[i * 3 + 2] != '-')
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void net_mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
	         mac[5]);
}

int net_addr_parse(const char *s, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (strchr(s, ':')) {
		a->family = AF_INET6;
		return inet_pton(AF_INET6, s, a->addr) == 1 ? 0 : -EINVAL;
	}
	a->family = AF_INET;
	return inet_pton(AF_INET, s, a->addr) == 1 ? 0 : -EINVAL;
}

void net_addr_format(const struct net_addr *a, char *out, size_t len)
{
	if (!inet_ntop(a->family, a->addr, out, (socklen_t)len) && len)
		out[0] = '\0';
}

int net_cidr_parse(const char *s, struct net_cidr *c)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);

	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (net_addr_parse(buf, &c->a))
		return -EINVAL;
	unsigned max = c->a.family == AF_INET ? 32 : 128;
	if (!slash) {
		c->prefix = (uint8_t)max;
		return 0;
	}
	const char *p = slash + 1;
	if (!*p || strlen(p) > 3)
		return -EINVAL;
	unsigned v = 0;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > max)
		return -EINVAL;
	c->prefix = (uint8_t)v;
	return 0;
}

int net_rate_parse(const char *s, uint64_t *bits_per_s)
{
	/* decimal digits, optional K/M/G/T (powers of 1000), optional "bit"/"bps" */
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	uint64_t mul = 1;
	switch (toupper((unsigned char)*p)) {
	case 'K':
		mul = 1000;
		p++;
		break;
	case 'M':
		mul = 1000000;
		p++;
		break;
	case 'G':
		mul = 1000000000;
		p++;
		break;
	case 'T':
		mul = 1000000000000ull;
		p++;
		break;
	}
	if (*p && strcasecmp(p, "bit") && strcasecmp(p, "bps"))
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*bits_per_s = v * mul;
	return 0;
}

int net_vmid_check(const char *vmid)
{
	size_t n = strlen(vmid);

	if (n == 0 || n > NET_VMID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)vmid[i]) && !isdigit((unsigned char)vmid[i]))
			return -EINVAL;
	return 0;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

void net_mac_generate(const char *vm_identity, unsigned index, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t idx[4] = {(uint8_t)index, (uint8_t)(index >> 8), (uint8_t)(index >> 16),
	                  (uint8_t)(index >> 24)};

	h = fnv1a(h, "zonevm-nic", 10);
	h = fnv1a(h, vm_identity, strlen(vm_identity));
	h = fnv1a(h, idx, sizeof(idx));
	mac[0] = 0x02; /* locally administered, unicast */
	for (int i = 1; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * (i - 1)));
}

void net_nic_spec_finish(struct net_nic_spec *spec, const char *vm_identity, unsigned index)
{
	if (!spec->mac_set) {
		net_mac_generate(vm_identity, index, spec->mac);
		spec->mac_set = true;
	}
}

void net_mac_linklocal(const uint8_t mac[6], struct net_addr *out)
{
	memset(out, 0, sizeof(*out));
	out->family = AF_INET6;
	out->addr[0] = 0xfe;
	out->addr[1] = 0x80;
	out->addr[8] = mac[0] ^ 0x02;
	out->addr[9] = mac[1];
	out->addr[10] = mac[2];
	out->addr[11] = 0xff;
	out->addr[12] = 0xfe;
	out->addr[13] = mac[3];
	out->addr[14] = mac[4];
	out->addr[15] = mac[5];
}

/* Split a ';' list into addresses or CIDRs. */
static int parse_list(const char *key, char *val, bool cidr, void *out, unsigned max, unsigned *n,
                      struct net_err *err)
{
	char *save = NULL;

	*n = 0;
	size_t len = strlen(val);
	if (!len || val[0] == ';' || val[len - 1] == ';' || strstr(val, ";;"))
		return spec_fail(err, "nic spec: %s has an empty entry", key);
	for (char *t = strtok_r(val, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		if (*n == max)
			return spec_fail(err, "nic spec: %s: more than %u entries", key, max);
		int r = cidr ? net_cidr_parse(t, &((struct net_cidr *)out)[*n])
		             : net_addr_parse(t, &((struct net_addr *)out)[*n]);
		if (r)
			return spec_fail(err, "nic spec: %s: \"%s\" is not %s", key, t,
			                 cidr ? "an IP address or CIDR" : "an IP address");
		(*n)++;
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
} spec_flags[] = {
    {"allow_ip_spoofing", NET_ALLOW_IP_SPOOF},
    {"allow_mac_spoofing", NET_ALLOW_MAC_SPOOF},
    {"allow_dhcp_spoofing", NET_ALLOW_DHCP_SPOOF},
    {"allow_restricted_traffic", NET_ALLOW_RESTRICTED},
};

static int spec_flag(struct net_nic_spec *spec, const char *key, struct net_err *err)
{
	if (!strcmp(key, "vhost")) {
		spec->vhost = true;
		return 0;
	}
	for (size_t i = 0; i < sizeof(spec_flags) / sizeof(spec_flags[0]); i++)
		if (!strcmp(key, spec_flags[i].name)) {
			spec->allow |= spec_flags[i].bit;
			return 0;
		}
	return spec_fail(err, "nic spec: unknown key \"%s\"", key);
}

static int spec_field(struct net_nic_spec *spec, const char *key, char *val, struct net_err *err)
{
	if (!strcmp(key, "tag")) {
		if (net_nictag_check_name(val, err))
			return -EINVAL;
		snprintf(spec->tag, sizeof(spec->tag), "%s", val);
	} else if (!strcmp(key, "mac")) {
		if (net_mac_parse(val, spec->mac))
			return spec_fail(err,
			                 "nic spec: mac \"%s\" is not a MAC address "
			                 "(want xx:xx:xx:xx:xx:xx)",
			                 val);
		if (spec->mac[0] & 1)
			return spec_fail(err, "nic spec: mac \"%s\" is a multicast address", val);
		if (!memcmp(spec->mac, "\0\0\0\0\0\0", 6))
			return spec_fail(err, "nic spec: mac \"%s\" is all zeros", val);
		spec->mac_set = true;
	} else if (!strcmp(key, "ip")) {
		if (net_cidr_parse(val, &spec->ip))
			return spec_fail(err, "nic spec: ip \"%s\" is not an address/prefix", val);
		spec->has_ip = true;
	} else if (!strcmp(key, "gateway")) {
		if (net_addr_parse(val, &spec->gateway))
			return spec_fail(err, "nic spec: gateway \"%s\" is not an IP address", val);
		spec->has_gateway = true;
	} else if (!strcmp(key, "resolvers")) {
		return parse_list("resolvers", val, false, spec->resolvers, NET_MAX_RESOLVERS,
		                  &spec->n_resolvers, err);
	} else if (!strcmp(key, "allowed_ips")) {
		return parse_list("allowed_ips", val, true, spec->allowed, NET_MAX_ALLOWED,
		                  &spec->n_allowed, err);
	} else if (!strcmp(key, "vlan")) {
		char *end;
		errno = 0;
		long v = strtol(val, &end, 10);
		if (!isdigit((unsigned char)*val) || *end || errno || v < 1 || v > 4094)
			return spec_fail(err, "nic spec: vlan \"%s\" is not a VLAN id (1-4094)",
			                 val);
		spec->vlan = (uint16_t)v;
	} else if (!strcmp(key, "queues")) {
		if (strlen(val) != 1 || val[0] < '1' || val[0] > '0' + NET_MAX_QUEUES)
			return spec_fail(err, "nic spec: queues \"%s\" is not 1-%d", val,
			                 NET_MAX_QUEUES);
		spec->queues = (unsigned)(val[0] - '0');
	} else if (!strcmp(key, "max_bandwidth")) {
		uint64_t r;
		if (net_rate_parse(val, &r))
			return spec_fail(err,
			                 "nic spec: max_bandwidth \"%s\" is not a rate "
			                 "(e.g. 50M, 1G: bits per second)",
			                 val);
		/* tc takes bytes per second in 32 bits: 34 Gbit/s at most */
		if (r < 8000 || r / 8 > UINT32_MAX)
			return spec_fail(err,
			                 "nic spec: max_bandwidth \"%s\" is out of range "
			                 "(8K to 34G)",
			                 val);
		spec->max_bandwidth = r;
	} else {
		return spec_fail(err, "nic spec: unknown key \"%s\"", key);
	}
	return 0;
}

int net_nic_spec_parse(const char *s, struct net_nic_spec *spec, struct net_err *err)
{
	char buf[NIC_SPEC_MAX];
	char seen[16] = {0};
	static const char *const keys[] = {"tag",     "mac",           "ip",
	                                   "gateway", "resolvers",     "allowed_ips",
	                                   "vlan",    "max_bandwidth", "queues"};
	char *save = NULL;

	memset(spec, 0, sizeof(*spec));
	spec->queues = 1;
	err->msg[0] = '\0';
	if (strlen(s) >= sizeof(buf))
		return spec_fail(err, "nic spec: longer than %d bytes", NIC_SPEC_MAX - 1);
	memcpy(buf, s, strlen(s) + 1);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		int r;

		if (!eq) {
			r = spec_flag(spec, t, err);
		} else {
			*eq = '\0';
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
				if (!strcmp(t, keys[i]) && seen[i]++)
					return spec_fail(err, "nic spec: %s given twice", t);
			r = spec_field(spec, t, eq + 1, err);
		}
		if (r)
			return r;
	}
	if (!spec->tag[0])
		return spec_fail(err, "nic spec: tag=NAME is required");
	if (spec->has_gateway && spec->has_ip && spec->gateway.family != spec->ip.a.family)
		return spec_fail(err, "nic spec: gateway and ip are of different families");
	if (spec->has_gateway && !spec->has_ip)
		return spec_fail(err, "nic spec: gateway needs ip");
	return 0;
}

int net_nic_specs_check(const struct net_nic_spec *specs, unsigned n, struct net_err *err)
{
	if (n > NET_MAX_NICS)
		return spec_fail(err, "%u NICs: at most %d per VM", n, NET_MAX_NICS);
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (specs[i].mac_set && specs[j].mac_set &&
			    !memcmp(specs[i].mac, specs[j].mac, 6)) {
				char m[18];
				net_mac_format(specs[i].mac, m);
				return spec_fail(err, "nic %u: mac %s is also nic %u's", i, m, j);
			}
	return 0;
}

const char *net_drop_name(enum net_drop d)
{
	static const char *const names[NET_DROP_COUNT] = {
	    [NET_DROP_MAC] = "mac",
	    [NET_DROP_IP] = "ip",
	    [NET_DROP_ARP] = "arp",
	    [NET_DROP_DHCP] = "dhcp",
	    [NET_DROP_RESTRICTED] = "restricted",
	};
	return (unsigned)d < NET_DROP_COUNT ? names[d] : "?";
}

int net_nictag_check_name(const char *name, struct net_err *err)
{
	/* a nic tag names a bridge: a link name, not one of ours (zvm*) */
	size_t n = strlen(name);

	if (n == 0 || n > NET_TAG_MAX)
		return spec_fail(err, "nic tag \"%s\": name must be 1 to %d characters", name,
		                 NET_TAG_MAX);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
			return spec_fail(err, "nic tag \"%s\": only letters, digits, '_' and '-'",
			                 name);
	if (!strncmp(name, "zvm", 3))
		return spec_fail(err, "nic tag \"%s\": names starting with zvm are reserved", name);
	return 0;
}
