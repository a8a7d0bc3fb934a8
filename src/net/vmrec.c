/*
 * vmrec.c - what a running VM's NICs are, recorded for the other zonevm
 * processes: <root>/netvms/<vmid>.json, and the locks that go with it.
 *
 *   {"vmid": "web1", "nics": [{"tap": "zvmweb1n0", "ifb": "", "tag": "admin",
 *     "mac": "02:..", "ip": "10.0.0.5/24", "gateway": "10.0.0.1",
 *     "resolvers": ["1.1.1.1"], "vlan": 0, "queues": 1, "allow": 0}]}
 *
 * Readers: the duplicate-MAC check of the next VM on a nic tag, the DHCP
 * hosts of a nic tag (dhcp.c) and `zonevm nic`.  The record says what to
 * look at; the kernel stays the truth about what exists.
 *
 * Locks (flock, so they vanish with their holders):
 *   <root>/netvms/<vmid>.lock  held by the VM (and its guard) while it
 *                              lives: a record whose lock is free is stale;
 *   <root>/netvms/.lock        held briefly while records are read or
 *                              changed, always after a VM lock.
 * Records are written to a temporary file and renamed into place.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

void net_path(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

int net_mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!c)
			return 0;
		*p = c;
	}
}

int net_write_file(const char *path, const char *text, struct net_err *err)
{
	char tmp[PATH_MAX + 8];
	int r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return net_fail(err, -errno, "%s: %s", tmp, strerror(errno));
	if (fputs(text, f) < 0 || fflush(f) || fsync(fileno(f)))
		r = -errno;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return net_fail(err, r, "%s: %s", path, strerror(-r));
	}
	return 0;
}

static void vmrec_path(const struct net_ctx *ctx, const char *vmid, const char *ext, char *out,
                       size_t len)
{
	net_path(out, len, "%s/netvms/%s%s", ctx->root, vmid, ext);
}

static int lock_open(const struct net_ctx *ctx, const char *name, struct net_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r;

	net_path(dir, sizeof(dir), "%s/netvms", ctx->root);
	r = net_mkdirs(dir);
	if (r)
		return net_fail(err, r, "%s: %s", dir, strerror(-r));
	vmrec_path(ctx, name, ".lock", path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return net_fail(err, -errno, "%s: %s", path, strerror(errno));
	return fd;
}

int vmrec_lock_global(struct net_ctx *ctx, struct net_err *err)
{
	int fd = lock_open(ctx, "", err);

	if (fd < 0)
		return fd;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return net_fail(err, -e, "%s/netvms/.lock: %s", ctx->root, strerror(e));
		}
	return fd;
}

int vmrec_lock_vm(struct net_ctx *ctx, const char *vmid, int tries, struct net_err *err)
{
	int fd = lock_open(ctx, vmid, err);

	if (fd < 0)
		return fd;
	for (int i = 0;; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK || i + 1 >= tries)
			break;
		usleep(100000);
	}
	int e = errno;
	close(fd);
	if (e == EWOULDBLOCK)
		return net_fail(
		    err, -EBUSY,
		    "vm %s: in use by a running VM (or its network cleanup is under way)", vmid);
	return net_fail(err, -e, "vm %s: lock: %s", vmid, strerror(e));
}

static void json_addr(cJSON *o, const char *key, const struct net_addr *a, int prefix)
{
	char s[INET6_ADDRSTRLEN + 8];

	net_addr_format(a, s, sizeof(s));
	if (prefix >= 0)
		snprintf(s + strlen(s), sizeof(s) - strlen(s), "/%d", prefix);
	cJSON_AddStringToObject(o, key, s);
}

int vmrec_write(struct net_ctx *ctx, const struct net_vm *vm, struct net_err *err)
{
	char path[PATH_MAX], mac[18];
	cJSON *o = cJSON_CreateObject(), *nics = cJSON_AddArrayToObject(o, "nics");

	cJSON_AddStringToObject(o, "vmid", vm->vmid);
	for (unsigned i = 0; i < vm->n_nics; i++) {
		const struct net_nic *n = &vm->nics[i];
		const struct net_nic_spec *s = &n->spec;
		cJSON *j = cJSON_CreateObject();

		cJSON_AddItemToArray(nics, j);
		cJSON_AddStringToObject(j, "tap", n->tap);
		cJSON_AddStringToObject(j, "ifb", n->ifb);
		cJSON_AddStringToObject(j, "tag", s->tag);
		net_mac_format(s->mac, mac);
		cJSON_AddStringToObject(j, "mac", mac);
		if (s->has_ip)
			json_addr(j, "ip", &s->ip.a, s->ip.prefix);
		if (s->has_gateway)
			json_addr(j, "gateway", &s->gateway, -1);
		cJSON *res = cJSON_AddArrayToObject(j, "resolvers");
		for (unsigned k = 0; k < s->n_resolvers; k++) {
			char a[INET6_ADDRSTRLEN];
			net_addr_format(&s->resolvers[k], a, sizeof(a));
			cJSON_AddItemToArray(res, cJSON_CreateString(a));
		}
		cJSON_AddNumberToObject(j, "vlan", s->vlan);
		cJSON_AddNumberToObject(j, "queues", s->queues);
		cJSON_AddNumberToObject(j, "max_bandwidth", (double)s->max_bandwidth);
		cJSON_AddNumberToObject(j, "allow", s->allow);
	}
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	if (!text)
		return net_fail(err, -ENOMEM, "out of memory");
	vmrec_path(ctx, vm->vmid, ".json", path, sizeof(path));
	int r = net_write_file(path, text, err);
	free(text);
	return r;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static unsigned jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (unsigned)v->valuedouble : 0;
}

/* One NIC of a record; -EINVAL when a field is missing or malformed. */
static int vmrec_nic(const cJSON *j, struct net_nic *n)
{
	struct net_nic_spec *s = &n->spec;
	const char *tap = jstr(j, "tap"), *ifb = jstr(j, "ifb"), *tag = jstr(j, "tag");
	const char *mac = jstr(j, "mac"), *ip = jstr(j, "ip"), *gw = jstr(j, "gateway");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "resolvers"), *e;

	memset(n, 0, sizeof(*n));
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		n->tap_fds[q] = -1;
	if (!tap || !ifb || !tag || !mac || strlen(tap) > NET_IFNAME_MAX ||
	    strlen(ifb) > NET_IFNAME_MAX || strlen(tag) > NET_TAG_MAX || net_mac_parse(mac, s->mac))
		return -EINVAL;
	snprintf(n->tap, sizeof(n->tap), "%s", tap);
	snprintf(n->ifb, sizeof(n->ifb), "%s", ifb);
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->mac_set = true;
	if (ip && net_cidr_parse(ip, &s->ip))
		return -EINVAL;
	s->has_ip = ip != NULL;
	if (gw && net_addr_parse(gw, &s->gateway))
		return -EINVAL;
	s->has_gateway = gw != NULL;
	cJSON_ArrayForEach(e, res)
	{
		if (s->n_resolvers == NET_MAX_RESOLVERS || !cJSON_IsString(e) ||
		    net_addr_parse(e->valuestring, &s->resolvers[s->n_resolvers]))
			return -EINVAL;
		s->n_resolvers++;
	}
	s->vlan = (uint16_t)jnum(j, "vlan");
	s->queues = jnum(j, "queues");
	s->allow = jnum(j, "allow");
	const cJSON *bw = cJSON_GetObjectItemCaseSensitive(j, "max_bandwidth");
	s->max_bandwidth = cJSON_IsNumber(bw) ? (uint64_t)bw->valuedouble : 0;
	return 0;
}

