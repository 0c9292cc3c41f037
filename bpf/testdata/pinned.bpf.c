// SPDX-License-Identifier: GPL-2.0
/* Test fixture: a map pinned by name (LIBBPF_PIN_BY_NAME), to test the pin
 * root option, unpinning, and libbpf's refusal to reuse a pinned map of
 * another shape ("parameter mismatch"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lbts_pinned SEC(".maps");

SEC("xdp")
int count_pinned(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 one = 1, *v = bpf_map_lookup_elem(&lbts_pinned, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&lbts_pinned, &k, &one, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
