/*
 * nicwire.c - a test stand-in for a VMM: sets up a VM's NICs with libnet
 * exactly as `zonevm run --nic` does (net_vm_setup + net_vm_guard), then
 * carries frames between each NIC's tap and a veth, so a network namespace
 * on the veth's peer plays the guest.  Tests of the host-side rules
 * (tests/integration/netsec.sh) need no VM this way.
 *
 *   nicwire wire VMID VETH:SPEC [VETH:SPEC...]
 *       set up, print "ready TAP..." and carry frames until SIGINT/SIGTERM,
 *       then net_vm_teardown (SIGKILL leaves the cleanup to the guard)
 *   nicwire send IFACE HEX
 *       send one raw Ethernet frame (hex, spaces ignored; an IPv4 header,
 *       also one after an 802.1Q tag, gets its checksum) from IFACE, to
 *       forge what the kernel stack would not send (ARP with a foreign
 *       sender, odd ethertypes, VLAN tags, DHCP offers)
 *
 * The veth side uses PACKET_VNET_HDR and the tap gets the offloads a
 * virtio-net guest would accept, so GSO frames travel whole both ways
 * through the vnet header, as they do with a virtio-net guest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/net.h"

#define FRAME_MAX 65600
#define VHDR      10 /* struct virtio_net_hdr; the tap adds num_buffers (2) */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int packet_socket(const char *ifname, int vnet)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};

	if (fd < 0)
		return -1;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex ||
	    (vnet && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &vnet, sizeof(vnet)) < 0) ||
	    (vnet && setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &vnet, sizeof(vnet)) < 0) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmd_send(const char *ifname, const char *hex)
{
	unsigned char f[2048];
	size_t n = 0;
	int fd = packet_socket(ifname, 0);

	if (fd < 0) {
		fprintf(stderr, "nicwire: %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	for (const char *p = hex; *p && n < sizeof(f);) {
		unsigned v;
		if (*p == ' ' || *p == ':') {
			p++;
			continue;
		}
		if (sscanf(p, "%2x", &v) != 1) {
			fprintf(stderr, "nicwire: bad hex at \"%s\"\n", p);
			return 2;
		}
		f[n++] = (unsigned char)v;
		p += 2;
	}
	if (n < 60)
		n = 60; /* pad to the Ethernet minimum */
	/* the IPv4 header, after the EtherType or one 802.1Q tag */
	size_t ip = f[12] == 0x81 && f[13] == 0x00 ? 18 : 14;
	if (n >= ip + 20 && f[ip - 2] == 0x08 && f[ip - 1] == 0x00 && (f[ip] & 0x0f) == 5) {
		/* IPv4: fill in the header checksum, so only our rules judge it */
		uint32_t sum = 0;
		f[ip + 10] = f[ip + 11] = 0;
		for (size_t i = ip; i < ip + 20; i += 2)
			sum += (uint32_t)(f[i] << 8 | f[i + 1]);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		f[ip + 10] = (unsigned char)(~sum >> 8);
		f[ip + 11] = (unsigned char)~sum;
	}
	if (send(fd, f, n, 0) < 0) {
		fprintf(stderr, "nicwire: send on %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * The VLAN tag the receive path took off a frame (PACKET_AUXDATA), or 0:
 * a guest's own 802.1Q tag must reach the tap as the guest sent it.
 */
static uint32_t vlan_tag(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		struct tpacket_auxdata a;
		if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
			continue;
		memcpy(&a, CMSG_DATA(c), sizeof(a));
		if (!(a.tp_status & TP_STATUS_VLAN_VALID))
			return 0;
		uint16_t tpid = a.tp_status & TP_STATUS_VLAN_TPID_VALID ? a.tp_vlan_tpid : 0x8100;
		return (uint32_t)tpid << 16 | a.tp_vlan_tci;
	}
	return 0;
}

/* veth -> tap: the packet socket's 10-byte header, 2 bytes num_buffers, frame */
static void veth_to_tap(int pfd, int tfd, unsigned char *buf)
{
	struct iovec iov[2] = {{buf, VHDR}, {buf + VHDR + 2, FRAME_MAX}};
	struct sockaddr_ll from;
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	} ctl;
	struct msghdr m = {.msg_name = &from,
	                   .msg_namelen = sizeof(from),
	                   .msg_iov = iov,
	                   .msg_iovlen = 2,
	                   .msg_control = &ctl,
	                   .msg_controllen = sizeof(ctl)};
	ssize_t n = recvmsg(pfd, &m, MSG_DONTWAIT);
	uint32_t tag;

	if (n < VHDR + 2 * ETH_ALEN || from.sll_pkttype == PACKET_OUTGOING)
		return;
	tag = vlan_tag(&m);
	if (tag && n + 4 <= FRAME_MAX + VHDR) {
		unsigned char *f = buf + VHDR + 2;
		struct virtio_net_hdr *h = (struct virtio_net_hdr *)buf;
		memmove(f + 2 * ETH_ALEN + 4, f + 2 * ETH_ALEN, (size_t)n - VHDR - 2 * ETH_ALEN);
		f[12] = (unsigned char)(tag >> 24);
		f[13] = (unsigned char)(tag >> 16);
		f[14] = (unsigned char)(tag >> 8);
		f[15] = (unsigned char)tag;
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			h->csum_start = (uint16_t)(h->csum_start + 4);
		if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE)
			h->hdr_len = (uint16_t)(h->hdr_len + 4);
		n += 4;
	}
	buf[VHDR] = buf[VHDR + 1] = 0;
	if (write(tfd, buf, (size_t)n + 2) < 0 && errno != EAGAIN)
		perror("nicwire: tap write");
}

/* tap -> veth */
static void tap_to_veth(int tfd, int pfd, unsigned char *buf)
{
	ssize_t n = read(tfd, buf, FRAME_MAX + VHDR + 2);
	struct iovec iov[2] = {{buf, VHDR}, {buf + VHDR + 2, 0}};

	if (n <= VHDR + 2)
		return;
	iov[1].iov_len = (size_t)n - VHDR - 2;
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	if (sendmsg(pfd, &m, 0) < 0 && errno != EAGAIN)
		perror("nicwire: veth send");
}

static int cmd_wire(const char *vmid, int n, char **args)
{
	struct net_nic_spec specs[NET_MAX_NICS];
	char veth[NET_MAX_NICS][IF_NAMESIZE];
	struct pollfd pfd[2 * NET_MAX_NICS];
	static struct net_vm vm;
	static unsigned char buf[FRAME_MAX + 64];
	struct net_ctx *ctx;
	struct net_err err;

	if (n > NET_MAX_NICS)
		n = NET_MAX_NICS;
	for (int i = 0; i < n; i++) {
		char *colon = strchr(args[i], ':');
		if (!colon || colon - args[i] >= IF_NAMESIZE) {
			fprintf(stderr, "nicwire: want VETH:SPEC, not \"%s\"\n", args[i]);
			return 2;
		}
		snprintf(veth[i], sizeof(veth[i]), "%.*s", (int)(colon - args[i]), args[i]);
		if (net_nic_spec_parse(colon + 1, &specs[i], &err)) {
			fprintf(stderr, "zonevm: %s\n", err.msg);
			return 2;
		}
		net_nic_spec_finish(&specs[i], vmid, (unsigned)i);
	}
	if (net_open(&ctx, NULL, &err) || net_vm_setup(ctx, vmid, specs, (unsigned)n, &vm, &err) ||
	    net_vm_guard(ctx, &vm, &err)) {
		fprintf(stderr, "zonevm: %s\n", err.msg);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		pfd[2 * i].fd = packet_socket(veth[i], 1);
		pfd[2 * i + 1].fd = vm.nics[i].tap_fd;
		/* as a virtio-net guest with GUEST_CSUM/TSO would: whole GSO frames */
		if (!getenv("NICWIRE_NO_OFFLOAD") &&
		    ioctl(vm.nics[i].tap_fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) <
		        0)
			perror("nicwire: TUNSETOFFLOAD");
		pfd[2 * i].events = pfd[2 * i + 1].events = POLLIN;
		if (pfd[2 * i].fd < 0) {
			fprintf(stderr, "nicwire: %s: %s\n", veth[i], strerror(errno));
			net_vm_teardown(ctx, &vm, &err);
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready");
	for (int i = 0; i < n; i++) {
		char mac[18];
		net_mac_format(vm.nics[i].spec.mac, mac);
		printf(" %s=%s", vm.nics[i].tap, mac);
	}
	printf("\n");
	fflush(stdout);
	while (!stop) {
		if (poll(pfd, (nfds_t)(2 * n), 500) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (pfd[2 * i].revents & POLLIN)
				veth_to_tap(pfd[2 * i].fd, pfd[2 * i + 1].fd, buf);
			if (pfd[2 * i + 1].revents & POLLIN)
				tap_to_veth(pfd[2 * i + 1].fd, pfd[2 * i].fd, buf);
		}
	}
	int r = net_vm_teardown(ctx, &vm, &err);
	if (r)
		fprintf(stderr, "zonevm: %s\n", err.msg);
	net_close(ctx);
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "wire"))
		return cmd_wire(argv[2], argc - 3, argv + 3);
	if (argc == 4 && !strcmp(argv[1], "send"))
		return cmd_send(argv[2], argv[3]);
	fprintf(stderr, "usage: nicwire wire VMID VETH:SPEC...\n"
	                "       nicwire send IFACE HEX\n");
	return 2;
}
