// SPDX-License-Identifier: GPL-2.0
/* Test fixture of iterators (test/iter.test.ts): an iter/task program that
 * prints one line per task, "<tgid> <pid> <comm>", and an iter/bpf_map_elem
 * program that prints the key and value of every element of the map it is
 * attached to. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Only the tasks of this thread group (0: every task). Set before load. */
const volatile __u32 only_tgid = 0;

SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	if (only_tgid && task->tgid != only_tgid)
		return 0;
	BPF_SEQ_PRINTF(seq, "%d %d %s\n", task->tgid, task->pid, task->comm);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} iter_values SEC(".maps");

SEC("iter/bpf_map")
int dump_maps(struct bpf_iter__bpf_map *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_map *map = ctx->map;

	if (!map)
		return 0;
	BPF_SEQ_PRINTF(seq, "%u %s %u\n", map->id, map->name, map->max_entries);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
