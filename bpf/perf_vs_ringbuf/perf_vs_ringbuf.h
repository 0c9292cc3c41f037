/* Shared between perf_vs_ringbuf.bpf.c and its TypeScript mirror
 * (src/lessons/perf_vs_ringbuf.ts): test/layouts.test.ts checks that both
 * agree with the compiled object's BTF, byte for byte. */
#ifndef PERF_VS_RINGBUF_H
#define PERF_VS_RINGBUF_H

/* One event per traced syscall, sent twice: through the perf buffer and
 * through the ring buffer. 24 bytes, no implicit padding. */
struct pvr_event {
	__u64 ts_ns; /* 0: bpf_ktime_get_ns() when the program ran */
	__u32 pid;   /* 8: process (tgid) */
	__u32 tid;   /* 12: thread */
	__u32 cpu;   /* 16: the CPU it ran on (the perf ring it went to) */
	__u32 cpu_seq; /* 20: this program's events sent from this CPU before this one (per-CPU order) */
};

/* Per-CPU counters in counters[0]: what each program sent and failed to send. */
struct pvr_counters {
	__u64 perf_sent;   /* bpf_perf_event_output succeeded */
	__u64 perf_failed; /* it failed: the CPU's perf ring was full (or no reader) */
	__u64 rb_sent;     /* bpf_ringbuf_reserve succeeded */
	__u64 rb_failed;   /* it failed: the ring buffer was full */
};

#endif
