/**
 * The load balancer's data plane as user space sees it
 * (bpf/xdp_dnat/xdp_dnat.bpf.c, xdp_dnat.h): the structs it shares, byte for
 * byte; its map and program names; its reasons counters; its connection
 * tracking tables; and its lifecycle: sizing and timeouts before load,
 * adopting the state and the links a previous instance left pinned, and
 * pinning them for the next one.
 *
 * Restarts that drop nothing: with a pin directory the maps (services,
 * backends, Maglev tables, hit counters, connections) and the two links
 * (XDP, TCX) are pinned there. The next loader reuses the pinned maps
 * (bpf_map__reuse_fd, before load: its programs are verified against the
 * very same maps) and swaps its programs into the pinned links
 * (BPF_LINK_UPDATE: atomic, the hook is never empty). Connections keep their
 * backend because their entries, and the tables that picked them, are the
 * same maps.
 */
import { join } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { endianness } from 'node:os';
import { formatIpv4, struct, u32, type Codec, type StructCodec } from '../codec.js';
import {
  LB_MAGLEV_SIZE, backendStruct, bumpEpoch, lbGlobalsStruct, lbSharedLayouts, maglevTableCodec, serviceCounterStruct, serviceInfoStruct, serviceKeyStruct,
  type LbGlobals, type LbMaps,
} from './layout.js';
import { BpfError, Errno } from '../errors.js';
import { Link, type Attachment } from '../link.js';
import { BpfMap, PerCpuMap, possibleCpus } from '../map.js';
import type { BpfObject } from '../object.js';
import { isBpffs } from '../bpffs.js';

export { LB_MAGLEV_SIZE, LB_MAX_BACKENDS, BACKEND_F_ACTIVE, bumpEpoch, lbGlobalsStruct, type LbGlobals } from './layout.js';
/** conn_entry.flags: a FIN or RST went through (the closing timeout applies). */
export const CONN_F_CLOSING = 1;

/** struct maglev_table, as its C layout (for the layout check; layout.ts's maglevTableCodec reads and writes it). */
export const maglevTableStruct = struct('maglev_table', { backend_id: { bytes: 4 * LB_MAGLEV_SIZE } });
/** struct flow_key: a 5-tuple as a packet carries it (conntrack, conntrack_rev). */
export const flowKeyStruct = struct('flow_key', { saddr: 'be32', daddr: 'be32', sport: 'be16', dport: 'be16', proto: 'u8', pad: { pad: 3 } });
/** struct conn_entry: what a connection remembers (conntrack's value). */
export const connEntryStruct = struct('conn_entry', {
  backend_id: 'u32', backend_ip: 'be32', backend_port: 'be16', flags: 'u8', pad0: { pad: 1 },
  service_id: 'u32', last_seen: 'u64', fib_until: 'u64', fib_gen: 'u32', ifindex: 'u32',
  dmac: { bytes: 6 }, smac: { bytes: 6 }, mtu: 'u16', pad1: { pad: 2 },
});
/** struct conn_rev: the VIP and port a backend's replies must carry (conntrack_rev's value). */
export const connRevStruct = struct('conn_rev', { vip: 'be32', vport: 'be16', pad: { pad: 2 } });
/** FLOW_CACHE_SLOTS: flow cache slots per CPU (a power of two, fixed at build time). */
export const FLOW_CACHE_SLOTS = 4096;
/** struct flow_cache_slot: what an established flow's packet is forwarded with (flow_cache's value, one cache line). */
export const flowCacheSlotStruct = struct('flow_cache_slot', {
  saddr: 'be32', daddr: 'be32', sport: 'be16', dport: 'be16', proto: 'u8', pad0: { pad: 3 }, backend_ip: 'be32', backend_port: 'be16', mtu: 'u16', epoch: 'u32', ifindex: 'u32',
  validated: 'u64', dmac: { bytes: 6 }, smac: { bytes: 6 }, service_id: 'u32', pending_packets: 'u32', pending_bytes: 'u32',
});
/** Raw flow cache slot. */
export type FlowCacheSlot = ReturnType<typeof flowCacheSlotStruct.decode>;
/** The flow cache's name in the object. */
export const FLOW_CACHE_MAP = 'flow_cache';
/**
 * The flow cache's file name under the pin directory: its layout version is
 * in the name, so a loader adopts only a cache whose slots mean what its
 * program expects (bump it with struct flow_cache_slot's layout or meaning;
 * an older version's pin is then left alone and a new cache starts empty).
 */
