// SPDX-License-Identifier: GPL-2.0
/* rcv_latency: the time a packet spends in the kernel's receive path, as a
 * log2 histogram in a per-CPU array (no atomics: each CPU counts in its own
 * copy, user space sums them).
 *
 * Two ways to measure, chosen by the loader:
 * - kprobe/kretprobe on ip_rcv (the seed's bpftrace), where the kernel has
 *   kprobes: the time ip_rcv takes (IP, netfilter, routing and the local
 *   delivery it calls synchronously). Start time per CPU: a softirq runs
 *   ip_rcv to the end on one CPU, and the seed's per-thread key (tid) is the
 *   interrupted task's, not the packet's.
 * - tracepoints everywhere: net:netif_receive_skb (the stack takes the
 *   packet, __netif_receive_skb_core) to skb:consume_skb or skb:kfree_skb
 *   (the kernel is done with it: for a ping, icmp_rcv after the reply),
 *   keyed by the skb pointer in an LRU hash.
 * With target_ifindex set, only packets received on that interface. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "rcv_latency.h"

/* Only packets received on this interface (0: every interface). */
const volatile __u32 target_ifindex = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hist SEC(".maps");

/* tracepoints: skb pointer -> netif_receive_skb time */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} start SEC(".maps");

/* kprobe: the ip_rcv entry time on this CPU (0: none pending) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cpu_start SEC(".maps");

static __always_inline __u32 log2_slot(__u64 v)
{
	if (v == 0)
		return 0;
	__u32 r = 0;
#pragma unroll
	for (int s = 32; s > 0; s >>= 1) {
		if (v >> s) {
			v >>= s;
			r += s;
		}
	}
	return r + 1; /* [2^r, 2^(r+1)) */
}

static __always_inline void record(__u64 delta)
{
	__u32 slot = log2_slot(delta);
	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	__u64 *n = bpf_map_lookup_elem(&hist, &slot);
	if (n)
		(*n)++;
}

static __always_inline int wanted(struct sk_buff *skb)
{
	return !target_ifindex || BPF_CORE_READ(skb, dev, ifindex) == target_ifindex;
}

SEC("tracepoint/net/netif_receive_skb")
int rcv_start(struct trace_event_raw_net_dev_template *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->skbaddr;
	if (!wanted(skb))
		return 0;
	__u64 key = (__u64)skb, now = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &key, &now, BPF_ANY);
	return 0;
}

static __always_inline int rcv_end(void *skbaddr)
{
	__u64 key = (__u64)skbaddr;
	__u64 *t0 = bpf_map_lookup_elem(&start, &key);
	if (!t0)
		return 0;
	record(bpf_ktime_get_ns() - *t0);
	bpf_map_delete_elem(&start, &key);
	return 0;
}

SEC("tracepoint/skb/consume_skb")
int rcv_consumed(struct trace_event_raw_consume_skb *ctx)
{
	return rcv_end(ctx->skbaddr);
}

SEC("tracepoint/skb/kfree_skb")
int rcv_dropped(struct trace_event_raw_kfree_skb *ctx)
{
	return rcv_end(ctx->skbaddr);
}

SEC("kprobe/ip_rcv")
int BPF_KPROBE(ip_rcv_entry, struct sk_buff *skb)
{
	if (!wanted(skb))
		return 0;
	__u32 zero = 0;
	__u64 *t = bpf_map_lookup_elem(&cpu_start, &zero);
	if (t)
		*t = bpf_ktime_get_ns();
	return 0;
}

SEC("kretprobe/ip_rcv")
int BPF_KRETPROBE(ip_rcv_exit)
{
	__u32 zero = 0;
	__u64 *t = bpf_map_lookup_elem(&cpu_start, &zero);
	if (!t || !*t)
		return 0;
	record(bpf_ktime_get_ns() - *t);
	*t = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
