// SPDX-License-Identifier: GPL-2.0
/* packet_inspect: parse Ethernet and IPv4, bpf_printk the source address,
 * destination address and protocol of every IPv4 packet, then XDP_PASS.
 *
 * The verifier only lets the program read packet bytes it has proved to be
 * inside the packet: every header is checked with
 *     if ((void *)(hdr + 1) > data_end) -> too short, stop
 * before a field of it is read (ctx->data and ctx->data_end are
 * PTR_TO_PACKET and PTR_TO_PACKET_END; the comparison is what turns the
 * first into a pointer with a known readable range). parse_eth() and
 * parse_ipv4() in common.h do exactly that; parse_ipv4() also checks the
 * ethertype (network order: compare with bpf_htons(ETH_P_IP)) and ihl.
 *
 * Addresses in the packet are __be32 (network byte order). bpf_ntohl()
 * makes them host-order numbers, so %x prints 10.201.0.2 as a0c90002, the
 * bytes in address order; the loader renders them as dotted quads.
 *
 * trace_tag is set by the loader before load so it can pick this program's
 * lines out of the shared trace_pipe. */
#include "common.h"

const volatile __u32 trace_tag = 0;

SEC("xdp")
int packet_inspect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS; /* shorter than an Ethernet header */
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip)
		return XDP_PASS; /* not IPv4, or truncated */

	/* Four arguments: libbpf's bpf_printk uses bpf_trace_vprintk (kernel >= 5.16). */
	bpf_printk("packet_inspect %u: %x %x %u", trace_tag,
		   bpf_ntohl(ip->saddr), bpf_ntohl(ip->daddr), ip->protocol);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
