// SPDX-License-Identifier: GPL-2.0
/* sourceip: where every IPv4 and IPv6 packet comes from.
 *
 * Parse Ethernet, then IPv4 (parse_ipv4) or IPv6 (parse_ipv6, whose
 * upper-layer protocol ipv6_l4proto finds behind extension headers), and
 * copy both addresses to user space as raw bytes through a ring buffer.
 * The kernel does no formatting: an IPv6 address is 16 bytes in network
 * order, and turning them into text (RFC 5952) is user space's job. Any
 * other EtherType (ARP, ...) is passed untouched and not reported. When the
 * ring is full the lost event is counted per CPU. Every packet is passed. */
#include "common.h"
#include "sourceip.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Per-CPU: each CPU adds to its own slot, no atomics needed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sourceip_counters);
} counters SEC(".maps");

/* Emits struct sourceip_event into the BTF for test/layouts.test.ts. */
struct sourceip_event *unused_sourceip_event __attribute__((unused));

SEC("xdp")
int sourceip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	struct ipv6hdr *ip6 = ip ? NULL : parse_ipv6(eth, data_end);
	if (!ip && !ip6)
		return XDP_PASS;
	struct sourceip_counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return XDP_PASS;
	if (ip)
		cnt->ipv4++;
	else
		cnt->ipv6++;

	struct sourceip_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		cnt->lost++;
		return XDP_PASS;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->pad1 = 0;
	if (ip) {
		/* The 4 address bytes as they are on the wire, then zeros. */
		__builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
		__builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
		__builtin_memcpy(ev->saddr, &ip->saddr, 4);
		__builtin_memcpy(ev->daddr, &ip->daddr, 4);
		ev->pkt_len = bpf_ntohs(ip->tot_len);
		ev->family = 4;
		ev->proto = ip->protocol;
	} else {
		/* 16 bytes, network order: no per-group byte swapping here. */
		__builtin_memcpy(ev->saddr, &ip6->saddr, 16);
		__builtin_memcpy(ev->daddr, &ip6->daddr, 16);
		ev->pkt_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		ev->family = 6;
		ev->proto = ipv6_l4proto(ip6, data_end);
	}
	bpf_ringbuf_submit(ev, 0);
	cnt->events++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
