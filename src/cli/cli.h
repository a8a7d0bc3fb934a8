/*
 * cli.h - the zonevm command line (src/cli).
 *
 * Every subcommand is one entry of the commands[] table in main.c, with a
 * main-like function declared here.  Subcommands parse their own arguments,
 * print errors that name what was wrong, and return an exit status; only
 * main() calls exit().
 */
#ifndef ZONEVM_CLI_H
#define ZONEVM_CLI_H

#include <stdbool.h>
#include <stdint.h>

struct cli_command {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
};

/* Exit statuses shared by all subcommands. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1, /* the operation failed; a message says why */
	CLI_EXIT_USAGE = 2, /* bad command line */
};

int cmd_run_main(int argc, char **argv);
int cmd_pool_main(int argc, char **argv);
int cmd_vol_main(int argc, char **argv);
int cmd_disk_main(int argc, char **argv);
int cmd_nictag_main(int argc, char **argv);
int cmd_nic_main(int argc, char **argv);

/*
 * Parse a size such as "512", "64K", "256M", "3.5G" (powers of 1024; a
 * trailing "B" or "iB" is accepted).  Returns 0, or -EINVAL for a
 * malformed size, -ERANGE when it does not fit in 64 bits.
 */
int cli_parse_size(const char *s, uint64_t *out);

/*
 * Open a disk image or block device for a virtio-blk backend: O_DIRECT
 * unless *writeback (cache=none, as QEMU's); on a file system without
 * direct I/O (tmpfs) it goes through the page cache instead, sets
 * *writeback and says so on stderr.  Returns the fd or -1 with errno set.
 */
int cli_open_disk(const char *path, bool read_only, bool *writeback);

/* Print "zonevm: " + message to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
