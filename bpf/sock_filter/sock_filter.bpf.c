// SPDX-License-Identifier: GPL-2.0
/* sock_filter: a BPF_PROG_TYPE_SOCKET_FILTER program, the eBPF successor of
 * the classic BPF that tcpdump compiles its expressions to. It runs on every
 * packet queued to the socket it is attached to (setsockopt SO_ATTACH_BPF)
 * and returns how many bytes of the packet the socket gets: 0 refuses the
 * packet, skb->len keeps all of it. It cannot change or redirect packets,
 * and other sockets (and the stack) still get them: it only decides what
 * this one socket sees.
 *
 * - The socket here is an AF_PACKET SOCK_RAW one: the packet starts at its
 *   Ethernet header, in both directions (PACKET_OUTGOING copies too).
 * - Socket filters have no direct packet access (no data/data_end in their
 *   __sk_buff): headers are copied out with bpf_skb_load_bytes(), which
 *   fails when the packet is too short.
 * - The filter is a map (`allow`: protocol and port) that user space edits
 *   while the socket reads; every refused packet is counted by reason. */
#include "common.h"
#include "sock_filter.h"

#define MAX_RULES 256

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, struct sf_rule);
	__type(value, __u8);         /* 1: allowed */
} allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SF_REASON_COUNT);
	__type(key, __u32);
	__type(value, struct sf_counter);
} sf_stats SEC(".maps");

static __always_inline int count(__u32 reason, __u32 len)
{
	struct sf_counter *c = bpf_map_lookup_elem(&sf_stats, &reason);
	if (c) {
		c->packets += 1;   /* per-CPU: no other CPU writes this copy */
		c->bytes += len;
	}
	return reason == SF_KEPT ? len : 0;
}

static __always_inline int allowed(__u8 proto, __u16 port)
{
	struct sf_rule r = { .proto = proto, .port = port };
	return bpf_map_lookup_elem(&allow, &r) != NULL;
}

SEC("socket")
int sock_filter(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	struct ethhdr eth;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return count(SF_NOT_IPV4, len);
	if (eth.h_proto != bpf_htons(ETH_P_IP))
		return count(SF_NOT_IPV4, len);
	if (bpf_skb_load_bytes(skb, sizeof(eth), &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return count(SF_MALFORMED, len);

	if (allowed(ip.protocol, 0))
		return count(SF_KEPT, len);
	if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
		return count(SF_NO_RULE, len);
	/* A non-first fragment carries no ports: only a port-0 rule keeps it. */
	if (ip.frag_off & bpf_htons(0x1fff))
		return count(SF_NO_RULE, len);

	/* TCP and UDP both start with the source and destination ports. */
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, sizeof(eth) + ip.ihl * 4, ports, sizeof(ports)) < 0)
		return count(SF_MALFORMED, len);
	if (allowed(ip.protocol, bpf_ntohs(ports[0])) || allowed(ip.protocol, bpf_ntohs(ports[1])))
		return count(SF_KEPT, len);
	return count(SF_NO_RULE, len);
}

char LICENSE[] SEC("license") = "GPL";
