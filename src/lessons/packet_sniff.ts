/**
 * packet_sniff: the user side of the lesson. The kernel program
 * (bpf/packet_sniff) submits one struct packet_data per IPv4 packet to the
 * `packet_ringbuf` ring buffer and counts packets per class (total, TCP,
 * UDP, other, ring full) in the per-CPU `stats` array. This module mirrors
 * those structs, turns the kernel's timestamps (CLOCK_MONOTONIC) into
 * wall-clock times, renders one line per packet, and turns two readings of
 * the counters into a statistics block (packets/s and shares) or JSON.
 * The kernel side needs Linux 5.8 (BPF ring buffer); the parts here that only
 * decode and render need no kernel.
 */
import { WallClock, formatClock } from '../clock.js';
import { performance } from 'node:perf_hooks';
import { formatIpv4, protoName, struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { RingBufReader } from '../ringbuf/reader.js';
import { formatRate, rate } from '../cli/output.js';
import { parseSeconds } from '../cli/lesson.js';
import type { Command } from 'commander';
import type { SharedLayout } from './shared.js';

/** struct packet_data (bpf/packet_sniff/packet_sniff.h): 32 bytes. */
export const PacketData = struct('packet_data', {
  timestamp: 'u64',
  src_ip: 'be32',
  dst_ip: 'be32',
  src_port: 'be16',
  dst_port: 'be16',
  packet_size: 'u32',
  protocol: 'u8',
  ttl: 'u8',
  flags: 'u16',
  pad: { pad: 4 },
});
/** A decoded event: addresses as 32-bit numbers, ports in host order, timestamp in CLOCK_MONOTONIC ns. */
export type PacketDataValue = ReturnType<typeof PacketData.zero>;

/** struct sniff_stats: one per CPU in stats[0]. */
export const SniffStats = struct('sniff_stats', {
  total: 'u64',
  tcp: 'u64',
  udp: 'u64',
  other: 'u64',
  ring_full: 'u64',
});
/** The counters (one CPU's, or summed over CPUs). */
export type SniffStatsValue = ReturnType<typeof SniffStats.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'packet_sniff', cName: 'packet_data', codec: PacketData },
  { object: 'packet_sniff', cName: 'sniff_stats', codec: SniffStats },
];

/** The ring buffer map. */
export const RINGBUF_MAP = 'packet_ringbuf';
/** The per-CPU array map whose entry 0 is the struct sniff_stats. */
export const STATS_MAP = 'stats';
/** The ring's size in the object: 16 MiB, as in the seed. */
export const DEFAULT_RING_BYTES = 1 << 24;

/** packet_data.flags, as packet_sniff.h defines them. */
export const Flag = { FRAG: 0x01, LOW_TTL: 0x02, SYN: 0x10, FIN: 0x20, RST: 0x40 } as const;
/** A flag's name. */
export type FlagName = keyof typeof Flag;
/** Packets with a TTL below this get LOW_TTL. */
export const LOW_TTL_BELOW = 10;

/** The names of the flags set in `flags`, in the order FRAG, LOW_TTL, SYN, FIN, RST. */
export function flagNames(flags: number): FlagName[] {
  return (Object.keys(Flag) as FlagName[]).filter((k) => (flags & Flag[k]) !== 0);
}

// ---------------------------------------------------------------- options

/** The lesson's own options. */
export interface SniffOptions {
  /** Seconds between statistics blocks. */
  stats: number;
}

/**
 * Adds --stats <seconds> (default 10, as the seed) to a loader's command, and
 * says what the common -v does here: the seed's one line per packet (libbpf's
 * log on stderr comes with it, as in every loader).
 */
export function addSniffOptions(cmd: Command): void {
  cmd.option('--stats <seconds>', 'seconds between statistics blocks', parseSeconds, 10);
  const v = cmd.options.find((o) => o.short === '-v');
  if (v) v.description = "one line per packet (and libbpf's log on stderr)";
}

// ---------------------------------------------------------------- time

export { WallClock, formatClock };

// ---------------------------------------------------------------- packets

/** True when the event carries ports (TCP or UDP first fragment with its header). */
export function hasPorts(e: PacketDataValue): boolean {
  return (e.protocol === 6 || e.protocol === 17) && (e.src_port !== 0 || e.dst_port !== 0);
}

/**
 * One packet as a line, -v style:
 * "11:40:01.123 TCP  10.0.0.2:40000 -> 10.0.0.1:80 74 bytes ttl 64 [SYN]".
 */
export function formatPacket(e: PacketDataValue, clock: WallClock): string {
  const ports = hasPorts(e);
  const src = ports ? `${formatIpv4(e.src_ip)}:${e.src_port}` : formatIpv4(e.src_ip);
  const dst = ports ? `${formatIpv4(e.dst_ip)}:${e.dst_port}` : formatIpv4(e.dst_ip);
  const flags = flagNames(e.flags);
  return `${formatClock(clock.toDate(e.timestamp))} ${protoName(e.protocol).toUpperCase().padEnd(4)} ${src} -> ${dst} ${e.packet_size} bytes ttl ${e.ttl}${flags.length ? ` [${flags.join(',')}]` : ''}`;
}

/**
 * One packet as NDJSON: {"type":"packet","time":"<ISO>","proto":"tcp",
 * "src_ip":..,"src_port":..,"dst_ip":..,"dst_port":..,"size":74,"ttl":64,
 * "flags":["SYN"]}. Ports only when the packet has them (hasPorts).
 */
