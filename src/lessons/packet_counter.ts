/**
 * packet_counter: the user side of the lesson. The kernel program counts
 * IPv4 packets per protocol number in the hash map proto_count (key __u8,
 * value __u64); this module reads it (get_next_key iteration, as the lesson
 * teaches), turns two successive reads into rates, and renders a table or a
 * JSON object per interval. Also the polling loop the table loaders share.
 */
import { performance } from 'node:perf_hooks';
import { protoLabel, protoName, u8, u64 } from '../codec.js';
import type { BpfMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { formatRate, rate } from '../cli/output.js';

/** The map's name in the object. */
export const PROTO_COUNT_MAP = 'proto_count';

/** The proto_count map of a loaded packet_counter object, typed: protocol number → packets. Throws a BpfError. */
export function protoCountMap(obj: BpfObject): BpfMap<number, number> {
  return obj.map(PROTO_COUNT_MAP, u8, u64);
}

/** Every protocol's count, read by iterating the keys (get_next_key + lookup). Throws a BpfError. */
export function readProtoCounts(map: BpfMap<number, number>): Map<number, number> {
  return new Map(map.entries());
}

/** One protocol's line of the table. */
export interface ProtoRow {
  proto: number;
  /** "tcp", or the number as text. */
  name: string;
  /** Packets since the program was attached. */
  packets: number;
  /** Packets per second over the last interval. */
  rate: number;
}

/** One reading of the table. */
export interface ProtoSnapshot {
  /** When it was read. */
  time: Date;
  /** Seconds since the previous reading (or since the counter was created). */
  elapsed: number;
  /** By protocol number. */
  rows: ProtoRow[];
  /** Sum of the packets of every protocol. */
  total: number;
  /** Sum of the rates. */
  totalRate: number;
}

/**
 * Builds a snapshot from the counts of now and of the previous reading,
 * `elapsed` seconds before (a protocol not seen before counts from 0).
 */
export function protoSnapshot(cur: ReadonlyMap<number, number>, prev: ReadonlyMap<number, number>, elapsed: number, time = new Date()): ProtoSnapshot {
  const rows = [...cur].sort((a, b) => a[0] - b[0]).map(([proto, packets]) => ({
    proto, name: protoName(proto), packets, rate: rate(prev.get(proto) ?? 0, packets, elapsed),
  }));
  return {
    time, elapsed, rows,
    total: rows.reduce((a, r) => a + r.packets, 0),
    totalRate: rows.reduce((a, r) => a + r.rate, 0),
  };
}

/** Reads proto_count on demand and keeps the previous reading to compute rates. */
export class ProtoCounter {
  #prev = new Map<number, number>();
  #last = performance.now();

  /** `map`: the proto_count map (protoCountMap()). Rates of the first reading count from now. */
  constructor(private readonly map: BpfMap<number, number>) {}

  /** Reads the map and returns the table with rates since the previous reading. Throws a BpfError. */
  snapshot(): ProtoSnapshot {
    const cur = readProtoCounts(this.map);
    const now = performance.now();
    const snap = protoSnapshot(cur, this.#prev, (now - this.#last) / 1000);
    this.#prev = cur;
    this.#last = now;
    return snap;
  }
}

/** The table as text lines: a header, one line per protocol, a total. */
export function renderProtoTable(s: ProtoSnapshot): string[] {
  const lines = [`${s.time.toISOString().slice(11, 19)}  ${s.rows.length} protocol${s.rows.length === 1 ? '' : 's'}, last ${s.elapsed.toFixed(1)} s`];
  lines.push(`${'proto'.padEnd(12)} ${'packets'.padStart(12)} ${'pkt/s'.padStart(10)}`);
  for (const r of s.rows) lines.push(`${protoLabel(r.proto).padEnd(12)} ${String(r.packets).padStart(12)} ${formatRate(r.rate).padStart(10)}`);
  lines.push(`${'total'.padEnd(12)} ${String(s.total).padStart(12)} ${formatRate(s.totalRate).padStart(10)}`);
  lines.push('');
  return lines;
}

/** The snapshot as one JSON line: {time, elapsed, total, rate, protocols: [{proto, name, packets, rate}]}. */
export function protoJson(s: ProtoSnapshot): string {
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: round(s.elapsed), total: s.total, rate: round(s.totalRate),
    protocols: s.rows.map((r) => ({ proto: r.proto, name: r.name, packets: r.packets, rate: round(r.rate) })),
  });
}
