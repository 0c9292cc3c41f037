// SPDX-License-Identifier: GPL-2.0
/* The compatibility suite's programs (test/compat.test.ts): one small
 * program per program type, each loaded alone (the others' autoload off),
 * then attached, test-run or only loaded, as the suite's table says.
 * Programs that count do so in hits[] at their own index, for the tgid set
 * in target_tgid. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void hit(__u32 i)
{
	__u64 *v;

	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return;
	v = bpf_map_lookup_elem(&hits, &i);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("socket")
int c_socket_filter(struct __sk_buff *skb) { return skb->len; }

SEC("kprobe/do_nanosleep")
int c_kprobe(void *ctx) { hit(0); return 0; }

SEC("tc")
int c_sched_cls(struct __sk_buff *skb) { return 0; /* TC_ACT_OK */ }

SEC("action")
int c_sched_act(struct __sk_buff *skb) { return 0; }

SEC("tp/syscalls/sys_enter_getppid")
int c_tracepoint(void *ctx) { hit(1); return 0; }

SEC("xdp")
int c_xdp(struct xdp_md *ctx) { return XDP_PASS; }

SEC("perf_event")
int c_perf_event(struct bpf_perf_event_data *ctx) { hit(2); return 0; }

SEC("cgroup_skb/ingress")
int c_cgroup_skb(struct __sk_buff *skb) { return 1; }

SEC("cgroup/sock_create")
int c_cgroup_sock(struct bpf_sock *sk) { return 1; }

SEC("lwt_in")
int c_lwt_in(struct __sk_buff *skb) { return BPF_OK; }

SEC("lwt_out")
int c_lwt_out(struct __sk_buff *skb) { return BPF_OK; }

SEC("lwt_xmit")
int c_lwt_xmit(struct __sk_buff *skb) { return BPF_OK; }

SEC("sockops")
int c_sock_ops(struct bpf_sock_ops *skops) { return 1; }

SEC("sk_skb/stream_verdict")
int c_sk_skb(struct __sk_buff *skb) { return SK_PASS; }

SEC("cgroup/dev")
int c_cgroup_device(struct bpf_cgroup_dev_ctx *ctx) { return 1; }

SEC("sk_msg")
int c_sk_msg(struct sk_msg_md *msg) { return SK_PASS; }

SEC("raw_tp/sys_enter")
int c_raw_tracepoint(struct bpf_raw_tracepoint_args *ctx) { hit(3); return 0; }

SEC("cgroup/connect4")
int c_cgroup_sock_addr(struct bpf_sock_addr *ctx) { return 1; }

SEC("sk_reuseport")
int c_sk_reuseport(struct sk_reuseport_md *md) { return SK_PASS; }

SEC("flow_dissector")
int c_flow_dissector(struct __sk_buff *skb) { return BPF_OK; }

SEC("cgroup/sysctl")
int c_cgroup_sysctl(struct bpf_sysctl *ctx) { return 1; }

SEC("cgroup/getsockopt")
int c_cgroup_sockopt(struct bpf_sockopt *ctx) { return 1; }

SEC("fentry/do_nanosleep")
int BPF_PROG(c_tracing) { hit(4); return 0; }

SEC("tp_btf/sys_enter")
int BPF_PROG(c_tp_btf, struct pt_regs *regs, long id) { hit(5); return 0; }

SEC("iter/task")
int c_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (task && task->tgid == target_tgid && task->pid == target_tgid)
		BPF_SEQ_PRINTF(ctx->meta->seq, "%d\n", task->tgid);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(c_lsm, struct file *file) { hit(6); return 0; }

SEC("sk_lookup")
int c_sk_lookup(struct bpf_sk_lookup *ctx) { return SK_PASS; }

struct syscall_args { __u32 a, b; __u64 sum; };

SEC("syscall")
int c_syscall(struct syscall_args *args)
{
	args->sum = (__u64)args->a + args->b;
	return 42;
}

/* libbpf 1.1 knows no netfilter section: set its type with setType() */
SEC("nf_old")
int c_netfilter(struct bpf_nf_ctx *ctx) { return 1; /* NF_ACCEPT */ }

char LICENSE[] SEC("license") = "GPL";
