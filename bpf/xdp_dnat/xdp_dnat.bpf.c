// SPDX-License-Identifier: GPL-2.0
/* xdp_dnat: a service load balancer (destination NAT), the kernel side of a
 * Kubernetes ClusterIP service without iptables.
 *
 * Forward path, XDP on the interface clients reach the VIP through:
 *   parse Ethernet / IPv4 (options too) / TCP or UDP, look up
 *   (destination address, destination port, protocol) in service_map, and on
 *   a hit rewrite the destination to the backend's address and port, fixing
 *   the IP checksum and the TCP/UDP checksum incrementally (RFC 1624: the
 *   L4 checksum covers the pseudo-header, so the address change touches it
 *   too). Then ask the kernel's FIB where the backend is (bpf_fib_lookup):
 *   it gives the egress interface and both MAC addresses, so nothing about
 *   the machine is written in this file. Known next hop: decrement the TTL,
 *   set the MACs, bpf_redirect() (or XDP_TX when it is the same interface).
 *   Next hop not resolved yet (no ARP entry), no forwarding route, or a
 *   packet bigger than the egress MTU: pass the rewritten packet to the
 *   stack, which forwards it (resolving ARP, segmenting, or answering ICMP).
 *
 * Return path, TC egress on the same interface (tc_dnat_reply):
 *   replies carry the backend's address as source; the client expects the
 *   VIP. reverse_map (backend address, port, protocol -> service) gives it;
 *   the source is rewritten with bpf_l3/l4_csum_replace, which also handle
 *   the partial checksums (CHECKSUM_PARTIAL) of locally generated packets.
 *   User space keeps reverse_map in step with service_map.
 *
 * Everything else (misses, fragments, other protocols, truncated or
 * malformed packets) passes untouched. Every decision is counted per reason
 * in dnat_stats (per-CPU), every hit per service in service_hits (per-CPU).
 *
 * A limit of XDP: it cannot see an skb's checksum state. Packets from the
 * wire carry complete checksums, which is what the arithmetic below
 * assumes. Packets sent by local sockets (a container behind a veth, in skb
 * mode) may carry a partial one (CHECKSUM_PARTIAL: the field holds only the
 * pseudo-header sum, completed later by the NIC or the kernel); veth passes
 * those on and receivers trust them, so the lab works, but if the kernel
 * completed such a packet after this rewrite (e.g. leaving through a device
 * without checksum offload) the checksum would be wrong. The TC program
 * has skb helpers and gets both kinds right. */
#include "common.h"
#include <linux/pkt_cls.h>
#include <stddef.h>
#include "xdp_dnat.h"

#define AF_INET 2
#define MAX_SERVICES 1024
#define CSUM_MANGLED_0 ((__sum16)0xffff)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct service_key);
	__type(value, struct backend);
} service_map SEC(".maps");

/* Twice the services: user space writes a service's new reverse entry
 * before deleting the old one (so replies are never left without one), and
 * may change every backend in one batch. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_SERVICES);
	__type(key, struct backend_key);
	__type(value, struct service_key);
} reverse_map SEC(".maps");

/* Twice the services: user space deletes a service's counters with the
 * service, but a packet in flight can re-create them just after. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2 * MAX_SERVICES);
	__type(key, struct service_key);
	__type(value, struct service_counter);
} service_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DNAT_REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} dnat_stats SEC(".maps");

/* Per-CPU counters: only this CPU writes its slot, no atomics needed. */
static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&dnat_stats, &reason);
	if (c)
		*c += 1;
}

static __always_inline void count_hit(struct service_key *key, __u64 bytes)
{
	struct service_counter *c = bpf_map_lookup_elem(&service_hits, key);
	if (!c) {
		struct service_counter init = { .packets = 1, .bytes = bytes };
		if (bpf_map_update_elem(&service_hits, key, &init, BPF_NOEXIST) == 0)
			return;
		c = bpf_map_lookup_elem(&service_hits, key); /* another CPU created it */
		if (!c)
			return;
	}
	c->packets += 1;
	c->bytes += bytes;
}

/* One's complement sum folded to 16 bits. */
static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for a 32-bit field and a 16-bit
 * field changing together (either may be unchanged). One's complement sums
 * do not depend on byte order, so everything stays as it is in memory. */
static __always_inline __sum16 csum_update(__sum16 check, __be32 from32, __be32 to32,
					   __be16 from16, __be16 to16)
{
	__u32 s = (__u16)~check;
	s += (~from32 & 0xffff) + (~from32 >> 16);
	s += (to32 & 0xffff) + (to32 >> 16);
	s += (__u16)~from16 + (__u32)to16;
	return (__sum16)~csum_fold32(s);
}

/* The parts of a whole TCP/UDP datagram the programs touch. */
struct l4_view {
	struct iphdr *ip;
	__be16 *ports;   /* [0]: source, [1]: destination */
	__sum16 *check;  /* the TCP or UDP checksum */
	__u32 l4_off;    /* offset of the TCP/UDP header in the frame */
};

/* Fills `v` and returns -1 for a whole TCP or UDP datagram in an IPv4
 * frame; otherwise returns the reason to let it pass. `frame_len` is the
 * frame's full length (more than data_end - data for a non-linear skb). */
