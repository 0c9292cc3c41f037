/**
 * connection_tracker: the user side of the lesson. The kernel program keeps
 * packets and bytes per flow (source, destination, protocol) in the hash map
 * conn_table, keyed by struct conn_key; this module mirrors the structs of
 * bpf/connection_tracker/connection_tracker.h byte for byte, reads the table
 * (batch lookup when the kernel has it, key iteration otherwise), computes
 * per-flow rates between two readings and renders the biggest flows.
 */
import { performance } from 'node:perf_hooks';
import { formatIpv4, protoLabel, protoName, struct, u32, u64 } from '../codec.js';
import type { BpfMap, PerCpuMap, ReadMethod } from '../map.js';
import type { BpfObject } from '../object.js';
import { formatRate, rate } from '../cli/output.js';
import type { SharedLayout } from './shared.js';

/**
 * struct conn_key: addresses in network order (be32: host numbers in JS,
 * format them with formatIpv4), the protocol, and the explicit 3-byte pad the
 * C header declares (always written as zeros).
 */
export const connKey = struct('conn_key', { src_ip: 'be32', dst_ip: 'be32', proto: 'u8', pad: { pad: 3 } });
/** struct conn_stats: packets, and bytes summed from ip->tot_len. */
export const connStats = struct('conn_stats', { packets: 'u64', bytes: 'u64' });

/** A decoded struct conn_key (addresses as 32-bit numbers, see parseIpv4/formatIpv4). */
export type ConnKey = ReturnType<typeof connKey.decode>;
/** A decoded struct conn_stats. */
export type ConnStats = ReturnType<typeof connStats.decode>;

/** The structs shared with the kernel program, checked against its BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'connection_tracker', cName: 'conn_key', codec: connKey },
  { object: 'connection_tracker', cName: 'conn_stats', codec: connStats },
];

/** The map's name in the object. */
export const CONN_TABLE_MAP = 'conn_table';
/** max_entries of conn_table in the C source. */
export const CONN_TABLE_SIZE = 65536;

/** The per-CPU counter (index 0) of packets whose flow found no room in conn_table. */
export const UNTRACKED_MAP = 'untracked';

/** The conn_table map of a loaded connection_tracker object, typed. Throws a BpfError. */
export function connTable(obj: BpfObject): BpfMap<ConnKey, ConnStats> {
  return obj.map(CONN_TABLE_MAP, connKey, connStats);
}

/** The untracked counter map of a loaded connection_tracker object (sum(0): packets not tracked). Throws a BpfError. */
export function untrackedCounter(obj: BpfObject): PerCpuMap<number, number> {
  return obj.perCpuMap(UNTRACKED_MAP, u32, u64);
}

/** How the table was read (BpfMap.readAll): batch lookup, or key iteration. */
export type { ReadMethod };

/** One flow's line of the table. */
export interface FlowRow {
  src: string;
  dst: string;
  proto: number;
  /** "tcp", or the number as text. */
  protoName: string;
  packets: number;
  bytes: number;
  /** Packets per second over the last interval. */
  packetsPerSec: number;
  /** Bytes per second over the last interval. */
  bytesPerSec: number;
}

/** One reading of the table. */
export interface FlowSnapshot {
  time: Date;
  /** Seconds since the previous reading. */
  elapsed: number;
  method: ReadMethod;
  /** Every flow, biggest byte count first. */
  rows: FlowRow[];
  /** Sums over every flow. */
  packets: number;
  bytes: number;
  /** Packets the kernel could not track since load (the table was full), when known. */
  untracked?: number;
}

/** A key identifying a flow across readings. */
export function flowId(k: ConnKey): string {
  return `${k.src_ip}/${k.dst_ip}/${k.proto}`;
}

/**
 * Builds a snapshot from the entries read now and the stats of the previous
 * reading (by flowId), `elapsed` seconds before; rows sorted by bytes, then
 * packets, descending.
 */