export const FLOW_CACHE_PIN = 'flow_cache_v1';

/** Map names in the object (and file names under the pin directory). */
export const DP_MAPS = {
  services: 'service_map', backends: 'backend_map', maglev: 'maglev_map', hits: 'service_hits',
  conntrack: 'conntrack', conntrackRev: 'conntrack_rev', globals: 'lb_globals', stats: 'dnat_stats',
} as const;
/** The programs: XDP forward path and TC egress return path. */
export const LB_PROGRAMS = { forward: 'xdp_dnat', reply: 'tc_dnat_reply' } as const;
/** File names of the pinned links under the pin directory. */
export const LB_LINKS = { forward: 'link_xdp', reply: 'link_tc_egress' } as const;

/** enum dnat_reason, in order: the index of each counter in dnat_stats. The verdicts come first (one per packet), then events. */
export const DNAT_REASONS = [
  'redirect', 'tx', 'pass_no_neigh', 'pass_not_fwd', 'pass_mtu', 'pass_ttl', 'drop_blackhole',
  'pass_miss', 'pass_not_ipv4', 'pass_malformed', 'pass_fragment', 'pass_other_proto', 'pass_no_backend', 'reply_rewritten',
  'conn_new', 'conn_reselect', 'conn_expired', 'conn_full', 'fib_refresh', 'reply_no_conn',
] as const;
/** A reason name. */
export type DnatReason = typeof DNAT_REASONS[number];
/** struct dnat_counters: dnat_stats' one value per CPU, a counter per reason (DNAT_REASONS order). */
export const dnatCountersStruct = struct('dnat_counters', { n: { bytes: 8 * DNAT_REASONS.length } });
/** dnat_stats' value as numbers by reason index. */
export const dnatCounters: Codec<number[]> = {
  size: 8 * DNAT_REASONS.length,
  encode(v, buf, off = 0) {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < DNAT_REASONS.length; i++) b.writeBigUInt64LE(BigInt(v[i] ?? 0), off + 8 * i);
  },
  decode(buf, off = 0) {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    return Array.from({ length: DNAT_REASONS.length }, (_, i) => Number(b.readBigUInt64LE(off + 8 * i)));
  },
};
/** The data plane's structs shared with the kernel programs (checked against the object's BTF by test/layouts.test.ts). */
export const dataPlaneLayouts: Array<{ object: string; cName: string; codec: StructCodec<unknown> }> = [
  ...lbSharedLayouts,
  ...[maglevTableStruct, flowKeyStruct, connEntryStruct, connRevStruct, lbGlobalsStruct, flowCacheSlotStruct, dnatCountersStruct]
    .map((codec) => ({ object: 'xdp_dnat', cName: codec.layout.name, codec: codec as StructCodec<unknown> })),
];

/** The verdicts of the forward program on a hit (exactly one per hit packet). */
export const HIT_VERDICTS = ['redirect', 'tx', 'pass_no_neigh', 'pass_not_fwd', 'pass_mtu', 'pass_ttl', 'drop_blackhole'] as const satisfies readonly DnatReason[];

