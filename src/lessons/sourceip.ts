/**
 * sourceip: the user side of the lesson. The kernel program (bpf/sourceip)
 * sends one struct sourceip_event per IPv4 or IPv6 packet through the
 * `events` ring buffer: both addresses as raw bytes in network order, the
 * family, the protocol and the length; a full ring is counted per CPU. This
 * module mirrors those structs, turns the address bytes into text (dotted
 * quad, or RFC 5952 for IPv6 via formatIpv6), renders one line or one JSON
 * object per packet, and keeps the per-source tally the loader prints at exit.
 * The kernel side needs XDP and BPF_MAP_TYPE_RINGBUF (Linux 5.8+).
 */
import { WallClock, formatClock } from '../clock.js';
import { formatIpv6, protoName, struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { RingBufReader } from '../ringbuf/reader.js';
import type { LessonContext } from '../cli/lesson.js';
import type { SharedLayout } from './shared.js';

/** struct sourceip_event (bpf/sourceip/sourceip.h): 48 bytes. */
export const SourceEvent = struct('sourceip_event', {
  ts_ns: 'u64',
  saddr: { bytes: 16 },
  daddr: { bytes: 16 },
  pkt_len: 'u16',
  family: 'u8',
  proto: 'u8',
  pad1: { pad: 4 },
});
/** A decoded event: addresses as their 16 raw bytes (formatAddress for text). */
export type SourceEventValue = ReturnType<typeof SourceEvent.zero>;

/** struct sourceip_counters: one per CPU in counters[0]. */
export const Counters = struct('sourceip_counters', {
  ipv4: 'u64',
  ipv6: 'u64',
  events: 'u64',
  lost: 'u64',
});
/** The counters, summed over CPUs. */
export type CountersValue = ReturnType<typeof Counters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'sourceip', cName: 'sourceip_event', codec: SourceEvent },
  { object: 'sourceip', cName: 'sourceip_counters', codec: Counters },
];

/** The ring buffer map the events go through. */
export const EVENTS_MAP = 'events';
/** The per-CPU array map whose entry 0 is the struct sourceip_counters. */
export const COUNTERS_MAP = 'counters';

// ---------------------------------------------------------------- addresses

/**
 * The text of an address field: family 4 reads the first 4 bytes as a
 * dotted quad, family 6 all 16 as RFC 5952 text. Throws a TypeError for
 * another family or a field that is not 16 bytes.
 */
export function formatAddress(family: number, b: Uint8Array): string {
  if (b.length !== 16) throw new TypeError('an address field is 16 bytes');
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (family === 6) return formatIpv6(b);
  throw new TypeError(`unknown address family ${family}`);
}

/** "icmpv6", "udp", or the number as text. */
export function protocolName(p: number): string {
  return protoName(p);
}

// ---------------------------------------------------------------- time

export { WallClock, formatClock };

// ---------------------------------------------------------------- rendering

/** One packet, as text and JSON render it. */
export interface SourcePacket {
  time: Date;
  family: 4 | 6;
  src: string;
  dst: string;
  proto: number;
  len: number;
}

/** Decodes an event into addresses as text and a wall-clock time. Throws a TypeError for an unknown family. */
export function toPacket(e: SourceEventValue, clock: WallClock): SourcePacket {
  if (e.family !== 4 && e.family !== 6) throw new TypeError(`unknown address family ${e.family}`);
  return {
    time: clock.toDate(e.ts_ns), family: e.family,
    src: formatAddress(e.family, e.saddr), dst: formatAddress(e.family, e.daddr), proto: e.proto, len: e.pkt_len,
  };
}

/** One line: "11:40:01.123 IPv6 fd6c:6274:7300:1::2 -> fd6c:6274:7300:1::1 icmpv6 104 bytes". */
export function formatPacket(p: SourcePacket): string {
  return `${formatClock(p.time)} IPv${p.family} ${p.src} -> ${p.dst} ${protocolName(p.proto)} ${p.len} bytes`;
}

/** One NDJSON line: {"time":"<ISO>","family":6,"src":"fd6c:...::2","dst":"...","proto":"icmpv6","len":104}. */
export function packetJson(p: SourcePacket): string {
  return JSON.stringify({ time: p.time.toISOString(), family: p.family, src: p.src, dst: p.dst, proto: protocolName(p.proto), len: p.len });
}

// ---------------------------------------------------------------- per-source summary

/** What one source sent. */
export interface SourceTally {
  src: string;
  family: 4 | 6;
  packets: number;
  bytes: number;
}

/** Counts packets and bytes per source address. */
export class SourceTable {
  readonly #by = new Map<string, SourceTally>();

  /** Adds a packet to its source's tally. */
  add(p: SourcePacket): void {
    const t = this.#by.get(p.src);
    if (t) { t.packets++; t.bytes += p.len; } else this.#by.set(p.src, { src: p.src, family: p.family, packets: 1, bytes: p.len });
  }

  /** The tallies, most packets first, then IPv4 before IPv6, then by address text. */
  rows(): SourceTally[] {
    return [...this.#by.values()].sort((a, b) => b.packets - a.packets || a.family - b.family || (a.src < b.src ? -1 : a.src > b.src ? 1 : 0));
  }
}

/** The summary lines: a header, one line per source, then the kernel's counts ("0 lost" included: losses are never silent). */
export function formatSummary(rows: SourceTally[], c: CountersValue): string[] {
  const w = Math.max(6, ...rows.map((r) => r.src.length));
  const lines = [`${'source'.padEnd(w)}  family  ${'packets'.padStart(8)}  ${'bytes'.padStart(10)}`];
  for (const r of rows) lines.push(`${r.src.padEnd(w)}  IPv${r.family}    ${String(r.packets).padStart(8)}  ${String(r.bytes).padStart(10)}`);
  lines.push(`${c.ipv4} IPv4 and ${c.ipv6} IPv6 packets seen, ${c.events} events, ${c.lost} lost (ring full)`);
  return lines;
}

// ---------------------------------------------------------------- capture

/** The counters summed over CPUs. Throws a BpfError. */
export function readCounters(map: PerCpuMap<number, CountersValue>): CountersValue {
  return map.summed(0) ?? Counters.zero();
}

/** A capture's reader: the events ring, decoded, with the kernel's counters. */
export interface SourceCapture {
  readonly reader: RingBufReader<SourceEventValue>;
  /** The kernel's counters now (summed over CPUs). */
  counters(): CountersValue;
}

/** Opens the events ring of a loaded sourceip object (BPF ring buffers: kernel 5.8+). Throws a BpfError. */
export function openSourceCapture(obj: BpfObject): SourceCapture {
  const map = obj.perCpuMap(COUNTERS_MAP, u32, Counters);
  const counters = () => readCounters(map);
  const reader = RingBufReader.open(obj, EVENTS_MAP, { codec: SourceEvent, lost: () => counters().lost });
  return { reader, counters };
}

/**
 * Warns on stderr, at most once a second, when the kernel counted new lost
 * events (the ring was full). Stops with the loader.
 */
export function warnOnLosses(ctx: Pick<LessonContext<unknown>, 'log' | 'defer'>, capture: SourceCapture): void {
  let reported = 0;
  const t = setInterval(() => {
    const lost = capture.counters().lost;
    if (lost > reported) ctx.log(`warning: ${lost - reported} events lost (ring full)`);
    reported = lost;
  }, 1000);
  t.unref();
  ctx.defer(() => clearInterval(t));
}
