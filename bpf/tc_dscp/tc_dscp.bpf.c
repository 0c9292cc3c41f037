// SPDX-License-Identifier: GPL-2.0
/* tc_dscp: a TC classifier that marks VoIP traffic for QoS. IPv4 UDP to the
 * SIP port (5060) and to the RTP range (10000-20000) gets DSCP EF (46,
 * "expedited forwarding"), so that routers and qdiscs that honour DSCP give
 * it priority. Ports and DSCP come from the config map (the loader fills
 * it); what happened to each packet is counted per CPU.
 *
 * The TOS byte (RFC 2474, RFC 3168) is two fields:
 *
 *      7   6   5   4   3   2   1   0
 *    +---+---+---+---+---+---+---+---+
 *    |         DSCP          |  ECN  |
 *    +---+---+---+---+---+---+---+---+
 *
 * Setting the DSCP means writing the top six bits and keeping the ECN bits
 * (ECN-capable transport, congestion experienced): tos = dscp << 2 | (tos & 3).
 * And the IPv4 header has a checksum over it: change a byte, fix the
 * checksum (bpf_l3_csum_replace, an incremental update, RFC 1624), or the
 * receiver drops the packet as corrupt.
 *
 * Why no skb->csum update: with CHECKSUM_COMPLETE (ingress on NICs that sum
 * the packet) skb->csum covers the IP header too, but the one's complement
 * sum of a header that includes its own checksum field is always the same
 * (0xffff), so changing the TOS and the checksum together leaves it valid.
 *
 * Runs at TC ingress or egress (SEC("tc"): a TCX link or a clsact filter,
 * the loader's choice). Always returns TC_ACT_OK: a marker never drops. */
#include "common.h"
#include <linux/pkt_cls.h>
#include <stddef.h>
#include "tc_dscp.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dscp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dscp_counters);
} counters SEC(".maps");

#define TOS_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, tos))
#define CHECK_OFF (sizeof(struct ethhdr) + offsetof(struct iphdr, check))
#define ECN_MASK 0x03

enum verdict { MARKED, ALREADY, UNMATCHED, SKIPPED };

static __always_inline int count(enum verdict v)
{
	__u32 zero = 0;
	struct dscp_counters *c = bpf_map_lookup_elem(&counters, &zero);
	if (c) {
		if (v == MARKED)
			c->marked += 1;
		else if (v == ALREADY)
			c->already += 1;
		else if (v == UNMATCHED)
			c->unmatched += 1;
		else
			c->skipped += 1;
	}
	return TC_ACT_OK;
}

static __always_inline int wanted(const struct dscp_config *cfg, __u16 dport)
{
	if (cfg->port && dport == cfg->port)
		return 1;
	return cfg->range_lo && dport >= cfg->range_lo && dport <= cfg->range_hi;
}

SEC("tc")
int tc_dscp(struct __sk_buff *skb)
{
	/* Headers are in the linear part almost always; pull them if not
	 * (at most Ethernet + a 60-byte IP header + UDP). */
	__u32 want = sizeof(struct ethhdr) + 60 + sizeof(struct udphdr);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + want > data_end && skb->len > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}

	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return count(SKIPPED);
	struct iphdr *ip = parse_ipv4(eth, data_end); /* bounds, 5 <= ihl, options inside */
	if (!ip || ip->version != 4)
		return count(SKIPPED);
	/* A later fragment has no UDP header (its first bytes are payload),
	 * and the first one alone would give one datagram two DSCPs. */
	if (ipv4_is_fragment(ip))
		return count(SKIPPED);
	if (ip->protocol != IPPROTO_UDP)
		return count(UNMATCHED);
	struct udphdr *udp = ipv4_l4(ip); /* honours ihl: options move it */
	if ((void *)(udp + 1) > data_end)
		return count(SKIPPED);

	__u32 zero = 0;
	struct dscp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !wanted(cfg, bpf_ntohs(udp->dest)))
		return count(UNMATCHED);

	__u8 old_tos = ip->tos;
	__u8 new_tos = (__u8)(cfg->dscp << 2) | (old_tos & ECN_MASK);
	if (new_tos == old_tos)
		return count(ALREADY);

	/* The checksum is over 16-bit words: the TOS is the low byte (in
	 * memory: the second) of the header's first word, next to version/ihl. */
	__be16 old_word = *(__be16 *)ip;
	__u8 w[2] = { *(__u8 *)ip, new_tos };
	__be16 new_word = *(__be16 *)w;
	/* Both helpers may move the packet: no packet pointer is used after. */
	if (bpf_l3_csum_replace(skb, CHECK_OFF, old_word, new_word, sizeof(new_word)) < 0)
		return count(SKIPPED);
	if (bpf_skb_store_bytes(skb, TOS_OFF, &new_tos, sizeof(new_tos), 0) < 0)
		return count(SKIPPED);
	return count(MARKED);
}

char LICENSE[] SEC("license") = "GPL";
