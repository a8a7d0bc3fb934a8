/*
 * vmm.h - the zonevm VMM (src/vmm): one KVM virtual machine per process.
 *
 * The caller (the `run` subcommand) parses the command line and opens every
 * file the guest needs; vmm_run() takes file descriptors, never paths, builds
 * the machine (memory, ACPI, boot state, devices, vCPU threads), runs it on an
 * epoll event loop and returns how it ended.  It never calls exit().
 */
#ifndef ZONEVM_VMM_H
#define ZONEVM_VMM_H

#include <stdbool.h>
#include <stdint.h>

/* How a VM ended: the exit status of `zonevm run`. */
enum vmm_exit {
	VMM_EXIT_POWEROFF = 0, /* the guest powered off */
	VMM_EXIT_ERROR = 1,    /* bad input, host or KVM error; a message says which */
	VMM_EXIT_REBOOT = 3,   /* the guest rebooted (without --on-reboot restart) */
	VMM_EXIT_CRASH = 4,    /* the guest crashed the machine (triple fault) */
	VMM_EXIT_SIGNAL = 5,   /* stopped by SIGINT/SIGTERM or the console escape */
};

/*
 * A virtio-blk disk: the caller opened it (read-write unless read_only), or,
 * with vhost_user set, a vhost-user-blk backend listening on that socket
 * serves it (fd is then -1; size, read-only and id are the backend's).
 */
#define VMM_DISK_SERIAL_MAX 20 /* bytes of a virtio-blk id */

struct vmm_disk {
	int fd;           /* stays the caller's: the VMM works on a dup */
	const char *name; /* the path, for messages */
	bool read_only;
	char serial[VMM_DISK_SERIAL_MAX + 1];
	bool writeback;         /* cache=writeback: fd is not O_DIRECT (page cache) */
	const char *vhost_user; /* socket path, or NULL */
};

/*
 * A virtio-net NIC: the caller opened and configured its tap (IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR; IFF_MULTI_QUEUE when queues > 1), one fd per
 * queue pair.  The VMM sets the vnet header size (12) and the offloads the
 * guest accepts; it needs no network privilege.
 */
#define VMM_NIC_MAX_QUEUES 8

struct vmm_nic {
	int tap_fds[VMM_NIC_MAX_QUEUES]; /* stay the caller's: the VMM works on dups */
	unsigned queues;                 /* queue pairs, 1..VMM_NIC_MAX_QUEUES; > 1 offers MQ */
	uint8_t mac[6];                  /* VIRTIO_NET_F_MAC */
	bool vhost;                      /* data path in the kernel (/dev/vhost-net) */
	const char *name;                /* for messages, e.g. the tap's name */
};

struct vmm_config {
	int kernel_fd;           /* bzImage, opened read-only */
	const char *kernel_name; /* for messages */
	int initrd_fd;           /* -1: none */
	const char *initrd_name;
	const char *cmdline; /* kernel command line ("" if none) */
	unsigned ncpus;
	uint64_t mem_size;            /* bytes */
	bool reboot_restart;          /* --on-reboot restart */
	int console_in;               /* -1: no console input */
	int console_out;              /* guest serial output */
	const struct vmm_disk *disks; /* virtio-blk, in PCI slot order */
	unsigned ndisks;
	bool rng;                   /* a virtio-rng device */
	const struct vmm_nic *nics; /* virtio-net, after the disks, in order */
	unsigned nnics;
};

/* Limits the host's KVM puts on a VM: from KVM_CHECK_EXTENSION. */
struct vmm_limits {
	unsigned max_vcpus;
};

/* Open /dev/kvm, check its API version and read its limits. Returns 0 or -errno. */
int vmm_query_limits(struct vmm_limits *out);

/* Validate cfg, build and run the VM; returns an enum vmm_exit value. */
int vmm_run(const struct vmm_config *cfg);

#endif
