/*
 * cmd_vol.c - `zonevm vol`: volumes, snapshots and clones of a registered
 * pool (create, import, export, write, resize, snapshot, clone, rollback,
 * destroy, list, get, set); send and recv are cmd_vol_send.c.
 *
 * Every argument is checked before the pool is opened; an operation that
 * fails after the pool is open abandons it (nothing since the last commit
 * reaches the disk), so a bad input never leaves a pool half-changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"
#include "vol_cli.h"

#define CHUNK (1u << 20)

static void vol_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: zonevm vol [--root DIR] COMMAND ...\n"
	    "  create POOL/VOL SIZE [--blocksize B] [--compression off|lz4|zstd]\n"
	    "  import POOL/VOL FILE [--blocksize B] [--compression C]  (zero blocks become holes)\n"
	    "  export POOL/VOL[@SNAP] FILE|-\n"
	    "  write POOL/VOL OFFSET FILE|- [--flush BYTES]  (--flush: durable every BYTES)\n"
	    "  resize POOL/VOL SIZE\n"
	    "  snapshot POOL/VOL@SNAP\n"
	    "  clone POOL/VOL@SNAP POOL/NEW\n"
	    "  promote POOL/CLONE             the clone takes over its origin's snapshots\n"
	    "  rollback [-r] POOL/VOL@SNAP\n"
	    "  destroy [-r] POOL/VOL[@SNAP]\n"
	    "  list [-t volume|snapshot|all] [-o FIELDS] [-H] [-p] [-j] [POOL|POOL/VOL]\n"
	    "  get [-H] [-p] [-j] PROP[,PROP...]|all POOL/VOL[@SNAP]...\n"
	    "  set PROP=VALUE POOL/VOL        (compression, size)\n"
	    "  send [-i SNAP] POOL/VOL@SNAP   a stream on stdout; send -t TOKEN resumes\n"
	    "  recv [-s] POOL/VOL             from stdin; -s keeps a resume token on error\n"
	    "  recv -A POOL/VOL               discard an interrupted receive\n"
	    "  serve POOL/VOL --nbd SOCKET|HOST:PORT | --vhost-user SOCKET [--ro]\n"
	    "                                 export until SIGTERM\n"
	    "properties: name type size used referenced written logicalused\n"
	    "  logicalreferenced compressratio origin creation guid blocksize compression "
	    "clones\n");
}

int vol_cli_opts(int argc, char **argv, struct vol_cli_opts *o, int maxpos)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;
		if (!strcmp(a, "-H"))
			o->H = 1;
		else if (!strcmp(a, "-p"))
			o->p = 1;
		else if (!strcmp(a, "-j") || !strcmp(a, "--json"))
			o->j = 1;
		else if (!strcmp(a, "-r"))
			o->r = 1;
		else if (!strcmp(a, "-s"))
			o->s = 1;
		else if (!strcmp(a, "-A"))
			o->A = 1;
		else if (!strcmp(a, "-t"))
			val = &o->t;
		else if (!strcmp(a, "-o"))
			val = &o->o;
		else if (!strcmp(a, "-i"))
			val = &o->i;
		else if (!strcmp(a, "--blocksize") || !strcmp(a, "-b"))
			val = &o->blocksize;
		else if (!strcmp(a, "--compression") || !strcmp(a, "-c"))
			val = &o->compression;
		else if (!strcmp(a, "--flush"))
			val = &o->flush;
		else if (a[0] == '-' && a[1]) {
			cli_err("vol %s: unknown option \"%s\"", argv[0], a);
			return -EINVAL;
		} else if (o->npos < maxpos && o->npos < 8) {
			o->pos[o->npos++] = argv[i];
		} else {
			cli_err("vol %s: unexpected argument \"%s\"", argv[0], a);
			return -EINVAL;
		}
		if (val) {
			if (i + 1 >= argc) {
				cli_err("vol %s: %s needs a value", argv[0], a);
				return -EINVAL;
			}
			*val = argv[++i];
		}
	}
	return 0;
}

struct pool *vol_cli_open(const char *root, const char *full, int want_snap, const char **rest)
{
	char pool[POOL_NAME_MAX_CLI];

	if (pool_cli_split(full, want_snap, pool, sizeof(pool), rest))
		return NULL;
	return pool_cli_open(root, pool, 0);
}

int vol_cli_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Finish a command: commit and close, or report and abandon. */
int vol_cli_done(struct pool *p, int err)
{
	if (err) {
		pool_cli_fail(p, err);
		pool_cli_abandon(p);
		return CLI_EXIT_ERROR;
	}
	return pool_cli_close(p);
}

