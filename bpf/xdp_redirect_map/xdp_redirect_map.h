/* xdp_redirect_map: the structs the XDP program and user space share.
 * src/lessons/xdp_redirect_map.ts mirrors them byte for byte (checked
 * against this object's BTF by test/layouts.test.ts). */
#ifndef XDP_REDIRECT_MAP_H
#define XDP_REDIRECT_MAP_H

#include <linux/types.h>

/* Where packets to one IPv4 address go (the value of `routes`, keyed by
 * that address in network order): out of tx_ports[port], with these MACs. */
struct fwd_route {
	__u32 port;       /* the key of tx_ports (a DEVMAP slot), not an ifindex */
	__u8 dmac[6];     /* 4: the next hop's MAC (the neighbour on that port) */
	__u8 smac[6];     /* 10: the MAC of the port it leaves by */
};                        /* 16 bytes */

/* What went through one interface (port_stats, keyed by ifindex, one value
 * per CPU). rx: frames the program saw arrive; tx: frames it redirected out
 * of this interface (handed to the DEVMAP: whether the driver then sent
 * them is not counted here). */
struct if_counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 redirected;  /* of rx, sent out of another port */
	__u64 passed;      /* of rx, given to the stack (ARP, no route, TTL 1, ...) */
	__u64 tx_packets;
	__u64 tx_bytes;
};                        /* 48 bytes */

#endif
