/**
 * cgroup_sock: the user side of the per-cgroup connect policy lesson.
 *
 * - The structs of bpf/cgroup_sock/cgroup_sock.h, byte for byte (sharedLayouts).
 * - PortPolicy: the denied ports (a HASH the program reads on every
 *   connect), the per-CPU counters, and the events' ring buffer reader.
 * - ConnectEvent: one connect() the program decided on, decoded; rendered
 *   as a line or JSON.
 */
import { struct, u16, u32, u64, u8 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import type { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { RingBufReader } from '../ringbuf/reader.js';
import type { SharedLayout } from './shared.js';

/** struct cs_event: 40 bytes. */
export const eventStruct = struct('cs_event', {
  ts_ns: 'u64', pid: 'u32', daddr: 'ipv4', port: 'u16', verdict: 'u8', proto: 'u8', comm: { bytes: 16 }, pad: { pad: 4 },
});

/** The structs shared with the kernel program, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [{ object: 'cgroup_sock', cName: 'cs_event', codec: eventStruct }];

/** The program and map names in the object. */
export const PROGRAM = 'cgroup_sock';
export const MAPS = { denied: 'denied_ports', stats: 'cs_stats', events: 'events' } as const;
/** max_entries of denied_ports. */
export const MAX_PORTS = 1024;
/** The cgroup the loader makes when not given one, under the cgroup2 root. */
export const DEFAULT_CGROUP = 'libbpf-ts-cgroup_sock';

/** A connect() the program decided on. */
export interface ConnectEvent {
  /** CLOCK_MONOTONIC, ns. */
  tsNs: number;
  pid: number;
  comm: string;
  /** The address and port the process asked for. */
  daddr: string;
  port: number;
  proto: 'tcp' | 'udp' | string;
  verdict: 'allowed' | 'denied';
}

/** Decodes the bytes of a struct cs_event. */
export function decodeEvent(b: Buffer): ConnectEvent {
  const r = eventStruct.decode(b, 0);
  const nul = r.comm.indexOf(0);
  return {
    tsNs: r.ts_ns, pid: r.pid, daddr: r.daddr, port: r.port,
    comm: Buffer.from(r.comm.subarray(0, nul < 0 ? r.comm.length : nul)).toString('utf8'),
    proto: r.proto === 6 ? 'tcp' : r.proto === 17 ? 'udp' : String(r.proto),
    verdict: r.verdict === 1 ? 'denied' : 'allowed',
  };
}

/** One line per event: "DENY  pid 1234 (curl) connect 127.0.0.1:8080/tcp". */
export function formatEvent(e: ConnectEvent): string {
  return `${e.verdict === 'denied' ? 'DENY ' : 'allow'} pid ${e.pid} (${e.comm}) connect ${e.daddr}:${e.port}/${e.proto}`;
}

/** The counters, summed over CPUs. */
export interface PolicyCounts {
  allowed: number;
  denied: number;
  /** Events the ring buffer had no room for (the decisions still counted). */
  lost: number;
}

/** The counters as one line. */
export function formatCounts(c: PolicyCounts): string {
  return `connects: ${c.allowed} allowed, ${c.denied} denied${c.lost ? `, ${c.lost} events lost` : ''}`;
}

/** Parses a port (1..65535). Throws a RangeError. */
export function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new RangeError(`bad port '${v}': use 1..65535`);
  return n;
}

/** The policy maps of a loaded cgroup_sock object. */
export class PortPolicy {
  private constructor(
    private readonly denied: BpfMap<number, number>,
    private readonly stats: PerCpuMap<number, number>,
    private readonly obj: BpfObject,
  ) {}

  /** The maps of a loaded object (closed with it). Throws a BpfError. */
  static fromObject(obj: BpfObject): PortPolicy {
    return new PortPolicy(obj.map(MAPS.denied, u16, u8), obj.perCpuMap(MAPS.stats, u32, u64), obj);
  }

  /** Refuses connects to `port` from now on. Throws a RangeError, a BpfError (E2BIG: full). */
  deny(port: number): void {
    parsePort(String(port));
    try {
      this.denied.set(port, 1);
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.E2BIG) throw new BpfError(`deny port ${port}`, Errno.E2BIG, `${MAPS.denied} is full (${MAX_PORTS} ports)`);
      throw e;
    }
  }

  /** Allows `port` again. Throws a BpfError (ENOENT: it was not denied). */
  allow(port: number): void {
    if (!this.denied.delete(port)) throw new BpfError(`allow port ${port}`, Errno.ENOENT, `port ${port} is not denied`);
  }

  /** The denied ports, sorted. Throws a BpfError. */
  ports(): number[] {
    return this.denied.readAll().entries.map(([p]) => p).sort((a, b) => a - b);
  }

  /** The decisions so far, summed over CPUs. Throws a BpfError. */
  counts(): PolicyCounts {
    return { allowed: this.stats.sum(0), denied: this.stats.sum(1), lost: this.stats.sum(2) };
  }

  /** A reader of the decisions' events (close it before the object). Throws a BpfError. */
  events(): RingBufReader<ConnectEvent> {
    return RingBufReader.open(this.obj, MAPS.events, {
      codec: { size: eventStruct.size, encode() { throw new Error('events are read only'); }, decode: (b, o = 0) => decodeEvent(b.subarray(o, o + eventStruct.size)) },
      viewDecode: false,
      lost: () => this.stats.sum(2),
    });
  }
}
