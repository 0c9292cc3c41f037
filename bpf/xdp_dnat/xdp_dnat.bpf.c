// SPDX-License-Identifier: GPL-2.0
/* xdp_dnat: a service load balancer (destination NAT), the kernel side of a
 * Kubernetes ClusterIP service without iptables: many backends per service
 * picked by Maglev consistent hashing, connection tracking, reverse
 * translation of replies from the connection entries.
 *
 * Forward path, XDP on the interface clients reach the VIPs through:
 *   parse Ethernet / IPv4 (options too) / TCP or UDP.
 *   - Flow cache: the flow's slot in this CPU's part of flow_cache (an
 *     array indexed by the flow hash; one cache line: the flow, its backend,
 *     egress interface, MACs, MTU). It is used when it holds this flow, was
 *     filled at the current lb_globals.epoch (user space changes it after
 *     every write to services, backends or conntrack, and after route or
 *     neighbour changes) less than FLOW_CACHE_GRAIN jiffies ago, and the
 *     packet is not a TCP SYN, FIN or RST, fits the MTU and has TTL > 1:
 *     then rewrite and forward, reading no other table. Otherwise the full
 *     path below, which fills the slot again (so every flow still passes
 *     through conntrack at least once per grain per CPU: last_seen, LRU
 *     and timeouts keep working). A closing connection is not cached.
 *     A hit forwarded with bpf_redirect is counted in the slot itself
 *     (pending packets and bytes), not in service_hits and dnat_stats: no
 *     other cache line. The full path, before it refills a slot, moves the
 *     slot's pending counts into service_hits[slot's service] and
 *     dnat_stats' redirect (lines it touches anyway); readers add what is
 *     still pending (src/lb/dataplane.ts readFlowCachePending).
 *   Full path: look the flow up in conntrack (LRU hash, key: the 5-tuple as
 *   the client sent it).
 *   - Established: the entry names the backend (id, address, port). It is
 *     used while backend_map[id] is still active with the same address and
 *     port and the entry has not idled past its timeout; otherwise the flow
 *     is picked again as a new one (only flows whose backend went away move).
 *   - New: service_map (VIP, port, proto) -> service id; a hash of the
 *     5-tuple picks a slot of the service's Maglev table (maglev_map) ->
 *     backend id -> backend_map. The entry is written to conntrack, and its
 *     reverse (backend -> client: VIP and port) to conntrack_rev.
 *   Then: rewrite destination address and port, fixing the IP and TCP/UDP
 *   checksums incrementally (RFC 1624), and forward: the entry caches what
 *   bpf_fib_lookup said (egress interface, MACs, MTU), so an established
 *   flow skips the route and neighbour lookup; the cache is refilled when
 *   it is older than fib_refresh_ns (the entry keeps the time it expires,
 *   so a hit reads no setting) or when user space bumps
 *   lb_globals.fib_generation (routes or neighbours changed). Known next
 *   hop: decrement the TTL, set the MACs, bpf_redirect() (XDP_TX when it is
 *   the same interface). Next hop not resolved yet, no forwarding route, or
 *   a packet bigger than the egress MTU: the rewritten packet goes to the
 *   stack, which forwards it (resolving ARP, segmenting, answering ICMP).
 *
 * Return path, TC egress on the same interface (tc_dnat_reply):
 *   a reply carries backend -> client; conntrack_rev gives the VIP and port
 *   the client used, so one backend address:port may serve several
 *   services. The source is rewritten with bpf_l3/l4_csum_replace, which
 *   also handle partial checksums (CHECKSUM_PARTIAL) of local packets.
 *
 * Timeouts: an entry idle longer than tcp_timeout_ns / udp_timeout_ns, or
 * closing_timeout_ns once a FIN or RST went through it (either way), is
 * treated as absent: the next packet picks again (through Maglev: the same
 * backend while the service's table did not change). LRU eviction keeps the
 * table at its size (set by the loader).
 *
 * Everything else (misses, fragments, other protocols, truncated or
 * malformed packets) passes untouched. Every packet is counted once per
 * verdict in dnat_stats (per-CPU), with events about connections after the
 * verdicts; every hit per service in service_hits (per-CPU, by service id);
 * a flow cache hit's redirect and service hit wait in its slot first (above).
 *
 * A limit of XDP: it cannot see an skb's checksum state. Packets from the
 * wire carry complete checksums, which is what the arithmetic below
 * assumes. Packets sent by local sockets (a container behind a veth, in skb
 * mode) may carry a partial one; veth passes those on and receivers trust
 * them, so the lab works, but if the kernel completed such a packet after
 * this rewrite the checksum would be wrong. The TC program has skb helpers
 * and gets both kinds right. */
