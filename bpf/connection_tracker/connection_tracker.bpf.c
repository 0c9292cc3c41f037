// SPDX-License-Identifier: GPL-2.0
/* connection_tracker: packets and bytes per flow, a flow being
 * (source address, destination address, IP protocol), in a hash map with a
 * struct key.
 *
 * - The key is zero-initialised (`= {}`), then every field is set, proto
 *   included: the hash covers all 12 bytes, padding too (see the header).
 * - The key and the new value live on the stack: map helpers take pointers
 *   to the stack or to map values, never into the packet.
 * - Bytes come from ip->tot_len (the IP datagram's own length, network
 *   order), not data_end - data, which also counts the Ethernet header and
 *   any padding of short frames.
 * - Counters are updated with atomic adds; the first packet of a flow is
 *   inserted with BPF_NOEXIST, and a CPU that loses that race adds to the
 *   winner's entry.
 *
 * max_entries: 65536 flows. The hash map preallocates every element at load
 * time: 80 bytes each (the kernel's element header, then key and value
 * rounded up to 8 bytes) plus a 16-byte bucket, 6 MiB in all (bpftool map
 * show: memlock 6292528B). That is far more flows than a lab or one host's
 * interface sees in a lesson, and small enough to load anywhere. When the
 * table is full, new flows are not tracked (the insert fails with -E2BIG)
 * while existing ones keep counting; every packet that finds no room is
 * counted in `untracked` (a per-CPU counter: no atomics, no contention), so
 * user space can say how much it is not showing. A long-running tracker
 * would use BPF_MAP_TYPE_LRU_HASH, or have user space delete idle flows. */
#include "common.h"
#include <linux/errno.h>
#include "connection_tracker.h"

#define CONN_TABLE_SIZE 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONN_TABLE_SIZE);
	__type(key, struct conn_key);
	__type(value, struct conn_stats);
} conn_table SEC(".maps");

/* Packets of flows that found no room in conn_table (index 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} untracked SEC(".maps");

SEC("xdp")
int connection_tracker(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip)
		return XDP_PASS;

	struct conn_key key = {}; /* every byte zero, pad included */
	key.src_ip = ip->saddr;
	key.dst_ip = ip->daddr;
	key.proto = ip->protocol;
	__u64 len = bpf_ntohs(ip->tot_len);

	struct conn_stats *stats = bpf_map_lookup_elem(&conn_table, &key);
	if (stats) {
		__sync_fetch_and_add(&stats->packets, 1);
		__sync_fetch_and_add(&stats->bytes, len);
		return XDP_PASS;
	}
	struct conn_stats init = { .packets = 1, .bytes = len };
	long err = bpf_map_update_elem(&conn_table, &key, &init, BPF_NOEXIST);
	if (err == -EEXIST) {
		stats = bpf_map_lookup_elem(&conn_table, &key);
		if (stats) {
			__sync_fetch_and_add(&stats->packets, 1);
			__sync_fetch_and_add(&stats->bytes, len);
			return XDP_PASS;
		}
		/* deleted in between: not tracked */
	} else if (err == 0) {
		return XDP_PASS;
	}
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&untracked, &zero);
	if (lost)
		*lost += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
