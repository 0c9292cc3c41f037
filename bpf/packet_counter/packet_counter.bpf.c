// SPDX-License-Identifier: GPL-2.0
/* packet_counter: count IPv4 packets per IP protocol number in a hash map
 * that user space reads (and prints) every couple of seconds.
 *
 * - The map is declared with BTF-style macros: __uint() for numbers,
 *   __type() for the key and value types. libbpf creates it at load time.
 * - bpf_map_lookup_elem() returns a pointer into the map's value or NULL;
 *   the verifier rejects any dereference that is not behind a NULL check.
 * - Several CPUs run this program at once, so the counter is incremented
 *   with __sync_fetch_and_add() (an atomic add), never with `(*count)++`.
 * - The first packet of a protocol inserts 1 with BPF_NOEXIST. Two CPUs can
 *   race to insert the same key: the loser gets -EEXIST, and its packet is
 *   then added to the winner's entry instead of being lost (a plain
 *   BPF_ANY insert would overwrite the winner's count with 1).
 * - The key is copied to a local first. Kernels since 5.x also accept a
 *   key pointer into the packet (after the bounds check), but a local
 *   key is what a struct key needs anyway (zeroed padding). */
#include "common.h"
#include <linux/errno.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256); /* one per possible protocol number */
	__type(key, __u8);        /* IP protocol number */
	__type(value, __u64);     /* packets */
} proto_count SEC(".maps");

SEC("xdp")
int packet_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip)
		return XDP_PASS;

	__u8 proto = ip->protocol; /* on the stack: a valid map key pointer */
	__u64 *count = bpf_map_lookup_elem(&proto_count, &proto);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return XDP_PASS;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&proto_count, &proto, &one, BPF_NOEXIST) == -EEXIST) {
		/* Another CPU inserted this protocol between our lookup and insert. */
		count = bpf_map_lookup_elem(&proto_count, &proto);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
