/*
 * pool_cli.c - helpers shared by `zonevm pool` and `zonevm vol`: the root
 * and registry, name splitting, tables and JSON, progress.  See pool_cli.h.
 * Nothing here changes a pool.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
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
#include "serve/serve.h"

/* The pool this process serves (`pool serve`): commands borrow it. */
static struct {
	char name[64];
	struct serve_pool *sp;
} served;

void pool_cli_set_served(const char *name, struct serve_pool *sp)
{
	snprintf(served.name, sizeof(served.name), "%s", sp ? name : "");
	served.sp = sp;
}

int pool_cli_is_served(const char *name)
{
	return served.sp && !strcmp(name, served.name);
}

int pool_cli_is_served_any(void)
{
	return served.sp != NULL;
}

int pool_cli_check_unused(struct pool *p, const char *name)
{
	char msg[512];

	if (!served.sp || p != serve_pool_get(served.sp))
		return 0; /* without the daemon, the pool lock kept users out */
	if (!serve_attach_busy(served.sp, name, msg, sizeof(msg))) /* we hold the lock */
		return 0;
	cli_err("%s", msg);
	return -EBUSY;
}

static int pool_cli_borrowed(struct pool *p)
{
	return served.sp && p == serve_pool_get(served.sp);
}

int pool_cli_take_root(int *argc, char **argv, const char **root)
{
	int out = 0;

	*root = getenv("ZONEVM_ROOT");
	if (!*root || !**root)
		*root = POOL_CLI_DEFAULT_ROOT;
	for (int i = 0; i < *argc; i++) {
		if (!strcmp(argv[i], "--root")) {
			if (i + 1 >= *argc) {
				cli_err("--root needs a directory");
				return -EINVAL;
			}
			*root = argv[++i];
		} else if (!strncmp(argv[i], "--root=", 7)) {
			*root = argv[i] + 7;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

static void reg_path(const char *root, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/pools/%s", root, name);
}

int pool_cli_lookup(const char *root, const char *name, char *buf, size_t len)
{
	char link[PATH_MAX];
	ssize_t n;

	if (strchr(name, '/') || name[0] == '.' || !name[0])
		return -ENOENT;
	reg_path(root, name, link, sizeof(link));
	n = readlink(link, buf, len - 1);
	if (n < 0)
		return -ENOENT;
	buf[n] = 0;
	return 0;
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int pool_cli_register(const char *root, const char *name, const char *path)
{
	char dir[PATH_MAX], link[PATH_MAX], abs[PATH_MAX];
	int err;

	if (!realpath(path, abs))
		return -errno;
	snprintf(dir, sizeof(dir), "%s/pools", root);
	err = mkdir_p(dir);
	if (err) {
		cli_err("cannot create %s: %s", dir, strerror(-err));
		return err;
	}
	reg_path(root, name, link, sizeof(link));
	if (symlink(abs, link) < 0) {
		err = -errno;
		cli_err("cannot register pool \"%s\" in %s: %s", name, dir, strerror(errno));
		return err;
	}
	return 0;
}

int pool_cli_unregister(const char *root, const char *name)
{
	char link[PATH_MAX];

	reg_path(root, name, link, sizeof(link));
	return unlink(link) < 0 ? -errno : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int pool_cli_names(const char *root, char ***names, size_t *n)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	snprintf(dir, sizeof(dir), "%s/pools", root);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(*names, cap * sizeof(*nn));
			if (!nn)
				break;
			*names = nn;
		}
		(*names)[(*n)++] = strdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return 0;
}

void pool_cli_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

struct pool *pool_cli_open(const char *root, const char *name, int rdonly)
{
	char path[PATH_MAX], err[POOL_ERRMSG_MAX];
	struct pool *p;

	if (pool_cli_lookup(root, name, path, sizeof(path))) {
		cli_err("no such pool \"%s\" (registered under %s/pools)", name, root);
		return NULL;
	}
	if (pool_cli_is_served(name)) {
		serve_pool_lock(served.sp); /* until pool_cli_close/abandon */
		return serve_pool_get(served.sp);
	}
	if (pool_open(path, rdonly ? POOL_OPEN_RDONLY : 0, &p, err, sizeof(err))) {
		cli_err("%s", err);
		return NULL;
	}
	return p;
}

int pool_cli_fail(struct pool *p, int err)
{
	const char *m = p ? pool_errmsg(p) : "";

	cli_err("%s", m && *m ? m : strerror(-err));
	return CLI_EXIT_ERROR;
}

int pool_cli_close(struct pool *p)
{
	char name[POOL_ERRMSG_MAX];
	int err;

	snprintf(name, sizeof(name), "%s", pool_name(p));
	if (pool_cli_borrowed(p)) {
		err = pool_sync(p);
		serve_pool_unlock(served.sp);
	} else {
		err = pool_close(p);
	}
	if (err) {
		cli_err("pool \"%s\": final commit failed: %s", name, strerror(-err));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

void pool_cli_abandon(struct pool *p)
{
	if (pool_cli_borrowed(p))
		serve_pool_unlock(served.sp); /* the daemon's next commit keeps what was done */
	else
		pool_abandon(p);
}

int pool_cli_split(const char *full, int want_snap, char *pool, size_t plen, const char **rest)
{
	const char *slash = strchr(full, '/');
	const char *kind = want_snap == 1 ? "snapshot" : want_snap == 0 ? "volume" : "dataset";

	if (!slash || slash == full || (size_t)(slash - full) >= plen) {
		cli_err("invalid %s name \"%s\" (expected POOL/VOL%s)", kind, full,
		        want_snap == 1   ? "@SNAP"
		        : want_snap == 0 ? ""
		                         : "[@SNAP]");
		return -EINVAL;
	}
	snprintf(pool, plen, "%.*s", (int)(slash - full), full);
	*rest = slash + 1;
	if (pool_name_check(*rest, want_snap)) {
		cli_err("invalid %s name \"%s\" (expected POOL/VOL%s; names use letters, digits, _ "
		        ". - :)",
		        kind, full,
		        want_snap == 1   ? "@SNAP"
		        : want_snap == 0 ? ""
		                         : "[@SNAP]");
		return -EINVAL;
	}
	return 0;
}

void pool_cli_fmt_size(uint64_t v, int parsable, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	double d = (double)v;
	int u = 0;

	if (parsable || v < 1024) {
		snprintf(buf, len, parsable ? "%llu" : "%lluB", (unsigned long long)v);
		return;
	}
	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, d < 10 ? "%.2f%c" : d < 100 ? "%.1f%c" : "%.0f%c", d, units[u]);
}

void pool_cli_table_init(struct pool_cli_table *t, const char **cols, size_t ncols, int no_header,
                         int parsable, int json)
{
	memset(t, 0, sizeof(*t));
	t->cols = cols;
	t->ncols = ncols;
	t->no_header = no_header;
	t->parsable = parsable;
	t->json = json;
	if (json)
		t->json_array = cJSON_CreateArray();
}

void pool_cli_table_row(struct pool_cli_table *t, char *const *cells, const int *is_num,
                        const uint64_t *nums)
{
	if (t->json) {
		cJSON *o = cJSON_CreateObject();
		for (size_t i = 0; i < t->ncols; i++) {
			if (is_num && is_num[i]) { /* exact: a guid does not fit a double */
				char raw[24];
				snprintf(raw, sizeof(raw), "%llu", (unsigned long long)nums[i]);
				cJSON_AddRawToObject(o, t->cols[i], raw);
			} else
				cJSON_AddStringToObject(o, t->cols[i], cells[i]);
		}
		cJSON_AddItemToArray(t->json_array, o);
		t->nrows++; /* counted only: the rows are in the JSON array */
		return;
	}
	char **nc = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*nc));
	if (!nc)
		return;
	t->cells = nc;
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = strdup(cells[i]);
	t->nrows++;
}

void pool_cli_table_print(struct pool_cli_table *t, FILE *f)
{
	if (t->json) {
		char *s = cJSON_Print(t->json_array);
		if (s)
			fprintf(f, "%s\n", s);
		free(s);
		cJSON_Delete(t->json_array);
		return;
	}
	size_t w[32] = {0};
	for (size_t c = 0; c < t->ncols && c < 32; c++) {
		w[c] = t->no_header ? 0 : strlen(t->cols[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			w[c] = l > w[c] ? l : w[c];
		}
	}
	if (!t->no_header) {
		for (size_t c = 0; c < t->ncols; c++) {
			for (const char *s = t->cols[c]; *s; s++)
				fputc(*s >= 'a' && *s <= 'z' ? *s - 32 : *s, f);
			if (c + 1 < t->ncols)
				fprintf(f, "%*s", (int)(w[c] - strlen(t->cols[c]) + 2), "");
		}
		fputc('\n', f);
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (t->no_header)
				fprintf(f, "%s%s", s, c + 1 < t->ncols ? "\t" : "");
			else
				fprintf(f, "%-*s", c + 1 < t->ncols ? (int)w[c] + 2 : 0, s);
			free(t->cells[r * t->ncols + c]);
		}
		fputc('\n', f);
	}
	free(t->cells);
}

void pool_cli_table_free(struct pool_cli_table *t)
{
	if (t->json) {
		cJSON_Delete(t->json_array);
		return;
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pool_cli_progress_start(struct pool_cli_progress *pr, const char *what, uint64_t total)
{
	pr->on = isatty(STDERR_FILENO);
	pr->what = what;
	pr->total = total;
	pr->done = 0;
	pr->start = pr->last = now_s();
}

static void progress_print(struct pool_cli_progress *pr, double t)
{
	char d[32], tot[32], rate[32];
	double el = t - pr->start > 1e-3 ? t - pr->start : 1e-3;
	double r = (double)pr->done / el;

	pool_cli_fmt_size(pr->done, 0, d, sizeof(d));
	pool_cli_fmt_size((uint64_t)r, 0, rate, sizeof(rate));
	if (pr->total) {
		pool_cli_fmt_size(pr->total, 0, tot, sizeof(tot));
		double eta =
		    r > 0 ? (double)(pr->total - (pr->done < pr->total ? pr->done : pr->total)) / r
		          : 0;
		fprintf(stderr, "\r%s: %s of %s, %s/s, ETA %.0fs   ", pr->what, d, tot, rate, eta);
	} else {
		fprintf(stderr, "\r%s: %s, %s/s   ", pr->what, d, rate);
	}
}

void pool_cli_progress_add(struct pool_cli_progress *pr, uint64_t n)
{
	double t;

	pr->done += n;
	if (!pr->on)
		return;
	t = now_s();
	if (t - pr->last >= 0.5) {
		pr->last = t;
		progress_print(pr, t);
	}
}

void pool_cli_progress_end(struct pool_cli_progress *pr)
{
	if (!pr->on)
		return;
	progress_print(pr, now_s());
	fputc('\n', stderr);
}
