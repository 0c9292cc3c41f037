/* sock_filter: the structs the socket filter and user space share.
 * src/lessons/sock_filter.ts mirrors them byte for byte (checked against
 * this object's BTF by test/layouts.test.ts). */
#ifndef SOCK_FILTER_H
#define SOCK_FILTER_H

#include <linux/types.h>

/* A rule of the `allow` map: an IP protocol (6 TCP, 17 UDP, 1 ICMP...) and
 * a port in host byte order, matched against the source or the destination
 * port. Port 0 means every packet of the protocol (ICMP has no ports: its
 * rules always have port 0). */
struct sf_rule {
	__u8 proto;  /* IPPROTO_* */
	__u8 pad;    /* zero */
	__u16 port;  /* host order; 0: any */
};               /* 4 bytes */

/* Why a packet was kept or refused: the index of sf_stats (per CPU). */
enum sf_reason {
	SF_KEPT = 0,          /* a rule allows it: delivered to the socket */
	SF_NO_RULE,           /* IPv4, no rule matches: refused */
	SF_NOT_IPV4,          /* ARP, IPv6, ...: refused */
	SF_MALFORMED,         /* IPv4 ethertype, truncated header: refused */
	SF_REASON_COUNT,
};

/* One counter per reason, per CPU: packets and their bytes (skb->len,
 * Ethernet header included). */
struct sf_counter {
	__u64 packets;
	__u64 bytes;
};                     /* 16 bytes */

#endif
