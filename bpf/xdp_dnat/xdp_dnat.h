/* xdp_dnat: the structs the kernel programs and user space share.
 * The TS side mirrors them byte for byte (checked against this object's BTF
 * by test/layouts.test.ts). The maps user space writes (service_map,
 * backend_map, maglev_map, service_hits) follow /work/wt/LB_CONTRACT.md;
 * the connection tracking maps are the data plane's own.
 *
 * Every key is hashed over all of its bytes, so the padding is spelled out
 * and always zero: the programs build keys from zero-initialised stack
 * structs, user space writes the pads as zeros. Addresses and ports are in
 * network byte order, exactly as they sit in the packet, so the programs copy
 * them without conversion. */
#ifndef XDP_DNAT_H
#define XDP_DNAT_H

#include <linux/types.h>

#define LB_MAGLEV_SIZE 1021   /* slots in one service's Maglev table (prime) */
#define LB_MAX_BACKENDS 256   /* backends per service, at least */

/* A service: virtual IP, port and protocol (the key of service_map). */
struct service_key {
	__be32 vip;   /* the service's virtual IP */
	__be16 port;  /* the service's port */
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;     /* always zero */
};                    /* 8 bytes */

/* A service's slot (the value of service_map). */
struct service_info {
	__u32 id;             /* index into maglev_map and service_hits */
	__u32 backend_count;  /* 0: the service takes no new flows (packets pass, counted) */
};                            /* 8 bytes */

/* One backend of one service (backend_map, an ARRAY indexed by backend id;
 * id 0 is never used; a slot not in use is all zeros). The data plane reads
 * ip, port and flags; service_id and weight are for user space, which
 * rebuilds its state from them after a restart (weight 0: drained, it
 * keeps its established flows but holds no Maglev slot). */
struct backend {
	__be32 ip;
	__be16 port;
	__u16 flags;       /* BACKEND_F_* */
	__u32 service_id;  /* user side: the service this backend id belongs to */
	__u32 weight;      /* user side: 0..65535 */
};                         /* 16 bytes */
#define BACKEND_F_ACTIVE 1

/* A service's Maglev lookup table (maglev_map, indexed by service id):
 * every slot holds a backend id of that service. */
struct maglev_table {
	__u32 backend_id[LB_MAGLEV_SIZE];
};

/* Hits of one service (service_hits, PERCPU_ARRAY by service id). */
struct service_counter {
	__u64 packets;
	__u64 bytes;  /* IP total lengths */
};                    /* 16 bytes */

/* A flow as a packet carries it (key of conntrack and conntrack_rev).
 * conntrack: client -> VIP as the client sent it.
 * conntrack_rev: backend -> client, as the backend's replies carry it. */
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];  /* always zero */
};                    /* 16 bytes */

/* What a connection remembers (value of conntrack). */
struct conn_entry {
	__u32 backend_id;    /* backend_map slot the flow was given */
	__be32 backend_ip;   /* that backend's address and port when it was picked: */
	__be16 backend_port; /* the flow moves only if the slot no longer holds them */
	__u8 flags;          /* CONN_F_* */
	__u8 pad0;
	__u32 service_id;    /* for service_hits */
	__u64 last_seen;     /* bpf_ktime_get_ns() of the last packet (coarse: ~1/16 s) */
	/* The cached forwarding: what bpf_fib_lookup said, valid while
	 * fib_gen equals the global fib_generation and fib_until is ahead. */
	__u64 fib_until;     /* coarse ns it expires at (filled + fib_refresh_ns); 0: no cache */
	__u32 fib_gen;
	__u32 ifindex;       /* egress interface */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 mtu;           /* the egress MTU */
	__u16 pad1;
};                           /* 56 bytes */
#define CONN_F_CLOSING 1     /* FIN or RST seen: the short timeout applies */

/* Data plane globals user space may change while it runs (lb_globals, slot 0). */
struct lb_globals {
	__u32 fib_generation; /* bumped by user space when routes or neighbours changed */
	__u32 epoch;          /* changed by user space after any write the flow cache must
			       * not outlive: services, backends, conntrack deletions,
			       * routes and neighbours (0 in a map pinned before it existed) */
};                            /* 8 bytes */

