/*
 * nictag.c - nic tags: named host bridges that guest NICs attach to.
 *
 * A nic tag is recorded as <root>/nictags/NAME.json
 *
 *   {"name": "admin", "uplink": "eth1", "mtu": 1500, "address": "10.0.0.1/24"}
 *
 * (uplink, mtu and address optional) and realised as a Linux bridge of the
 * same name, with the uplink, if any, as a port and the address, if any, as
 * the host's address on it (needed for DHCP, see dhcp.c).  The record is what lasts:
 * after a reboot the bridge is gone, and net_nictag_get() recreates it the
 * first time a NIC needs it.  Whether NICs use a tag is asked of the kernel
 * (ports named zvm*), so a crashed VM's tap still counts until it is gone.
 * Records are written to a temporary file and renamed into place.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static void nictag_path(const struct net_ctx *ctx, const char *name, char *out, size_t len)
{
	net_path(out, len, "%s/nictags/%s.json", ctx->root, name);
}

static int nictag_write(struct net_ctx *ctx, const struct net_nictag *t, struct net_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r;

	net_path(dir, sizeof(dir), "%s/nictags", ctx->root);
	r = net_mkdirs(dir);
	if (r)
		return net_fail(err, r, "zonevm root %s: %s", dir, strerror(-r));
	nictag_path(ctx, t->name, path, sizeof(path));

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", t->name);
	if (t->uplink[0])
		cJSON_AddStringToObject(o, "uplink", t->uplink);
	if (t->mtu)
		cJSON_AddNumberToObject(o, "mtu", t->mtu);
	if (t->has_address) {
		char a[INET6_ADDRSTRLEN + 8];
		net_addr_format(&t->address.a, a, sizeof(a));
		snprintf(a + strlen(a), sizeof(a) - strlen(a), "/%u", t->address.prefix);
		cJSON_AddStringToObject(o, "address", a);
	}
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		return net_fail(err, -ENOMEM, "out of memory");
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);
	if (!line) {
		free(text);
		return net_fail(err, -ENOMEM, "out of memory");
	}
	memcpy(line + n, "\n", 2);
	r = net_write_file(path, line, err);
	free(line);
	return r;
}

int nictag_load(struct net_ctx *ctx, const char *name, struct net_nictag *t, struct net_err *err)
{
	char path[PATH_MAX], text[4096];
	FILE *f;
	size_t n;

	memset(t, 0, sizeof(*t));
	if (net_nictag_check_name(name, err))
		return -EINVAL;
	nictag_path(ctx, name, path, sizeof(path));
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return net_fail(err, -ENOENT,
			                "unknown nic tag \"%s\" (zonevm nictag create)", name);
		return net_fail(err, -errno, "%s: %s", path, strerror(errno));
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	cJSON *o = cJSON_Parse(text);
	cJSON *jn = cJSON_GetObjectItemCaseSensitive(o, "name");
	cJSON *ju = cJSON_GetObjectItemCaseSensitive(o, "uplink");
	cJSON *jm = cJSON_GetObjectItemCaseSensitive(o, "mtu");
	cJSON *ja = cJSON_GetObjectItemCaseSensitive(o, "address");
	int r = 0;
	if (!cJSON_IsString(jn) || strcmp(jn->valuestring, name) ||
	    (ju && (!cJSON_IsString(ju) || strlen(ju->valuestring) > NET_IFNAME_MAX)) ||
	    (jm && (!cJSON_IsNumber(jm) || jm->valuedouble < 68 || jm->valuedouble > 65535)) ||
	    (ja && (!cJSON_IsString(ja) || net_cidr_parse(ja->valuestring, &t->address))))
		r = net_fail(err, -EINVAL, "%s: not a valid nic tag record", path);
	else {
		snprintf(t->name, sizeof(t->name), "%s", name);
		if (ju)
			snprintf(t->uplink, sizeof(t->uplink), "%s", ju->valuestring);
		t->mtu = jm ? (unsigned)jm->valuedouble : 0;
		t->has_address = ja != NULL;
	}
	cJSON_Delete(o);
	return r;
}

/* Make the bridge exist with its uplink attached. */
static int nictag_realise(struct net_ctx *ctx, struct net_nictag *t, struct net_err *err)
{
	int r = link_is_bridge(ctx, t->name);

	if (r == 0)
		return net_fail(err, -EEXIST,
		                "nic tag %s: a link of that name exists and is not "
		                "a bridge",
		                t->name);
	if (r == -ENODEV)
		r = link_bridge_create(ctx, t->name, t->mtu, err);
	else if (r < 0)
		return net_fail(err, r, "nic tag %s: %s", t->name, strerror(-r));
	else
		r = link_set_master_up(ctx, t->name, NULL, err);
	if (r)
		return r;
	if (t->uplink[0]) {
		r = link_set_master_up(ctx, t->uplink, t->name, err);
		if (r)
			return r;
	}
	if (t->has_address) {
		r = link_addr_ensure(ctx, t->name, &t->address, err);
		if (r)
			return r;
	}
	t->present = true;
	r = link_count_ports(ctx, t->name, "zvm");
	t->nics = r > 0 ? (unsigned)r : 0;
	return 0;
}