#include "common.h"
#include <linux/pkt_cls.h>
#include <stddef.h>
#include "xdp_dnat.h"

#define AF_INET 2
#define CSUM_MANGLED_0 ((__sum16)0xffff)
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
/* last_seen is written at most this often per entry (ns, ~67 ms): idle
 * timeouts are seconds, and a write per packet would bounce the entry's
 * cache line between CPUs. */
#define LAST_SEEN_GRAIN (1ULL << 26)

/* Set by the loader before load (its options). */
const volatile __u64 tcp_timeout_ns = 3600ULL * 1000000000ULL;
const volatile __u64 udp_timeout_ns = 60ULL * 1000000000ULL;
const volatile __u64 closing_timeout_ns = 10ULL * 1000000000ULL;
const volatile __u64 fib_refresh_ns = 1000ULL * 1000000ULL;

/* Sizes: the loader sets max_entries before load (--max-services,
 * --max-backends, --conntrack-size). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct service_key);
	__type(value, struct service_info);
} service_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct backend);
} backend_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct maglev_table);
} maglev_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct service_counter);
} service_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct conn_entry);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct conn_rev);
} conntrack_rev SEC(".maps");

/* struct lb_globals (xdp_dnat.h) in slot 0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_globals);
} lb_globals SEC(".maps");

/* The flow cache (xdp_dnat.h): pinned with the state as flow_cache_v1 (its
 * layout version: see src/lb/dataplane.ts FLOW_CACHE_PIN) and adopted with
 * it, pending counts and all; without pins a new instance starts empty. The
 * loader sets max_entries to FLOW_CACHE_SLOTS x the possible CPUs; a CPU
 * beyond them finds no slot and takes the full path. A plain ARRAY sliced
 * by CPU rather than a PERCPU_ARRAY: its lookup is an address computation
 * into one memory block, with no per-element pointer to load first. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_cache_slot);
} flow_cache SEC(".maps");

/* One value per CPU holding every counter: the few a packet bumps share
 * its cache lines (one slot per reason would give each its own). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dnat_counters);
} dnat_stats SEC(".maps");

/* Per-CPU counters: only this CPU writes its slot, no atomics needed. */
static __always_inline void count(__u32 reason)
{
	__u32 zero = 0;
	struct dnat_counters *c = bpf_map_lookup_elem(&dnat_stats, &zero);
	if (c && reason < DNAT_REASON_COUNT)
		c->n[reason] += 1;
}

static __always_inline void count_hit(__u32 service_id, __u64 bytes)
{
	struct service_counter *c = bpf_map_lookup_elem(&service_hits, &service_id);
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}

/* Moves a flow cache slot's pending hits into service_hits and dnat_stats
 * (the full path, before it refills the slot). */
