/**
 * mytcpdump: the user side of the lesson. The kernel program
 * (bpf/mytcpdump) parses every IPv4 packet, applies the filter the loader
 * wrote into its config map, and submits one struct packet_event per
 * matching packet to the `events` ring buffer; when the ring is full it
 * counts the event as lost in a per-CPU counter. This module mirrors those
 * structs, turns tcpdump-like options into the config, sizes the ring, opens
 * the ring buffer reader, and formats events as text or NDJSON.
 */
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, type Command } from 'commander';
import { formatIpv4, parseIpv4, parseProto, protoName, struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { RingBufReader } from '../ringbuf/reader.js';
import { MAX_RING_SIZE } from '../ringbuf/ring.js';
import { pageSize } from '../ffi/sys.js';
import type { CommonOptions, LessonContext } from '../cli/lesson.js';
import type { SharedLayout } from './shared.js';

/** struct packet_event (bpf/mytcpdump/mytcpdump.h): 16 bytes. */
export const PacketEvent = struct('packet_event', {
  src_ip: 'be32',
  dst_ip: 'be32',
  src_port: 'be16',
  dst_port: 'be16',
  pkt_len: 'u16',
  proto: 'u8',
  pad1: { pad: 1 },
});
/** A decoded event: addresses as 32-bit numbers (formatIpv4 for text), ports and length in host order. */
export type PacketEventValue = ReturnType<typeof PacketEvent.zero>;

/** struct filter_config: what the loader writes into config[0]. */
export const FilterConfig = struct('filter_config', {
  flags: 'u32',
  host: 'be32',
  port: 'be16',
  proto: 'u8',
  pad1: { pad: 1 },
});
/** The config as the codec takes it. */
export type FilterConfigValue = ReturnType<typeof FilterConfig.zero>;

/** struct mytcpdump_counters: one per CPU in counters[0]. */
export const Counters = struct('mytcpdump_counters', {
  packets: 'u64',
  filtered: 'u64',
  events: 'u64',
  lost: 'u64',
});
/** The counters, summed over CPUs. */
export type CountersValue = ReturnType<typeof Counters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'mytcpdump', cName: 'packet_event', codec: PacketEvent },
  { object: 'mytcpdump', cName: 'filter_config', codec: FilterConfig },
  { object: 'mytcpdump', cName: 'mytcpdump_counters', codec: Counters },
];

/** The ring buffer map (BPF_MAP_TYPE_RINGBUF) the events go through. */
export const EVENTS_MAP = 'events';
/** The array map whose entry 0 is the struct filter_config. */
export const CONFIG_MAP = 'config';
/** The per-CPU array map whose entry 0 is the struct mytcpdump_counters. */
export const COUNTERS_MAP = 'counters';

/** filter_config.flags: match ip->protocol. */
export const FILTER_PROTO = 1;
/** filter_config.flags: match the source or destination address. */
export const FILTER_HOST = 2;
/** filter_config.flags: TCP or UDP, match the source or destination port. */
export const FILTER_PORT = 4;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

// ---------------------------------------------------------------- ring sizing

/** Bytes one event takes in the ring: an 8-byte header and the 16-byte event. */
export const EVENT_SPAN = 8 + PacketEvent.size;
/**
 * Events per second one CPU produces at full rate, as the ring is sized
 * for. `npm run bench` (ringbuf, "drained every 20 ms") drives this program
 * with BPF_PROG_TEST_RUN, no driver at all, at ~30M events/s on the
 * development machine; a real interface delivers far fewer packets per
 * core (its driver and the stack cost more than the program), so 20M/s
 * is still well above what XDP on one core hands the program.
 */
export const FULL_RATE_PER_CPU = 20_000_000;
/** The smallest ring the kernel accepts: one page (4 KiB on x86-64; a power of two everywhere). */
export const MIN_RING_BYTES = Math.max(4096, pageSize);
/** The largest ring the reader maps (its limit, not a second copy of it). */
export const MAX_RING_BYTES = MAX_RING_SIZE;

/** The smallest power of two >= n (and >= MIN_RING_BYTES). Throws a RangeError above MAX_RING_BYTES. */
export function ringBytes(n: number): number {
  let size = MIN_RING_BYTES;
  while (size < n) size *= 2;
  if (size > MAX_RING_BYTES) throw new RangeError(`a ring of ${n} bytes is above the 1 GiB limit`);
  return size;
}

/** A ring that holds `seconds` of events at `perSecond` without a reader: ringBytes(rate * seconds * EVENT_SPAN). */
export function ringBytesFor(perSecond: number, seconds: number): number {
  return ringBytes(Math.ceil(perSecond * seconds * EVENT_SPAN));
}

/**
 * Default ring: 100 ms of one CPU's full rate with the reader stalled
 * (20 M/s x 0.1 s x 24 B = 48 MB, rounded up to 64 MiB: 2.8M events, ~94 ms
 * even at the ~30M/s of the test-run producer).
 */
