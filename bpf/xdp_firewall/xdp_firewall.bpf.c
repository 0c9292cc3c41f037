// SPDX-License-Identifier: GPL-2.0
/* xdp_firewall: count packets and bytes per IPv4 source, and drop the
 * sources a blocklist names, before the kernel allocates an sk_buff.
 *
 * - Rules come in two maps. host_rules (BPF_MAP_TYPE_HASH) holds single
 *   addresses (/32): one exact lookup. prefix_rules (BPF_MAP_TYPE_LPM_TRIE)
 *   holds CIDR prefixes: a lookup with prefixlen 32 returns the value of the
 *   LONGEST stored prefix containing the address, so an allowed /24 inside a
 *   blocked /16 lets its addresses through while the rest of the /16 drops.
 *   A /32 is longer than any prefix, so host_rules is asked first.
 * - An LPM trie must be created with BPF_F_NO_PREALLOC (nodes are allocated
 *   on insert); its key starts with a host-order prefix length and then the
 *   address bytes in network order (struct lpm_v4_key).
 * - src_stats is a BPF_MAP_TYPE_PERCPU_HASH: each CPU has its own copy of
 *   every value, so a plain `+=` is safe (no other CPU writes that copy)
 *   and no cache line bounces between CPUs. User space reads one value per
 *   CPU and sums them.
 * - Every header access is bounds-checked (common.h) before it is read. */
#include "common.h"
#include <linux/errno.h>
#include "xdp_firewall.h"

#define MAX_SOURCES 65536
#define MAX_HOSTS 65536
#define MAX_PREFIXES 131072

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_HOSTS);
	__type(key, __be32);         /* source address, network order */
	__type(value, __u32);        /* enum fw_action */
} host_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(max_entries, MAX_PREFIXES);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);        /* enum fw_action */
} prefix_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_SOURCES);
	__type(key, __be32);         /* source address, network order */
	__type(value, struct src_counter);
} src_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} fw_stats SEC(".maps");

static __always_inline void count_reason(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&fw_stats, &reason);
	if (n)
		*n += 1; /* per-CPU: no other CPU touches this copy */
}

/* Adds one packet of `len` bytes (dropped or not) to its source's counter. */
static __always_inline void count_source(__be32 src, __u64 len, int dropped)
{
	struct src_counter *c = bpf_map_lookup_elem(&src_stats, &src);
	if (!c) {
		struct src_counter zero = {};
		/* The first packet of a source inserts a zeroed counter. The key
		 * is shared by all CPUs (only the values are per CPU), so two CPUs
		 * can race to insert it: the loser gets -EEXIST and then finds
		 * the winner's entry, whose copy for this CPU is zero. */
		int err = bpf_map_update_elem(&src_stats, &src, &zero, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			count_reason(FW_UNTRACKED); /* map full */
			return;
		}
		c = bpf_map_lookup_elem(&src_stats, &src);
		if (!c)
			return;
	}
	c->packets += 1;
	c->bytes += len;
	if (dropped) {
		c->dropped += 1;
		c->dropped_bytes += len;
	}
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth) {
		count_reason(FW_PASS_NOT_IPV4);
		return XDP_PASS;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		count_reason(FW_PASS_NOT_IPV4);
		return XDP_PASS;
	}
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip || ip->version != 4) {
		count_reason(FW_PASS_MALFORMED);
		return XDP_PASS;
	}

	__be32 src = ip->saddr;
	__u32 action = 0, reason = FW_PASS_NO_RULE;
	__u32 *rule = bpf_map_lookup_elem(&host_rules, &src);
	if (rule) {
		action = *rule;
		reason = action == FW_DROP ? FW_DROP_HOST : FW_PASS_HOST;
	} else {
		struct lpm_v4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.data, &src, sizeof(key.data));
		rule = bpf_map_lookup_elem(&prefix_rules, &key);
		if (rule) {
			action = *rule;
			reason = action == FW_DROP ? FW_DROP_PREFIX : FW_PASS_PREFIX;
		}
	}
	int drop = action == FW_DROP;
	count_source(src, len, drop);
	count_reason(reason);
	return drop ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