/* The flow cache (flow_cache, an ARRAY of FLOW_CACHE_SLOTS slots per CPU,
 * CPU c's slots at c * FLOW_CACHE_SLOTS, each indexed by the flow hash):
 * everything an established flow's packet needs, in one cache line, so
 * such a packet reads no conntrack or backend_map entry. A slot is used
 * only while its epoch is lb_globals.epoch and it was validated by the
 * full path less than FLOW_CACHE_GRAIN jiffies ago (16: 16 ms at HZ=1000,
 * 64 ms at HZ=250, 160 ms at HZ=100; jiffies, not ns, because reading them
 * is one load, where the clock is a helper call). Only its CPU writes it. */
#define FLOW_CACHE_GRAIN 16
#define FLOW_CACHE_BITS 12
#define FLOW_CACHE_SLOTS (1U << FLOW_CACHE_BITS)
struct flow_cache_slot {
	/* The flow: struct flow_key's fields, as in conntrack. */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad0[3];         /* always zero */
	__be32 backend_ip;
	__be16 backend_port;
	__u16 mtu;            /* the egress MTU */
	__u32 epoch;          /* lb_globals.epoch when the full path filled it */
	__u32 ifindex;        /* egress interface */
	__u64 validated;      /* jiffies when the full path last filled it; 0: empty */
	__u8 dmac[6];
	__u8 smac[6];
	__u32 service_id;     /* for service_hits */
	/* Hits served from this slot with bpf_redirect and not yet added to
	 * service_hits[service_id] and dnat_stats' redirect: the full path adds
	 * them there (and zeroes these) before it refills the slot; readers add
	 * what is still pending (readFlowCachePending). Bounded by one grain. */
	__u32 pending_packets;
	__u32 pending_bytes;  /* IP total lengths */
};                            /* 64 bytes: one cache line */

/* Where a backend's replies must appear to come from (value of conntrack_rev). */
struct conn_rev {
	__be32 vip;
	__be16 vport;
	__u16 pad;    /* always zero */
};                    /* 8 bytes */

/* Why a packet went where it went: the index of a counter in dnat_stats'
 * single per-CPU value, struct dnat_counters (one lookup per packet, all
 * counters of a CPU side by side). Every packet the programs see is counted once under one
 * of the verdicts (up to DNAT_REPLY_REWRITTEN); the events after it count
 * what happened to connections on the way. The names are mirrored by
 * DNAT_REASONS in the TS module. */
enum dnat_reason {
	DNAT_REDIRECT = 0,      /* hit: rewritten, sent out the backend's interface (bpf_redirect) */
	DNAT_TX,                /* hit: rewritten, sent back out the interface it came in on (XDP_TX) */
	DNAT_PASS_NO_NEIGH,     /* hit: rewritten, next hop's MAC not known yet: the stack resolves it */
	DNAT_PASS_NOT_FWD,      /* hit: rewritten, the route lookup gave no forwarding path (local
				 * address, unreachable, forwarding off): the stack decides */
	DNAT_PASS_MTU,          /* hit: rewritten, bigger than the egress MTU (in skb mode: a GSO
				 * or GRO super-packet): the stack segments or fragments it */
	DNAT_PASS_TTL,          /* hit: rewritten, TTL would expire: the stack answers with ICMP */
	DNAT_DROP_BLACKHOLE,    /* hit: the route to the backend is a blackhole */
	DNAT_PASS_MISS,         /* TCP/UDP to no service */
	DNAT_PASS_NOT_IPV4,     /* not an IPv4 frame (ARP, IPv6...) */
	DNAT_PASS_MALFORMED,    /* truncated at a header, bad ihl, version or total length */
	DNAT_PASS_FRAGMENT,     /* an IP fragment: only whole datagrams are translated */
	DNAT_PASS_OTHER_PROTO,  /* neither TCP nor UDP */
	DNAT_PASS_NO_BACKEND,   /* a service with no (active) backend: untouched */
	DNAT_REPLY_REWRITTEN,   /* TC egress: a backend's reply given the service's address */
	/* events */
	DNAT_CONN_NEW,          /* a flow got a backend through Maglev and a connection entry */
	DNAT_CONN_RESELECT,     /* an entry's backend was removed or replaced: the flow re-picked */
	DNAT_CONN_EXPIRED,      /* an entry idle past its timeout (or closed, then a new SYN): re-picked */
	DNAT_CONN_FULL,         /* the connection entry could not be written: forwarded without one */
	DNAT_FIB_REFRESH,       /* a hit that looked the route up (new flow, stale or no cache);
				 * the other hits used the entry's cached route and MACs */
	DNAT_REPLY_NO_CONN,     /* TC egress: TCP/UDP with no reverse entry: untouched */
	DNAT_REASON_COUNT,
};

struct dnat_counters {
	__u64 n[DNAT_REASON_COUNT];
};

#endif
