/* Shared between tcp_connect.bpf.c and its TypeScript mirror
 * (src/lessons/tcp_connect.ts): test/layouts.test.ts checks that both agree
 * with the compiled object's BTF, byte for byte. The includer provides the
 * __u8/__u16/__u32/__u64/__be32 types (vmlinux.h in the kernel program). */
#ifndef TCP_CONNECT_H
#define TCP_CONNECT_H

#define TASK_COMM_LEN 16

/* tcp_event.kind */
#define EVENT_CONNECT 1 /* an outgoing connect: addresses, ports, pid, comm */
#define EVENT_CLOSE 2   /* that connection reached TCP_CLOSE: duration and bytes */

/* tcp_event.flags: the kernel's byte counters count sequence numbers, so
 * bytes_acked includes our SYN once the connect completed and our FIN once
 * it was acknowledged, and bytes_received includes the peer's FIN. */
#define FLAG_SYN_ACKED (1 << 0)
#define FLAG_FIN_ACKED (1 << 1)
#define FLAG_FIN_RECEIVED (1 << 2)

/* One event per connect and per close of an outgoing IPv4 TCP connection:
 * 72 bytes, no implicit padding. Addresses in network order; ports in host
 * order. */
struct tcp_event {
	__u64 ts_ns;          /* 0: bpf_ktime_get_ns() at the event */
	__u64 duration_ns;    /* 8: close: time since the connect began */
	__u64 bytes_acked;    /* 16: close: tcp_sock.bytes_acked (sent and acknowledged) */
	__u64 bytes_received; /* 24: close: tcp_sock.bytes_received */
	__u32 pid;            /* 32: the connecting process (tgid), taken at connect time */
	__be32 saddr;         /* 36: network order */
	__be32 daddr;         /* 40: network order */
	__u16 sport;          /* 44: host order */
	__u16 dport;          /* 46: host order */
	__u8 kind;            /* 48: EVENT_* */
	__u8 oldstate;        /* 49: close: the state it left (TCP_SYN_SENT: the connect failed) */
	__u8 flags;           /* 50: close: FLAG_* (which sequence numbers the byte counters include) */
	__u8 pad[5];          /* 51 */
	char comm[TASK_COMM_LEN]; /* 56 .. 72 */
};

#endif
