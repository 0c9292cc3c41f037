/* Shared between packet_sniff.bpf.c and its TypeScript mirror
 * (src/lessons/packet_sniff.ts): test/layouts.test.ts checks that both agree
 * with the compiled object's BTF, byte for byte. */
#ifndef PACKET_SNIFF_H
#define PACKET_SNIFF_H

#include <linux/types.h>

/* packet_data.flags (the seed's values) */
#define SNIFF_FRAG    0x01 /* a fragment: more-fragments set or a non-zero offset */
#define SNIFF_LOW_TTL 0x02 /* ttl < SNIFF_LOW_TTL_BELOW */
#define SNIFF_SYN     0x10 /* TCP flags, first fragment only */
#define SNIFF_FIN     0x20
#define SNIFF_RST     0x40

#define SNIFF_LOW_TTL_BELOW 10

/* One event per IPv4 packet: 32 bytes, no implicit padding. Addresses and
 * ports in network order, as on the wire. Ports (and TCP flags) are 0 for
 * protocols without ports, for non-first fragments and for truncated
 * TCP/UDP headers. */
struct packet_data {
	__u64 timestamp;   /* 0: bpf_ktime_get_ns(), CLOCK_MONOTONIC: not a wall-clock time */
	__be32 src_ip;     /* 8 */
	__be32 dst_ip;     /* 12 */
	__be16 src_port;   /* 16 */
	__be16 dst_port;   /* 18 */
	__u32 packet_size; /* 20: bytes of the frame, Ethernet header included */
	__u8 protocol;     /* 24: ip->protocol */
	__u8 ttl;          /* 25 */
	__u16 flags;       /* 26: SNIFF_* */
	__u32 pad;         /* 28 */
};

/* Per-CPU counters in stats[0]. total = tcp + udp + other, all IPv4;
 * ring_full counts the events of those packets that found the ring full. */
struct sniff_stats {
	__u64 total;
	__u64 tcp;
	__u64 udp;
	__u64 other;
	__u64 ring_full;
};

#endif