/** Sizes and timeouts of a data plane (loader options). */
export interface DataPlaneOptions {
  /** service_map, maglev_map, service_hits entries (default 1024). */
  maxServices?: number;
  /** backend_map entries, id 0 included (default 4096). */
  maxBackends?: number;
  /** conntrack and conntrack_rev entries (default 65536). */
  conntrackSize?: number;
  /** Idle timeout of a TCP connection entry, seconds (default 3600). */
  tcpTimeout?: number;
  /** Idle timeout of a UDP flow entry, seconds (default 60). */
  udpTimeout?: number;
  /** Timeout once a FIN or RST went through, seconds (default 10). */
  closingTimeout?: number;
  /** How long a cached route and MACs are used before bpf_fib_lookup again, ms (default 1000). */
  fibRefreshMs?: number;
}

/** Defaults of DataPlaneOptions. */
export const DATA_PLANE_DEFAULTS: Required<DataPlaneOptions> = {
  maxServices: 1024, maxBackends: 4096, conntrackSize: 65536, tcpTimeout: 3600, udpTimeout: 60, closingTimeout: 10, fibRefreshMs: 1000,
};

const NS = 1_000_000_000;

/**
 * Sizes the maps and sets the timeouts of an opened (not loaded) xdp_dnat
 * object. Throws a RangeError for a size or timeout that is not a positive
 * integer, a BpfError.
 */
