/* Shared by every lesson's kernel side: includes and packet parsing helpers.
 * Each helper bounds-checks with the verifier's pattern,
 *   if ((void *)(ptr + 1) > data_end) ...
 * and returns NULL when the packet is too short, so callers pass the packet. */
#ifndef LIBBPF_TS_COMMON_H
#define LIBBPF_TS_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Ethernet header, or NULL if the frame is shorter than one. */
static __always_inline struct ethhdr *parse_eth(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* IPv4 header after an Ethernet header, or NULL if the frame is not IPv4,
 * is truncated, or has an ihl below 5 or past the end of the packet. */
static __always_inline struct iphdr *parse_ipv4(struct ethhdr *eth, void *data_end)
{
	struct iphdr *ip = (void *)(eth + 1);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	if ((void *)(ip + 1) > data_end)
		return NULL;
	if (ip->ihl < 5 || (void *)ip + ip->ihl * 4 > data_end)
		return NULL;
	return ip;
}

/* Start of the L4 header (ip->ihl * 4 bytes after the IP header). */
static __always_inline void *ipv4_l4(struct iphdr *ip)
{
	return (void *)ip + ip->ihl * 4;
}

/* True for any fragment: more-fragments set or a non-zero offset. */
static __always_inline int ipv4_is_fragment(struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(0x3fff)) != 0;
}

/* IPv6 header after an Ethernet header, or NULL if the frame is not IPv6
 * (EtherType 0x86dd), is shorter than the 40-byte fixed header, or carries
 * a version other than 6. */
static __always_inline struct ipv6hdr *parse_ipv6(struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return NULL;
	if ((void *)(ip6 + 1) > data_end)
		return NULL;
	if (ip6->version != 6)
		return NULL;
	return ip6;
}

/* How many IPv6 extension headers ipv6_l4proto() walks at most. */
#define IPV6_MAX_EXT_HDRS 6

/* The upper-layer protocol of an IPv6 packet: follows nexthdr through up to
 * IPV6_MAX_EXT_HDRS extension headers (hop-by-hop 0, routing 43, fragment
 * 44, destination options 60: (hdrlen + 1) * 8 bytes, fragment always 8;
 * authentication 51: (hdrlen + 2) * 4 bytes) and returns the first next
 * header that is not one of them (6 TCP, 17 UDP, 58 ICMPv6, 59 none...).
 * When an extension header is cut off by the end of the packet, or there
 * are more of them than the limit, it returns that extension header's
 * number, so the caller still sees what it stopped at. */
static __always_inline __u8 ipv6_l4proto(struct ipv6hdr *ip6, void *data_end)
{
	__u8 next = ip6->nexthdr;
	void *p = (void *)(ip6 + 1);
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HDRS; i++) {
		if (next != 0 && next != 43 && next != 44 && next != 60 && next != 51)
			return next;
		__u8 *h = p;
		if ((void *)(h + 2) > data_end)
			return next;
		__u32 len;
		if (next == 44)
			len = 8;
		else if (next == 51)
			len = ((__u32)h[1] + 2) * 4;
		else
			len = ((__u32)h[1] + 1) * 8;
		if (p + len > data_end)
			return next;
		next = h[0];
		p += len;
	}
	return next;
}

#endif
