// SPDX-License-Identifier: GPL-2.0
/* packet_sniff: XDP capture of every IPv4 packet's addresses, ports,
 * protocol, size, TTL, time and flags (fragment, low TTL, TCP SYN/FIN/RST)
 * into a ring buffer, with per-CPU counters of what was seen.
 *
 * Parse Ethernet and IPv4 (ihl * 4 bytes of header, options included)
 * with the bounds checks of common.h; only then count the packet. Ports and
 * TCP flags come from the first fragment only: a later fragment carries
 * payload where the L4 header would be. Every packet is passed. */
#include "common.h"
#include "packet_sniff.h"

/* 16 MiB (the seed's size; the loader's --ring-size changes it). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} packet_ringbuf SEC(".maps");

/* One struct per CPU: each CPU adds to its own copy, no atomics needed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sniff_stats);
} stats SEC(".maps");

/* A ring buffer map carries no value type: this puts struct packet_data
 * into the BTF, where test/layouts.test.ts checks the TypeScript mirror. */
struct packet_data *unused_packet_data __attribute__((unused));

SEC("xdp")
int packet_sniff(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	__u64 now = bpf_ktime_get_ns();

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip)
		return XDP_PASS;
	/* Known IPv4 from here on: count it (the seed counted every frame,
	 * ARP and IPv6 included, in its total). */
	struct sniff_stats *st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return XDP_PASS;
	st->total++;

	__u16 flags = 0;
	if (ipv4_is_fragment(ip))
		flags |= SNIFF_FRAG;
	if (ip->ttl < SNIFF_LOW_TTL_BELOW)
		flags |= SNIFF_LOW_TTL;

	/* Only the first fragment (offset 0) has the L4 header. */
	int first = !(ip->frag_off & bpf_htons(0x1fff));
	__be16 sport = 0, dport = 0;
	if (ip->protocol == IPPROTO_TCP) {
		st->tcp++;
		struct tcphdr *tcp = ipv4_l4(ip);
		if (first && (void *)(tcp + 1) <= data_end) {
			sport = tcp->source;
			dport = tcp->dest;
			if (tcp->syn)
				flags |= SNIFF_SYN;
			if (tcp->fin)
				flags |= SNIFF_FIN;
			if (tcp->rst)
				flags |= SNIFF_RST;
		}
	} else if (ip->protocol == IPPROTO_UDP) {
		st->udp++;
		struct udphdr *udp = ipv4_l4(ip);
		if (first && (void *)(udp + 1) <= data_end) {
			sport = udp->source;
			dport = udp->dest;
		}
	} else {
		st->other++;
	}

	struct packet_data *ev = bpf_ringbuf_reserve(&packet_ringbuf, sizeof(*ev), 0);
	if (!ev) {
		st->ring_full++; /* never silent: the loader reports it */
		return XDP_PASS;
	}
	ev->timestamp = now;
	ev->src_ip = ip->saddr;
	ev->dst_ip = ip->daddr;
	ev->src_port = sport;
	ev->dst_port = dport;
	ev->packet_size = (__u32)(data_end - data);
	ev->protocol = ip->protocol;
	ev->ttl = ip->ttl;
	ev->flags = flags;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
