/*
 * cmd_nictag.c - `zonevm nictag` (nic tags: host bridges) and `zonevm nic`
 * (a running VM's NIC counters; removing a dead VM's leftovers).
 *
 * Thin: arguments are checked, then one libnet call does the work
 * (src/net/net.h) and its message is printed as is.  The zonevm root is
 * --root DIR, $ZONEVM_ROOT or /var/lib/zonevm, as for `zonevm pool`.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "net/net.h"

static void nictag_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: zonevm nictag [--root DIR] COMMAND ...\n"
	    "  create NAME [--uplink IFACE] [--mtu N] [--address CIDR]\n"
	    "                                          record a nic tag, create its bridge\n"
	    "                                          (--address: the host's address on\n"
	    "                                          it, needed for DHCP)\n"
	    "  list                                    nic tags, address, bridge present, NICs\n"
	    "  delete NAME                             remove it (refused while NICs use it)\n"
	    "The root is --root DIR, $ZONEVM_ROOT or %s.\n",
	    NET_DEFAULT_ROOT);
}

static void nic_usage(FILE *f)
{
	fprintf(f,
	        "usage: zonevm nic [--root DIR] COMMAND ...\n"
	        "  list                         running VMs' NICs (tap, tag, mac, ip, vlan, cap)\n"
	        "  stats VMID [INDEX] [--json]  rx/tx and drops by reason of a running VM's NICs\n"
	        "  cleanup VMID                 remove a dead VM's taps, ifbs, nft table, DHCP "
	        "hosts\n");
}

/* Take a leading --root DIR off argv; returns the index of the command. */
static int take_root(int argc, char **argv, const char **root)
{
	int i = 1;

	*root = NULL;
	if (i + 1 < argc && !strcmp(argv[i], "--root")) {
		*root = argv[i + 1];
		i += 2;
	}
	return i;
}