static __always_inline int parse_l4(void *data, void *data_end, __u32 frame_len, struct l4_view *v)
{
	struct ethhdr *eth = parse_eth(data, data_end);
	if (!eth)
		return DNAT_PASS_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return DNAT_PASS_NOT_IPV4;
	struct iphdr *ip = parse_ipv4(eth, data_end); /* bounds, ihl >= 5 */
	if (!ip || ip->version != 4)
		return DNAT_PASS_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < ihl || sizeof(*eth) + tot > frame_len)
		return DNAT_PASS_MALFORMED;
	if (ipv4_is_fragment(ip))
		return DNAT_PASS_FRAGMENT;
	void *l4 = (void *)ip + ihl;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end || tot < ihl + sizeof(*tcp))
			return DNAT_PASS_MALFORMED;
		v->check = &tcp->check;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end || tot < ihl + sizeof(*udp))
			return DNAT_PASS_MALFORMED;
		v->check = &udp->check;
	} else {
		return DNAT_PASS_OTHER_PROTO;
	}
	v->ip = ip;
	v->ports = l4;
	v->l4_off = sizeof(*eth) + ihl;
	return -1;
}

SEC("xdp")
int xdp_dnat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct l4_view v;

	int why = parse_l4(data, data_end, data_end - data, &v);
	if (why >= 0) {
		count(why);
		return XDP_PASS;
	}
	struct iphdr *ip = v.ip;

	/* The key on the stack, zeroed first: pad is hashed too, and map
	 * helpers take stack pointers, never packet pointers. */
	struct service_key key = {};
	key.vip = ip->daddr;
	key.port = v.ports[1];
	key.proto = ip->protocol;
	struct backend *be = bpf_map_lookup_elem(&service_map, &key);
	if (!be) {
		count(DNAT_PASS_MISS);
		return XDP_PASS;
	}
	count_hit(&key, bpf_ntohs(ip->tot_len));
	__be32 new_ip = be->ip;
	__be16 new_port = be->port;

	/* A UDP checksum of zero means "no checksum": it stays zero; a computed
	 * zero is sent as 0xffff (RFC 768). */
	if (ip->protocol == IPPROTO_TCP || *v.check != 0) {
		__sum16 c = csum_update(*v.check, ip->daddr, new_ip, v.ports[1], new_port);
		if (ip->protocol == IPPROTO_UDP && c == 0)
			c = CSUM_MANGLED_0;
		*v.check = c;
	}
	ip->check = csum_update(ip->check, ip->daddr, new_ip, 0, 0);
	ip->daddr = new_ip;
	v.ports[1] = new_port;

	/* Where is the backend? The kernel's routing table and neighbour cache
	 * answer, for whatever interfaces this machine has. */
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = v.ports[0];
	fib.dport = new_port;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = new_ip;
	fib.ifindex = ctx->ingress_ifindex;

	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(DNAT_PASS_NO_NEIGH);
		return XDP_PASS;
	}
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE) {
		count(DNAT_DROP_BLACKHOLE);
		return XDP_DROP;
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		count(DNAT_PASS_MTU);
		return XDP_PASS;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(DNAT_PASS_NOT_FWD);
		return XDP_PASS;
	}
	if (ip->ttl <= 1) {
		count(DNAT_PASS_TTL);
		return XDP_PASS;
	}
	/* Forwarding ourselves: what the stack would do, TTL first. */
	__be16 old_ttl_word = *(__be16 *)&ip->ttl; /* ttl and protocol */
	ip->ttl -= 1;
	ip->check = csum_update(ip->check, 0, 0, old_ttl_word, *(__be16 *)&ip->ttl);

	struct ethhdr *eth = data; /* parse_l4 checked its bounds */
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	if (fib.ifindex == ctx->ingress_ifindex) {
		count(DNAT_TX);
		return XDP_TX;
	}
	count(DNAT_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

SEC("tc")
int tc_dnat_reply(struct __sk_buff *skb)
{
	/* Headers are in the linear part almost always; pull them if not. */
	__u32 want = sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + want > data_end && skb->len > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	struct l4_view v;
	if (parse_l4(data, data_end, skb->len, &v) >= 0)
		return TC_ACT_OK;

	struct backend_key key = {};
	key.ip = v.ip->saddr;
	key.port = v.ports[0];
	key.proto = v.ip->protocol;
	struct service_key *svc = bpf_map_lookup_elem(&reverse_map, &key);
	if (!svc)
		return TC_ACT_OK;

	__be32 old_ip = key.ip, new_ip = svc->vip;
	__be16 old_port = key.port, new_port = svc->port;
	__u32 check_off = v.l4_off + (key.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							      : offsetof(struct udphdr, check));
	/* BPF_F_MARK_MANGLED_0: a zero UDP checksum stays zero, a computed
	 * zero becomes 0xffff. BPF_F_PSEUDO_HDR: the address is in the
	 * pseudo-header (this is what keeps partial checksums right). */
	__u64 mm0 = key.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	bpf_l4_csum_replace(skb, check_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | mm0 | sizeof(new_ip));
	bpf_l4_csum_replace(skb, check_off, old_port, new_port, mm0 | sizeof(new_port));
	bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, check), old_ip, new_ip, sizeof(new_ip));
	bpf_skb_store_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, saddr), &new_ip, sizeof(new_ip), 0);
	bpf_skb_store_bytes(skb, v.l4_off, &new_port, sizeof(new_port), 0);
	count(DNAT_REPLY_REWRITTEN);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
