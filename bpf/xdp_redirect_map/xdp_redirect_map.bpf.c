// SPDX-License-Identifier: GPL-2.0
/* xdp_redirect_map: an IPv4 router at XDP. A frame for an address in
 * `routes` gets the MACs of its next hop, its TTL decremented (the header
 * checksum updated incrementally), and leaves by another interface through
 * bpf_redirect_map() on a DEVMAP, never entering the kernel's stack:
 * no sk_buff (in native mode), no routing lookup, no netfilter.
 *
 * - tx_ports (BPF_MAP_TYPE_DEVMAP) maps a port number to an interface:
 *   user space fills it with ifindexes. bpf_redirect_map() only queues the
 *   frame there; the driver sends queued frames in a bulk at the end of the
 *   NAPI poll (xdp_do_flush), which is why a DEVMAP is faster than
 *   bpf_redirect(ifindex). The low bits of its flags are the action when
 *   the key is missing.
 * - routes (HASH) maps a destination address to a port and the two MACs,
 *   filled from user space (the loader reads the neighbour table).
 * - Everything else (ARP, packets for the router itself, TTL 1 that needs an
 *   ICMP time-exceeded, unknown destinations) is XDP_PASS: the stack takes it.
 * - port_stats (PERCPU_HASH, keyed by ifindex) counts per interface and per
 *   CPU; user space creates the entries (zeroed) and sums the CPUs. */
#include "common.h"
#include "xdp_redirect_map.h"

#define MAX_PORTS 64
#define MAX_ROUTES 4096

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);          /* port */
	__type(value, __u32);        /* ifindex */
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ROUTES);
	__type(key, __be32);         /* destination address, network order */
	__type(value, struct fwd_route);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);          /* ifindex */
	__type(value, struct if_counters);
} port_stats SEC(".maps");

/* TTL - 1 with the header checksum fixed as RFC 1624 does it: the TTL is
 * the high byte of a 16-bit word, so the sum drops by 0x0100 and the
 * (one's complement) checksum rises by as much, with the carry folded. */
static __always_inline void decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

static __always_inline int pass(struct if_counters *in)
{
	if (in)
		in->passed++;
	return XDP_PASS;
}

SEC("xdp")
int xdp_redirect_map(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	__u32 ingress = ctx->ingress_ifindex;

	struct if_counters *in = bpf_map_lookup_elem(&port_stats, &ingress);
	if (in) {
		in->rx_packets++;  /* per-CPU: no other CPU writes this copy */
		in->rx_bytes += len;
	}
	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return pass(in);
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip || ip->ttl <= 1)
		return pass(in);
	struct fwd_route *r = bpf_map_lookup_elem(&routes, &ip->daddr);
	if (!r)
		return pass(in);
	/* The port must be in the DEVMAP before the frame is rewritten: a frame
	 * given to the stack with the next hop's MAC would be dropped there. */
	__u32 *egress = bpf_map_lookup_elem(&tx_ports, &r->port);
	if (!egress || *egress == ingress)
		return pass(in);
	__u32 out_ifindex = *egress;

	decrease_ttl(ip);
	__builtin_memcpy(eth->h_dest, r->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, r->smac, ETH_ALEN);

	long action = bpf_redirect_map(&tx_ports, r->port, XDP_PASS);
	if (action == XDP_REDIRECT) {
		if (in)
			in->redirected++;
		struct if_counters *out = bpf_map_lookup_elem(&port_stats, &out_ifindex);
		if (out) {
			out->tx_packets++;
			out->tx_bytes += len;
		}
	}
	return action;
}

char LICENSE[] SEC("license") = "GPL";
