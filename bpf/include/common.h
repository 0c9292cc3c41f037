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

#endif