export const DEFAULT_RING_BYTES = ringBytesFor(FULL_RATE_PER_CPU, 0.1);

// ---------------------------------------------------------------- options

/** The lesson's own options. */
export interface CaptureOptions {
  /** Only this IP protocol. */
  proto?: number;
  /** Only packets from or to this address (dotted quad). */
  host?: string;
  /** Only TCP/UDP packets from or to this port. */
  port?: number;
  /** Stop after this many events. */
  count?: number;
  /** Ring buffer size in bytes (a power of two). */
  ringSize: number;
}

/** Parses --proto: a name (tcp, udp, icmp, ...) or a number 0-255. Throws an InvalidArgumentError. */
export function parseProtoOption(v: string): number {
  try {
    return parseProto(v);
  } catch {
    throw new InvalidArgumentError(`'${v}' is not a protocol (a name like tcp, udp, icmp, or a number 0-255)`);
  }
}

/** Parses --host: a dotted-quad IPv4 address, normalised. Throws an InvalidArgumentError. */
export function parseHostOption(v: string): string {
  try {
    return formatIpv4(parseIpv4(v));
  } catch {
    throw new InvalidArgumentError(`'${v}' is not an IPv4 address`);
  }
}

/** Parses --port: 1-65535. Throws an InvalidArgumentError. */
export function parsePortOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new InvalidArgumentError(`'${v}' is not a port (1-65535)`);
  return n;
}

/** Parses --count: a positive integer. Throws an InvalidArgumentError. */
export function parseCountOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
}

/**
 * Parses --ring-size: bytes, with an optional K, M or G suffix (powers of
 * 1024), rounded up to a power of two of at least a page. Throws an
 * InvalidArgumentError for anything else or above 1G.
 */