export function configureDataPlane(obj: BpfObject, opts: DataPlaneOptions = {}): Required<DataPlaneOptions> {
  const o = { ...DATA_PLANE_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<DataPlaneOptions>;
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${k}: ${String(v)} is not a positive integer`);
  }
  if (o.maxBackends < 2) throw new RangeError('maxBackends: at least 2 (id 0 is never used)');
  obj.setMaxEntries(DP_MAPS.services, o.maxServices).setMaxEntries(DP_MAPS.maglev, o.maxServices).setMaxEntries(DP_MAPS.hits, o.maxServices);
  obj.setMaxEntries(DP_MAPS.backends, o.maxBackends);
  obj.setMaxEntries(DP_MAPS.conntrack, o.conntrackSize).setMaxEntries(DP_MAPS.conntrackRev, o.conntrackSize);
  obj.setMaxEntries(FLOW_CACHE_MAP, FLOW_CACHE_SLOTS * possibleCpus);
  obj.setConst('tcp_timeout_ns', BigInt(o.tcpTimeout) * BigInt(NS));
  obj.setConst('udp_timeout_ns', BigInt(o.udpTimeout) * BigInt(NS));
  obj.setConst('closing_timeout_ns', BigInt(o.closingTimeout) * BigInt(NS));
  obj.setConst('fib_refresh_ns', BigInt(o.fibRefreshMs) * 1_000_000n);
  return o;
}

/** The data plane's maps, typed (the flow cache when the object or the pin directory has it). */
export interface DataPlaneMaps extends LbMaps {
  conntrack: BpfMap<FlowKey, ConnEntry>;
  conntrackRev: BpfMap<FlowKey, ConnRev>;
  globals: BpfMap<number, LbGlobals>;
  stats: PerCpuMap<number, number[]>;
  flowCache?: BpfMap<number, FlowCacheSlot>;
}
/** Raw flow key. */
export type FlowKey = ReturnType<typeof flowKeyStruct.decode>;
/** Raw connection entry. */
export type ConnEntry = ReturnType<typeof connEntryStruct.decode>;
/** Raw reverse entry. */
export type ConnRev = ReturnType<typeof connRevStruct.decode>;

/** The maps of a loaded xdp_dnat object, typed (closed with the object). Throws a BpfError. */
export function dataPlaneMaps(obj: BpfObject): DataPlaneMaps {
  return {
    services: obj.map(DP_MAPS.services, serviceKeyStruct, serviceInfoStruct),
    backends: obj.map(DP_MAPS.backends, u32, backendStruct),
    maglev: obj.map(DP_MAPS.maglev, u32, maglevTableCodec()),
    hits: obj.perCpuMap(DP_MAPS.hits, u32, serviceCounterStruct),
    conntrack: obj.map(DP_MAPS.conntrack, flowKeyStruct, connEntryStruct),
    conntrackRev: obj.map(DP_MAPS.conntrackRev, flowKeyStruct, connRevStruct),
    globals: obj.map(DP_MAPS.globals, u32, lbGlobalsStruct),
    stats: obj.perCpuMap(DP_MAPS.stats, u32, dnatCounters),
    flowCache: obj.map(FLOW_CACHE_MAP, u32, flowCacheSlotStruct),
  };
}

/**
 * Opens the maps a loader pinned in `dir` (from another process: a
 * services script, a test). Throws a BpfError (ENOENT: not pinned there).
 * Close them with closeDataPlaneMaps.
 */
export function openPinnedDataPlane(dir: string): DataPlaneMaps {
  const opened: Array<{ close(): void }> = [];
  const open = <M extends { close(): void }>(m: () => M): M => { const x = m(); opened.push(x); return x; };
  try {
    return {
      services: open(() => BpfMap.openPinned(join(dir, DP_MAPS.services), serviceKeyStruct, serviceInfoStruct)),
      backends: open(() => BpfMap.openPinned(join(dir, DP_MAPS.backends), u32, backendStruct)),
      maglev: open(() => BpfMap.openPinned(join(dir, DP_MAPS.maglev), u32, maglevTableCodec())),
      hits: open(() => PerCpuMap.openPinned(join(dir, DP_MAPS.hits), u32, serviceCounterStruct)),
      conntrack: open(() => BpfMap.openPinned(join(dir, DP_MAPS.conntrack), flowKeyStruct, connEntryStruct)),
      conntrackRev: open(() => BpfMap.openPinned(join(dir, DP_MAPS.conntrackRev), flowKeyStruct, connRevStruct)),
      globals: open(() => BpfMap.openPinned(join(dir, DP_MAPS.globals), u32, lbGlobalsStruct)),
      stats: open(() => PerCpuMap.openPinned(join(dir, DP_MAPS.stats), u32, dnatCounters)),
      flowCache: openPinnedFlowCache(dir, open),
    };
  } catch (e) {
    for (const m of opened) m.close();
    throw e;
  }
}

/**
 * Opens the reasons counters (dnat_stats) a loader pinned in `dir`, for
 * readDnatStats. Throws a BpfError (ENOENT: not pinned there). Close it.
 */
export function openPinnedStats(dir: string): PerCpuMap<number, number[]> {
  return PerCpuMap.openPinned(join(dir, DP_MAPS.stats), u32, dnatCounters);
}

/**
 * Opens the flow cache a loader pinned in `dir` (FLOW_CACHE_PIN), or
 * undefined when there is none (a loader of an older version). `track`
 * receives the opened map. Throws a BpfError. Close it.
 */
export function openPinnedFlowCache(dir: string, track: <M extends { close(): void }>(m: () => M) => M = (m) => m()): BpfMap<number, FlowCacheSlot> | undefined {
  const path = join(dir, FLOW_CACHE_PIN);
  return existsSync(path) ? track(() => BpfMap.openPinned(path, u32, flowCacheSlotStruct)) : undefined;
}

/** Counts the flow cache holds that service_hits and dnat_stats do not have yet. */
export interface FlowCachePending {
  /** Forwarded with bpf_redirect: to add to dnat_stats' redirect. */
  redirect: number;
  /** To add to service_hits, by service id. */
  byService: Map<number, { packets: number; bytes: number }>;
}

/** A flow cache slot field's offset, from the struct's declared layout. */
function slotOffset(name: keyof FlowCacheSlot): number {
  const f = flowCacheSlotStruct.layout.fields.find((x) => x.name === name);
  if (!f) throw new TypeError(`flow_cache_slot has no field ${name}`);
  return f.offset;
}
const SLOT_SERVICE_ID = slotOffset('service_id');
const SLOT_PENDING_PACKETS = slotOffset('pending_packets');
const SLOT_PENDING_BYTES = slotOffset('pending_bytes');
/** The slot's u32 counters are in host order (the program writes them). */
const readU32: (b: Buffer, o: number) => number = endianness() === 'LE'
  ? (b, o) => b.readUInt32LE(o) : (b, o) => b.readUInt32BE(o);

/**
 * Reads the flow cache's pending counts (hits forwarded from a slot, added
 * to service_hits and dnat_stats only when the full path refills the slot),
 * summed by service id, with one batch lookup. Racy with a running program
 * by at most the hits of the read itself: exact once traffic stops. Throws
 * a BpfError.
 */
export function readFlowCachePending(cache: BpfMap<number, FlowCacheSlot>): FlowCachePending {
  const out: FlowCachePending = { redirect: 0, byService: new Map() };
  const size = flowCacheSlotStruct.size;
  cache.lookupBatchRaw((_keys, values, count) => {
    for (let i = 0; i < count; i++) {
      const o = i * size;
      const packets = readU32(values, o + SLOT_PENDING_PACKETS);
      if (packets === 0) continue;
      const sid = readU32(values, o + SLOT_SERVICE_ID);
      const bytes = readU32(values, o + SLOT_PENDING_BYTES);
      out.redirect += packets;
      const s = out.byService.get(sid);
      if (s) { s.packets += packets; s.bytes += bytes; } else out.byService.set(sid, { packets, bytes });
    }
  });
  return out;
}

/** Closes maps opened by openPinnedDataPlane. Safe to call twice. */
export function closeDataPlaneMaps(maps: DataPlaneMaps): void {
  for (const m of Object.values(maps)) m?.close();
}

/** The pinned maps: the whole state a restart adopts (counters included, so they carry on). */
const PINNED = Object.keys(DP_MAPS) as Array<keyof typeof DP_MAPS>;

/**
 * Before load: makes the object use the maps pinned in `dir` by a previous
 * instance (those that are there). Returns the names adopted (none for an
 * empty or missing directory). Throws a BpfError (EINVAL: a pinned map of
 * another layout, e.g. left by an older version: remove the directory).
 */
export function adoptPinnedMaps(obj: BpfObject, dir: string): string[] {
  if (!existsSync(dir)) return [];
  const adopted: string[] = PINNED.map((k) => DP_MAPS[k]).filter((name) => obj.reusePinnedMap(name, join(dir, name)));
  // The flow cache too, pending counts and all (its slots' epochs are lb_globals', adopted with it).
  if (obj.reusePinnedMap(FLOW_CACHE_MAP, join(dir, FLOW_CACHE_PIN))) adopted.push(FLOW_CACHE_PIN);
  return adopted;
}

/**
 * After load: pins every map in `dir` (created if needed; it must be on a
 * bpffs), leaving the pins of adopted maps as they are. Throws a BpfError
 * (EPERM: not on bpffs).
 */
export function pinDataPlaneMaps(maps: DataPlaneMaps, dir: string): void {
  mkdirSync(dir, { recursive: true });
  if (!isBpffs(dir)) throw new BpfError(`pin load balancer state at ${dir}`, Errno.EPERM, `${dir} is not on a bpffs`);
  for (const k of PINNED) {
    const path = join(dir, DP_MAPS[k]);
    if (!existsSync(path)) maps[k].pin(path);
  }
  const cache = join(dir, FLOW_CACHE_PIN);
  if (maps.flowCache && !existsSync(cache)) maps.flowCache.pin(cache);
}

/** How attachOrUpdate reached the hook. */
export type LinkOutcome = 'attached' | 'updated';

/**
 * Attaches a program through a new link, or, when a link is pinned at
 * `pinPath`, swaps the program into it (BPF_LINK_UPDATE) so the hook is
 * never empty. With `pin`, a new link is pinned there. Returns the link (or
 * attachment) and what happened. Throws a BpfError.
 */
export function attachOrUpdate(
  pinPath: string | undefined, progFd: number, progName: string, attach: () => Link | Attachment, describe: (old: Link) => string,
): { link: Link | Attachment; outcome: LinkOutcome } {
  if (pinPath) {
    const old = Link.openPinned(pinPath, `pinned link ${pinPath}`);
    if (old) {
      try {
        old.update(progFd, describe(old));
      } catch (e) {
        old.release();
        throw new BpfError(`replace the program of ${pinPath} with ${progName}`, e instanceof BpfError ? e.errno : Errno.EINVAL, (e as Error).message);
      }
      return { link: old, outcome: 'updated' };
    }
  }
  const link = attach();
  if (pinPath && link instanceof Link) link.pin(pinPath);
  return { link, outcome: 'attached' };
}

/** The names a data plane pins in its directory: its maps and its two links. */
export const DATA_PLANE_PIN_NAMES: readonly string[] = [...Object.values(DP_MAPS), FLOW_CACHE_PIN, ...Object.values(LB_LINKS)];

/** A connection entry as user space shows it. */
export interface Connection {
  client: string;
  vip: string;
  proto: 'tcp' | 'udp' | number;
  backendId: number;
  backend: string;
  serviceId: number;
  closing: boolean;
  /** Seconds since the last packet (coarse: about 1/16 s). */
  idle: number;
}

const protoOf = (p: number) => (p === 6 ? 'tcp' : p === 17 ? 'udp' : p);

/** CLOCK_MONOTONIC now in ns (what bpf_ktime_get_coarse_ns counts, give or take a tick). */
function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

/** The entries of a conntrack map, readable. Throws a BpfError. */
export function listConnections(conntrack: BpfMap<FlowKey, ConnEntry>): Connection[] {
  const now = monotonicNs();
  return conntrack.readAll().entries.map(([k, e]) => ({
    client: `${formatIpv4(k.saddr)}:${k.sport}`,
    vip: `${formatIpv4(k.daddr)}:${k.dport}`,
    proto: protoOf(k.proto),
    backendId: e.backend_id,
    backend: `${formatIpv4(e.backend_ip)}:${e.backend_port}`,
    serviceId: e.service_id,
    closing: (e.flags & CONN_F_CLOSING) !== 0,
    idle: Math.max(0, (now - e.last_seen) / NS),
  }));
}

/**
 * Tells the data plane that routes or neighbours changed: every cached
 * forwarding (egress interface, MACs, MTU) is looked up again on its flow's
 * next packet (the flow cache's epoch changes too). Returns the new
 * generation. Throws a BpfError.
 */
export function bumpFibGeneration(globals: BpfMap<number, LbGlobals>): number {
  return bumpEpoch(globals, true).fib_generation;
}

/**
 * Deletes connection entries (and their flows' flow cache slots, through
 * the epoch): the flows' next packets are picked again as new ones. Deleting
 * from conntrack directly leaves a cached flow on its old backend for up to
 * FLOW_CACHE_GRAIN (16 jiffies) per CPU. Returns how many entries existed. Throws a BpfError.
 */
export function forgetConnections(maps: Pick<DataPlaneMaps, 'conntrack' | 'globals'>, keys: readonly FlowKey[]): number {
  let n = 0;
  try {
    for (const k of keys) if (maps.conntrack.delete(k)) n++;
  } finally {
    bumpEpoch(maps.globals);
  }
  return n;
}

/**
 * The per-reason counters, summed over CPUs; with the flow cache (or its
 * pending counts read already), its pending hits are in redirect, so the
 * figure is exact once traffic stops. Throws a BpfError.
 */
export function readDnatStats(stats: PerCpuMap<number, number[]>, cache?: BpfMap<number, FlowCacheSlot> | FlowCachePending): Record<DnatReason, number> {
  const out = {} as Record<DnatReason, number>;
  const cpus = stats.get(0) ?? [];
  DNAT_REASONS.forEach((r, i) => { out[r] = cpus.reduce((a, c) => a + c[i], 0); });
  if (cache) out.redirect += (cache instanceof BpfMap ? readFlowCachePending(cache) : cache).redirect;
  return out;
}
