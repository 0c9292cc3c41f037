// SPDX-License-Identifier: GPL-2.0
/* The compatibility suite's maps (test/compat.test.ts): one map of every
 * type a program can declare, all created by one load, and an XDP program
 * that uses the key-less ones (queue, stack, bloom filter, ring buffer) so
 * that a test run exercises them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAP(name, t, k, v, n)            \
	struct {                          \
		__uint(type, t);          \
		__uint(max_entries, n);   \
		__type(key, k);           \
		__type(value, v);         \
	} name SEC(".maps")

MAP(m_hash, BPF_MAP_TYPE_HASH, __u32, __u64, 16);
MAP(m_array, BPF_MAP_TYPE_ARRAY, __u32, __u64, 4);
MAP(m_percpu_hash, BPF_MAP_TYPE_PERCPU_HASH, __u32, __u64, 16);
MAP(m_percpu_array, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64, 4);
MAP(m_lru_hash, BPF_MAP_TYPE_LRU_HASH, __u32, __u64, 16);
MAP(m_lru_percpu_hash, BPF_MAP_TYPE_LRU_PERCPU_HASH, __u32, __u64, 16);
MAP(m_devmap, BPF_MAP_TYPE_DEVMAP, __u32, __u32, 4);
MAP(m_devmap_hash, BPF_MAP_TYPE_DEVMAP_HASH, __u32, __u32, 4);
MAP(m_cpumap, BPF_MAP_TYPE_CPUMAP, __u32, __u32, 1);
MAP(m_xskmap, BPF_MAP_TYPE_XSKMAP, __u32, __u32, 4);
MAP(m_sockmap, BPF_MAP_TYPE_SOCKMAP, __u32, __u64, 4);
MAP(m_sockhash, BPF_MAP_TYPE_SOCKHASH, __u32, __u64, 4);
MAP(m_reuseport, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, __u32, __u64, 4);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} m_prog_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
} m_perf_event_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16);
	__type(key, __u32);
	__uint(value_size, 127 * sizeof(__u64));
} m_stack_trace SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} m_cgroup_array SEC(".maps");

struct lpm_key { __u32 prefixlen; __u32 addr; };
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} m_lpm_trie SEC(".maps");

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } m_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} m_array_of_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} m_hash_of_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u32);
} m_queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u32);
} m_stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 16);
	__type(value, __u32);
	__uint(map_extra, 3);
} m_bloom_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} m_ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} m_user_ringbuf SEC(".maps");

#define LOCAL_STORAGE(name, t)                  \
	struct {                                 \
		__uint(type, t);                 \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, int);                \
		__type(value, __u64);            \
	} name SEC(".maps")
LOCAL_STORAGE(m_sk_storage, BPF_MAP_TYPE_SK_STORAGE);
LOCAL_STORAGE(m_inode_storage, BPF_MAP_TYPE_INODE_STORAGE);
LOCAL_STORAGE(m_task_storage, BPF_MAP_TYPE_TASK_STORAGE);
LOCAL_STORAGE(m_cgrp_storage, 32 /* BPF_MAP_TYPE_CGRP_STORAGE, Linux >= 6.2 */);

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, __u64);
} m_cgroup_storage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, __u64);
} m_percpu_cgroup_storage SEC(".maps");

/* Pushes 7 then 8 to the queue and the stack, adds 42 to the bloom
 * filter, sends 5 through the ring buffer. */
SEC("xdp")
int fill(struct xdp_md *ctx)
{
	__u32 a = 7, b = 8, c = 42, *r;

	bpf_map_push_elem(&m_queue, &a, 0);
	bpf_map_push_elem(&m_queue, &b, 0);
	bpf_map_push_elem(&m_stack, &a, 0);
	bpf_map_push_elem(&m_stack, &b, 0);
	bpf_map_push_elem(&m_bloom_filter, &c, 0);
	r = bpf_ringbuf_reserve(&m_ringbuf, sizeof(*r), 0);
	if (r) {
		*r = 5;
		bpf_ringbuf_submit(r, 0);
	}
	return XDP_PASS;
}

/* Returns queue pop * 1000 + stack pop * 10 + (42 in the bloom filter) +
 * (13 not in it ? 0 : 100): 7081 after one fill (the queue gives 7, the
 * stack 8). */
SEC("xdp")
int check(struct xdp_md *ctx)
{
	__u32 q = 0, s = 0, c = 42, d = 13;
	int ret = 0;

	bpf_map_pop_elem(&m_queue, &q);
	bpf_map_pop_elem(&m_stack, &s);
	ret = q * 1000 + s * 10;
	if (bpf_map_peek_elem(&m_bloom_filter, &c) == 0)
		ret += 1;
	if (bpf_map_peek_elem(&m_bloom_filter, &d) == 0)
		ret += 100;
	return ret;
}

/* Uses the cgroup storages (a map of that type needs a program using it). */
SEC("cgroup_skb/egress")
int use_storage(struct __sk_buff *skb)
{
	__u64 *v = bpf_get_local_storage(&m_cgroup_storage, 0);
	__u64 *p = bpf_get_local_storage(&m_percpu_cgroup_storage, 0);

	if (v)
		__sync_fetch_and_add(v, 1);
	if (p)
		*p += 1;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
