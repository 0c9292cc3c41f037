// SPDX-License-Identifier: GPL-2.0
/* Test fixture of USDT attach (test/usdt.test.ts): counts the hits of a
 * USDT probe and sums its first argument. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

/* 0: hits, 1: sum of arg 1, 2: last cookie */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} usdt_counts SEC(".maps");

static __always_inline void add(__u32 i, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&usdt_counts, &i);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("usdt")
int BPF_USDT(on_tick, long n)
{
	__u32 k = 2;
	__u64 cookie = bpf_usdt_cookie(ctx);

	add(0, 1);
	add(1, n);
	bpf_map_update_elem(&usdt_counts, &k, &cookie, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
