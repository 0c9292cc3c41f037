/**
 * ping_blocker: the user side of the lesson. The kernel program
 * (bpf/ping_blocker) writes one struct ping_event per ICMP packet into the
 * `ringbuf` ring buffer (bpf_ringbuf_output with BPF_RB_FORCE_WAKEUP) and
 * drops the packets from or to an address in the `ping_hash` blocklist,
 * saying so in the event; a per-CPU counter counts the events the ring had
 * no room for. This module mirrors those structs, decodes and renders the
 * events (text or NDJSON), and edits the blocklist, in a loaded object or,
 * through its pin on bpffs, in a running loader (scripts/ping_block.ts).
 */
import { formatClock } from '../clock.js';
import { join } from 'node:path';
import { formatIpv4, ipv4, parseIpv4, struct, u32, type Codec } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { LessonPins, type FindPinsOptions } from '../pins.js';
import { RingBufReader } from '../ringbuf/reader.js';
import type { SharedLayout } from './shared.js';

/** struct ping_event (bpf/ping_blocker/ping_blocker.h): 24 bytes. */
export const PingEventStruct = struct('ping_event', {
  ts_ns: 'u64',
  saddr: 'be32',
  daddr: 'be32',
  id: 'be16',
  seq: 'be16',
  type: 'u8',
  code: 'u8',
  flags: 'u8',
  pad: { pad: 1 },
});
/** An event as the kernel wrote it: addresses as 32-bit numbers, id and seq in host order. */
export type RawPingEvent = ReturnType<typeof PingEventStruct.zero>;

/** struct ping_counters: one per CPU in counters[0]. */
export const PingCounters = struct('ping_counters', {
  icmp: 'u64',
  dropped: 'u64',
  events: 'u64',
  lost: 'u64',
});
/** The counters, summed over CPUs. */
export type PingCountersValue = ReturnType<typeof PingCounters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'ping_blocker', cName: 'ping_event', codec: PingEventStruct },
  { object: 'ping_blocker', cName: 'ping_counters', codec: PingCounters },
];

/** Map names in the object (the blocklist's is also its file name under the pin directory). */
export const MAPS = { blocklist: 'ping_hash', ring: 'ringbuf', counters: 'counters' } as const;
/** max_entries of ping_hash. */
export const MAX_BLOCKED = 1024;

/** ping_event.flags: the program returned XDP_DROP. */
export const PING_DROPPED = 1;
/** ping_event.flags: the source address is in the blocklist. */
export const PING_SRC_BLOCKED = 2;
/** ping_event.flags: the destination address is in the blocklist. */
export const PING_DST_BLOCKED = 4;
/** ping_event.flags: no ICMP header to read (a non-first fragment, or truncated). */
export const PING_NO_HEADER = 8;

/** ICMP type names (RFC 792 and successors), for display. */
export const ICMP_TYPES: Readonly<Record<number, string>> = {
  0: 'echo-reply', 3: 'dest-unreachable', 4: 'source-quench', 5: 'redirect', 8: 'echo-request', 9: 'router-advert',
  10: 'router-solicit', 11: 'time-exceeded', 12: 'param-problem', 13: 'timestamp', 14: 'timestamp-reply',
};

/** The name of an ICMP type ("echo-request"), or "type N" for one without. */
export function icmpTypeName(type: number): string {
  return ICMP_TYPES[type] ?? `type ${type}`;
}

// ---------------------------------------------------------------- events

/** A decoded event, ready to show. */
export interface PingEvent {
  /** When the program saw the packet (its CLOCK_MONOTONIC stamp turned into wall-clock time). */
  time: Date;
  src: string;
  dst: string;
  /** ICMP type and code; undefined when the packet has no ICMP header to read (PING_NO_HEADER). */
  type?: number;
  code?: number;
  /** Echo identifier and sequence number (echo request and reply only). */
  id?: number;
  seq?: number;
  dropped: boolean;
  /** Which of its addresses are blocked. */
  srcBlocked: boolean;
  dstBlocked: boolean;
}

/**
 * Turns the kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) into
 * wall-clock milliseconds, given one reading of both clocks (now by default:
 * Date.now() and process.hrtime, which is CLOCK_MONOTONIC on Linux).
 */
export function monotonicToWallMs(tsNs: number, now = { wallMs: Date.now(), monoNs: Number(process.hrtime.bigint()) }): number {
  return now.wallMs - (now.monoNs - tsNs) / 1e6;
}

