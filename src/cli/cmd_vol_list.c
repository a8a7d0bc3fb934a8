/*
 * cmd_vol_list.c - `zonevm vol list` and `zonevm vol get`: the properties
 * of volumes and snapshots, as a table, tab-separated (-H), exact (-p) or
 * JSON (-j).  One table of property names and formatters serves both.
 * Read-only: pools are opened with a shared lock.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pool_cli.h"
#include "vol_cli.h"

enum kind { K_STR, K_SIZE, K_NUM, K_RATIO, K_TIME };

static const struct prop {
	const char *name;
	enum kind kind;
} props[] = {
    {"name", K_STR},
    {"type", K_STR},
    {"size", K_SIZE},
    {"used", K_SIZE},
    {"referenced", K_SIZE},
    {"written", K_SIZE},
    {"logicalused", K_SIZE},
    {"logicalreferenced", K_SIZE},
    {"compressratio", K_RATIO},
    {"origin", K_STR},
    {"creation", K_TIME},
    {"guid", K_NUM},
    {"blocksize", K_SIZE},
    {"compression", K_STR},
    {"clones", K_NUM},
};
#define NPROPS (sizeof(props) / sizeof(props[0]))

static const struct prop *prop_find(const char *name)
{
	for (size_t i = 0; i < NPROPS; i++)
		if (!strcmp(props[i].name, name))
			return &props[i];
	return NULL;
}

/* Value of PR for VI as text in BUF, and as a number in *NUM for K_* numbers. */
static void prop_value(const struct prop *pr, const char *pool, const struct vol_info *vi,
                       int parsable, char *buf, size_t len, uint64_t *num)
{
	const char *n = pr->name;
	uint64_t v = 0;

	*num = 0;
	if (!strcmp(n, "name")) {
		snprintf(buf, len, "%s/%s", pool, vi->name);
		return;
	}
	if (!strcmp(n, "type")) {
		snprintf(buf, len, "%s", vi->type == VOL_TYPE_SNAPSHOT ? "snapshot" : "volume");
		return;
	}
	if (!strcmp(n, "origin")) {
		if (vi->origin[0])
			snprintf(buf, len, "%s/%s", pool, vi->origin);
		else
			snprintf(buf, len, "-");
		return;
	}
	if (!strcmp(n, "compression")) {
		snprintf(buf, len, "%s", pool_compression_name(vi->compression));
		return;
	}
	if (!strcmp(n, "compressratio")) {
		/* logical over allocated bytes of what it references, as ZFS */
		uint64_t r = vi->referenced ? vi->logicalreferenced * 100 / vi->referenced : 100;
		if (r < 100)
			r = 100;
		*num = r;
		snprintf(buf, len, parsable ? "%llu.%02llu" : "%llu.%02llux",
		         (unsigned long long)(r / 100), (unsigned long long)(r % 100));
		return;
	}
	v = !strcmp(n, "size")                ? vi->size
	    : !strcmp(n, "used")              ? vi->used
	    : !strcmp(n, "referenced")        ? vi->referenced
	    : !strcmp(n, "written")           ? vi->written
	    : !strcmp(n, "logicalused")       ? vi->logicalused
	    : !strcmp(n, "logicalreferenced") ? vi->logicalreferenced
	    : !strcmp(n, "creation")          ? vi->creation
	    : !strcmp(n, "guid")              ? vi->guid
	    : !strcmp(n, "blocksize")         ? vi->blocksize
	                                      : vi->num_clones;
	*num = v;
	if (pr->kind == K_SIZE) {
		pool_cli_fmt_size(v, parsable, buf, len);
	} else if (pr->kind == K_TIME && !parsable) {
		time_t t = (time_t)v;
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(buf, len, "%a %b %e %H:%M %Y", &tm);
	} else {
		snprintf(buf, len, "%llu", (unsigned long long)v);
	}
}

