/* A sender for the wire figures (xdp_firewall, xdp_sock): as many 60-byte UDP frames
 * (64 on the wire with the FCS) as one CPU can put on an interface for a
 * fixed time, built once and sent through an AF_PACKET socket with
 * PACKET_QDISC_BYPASS and sendmmsg (64 per call): no socket, routing or
 * qdisc work per packet, so what the receiver does weighs as much as it can.
 * Usage: udp_flood <ifname> <dst_mac> <src_ip> <dst_ip> <dst_port> <seconds>
 *   ->  {"sent": n, "errors": e, "seconds": s}
 * Run it inside the lab's peer namespace; send errors (ENOBUFS...) are counted, not fatal. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t csum(const uint8_t *p, int len)
{
	uint32_t s = 0;
	for (int i = 0; i < len; i += 2) s += (p[i] << 8) | p[i + 1];
	while (s >> 16) s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

int main(int argc, char **argv)
{
	if (argc != 7) { fprintf(stderr, "usage: udp_flood <ifname> <dst_mac> <src_ip> <dst_ip> <dst_port> <seconds>\n"); return 2; }
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) { perror("socket"); return 1; }
	int one = 1;
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
	unsigned int ifindex = if_nametoindex(argv[1]);
	if (!ifindex) { perror("if_nametoindex"); return 1; }
	uint8_t f[60] = { 0 };
	unsigned int m[6];
	if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) { fprintf(stderr, "bad MAC\n"); return 2; }
	for (int i = 0; i < 6; i++) f[i] = m[i];
	memcpy(f + 6, ifr.ifr_hwaddr.sa_data, 6);
	f[12] = 0x08; f[13] = 0x00;
	uint8_t *ip = f + 14;
	ip[0] = 0x45; ip[3] = 46; /* total length: 20 + 8 + 18 */
	ip[6] = 0x40; ip[8] = 64; ip[9] = 17;
	if (inet_pton(AF_INET, argv[3], ip + 12) != 1 || inet_pton(AF_INET, argv[4], ip + 16) != 1) { fprintf(stderr, "bad address\n"); return 2; }
	uint16_t c = csum(ip, 20);
	ip[10] = c >> 8; ip[11] = c & 0xff;
	uint8_t *udp = ip + 20;
	udp[0] = 0x9c; udp[1] = 0x40; /* source port 40000 */
	int port = atoi(argv[5]);
	udp[2] = port >> 8; udp[3] = port & 0xff;
	udp[5] = 26; /* length 8 + 18 */
	memset(udp + 8, 'x', 18);
	/* A real UDP checksum (pseudo-header + datagram), so that a receiver that echoes recomputes one. */
	uint8_t ph[12 + 26];
	memcpy(ph, ip + 12, 8);
	ph[8] = 0; ph[9] = 17; ph[10] = 0; ph[11] = 26;
	memcpy(ph + 12, udp, 26);
	c = csum(ph, sizeof(ph));
	if (c == 0) c = 0xffff;
	udp[6] = c >> 8; udp[7] = c & 0xff;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };
	memcpy(to.sll_addr, f, 6);
	struct iovec iov = { .iov_base = f, .iov_len = sizeof(f) };
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	double seconds = atof(argv[6]);
	long sent = 0, errors = 0;
	double t0 = now_s(), t = t0;
	while (t - t0 < seconds) {
		for (int k = 0; k < 16; k++) {
			int r = sendmmsg(fd, msgs, BATCH, 0);
			if (r > 0) sent += r;
			else errors++;
		}
		t = now_s();
	}
	printf("{\"sent\": %ld, \"errors\": %ld, \"seconds\": %.6f}\n", sent, errors, t - t0);
	return 0;
}
