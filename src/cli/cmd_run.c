/*
 * cmd_run.c - `zonevm run`: the VMM on its own, every resource given on the
 * command line (like kvmtool or Firecracker).
 *
 * Parses and checks the options, opens every file the guest needs (kernel,
 * initrd, disks), then hands file descriptors to vmm_run().  Every bad input is reported here,
 * before any vCPU runs, with the option and the cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "pool_cli.h"
#include "serve/serve.h"
#include "net/net.h"
#include "vmm/vmm.h"

#define RUN_DEFAULT_MEM     (256ULL << 20)
#define RUN_DEFAULT_CMDLINE "console=ttyS0 panic=-1"
#define RUN_MAX_DISKS       24 /* PCI bus 0 has 31 free slots */
#define RUN_MAX_NICS        6  /* with 24 disks and the rng, bus 0 is full */

static void run_usage(FILE *f)
{
	fprintf(f,
	        "usage: zonevm run --kernel PATH [--initrd PATH] [--cmdline STR]\n"
	        "                  [--cpus N] [--mem SIZE] [--on-reboot exit|restart]\n"
	        "                  [--disk PATH[,ro][,serial=ID][,cache=MODE]]...\n"
	        "                  [--rng|--no-rng]\n"
	        "                  [--disk vhost-user=SOCKET]... [--disk vol=POOL/VOL[,ro]]...\n"
	        "                  [--nic tag=NAME[,OPTION]...]... [--vmid ID]\n"
	        "\n"
	        "Boot a Linux bzImage (boot protocol 2.12+, 64-bit entry) under KVM.\n"
	        "  --kernel PATH      the kernel (bzImage)\n"
	        "  --initrd PATH      an initial ramdisk\n"
	        "  --cmdline STR      kernel command line (default \"%s\")\n"
	        "  --cpus N           vCPUs, 1 to what KVM allows (default 1)\n"
	        "  --mem SIZE         guest memory with K/M/G suffix (default 256M); locked\n"
	        "  --on-reboot ACT    exit (default: exit status 3) or restart the guest\n"
	        "  --disk SPEC        a virtio-blk disk (repeatable; /dev/vda, vdb, ... in\n"
	        "                     order): PATH is a raw image file or a block device\n"
	        "                     whose size is a multiple of 512; ro makes it\n"
	        "                     read-only; serial=ID sets its id (up to 20 bytes);\n"
	        "                     cache=none (default: O_DIRECT, bypasses the host's\n"
	        "                     page cache, as QEMU's cache=none) or writeback\n"
	        "  --disk vhost-user=SOCKET  a virtio-blk disk served by the vhost-user-blk\n"
	        "                     backend listening on SOCKET (zonevm disk serve,\n"
	        "                     qemu-storage-daemon, ...); guest memory is then shared\n"
	        "  --disk vol=POOL/VOL[,ro]  volume VOL of POOL, exported by the running\n"
	        "                     `zonevm pool serve POOL` over vhost-user-blk\n"
	        "  --root DIR         the zonevm root for vol= disks (default $ZONEVM_ROOT or\n"
	        "                     /var/lib/zonevm)\n"
	        "  --rng, --no-rng    a virtio-rng entropy device (default: on)\n"
	        "  --nic SPEC         a virtio-net NIC on nic tag NAME (repeatable; eth0, eth1,\n"
	        "                     ... in order): tag=NAME[,mac=MAC][,ip=CIDR]\n"
	        "                     [,gateway=IP][,resolvers=IP;IP][,allowed_ips=CIDR;CIDR]\n"
	        "                     [,vlan=ID][,max_bandwidth=RATE][,queues=N]\n"
	        "                     [,allow_ip_spoofing]\n"
	        "                     [,allow_mac_spoofing][,allow_dhcp_spoofing]\n"
	        "                     [,allow_restricted_traffic][,vhost] (docs/NETWORK.md)\n"
	        "  --vmid ID          the VM's network id, [a-z0-9]{1,8}: names its taps and\n"
	        "                     rules and seeds the generated MACs (default: p + the\n"
	        "                     process id in base 36, so MACs change per run)\n"
	        "\n"
	        "The guest's serial console (COM1) is on stdin/stdout; when stdin is a\n"
	        "terminal it is put in raw mode and Ctrl-] then q stops the VM.\n"
	        "Exit status: 0 guest powered off, 1 error, 2 usage, 3 guest rebooted,\n"
	        "4 guest crashed (triple fault), 5 stopped by a signal or the escape.\n",
	        RUN_DEFAULT_CMDLINE);
}

