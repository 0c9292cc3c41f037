/* tc_dscp: the structs the TC program and user space share.
 * src/lessons/tc_dscp.ts mirrors them byte for byte (checked against this
 * object's BTF by test/layouts.test.ts). */
#ifndef TC_DSCP_H
#define TC_DSCP_H

#include <linux/types.h>

/* What to mark (config[0], written by the loader before it attaches).
 * Ports are in host byte order: the program compares ranges, so it converts
 * the packet's port once rather than every bound. */
struct dscp_config {
	__u16 port;      /* mark UDP to this destination port; 0: no single port */
	__u16 range_lo;  /* and to range_lo..range_hi (inclusive); 0-0: no range */
	__u16 range_hi;
	__u8 dscp;       /* the DSCP to set, 0-63 (46: EF, expedited forwarding) */
	__u8 pad;        /* always zero */
};                       /* 8 bytes */

/* What the program did (counters[0], one per CPU: no atomics needed). */
struct dscp_counters {
	__u64 marked;    /* UDP to a configured port: DSCP rewritten (ECN kept, checksum fixed) */
	__u64 already;   /* UDP to a configured port that already had the DSCP: untouched */
	__u64 unmatched; /* other IPv4 packets (other ports, other protocols): untouched */
	__u64 skipped;   /* not IPv4, fragments, truncated or malformed headers: untouched */
};                       /* 32 bytes */

#endif