int net_nictag_create(struct net_ctx *ctx, const struct net_nictag *tag, struct net_err *err)
{
	struct net_nictag t = *tag, old;
	char path[PATH_MAX];
	struct stat st;
	int r;

	if (net_nictag_check_name(t.name, err))
		return -EINVAL;
	if (t.mtu && (t.mtu < 68 || t.mtu > 65535))
		return net_fail(err, -EINVAL, "nic tag %s: mtu %u out of range (68-65535)", t.name,
		                t.mtu);
	nictag_path(ctx, t.name, path, sizeof(path));
	if (stat(path, &st) == 0 && nictag_load(ctx, t.name, &old, err) == 0)
		return net_fail(err, -EEXIST, "nic tag %s already exists", t.name);
	if (t.uplink[0]) {
		r = link_index(ctx, t.uplink);
		if (r < 0)
			return net_fail(err, r, "nic tag %s: uplink %s: no such interface", t.name,
			                t.uplink);
	}
	r = nictag_realise(ctx, &t, err);
	if (r)
		return r;
	return nictag_write(ctx, &t, err);
}

int net_nictag_delete(struct net_ctx *ctx, const char *name, struct net_err *err)
{
	struct net_nictag t;
	char path[PATH_MAX];
	int r = nictag_load(ctx, name, &t, err);

	if (r)
		return r;
	r = link_count_ports(ctx, name, "zvm");
	if (r > 0)
		return net_fail(err, -EBUSY, "nic tag %s: %d NIC%s still attached", name, r,
		                r == 1 ? "" : "s");
	if (r == 0) {
		r = link_delete(ctx, name);
		if (r && r != -ENODEV)
			return net_fail(err, r, "nic tag %s: cannot delete bridge: %s", name,
			                strerror(-r));
	}
	dhcp_forget(ctx, name);
	nictag_path(ctx, name, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		return net_fail(err, -errno, "%s: %s", path, strerror(errno));
	return 0;
}

int net_nictag_get(struct net_ctx *ctx, const char *name, struct net_nictag *tag,
                   struct net_err *err)
{
	int r = nictag_load(ctx, name, tag, err);

	return r ? r : nictag_realise(ctx, tag, err);
}

static int nictag_cmp(const void *a, const void *b)
{
	return strcmp(((const struct net_nictag *)a)->name, ((const struct net_nictag *)b)->name);
}

int net_nictag_list(struct net_ctx *ctx, struct net_nictag **tags, size_t *n, struct net_err *err)
{
	char dir[PATH_MAX];
	struct net_nictag *v = NULL;
	size_t cnt = 0;
	DIR *d;
	struct dirent *e;

	*tags = NULL;
	*n = 0;
	net_path(dir, sizeof(dir), "%s/nictags", ctx->root);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : net_fail(err, -errno, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char name[NET_TAG_MAX + 6];
		struct net_err ignore;

		if (l < 6 || l - 5 > NET_TAG_MAX || strcmp(e->d_name + l - 5, ".json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(l - 5), e->d_name);
		struct net_nictag *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			closedir(d);
			free(v);
			return net_fail(err, -ENOMEM, "out of memory");
		}
		v = nv;
		if (nictag_load(ctx, name, &v[cnt], &ignore))
			continue;
		int b = link_is_bridge(ctx, name);
		v[cnt].present = b > 0;
		int p = b > 0 ? link_count_ports(ctx, name, "zvm") : 0;
		v[cnt].nics = p > 0 ? (unsigned)p : 0;
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), nictag_cmp);
	*tags = v;
	*n = cnt;
	return 0;
}
