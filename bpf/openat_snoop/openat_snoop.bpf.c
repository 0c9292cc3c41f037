// SPDX-License-Identifier: GPL-2.0
/* openat_snoop: every openat(2) with its process, command, file name, flags
 * and result, through a ring buffer (seed 004's CO-RE "openatsnoop", fixed).
 *
 * Built with CO-RE against build/vmlinux.h (the running kernel's types,
 * dumped by bpftool): ctx->args[] below is a field of
 * struct trace_event_raw_sys_enter that libbpf relocates at load time to
 * where the running kernel has it (run the loader with --verbose to see the
 * "CO-RE relocating" lines).
 *
 * Two tracepoints: sys_enter_openat keeps the file name POINTER (and flags)
 * per thread; sys_exit_openat reads the name. Reading it at entry, as the
 * seed does, fails (-EFAULT) when the page holding the string has not been
 * faulted in yet: BPF programs here cannot take page faults. By the exit the
 * kernel itself has copied the name in (getname), so the page is present. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "openat_snoop.h"

char LICENSE[] SEC("license") = "GPL";

/* Filters, set by the loader before load (0 / "" = everyone). */
const volatile __u32 target_pid = 0;
const volatile char target_comm[OPENAT_COMM_LEN] = {};

struct start {
	__u64 filename; /* user pointer */
	__s32 flags;
	__u32 pad;
};

/* thread id -> the openat it is in. LRU: a thread killed inside openat never
 * reaches sys_exit, and its entry would stay; the least recently used go
 * first instead of new calls failing once the map is full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the loader may resize it (--ring-size) */
} events SEC(".maps");

/* Makes clang emit struct openat_event into the object's BTF (a ring
 * buffer has no value type), where test/layouts.test.ts checks its mirror. */
struct openat_event *unused_openat_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct openat_counters);
} counters SEC(".maps");

static __always_inline struct openat_counters *counts(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline int wanted(__u64 pid_tgid)
{
	if (target_pid && (pid_tgid >> 32) != target_pid)
		return 0;
	if (target_comm[0]) {
		char comm[OPENAT_COMM_LEN];
		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < OPENAT_COMM_LEN; i++) {
			if (comm[i] != target_comm[i])
				return 0;
			if (!comm[i])
				break;
		}
	}
	return 1;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!wanted(id))
		return 0;
	/* openat(int dfd, const char *filename, int flags, umode_t mode) */
	struct start s = { .filename = (__u64)ctx->args[1], .flags = (__s32)ctx->args[2] };
	__u32 tid = (__u32)id;
	if (bpf_map_update_elem(&starts, &tid, &s, BPF_ANY)) { /* rare with LRU */
		struct openat_counters *c = counts();
		if (c)
			__sync_fetch_and_add(&c->untracked, 1);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct start *s = bpf_map_lookup_elem(&starts, &tid);
	if (!s)
		return 0; /* filtered out at entry, or the tracer came in mid-call */
	struct openat_counters *c = counts();
	struct openat_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		if (c)
			__sync_fetch_and_add(&c->lost, 1);
		bpf_map_delete_elem(&starts, &tid);
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = tid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ret = (__s32)ctx->ret;
	e->flags = s->flags;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	long n = bpf_probe_read_user_str(e->name, sizeof(e->name), (const void *)s->filename);
	if (n < 0)
		e->name[0] = 0;
	e->name_len = n;
	bpf_map_delete_elem(&starts, &tid);
	bpf_ringbuf_submit(e, 0);
	if (c) {
		__sync_fetch_and_add(&c->events, 1);
		if (n < 0)
			__sync_fetch_and_add(&c->unreadable, 1);
	}
	return 0;
}
