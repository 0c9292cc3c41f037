// SPDX-License-Identifier: GPL-2.0
/* mytcpdump: a tcpdump-like capture that streams one struct packet_event
 * per IPv4 packet to user space through a BPF_MAP_TYPE_RINGBUF.
 *
 * Parse Ethernet, IPv4 (ihl * 4 bytes of header), then TCP or UDP ports.
 * Filter in the kernel, from the config map the loader fills, so packets
 * that don't match cost no ring space. Then reserve a slot, fill it, submit.
 * When the ring is full, count the lost event in a per-CPU counter the
 * loader reports: lost events are never silent. Every packet is passed. */
#include "common.h"
#include "mytcpdump.h"

/* Many producers (every CPU reserves under the ring's lock), one consumer
 * (the loader), zero copy through mmap. The loader sizes it with bpf_map__set_max_entries. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_config);
} config SEC(".maps");

/* Per-CPU: each CPU adds to its own slot, no atomics needed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mytcpdump_counters);
} counters SEC(".maps");

/* A ring buffer map carries no value type, so this makes clang emit struct
 * packet_event into the object's BTF, where test/layouts.test.ts checks the
 * TypeScript mirror against it. */
struct packet_event *unused_packet_event __attribute__((unused));

SEC("xdp")
int mytcpdump(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip)
		return XDP_PASS;
	struct mytcpdump_counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return XDP_PASS;
	cnt->packets++;

	/* Ports: only TCP and UDP have them, and only the first fragment
	 * carries the L4 header. A truncated header leaves them 0. */
	__be16 sport = 0, dport = 0;
	int has_ports = 0;
	if (!(ip->frag_off & bpf_htons(0x1fff))) {
		if (ip->protocol == IPPROTO_TCP) {
			struct tcphdr *tcp = ipv4_l4(ip);
			if ((void *)(tcp + 1) <= data_end) {
				sport = tcp->source;
				dport = tcp->dest;
				has_ports = 1;
			}
		} else if (ip->protocol == IPPROTO_UDP) {
			struct udphdr *udp = ipv4_l4(ip);
			if ((void *)(udp + 1) <= data_end) {
				sport = udp->source;
				dport = udp->dest;
				has_ports = 1;
			}
		}
	}

	struct filter_config *f = bpf_map_lookup_elem(&config, &zero);
	if (f && f->flags) {
		if ((f->flags & FILTER_PROTO) && ip->protocol != f->proto)
			goto filtered;
		if ((f->flags & FILTER_HOST) && ip->saddr != f->host && ip->daddr != f->host)
			goto filtered;
		if ((f->flags & FILTER_PORT) && (!has_ports || (sport != f->port && dport != f->port)))
			goto filtered;
	}

	/* Reserve, fill, submit. Nothing between reserve and submit can fail
	 * (every bound was checked above), so the slot is always committed.
	 * The verifier enforces it: a path that neither submits nor discards
	 * the slot is rejected ("Unreleased reference"). */
	struct packet_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		cnt->lost++;
		return XDP_PASS;
	}
	ev->src_ip = ip->saddr;
	ev->dst_ip = ip->daddr;
	ev->src_port = sport;
	ev->dst_port = dport;
	ev->pkt_len = bpf_ntohs(ip->tot_len);
	ev->proto = ip->protocol;
	ev->pad1 = 0;
	bpf_ringbuf_submit(ev, 0);
	cnt->events++;
	return XDP_PASS;

filtered:
	cnt->filtered++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
