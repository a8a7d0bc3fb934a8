/*
 * cmd_pool_serve.c - `zonevm pool serve NAME`, the pool daemon, and how
 * `zonevm pool ...`/`zonevm vol ...` reach it.
 *
 * The daemon itself (socket, threads, signals, commits) is src/serve; this
 * file gives it the one thing it does not know: how to run a command line.
 * A forwarded command runs here exactly as it would in its own process:
 * same code, with the client's stdin/stdout/stderr on fds 0-2 and the
 * client's working directory, and pool_cli_open() handing out the served
 * pool under its lock.  Because fds 0-2 and the working directory belong
 * to the whole process, such commands run one at a time; `vol serve`,
 * which runs until its client hangs up, does not borrow them and runs
 * alongside.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"
#include "serve/serve.h"
#include "vol_cli.h"

#define SERVE_ARGS_MAX          256 /* more than the daemon passes */
#define SERVE_CMD_WAIT_SECS     10
#define SERVE_DIRTY_MAX_DEFAULT (64ull << 20) /* pool.h's default */

struct pool_serve_ctx {
	char root[PATH_MAX];
	char name[64];
	struct serve_pool *sp;
	pthread_mutex_t cmd_lock; /* fds 0-2 and the cwd are borrowed one at a time */
	char running[160];        /* the command holding cmd_lock, for messages */
};

/* Pool subcommands a daemon runs (the others name no pool or start one). */
static int pool_sub_forwardable(const char *sub)
{
	return !strcmp(sub, "status") || !strcmp(sub, "scrub") || !strcmp(sub, "export") ||
	       !strcmp(sub, "destroy") || !strcmp(sub, "list");
}

/* Does option A of `vol` take a value (the next argument)? */
static int vol_opt_has_value(const char *a)
{
	static const char *const v[] = {
	    "-t",      "-o",    "-i",          "--blocksize", "-b", "-c", "--compression",
	    "--flush", "--nbd", "--vhost-user"};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (!strcmp(a, v[i]))
			return 1;
	return 0;
}

/* The pool a `pool`/`vol` command line is about, or 0 when none. */
static int pool_cli_target(int argc, char **argv, char *pool, size_t len)
{
	const char *first = NULL;

	if (argc < 3)
		return 0;
	if (!strcmp(argv[0], "pool")) {
		if (!pool_sub_forwardable(argv[1]))
			return 0;
		for (int i = 2; i < argc; i++) {
			if (argv[i][0] != '-') {
				snprintf(pool, len, "%s", argv[i]);
				return 1;
			}
		}
		return 0;
	}
	if (strcmp(argv[0], "vol"))
		return 0;
	for (int i = 2; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1]) {
			i += vol_opt_has_value(argv[i]);
			continue;
		}
		const char *slash = strchr(argv[i], '/');
		if (slash && slash != argv[i]) {
			snprintf(pool, len, "%.*s", (int)(slash - argv[i]), argv[i]);
			return 1;
		}
		if (!first)
			first = argv[i];
	}
	/* vol list POOL, vol send -t TOKEN POOL */
	if (first && (!strcmp(argv[1], "list") || !strcmp(argv[1], "send"))) {
		snprintf(pool, len, "%s", first);
		return 1;
	}
	return 0;
}

/* `pool list`, `vol list`: commands about every pool. */
static int pool_cli_is_list(int argc, char **argv)
{
	return argc >= 2 && !strcmp(argv[1], "list") &&
	       (!strcmp(argv[0], "pool") || !strcmp(argv[0], "vol"));
}

static int served_any(void)
{
	return pool_cli_is_served_any();
}

/*
 * A list of every pool runs in the first pool daemon that answers, which
 * lists its own pool through its handle and opens the others.  (A pool
 * held by a second daemon shows as in use.)
 */
static int pool_cli_forward_list(const char *root, int argc, char **argv, int *status)
{
	char **names;
	size_t n;
	int r = -ENOENT;

	if (pool_cli_names(root, &names, &n))
		return 0;
	for (size_t i = 0; i < n && r == -ENOENT; i++)
		r = serve_forward(root, names[i], argc, argv, status);
	pool_cli_free_names(names, n);
	if (r == -ENOENT)
		return 0;
	if (r)
		*status = CLI_EXIT_ERROR;
	return 1;
}

int pool_cli_forward(const char *root, int argc, char **argv, int *status)
{
	char pool[256], path[PATH_MAX];
	int r;

	if (served_any())
		return 0; /* we are the daemon */
	if (!pool_cli_target(argc, argv, pool, sizeof(pool)))
		return pool_cli_is_list(argc, argv)
		           ? pool_cli_forward_list(root, argc, argv, status)
		           : 0;
	if (pool_cli_lookup(root, pool, path, sizeof(path)))
		return 0;
	r = serve_forward(root, pool, argc, argv, status);
	if (r == -ENOENT)
		return 0; /* no daemon: open the pool here */
	if (r)
		*status = CLI_EXIT_ERROR; /* serve_forward said why */
	return 1;
}

