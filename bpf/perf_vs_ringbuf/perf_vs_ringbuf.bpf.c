// SPDX-License-Identifier: GPL-2.0
/* perf_vs_ringbuf: the same event through the two ways a BPF program
 * streams data to user space, side by side.
 *
 *   to_perf     bpf_perf_event_output() into a PERF_EVENT_ARRAY: one ring
 *               per CPU, each owned by a perf event user space opened
 *   to_ringbuf  bpf_ringbuf_reserve()/submit() into a RINGBUF: one ring
 *               shared by every CPU
 *
 * Both are attached to the same tracepoint (any syscall tracepoint; the
 * loader picks it, raw_syscalls:sys_enter by default), so each traced
 * syscall produces one event in each. The sections name no tracepoint:
 * the loader attaches them where it is told. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "perf_vs_ringbuf.h"

char LICENSE[] SEC("license") = "GPL";

/* Filters, set by the loader before load. */
const volatile __u32 target_pid = 0; /* only this process (tgid); 0 = every one */
const volatile __u32 skip_pid = 0;   /* never this one (the loader: its own syscalls would feed back) */
/* bpf_ringbuf_submit() flags: 0 (wake the reader when it is caught up),
 * BPF_RB_NO_WAKEUP (1) or BPF_RB_FORCE_WAKEUP (2). */
const volatile __u64 rb_submit_flags = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	/* max_entries 0: libbpf sizes it to the number of possible CPUs */
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 << 10); /* the loader may resize it */
} rb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pvr_counters);
} counters SEC(".maps");

/* Makes clang emit struct pvr_event into the object's BTF (neither ring
 * has a value type), where test/layouts.test.ts checks its mirror. */
struct pvr_event *unused_pvr_event __attribute__((unused));

static __always_inline struct pvr_counters *counts(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline int wanted(__u64 id)
{
	__u32 pid = id >> 32;
	if (target_pid && pid != target_pid)
		return 0;
	return pid != skip_pid;
}

static __always_inline void fill(struct pvr_event *e, __u64 id, __u64 sent)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->cpu_seq = (__u32)sent;
}

SEC("tracepoint")
int to_perf(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!wanted(id))
		return 0;
	struct pvr_counters *c = counts();
	if (!c)
		return 0;
	struct pvr_event e;
	fill(&e, id, c->perf_sent);
	/* BPF_F_CURRENT_CPU: the ring of the CPU this runs on; the sample is
	 * copied from the stack into it. */
	if (bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e)))
		__sync_fetch_and_add(&c->perf_failed, 1);
	else
		__sync_fetch_and_add(&c->perf_sent, 1);
	return 0;
}

SEC("tracepoint")
int to_ringbuf(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!wanted(id))
		return 0;
	struct pvr_counters *c = counts();
	if (!c)
		return 0;
	/* Reserved in place: written directly into the shared ring. */
	struct pvr_event *e = bpf_ringbuf_reserve(&rb_events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&c->rb_failed, 1);
		return 0;
	}
	fill(e, id, c->rb_sent);
	bpf_ringbuf_submit(e, rb_submit_flags);
	__sync_fetch_and_add(&c->rb_sent, 1);
	return 0;
}
