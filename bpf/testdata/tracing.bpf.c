// SPDX-License-Identifier: GPL-2.0
/* Test fixture of the tracing attach API (test/tracing.test.ts), built with
 * CO-RE against build/vmlinux.h: counters per attach kind, for one pid. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* The process whose calls are counted (set before load). */
const volatile __u32 target_tgid = 0;
/* __NR_getppid of the running arch (set before load: 110 on x86_64, 173 on arm64). */
const volatile __u64 getppid_nr = 110;

/* 0: tracepoint getppid, 1: raw tracepoint sys_enter getppid, 2: uprobe calls,
 * 3: uprobe argument sum, 4: kprobe, 5: auto-attached tracepoint getppid,
 * 6: uretprobe return value sum, 7: CO-RE read of the task's tgid matched */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint")
int on_getppid(struct trace_event_raw_sys_enter *ctx)
{
	if (!mine())
		return 0;
	add(0, 1);
	/* CO-RE: the current task's tgid read through its BTF layout */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, tgid) == target_tgid)
		add(7, 1);
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int auto_getppid(struct trace_event_raw_sys_enter *ctx)
{
	if (mine())
		add(5, 1);
	return 0;
}

SEC("raw_tp")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	/* sys_enter(struct pt_regs *regs, long id) */
	if (mine() && ctx->args[1] == getppid_nr)
		add(1, 1);
	return 0;
}

/* Uprobes count every process: the test's binary is its own (a temp file). */
SEC("uprobe")
int BPF_KPROBE(on_traced_add, int a, int b)
{
	add(2, 1);
	add(3, a);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_traced_add_ret, int ret)
{
	add(6, ret);
	return 0;
}

SEC("kprobe")
int BPF_KPROBE(on_kprobe)
{
	if (mine())
		add(4, 1);
	return 0;
}

/* Auto-attached by its section name (Program.attach()) where kprobes exist. */
SEC("kprobe/tcp_connect")
int BPF_KPROBE(auto_kprobe)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