/* Put the served pool's per-command settings back after a command. */
static void pool_serve_reset(struct pool_serve_ctx *c)
{
	serve_pool_lock(c->sp);
	pool_set_dirty_max(serve_pool_get(c->sp), SERVE_DIRTY_MAX_DEFAULT);
	pool_set_progress(serve_pool_get(c->sp), NULL, NULL);
	serve_pool_unlock(c->sp);
}

/* Run ARGV with the client's fds 0-2 and working directory. */
static int pool_serve_run_borrowed(struct pool_serve_ctx *c, int argc, char **argv,
                                   const int fds[3], int cwd_fd)
{
	char *args[SERVE_ARGS_MAX + 3];
	int save[3], save_cwd, st;

	if (argc > SERVE_ARGS_MAX)
		return CLI_EXIT_USAGE;
	memcpy(args, argv, sizeof(*args) * (size_t)argc);
	args[argc] = "--root"; /* ours: the client's is where it found us */
	args[argc + 1] = c->root;
	args[argc + 2] = NULL;

	/* A command that waits for another (`vol send | vol recv` into the
	 * same pool) would wait forever: give up after a while instead. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SERVE_CMD_WAIT_SECS;
	if (pthread_mutex_timedlock(&c->cmd_lock, &until)) {
		dprintf(fds[2],
		        "zonevm: pool \"%s\" is busy: the pool daemon is running \"%s\"; try "
		        "again when it is done\n",
		        c->name, c->running);
		return CLI_EXIT_ERROR;
	}
	snprintf(c->running, sizeof(c->running), "%s %s%s%s", argv[0], argc > 1 ? argv[1] : "",
	         argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
	fflush(stdout);
	fflush(stderr);
	save_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < 3; i++) {
		save[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
		dup2(fds[i], i);
	}
	__fpurge(stdin);
	clearerr(stdin);
	clearerr(stdout);
	clearerr(stderr);
	if (fchdir(cwd_fd) < 0) {
		cli_err("cannot enter the working directory: %s", strerror(errno));
		st = CLI_EXIT_ERROR;
	} else if (!strcmp(argv[0], "vol")) {
		st = cmd_vol_main(argc + 2, args);
	} else if (!strcmp(argv[0], "pool") && argc >= 2 && pool_sub_forwardable(argv[1])) {
		st = cmd_pool_main(argc + 2, args);
	} else {
		cli_err("the pool daemon does not run \"%s%s%s\"", argv[0], argc > 1 ? " " : "",
		        argc > 1 ? argv[1] : "");
		st = CLI_EXIT_USAGE;
	}
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 3; i++) {
		if (save[i] >= 0) {
			dup2(save[i], i);
			close(save[i]);
		}
	}
	if (save_cwd >= 0) {
		if (fchdir(save_cwd) < 0)
			fprintf(stderr, "zonevm serve: cannot go back to the working directory\n");
		close(save_cwd);
	}
	pool_serve_reset(c);
	pthread_mutex_unlock(&c->cmd_lock);
	return st;
}

static int pool_serve_run(void *arg, int argc, char **argv, const int fds[3], int cwd_fd,
                          int stop_fd)
{
	struct pool_serve_ctx *c = arg;

	if (argc >= 2 && !strcmp(argv[0], "vol") && !strcmp(argv[1], "serve"))
		return vol_cli_serve_in(c->root, argc - 1, argv + 1, c->sp, fds[2], cwd_fd,
		                        stop_fd);
	return pool_serve_run_borrowed(c, argc, argv, fds, cwd_fd);
}

int pool_cli_serve(const char *root, int argc, char **argv)
{
	/* One daemon per process; client threads that outlive the shutdown
	 * may still read it, so it is never freed. */
	static struct pool_serve_ctx ctx;
	struct pool_serve_ctx *c = &ctx;
	struct serve_hooks hooks;
	struct pool *p;
	int r;

	if (argc != 2 || argv[1][0] == '-') {
		cli_err("usage: zonevm pool serve NAME");
		return CLI_EXIT_USAGE;
	}
	/* Commands run in their clients' directories: the root must be absolute. */
	if (!realpath(root, c->root)) {
		cli_err("zonevm root %s: %s", root, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	p = pool_cli_open(c->root, argv[1], 0);
	if (!p)
		return CLI_EXIT_ERROR;
	if (serve_pool_wrap(p, &c->sp)) {
		pool_abandon(p);
		return CLI_EXIT_ERROR;
	}
	pthread_mutex_init(&c->cmd_lock, NULL);
	snprintf(c->name, sizeof(c->name), "%s", argv[1]);
	hooks = (struct serve_hooks){.run = pool_serve_run, .arg = c};
	pool_cli_set_served(argv[1], c->sp);
	r = serve_daemon(c->root, argv[1], c->sp, &hooks);
	pool_cli_set_served(argv[1], NULL);
	return r ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
