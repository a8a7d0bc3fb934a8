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

int nft_nic_rules(struct net_ctx *ctx, const char *vmid, unsigned index, const struct net_nic *nic,
                  struct net_err *err)
{
	char *cmds, what[64];
	int r = nft_nic_ruleset(vmid, index, nic, &cmds);

	if (r)
		return net_fail(err, r, "nic %u: cannot build its nft rules: %s", index,
		                strerror(-r));
	snprintf(what, sizeof(what), "nft table zonevm_%s nic %u", vmid, index);
	r = nft_run(ctx, cmds, err, what);
	free(cmds);
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
