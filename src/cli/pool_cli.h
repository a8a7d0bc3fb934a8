/*
 * pool_cli.h - what `zonevm pool` and `zonevm vol` share (pool_cli.c): the
 * zonevm root and its pool registry, opening a pool by name, splitting
 * POOL/VOL@SNAP, and printing tables, values and JSON.
 *
 * The registry is ROOT/pools/NAME, a symbolic link to the pool's file or
 * device, so that pools come back after a reboot without an import.  ROOT
 * is --root DIR, else $ZONEVM_ROOT, else /var/lib/zonevm.
 */
#ifndef ZONEVM_POOL_CLI_H
#define ZONEVM_POOL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "pool/pool.h"

#define POOL_CLI_DEFAULT_ROOT "/var/lib/zonevm"

/* Remove "--root DIR" / "--root=DIR" from argv; sets the root used below. */
int pool_cli_take_root(int *argc, char **argv, const char **root);

/* Path of the pool registered as NAME into BUF; -ENOENT if none. */
int pool_cli_lookup(const char *root, const char *name, char *buf, size_t len);
int pool_cli_register(const char *root, const char *name, const char *path);
int pool_cli_unregister(const char *root, const char *name);
/* Registered pool names, sorted; free with pool_cli_free_names. */
int pool_cli_names(const char *root, char ***names, size_t *n);
void pool_cli_free_names(char **names, size_t n);

/* Open the registered pool NAME, printing the error; NULL on failure. */
struct pool *pool_cli_open(const char *root, const char *name, int rdonly);
/* Close, printing a commit error; returns an exit status. */
int pool_cli_close(struct pool *p);
/* Close without committing (pool_abandon), or give back the served pool. */
void pool_cli_abandon(struct pool *p);

/*
 * Inside `pool serve` (cmd_pool_serve.c): commands run by the daemon get
 * pool NAME from pool_cli_open as SP's pool, locked until pool_cli_close
 * (which commits) or pool_cli_abandon.
 */
struct serve_pool;
void pool_cli_set_served(const char *name, struct serve_pool *sp);
int pool_cli_is_served(const char *name);
int pool_cli_is_served_any(void);
/*
 * In the daemon, refuse (-EBUSY, with a message naming the holder) when
 * NAME of served pool P, or one of its snapshots, is attached; 0 otherwise.
 */
int pool_cli_check_unused(struct pool *p, const char *name);

/*
 * Outside the daemon: when a daemon serves the pool that the `pool`/`vol`
 * command ARGV (argv[0] "pool" or "vol", --root removed) is about, run it
 * there and return 1 with its exit status in *STATUS; 0 to run it here.
 */
int pool_cli_forward(const char *root, int argc, char **argv, int *status);
/* `pool serve NAME` (cmd_pool_serve.c); ARGV[0] is "serve". */
int pool_cli_serve(const char *root, int argc, char **argv);

/*
 * Split "POOL/REST" into POOL and REST ("VOL" or "VOL@SNAP"), checking the
 * syntax (WANT_SNAP 0 = volume, 1 = snapshot, -1 = either); prints errors.
 */
int pool_cli_split(const char *full, int want_snap, char *pool, size_t plen, const char **rest);

/* Print "zonevm: MSG" where MSG is the pool's message, or strerror. */
int pool_cli_fail(struct pool *p, int err);

/* "1.50G"-style size (ZFS's); exact bytes when PARSABLE. */
void pool_cli_fmt_size(uint64_t v, int parsable, char *buf, size_t len);

/* A table with a header (unless no_header), tab-separated when scripted. */
struct pool_cli_table {
	int no_header, parsable, json;
	size_t ncols, nrows;
	const char **cols;
	char **cells;     /* nrows * ncols */
	void *json_array; /* cJSON array when json */
};
void pool_cli_table_init(struct pool_cli_table *t, const char **cols, size_t ncols, int no_header,
                         int parsable, int json);
/* Add a row: CELLS are the text values; JSON_NUM[i] >= 0 marks a number for -j. */
void pool_cli_table_row(struct pool_cli_table *t, char *const *cells, const int *is_num,
                        const uint64_t *nums);
void pool_cli_table_print(struct pool_cli_table *t, FILE *f);
/* Free the table without printing it. */
void pool_cli_table_free(struct pool_cli_table *t);

/* Progress on stderr when it is a terminal: "what: 12.0M of 1.00G, 80M/s, ETA 12s". */
struct pool_cli_progress {
	int on;
	const char *what;
	uint64_t total, done;
	double start, last;
};
void pool_cli_progress_start(struct pool_cli_progress *pr, const char *what, uint64_t total);
void pool_cli_progress_add(struct pool_cli_progress *pr, uint64_t n);
void pool_cli_progress_end(struct pool_cli_progress *pr);

#endif
