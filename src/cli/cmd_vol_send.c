/*
 * cmd_vol_send.c - `zonevm vol send` and `zonevm vol recv`: a snapshot as a
 * stream on stdout, and a stream from stdin into a volume (full or
 * incremental, resumable with -s / -t TOKEN, discarded with recv -A).
 * The stream format is the library's (docs/POOL-FORMAT.md); this file only
 * checks the command line, refuses a terminal as the stream, and shows
 * progress on stderr when it is a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"
#include "vol_cli.h"

static void progress_cb(void *arg, uint64_t bytes)
{
	pool_cli_progress_add(arg, bytes);
}

struct prev_ctx {
	const char *snap;
	char prev[256];
	int found;
};

/* vol_iterate lists a volume's snapshots oldest first: keep the one before SNAP. */
static int prev_fn(void *arg, const struct vol_info *vi)
{
	struct prev_ctx *c = arg;

	if (c->found || vi->type != VOL_TYPE_SNAPSHOT)
		return 0;
	if (!strcmp(vi->name, c->snap)) {
		c->found = 1;
		return 0;
	}
	if (strcspn(vi->name, "@") == strcspn(c->snap, "@") &&
	    !strncmp(vi->name, c->snap, strcspn(c->snap, "@")))
		snprintf(c->prev, sizeof(c->prev), "%s", vi->name);
	return 0;
}

/* Whether FROM ("@SNAP" or "VOL@SNAP") is the snapshot just before SNAP. */
static int is_prev_snap(struct pool *p, const char *snap, const char *from)
{
	struct prev_ctx c = {.snap = snap, .found = 0};

	c.prev[0] = 0;
	vol_iterate(p, 0, prev_fn, &c);
	if (!c.found || !c.prev[0])
		return 0;
	return !strcmp(from[0] == '@' ? strchr(c.prev, '@') : c.prev, from);
}

int vol_cli_send(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	struct pool_cli_progress pr;
	struct vol_info vi;
	const char *rest = NULL;
	struct pool *p;
	int err;

	if (vol_cli_opts(argc, argv, &o, 1) || o.npos != 1) {
		cli_err("usage: zonevm vol send [-i SNAP] POOL/VOL@SNAP | send -t TOKEN POOL");
		return CLI_EXIT_USAGE;
	}
	if (isatty(STDOUT_FILENO)) {
		cli_err("refusing to write a stream to a terminal (redirect stdout)");
		return CLI_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN); /* a closed reader is an error message, not a signal */
	(void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20); /* fewer switches; pipes only */
	if (o.t) {
		if (strchr(o.pos[0], '/')) {
			char pool[POOL_NAME_MAX_CLI];
			snprintf(pool, sizeof(pool), "%.*s",
			         (int)(strchr(o.pos[0], '/') - o.pos[0]), o.pos[0]);
			p = pool_cli_open(root, pool, 1);
		} else {
			p = pool_cli_open(root, o.pos[0], 1);
		}
	} else {
		p = vol_cli_open(root, o.pos[0], 1, &rest);
	}
	if (!p)
		return CLI_EXIT_ERROR;
	const char *from = o.i;
	if (from && strchr(from, '/')) { /* POOL/VOL@SNAP: same pool required */
		const char *slash = strchr(from, '/');
		if (strncmp(from, pool_name(p), (size_t)(slash - from)) ||
		    strlen(pool_name(p)) != (size_t)(slash - from)) {
			cli_err("-i %s: not in pool \"%s\"", from, pool_name(p));
			pool_cli_abandon(p);
			return CLI_EXIT_USAGE;
		}
		from = slash + 1;
	}
	char short_from[POOL_ERRMSG_MAX];
	if (from && !strchr(from, '@')) { /* -i SNAP: a snapshot of the same volume */
		snprintf(short_from, sizeof(short_from), "@%s", from);
		from = short_from;
	}
	/* the ETA's total: the snapshot's bytes, or for an increment from the
	 * previous snapshot what was written since; unknown otherwise */
	uint64_t total = 0;
	if (rest && !vol_get_info(p, rest, &vi))
		total = !from ? vi.referenced : is_prev_snap(p, rest, from) ? vi.written : 0;
	pool_cli_progress_start(&pr, "send", total);
	pool_set_progress(p, progress_cb, &pr);
	err = vol_send(p, rest, from, o.t, STDOUT_FILENO);
	pool_cli_progress_end(&pr);
	if (err)
		pool_cli_fail(p, err);
	pool_cli_abandon(p);
	return err ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int vol_cli_recv(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	struct pool_cli_progress pr;
	const char *rest;
	struct pool *p;
	int err;

	if (vol_cli_opts(argc, argv, &o, 1) || o.npos != 1) {
		cli_err("usage: zonevm vol recv [-s] POOL/VOL < STREAM | recv -A POOL/VOL");
		return CLI_EXIT_USAGE;
	}
	if (!o.A && isatty(STDIN_FILENO)) {
		cli_err("refusing to read a stream from a terminal (redirect stdin)");
		return CLI_EXIT_USAGE;
	}
	if (!(p = vol_cli_open(root, o.pos[0], 0, &rest)))
		return CLI_EXIT_ERROR;
	if (o.A)
		return vol_cli_done(p, vol_recv_abort(p, rest));
	/* the total (for an ETA) is known when the stream is a file; a pipe
	 * shows bytes and rate only */
	struct stat st;
	off_t pos = lseek(STDIN_FILENO, 0, SEEK_CUR);
	uint64_t total = 0;
	if (!fstat(STDIN_FILENO, &st) && S_ISREG(st.st_mode) && pos >= 0 && st.st_size > pos)
		total = (uint64_t)(st.st_size - pos);
	pool_cli_progress_start(&pr, "recv", total);
	pool_set_progress(p, progress_cb, &pr);
	err = vol_recv(p, rest, STDIN_FILENO, o.s);
	pool_cli_progress_end(&pr);
	if (err) {
		/* the library committed or discarded what it had; nothing else is dirty */
		pool_cli_fail(p, err);
		pool_cli_close(p);
		return CLI_EXIT_ERROR;
	}
	return pool_cli_close(p);
}
