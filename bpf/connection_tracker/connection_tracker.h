/* connection_tracker: the structs the kernel program and user space share.
 * src/lessons/connection_tracker.ts mirrors them byte for byte (checked
 * against this object's BTF by test/layouts.test.ts).
 *
 * A hash map hashes and compares every byte of the key, padding included.
 * Without `pad`, the compiler would still round struct conn_key up to 12
 * bytes (it is 4-byte aligned), leaving 3 bytes nobody sets: whatever the
 * stack held there becomes part of the key, and the same flow lands in a
 * different entry (or a user-space lookup misses). So the padding is spelled
 * out, and every key is zero-initialised before its fields are set. */
#ifndef CONNECTION_TRACKER_H
#define CONNECTION_TRACKER_H

#include <linux/types.h>

struct conn_key {
	__be32 src_ip; /* network byte order, as in the IP header */
	__be32 dst_ip;
	__u8 proto;    /* IPPROTO_* */
	__u8 pad[3];   /* explicit padding: always zero */
};                     /* 12 bytes */

struct conn_stats {
	__u64 packets;
	__u64 bytes; /* sum of the IP total lengths (ip->tot_len) */
};                   /* 16 bytes */

#endif
