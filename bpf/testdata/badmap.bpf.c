// SPDX-License-Identifier: GPL-2.0
/* Test fixture: a correct program and a map the kernel refuses to create
 * (a hash map with no entries), so load() fails for a reason that is not
 * the verifier's. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 0);
	__type(key, __u32);
	__type(value, __u64);
} no_room SEC(".maps");

SEC("xdp")
int uses_map(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&no_room, &k);
	return v ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