static int create_opts(const struct vol_cli_opts *o, uint32_t *bs, enum pool_compression *c)
{
	uint64_t b = POOL_DEFAULT_BLOCKSIZE;

	*c = POOL_COMPRESS_LZ4;
	if (o->blocksize &&
	    (cli_parse_size(o->blocksize, &b) || b < 4096 || b > 131072 || (b & (b - 1)))) {
		cli_err("invalid block size \"%s\" (a power of two from 4K to 128K)", o->blocksize);
		return -EINVAL;
	}
	if (o->compression && pool_compression_parse(o->compression, c)) {
		cli_err("invalid compression \"%s\" (off, lz4 or zstd)", o->compression);
		return -EINVAL;
	}
	*bs = (uint32_t)b;
	return 0;
}

static int vol_cmd_create(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	enum pool_compression c;
	const char *rest;
	uint64_t size;
	uint32_t bs;
	struct pool *p;

	if (vol_cli_opts(argc, argv, &o, 2) || o.npos != 2) {
		cli_err("usage: zonevm vol create POOL/VOL SIZE [--blocksize B] [--compression C]");
		return CLI_EXIT_USAGE;
	}
	if (cli_parse_size(o.pos[1], &size)) {
		cli_err("invalid size \"%s\"", o.pos[1]);
		return CLI_EXIT_USAGE;
	}
	if (create_opts(&o, &bs, &c))
		return CLI_EXIT_USAGE;
	if (!(p = vol_cli_open(root, o.pos[0], 0, &rest)))
		return CLI_EXIT_ERROR;
	return vol_cli_done(p, vol_create(p, rest, size, bs, c));
}

static int open_in(const char *path)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;

	if (fd < 0)
		cli_err("cannot open %s: %s", path, strerror(errno));
	return fd;
}

/* Read up to LEN bytes (short only at end of input). */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Copy FD into V from OFF until end of input; fails past the end of V. */
/*
 * Copy FD into V from OFF until end of input; fails past the end of V.
 * FLUSH_EVERY > 0: make the data durable (vol_flush, the intent log) after
 * each FLUSH_EVERY bytes and print "flushed N" on stdout once it is.
 */
