// SPDX-License-Identifier: GPL-2.0
/* ping_blocker: an XDP program that reports every ICMP packet to user space
 * through a ring buffer, and drops those from or to an address in the
 * ping_hash blocklist, which user space edits while it runs.
 *
 * Parse Ethernet, IPv4 (ihl * 4 bytes of header: options included), then
 * the ICMP header that follows the options. Look both addresses up in the
 * blocklist, decide, then copy the event into the ring with
 * bpf_ringbuf_output(BPF_RB_FORCE_WAKEUP), so the reader wakes up at once
 * for every ping. The event says whether the packet was dropped; when the
 * ring has no room, a per-CPU counter says so. */
#include "common.h"
#include "ping_blocker.h"

/* The blocklist: an IPv4 address (network order) -> the number of ICMP
 * packets it caused to be dropped (user space writes 0). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} ping_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ping_counters);
} counters SEC(".maps");

/* Makes clang emit struct ping_event into the BTF (a ring buffer has no
 * value type), where test/layouts.test.ts checks the TypeScript mirror. */
struct ping_event *unused_ping_event __attribute__((unused));

/* The first 8 bytes of an ICMP message, as <linux/icmp.h>'s struct icmphdr
 * has them (that header drags in libc's headers, which a BPF build lacks). */
struct icmp_head {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;       /* echo request and reply */
	__be16 sequence; /* idem */
};
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

SEC("xdp")
int ping_blocker(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return XDP_PASS;
	struct iphdr *ip = parse_ipv4(eth, data_end);
	if (!ip || ip->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	struct ping_counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return XDP_PASS;
	cnt->icmp++;

	struct ping_event ev = {};
	ev.ts_ns = bpf_ktime_get_ns();
	ev.saddr = ip->saddr;
	ev.daddr = ip->daddr;

	/* The ICMP header starts after the options, ihl * 4 bytes in; only
	 * the first fragment carries it. */
	struct icmp_head *icmp = ipv4_l4(ip);
	if (!(ip->frag_off & bpf_htons(0x1fff)) && (void *)(icmp + 1) <= data_end) {
		ev.type = icmp->type;
		ev.code = icmp->code;
		if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY) {
			ev.id = icmp->id;
			ev.seq = icmp->sequence;
		}
	} else {
		ev.flags |= PING_NO_HEADER;
	}

	int action = XDP_PASS;
	__u32 *hits = bpf_map_lookup_elem(&ping_hash, &ip->saddr);
	if (hits) {
		ev.flags |= PING_SRC_BLOCKED;
		__sync_fetch_and_add(hits, 1);
		action = XDP_DROP;
	}
	hits = bpf_map_lookup_elem(&ping_hash, &ip->daddr);
	if (hits) {
		ev.flags |= PING_DST_BLOCKED;
		if (action != XDP_DROP)
			__sync_fetch_and_add(hits, 1);
		action = XDP_DROP;
	}
	if (action == XDP_DROP) {
		ev.flags |= PING_DROPPED;
		cnt->dropped++;
	}

	/* A copy from the stack into the ring (reserve + submit in one
	 * call). It fails when the ring is full: count it, never silently. */
	if (bpf_ringbuf_output(&ringbuf, &ev, sizeof(ev), BPF_RB_FORCE_WAKEUP))
		cnt->lost++;
	else
		cnt->events++;
	return action;
}

char LICENSE[] SEC("license") = "GPL";
