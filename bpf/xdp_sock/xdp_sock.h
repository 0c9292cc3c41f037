/* xdp_sock: what the kernel program and user space share.
 * src/lessons/xdp_sock.ts mirrors it. */
#ifndef XDP_SOCK_H
#define XDP_SOCK_H

#include <linux/types.h>

/* The value of config[0], written by user space before it attaches. */
struct xsk_config {
	__u16 port;   /* UDP destination port to steer, host byte order; 0: none */
	__u16 pad;    /* always zero */
};                    /* 4 bytes */

/* Slots of the per-CPU counters array. */
enum xsk_counter {
	XSK_MATCHED = 0,  /* UDP to the port: handed to bpf_redirect_map() */
	XSK_NO_SOCKET,    /* matched, but no socket in the queue's XSKMAP slot: passed */
	XSK_COUNTERS,
};

#define XSK_MAX_QUEUES 64

#endif