/* Split a comma list of property names; "all" is every one. */
static int parse_fields(const char *list, const struct prop **out, size_t *n)
{
	char tmp[512];

	*n = 0;
	if (!strcmp(list, "all")) {
		for (size_t i = 0; i < NPROPS; i++)
			out[(*n)++] = &props[i];
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s", list);
	for (char *save, *f = strtok_r(tmp, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		const struct prop *pr = prop_find(f);
		if (!pr) {
			cli_err("no such property \"%s\"", f);
			return -EINVAL;
		}
		if (*n < NPROPS)
			out[(*n)++] = pr;
	}
	return *n ? 0 : -EINVAL;
}

struct list_ctx {
	const char *pool;
	const char *only; /* a volume name, or NULL */
	int types;        /* 1 volumes, 2 snapshots, 3 all */
	const struct prop **f;
	size_t nf;
	int parsable;
	struct pool_cli_table *t;
};

static int list_one(void *arg, const struct vol_info *vi)
{
	struct list_ctx *c = arg;
	char cells[NPROPS][300], *cp[NPROPS];
	uint64_t nums[NPROPS];
	int isnum[NPROPS];

	if (!(c->types & (vi->type == VOL_TYPE_SNAPSHOT ? 2 : 1)))
		return 0;
	if (c->only) {
		size_t l = strlen(c->only);
		if (strncmp(vi->name, c->only, l) || (vi->name[l] && vi->name[l] != '@'))
			return 0;
	}
	for (size_t i = 0; i < c->nf; i++) {
		prop_value(c->f[i], c->pool, vi, c->parsable, cells[i], sizeof(cells[i]), &nums[i]);
		isnum[i] = c->f[i]->kind != K_STR && c->f[i]->kind != K_RATIO;
		cp[i] = cells[i];
	}
	pool_cli_table_row(c->t, cp, isnum, nums);
	return 0;
}

int vol_cli_list(const char *root, int argc, char **argv)
{
	const struct prop *f[NPROPS];
	const char *cols[NPROPS];
	struct vol_cli_opts o;
	struct pool_cli_table t;
	char **names = NULL;
	size_t nf, nn = 0;
	int types = 1, rc = CLI_EXIT_OK;

	if (vol_cli_opts(argc, argv, &o, 1))
		return CLI_EXIT_USAGE;
	if (o.t) {
		types = !strcmp(o.t, "volume")     ? 1
		        : !strcmp(o.t, "snapshot") ? 2
		        : !strcmp(o.t, "all")      ? 3
		                                   : 0;
		if (!types) {
			cli_err("invalid type \"%s\" (volume, snapshot or all)", o.t);
			return CLI_EXIT_USAGE;
		}
	}
	if (parse_fields(o.o ? o.o : "name,size,used,referenced,compressratio,origin", f, &nf))
		return CLI_EXIT_USAGE;
	for (size_t i = 0; i < nf; i++)
		cols[i] = f[i]->name;
	char pool[POOL_NAME_MAX_CLI] = "";
	const char *only = NULL;
	if (o.npos) {
		const char *slash = strchr(o.pos[0], '/');
		if (slash) {
			if (pool_cli_split(o.pos[0], 0, pool, sizeof(pool), &only))
				return CLI_EXIT_USAGE;
		} else {
			snprintf(pool, sizeof(pool), "%s", o.pos[0]);
		}
	} else if (pool_cli_names(root, &names, &nn)) {
		cli_err("cannot read %s/pools", root);
		return CLI_EXIT_ERROR;
	}
	pool_cli_table_init(&t, cols, nf, o.H, o.p, o.j);
	size_t count = o.npos ? 1 : nn;
	for (size_t i = 0; i < count; i++) {
		const char *pn = o.npos ? pool : names[i];
		struct pool *p = pool_cli_open(root, pn, 1);
		if (!p) {
			rc = CLI_EXIT_ERROR;
			continue;
		}
		struct list_ctx c = {.pool = pn,
		                     .only = only,
		                     .types = types,
		                     .f = f,
		                     .nf = nf,
		                     .parsable = o.p || o.j,
		                     .t = &t};
		struct vol_info vi;
		if (only && vol_get_info(p, only, &vi)) {
			pool_cli_fail(p, -ENOENT);
			rc = CLI_EXIT_ERROR;
		} else {
			vol_iterate(p, 0, list_one, &c);
		}
		pool_cli_abandon(p);
	}
	if (rc == CLI_EXIT_OK || t.nrows)
		pool_cli_table_print(&t, stdout);
	else
		pool_cli_table_free(&t); /* the error alone, no empty table */
	pool_cli_free_names(names, nn);
	return rc;
}

int vol_cli_get(const char *root, int argc, char **argv)
{
	static const char *cols[] = {"name", "property", "value"};
	const struct prop *f[NPROPS];
	struct vol_cli_opts o;
	struct pool_cli_table t;
	size_t nf;
	int rc = CLI_EXIT_OK;

	if (vol_cli_opts(argc, argv, &o, 8) || o.npos < 2) {
		cli_err(
		    "usage: zonevm vol get [-H] [-p] [-j] PROP[,PROP...]|all POOL/VOL[@SNAP]...");
		return CLI_EXIT_USAGE;
	}
	if (parse_fields(o.pos[0], f, &nf))
		return CLI_EXIT_USAGE;
	pool_cli_table_init(&t, cols, 3, o.H, o.p, o.j);
	for (int i = 1; i < o.npos; i++) {
		const char *rest;
		struct vol_info vi;
		struct pool *p = vol_cli_open(root, o.pos[i], -1, &rest);
		if (!p) {
			rc = CLI_EXIT_ERROR;
			continue;
		}
		int err = vol_get_info(p, rest, &vi);
		if (err) {
			pool_cli_fail(p, err);
			rc = CLI_EXIT_ERROR;
		} else {
			for (size_t k = 0; k < nf; k++) {
				char val[300], *cells[3];
				uint64_t nums[3] = {0};
				int isnum[3] = {0, 0, f[k]->kind != K_STR && f[k]->kind != K_RATIO};
				prop_value(f[k], pool_name(p), &vi, o.p || o.j, val, sizeof(val),
				           &nums[2]);
				cells[0] = (char *)o.pos[i];
				cells[1] = (char *)f[k]->name;
				cells[2] = val;
				pool_cli_table_row(&t, cells, isnum, nums);
			}
		}
		pool_cli_close(p);
	}
	if (rc == CLI_EXIT_OK || t.nrows)
		pool_cli_table_print(&t, stdout);
	else
		pool_cli_table_free(&t);
	return rc;
}
