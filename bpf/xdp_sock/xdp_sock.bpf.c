// SPDX-License-Identifier: GPL-2.0
/* xdp_sock: steer UDP datagrams to one port into an AF_XDP socket.
 *
 * - A BPF_MAP_TYPE_XSKMAP holds AF_XDP socket fds, one slot per RX queue;
 *   user space puts its socket in the slot of the queue it is bound to.
 * - bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS) hands the packet
 *   to the socket of the queue it arrived on: the kernel copies it (copy
 *   mode) or lends the frame (zero-copy) into the socket's UMEM and puts a
 *   descriptor on its RX ring. The last argument's low bits are the action
 *   when the slot is empty: here the packet goes on to the stack.
 * - A socket only receives from the queue it is bound to, so the key must be
 *   the packet's queue, never a constant.
 * - Everything else (other ports, ICMP, IPv6, fragments) passes. */
#include "common.h"
#include "xdp_sock.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSK_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xsk_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSK_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		*c += 1; /* per-CPU: no atomic needed */
}

SEC("xdp")
int xdp_sock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct xsk_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->port)
		return XDP_PASS;
	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip || ip->protocol != IPPROTO_UDP || ipv4_is_fragment(ip))
		return XDP_PASS;
	struct udphdr *udp = ipv4_l4(ip);
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (udp->dest != bpf_htons(cfg->port))
		return XDP_PASS;

	__u32 queue = ctx->rx_queue_index;
	count(XSK_MATCHED);
	if (!bpf_map_lookup_elem(&xsks, &queue)) {
		count(XSK_NO_SOCKET);
		return XDP_PASS;
	}
	return bpf_redirect_map(&xsks, queue, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
