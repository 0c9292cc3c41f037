/* Shared between rcv_latency.bpf.c and src/lessons/rcv_latency.ts. */
#ifndef RCV_LATENCY_H
#define RCV_LATENCY_H

/* The histogram's slots: slot 0 counts 0 ns, slot k (1..63) counts
 * [2^(k-1), 2^k) ns, as bpftrace's hist(). */
#define HIST_SLOTS 64

#endif