static int copy_in(struct pool *p, struct vol *v, int fd, uint64_t off, const char *what,
                   uint64_t flush_every)
{
	struct pool_cli_progress pr;
	struct stat st;
	uint8_t *buf = malloc(CHUNK);
	uint64_t total = 0, unflushed = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	pool_cli_progress_start(
	    &pr, what, fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
	for (;;) {
		ssize_t n =
		    read_full(fd, buf, flush_every && flush_every < CHUNK ? flush_every : CHUNK);
		if (n < 0) {
			err = -errno;
			cli_err("read error: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		err = vol_write(v, buf, (size_t)n, off);
		if (err)
			break;
		off += (uint64_t)n;
		total += (uint64_t)n;
		unflushed += (uint64_t)n;
		if (flush_every && unflushed >= flush_every) {
			if ((err = vol_flush(v)) != 0)
				break;
			unflushed = 0;
			printf("flushed %llu\n", (unsigned long long)total);
			fflush(stdout);
		}
		pool_cli_progress_add(&pr, (uint64_t)n);
	}
	pool_cli_progress_end(&pr);
	free(buf);
	return err;
}

static int vol_cmd_import(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	enum pool_compression c;
	const char *rest;
	struct stat st;
	struct pool *p;
	struct vol *v;
	uint32_t bs;
	int fd, err;

	if (vol_cli_opts(argc, argv, &o, 2) || o.npos != 2) {
		cli_err("usage: zonevm vol import POOL/VOL FILE [--blocksize B] [--compression C]");
		return CLI_EXIT_USAGE;
	}
	if (create_opts(&o, &bs, &c))
		return CLI_EXIT_USAGE;
	if ((fd = open_in(o.pos[1])) < 0)
		return CLI_EXIT_ERROR;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		cli_err("%s: not a non-empty regular file", o.pos[1]);
		close(fd);
		return CLI_EXIT_ERROR;
	}
	if (!(p = vol_cli_open(root, o.pos[0], 0, &rest))) {
		close(fd);
		return CLI_EXIT_ERROR;
	}
	uint64_t size = ((uint64_t)st.st_size + bs - 1) / bs * bs;
	err = vol_create(p, rest, size, bs, c);
	if (!err && !(err = vol_open(p, rest, &v))) {
		err = copy_in(p, v, fd, 0, "import", 0);
		vol_close(v);
		if (err) { /* leave no half-imported volume */
			char msg[POOL_ERRMSG_MAX];
			snprintf(msg, sizeof(msg), "%s", pool_errmsg(p));
			pool_cli_abandon(p);
			cli_err("%s", msg[0] ? msg : strerror(-err));
			close(fd);
			if ((p = vol_cli_open(root, o.pos[0], 0, &rest)) != NULL)
				vol_cli_done(p, vol_destroy(p, rest, 0));
			return CLI_EXIT_ERROR;
		}
	}
	close(fd);
	return vol_cli_done(p, err);
}

static int vol_cmd_export(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	struct pool_cli_progress pr;
	const char *rest;
	struct pool *p;
	struct vol *v;
	int fd, err, is_file;

	if (vol_cli_opts(argc, argv, &o, 2) || o.npos != 2) {
		cli_err("usage: zonevm vol export POOL/VOL[@SNAP] FILE|-");
		return CLI_EXIT_USAGE;
	}
	if (!(p = vol_cli_open(root, o.pos[0], -1, &rest)))
		return CLI_EXIT_ERROR;
	if ((err = vol_open(p, rest, &v)))
		return vol_cli_done(p, err);
	is_file = strcmp(o.pos[1], "-") != 0;
	fd = is_file ? open(o.pos[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
	             : STDOUT_FILENO;
	if (fd < 0) {
		cli_err("cannot create %s: %s", o.pos[1], strerror(errno));
		vol_close(v);
		pool_cli_abandon(p);
		return CLI_EXIT_ERROR;
	}
	uint8_t *buf = malloc(CHUNK);
	uint64_t size = vol_size(v);
	pool_cli_progress_start(&pr, "export", size);
	for (uint64_t off = 0; off < size && !err && buf; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		err = vol_read(v, buf, n, off);
		if (err)
			break;
		/* a file stays sparse where the volume has zeros */
		int zero = is_file && buf[0] == 0 && !memcmp(buf, buf + 1, n - 1);
		if (!zero && (is_file ? pwrite(fd, buf, n, (off_t)off) != (ssize_t)n
		                      : vol_cli_write_all(fd, buf, n) != 0)) {
			err = -errno;
			cli_err("write error on %s: %s", o.pos[1], strerror(errno));
		}
		pool_cli_progress_add(&pr, n);
	}
	pool_cli_progress_end(&pr);
	free(buf);
	if (!err && is_file && ftruncate(fd, (off_t)size) < 0)
		err = -errno;
	if (is_file)
		close(fd);
	vol_close(v);
	return vol_cli_done(p, err);
}

static int vol_cmd_write(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	const char *rest;
	uint64_t off;
	struct stat st;
	struct pool *p;
	struct vol *v;
	int fd, err;

	if (vol_cli_opts(argc, argv, &o, 3) || o.npos != 3) {
		cli_err("usage: zonevm vol write POOL/VOL OFFSET FILE|- [--flush BYTES]");
		return CLI_EXIT_USAGE;
	}
	uint64_t flush_every = 0;
	if (o.flush && (cli_parse_size(o.flush, &flush_every) || !flush_every)) {
		cli_err("invalid --flush \"%s\"", o.flush);
		return CLI_EXIT_USAGE;
	}
	if (cli_parse_size(o.pos[1], &off)) {
		cli_err("invalid offset \"%s\"", o.pos[1]);
		return CLI_EXIT_USAGE;
	}
	if ((fd = open_in(o.pos[2])) < 0)
		return CLI_EXIT_ERROR;
	if (!(p = vol_cli_open(root, o.pos[0], 0, &rest))) {
		close(fd);
		return CLI_EXIT_ERROR;
	}
	if ((err = vol_open(p, rest, &v))) {
		close(fd);
		return vol_cli_done(p, err);
	}
	/* check the length first when it is known, so a too-long input changes nothing */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (off > vol_size(v) || (uint64_t)st.st_size > vol_size(v) - off)) {
		cli_err("%s/%s: %lld bytes at offset %llu do not fit in %llu bytes", pool_name(p),
		        rest, (long long)st.st_size, (unsigned long long)off,
		        (unsigned long long)vol_size(v));
		vol_close(v);
		close(fd);
		pool_cli_abandon(p);
		return CLI_EXIT_ERROR;
	}
	pool_set_dirty_max(p, UINT64_MAX); /* one commit at the end, or none */
	err = copy_in(p, v, fd, off, "write", flush_every);
	vol_close(v);
	close(fd);
	return vol_cli_done(p, err);
}

static int vol_cmd_simple(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	const char *rest, *cmd = argv[0];
	struct pool *p;
	uint64_t size = 0;
	int want = !strcmp(cmd, "resize") || !strcmp(cmd, "promote") ? 0
	           : !strcmp(cmd, "destroy")                         ? -1
	                                                             : 1;
	int npos = !strcmp(cmd, "resize") ? 2 : 1;

	if (vol_cli_opts(argc, argv, &o, npos) || o.npos != npos) {
		cli_err("usage: zonevm vol %s",
		        !strcmp(cmd, "resize")     ? "resize POOL/VOL SIZE"
		        : !strcmp(cmd, "destroy")  ? "destroy [-r] POOL/VOL[@SNAP]"
		        : !strcmp(cmd, "rollback") ? "rollback [-r] POOL/VOL@SNAP"
		        : !strcmp(cmd, "promote")  ? "promote POOL/CLONE"
		                                   : "snapshot POOL/VOL@SNAP");
		return CLI_EXIT_USAGE;
	}
	if (npos == 2 && cli_parse_size(o.pos[1], &size)) {
		cli_err("invalid size \"%s\"", o.pos[1]);
		return CLI_EXIT_USAGE;
	}
	if (!(p = vol_cli_open(root, o.pos[0], want, &rest)))
		return CLI_EXIT_ERROR;
	if (strcmp(cmd, "snapshot") && strcmp(cmd, "promote")) {
		/* not from under a guest or an export */
		char base[256];
		snprintf(base, sizeof(base), "%.*s", (int)strcspn(rest, "@"), rest);
		if (pool_cli_check_unused(p, strcmp(cmd, "destroy") ? base : rest)) {
			pool_cli_abandon(p);
			return CLI_EXIT_ERROR;
		}
	}
	if (!strcmp(cmd, "resize"))
		return vol_cli_done(p, vol_resize(p, rest, size));
	if (!strcmp(cmd, "snapshot"))
		return vol_cli_done(p, vol_snapshot(p, rest));
	if (!strcmp(cmd, "rollback"))
		return vol_cli_done(p, vol_rollback(p, rest, o.r));
	if (!strcmp(cmd, "promote"))
		return vol_cli_done(p, vol_promote(p, rest));
	return vol_cli_done(p, vol_destroy(p, rest, o.r));
}

static int vol_cmd_clone(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	char pool2[POOL_NAME_MAX_CLI];
	const char *rest, *rest2;
	struct pool *p;

	if (vol_cli_opts(argc, argv, &o, 2) || o.npos != 2) {
		cli_err("usage: zonevm vol clone POOL/VOL@SNAP POOL/NEW");
		return CLI_EXIT_USAGE;
	}
	if (pool_cli_split(o.pos[1], 0, pool2, sizeof(pool2), &rest2))
		return CLI_EXIT_USAGE;
	if (strncmp(o.pos[0], pool2, strlen(pool2)) || o.pos[0][strlen(pool2)] != '/') {
		cli_err("cannot clone %s into another pool (%s)", o.pos[0], pool2);
		return CLI_EXIT_USAGE;
	}
	if (!(p = vol_cli_open(root, o.pos[0], 1, &rest)))
		return CLI_EXIT_ERROR;
	return vol_cli_done(p, vol_clone(p, rest, rest2));
}

static int vol_cmd_set(const char *root, int argc, char **argv)
{
	struct vol_cli_opts o;
	const char *rest;
	struct pool *p;
	char prop[64];

	if (vol_cli_opts(argc, argv, &o, 2) || o.npos != 2 || !strchr(o.pos[0], '=')) {
		cli_err("usage: zonevm vol set PROP=VALUE POOL/VOL");
		return CLI_EXIT_USAGE;
	}
	const char *eq = strchr(o.pos[0], '=');
	snprintf(prop, sizeof(prop), "%.*s", (int)(eq - o.pos[0]), o.pos[0]);
	uint64_t size = 0;
	int is_size = !strcmp(prop, "size") || !strcmp(prop, "volsize");
	if (is_size && cli_parse_size(eq + 1, &size)) {
		cli_err("invalid size \"%s\"", eq + 1);
		return CLI_EXIT_USAGE;
	}
	if (!(p = vol_cli_open(root, o.pos[1], -1, &rest)))
		return CLI_EXIT_ERROR;
	if (is_size && !strchr(rest, '@'))
		return vol_cli_done(p, vol_resize(p, rest, size));
	return vol_cli_done(p, vol_set(p, rest, prop, eq + 1));
}

int cmd_vol_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const char *root, int argc, char **argv);
	} cmds[] = {
	    {"create", vol_cmd_create},   {"import", vol_cmd_import},  {"export", vol_cmd_export},
	    {"write", vol_cmd_write},     {"resize", vol_cmd_simple},  {"snapshot", vol_cmd_simple},
	    {"rollback", vol_cmd_simple}, {"destroy", vol_cmd_simple}, {"clone", vol_cmd_clone},
	    {"promote", vol_cmd_simple},  {"set", vol_cmd_set},        {"list", vol_cli_list},
	    {"get", vol_cli_get},         {"send", vol_cli_send},      {"recv", vol_cli_recv},
	    {"receive", vol_cli_recv},    {"serve", vol_cli_serve},
	};
	const char *root;

	if (pool_cli_take_root(&argc, argv, &root))
		return CLI_EXIT_USAGE;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		vol_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	int st;
	if (pool_cli_forward(root, argc, argv, &st))
		return st; /* a pool daemon ran it */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(root, argc - 1, argv + 1);
	cli_err("unknown vol command \"%s\" (try 'zonevm vol --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