static __always_inline void flush_slot(struct flow_cache_slot *slot)
{
	__u32 n = slot->pending_packets;
	if (!n)
		return;
	__u32 sid = slot->service_id, zero = 0;
	struct service_counter *h = bpf_map_lookup_elem(&service_hits, &sid);
	if (h) {
		h->packets += n;
		h->bytes += slot->pending_bytes;
	}
	struct dnat_counters *c = bpf_map_lookup_elem(&dnat_stats, &zero);
	if (c)
		c->n[DNAT_REDIRECT] += n;
	slot->pending_packets = 0;
	slot->pending_bytes = 0;
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

/* The flow hash that picks a Maglev slot: Bob Jenkins' lookup3 mixing of
 * the three words of the 5-tuple (addresses, ports; the protocol in the
 * initial value), so nearby addresses and ports spread over every slot. */
static __always_inline __u32 rol32(__u32 w, __u32 s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport, __u8 proto)
{
	__u32 a, b, c;
	a = b = c = 0xdeadbeef + 12 + proto;
	a += saddr;
	b += daddr;
	c += ((__u32)sport << 16) | dport;
	/* final(a, b, c) */
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

/* The parts of a whole TCP/UDP datagram the programs touch. */
struct l4_view {
	struct iphdr *ip;
	__be16 *ports;   /* [0]: source, [1]: destination */
	__sum16 *check;  /* the TCP or UDP checksum */
	__u32 l4_off;    /* offset of the TCP/UDP header in the frame */
	__u8 tcp_flags;  /* 0 for UDP */
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
		v->tcp_flags = ((__u8 *)tcp)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end || tot < ihl + sizeof(*udp))
			return DNAT_PASS_MALFORMED;
		v->check = &udp->check;
		v->tcp_flags = 0;
	} else {
		return DNAT_PASS_OTHER_PROTO;
	}
	v->ip = ip;
	v->ports = l4;
	v->l4_off = sizeof(*eth) + ihl;
	return -1;
}

/* Is this entry still the flow's? Its backend slot must hold the same
 * backend, and it must not have idled past its timeout. */
