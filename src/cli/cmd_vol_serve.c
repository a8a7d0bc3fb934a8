/*
 * cmd_vol_serve.c - `zonevm vol serve POOL/VOL --nbd SOCKET|HOST:PORT |
 * --vhost-user SOCKET [--ro]`: export a volume to other programs until
 * SIGTERM/SIGINT (or, inside the pool daemon, until the client that asked
 * hangs up).
 *
 * Without a daemon it opens the pool itself (taking its lock), commits
 * every few seconds while clients write, and commits once more at the
 * end.  Inside the daemon (cmd_pool_serve.c) it uses the served pool and
 * writes its messages to the client's stderr, never to fds 0-2, which
 * other commands borrow.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"
#include "serve/serve.h"
#include "vol_cli.h"

#define VOL_SERVE_COMMIT_MS 5000

struct vol_serve_args {
	const char *name, *nbd, *vhost;
	int ro;
};

static int vol_serve_parse(int argc, char **argv, struct vol_serve_args *a, int errfd)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char **val = NULL;
		if (!strcmp(argv[i], "--ro"))
			a->ro = 1;
		else if (!strcmp(argv[i], "--nbd"))
			val = &a->nbd;
		else if (!strcmp(argv[i], "--vhost-user"))
			val = &a->vhost;
		else if (argv[i][0] == '-') {
			dprintf(errfd, "zonevm: vol serve: unknown option \"%s\"\n", argv[i]);
			return -EINVAL;
		} else if (!a->name) {
			a->name = argv[i];
		} else {
			dprintf(errfd, "zonevm: vol serve: unexpected argument \"%s\"\n", argv[i]);
			return -EINVAL;
		}
		if (val) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				dprintf(errfd, "zonevm: vol serve: %s needs a value\n", argv[i]);
				return -EINVAL;
			}
			*val = argv[++i];
		}
	}
	if (!a->name || (!a->nbd && !a->vhost)) {
		dprintf(errfd, "zonevm: usage: zonevm vol serve POOL/VOL --nbd SOCKET|HOST:PORT "
		               "| --vhost-user SOCKET [--ro]\n");
		return -EINVAL;
	}
	return 0;
}

/* A relative socket path, made absolute against the client's directory. */
static const char *vol_serve_abs(const char *path, int cwd_fd, char *buf, size_t len)
{
	char link[64], dir[PATH_MAX];
	ssize_t n;

	if (!path || path[0] == '/' || cwd_fd < 0 || (!strchr(path, '/') && strchr(path, ':')))
		return path;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", cwd_fd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n <= 0)
		return path;
	dir[n] = 0;
	if ((size_t)n + 1 + strlen(path) >= len)
		return path;
	memcpy(buf, dir, (size_t)n);
	buf[n] = '/';
	memcpy(buf + n + 1, path, strlen(path) + 1);
	return buf;
}

/* Wait for STOP_FD, committing what clients wrote every few seconds. */
static void vol_serve_wait(struct serve_pool *sp, int stop_fd, int commit)
{
	struct pollfd pf = {stop_fd, POLLIN, 0};

	for (;;) {
		int n = poll(&pf, 1, commit ? VOL_SERVE_COMMIT_MS : -1);
		if (n > 0 || (n < 0 && errno != EINTR))
			return;
		if (n == 0)
			serve_pool_commit(sp);
	}
}

int vol_cli_serve_in(const char *root, int argc, char **argv, struct serve_pool *sp, int errfd,
                     int cwd_fd, int stop_fd)
{
	char pool[POOL_NAME_MAX_CLI], err[512], nbd_abs[PATH_MAX], vh_abs[PATH_MAX];
	struct serve_pool *own = NULL;
	struct serve_export *e;
	struct vol_serve_args a;
	const char *slash, *vol;
	int r, sfd = -1;

	if (vol_serve_parse(argc, argv, &a, errfd))
		return CLI_EXIT_USAGE;
	slash = strchr(a.name, '/');
	if (!slash || slash == a.name || (size_t)(slash - a.name) >= sizeof(pool) ||
	    pool_name_check(slash + 1, strchr(slash + 1, '@') != NULL)) {
		dprintf(errfd, "zonevm: invalid volume name \"%s\" (expected POOL/VOL[@SNAP])\n",
		        a.name);
		return CLI_EXIT_USAGE;
	}
	snprintf(pool, sizeof(pool), "%.*s", (int)(slash - a.name), a.name);
	vol = slash + 1;
	if (!sp) {
		struct pool *p = pool_cli_open(root, pool, 0);
		if (!p)
			return CLI_EXIT_ERROR;
		if (serve_pool_wrap(p, &own)) {
			pool_abandon(p);
			return CLI_EXIT_ERROR;
		}
		sp = own;
	} else if (!pool_cli_is_served(pool)) {
		dprintf(errfd, "zonevm: this pool daemon does not serve pool \"%s\"\n", pool);
		return CLI_EXIT_ERROR;
	}
	if (own) /* before the export's threads start */
		stop_fd = sfd = serve_signalfd();
	r = serve_export_start(
	    sp, vol, a.ro, vol_serve_abs(a.nbd, cwd_fd, nbd_abs, sizeof(nbd_abs)),
	    vol_serve_abs(a.vhost, cwd_fd, vh_abs, sizeof(vh_abs)), &e, err, sizeof(err));
	if (r) {
		dprintf(errfd, "zonevm: %s: %s\n", a.name, err);
		if (own)
			serve_pool_close(own);
		if (sfd >= 0)
			close(sfd);
		return CLI_EXIT_ERROR;
	}
	dprintf(errfd, "zonevm: exporting %s %s over %s on %s\n", a.name,
	        a.ro ? "read-only" : "read-write", a.nbd ? "NBD" : "vhost-user-blk",
	        a.nbd ? a.nbd : a.vhost);
	vol_serve_wait(sp, stop_fd, own != NULL);
	serve_export_stop(e);
	if (sfd >= 0)
		close(sfd);
	if (own && serve_pool_close(own))
		return CLI_EXIT_ERROR;
	return CLI_EXIT_OK;
}

int vol_cli_serve(const char *root, int argc, char **argv)
{
	return vol_cli_serve_in(root, argc, argv, NULL, 2, -1, -1);
}
