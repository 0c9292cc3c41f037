// SPDX-License-Identifier: GPL-2.0
/* The TC marking program of seed 001 as printed there, kept only so that
 * test/tc_dscp.test.ts can show what it does to real packets: it writes
 * 0xB8 over the whole TOS byte (ECN bits lost) and leaves the IPv4 header
 * checksum as it was, so the receiving kernel drops every marked packet.
 * (It also parses without checking that the frame is IPv4 or that the
 * packet is not a fragment.) Not a lesson: see bpf/tc_dscp for the fix. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int mark_voip(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	void *data = (void *)(long)skb->data;
	struct iphdr *iph = data + sizeof(struct ethhdr);
	if ((__u8 *)iph + sizeof(*iph) > (__u8 *)data_end)
		return TC_ACT_OK;
	struct udphdr *udp = (void *)iph + iph->ihl * 4;
	if ((__u8 *)udp + sizeof(*udp) > (__u8 *)data_end)
		return TC_ACT_OK;
	/* Mark SIP (UDP 5060) and RTP (ports 10000-20000) for EF DSCP */
	__u16 dport = bpf_ntohs(udp->dest);
	if (iph->protocol == IPPROTO_UDP && (dport == 5060 || (dport >= 10000 && dport <= 20000))) {
		bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest) + sizeof(struct ethhdr) + 1,
				    &(__u8){0xB8}, 1, 0); /* DSCP EF = 46 << 2 */
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
