/* cgroup_sock: the structs the cgroup program and user space share.
 * src/lessons/cgroup_sock.ts mirrors them byte for byte (checked against
 * this object's BTF by test/layouts.test.ts). */
#ifndef CGROUP_SOCK_H
#define CGROUP_SOCK_H

#include <linux/types.h>

#define CS_COMM_LEN 16

/* cs_event.verdict */
enum cs_verdict {
	CS_ALLOWED = 0,
	CS_DENIED = 1,
};

/* One event per IPv4 connect() (TCP, or UDP connect) from the cgroup:
 * 40 bytes, no implicit padding. */
struct cs_event {
	__u64 ts_ns;                /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pid;                  /* 8: the process (thread group) id */
	__be32 daddr;               /* 12: the address asked for, network order */
	__u16 port;                 /* 16: the port asked for, host order */
	__u8 verdict;               /* 18: enum cs_verdict */
	__u8 proto;                 /* 19: IPPROTO_TCP or IPPROTO_UDP */
	char comm[CS_COMM_LEN];     /* 20: the thread's command name */
	__u8 pad[4];                /* 36: zero */
};

/* The index of cs_stats (one u64 per CPU per verdict). */
enum cs_stat {
	CS_STAT_ALLOWED = 0,
	CS_STAT_DENIED,
	CS_STAT_LOST,               /* events the ring buffer had no room for */
	CS_STAT_COUNT,
};

#endif
