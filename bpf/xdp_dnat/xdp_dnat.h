/* xdp_dnat: the structs the kernel programs and user space share.
 * src/lessons/xdp_dnat.ts mirrors them byte for byte (checked against this
 * object's BTF by test/layouts.test.ts).
 *
 * Every key is hashed over all of its bytes, so the padding is spelled out
 * and always zero: the programs build keys from zero-initialised stack
 * structs, user space writes the pads as zeros. Addresses and ports are in
 * network byte order, exactly as they sit in the packet, so the programs copy
 * them without conversion. */
#ifndef XDP_DNAT_H
#define XDP_DNAT_H

#include <linux/types.h>

/* A service: virtual IP, port and protocol (the key of service_map). */
struct service_key {
	__be32 vip;   /* the service's virtual IP */
	__be16 port;  /* the service's port */
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;     /* always zero */
};                    /* 8 bytes */

/* Where a service's packets go (the value of service_map). */
struct backend {
	__be32 ip;
	__be16 port;
	__u16 pad;    /* always zero */
};                    /* 8 bytes */

/* A backend seen as a packet source: address, port and protocol (the key of
 * reverse_map, which gives the service whose address replies must carry). */
struct backend_key {
	__be32 ip;
	__be16 port;
	__u8 proto;
	__u8 pad;     /* always zero */
};                    /* 8 bytes */

/* Hits of one service (service_hits, one per CPU). */
struct service_counter {
	__u64 packets;
	__u64 bytes;  /* IP total lengths */
};                    /* 16 bytes */

/* Why a packet went where it went: the index of dnat_stats (one counter per
 * CPU per reason). The names are mirrored by DNAT_REASONS in the TS module. */
enum dnat_reason {
	DNAT_REDIRECT = 0,      /* hit: rewritten, sent out the backend's interface (bpf_redirect) */
	DNAT_TX,                /* hit: rewritten, sent back out the interface it came in on (XDP_TX) */
	DNAT_PASS_NO_NEIGH,     /* hit: rewritten, next hop's MAC not known yet: the stack resolves it */
	DNAT_PASS_NOT_FWD,      /* hit: rewritten, the route lookup gave no forwarding path (local
				 * address, unreachable, forwarding off): the stack decides */
	DNAT_PASS_MTU,          /* hit: rewritten, bigger than the egress MTU (in skb mode: a GSO
				 * or GRO super-packet): the stack segments or fragments it */
	DNAT_PASS_TTL,          /* hit: rewritten, TTL would expire: the stack answers with ICMP */
	DNAT_DROP_BLACKHOLE,    /* hit: the route to the backend is a blackhole */
	DNAT_PASS_MISS,         /* TCP/UDP to no service */
	DNAT_PASS_NOT_IPV4,     /* not an IPv4 frame (ARP, IPv6...) */
	DNAT_PASS_MALFORMED,    /* truncated at a header, bad ihl, version or total length */
	DNAT_PASS_FRAGMENT,     /* an IP fragment: only whole datagrams are translated */
	DNAT_PASS_OTHER_PROTO,  /* neither TCP nor UDP */
	DNAT_REPLY_REWRITTEN,   /* TC egress: a backend's reply given the service's address */
	DNAT_REASON_COUNT,
};

#endif