static __always_inline int conn_usable(struct conn_entry *ce, __u8 proto, __u8 tcp_flags, __u64 now)
{
	__u32 id = ce->backend_id;
	struct backend *be = bpf_map_lookup_elem(&backend_map, &id);
	if (!be || !(be->flags & BACKEND_F_ACTIVE) || be->ip != ce->backend_ip || be->port != ce->backend_port) {
		count(DNAT_CONN_RESELECT);
		return 0;
	}
	/* A SYN alone on a closed connection is a new connection reusing the ports. */
	int reopened = (ce->flags & CONN_F_CLOSING) && (tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	/* An entry seen within LAST_SEEN_GRAIN cannot have idled past a timeout
	 * (whole seconds): the timeouts (.rodata, one more cache line) are read
	 * only for an entry idle longer than that. */
	__u64 idle = now - ce->last_seen;
	if (idle > LAST_SEEN_GRAIN) {
		__u64 timeout = (ce->flags & CONN_F_CLOSING) ? closing_timeout_ns
				: proto == IPPROTO_TCP ? tcp_timeout_ns : udp_timeout_ns;
		if (idle > timeout)
			reopened = 1;
	}
	if (reopened) {
		count(DNAT_CONN_EXPIRED);
		return 0;
	}
	return 1;
}

/* Does the slot hold this flow? Its first 16 bytes are a struct flow_key:
 * two 8-byte compares (pads zero). */
static __always_inline int slot_holds(const struct flow_cache_slot *slot, const struct flow_key *fk)
{
	const __u64 *x = (const void *)slot, *y = (const void *)fk;
	return x[0] == y[0] && x[1] == y[1];
}

/* Rewrites the destination to new_ip:new_port, fixing the checksums. */
static __always_inline void rewrite_dst(struct l4_view *v, __u8 proto, __be32 new_ip, __be16 new_port)
{
	struct iphdr *ip = v->ip;
	/* A UDP checksum of zero means "no checksum": it stays zero; a computed
	 * zero is sent as 0xffff (RFC 768). */
	if (proto == IPPROTO_TCP || *v->check != 0) {
		__sum16 c = csum_update(*v->check, ip->daddr, new_ip, v->ports[1], new_port);
		if (proto == IPPROTO_UDP && c == 0)
			c = CSUM_MANGLED_0;
		*v->check = c;
	}
	ip->check = csum_update(ip->check, ip->daddr, new_ip, 0, 0);
	ip->daddr = new_ip;
	v->ports[1] = new_port;
}

/* Forwarding ourselves, what the stack would do: TTL (the caller checked
 * it is above 1) and its checksum, the MACs, then out the egress
 * interface, or back out the ingress one with XDP_TX. */
static __always_inline void set_l2(void *data, struct iphdr *ip, const __u8 *dmac, const __u8 *smac)
{
	__be16 old_ttl_word = *(__be16 *)&ip->ttl; /* ttl and protocol */
	ip->ttl -= 1;
	ip->check = csum_update(ip->check, 0, 0, old_ttl_word, *(__be16 *)&ip->ttl);

	struct ethhdr *eth = data; /* parse_l4 checked its bounds */
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
}

static __always_inline int forward(struct xdp_md *ctx, void *data, struct iphdr *ip, const __u8 *dmac, const __u8 *smac, __u32 out)
{
	set_l2(data, ip, dmac, smac);
	if (out == ctx->ingress_ifindex) {
		count(DNAT_TX);
		return XDP_TX;
	}
	count(DNAT_REDIRECT);
	return bpf_redirect(out, 0);
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
	__u8 proto = ip->protocol;

	/* Keys on the stack, zeroed first: pads are hashed too, and map
	 * helpers take stack pointers, never packet pointers. */
	struct flow_key fk = {};
	fk.saddr = ip->saddr;
	fk.daddr = ip->daddr;
	fk.sport = v.ports[0];
	fk.dport = v.ports[1];
	fk.proto = proto;

	/* The epoch first: a slot filled below carries the epoch read before
	 * the maps it was filled from, so a change user space makes meanwhile
	 * (maps first, then the epoch) cannot hide behind it. */
	__u32 zero = 0;
	struct lb_globals *g = bpf_map_lookup_elem(&lb_globals, &zero);
	__u32 gen = g ? g->fib_generation : 0;
	__u32 epoch = g ? g->epoch : 0;
	__u64 jiffies = bpf_jiffies64(); /* inlined: one load */
	__u32 h = flow_hash(fk.saddr, fk.daddr, fk.sport, fk.dport, proto);
	__u16 tot_len = bpf_ntohs(ip->tot_len);

	/* The flow cache: a hit forwards with what the slot holds. TCP SYN,
	 * FIN and RST always take the full path (they open and close
	 * connections), and so does every flow at least once per
	 * FLOW_CACHE_GRAIN per CPU (conntrack's last_seen, LRU and timeouts). */
	__u32 idx = (bpf_get_smp_processor_id() << FLOW_CACHE_BITS) | (h & (FLOW_CACHE_SLOTS - 1));
	struct flow_cache_slot *slot = bpf_map_lookup_elem(&flow_cache, &idx);
	int ctl = v.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST);
	if (__builtin_expect(slot && !ctl && slot->epoch == epoch && slot_holds(slot, &fk) &&
			     jiffies - slot->validated < FLOW_CACHE_GRAIN && tot_len <= slot->mtu && ip->ttl > 1, 1)) {
		__u32 out = slot->ifindex;
		rewrite_dst(&v, proto, slot->backend_ip, slot->backend_port);
		if (__builtin_expect(out != ctx->ingress_ifindex, 1)) {
			/* Counted in the slot: no other cache line to touch. */
			slot->pending_packets += 1;
			slot->pending_bytes += tot_len;
			set_l2(data, ip, slot->dmac, slot->smac);
			return bpf_redirect(out, 0);
		}
		count_hit(slot->service_id, tot_len);
		return forward(ctx, data, ip, slot->dmac, slot->smac, out);
	}

	/* A FIN or RST takes the flow out of its slot (a closing connection
	 * is not cached: the full path applies its short timeout). */
	if (slot && ctl && slot_holds(slot, &fk))
		slot->validated = 0;

	__u64 now = bpf_ktime_get_coarse_ns();
	struct conn_entry fresh;
	struct conn_entry *ce = bpf_map_lookup_elem(&conntrack, &fk);
	if (ce && !conn_usable(ce, proto, v.tcp_flags, now))
		ce = NULL;
	int is_new = !ce;
	if (is_new) {
		struct service_key key = {};
		key.vip = fk.daddr;
		key.port = fk.dport;
		key.proto = proto;
		struct service_info *svc = bpf_map_lookup_elem(&service_map, &key);
		if (!svc) {
			count(DNAT_PASS_MISS);
			return XDP_PASS;
		}
		__u32 sid = svc->id;
		struct maglev_table *mt = svc->backend_count ? bpf_map_lookup_elem(&maglev_map, &sid) : NULL;
		if (!mt) {
			count(DNAT_PASS_NO_BACKEND);
			return XDP_PASS;
		}
		/* hash * size / 2^32: a slot in [0, size) (Lemire's reduction: a
		 * multiply instead of a division, and bounds the verifier sees). */
		__u32 mslot = ((__u64)h * LB_MAGLEV_SIZE) >> 32;
		/* The verifier bounds the product loosely: say it once more,
		 * out of the compiler's sight (it would drop the check). */
		asm volatile("" : "+r"(mslot));
		if (mslot >= LB_MAGLEV_SIZE)
			mslot = 0;
		__u32 bid = mt->backend_id[mslot];
		struct backend *be = bid ? bpf_map_lookup_elem(&backend_map, &bid) : NULL;
		if (!be || !(be->flags & BACKEND_F_ACTIVE)) {
			count(DNAT_PASS_NO_BACKEND);
			return XDP_PASS;
		}
		__builtin_memset(&fresh, 0, sizeof(fresh));
		fresh.backend_id = bid;
		fresh.backend_ip = be->ip;
		fresh.backend_port = be->port;
		fresh.service_id = sid;
		fresh.last_seen = now;
		ce = &fresh;
	} else if (now - ce->last_seen > LAST_SEEN_GRAIN) {
		ce->last_seen = now;
	}
	if (proto == IPPROTO_TCP && (v.tcp_flags & (TCP_FIN | TCP_RST)) && !(ce->flags & CONN_F_CLOSING))
		ce->flags |= CONN_F_CLOSING;

	count_hit(ce->service_id, tot_len);
	__be32 new_ip = ce->backend_ip;
	__be16 new_port = ce->backend_port;
	rewrite_dst(&v, proto, new_ip, new_port);

	/* Where is the backend? The entry's cache, or the kernel's routing
	 * table and neighbour cache. */
	int cached = ce->fib_gen == gen && now < ce->fib_until;
	if (!cached) {
		count(DNAT_FIB_REFRESH);
		struct bpf_fib_lookup fib = {};
		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = proto;
		fib.sport = v.ports[0];
		fib.dport = new_port;
		fib.tot_len = tot_len;
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = new_ip;
		fib.ifindex = ctx->ingress_ifindex;

		/* BPF_FIB_LOOKUP_SKIP_NEIGH is not used: the MACs are what we cache. */
		long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		ce->fib_until = 0;
		if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
			ce->ifindex = fib.ifindex;
			__builtin_memcpy(ce->dmac, fib.dmac, ETH_ALEN);
			__builtin_memcpy(ce->smac, fib.smac, ETH_ALEN);
			/* The path's MTU, for the packets that follow: on success
			 * the kernel reports none, so ask again as if the packet
			 * were 64 KiB: the answer is FRAG_NEEDED with the MTU. */
			struct bpf_fib_lookup probe = {};
			probe.family = AF_INET;
			probe.tos = ip->tos;
			probe.l4_protocol = proto;
			probe.sport = v.ports[0];
			probe.dport = new_port;
			probe.tot_len = 0xffff;
			probe.ipv4_src = ip->saddr;
			probe.ipv4_dst = new_ip;
			probe.ifindex = ctx->ingress_ifindex;
			long prc = bpf_fib_lookup(ctx, &probe, sizeof(probe), 0);
			ce->mtu = prc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? probe.mtu_result : 0xffff;
			ce->fib_gen = gen;
			ce->fib_until = now + fib_refresh_ns;
		}
		/* (Re)write the reverse entry at every lookup: a new flow's
		 * first, and again at each refresh in case LRU pressure
		 * evicted it. */
		struct flow_key rk = {};
		rk.saddr = new_ip;
		rk.daddr = fk.saddr;
		rk.sport = new_port;
		rk.dport = fk.sport;
		rk.proto = proto;
		struct conn_rev rv = { .vip = fk.daddr, .vport = fk.dport };
		bpf_map_update_elem(&conntrack_rev, &rk, &rv, BPF_ANY);
		if (is_new) {
			count(DNAT_CONN_NEW);
			if (bpf_map_update_elem(&conntrack, &fk, &fresh, BPF_ANY)) {
				count(DNAT_CONN_FULL);
				is_new = -1; /* no entry: nothing to cache */
			}
		}
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
	} else {
		if (tot_len > ce->mtu) {
			count(DNAT_PASS_MTU);
			return XDP_PASS;
		}
	}
	if (ip->ttl <= 1) {
		count(DNAT_PASS_TTL);
		return XDP_PASS;
	}
	/* Remember it for the flow's next packets on this CPU: a connection
	 * with an entry and a forwarding path, not closing. */
	if (slot && is_new >= 0 && !(ce->flags & CONN_F_CLOSING)) {
		flush_slot(slot);
		__builtin_memcpy(slot, &fk, sizeof(fk));
		slot->backend_ip = new_ip;
		slot->backend_port = new_port;
		slot->mtu = ce->mtu;
		slot->epoch = epoch;
		slot->ifindex = ce->ifindex;
		slot->validated = jiffies;
		__builtin_memcpy(slot->dmac, ce->dmac, ETH_ALEN);
		__builtin_memcpy(slot->smac, ce->smac, ETH_ALEN);
		slot->service_id = ce->service_id;
	}
	return forward(ctx, data, ip, ce->dmac, ce->smac, ce->ifindex);
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

	struct flow_key rk = {};
	rk.saddr = v.ip->saddr;
	rk.daddr = v.ip->daddr;
	rk.sport = v.ports[0];
	rk.dport = v.ports[1];
	rk.proto = v.ip->protocol;
	__u8 tcp_flags = v.tcp_flags;
	struct conn_rev *rv = bpf_map_lookup_elem(&conntrack_rev, &rk);
	if (!rv) {
		count(DNAT_REPLY_NO_CONN);
		return TC_ACT_OK;
	}
	__be32 old_ip = rk.saddr, new_ip = rv->vip;
	__be16 old_port = rk.sport, new_port = rv->vport;

	/* A FIN or RST from the backend closes the connection too. */
	if (rk.proto == IPPROTO_TCP && (tcp_flags & (TCP_FIN | TCP_RST))) {
		struct flow_key fk = {};
		fk.saddr = rk.daddr;
		fk.daddr = new_ip;
		fk.sport = rk.dport;
		fk.dport = new_port;
		fk.proto = rk.proto;
		struct conn_entry *ce = bpf_map_lookup_elem(&conntrack, &fk);
		if (ce)
			ce->flags |= CONN_F_CLOSING;
	}

	__u32 check_off = v.l4_off + (rk.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
							      : offsetof(struct udphdr, check));
	/* BPF_F_MARK_MANGLED_0: a zero UDP checksum stays zero, a computed
	 * zero becomes 0xffff. BPF_F_PSEUDO_HDR: the address is in the
	 * pseudo-header (this is what keeps partial checksums right). */
	__u64 mm0 = rk.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	bpf_l4_csum_replace(skb, check_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | mm0 | sizeof(new_ip));
	bpf_l4_csum_replace(skb, check_off, old_port, new_port, mm0 | sizeof(new_port));
	bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, check), old_ip, new_ip, sizeof(new_ip));
	bpf_skb_store_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, saddr), &new_ip, sizeof(new_ip), 0);
	bpf_skb_store_bytes(skb, v.l4_off, &new_port, sizeof(new_port), 0);
	count(DNAT_REPLY_REWRITTEN);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
