/*
 * dhcp.c - DHCP for guests, by dnsmasq, one instance per nic tag.
 *
 * dnsmasq is the well-kept DHCP server; we only write its files and start,
 * reload (SIGHUP) or stop it.  Per nic tag NAME with an IPv4 address
 * (`nictag create --address`), under <root>/nictags/:
 *
 *   NAME.dhcp-conf    interface=NAME, bind-interfaces, port=0 (no DNS),
 *                     dhcp-range=<the tag's network>,static (no pool: only
 *                     listed hosts get an address), dhcp-ignore=tag:!known
 *                     (no answer at all to any other MAC)
 *   NAME.dhcp-hosts   one line per running NIC with an IPv4 ip:
 *                     MAC,set:<tap>,IP,1h           (re-read on SIGHUP)
 *   NAME.dhcp-opts    per tap: netmask, router, dns-server (re-read on
 *                     SIGHUP); an empty router/dns-server sends none
 *   NAME.dhcp-pid, NAME.dhcp-leases, NAME.dhcp-log
 *
 * dhcp_sync() rebuilds hosts and opts from the VM records (vmrec.c) with
 * the records lock held, then starts dnsmasq if it is not running, reloads
 * it if it is, or stops it when no NIC needs it.  dnsmasq needs an address
 * of the NIC's subnet on the bridge to answer (it picks the range by the
 * receiving interface's addresses), hence --address.  dnsmasq runs as
 * nobody after its start, so the zonevm root must be searchable by others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

static void dhcp_path(const struct net_ctx *ctx, const char *tag, const char *what, char *out,
                      size_t len)
{
	net_path(out, len, "%s/nictags/%s.dhcp-%s", ctx->root, tag, what);
}

static void mask4(unsigned prefix, struct net_addr *m)
{
	uint32_t v = prefix ? htonl(~0u << (32 - prefix)) : 0;

	memset(m, 0, sizeof(*m));
	m->family = AF_INET;
	memcpy(m->addr, &v, 4);
}

/* The running dnsmasq of a tag, from its pid file; 0 if none. */
static pid_t dhcp_pid(const struct net_ctx *ctx, const char *tag)
{
	char path[PATH_MAX], comm[64];
	long pid = 0;
	FILE *f;

	dhcp_path(ctx, tag, "pid", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 1)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	bool ours = fgets(comm, sizeof(comm), f) && !strncmp(comm, "dnsmasq", 7);
	fclose(f);
	return ours ? (pid_t)pid : 0;
}

/* Stop the tag's dnsmasq; forget: also its leases and log (tag deleted). */
static void dhcp_stop(const struct net_ctx *ctx, const char *tag, bool forget)
{
	static const char *const files[] = {"pid", "hosts", "opts", "conf", "leases", "log"};
	char path[PATH_MAX];
	pid_t pid = dhcp_pid(ctx, tag);

	if (pid > 0)
		kill(pid, SIGTERM);
	for (size_t i = 0; i < (forget ? 6u : 4u); i++) {
		dhcp_path(ctx, tag, files[i], path, sizeof(path));
		unlink(path);
	}
}

/*
 * dnsmasq drops its privileges (to nobody) and re-reads the hosts and opts
 * files as nobody on SIGHUP: every folder above them must be searchable by
 * others, or reloads would silently empty its host list.
 */
static int dhcp_check_reachable(const char *path, struct net_err *err)
{
	char dir[PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *slash = strrchr(dir, '/'); slash && slash != dir; slash = strrchr(dir, '/')) {
		*slash = '\0';
		if (stat(dir, &st) == 0 && !(st.st_mode & S_IXOTH))
			return net_fail(
			    err, -EACCES,
			    "DHCP: dnsmasq (user nobody) cannot reach %s: folder %s is not "
			    "searchable by others (chmod o+x)",
			    path, dir);
	}
	return 0;
}