/** Decodes a raw event; `wallMs` turns its timestamp into wall-clock time (monotonicToWallMs by default). */
export function decodePingEvent(r: RawPingEvent, wallMs: (tsNs: number) => number = monotonicToWallMs): PingEvent {
  const hasHeader = (r.flags & PING_NO_HEADER) === 0;
  const echo = hasHeader && (r.type === 0 || r.type === 8);
  return {
    time: new Date(wallMs(r.ts_ns)),
    src: formatIpv4(r.saddr),
    dst: formatIpv4(r.daddr),
    ...(hasHeader ? { type: r.type, code: r.code } : {}),
    ...(echo ? { id: r.id, seq: r.seq } : {}),
    dropped: (r.flags & PING_DROPPED) !== 0,
    srcBlocked: (r.flags & PING_SRC_BLOCKED) !== 0,
    dstBlocked: (r.flags & PING_DST_BLOCKED) !== 0,
  };
}

/** A ring buffer record codec that decodes straight to PingEvent. */
export const pingEventCodec: Codec<PingEvent> = {
  size: PingEventStruct.size,
  encode() { throw new TypeError('ping events are written by the kernel, not encoded'); },
  decode: (buf, off = 0) => decodePingEvent(PingEventStruct.decode(buf, off)),
};

export { formatClock };

/** "echo-request id 4660 seq 1", "dest-unreachable code 3", "fragment" (no header). */
export function describeIcmp(e: PingEvent): string {
  if (e.type === undefined) return 'fragment (no ICMP header)';
  let s = icmpTypeName(e.type);
  if (e.id !== undefined) s += ` id ${e.id} seq ${e.seq}`;
  else if (e.code) s += ` code ${e.code}`;
  return s;
}

/**
 * One text line: "12:34:56.789  10.201.0.2 → 10.201.0.1      echo-request id 4660 seq 1  DROPPED (source blocked)".
 */
export function formatPing(e: PingEvent): string {
  let s = `${formatClock(e.time)}  ${`${e.src} → ${e.dst}`.padEnd(33)} ${describeIcmp(e)}`;
  if (e.dropped) {
    const why = e.srcBlocked && e.dstBlocked ? 'both blocked' : e.srcBlocked ? 'source blocked' : 'destination blocked';
    s += `  DROPPED (${why})`;
  }
  return s;
}

/**
 * One NDJSON line: {"time":"2024-...Z","src":"10.201.0.2","dst":"10.201.0.1",
 * "type":8,"type_name":"echo-request","code":0,"id":4660,"seq":1,"dropped":false}.
 * type, type_name and code are left out without an ICMP header; id and seq
 * for other than echo; "blocked" ("src", "dst" or "both") only when dropped.
 */
export function pingJson(e: PingEvent): string {
  const o: Record<string, string | number | boolean> = { time: e.time.toISOString(), src: e.src, dst: e.dst };
  if (e.type !== undefined) {
    o.type = e.type;
    o.type_name = icmpTypeName(e.type);
    o.code = e.code ?? 0;
  }
  if (e.id !== undefined) {
    o.id = e.id;
    o.seq = e.seq ?? 0;
  }
  o.dropped = e.dropped;
  if (e.dropped) o.blocked = e.srcBlocked && e.dstBlocked ? 'both' : e.srcBlocked ? 'src' : 'dst';
  return JSON.stringify(o);
}

/** "7 ICMP packets, 3 dropped, 0 events lost". */
export function formatPingSummary(c: PingCountersValue): string {
  return `${c.icmp} ICMP packet${c.icmp === 1 ? '' : 's'}, ${c.dropped} dropped, ${c.lost} event${c.lost === 1 ? '' : 's'} lost`;
}

// ---------------------------------------------------------------- the ring and counters

/** The counters summed over CPUs. Throws a BpfError. */
export function readPingCounters(map: PerCpuMap<number, PingCountersValue>): PingCountersValue {
  return map.summed(0) ?? PingCounters.zero();
}

/** A loaded object's event stream and counters. */
export interface PingWatch {
  readonly reader: RingBufReader<PingEvent>;
  /** The kernel's counters now (summed over CPUs). */
  counters(): PingCountersValue;
}

/** Opens the ring buffer of a loaded object, its records decoded to PingEvent, its losses from the counters. Throws a BpfError. */
export function openPingWatch(obj: BpfObject): PingWatch {
  const counters = obj.perCpuMap(MAPS.counters, u32, PingCounters);
  const reader = RingBufReader.open(obj, MAPS.ring, { codec: pingEventCodec, lost: () => readPingCounters(counters).lost });
  return { reader, counters: () => readPingCounters(counters) };
}

// ---------------------------------------------------------------- the blocklist

