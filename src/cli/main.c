/*
 * main.c - the zonevm binary: dispatch to one subcommand.
 *
 * The commands[] table below is the whole list of subcommands, in the order
 * `zonevm help` shows them.  Nothing else registers commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmd_help_main(int argc, char **argv);

static const struct cli_command commands[] = {
    {.name = "run", .summary = "run a virtual machine (the VMM)", .main = cmd_run_main},
    {.name = "pool", .summary = "create, import, list, scrub storage pools", .main = cmd_pool_main},
    {.name = "vol",
     .summary = "volumes, snapshots, clones, send/recv in a pool",
     .main = cmd_vol_main},
    {.name = "nictag", .summary = "nic tags: host bridges for guest NICs", .main = cmd_nictag_main},
    {.name = "nic", .summary = "a VM's NIC counters; clean up a dead VM's NICs", .main = cmd_nic_main},
    {.name = "disk",
     .summary = "serve a raw disk image over vhost-user-blk",
     .main = cmd_disk_main},
    {.name = "help", .summary = "list the subcommands", .main = cmd_help_main},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: zonevm COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'zonevm COMMAND --help' describes one command.\n");
}

static int cmd_help_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version")) {
		printf("zonevm %s\n", ZONEVM_VERSION);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].main(argc - 1, argv + 1);
	cli_err("unknown command \"%s\" (try 'zonevm help')", argv[1]);
	return CLI_EXIT_USAGE;
}
