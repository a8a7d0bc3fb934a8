/*
 * cmd_disk.c - `zonevm disk serve`: a raw image file or block device served
 * to vhost-user-blk frontends (zonevm run --disk vhost-user=SOCKET, QEMU's
 * vhost-user-blk-pci) by src/vhost's backend, with the same virtio-blk model
 * and io_uring file backend the VMM uses for --disk PATH.
 *
 * It owns the command line, opening the file and waiting for SIGINT or
 * SIGTERM; frontends come and go (one at a time) until then.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vhost/vhost.h"

#define DISK_SERVE_DEPTH 256

static void disk_usage(FILE *f)
{
	fprintf(f, "usage: zonevm disk serve --vhost-user SOCKET [--ro] [--serial ID]\n"
	           "                         [--queues N] [--cache none|writeback] [--once] PATH\n"
	           "\n"
	           "Serve PATH (a raw image file or a block device whose size is a multiple\n"
	           "of 512) over vhost-user-blk on the UNIX socket SOCKET (created mode 0600)\n"
	           "until SIGINT or SIGTERM; --once: until the first frontend leaves.\n"
	           "  --ro          read-only: VIRTIO_BLK_F_RO, writes fail\n"
	           "  --serial ID   the disk's id (up to 20 bytes)\n"
	           "  --queues N    request queues offered (1 to 64, default 1)\n"
	           "  --cache MODE  none (default: O_DIRECT, bypasses the host's page cache)\n"
	           "                or writeback (through the page cache)\n");
}

static int disk_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"vhost-user", required_argument, NULL, 's'},
	    {"ro", no_argument, NULL, 'r'},
	    {"serial", required_argument, NULL, 'i'},
	    {"queues", required_argument, NULL, 'q'},
	    {"once", no_argument, NULL, 'o'},
	    {"cache", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vhost_blk_opts o = {.listen_fd = -1, .blk = {.num_queues = 1}};
	struct vhost_blk_server *srv;
	struct vblk_backend *be;
	struct timespec tick = {.tv_nsec = 200 * 1000 * 1000};
	sigset_t sigs;
	char err[512], *end;
	unsigned long n;
	bool writeback = false;
	int c, fd, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'r':
			o.blk.read_only = true;
			break;
		case 'i':
			if (strlen(optarg) > VBLK_ID_BYTES) {
				cli_err("--serial: \"%s\" is longer than %d bytes", optarg,
				        VBLK_ID_BYTES);
				return CLI_EXIT_USAGE;
			}
			snprintf(o.blk.serial, sizeof(o.blk.serial), "%s", optarg);
			break;
		case 'q':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || n < 1 || n > 64) {
				cli_err("--queues: \"%s\" is not 1 to 64", optarg);
				return CLI_EXIT_USAGE;
			}
			o.blk.num_queues = (uint16_t)n;
			break;
		case 'o':
			o.once = true;
			break;
		case 'c':
			if (strcmp(optarg, "none") && strcmp(optarg, "writeback")) {
				cli_err("--cache: \"%s\" is not none or writeback", optarg);
				return CLI_EXIT_USAGE;
			}
			writeback = !strcmp(optarg, "writeback");
			break;
		case 'h':
			disk_usage(stdout);
			return CLI_EXIT_OK;
		default:
			disk_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (!o.socket || optind != argc - 1) {
		cli_err("disk serve: want --vhost-user SOCKET and one PATH");
		disk_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	o.blk.name = argv[optind];
	fd = cli_open_disk(o.blk.name, o.blk.read_only, &writeback);
	if (fd < 0) {
		cli_err("cannot open disk \"%s\": %s", o.blk.name, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	if ((r = vblk_file_open(fd, o.blk.name, o.blk.num_queues, DISK_SERVE_DEPTH, &be)) < 0) {
		close(fd);
		return CLI_EXIT_ERROR; /* the backend said why */
	}
	o.be = be;
	/* SIGINT/SIGTERM are taken with sigtimedwait below (blocked before the
	 * server's thread starts, so it inherits nothing to handle). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = vhost_blk_server_start(&o, &srv, err, sizeof(err))) < 0) {
		cli_err("%s", err);
		return CLI_EXIT_ERROR;
	}
	fprintf(stderr, "zonevm: disk \"%s\" served over vhost-user-blk on %s\n", o.blk.name,
	        o.socket);
	while (sigtimedwait(&sigs, NULL, &tick) < 0 && vhost_blk_server_wait(srv, 0) < 0)
		;
	vhost_blk_server_stop(srv);
	return CLI_EXIT_OK;
}

int cmd_disk_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		disk_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "serve"))
		return disk_serve(argc - 1, argv + 1);
	cli_err("disk: unknown subcommand \"%s\" (want serve)", argv[1]);
	return CLI_EXIT_USAGE;
}
