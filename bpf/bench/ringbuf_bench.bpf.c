// SPDX-License-Identifier: GPL-2.0
/* Ring buffer producer for the reader's tests and benchmarks, driven by
 * BPF_PROG_TEST_RUN: every run of `produce` reserves one record in `rb`,
 * writes the next sequence number into it and submits it (or discards it,
 * every discard_every-th sequence number), and counts in `counters` what it
 * submitted, discarded, and could not reserve because the ring was full.
 *
 * Records (little-endian host order):
 *   struct bench_record: u64 seq @0, u32 value @8 (= seq * 3, truncated), u32 size @12
 *   struct bench_big: a bench_record, 80 bytes, then u64 tail @96 (= seq ^ TAIL_MAGIC)
 * Every big_every-th sequence number is a bench_big (104 bytes), so records
 * of two sizes straddle the end of the ring and the reader must read them
 * through the double mapping.
 *
 * One producer at a time: next_seq is not incremented atomically (clang's
 * default BPF CPU has no fetch-and-add that returns the old value). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TAIL_MAGIC 0x5a5aa5a5deadbeefULL

struct bench_record {
	__u64 seq;
	__u32 value;
	__u32 size;
};

struct bench_big {
	struct bench_record h;
	__u8 filler[80];
	__u64 tail;
};

struct bench_counters {
	__u64 next_seq;
	__u64 submitted;
	__u64 discarded;
	__u64 failed;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_counters);
} counters SEC(".maps");

/* 0: never. */
const volatile __u32 discard_every = 0;
const volatile __u32 big_every = 0;

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_counters *c = bpf_map_lookup_elem(&counters, &zero);
	if (!c)
		return XDP_PASS;
	__u64 seq = c->next_seq;
	c->next_seq = seq + 1;
	int discard = discard_every && seq % discard_every == 0;

	if (big_every && seq % big_every == 0) {
		struct bench_big *b = bpf_ringbuf_reserve(&rb, sizeof(*b), 0);
		if (!b) {
			__sync_fetch_and_add(&c->failed, 1);
			return XDP_PASS;
		}
		b->h.seq = seq;
		b->h.value = (__u32)(seq * 3);
		b->h.size = sizeof(*b);
		b->tail = seq ^ TAIL_MAGIC;
		if (discard) {
			bpf_ringbuf_discard(b, 0);
			__sync_fetch_and_add(&c->discarded, 1);
		} else {
			bpf_ringbuf_submit(b, 0);
			__sync_fetch_and_add(&c->submitted, 1);
		}
		return XDP_PASS;
	}

	struct bench_record *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&c->failed, 1);
		return XDP_PASS;
	}
	r->seq = seq;
	r->value = (__u32)(seq * 3);
	r->size = sizeof(*r);
	if (discard) {
		bpf_ringbuf_discard(r, 0);
		__sync_fetch_and_add(&c->discarded, 1);
	} else {
		bpf_ringbuf_submit(r, 0);
		__sync_fetch_and_add(&c->submitted, 1);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
