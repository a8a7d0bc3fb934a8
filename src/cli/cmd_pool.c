/*
 * cmd_pool.c - `zonevm pool`: create, import, export, list, status, scrub
 * and destroy pools, registered under the zonevm root (pool_cli.h).
 *
 * Each subcommand checks its arguments before it touches anything, opens
 * the pool (which takes its lock), does one thing and closes it; errors
 * name the pool and the cause, and leave the pool as it was.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"

static void pool_usage(FILE *f)
{
	fprintf(f,
	        "usage: zonevm pool [--root DIR] COMMAND ...\n"
	        "  create NAME FILE [--size SIZE]   new pool in FILE (created sparse if missing)\n"
	        "  import FILE                      register the pool in FILE\n"
	        "  export NAME                      unregister it (the file is kept)\n"
	        "  list [-H] [-p] [-j]              registered pools\n"
	        "  status NAME [-j]                 health, last txg, space, errors, cache\n"
	        "  scrub NAME                       verify every block's checksum\n"
	        "  destroy NAME                     erase the pool's labels and unregister it\n"
	        "  serve NAME                       the pool daemon: owns the pool, runs the\n"
	        "                                   pool/vol commands for it, serves exports\n"
	        "The root is --root DIR, $ZONEVM_ROOT or %s.\n",
	        POOL_CLI_DEFAULT_ROOT);
}

struct flags {
	int H, p, j;
	const char *size;
};

/* Parse -H -p -j --size; the rest stay in POS. */
static int parse_flags(int argc, char **argv, struct flags *fl, char **pos, int *npos, int max)
{
	*npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-H"))
			fl->H = 1;
		else if (!strcmp(argv[i], "-p"))
			fl->p = 1;
		else if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json"))
			fl->j = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			fl->size = argv[++i];
		else if (!strncmp(argv[i], "--size=", 7))
			fl->size = argv[i] + 7;
		else if (argv[i][0] == '-' && argv[i][1]) {
			cli_err("pool %s: unknown option \"%s\"", argv[0], argv[i]);
			return -EINVAL;
		} else if (*npos < max) {
			pos[(*npos)++] = argv[i];
		} else {
			cli_err("pool %s: unexpected argument \"%s\"", argv[0], argv[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int pool_cmd_create(const char *root, int argc, char **argv)
{
	struct flags fl = {0};
	char *pos[2], err[POOL_ERRMSG_MAX], path[PATH_MAX];
	uint64_t size = 0;
	struct stat st;
	int n;

	if (parse_flags(argc, argv, &fl, pos, &n, 2) || n != 2) {
		if (n != 2)
			cli_err("usage: zonevm pool create NAME FILE [--size SIZE]");
		return CLI_EXIT_USAGE;
	}
	if (fl.size && cli_parse_size(fl.size, &size)) {
		cli_err("invalid size \"%s\"", fl.size);
		return CLI_EXIT_USAGE;
	}
	if (pool_cli_lookup(root, pos[0], path, sizeof(path)) == 0) {
		cli_err("pool \"%s\" already exists (%s)", pos[0], path);
		return CLI_EXIT_ERROR;
	}
	if (stat(pos[1], &st) < 0 && !fl.size) {
		cli_err("%s does not exist; give --size to create it", pos[1]);
		return CLI_EXIT_USAGE;
	}
	int existed = stat(pos[1], &st) == 0;
	int e = pool_create(pos[1], pos[0], size, err, sizeof(err));
	if (e) {
		cli_err("%s", err);
		if (!existed)
			unlink(pos[1]);
		return CLI_EXIT_ERROR;
	}
	if (pool_cli_register(root, pos[0], pos[1]))
		return CLI_EXIT_ERROR;
	return CLI_EXIT_OK;
}

static int pool_cmd_import(const char *root, int argc, char **argv)
{
	struct flags fl = {0};
	char *pos[1], err[POOL_ERRMSG_MAX], name[POOL_ERRMSG_MAX], path[PATH_MAX];
	struct pool *p;
	int n;

	if (parse_flags(argc, argv, &fl, pos, &n, 1) || n != 1) {
		cli_err("usage: zonevm pool import FILE");
		return CLI_EXIT_USAGE;
	}
	if (pool_probe(pos[0], name, sizeof(name), NULL, err, sizeof(err))) {
		cli_err("%s", err);
		return CLI_EXIT_ERROR;
	}
	if (pool_cli_lookup(root, name, path, sizeof(path)) == 0) {
		cli_err("a pool named \"%s\" is already registered (%s)", name, path);
		return CLI_EXIT_ERROR;
	}
	if (pool_open(pos[0], 0, &p, err, sizeof(err))) { /* verifies it, and the lock */
		cli_err("%s", err);
		return CLI_EXIT_ERROR;
	}
	pool_abandon(p);
	return pool_cli_register(root, name, pos[0]) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

static int pool_cmd_export(const char *root, int argc, char **argv, int destroy)
{
	struct flags fl = {0};
	char *pos[1], err[POOL_ERRMSG_MAX], path[PATH_MAX];
	struct pool *p;
	int n;

	if (parse_flags(argc, argv, &fl, pos, &n, 1) || n != 1) {
		cli_err("usage: zonevm pool %s NAME", argv[0]);
		return CLI_EXIT_USAGE;
	}
	if (pool_cli_lookup(root, pos[0], path, sizeof(path))) {
		cli_err("no such pool \"%s\"", pos[0]);
		return CLI_EXIT_ERROR;
	}
	if (pool_cli_is_served(pos[0])) {
		cli_err("pool \"%s\" is served by the pool daemon (pid %d); stop it first", pos[0],
		        (int)getpid());
		return CLI_EXIT_ERROR;
	}
	if (destroy) {
		if (pool_destroy(path, err, sizeof(err))) {
			cli_err("%s", err);
			return CLI_EXIT_ERROR;
		}
	} else if ((p = pool_cli_open(root, pos[0], 0)) != NULL) {
		if (pool_cli_close(p)) /* refuses while another process has it */
			return CLI_EXIT_ERROR;
	} else {
		return CLI_EXIT_ERROR;
	}
	pool_cli_unregister(root, pos[0]);
	return CLI_EXIT_OK;
}

/* DEGRADED when reads failed since open or the last scrub found damage. */
static const char *pool_health(const struct pool_status *st)
{
	return st->read_errors || st->scrub_errors ? "DEGRADED" : "ONLINE";
}

static int pool_cmd_list(const char *root, int argc, char **argv)
{
	static const char *cols[] = {"name", "size", "alloc", "free", "health", "path"};
	struct flags fl = {0};
	struct pool_cli_table t;
	char **names, *pos[1];
	size_t nn;
	int n;

	if (parse_flags(argc, argv, &fl, pos, &n, 0))
		return CLI_EXIT_USAGE;
	if (pool_cli_names(root, &names, &nn)) {
		cli_err("cannot read %s/pools", root);
		return CLI_EXIT_ERROR;
	}
	pool_cli_table_init(&t, cols, 6, fl.H, fl.p, fl.j);
	for (size_t i = 0; i < nn; i++) {
		char path[PATH_MAX] = "-", err[POOL_ERRMSG_MAX], c[3][32] = {"-", "-", "-"};
		const char *health = "UNAVAIL";
		uint64_t nums[6] = {0};
		int isnum[6] = {0};
		struct pool_status st;
		struct pool *p;
		pool_cli_lookup(root, names[i], path, sizeof(path));
		int e;
		if (pool_cli_is_served(names[i])) /* inside its daemon */
			e = (p = pool_cli_open(root, names[i], 1)) ? 0 : -EIO;
		else
			e = pool_open(path, POOL_OPEN_RDONLY, &p, err, sizeof(err));
		if (e == 0) {
			pool_get_status(p, &st);
			health = pool_health(&st);
			nums[1] = st.size;
			nums[2] = st.allocated;
			nums[3] = st.size - st.allocated;
			for (int k = 0; k < 3; k++) {
				pool_cli_fmt_size(nums[k + 1], fl.p, c[k], sizeof(c[k]));
				isnum[k + 1] = 1;
			}
			pool_cli_abandon(p);
		} else if (e == -EBUSY) {
			health = "IN-USE";
		}
		char *cells[6] = {names[i], c[0], c[1], c[2], (char *)health, path};
		pool_cli_table_row(&t, cells, isnum, nums);
	}
	pool_cli_table_print(&t, stdout);
	pool_cli_free_names(names, nn);
	return CLI_EXIT_OK;
}

static int pool_cmd_status(const char *root, int argc, char **argv)
{
	static const char *cols[] = {"property", "value"};
	struct flags fl = {0};
	struct pool_status st;
	struct pool_cli_table t;
	char *pos[1], path[PATH_MAX];
	struct pool *p;
	int n;

	if (parse_flags(argc, argv, &fl, pos, &n, 1) || n != 1) {
		cli_err("usage: zonevm pool status NAME [-j]");
		return CLI_EXIT_USAGE;
	}
	p = pool_cli_open(root, pos[0], 1);
	if (!p)
		return CLI_EXIT_ERROR;
	pool_cli_lookup(root, pos[0], path, sizeof(path));
	pool_get_status(p, &st);
	pool_cli_table_init(&t, cols, 2, fl.H, fl.p, 0);
	if (fl.j) {
		printf("{\"name\": \"%s\", \"path\": \"%s\", \"health\": \"%s\", \"guid\": %llu, "
		       "\"txg\": %llu, \"size\": %llu, \"allocated\": %llu, \"deferred\": %llu, "
		       "\"volumes\": %llu, \"snapshots\": %llu, \"errors\": %llu, "
		       "\"log_flushes\": %llu, \"scrub\": {\"txg\": %llu, \"time\": %llu, "
		       "\"blocks\": %llu, \"errors\": %llu}, \"arc\": {"
		       "\"hits\": %llu, \"misses\": %llu, \"size\": %llu, \"cap\": %llu, "
		       "\"mru_size\": %llu, \"mfu_size\": %llu, \"ghost_hits_mru\": %llu, "
		       "\"ghost_hits_mfu\": %llu}}\n",
		       pool_name(p), path, pool_health(&st), (unsigned long long)st.guid,
		       (unsigned long long)st.txg, (unsigned long long)st.size,
		       (unsigned long long)st.allocated, (unsigned long long)st.deferred,
		       (unsigned long long)st.volumes, (unsigned long long)st.snapshots,
		       (unsigned long long)st.read_errors, (unsigned long long)st.log_flushes,
		       (unsigned long long)st.scrub_txg, (unsigned long long)st.scrub_time,
		       (unsigned long long)st.scrub_blocks, (unsigned long long)st.scrub_errors,
		       (unsigned long long)st.arc.hits, (unsigned long long)st.arc.misses,
		       (unsigned long long)st.arc.size, (unsigned long long)st.arc.cap,
		       (unsigned long long)st.arc.mru_size, (unsigned long long)st.arc.mfu_size,
		       (unsigned long long)st.arc.ghost_hits_mru,
		       (unsigned long long)st.arc.ghost_hits_mfu);
		pool_cli_abandon(p);
		return CLI_EXIT_OK;
	}
	printf("  pool: %s\n  path: %s\n state: %s\n  guid: %llu\n   txg: %llu (last committed)\n",
	       pool_name(p), path, pool_health(&st), (unsigned long long)st.guid,
	       (unsigned long long)st.txg);
	char a[32], b[32], c[32];
	pool_cli_fmt_size(st.size, fl.p, a, sizeof(a));
	pool_cli_fmt_size(st.allocated, fl.p, b, sizeof(b));
	pool_cli_fmt_size(st.size - st.allocated, fl.p, c, sizeof(c));
	printf(" space: %s size, %s allocated, %s free\n", a, b, c);
	printf("  vols: %llu volumes, %llu snapshots\n", (unsigned long long)st.volumes,
	       (unsigned long long)st.snapshots);
	if (st.scrub_time) {
		char when[64];
		time_t tt = (time_t)st.scrub_time;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&tt));
		printf(" scrub: %s (txg %llu): %llu blocks verified, %llu damaged\n", when,
		       (unsigned long long)st.scrub_txg, (unsigned long long)st.scrub_blocks,
		       (unsigned long long)st.scrub_errors);
	} else {
		printf(" scrub: never\n");
	}
	printf("errors: %llu found since open, %llu by the last scrub (run 'zonevm pool scrub %s' "
	       "to check every block)\n",
	       (unsigned long long)st.read_errors, (unsigned long long)st.scrub_errors,
	       pool_name(p));
	pool_cli_fmt_size(st.arc.size, fl.p, a, sizeof(a));
	pool_cli_fmt_size(st.arc.cap, fl.p, b, sizeof(b));
	printf(
	    "   arc: %s of %s, %llu hits, %llu misses, mru %llu, mfu %llu, ghost hits %llu/%llu\n",
	    a, b, (unsigned long long)st.arc.hits, (unsigned long long)st.arc.misses,
	    (unsigned long long)st.arc.mru_size, (unsigned long long)st.arc.mfu_size,
	    (unsigned long long)st.arc.ghost_hits_mru, (unsigned long long)st.arc.ghost_hits_mfu);
	pool_cli_abandon(p);
	return CLI_EXIT_OK;
}

static void scrub_report(void *arg, const char *msg)
{
	(void)arg;
	printf("damaged: %s\n", msg);
}

static int pool_cmd_scrub(const char *root, int argc, char **argv)
{
	struct flags fl = {0};
	struct pool_scrub_result r;
	char *pos[1], sz[32];
	struct pool *p;
	int n, e;

	if (parse_flags(argc, argv, &fl, pos, &n, 1) || n != 1) {
		cli_err("usage: zonevm pool scrub NAME");
		return CLI_EXIT_USAGE;
	}
	p = pool_cli_open(root, pos[0], 0);
	if (!p)
		return CLI_EXIT_ERROR;
	e = pool_scrub(p, scrub_report, NULL, &r);
	pool_cli_fmt_size(r.bytes, 0, sz, sizeof(sz));
	printf("scrub of %s: %llu blocks (%s) verified, %llu damaged\n", pool_name(p),
	       (unsigned long long)r.blocks, sz, (unsigned long long)r.errors);
	if (e && e != -EIO)
		pool_cli_fail(p, e);
	pool_cli_abandon(p);
	return e ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int cmd_pool_main(int argc, char **argv)
{
	const char *root;

	if (pool_cli_take_root(&argc, argv, &root))
		return CLI_EXIT_USAGE;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		pool_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	int st;
	if (pool_cli_forward(root, argc, argv, &st))
		return st; /* a pool daemon ran it */
	const char *c = argv[1];
	argc--;
	argv++;
	if (!strcmp(c, "create"))
		return pool_cmd_create(root, argc, argv);
	if (!strcmp(c, "import"))
		return pool_cmd_import(root, argc, argv);
	if (!strcmp(c, "export"))
		return pool_cmd_export(root, argc, argv, 0);
	if (!strcmp(c, "destroy"))
		return pool_cmd_export(root, argc, argv, 1);
	if (!strcmp(c, "list"))
		return pool_cmd_list(root, argc, argv);
	if (!strcmp(c, "status"))
		return pool_cmd_status(root, argc, argv);
	if (!strcmp(c, "scrub"))
		return pool_cmd_scrub(root, argc, argv);
	if (!strcmp(c, "serve"))
		return pool_cli_serve(root, argc, argv);
	cli_err("unknown pool command \"%s\" (try 'zonevm pool --help')", c);
	return CLI_EXIT_USAGE;
}
