// SPDX-License-Identifier: GPL-2.0
/* Test fixture for the BTF-typed codecs, globals and `bpfts map`/`gen types`:
 * one struct per BTF kind the codecs handle (ints of each size and sign,
 * _Bool, char[] strings, byte arrays, enums, bitfields, nested structs,
 * unions, anonymous members, 2-D arrays, pointers, floats, __be16/__be32
 * with address names), maps keyed and valued by them, a BPF_F_MMAPABLE
 * array, and .bss/.data/.rodata globals that count_globals updates. */
#include "common.h"

enum color { RED = 0, GREEN = 1, BLUE = 7 };
enum sign { NEG = -2, ZERO = 0, POS = 3 };

struct inner {
	__u16 a;
	__s16 b;
};

typedef __u32 my_u32;

struct kinds {
	__u8 u8v;
	__s8 s8v;
	__u16 u16v;
	__s16 s16v;
	__u32 u32v;
	__s32 s32v;
	__u64 u64v;
	__s64 s64v;
	_Bool flag;
	char name[11];
	__u8 bytes[4];
	enum color color;
	enum sign sign;
	unsigned int bf_a : 3;
	unsigned int bf_b : 7;
	int bf_c : 5;
	unsigned int : 0;
	unsigned long long bf_wide : 40;
	struct inner in;
	struct inner arr[2];
	__u16 grid[2][3];
	union {
		__u32 word;
		__u8 quad[4];
	};
	union {
		__u32 as_u32;
		__u16 as_u16[2];
	} un;
	void *ptr;
	float f32;
	double f64;
	my_u32 td;
	__be32 src_ip;
	__be32 daddr;
	__be32 seq;
	__be16 port;
	__u16 pad;
};

/* The conn_table example of `bpfts map dump`. */
struct conn_key {
	__be32 src_ip;
	__be32 dst_ip;
	__u8 proto;
	__u8 pad[3];
};

struct conn_val {
	__u64 packets;
	__u64 bytes;
};

struct ring_rec {
	__u32 pid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct kinds);
} kinds_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
} conn_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
} pcpu_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct conn_val);
} mm_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u64 packets = 0;
__u32 last_len = 0;
struct inner shape = {};
__u64 step = 1;
char label[8] = "hi";
enum color paint = GREEN;
const volatile __u32 verdict = XDP_PASS;
const volatile char banner[6] = "btf";

SEC("xdp")
int count_globals(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct conn_val *v = bpf_map_lookup_elem(&mm_array, &zero);
	packets += step;
	last_len = ctx->data_end - ctx->data;
	shape.a += 1;
	if (v)
		__sync_fetch_and_add(&v->packets, 1);
	struct ring_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (r) {
		r->pid = 1;
		bpf_ringbuf_submit(r, 0);
	}
	return verdict;
}

/* Ring records reach the BTF only through a global that names them. */
struct ring_rec *unused_ring_rec __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
