// SPDX-License-Identifier: GPL-2.0
/* Test fixture: one map of each kind the typed API handles, and an XDP
 * program that writes into some of them so tests can check, through
 * BPF_PROG_TEST_RUN, what the kernel side wrote.
 *
 * count_packets: counts every frame in percpu_counts[0], counts IPv4 flows
 * (a struct key with explicit padding) in `flows`, swaps the MAC addresses
 * when `rewrite` is set, and returns `verdict` (XDP_PASS unless set).
 * Frames shorter than an Ethernet header get XDP_ABORTED. */
#include "common.h"

/* Shared with test/maps.test.ts (flowKey / flowVal codecs). */
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_val {
	__u64 packets;
	__u64 bytes;
};

/* 12 bytes: per-CPU slots round it up to 16. */
struct pcpu_val {
	__u32 a;
	__u32 b;
	__u32 c;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} hash_u32 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} array_u32 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct pcpu_val);
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} batch SEC(".maps");

const volatile __u32 verdict = XDP_PASS;
const volatile __u8 rewrite = 0;
/* Only for setConst tests of 64-bit values; never read. */
const volatile __u64 big_const = 0;

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	__u64 *cnt = bpf_map_lookup_elem(&percpu_counts, &zero);
	if (cnt)
		*cnt += 1;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_ABORTED;

	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (ip) {
		struct flow_key k = {};
		k.saddr = ip->saddr;
		k.daddr = ip->daddr;
		k.proto = ip->protocol;
		if ((ip->protocol == IPPROTO_UDP || ip->protocol == IPPROTO_TCP) && !ipv4_is_fragment(ip)) {
			__be16 *ports = ipv4_l4(ip);
			if ((void *)(ports + 2) <= data_end) {
				k.sport = ports[0];
				k.dport = ports[1];
			}
		}
		__u64 len = data_end - data;
		struct flow_val *v = bpf_map_lookup_elem(&flows, &k);
		if (v) {
			__sync_fetch_and_add(&v->packets, 1);
			__sync_fetch_and_add(&v->bytes, len);
		} else {
			struct flow_val nv = { .packets = 1, .bytes = len };
			bpf_map_update_elem(&flows, &k, &nv, BPF_NOEXIST);
		}
	}

	if (rewrite) {
		unsigned char tmp[ETH_ALEN];
		__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	}
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