export function parseRingSizeOption(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  if (!m || !(n > 0)) throw new InvalidArgumentError(`'${v}' is not a size (bytes, or a number with K, M or G)`);
  try {
    return ringBytes(n);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Adds the lesson's options (--proto, --host, --port, --count, --ring-size) to a loader's command. */
export function addCaptureOptions(cmd: Command): void {
  cmd
    .option('--proto <proto>', 'only this IP protocol (tcp, udp, icmp or a number)', parseProtoOption)
    .option('--host <ip>', 'only packets from or to this IPv4 address', parseHostOption)
    .option('--port <port>', 'only TCP/UDP packets from or to this port', parsePortOption)
    .option('--count <n>', 'stop after n events', parseCountOption)
    .option('--ring-size <bytes>', 'ring buffer size (K/M/G suffixes; rounded up to a power of two)', parseRingSizeOption, DEFAULT_RING_BYTES);
}

/** The filter part of the options. */
export type CaptureFilter = Pick<CaptureOptions, 'proto' | 'host' | 'port'>;

/** Encodes a filter as struct filter_config (flags say which fields count). Throws a TypeError for a malformed host. */
export function filterConfig(f: CaptureFilter): FilterConfigValue {
  let flags = 0;
  if (f.proto !== undefined) flags |= FILTER_PROTO;
  if (f.host !== undefined) flags |= FILTER_HOST;
  if (f.port !== undefined) flags |= FILTER_PORT;
  return { flags, host: f.host === undefined ? 0 : parseIpv4(f.host), port: f.port ?? 0, proto: f.proto ?? 0 };
}

/** The filter in tcpdump's words ("udp and host 10.0.0.1 and port 53"), or "none". */
export function describeFilter(f: CaptureFilter): string {
  const parts: string[] = [];
  if (f.proto !== undefined) parts.push(protoName(f.proto) === String(f.proto) ? `proto ${f.proto}` : protoName(f.proto));
  if (f.host !== undefined) parts.push(`host ${f.host}`);
  if (f.port !== undefined) parts.push(`port ${f.port}`);
  return parts.length ? parts.join(' and ') : 'none';
}

/** Writes the filter into the loaded object's config map. Throws a BpfError. */
export function applyFilter(obj: BpfObject, f: CaptureFilter): void {
  const m = obj.map(CONFIG_MAP, u32, FilterConfig);
  try {
    m.set(0, filterConfig(f));
  } finally {
    m.close();
  }
}

// ---------------------------------------------------------------- output

/** True when the event carries ports worth showing (TCP or UDP, not a later fragment). */
export function hasPorts(e: PacketEventValue): boolean {
  return (e.proto === IPPROTO_TCP || e.proto === IPPROTO_UDP) && (e.src_port !== 0 || e.dst_port !== 0);
}

/** The header of the text output. */
export const HEADER = `${'PROTO'.padEnd(6)}${'SOURCE'.padEnd(22)}    ${'DESTINATION'.padEnd(22)}LENGTH`;

/** One text line: "UDP   10.201.0.2:40000       -> 10.201.0.1:9000         46"; ICMP without ports. */
export function formatEvent(e: PacketEventValue): string {
  const ports = hasPorts(e);
  const src = ports ? `${formatIpv4(e.src_ip)}:${e.src_port}` : formatIpv4(e.src_ip);
  const dst = ports ? `${formatIpv4(e.dst_ip)}:${e.dst_port}` : formatIpv4(e.dst_ip);
  return `${protoName(e.proto).toUpperCase().padEnd(6)}${src.padEnd(22)} -> ${dst.padEnd(22)}${e.pkt_len}`;
}

/**
 * One NDJSON line: {"proto":"udp","src_ip":"10.0.0.2","src_port":40000,
 * "dst_ip":"10.0.0.1","dst_port":9000,"pkt_len":46}. Ports only for TCP/UDP
 * (see hasPorts); proto is the name, or the number as text.
 */
export function eventJson(e: PacketEventValue): string {
  const o: Record<string, string | number> = { proto: protoName(e.proto), src_ip: formatIpv4(e.src_ip) };
  const ports = hasPorts(e);
  if (ports) o.src_port = e.src_port;
  o.dst_ip = formatIpv4(e.dst_ip);
  if (ports) o.dst_port = e.dst_port;
  o.pkt_len = e.pkt_len;
  return JSON.stringify(o);
}

// ---------------------------------------------------------------- capture

/** The per-CPU counters map of a loaded object. Throws a BpfError. */
export function countersMap(obj: BpfObject): PerCpuMap<number, CountersValue> {
  return obj.perCpuMap(COUNTERS_MAP, u32, Counters);
}

/** The counters summed over CPUs. Throws a BpfError. */
export function readCounters(map: PerCpuMap<number, CountersValue>): CountersValue {
  return map.summed(0) ?? Counters.zero();
}

/** A capture's reader: the events ring, decoded, with the kernel's lost counter. */
export interface Capture {
  readonly reader: RingBufReader<PacketEventValue>;
  /** The kernel's counters now (summed over CPUs). */
  counters(): CountersValue;
}

/** Opens the events ring of a loaded object. Throws a BpfError. */
export function openCapture(obj: BpfObject): Capture {
  const counters = countersMap(obj);
  const reader = RingBufReader.open(obj, EVENTS_MAP, {
    codec: PacketEvent,
    lost: () => readCounters(counters).lost,
  });
  return { reader, counters: () => readCounters(counters) };
}

/** "64 MiB", "4 KiB", "100 bytes". */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** The loader's attach step: write the filter, attach the XDP program, say so. Throws a BpfError. */
export function attachCapture(ctx: LessonContext<CaptureOptions>): void {
  applyFilter(ctx.obj, ctx.opts);
  const link = ctx.own(ctx.obj.program('mytcpdump').attachXdp(ctx.iface.index, { mode: ctx.opts.mode, force: ctx.opts.force }));
  ctx.log(`attached ${link.description}, filter: ${describeFilter(ctx.opts)}, ring ${formatBytes(ctx.opts.ringSize)}; Ctrl-C to stop`);
}

/**
 * Warns on stderr, at most once a second, when the kernel counted new lost
 * events (the ring was full). Stops with the loader.
 */
export function warnOnLosses(ctx: Pick<LessonContext<unknown>, 'log' | 'defer'>, capture: Capture): void {
  let reported = 0;
  const t = setInterval(() => {
    const lost = capture.counters().lost;
    if (lost > reported) ctx.log(`warning: ${lost - reported} events lost (ring full; try a larger --ring-size)`);
    reported = lost;
  }, 1000);
  t.unref();
  ctx.defer(() => clearInterval(t));
}

/** What the loader prints at exit. */
export interface CaptureSummary {
  /** Events read from the ring. */
  events: number;
  /** Events the kernel could not put in the ring. */
  lost: number;
  /** Packets the kernel filter dropped before the ring. */
  filtered: number;
  seconds: number;
}

/** The summary of a capture that started at `startMs` (performance.now()). Throws a BpfError. */
export function captureSummary(capture: Capture, startMs: number): CaptureSummary {
  const c = capture.counters();
  return { events: capture.reader.consumed, lost: c.lost, filtered: c.filtered, seconds: (performance.now() - startMs) / 1000 };
}

/** "12 events, 0 lost, 3 filtered in the kernel; 2.4 events/s over 5.0 s". */
export function formatSummary(s: CaptureSummary): string {
  const rate = s.seconds > 0 ? s.events / s.seconds : 0;
  return `${s.events} events, ${s.lost} lost, ${s.filtered} filtered in the kernel; ${rate.toFixed(1)} events/s over ${s.seconds.toFixed(1)} s`;
}

/** The options a mytcpdump loader's context carries. */
export type MytcpdumpOptions = CommonOptions & CaptureOptions;
