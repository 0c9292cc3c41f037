/* Shared between mytcpdump.bpf.c and its TypeScript mirror
 * (src/lessons/mytcpdump.ts): test/layouts.test.ts checks that both agree
 * with the compiled object's BTF, byte for byte. */
#ifndef MYTCPDUMP_H
#define MYTCPDUMP_H

#include <linux/types.h>

/* One event per captured IPv4 packet: 16 bytes, no implicit padding.
 * Addresses and ports in network order, as on the wire; pkt_len (from
 * ip->tot_len) in host order. Ports are 0 for protocols without ports, for
 * non-first fragments and for truncated TCP/UDP headers. */
struct packet_event {
	__be32 src_ip;   /* 0 */
	__be32 dst_ip;   /* 4 */
	__be16 src_port; /* 8 */
	__be16 dst_port; /* 10 */
	__u16 pkt_len;   /* 12 */
	__u8 proto;      /* 14 */
	__u8 pad1;       /* 15 */
};

/* Which fields of struct filter_config are set (tcpdump's basics). */
#define FILTER_PROTO (1U << 0) /* ip->protocol == proto */
#define FILTER_HOST (1U << 1)  /* saddr == host || daddr == host */
#define FILTER_PORT (1U << 2)  /* TCP or UDP, and sport == port || dport == port */

/* The loader writes this into config[0]; all zero captures everything. */
struct filter_config {
	__u32 flags;  /* FILTER_* */
	__be32 host;  /* network order */
	__be16 port;  /* network order */
	__u8 proto;
	__u8 pad1;
};

/* Per-CPU counters in counters[0]. packets = filtered + events + lost. */
struct mytcpdump_counters {
	__u64 packets;  /* IPv4 packets seen */
	__u64 filtered; /* of those, not matching the filter (never reached the ring) */
	__u64 events;   /* events submitted to the ring */
	__u64 lost;     /* events dropped: the ring had no room */
};

#endif
