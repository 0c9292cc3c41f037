/* ping_blocker: the structs the XDP program and user space share.
 * src/lessons/ping_blocker.ts mirrors them byte for byte (checked against
 * this object's BTF by test/layouts.test.ts).
 *
 * Addresses, echo id and sequence are in network byte order, exactly as in
 * the packet; the blocklist's keys (ping_hash) too, so the program looks the
 * packet's addresses up without converting them. */
#ifndef PING_BLOCKER_H
#define PING_BLOCKER_H

#include <linux/types.h>

/* ping_event.flags */
#define PING_DROPPED (1U << 0)    /* the program returned XDP_DROP */
#define PING_SRC_BLOCKED (1U << 1) /* saddr is in ping_hash */
#define PING_DST_BLOCKED (1U << 2) /* daddr is in ping_hash */
#define PING_NO_HEADER (1U << 3)  /* no ICMP header to read: a non-first
				   * fragment, or truncated (type, code, id,
				   * seq are then 0) */

/* One event per ICMP packet the program sees: 24 bytes, no implicit padding. */
struct ping_event {
	__u64 ts_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__be32 saddr; /* 8 */
	__be32 daddr; /* 12 */
	__be16 id;    /* 16: echo identifier (echo request/reply only, else 0) */
	__be16 seq;   /* 18: echo sequence number (idem) */
	__u8 type;    /* 20: ICMP type (8 echo request, 0 echo reply...) */
	__u8 code;    /* 21 */
	__u8 flags;   /* 22: PING_* */
	__u8 pad;     /* 23: zero */
};

/* Per-CPU counters in counters[0]. icmp = events + lost. */
struct ping_counters {
	__u64 icmp;    /* ICMP packets seen */
	__u64 dropped; /* of those, dropped (from or to a blocked address) */
	__u64 events;  /* events written to the ring */
	__u64 lost;    /* events bpf_ringbuf_output could not write (ring full) */
};

#endif