static int open_input(const char *what, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		cli_err("cannot open %s \"%s\": %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_err("cannot use %s \"%s\": it is a directory", what, path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * vhost-user=SOCKET, or vol=POOL/VOL[,ro] (*vol then points at POOL/VOL and
 * the socket comes later from the pool daemon): 1, or 0 for a plain PATH.
 */
static int parse_disk_remote(char *spec, struct vmm_disk *d, const char **vol)
{
	char *comma;

	if (!strncmp(spec, "vhost-user=", 11)) {
		d->vhost_user = spec + 11;
		if (!*d->vhost_user || strchr(d->vhost_user, ',')) {
			cli_err("--disk %s: want vhost-user=SOCKET (no options: the backend "
			        "decides size, read-only and id)",
			        spec);
			return -EINVAL;
		}
		return 1;
	}
	if (strncmp(spec, "vol=", 4))
		return 0;
	*vol = spec + 4;
	if ((comma = strchr(spec + 4, ','))) {
		*comma = 0;
		if (strcmp(comma + 1, "ro")) {
			cli_err("--disk vol=%s: unknown option \"%s\" (want ro)", *vol, comma + 1);
			return -EINVAL;
		}
		d->read_only = true;
	}
	if (!strchr(*vol, '/') || !strchr(*vol, '/')[1] || *vol[0] == '/') {
		cli_err("--disk vol=%s: want POOL/VOL", *vol);
		return -EINVAL;
	}
	d->name = *vol;
	return 1;
}

/* Ask the daemon of vol= disk D's pool for a vhost-user export. */
static int open_disk_vol(const char *root, const char *vol, struct vmm_disk *d, char *sock,
                         size_t len)
{
	char err[512];
	int r = serve_export_vhost(root, vol, d->read_only, sock, len, err, sizeof(err));

	if (r < 0) {
		if (r == -ENOENT && !err[0])
			cli_err("--disk vol=%s: no `zonevm pool serve` runs for its pool", vol);
		else
			cli_err("--disk vol=%s: %s", vol, err[0] ? err : strerror(-r));
		return r;
	}
	d->vhost_user = sock;
	return 0;
}

/* Parse PATH[,ro][,serial=ID][,cache=none|writeback] into d (path points into spec). */
static int parse_disk(char *spec, struct vmm_disk *d, const char **vol)
{
	char *opt, *save = NULL;
	int r;

	*d = (struct vmm_disk){.fd = -1};
	*vol = NULL;
	if ((r = parse_disk_remote(spec, d, vol)) != 0)
		return r < 0 ? r : 0;
	d->name = strtok_r(spec, ",", &save);
	if (!d->name || !*d->name) {
		cli_err("--disk: \"%s\" has no path", spec);
		return -EINVAL;
	}
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro")) {
			d->read_only = true;
		} else if (!strncmp(opt, "serial=", 7)) {
			if (strlen(opt + 7) > VMM_DISK_SERIAL_MAX) {
				cli_err("--disk %s: serial \"%s\" is longer than %d bytes", d->name,
				        opt + 7, VMM_DISK_SERIAL_MAX);
				return -EINVAL;
			}
			snprintf(d->serial, sizeof(d->serial), "%s", opt + 7);
		} else if (!strcmp(opt, "cache=none") || !strcmp(opt, "cache=writeback")) {
			d->writeback = !strcmp(opt, "cache=writeback");
		} else {
			cli_err("--disk %s: unknown option \"%s\" (want ro, serial=ID or "
			        "cache=none|writeback)",
			        d->name, opt);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Open a disk read-write (or read-only) and check its size.  cache=none
 * opens it O_DIRECT; on a file system without direct I/O (tmpfs) the disk
 * goes through the page cache instead, and a line on stderr says so.
 */
static int open_disk(struct vmm_disk *d)
{
	struct stat st;
	uint64_t size = 0;

	d->fd = cli_open_disk(d->name, d->read_only, &d->writeback);
	if (d->fd < 0) {
		cli_err("cannot open disk \"%s\"%s: %s", d->name, d->read_only ? " read-only" : "",
		        strerror(errno));
		return -1;
	}
	if (fstat(d->fd, &st) < 0) {
		cli_err("disk \"%s\": %s", d->name, strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &size) < 0) {
			cli_err("disk \"%s\": cannot read the block device's size: %s", d->name,
			        strerror(errno));
			return -1;
		}
	} else {
		cli_err("disk \"%s\": not a regular file or a block device", d->name);
		return -1;
	}
	if (size % 512) {
		cli_err("disk \"%s\": its size, %llu bytes, is not a multiple of 512", d->name,
		        (unsigned long long)size);
		return -1;
	}
	return 0;
}

/* --vmid default: "p" and the pid in base 36 (at most 7 characters). */
static void run_default_vmid(char *out, size_t len)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char tmp[16];
	unsigned long v = (unsigned long)getpid();
	size_t n = 0;

	do {
		tmp[n++] = digits[v % 36];
		v /= 36;
	} while (v && n < sizeof(tmp));
	snprintf(out, len, "p");
	for (size_t i = 0; i < n && i + 2 < len; i++) {
		out[i + 1] = tmp[n - 1 - i];
		out[i + 2] = 0;
	}
}

/*
 * Create the NICs' taps, rules and caps on the host (src/net) and fill
 * nics[] with their fds.  Everything is checked before anything is made.
 */
static int run_net_setup(struct net_nic_spec *specs, unsigned n, const char *vmid,
                         struct net_ctx **ctx, struct net_vm *nvm, struct vmm_nic *nics)
{
	struct net_err err = {{0}};
	int r;

	if (net_vmid_check(vmid) < 0) {
		cli_err("--vmid: \"%s\" is not a VM id (1 to %d of a-z, 0-9)", vmid, NET_VMID_MAX);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		net_nic_spec_finish(&specs[i], vmid, i);
		if (specs[i].vhost && access("/dev/vhost-net", R_OK | W_OK) < 0) {
			cli_err("--nic %u (tag %s): vhost asked, but /dev/vhost-net is not usable: "
			        "%s (load the vhost_net module, or drop the vhost flag)",
			        i, specs[i].tag, strerror(errno));
			return -ENOTSUP;
		}
	}
	if (net_nic_specs_check(specs, n, &err) < 0) {
		cli_err("--nic: %s", err.msg);
		return -EINVAL;
	}
	if ((r = net_open(ctx, NULL, &err)) < 0) {
		cli_err("%s", err.msg);
		return r;
	}
	if ((r = net_vm_setup(*ctx, vmid, specs, n, nvm, &err)) < 0) {
		cli_err("%s", err.msg);
		net_close(*ctx);
		*ctx = NULL;
		return r;
	}
	/* The guard removes it all should this process be SIGKILLed. */
	if ((r = net_vm_guard(*ctx, nvm, &err)) < 0) {
		cli_err("%s", err.msg);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned q = specs[i].queues ? specs[i].queues : 1;

		nics[i] = (struct vmm_nic){
		    .queues = q,
		    .vhost = specs[i].vhost,
		    .name = nvm->nics[i].tap,
		};
		for (unsigned j = 0; j < q && j < VMM_NIC_MAX_QUEUES; j++)
			nics[i].tap_fds[j] = nvm->nics[i].tap_fds[j];
		memcpy(nics[i].mac, nvm->nics[i].spec.mac, sizeof(nics[i].mac));
	}
	return 0;
}

static void run_net_teardown(struct net_ctx *ctx, struct net_vm *nvm)
{
	struct net_err err = {{0}};

	if (!ctx)
		return;
	if (net_vm_teardown(ctx, nvm, &err) < 0)
		cli_err("%s", err.msg);
	net_close(ctx);
}

static int parse_cpus(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > 1u << 20) {
		cli_err("--cpus: \"%s\" is not a number of vCPUs", s);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

int cmd_run_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"cpus", required_argument, NULL, 'n'},
	    {"mem", required_argument, NULL, 'm'},
	    {"on-reboot", required_argument, NULL, 'r'},
	    {"disk", required_argument, NULL, 'd'},
	    {"rng", no_argument, NULL, 'R'},
	    {"no-rng", no_argument, NULL, 'N'},
	    {"nic", required_argument, NULL, 'e'},
	    {"vmid", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vmm_disk disks[RUN_MAX_DISKS];
	const char *vols[RUN_MAX_DISKS];
	static char socks[RUN_MAX_DISKS][108];
	const char *root;
	unsigned ndisks = 0;
	static struct net_nic_spec specs[RUN_MAX_NICS];
	static struct net_vm nvm;
	struct vmm_nic nics[RUN_MAX_NICS];
	struct net_ctx *net = NULL;
	struct net_err nerr;
	unsigned nnics = 0;
	char vmid[NET_VMID_MAX + 8] = "";
	const char *kernel = NULL, *initrd = NULL;
	struct vmm_config cfg = {
	    .kernel_fd = -1,
	    .initrd_fd = -1,
	    .cmdline = RUN_DEFAULT_CMDLINE,
	    .ncpus = 1,
	    .mem_size = RUN_DEFAULT_MEM,
	    .console_in = STDIN_FILENO,
	    .console_out = STDOUT_FILENO,
	    .disks = disks,
	    .rng = true,
	    .nics = nics,
	};
	struct vmm_limits lim;
	int c, ret, status = CLI_EXIT_USAGE;

	if (pool_cli_take_root(&argc, argv, &root) < 0)
		return CLI_EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			kernel = optarg;
			break;
		case 'i':
			initrd = optarg;
			break;
		case 'c':
			cfg.cmdline = optarg;
			break;
		case 'n':
			if (parse_cpus(optarg, &cfg.ncpus) < 0)
				return CLI_EXIT_USAGE;
			break;
		case 'm':
			ret = cli_parse_size(optarg, &cfg.mem_size);
			if (ret < 0) {
				cli_err("--mem: \"%s\" is not a size (examples: 512M, 2G)", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'r':
			if (!strcmp(optarg, "restart")) {
				cfg.reboot_restart = true;
			} else if (!strcmp(optarg, "exit")) {
				cfg.reboot_restart = false;
			} else {
				cli_err("--on-reboot: \"%s\" is neither exit nor restart", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'd':
			if (ndisks == RUN_MAX_DISKS) {
				cli_err("--disk: at most %d disks", RUN_MAX_DISKS);
				return CLI_EXIT_USAGE;
			}
			if (parse_disk(optarg, &disks[ndisks], &vols[ndisks]) < 0)
				return CLI_EXIT_USAGE;
			ndisks++;
			break;
		case 'R':
			cfg.rng = true;
			break;
		case 'N':
			cfg.rng = false;
			break;
		case 'e':
			if (nnics == RUN_MAX_NICS) {
				cli_err("--nic: at most %d NICs", RUN_MAX_NICS);
				return CLI_EXIT_USAGE;
			}
			if (net_nic_spec_parse(optarg, &specs[nnics], &nerr) < 0) {
				cli_err("--nic %s: %s", optarg, nerr.msg);
				return CLI_EXIT_USAGE;
			}
			nnics++;
			break;
		case 'v':
			if (strlen(optarg) >= sizeof(vmid) || net_vmid_check(optarg) < 0) {
				cli_err("--vmid: \"%s\" is not a VM id (1 to %d of a-z, 0-9)",
				        optarg, NET_VMID_MAX);
				return CLI_EXIT_USAGE;
			}
			snprintf(vmid, sizeof(vmid), "%s", optarg);
			break;
		case 'h':
			run_usage(stdout);
			return CLI_EXIT_OK;
		default:
			run_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_err("run: unexpected argument \"%s\"", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if (!kernel) {
		cli_err("run: --kernel is required");
		run_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (cfg.mem_size < (2ULL << 20) || cfg.mem_size % 4096) {
		cli_err("--mem: %llu bytes is not a usable guest memory size "
		        "(at least 2M, a multiple of 4K)",
		        (unsigned long long)cfg.mem_size);
		return CLI_EXIT_USAGE;
	}
	if ((ret = vmm_query_limits(&lim)) < 0) {
		cli_err("cannot use /dev/kvm: %s", strerror(-ret));
		return CLI_EXIT_ERROR;
	}
	if (cfg.ncpus < 1 || cfg.ncpus > lim.max_vcpus) {
		cli_err(
		    "--cpus: %u vCPUs asked; this host's KVM allows 1 to %u (KVM_CAP_MAX_VCPUS)",
		    cfg.ncpus, lim.max_vcpus);
		return CLI_EXIT_USAGE;
	}

	status = CLI_EXIT_ERROR;
	cfg.kernel_name = kernel;
	cfg.initrd_name = initrd;
	if ((cfg.kernel_fd = open_input("kernel", kernel)) < 0)
		goto out;
	if (initrd && (cfg.initrd_fd = open_input("initrd", initrd)) < 0)
		goto out;
	for (cfg.ndisks = 0; cfg.ndisks < ndisks; cfg.ndisks++)
		if (vols[cfg.ndisks] ? open_disk_vol(root, vols[cfg.ndisks], &disks[cfg.ndisks],
		                                     socks[cfg.ndisks], sizeof(socks[0])) < 0
		    : disks[cfg.ndisks].vhost_user ? false
		                                   : open_disk(&disks[cfg.ndisks]) < 0) {
			cfg.ndisks++; /* close it too */
			goto out;
		}
	if (nnics) {
		if (!vmid[0])
			run_default_vmid(vmid, sizeof(vmid));
		if (run_net_setup(specs, nnics, vmid, &net, &nvm, nics) < 0)
			goto out;
		cfg.nnics = nnics;
	}
	status = vmm_run(&cfg);
out:
	run_net_teardown(net, &nvm);
	for (unsigned i = 0; i < cfg.ndisks; i++)
		if (disks[i].fd >= 0)
			close(disks[i].fd);
	if (cfg.kernel_fd >= 0)
		close(cfg.kernel_fd);
	if (cfg.initrd_fd >= 0)
		close(cfg.initrd_fd);
	return status;
}