int net_vm_load(struct net_ctx *ctx, const char *vmid, struct net_vm *vm, struct net_err *err)
{
	char path[PATH_MAX];
	int r = 0;

	memset(vm, 0, sizeof(*vm));
	vm->lock_fd = vm->guard_fd = -1;
	if (net_vmid_check(vmid))
		return net_fail(err, -EINVAL, "vm id \"%s\": want 1 to %d of [a-z0-9]", vmid,
		                NET_VMID_MAX);
	vmrec_path(ctx, vmid, ".json", path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return net_fail(err, -ENOENT, "vm %s: no NICs recorded (not running?)",
			                vmid);
		return net_fail(err, -errno, "%s: %s", path, strerror(errno));
	}
	char *text = NULL;
	size_t cap = 0;
	ssize_t len = getdelim(&text, &cap, '\0', f);
	fclose(f);
	cJSON *o = len > 0 ? cJSON_Parse(text) : NULL;
	free(text);
	const char *id = jstr(o, "vmid");
	const cJSON *nics = cJSON_GetObjectItemCaseSensitive(o, "nics"), *j;
	if (!id || strcmp(id, vmid) || !cJSON_IsArray(nics))
		r = -EINVAL;
	snprintf(vm->vmid, sizeof(vm->vmid), "%s", vmid);
	cJSON_ArrayForEach(j, nics)
	{
		if (r || vm->n_nics == NET_MAX_NICS || vmrec_nic(j, &vm->nics[vm->n_nics])) {
			r = -EINVAL;
			break;
		}
		vm->n_nics++;
	}
	cJSON_Delete(o);
	if (r)
		return net_fail(err, r, "%s: not a valid VM network record", path);
	return 0;
}

void vmrec_remove(struct net_ctx *ctx, const char *vmid)
{
	char path[PATH_MAX];

	vmrec_path(ctx, vmid, ".json", path, sizeof(path));
	unlink(path);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int net_vm_list(struct net_ctx *ctx, char (**ids)[NET_VMID_MAX + 1], size_t *n, struct net_err *err)
{
	char dir[PATH_MAX];
	char(*v)[NET_VMID_MAX + 1] = NULL;
	size_t cnt = 0;
	struct dirent *e;

	*ids = NULL;
	*n = 0;
	net_path(dir, sizeof(dir), "%s/netvms", ctx->root);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : net_fail(err, -errno, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char id[NET_VMID_MAX + 6];

		if (l < 6 || l - 5 > NET_VMID_MAX || strcmp(e->d_name + l - 5, ".json"))
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(l - 5), e->d_name);
		if (net_vmid_check(id))
			continue;
		void *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			closedir(d);
			free(v);
			return net_fail(err, -ENOMEM, "out of memory");
		}
		v = nv;
		memcpy(v[cnt++], id, strlen(id) + 1); /* net_vmid_check: short */
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), id_cmp);
	*ids = v;
	*n = cnt;
	return 0;
}

int vmrec_live(struct net_ctx *ctx, const char *vmid)
{
	struct net_err ignore;
	int fd = vmrec_lock_vm(ctx, vmid, 1, &ignore);

	if (fd < 0)
		return fd == -EBUSY;
	close(fd);
	return 0;
}