export function packetJson(e: PacketDataValue, clock: WallClock): string {
  const ports = hasPorts(e);
  const o: Record<string, unknown> = { type: 'packet', time: clock.toDate(e.timestamp).toISOString(), proto: protoName(e.protocol), src_ip: formatIpv4(e.src_ip) };
  if (ports) o.src_port = e.src_port;
  o.dst_ip = formatIpv4(e.dst_ip);
  if (ports) o.dst_port = e.dst_port;
  o.size = e.packet_size;
  o.ttl = e.ttl;
  o.flags = flagNames(e.flags);
  return JSON.stringify(o);
}

// ---------------------------------------------------------------- statistics

/** The per-CPU stats map of a loaded object. Throws a BpfError (e.g. the object is closed: EBADF). */
export function statsMap(obj: BpfObject): PerCpuMap<number, SniffStatsValue> {
  return obj.perCpuMap(STATS_MAP, u32, SniffStats);
}

/** The counters summed over CPUs. Throws a BpfError. */
export function readStats(map: PerCpuMap<number, SniffStatsValue>): SniffStatsValue {
  const sum = SniffStats.zero();
  for (const c of map.get(0) ?? []) {
    sum.total += c.total;
    sum.tcp += c.tcp;
    sum.udp += c.udp;
    sum.other += c.other;
    sum.ring_full += c.ring_full;
  }
  return sum;
}

/** `part` as a percentage of `total` (0 when total is 0). */
export function percent(part: number, total: number): number {
  return total > 0 ? (part / total) * 100 : 0;
}

/** One statistics block. */
export interface StatsBlock {
  /** When it was read. */
  time: Date;
  /** Seconds the rate is over. */
  elapsed: number;
  /** Seconds since the capture started. */
  running: number;
  /** Counters since the capture started. */
  counts: SniffStatsValue;
  /** IPv4 packets per second over `elapsed`. */
  rate: number;
  /** Percent of the packets since the start, per class. */
  shares: { tcp: number; udp: number; other: number };
  /** Events read from the ring so far. */
  events: number;
}

/** A block from the counters now and `elapsed` seconds ago. */
export function statsBlock(cur: SniffStatsValue, prev: SniffStatsValue, elapsed: number, running: number, events: number, time = new Date()): StatsBlock {
  return {
    time, elapsed, running, counts: cur, events,
    rate: rate(prev.total, cur.total, elapsed),
    shares: { tcp: percent(cur.tcp, cur.total), udp: percent(cur.udp, cur.total), other: percent(cur.other, cur.total) },
  };
}

/** The block as text lines (title given: "statistics" or "final statistics"). */
export function renderStats(s: StatsBlock, title = 'statistics'): string[] {
  const row = (name: string, n: number, share?: number) =>
    `${name.padEnd(8)}${String(n).padStart(12)}${share === undefined ? '' : `${share.toFixed(1).padStart(8)}%`}`;
  return [
    `=== ${title} at ${formatClock(s.time)}: ${formatRate(s.rate)} packets/s over ${s.elapsed.toFixed(1)} s, running ${s.running.toFixed(1)} s ===`,
    row('total', s.counts.total),
    row('tcp', s.counts.tcp, s.shares.tcp),
    row('udp', s.counts.udp, s.shares.udp),
    row('other', s.counts.other, s.shares.other),
    `${s.events} events read, ${s.counts.ring_full} lost (ring full)`,
    '',
  ];
}

/** The block as one JSON line: {"type":..,"time","elapsed","running","total","tcp","udp","other","ring_full","events","rate","shares"}. */
export function statsJson(s: StatsBlock, type = 'stats'): string {
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    type, time: s.time.toISOString(), elapsed: r(s.elapsed), running: r(s.running),
    ...s.counts, events: s.events, rate: r(s.rate),
    shares: { tcp: r(s.shares.tcp), udp: r(s.shares.udp), other: r(s.shares.other) },
  });
}

/** Reads the counters on demand and keeps the previous reading for the rate. */
export class StatsReader {
  #prev = SniffStats.zero();
  readonly #start = performance.now();
  #last = this.#start;

  constructor(private readonly map: PerCpuMap<number, SniffStatsValue>) {}

  /** The block since the previous reading. Throws a BpfError. */
  next(events: number): StatsBlock {
    const cur = readStats(this.map);
    const now = performance.now();
    const b = statsBlock(cur, this.#prev, (now - this.#last) / 1000, (now - this.#start) / 1000, events);
    this.#prev = cur;
    this.#last = now;
    return b;
  }

  /** The block of the whole run: the rate is the average since the start. Throws a BpfError. */
  final(events: number): StatsBlock {
    const cur = readStats(this.map);
    const running = (performance.now() - this.#start) / 1000;
    return statsBlock(cur, SniffStats.zero(), running, running, events);
  }
}

/** Opens the ring of a loaded object, with the kernel's ring-full counter as `lost`. Throws a BpfError. Needs kernel 5.8 (BPF ring buffer). */
export function openSniffRing(obj: BpfObject, map: PerCpuMap<number, SniffStatsValue>): RingBufReader<PacketDataValue> {
  return RingBufReader.open(obj, RINGBUF_MAP, { codec: PacketData, lost: () => readStats(map).ring_full });
}
