/*
 * vol_cli.h - what the files of `zonevm vol` share: option parsing, opening
 * the pool of a POOL/VOL name, finishing a command, and the subcommands
 * that live outside cmd_vol.c (list/get in cmd_vol_list.c, send/recv in
 * cmd_vol_send.c).
 */
#ifndef ZONEVM_VOL_CLI_H
#define ZONEVM_VOL_CLI_H

#include <stddef.h>

struct pool;

#define POOL_NAME_MAX_CLI 64

struct vol_cli_opts {
	int H, p, j, r, s, A;
	const char *t, *o, *i, *blocksize, *compression, *flush;
	const char *pos[8];
	int npos;
};

/* Parse the options of `vol ARGV[0]`; at most MAXPOS positional arguments. */
int vol_cli_opts(int argc, char **argv, struct vol_cli_opts *o, int maxpos);
/* Open the pool of FULL ("POOL/REST"), checking REST's syntax. */
struct pool *vol_cli_open(const char *root, const char *full, int want_snap, const char **rest);
/* Commit and close on success; print the error and abandon otherwise. */
int vol_cli_done(struct pool *p, int err);
/* write(2) all of BUF; 0 or -1 with errno. */
int vol_cli_write_all(int fd, const void *buf, size_t len);

int vol_cli_list(const char *root, int argc, char **argv);
int vol_cli_get(const char *root, int argc, char **argv);
int vol_cli_send(const char *root, int argc, char **argv);
int vol_cli_recv(const char *root, int argc, char **argv);
/* vol serve (cmd_vol_serve.c), in its own process. */
int vol_cli_serve(const char *root, int argc, char **argv);
/*
 * vol serve inside the pool daemon: on SP (NULL: open the pool), messages
 * to ERRFD, relative socket paths against CWD_FD, until STOP_FD is
 * readable.
 */
struct serve_pool;
int vol_cli_serve_in(const char *root, int argc, char **argv, struct serve_pool *sp, int errfd,
                     int cwd_fd, int stop_fd);

#endif