export function flowSnapshot(entries: ReadonlyArray<readonly [ConnKey, ConnStats]>, prev: ReadonlyMap<string, ConnStats>, elapsed: number, method: ReadMethod, time = new Date(), untracked?: number): FlowSnapshot {
  let packets = 0;
  let bytes = 0;
  const rows: FlowRow[] = entries.map(([k, v]) => {
    const p = prev.get(flowId(k));
    packets += v.packets;
    bytes += v.bytes;
    return {
      src: formatIpv4(k.src_ip), dst: formatIpv4(k.dst_ip), proto: k.proto, protoName: protoName(k.proto),
      packets: v.packets, bytes: v.bytes,
      packetsPerSec: rate(p?.packets ?? 0, v.packets, elapsed), bytesPerSec: rate(p?.bytes ?? 0, v.bytes, elapsed),
    };
  });
  rows.sort((a, b) => b.bytes - a.bytes || b.packets - a.packets);
  return { time, elapsed, method, rows, packets, bytes, ...(untracked === undefined ? {} : { untracked }) };
}

/** Reads conn_table on demand and keeps the previous reading to compute rates. */
export class ConnTracker {
  #prev = new Map<string, ConnStats>();
  #last = performance.now();
  #method: ReadMethod = 'batch';

  /**
   * `map`: the conn_table map (connTable()); `untracked`: its counter of
   * packets not tracked (untrackedCounter()), to show in every snapshot.
   * Rates of the first reading count from now.
   */
  constructor(private readonly map: BpfMap<ConnKey, ConnStats>, private readonly untracked?: PerCpuMap<number, number>) {}

  /** Reads the table (batch first; key iteration from then on if batch is unsupported) and the untracked counter. Throws a BpfError. */
  snapshot(): FlowSnapshot {
    const { method, entries } = this.map.readAll(this.#method);
    this.#method = method;
    const now = performance.now();
    const snap = flowSnapshot(entries, this.#prev, (now - this.#last) / 1000, method, new Date(), this.untracked?.sum(0));
    this.#prev = new Map(entries.map(([k, v]) => [flowId(k), v]));
    this.#last = now;
    return snap;
  }
}

/** The `top` biggest flows as text lines: a header, one line per flow, a summary. */
export function renderFlowTable(s: FlowSnapshot, top = Infinity): string[] {
  const shown = s.rows.slice(0, top);
  const lines = [`${s.time.toISOString().slice(11, 19)}  ${s.rows.length} flow${s.rows.length === 1 ? '' : 's'} (${s.method === 'batch' ? 'batch lookup' : 'key iteration'}), last ${s.elapsed.toFixed(1)} s${shown.length < s.rows.length ? `, top ${shown.length} by bytes` : ''}`];
  lines.push(`${'src'.padEnd(15)}  ${'dst'.padEnd(15)}  ${'proto'.padEnd(10)} ${'packets'.padStart(10)} ${'bytes'.padStart(12)} ${'pkt/s'.padStart(8)} ${'B/s'.padStart(8)}`);
  for (const r of shown) {
    lines.push(`${r.src.padEnd(15)}  ${r.dst.padEnd(15)}  ${protoLabel(r.proto).padEnd(10)} ${String(r.packets).padStart(10)} ${String(r.bytes).padStart(12)} ${formatRate(r.packetsPerSec).padStart(8)} ${formatRate(r.bytesPerSec).padStart(8)}`);
  }
  lines.push(`${'total'.padEnd(15)}  ${''.padEnd(15)}  ${''.padEnd(10)} ${String(s.packets).padStart(10)} ${String(s.bytes).padStart(12)}`);
  if (s.untracked) lines.push(`untracked: ${s.untracked} packets of new flows found the table full (${s.rows.length} flow${s.rows.length === 1 ? '' : 's'}); they are not in the table`);
  lines.push('');
  return lines;
}

/**
 * The snapshot as one JSON line: {time, elapsed, method, flows, packets,
 * bytes, untracked (when known), top: [FlowRow...]} with the `top` biggest
 * flows (rates in packetsPerSec and bytesPerSec).
 */
export function flowJson(s: FlowSnapshot, top = Infinity): string {
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: round(s.elapsed), method: s.method, flows: s.rows.length, packets: s.packets, bytes: s.bytes,
    ...(s.untracked === undefined ? {} : { untracked: s.untracked }),
    top: s.rows.slice(0, top).map((r) => ({ ...r, packetsPerSec: round(r.packetsPerSec), bytesPerSec: round(r.bytesPerSec) })),
  });
}
