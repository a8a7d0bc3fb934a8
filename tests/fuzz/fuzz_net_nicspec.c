/*
 * fuzz_net_nicspec.c - libFuzzer target for the --nic spec parser
 * (src/net/nicspec.c): any byte string is parsed; a spec that parses must
 * satisfy the documented invariants (tag set, VLAN 0 or 1..4094, prefixes
 * within their family, counts and queues within bounds, unicast MAC).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[8192];
	struct net_nic_spec s;
	struct net_err err;

	if (size >= sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (net_nic_spec_parse(buf, &s, &err)) {
		if (!err.msg[0])
			abort(); /* every failure says why */
		return 0;
	}
	if (!s.tag[0] || s.vlan > 4094 || s.n_resolvers > NET_MAX_RESOLVERS ||
	    s.n_allowed > NET_MAX_ALLOWED || s.queues < 1 || s.queues > NET_MAX_QUEUES)
		abort();
	if (s.has_ip && s.ip.prefix > (s.ip.a.family == AF_INET ? 32 : 128))
		abort();
	if (s.mac_set && (s.mac[0] & 1))
		abort();
	net_nic_spec_finish(&s, buf, 0);
	if (!s.mac_set || (s.mac[0] & 1))
		abort();
	return 0;
}