static int dhcp_start(struct net_ctx *ctx, const struct net_nictag *t, struct net_err *err)
{
	char conf[PATH_MAX], path[PATH_MAX], log[PATH_MAX], net[INET_ADDRSTRLEN],
	    mask[INET_ADDRSTRLEN], text[4 * PATH_MAX];
	struct net_addr m, n = t->address.a;
	size_t len = 0;
	int r;

	mask4(t->address.prefix, &m);
	for (int i = 0; i < 4; i++)
		n.addr[i] &= m.addr[i];
	net_addr_format(&n, net, sizeof(net));
	net_addr_format(&m, mask, sizeof(mask));
	len += (size_t)snprintf(text + len, sizeof(text) - len,
	                        "# written by zonevm (src/net/dhcp.c) for nic tag %s\n"
	                        "port=0\ninterface=%s\nbind-interfaces\n"
	                        "dhcp-range=%s,static,%s,1h\n"
	                        "dhcp-ignore=tag:!known\ndhcp-authoritative\n",
	                        t->name, t->name, net, mask);
	dhcp_path(ctx, t->name, "hosts", path, sizeof(path));
	len += (size_t)snprintf(text + len, sizeof(text) - len, "dhcp-hostsfile=%s\n", path);
	dhcp_path(ctx, t->name, "opts", path, sizeof(path));
	len += (size_t)snprintf(text + len, sizeof(text) - len, "dhcp-optsfile=%s\n", path);
	dhcp_path(ctx, t->name, "leases", path, sizeof(path));
	len += (size_t)snprintf(text + len, sizeof(text) - len, "dhcp-leasefile=%s\n", path);
	dhcp_path(ctx, t->name, "pid", path, sizeof(path));
	snprintf(text + len, sizeof(text) - len, "pid-file=%s\n", path);
	dhcp_path(ctx, t->name, "conf", conf, sizeof(conf));
	r = dhcp_check_reachable(conf, err);
	if (!r)
		r = net_write_file(conf, text, err);
	if (r)
		return r;
	dhcp_path(ctx, t->name, "log", log, sizeof(log));
	int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lfd < 0)
		return net_fail(err, -errno, "%s: %s", log, strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		return net_fail(err, -errno, "nic tag %s: fork dnsmasq: %s", t->name,
		                strerror(errno));
	}
	if (pid == 0) {
		static const char *const paths[] = {"/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq",
		                                    "/usr/local/bin/dnsmasq"};
		char cf[PATH_MAX + 16];
		snprintf(cf, sizeof(cf), "--conf-file=%s", conf);
		dup2(lfd, 1);
		dup2(lfd, 2);
		close_range(3, ~0u, 0);
		char *argv[] = {"dnsmasq", cf, "--log-dhcp", "--log-facility=-", NULL};
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			execv(paths[i], argv);
		execvp("dnsmasq", argv);
		dprintf(2, "zonevm: cannot run dnsmasq: %s\n", strerror(errno));
		_exit(127);
	}
	close(lfd);
	/* dnsmasq's first process exits once the daemon is up, with its status */
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return net_fail(err, -errno, "nic tag %s: dnsmasq: %s", t->name,
			                strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return net_fail(err, -EIO,
		                "nic tag %s: dnsmasq failed to start (status %d): see %s", t->name,
		                WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
	return 0;
}

/* Append one NIC's dhcp-hosts and dhcp-opts lines. */
static void dhcp_nic_lines(const struct net_nic *nic, FILE *hf, FILE *of)
{
	const struct net_nic_spec *s = &nic->spec;
	char mac[18], ip[INET6_ADDRSTRLEN], a[INET6_ADDRSTRLEN];
	struct net_addr m;

	net_mac_format(s->mac, mac);
	net_addr_format(&s->ip.a, ip, sizeof(ip));
	fprintf(hf, "%s,set:%s,%s,1h\n", mac, nic->tap, ip);
	mask4(s->ip.prefix, &m);
	net_addr_format(&m, a, sizeof(a));
	fprintf(of, "tag:%s,option:netmask,%s\n", nic->tap, a);
	fprintf(of, "tag:%s,option:router", nic->tap);
	if (s->has_gateway) {
		net_addr_format(&s->gateway, a, sizeof(a));
		fprintf(of, ",%s", a);
	}
	fprintf(of, "\ntag:%s,option:dns-server", nic->tap);
	for (unsigned k = 0; k < s->n_resolvers; k++)
		if (s->resolvers[k].family == AF_INET) {
			net_addr_format(&s->resolvers[k], a, sizeof(a));
			fprintf(of, ",%s", a);
		}
	fprintf(of, "\n");
}

int dhcp_sync(struct net_ctx *ctx, const char *tag, struct net_err *err)
{
	struct net_nictag t;
	char(*ids)[NET_VMID_MAX + 1];
	size_t cnt, hl = 0, ol = 0;
	char *hosts = NULL, *opts = NULL, path[PATH_MAX];
	unsigned n = 0;
	struct net_err ignore;
	int r;

	if (nictag_load(ctx, tag, &t, &ignore) || !t.has_address || t.address.a.family != AF_INET) {
		dhcp_stop(ctx, tag, false);
		return 0;
	}
	r = net_vm_list(ctx, &ids, &cnt, err);
	if (r)
		return r;
	FILE *hf = open_memstream(&hosts, &hl), *of = open_memstream(&opts, &ol);
	struct net_vm *vm = malloc(sizeof(*vm));
	if (!hf || !of || !vm) {
		r = net_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < cnt; k++) {
		if (net_vm_load(ctx, ids[k], vm, &ignore))
			continue;
		for (unsigned i = 0; i < vm->n_nics; i++) {
			const struct net_nic_spec *s = &vm->nics[i].spec;
			if (strcmp(s->tag, tag) || !s->has_ip || s->ip.a.family != AF_INET)
				continue;
			dhcp_nic_lines(&vm->nics[i], hf, of);
			n++;
		}
	}
	fclose(hf);
	fclose(of);
	hf = of = NULL;
	if (!n) {
		dhcp_stop(ctx, tag, false);
		goto out;
	}
	dhcp_path(ctx, tag, "hosts", path, sizeof(path));
	r = net_write_file(path, hosts, err);
	dhcp_path(ctx, tag, "opts", path, sizeof(path));
	if (!r)
		r = net_write_file(path, opts, err);
	if (!r) {
		pid_t pid = dhcp_pid(ctx, tag);
		if (pid > 0)
			kill(pid, SIGHUP);
		else
			r = dhcp_start(ctx, &t, err);
	}
out:
	if (hf)
		fclose(hf);
	if (of)
		fclose(of);
	free(hosts);
	free(opts);
	free(vm);
	free(ids);
	return r;
}

void dhcp_forget(struct net_ctx *ctx, const char *tag)
{
	dhcp_stop(ctx, tag, true);
}
