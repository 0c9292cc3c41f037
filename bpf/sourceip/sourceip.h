/* Shared between sourceip.bpf.c and its TypeScript mirror
 * (src/lessons/sourceip.ts): test/layouts.test.ts checks that both agree
 * with the compiled object's BTF, byte for byte. */
#ifndef SOURCEIP_H
#define SOURCEIP_H

#include <linux/types.h>

/* One event per IPv4 or IPv6 packet: 48 bytes, no implicit padding.
 * Addresses are the bytes as on the wire (network order): an IPv6 address
 * fills all 16 bytes, an IPv4 address the first 4 (the other 12 are zero).
 * Nothing is converted in the kernel: user space formats them. */
struct sourceip_event {
	__u64 ts_ns;      /* 0: bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the program ran */
	__u8 saddr[16];   /* 8 */
	__u8 daddr[16];   /* 24 */
	__u16 pkt_len;    /* 40: IPv4 tot_len, or 40 + IPv6 payload_len; host order */
	__u8 family;      /* 42: 4 or 6 */
	__u8 proto;       /* 43: IPv4 protocol, or IPv6 upper-layer protocol after extension headers */
	__u32 pad1;       /* 44 */
};

/* Per-CPU counters in counters[0]. ipv4 + ipv6 = events + lost. */
struct sourceip_counters {
	__u64 ipv4;   /* IPv4 packets seen */
	__u64 ipv6;   /* IPv6 packets seen */
	__u64 events; /* events submitted to the ring */
	__u64 lost;   /* events dropped: the ring had no room */
};

#endif