/** The pin directories of ping_blocker loaders: PIN_ROOT/<iface>-<netns inode>, marked by the blocklist. */
export const PINS = new LessonPins('ping_blocker', MAPS.blocklist, 'blocklist');

/** Where loaders pin the blocklist by default: /sys/fs/bpf/libbpf-ts/ping_blocker. */
export const PIN_ROOT = PINS.root;

/** The default pin directory of a loader on `ifname` in this network namespace: PIN_ROOT/<ifname>-<netns inode>. */
export function defaultPinDir(ifname: string): string {
  return PINS.defaultDir(ifname);
}

/**
 * Finds the pin directory of the running loader (see LessonPins.find).
 * Throws a BpfError: ENOENT (no loader), EEXIST (several: pick one with
 * --iface or --pin-dir).
 */
export function findPinDir(opts: FindPinsOptions = {}): string {
  return PINS.find(opts);
}

/** Parses a dotted-quad address to block, normalised ("10.0.0.1"). Throws a TypeError when malformed. */
export function parseBlockAddress(text: string): string {
  try {
    return formatIpv4(parseIpv4(text));
  } catch {
    throw new TypeError(`'${text}' is not an IPv4 address`);
  }
}

/** A blocked address and how many ICMP packets it caused to be dropped. */
export interface BlockedEntry {
  ip: string;
  drops: number;
}

/** The key of ping_hash: an address in network order (what the program looks the packet's addresses up with). */
const keyCodec = ipv4;

/**
 * The blocklist (ping_hash) of a loaded object or of a running loader:
 * block, unblock, list, pin.
 */
export class Blocklist {
  /** The directory it is pinned in (pin(), openPinned()). */
  pinDir: string | undefined;

  private constructor(private readonly map: BpfMap<string, number>, private readonly owned: boolean) {}

  /** The blocklist of a loaded ping_blocker object (closed with the object). Throws a BpfError. */
  static fromObject(obj: BpfObject): Blocklist {
    return new Blocklist(obj.map(MAPS.blocklist, keyCodec, u32), false);
  }

  /**
   * Opens the blocklist a running loader pinned in `dir`. Throws a
   * BpfError: ENOENT when nothing is pinned there, ESRCH when the loader
   * that pinned it is gone (no loaded program uses the map any more).
   */
  static openPinned(dir: string): Blocklist {
    PINS.assertAlive(dir);
    const map = BpfMap.openPinned(join(dir, MAPS.blocklist), keyCodec, u32);
    const b = new Blocklist(map, true);
    b.pinDir = dir;
    return b;
  }

  /**
   * Pins the blocklist in `dir` (created if needed; on a bpffs), replacing
   * a pin left by a loader that died. Throws a BpfError: EBUSY when a running
   * loader uses `dir`, EPERM when `dir` is not on bpffs.
   */
  pin(dir: string): void {
    PINS.pin(dir, { [MAPS.blocklist]: this.map });
    this.pinDir = dir;
  }

  /** Removes the pin made by pin() and every directory that leaves empty. Safe to call twice. */
  unpin(): void {
    const dir = this.pinDir;
    if (!dir) return;
    this.pinDir = undefined;
    PINS.unpin(dir, [MAPS.blocklist]);
  }

  /**
   * Blocks an address (dotted quad); true when it was new, false when it was
   * already blocked (its drop count kept). Throws a TypeError for a malformed
   * address, a BpfError (E2BIG: the list is full).
   */
  block(ip: string): boolean {
    const key = parseBlockAddress(ip);
    try {
      this.map.set(key, 0, 'noexist');
      return true;
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.EEXIST) return false;
      if (e instanceof BpfError && e.errno === Errno.E2BIG) throw new BpfError(`block ${ip}`, Errno.E2BIG, `the blocklist is full (${MAX_BLOCKED} addresses)`);
      throw e;
    }
  }

  /** Unblocks an address; false when it was not blocked. Throws a TypeError for a malformed address, a BpfError. */
  unblock(ip: string): boolean {
    return this.map.delete(parseBlockAddress(ip));
  }

  /** Whether an address is blocked. Throws a TypeError for a malformed address, a BpfError. */
  has(ip: string): boolean {
    return this.map.has(parseBlockAddress(ip));
  }

  /** The blocked addresses with their drop counts, in address order. Throws a BpfError. */
  list(): BlockedEntry[] {
    return this.map.readAll().entries
      .map(([ip, drops]) => ({ ip, drops }))
      .sort((a, b) => parseIpv4(a.ip) - parseIpv4(b.ip));
  }

  /** Closes the map when opened from a pin (a loaded object's closes with it). Safe to call twice. */
  close(): void {
    if (this.owned) this.map.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
