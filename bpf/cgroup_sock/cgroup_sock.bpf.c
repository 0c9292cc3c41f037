// SPDX-License-Identifier: GPL-2.0
/* cgroup_sock: network policy per cgroup, the way Cilium enforces it at
 * the socket. A BPF_PROG_TYPE_CGROUP_SOCK_ADDR program in section
 * "cgroup/connect4" (attach type BPF_CGROUP_INET4_CONNECT) runs inside
 * every IPv4 connect() made by a process of the cgroup it is attached to
 * (and of its descendants), before the kernel does anything with the
 * address. Returning 0 makes connect() fail with EPERM; 1 lets it go on.
 * Processes of other cgroups never run it.
 *
 * - ctx->user_ip4 and ctx->user_port are what the process passed to
 *   connect(), in network order (the port in the low 16 bits of a u32).
 *   A connect4 program may also rewrite them (that is how Cilium's socket
 *   load balancing translates a service address once per connection, not
 *   per packet); this one only decides.
 * - The ports to refuse are a HASH map user space fills: the policy changes
 *   without reloading anything.
 * - Every decision is counted (PERCPU_ARRAY) and sent to user space as an
 *   event (RINGBUF) with the pid and command that asked. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>   /* AF_INET comes from sys/socket.h in user space: defined below */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "cgroup_sock.h"

#ifndef AF_INET
#define AF_INET 2
#endif

#define MAX_PORTS 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u16);          /* port, host order */
	__type(value, __u8);         /* 1: refuse */
} denied_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} cs_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Makes clang emit struct cs_event into the BTF (a ring buffer has no
 * value type), for the layout test. */
struct cs_event *unused_cs_event __attribute__((unused));

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&cs_stats, &stat);
	if (n)
		*n += 1;
}

SEC("cgroup/connect4")
int cgroup_sock(struct bpf_sock_addr *ctx)
{
	if (ctx->user_family != AF_INET)
		return 1;
	__u16 port = bpf_ntohs(ctx->user_port);
	int deny = bpf_map_lookup_elem(&denied_ports, &port) != NULL;
	count(deny ? CS_STAT_DENIED : CS_STAT_ALLOWED);

	struct cs_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(CS_STAT_LOST);
		return deny ? 0 : 1;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->daddr = ctx->user_ip4;
	ev->port = port;
	ev->verdict = deny ? CS_DENIED : CS_ALLOWED;
	ev->proto = ctx->protocol;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, 0);
	return deny ? 0 : 1;
}

char LICENSE[] SEC("license") = "GPL";
