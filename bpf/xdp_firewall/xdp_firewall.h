/* xdp_firewall: the structs and numbers the kernel program and user space
 * share. src/lessons/xdp_firewall.ts mirrors them byte for byte (checked
 * against this object's BTF by test/layouts.test.ts). */
#ifndef XDP_FIREWALL_H
#define XDP_FIREWALL_H

#include <linux/types.h>

/* The key of an IPv4 LPM trie: the layout the kernel expects of any
 * BPF_MAP_TYPE_LPM_TRIE key (struct bpf_lpm_trie_key: a prefix length, then
 * the data it applies to). prefixlen is in host byte order; data is the
 * address in network byte order, as it sits in the packet. A lookup with
 * prefixlen 32 finds the longest stored prefix that contains data. */
struct lpm_v4_key {
	__u32 prefixlen;  /* 0-32 */
	__u8 data[4];     /* the network address, host bits zero */
};                        /* 8 bytes */

/* What a rule does with a source's packets: the value of both rule maps.
 * The numbers are the XDP verdicts they turn into. */
enum fw_action {
	FW_DROP = 1,      /* XDP_DROP */
	FW_ALLOW = 2,     /* XDP_PASS */
};

/* What one source sent (src_stats, one per CPU). */
struct src_counter {
	__u64 packets;    /* every IPv4 packet from this source */
	__u64 bytes;      /* their frame lengths (Ethernet header included) */
	__u64 dropped;    /* of those, dropped by a rule */
	__u64 dropped_bytes;
};                        /* 32 bytes */

/* Why a packet went where it went: the index of fw_stats (one counter per
 * CPU per reason). Mirrored by FW_REASONS in the TS module. */
enum fw_reason {
	FW_PASS_NO_RULE = 0,    /* IPv4, no rule matches its source */
	FW_PASS_HOST,           /* a /32 allow rule (host_rules) */
	FW_PASS_PREFIX,         /* an allow prefix (prefix_rules) was the longest match */
	FW_DROP_HOST,           /* a /32 drop rule (host_rules) */
	FW_DROP_PREFIX,         /* a drop prefix (prefix_rules) was the longest match */
	FW_PASS_NOT_IPV4,       /* ARP, IPv6, ...: not filtered */
	FW_PASS_MALFORMED,      /* IPv4 ethertype, truncated or bad header */
	FW_UNTRACKED,           /* src_stats was full: this new source went uncounted */
	FW_REASON_COUNT,
};

#endif
