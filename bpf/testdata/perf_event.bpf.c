// SPDX-License-Identifier: GPL-2.0
/* Test fixture of src/attach/perf_event.ts: a perf_event program (as a
 * CPU-clock profiler's) that counts the samples it gets per CPU. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* samples[0] on each CPU: the samples taken on that CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int count_sample(void *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&samples, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

/* A tracepoint program, to show the error of attaching it to a perf event. */
SEC("tracepoint")
int not_perf(void *ctx)
{
	return 0;
}
