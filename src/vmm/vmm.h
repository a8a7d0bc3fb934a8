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

/* A virtio-blk disk: the caller opened it (read-write unless read_only). */
#define VMM_DISK_SERIAL_MAX 20 /* bytes of a virtio-blk id */

struct vmm_disk {
	int fd;           /* stays the caller's: the VMM works on a dup */
	const char *name; /* the path, for messages */
	bool read_only;
	char serial[VMM_DISK_SERIAL_MAX + 1];
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
	bool rng; /* a virtio-rng device */
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
