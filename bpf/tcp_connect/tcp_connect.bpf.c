// SPDX-License-Identifier: GPL-2.0
/* tcp_connect: every outgoing IPv4 TCP connect (pid, command, addresses and
 * ports read from struct sock with CO-RE) and its close (duration, bytes
 * sent and received from struct tcp_sock, as bcc's tcplife), through a ring
 * buffer.
 *
 * Two ways in, chosen by the loader:
 * - kprobe/tcp_connect (the seed's bpftrace probe), where the kernel has
 *   kprobes: runs in the connecting process, after the source port is chosen.
 * - the sock:inet_sock_set_state tracepoint everywhere: SYN_SENT marks the
 *   connect (in the connecting process, but before the source port is
 *   chosen), so the connect event is sent when the socket leaves SYN_SENT.
 * Either way the close comes from the tracepoint (TCP_CLOSE), often in
 * softirq context where the current task is whoever was interrupted: pid
 * and comm are those stored at connect time, keyed by the sock pointer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcp_connect.h"

#define AF_INET 2
#define IPPROTO_TCP 6
/* enum of the tcp states (include/net/tcp_states.h) */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define RCV_SHUTDOWN 1

/* Set by the loader: the kprobe program reports connects (the tracepoint
 * then only tracks closes). */
const volatile __u8 use_kprobe = 0;

struct conn {
	__u64 start_ns;
	__u32 pid;
	__u32 reported; /* the connect event was sent */
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Makes clang emit struct tcp_event into the BTF (a ring buffer has no
 * value type), where test/layouts.test.ts checks the TypeScript mirror. */
struct tcp_event *unused_tcp_event __attribute__((unused));

/* Events the ring had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		(*n)++;
}

/* Addresses and ports from struct sock with CO-RE. */
static __always_inline void read_addrs(struct tcp_event *e, struct sock *sk)
{
	e->saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	e->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	/* inet_sport, not skc_num: at TCP_CLOSE the port is already released (skc_num 0) */
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

static __always_inline void remember(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct conn c = {};
	c.start_ns = bpf_ktime_get_ns();
	c.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(c.comm, sizeof(c.comm));
	bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
}

static __always_inline void report_connect(struct sock *sk, struct conn *c)
{
	struct tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = EVENT_CONNECT;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = c->pid;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
	read_addrs(e, sk);
	bpf_ringbuf_submit(e, 0);
	c->reported = 1;
}

SEC("kprobe/tcp_connect")
int BPF_KPROBE(tcp_connect_kprobe, struct sock *sk)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET)
		return 0;
	remember(sk);
	__u64 key = (__u64)sk;
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		report_connect(sk, c);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP || ctx->family != AF_INET)
		return 0;
	struct sock *sk = (struct sock *)ctx->skaddr;
	__u64 key = (__u64)sk;
	int newstate = ctx->newstate;

	if (newstate == TCP_SYN_SENT) {
		if (!use_kprobe)
			remember(sk);
		return 0;
	}
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0; /* not an outgoing connection we saw begin */
	if (!c->reported && ctx->oldstate == TCP_SYN_SENT)
		report_connect(sk, c); /* source port known by now */
	if (newstate != TCP_CLOSE)
		return 0;

	struct tcp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		__builtin_memset(e, 0, sizeof(*e));
		e->kind = EVENT_CLOSE;
		e->ts_ns = bpf_ktime_get_ns();
		e->duration_ns = e->ts_ns - c->start_ns;
		e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		e->oldstate = ctx->oldstate;
		if (ctx->oldstate != TCP_SYN_SENT)
			e->flags |= FLAG_SYN_ACKED;
		if (ctx->oldstate == TCP_FIN_WAIT2 || ctx->oldstate == TCP_TIME_WAIT || ctx->oldstate == TCP_LAST_ACK)
			e->flags |= FLAG_FIN_ACKED;
		if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) & RCV_SHUTDOWN)
			e->flags |= FLAG_FIN_RECEIVED;
		e->pid = c->pid;
		__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
		read_addrs(e, sk);
		bpf_ringbuf_submit(e, 0);
	} else {
		count_lost();
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