static int nictag_create(struct net_ctx *ctx, int argc, char **argv)
{
	struct net_nictag t = {0};
	struct net_err err;
	const char *name = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--uplink") && i + 1 < argc) {
			if (strlen(argv[++i]) > NET_IFNAME_MAX) {
				cli_err("nictag create: uplink \"%s\" is too long", argv[i]);
				return CLI_EXIT_USAGE;
			}
			snprintf(t.uplink, sizeof(t.uplink), "%s", argv[i]);
		} else if (!strcmp(argv[i], "--mtu") && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 68 || v > 65535) {
				cli_err("nictag create: mtu \"%s\" is not 68-65535", argv[i]);
				return CLI_EXIT_USAGE;
			}
			t.mtu = (unsigned)v;
		} else if (!strcmp(argv[i], "--address") && i + 1 < argc) {
			if (net_cidr_parse(argv[++i], &t.address)) {
				cli_err("nictag create: address \"%s\" is not an address/prefix",
				        argv[i]);
				return CLI_EXIT_USAGE;
			}
			t.has_address = true;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			cli_err("nictag create: unexpected \"%s\"", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!name) {
		nictag_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (net_nictag_check_name(name, &err)) {
		cli_err("%s", err.msg);
		return CLI_EXIT_USAGE;
	}
	snprintf(t.name, sizeof(t.name), "%s", name);
	if (net_nictag_create(ctx, &t, &err)) {
		cli_err("%s", err.msg);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

static int nictag_list(struct net_ctx *ctx)
{
	struct net_nictag *tags;
	struct net_err err;
	size_t n;

	if (net_nictag_list(ctx, &tags, &n, &err)) {
		cli_err("%s", err.msg);
		return CLI_EXIT_ERROR;
	}
	printf("%-16s %-16s %-6s %-20s %-8s %s\n", "NAME", "UPLINK", "MTU", "ADDRESS", "BRIDGE",
	       "NICS");
	for (size_t i = 0; i < n; i++) {
		char mtu[16], addr[64] = "-";
		snprintf(mtu, sizeof(mtu), "%u", tags[i].mtu);
		if (tags[i].has_address) {
			net_addr_format(&tags[i].address.a, addr, sizeof(addr) - 5);
			snprintf(addr + strlen(addr), 5, "/%u", tags[i].address.prefix);
		}
		printf("%-16s %-16s %-6s %-20s %-8s %u\n", tags[i].name,
		       tags[i].uplink[0] ? tags[i].uplink : "-", tags[i].mtu ? mtu : "-", addr,
		       tags[i].present ? "up" : "missing", tags[i].nics);
	}
	free(tags);
	return CLI_EXIT_OK;
}

/* [--root DIR] COMMAND ARGS...: open libnet at the root and dispatch. */
static int net_cmd_main(int argc, char **argv, void (*usage)(FILE *),
                        int (*dispatch)(struct net_ctx *, int, char **))
{
	const char *root;
	int i = take_root(argc, argv, &root);
	struct net_ctx *ctx;
	struct net_err err;

	if (i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
		usage(i >= argc ? stderr : stdout);
		return i >= argc ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (net_open(&ctx, root, &err)) {
		cli_err("%s", err.msg);
		return CLI_EXIT_ERROR;
	}
	int r = dispatch(ctx, argc - i, argv + i);
	net_close(ctx);
	return r;
}

static int nictag_dispatch(struct net_ctx *ctx, int argc, char **argv)
{
	struct net_err err;
	const char *cmd = argv[0];

	if (!strcmp(cmd, "create"))
		return nictag_create(ctx, argc - 1, argv + 1);
	if (!strcmp(cmd, "list") && argc == 1)
		return nictag_list(ctx);
	if (!strcmp(cmd, "delete") && argc == 2) {
		if (net_nictag_delete(ctx, argv[1], &err)) {
			cli_err("%s", err.msg);
			return CLI_EXIT_ERROR;
		}
		return CLI_EXIT_OK;
	}
	nictag_usage(stderr);
	return CLI_EXIT_USAGE;
}

int cmd_nictag_main(int argc, char **argv)
{
	return net_cmd_main(argc, argv, nictag_usage, nictag_dispatch);
}

static void nic_stats_text(const char *vmid, unsigned i, const struct net_nic_stats *st)
{
	printf("vm %s nic %u\n", vmid, i);
	printf("  rx_packets %llu rx_bytes %llu rx_dropped %llu\n",
	       (unsigned long long)st->rx_packets, (unsigned long long)st->rx_bytes,
	       (unsigned long long)st->rx_dropped);
	printf("  tx_packets %llu tx_bytes %llu tx_dropped %llu\n",
	       (unsigned long long)st->tx_packets, (unsigned long long)st->tx_bytes,
	       (unsigned long long)st->tx_dropped);
	for (int d = 0; d < NET_DROP_COUNT; d++)
		printf("  drop_%s %llu\n", net_drop_name((enum net_drop)d),
		       (unsigned long long)st->drops[d]);
}

static cJSON *nic_stats_json(const struct net_nic *nic, unsigned i, const struct net_nic_stats *st)
{
	cJSON *o = cJSON_CreateObject(), *drops = cJSON_CreateObject();
	char mac[18];

	net_mac_format(nic->spec.mac, mac);
	cJSON_AddNumberToObject(o, "index", i);
	cJSON_AddStringToObject(o, "tap", nic->tap);
	cJSON_AddStringToObject(o, "tag", nic->spec.tag);
	cJSON_AddStringToObject(o, "mac", mac);
	cJSON_AddNumberToObject(o, "rx_packets", (double)st->rx_packets);
	cJSON_AddNumberToObject(o, "rx_bytes", (double)st->rx_bytes);
	cJSON_AddNumberToObject(o, "rx_dropped", (double)st->rx_dropped);
	cJSON_AddNumberToObject(o, "tx_packets", (double)st->tx_packets);
	cJSON_AddNumberToObject(o, "tx_bytes", (double)st->tx_bytes);
	cJSON_AddNumberToObject(o, "tx_dropped", (double)st->tx_dropped);
	for (int d = 0; d < NET_DROP_COUNT; d++)
		cJSON_AddNumberToObject(drops, net_drop_name((enum net_drop)d),
		                        (double)st->drops[d]);
	cJSON_AddItemToObject(o, "drops", drops);
	return o;
}

/* zonevm nic stats VMID [INDEX] [--json] */
static int nic_stats(struct net_ctx *ctx, int argc, char **argv)
{
	struct net_vm *vm = malloc(sizeof(*vm));
	struct net_nic_stats st;
	struct net_err err;
	const char *vmid = NULL, *index = NULL;
	bool json = false;
	int rc = CLI_EXIT_OK;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!vmid)
			vmid = argv[i];
		else if (!index)
			index = argv[i];
		else
			vmid = NULL, i = argc;
	}
	if (!vm || !vmid) {
		free(vm);
		nic_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (net_vm_load(ctx, vmid, vm, &err)) {
		cli_err("%s", err.msg);
		free(vm);
		return CLI_EXIT_ERROR;
	}
	unsigned lo = 0, hi = vm->n_nics;
	if (index) {
		char *end;
		unsigned long v = strtoul(index, &end, 10);
		if (*end || !*index || v >= vm->n_nics) {
			cli_err("nic stats: vm %s has no nic \"%s\" (it has %u)", vmid, index,
			        vm->n_nics);
			free(vm);
			return CLI_EXIT_USAGE;
		}
		lo = (unsigned)v;
		hi = lo + 1;
	}
	cJSON *root = json ? cJSON_CreateObject() : NULL, *arr = NULL;
	if (root) {
		cJSON_AddStringToObject(root, "vmid", vmid);
		arr = cJSON_AddArrayToObject(root, "nics");
	}
	for (unsigned i = lo; i < hi && rc == CLI_EXIT_OK; i++) {
		if (net_nic_stats(ctx, vmid, i, &st, &err)) {
			cli_err("%s", err.msg);
			rc = CLI_EXIT_ERROR;
		} else if (arr) {
			cJSON_AddItemToArray(arr, nic_stats_json(&vm->nics[i], i, &st));
		} else {
			nic_stats_text(vmid, i, &st);
		}
	}
	if (root && rc == CLI_EXIT_OK) {
		char *text = cJSON_PrintUnformatted(root);
		if (text)
			printf("%s\n", text);
		free(text);
	}
	cJSON_Delete(root);
	free(vm);
	return rc;
}

static int nic_list(struct net_ctx *ctx)
{
	char(*ids)[NET_VMID_MAX + 1];
	struct net_vm *vm = malloc(sizeof(*vm));
	struct net_err err;
	size_t n;

	if (!vm || net_vm_list(ctx, &ids, &n, &err)) {
		cli_err("%s", vm ? err.msg : "out of memory");
		free(vm);
		return CLI_EXIT_ERROR;
	}
	printf("%-8s %-3s %-15s %-15s %-17s %-20s %-5s %s\n", "VM", "NIC", "TAP", "TAG", "MAC",
	       "IP", "VLAN", "MAX_BW");
	for (size_t k = 0; k < n; k++) {
		if (net_vm_load(ctx, ids[k], vm, &err))
			continue;
		for (unsigned i = 0; i < vm->n_nics; i++) {
			const struct net_nic_spec *s = &vm->nics[i].spec;
			char mac[18], ip[64] = "-", bw[32] = "-";
			net_mac_format(s->mac, mac);
			if (s->has_ip) {
				net_addr_format(&s->ip.a, ip, sizeof(ip) - 5);
				snprintf(ip + strlen(ip), 5, "/%u", s->ip.prefix);
			}
			if (s->max_bandwidth)
				snprintf(bw, sizeof(bw), "%llu",
				         (unsigned long long)s->max_bandwidth);
			printf("%-8s %-3u %-15s %-15s %-17s %-20s %-5u %s\n", ids[k], i,
			       vm->nics[i].tap, s->tag, mac, ip, s->vlan, bw);
		}
	}
	free(ids);
	free(vm);
	return CLI_EXIT_OK;
}

static int nic_dispatch(struct net_ctx *ctx, int argc, char **argv)
{
	struct net_err err;

	if (!strcmp(argv[0], "stats"))
		return nic_stats(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[0], "list") && argc == 1)
		return nic_list(ctx);
	if (!strcmp(argv[0], "cleanup") && argc == 2) {
		if (net_vm_cleanup(ctx, argv[1], &err)) {
			cli_err("%s", err.msg);
			return CLI_EXIT_ERROR;
		}
		return CLI_EXIT_OK;
	}
	nic_usage(stderr);
	return CLI_EXIT_USAGE;
}

int cmd_nic_main(int argc, char **argv)
{
	return net_cmd_main(argc, argv, nic_usage, nic_dispatch);
}
