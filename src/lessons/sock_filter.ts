/**
 * sock_filter: the user side of the socket filter lesson.
 *
 * - The structs of bpf/sock_filter/sock_filter.h, byte for byte (sharedLayouts).
 * - Rules as text: "tcp:80", "udp:53", "icmp", "udp" (every UDP packet),
 *   "47" (a protocol by number). parseRule/formatRule go both ways.
 * - FilterTable: the `allow` map (rules) and the per-CPU counters by reason.
 * - describePacket: what a received frame is, as one line (or JSON).
 */
import { struct, u32, u8 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import type { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import type { Packet } from '../attach/socket.js';
import type { SharedLayout } from './shared.js';

/** struct sf_rule: protocol, pad, port (host order; 0: any). */
export const ruleStruct = struct('sf_rule', { proto: 'u8', pad: { pad: 1 }, port: 'u16' });
/** struct sf_counter: packets and bytes of one reason (one per CPU). */
export const counterStruct = struct('sf_counter', { packets: 'u64', bytes: 'u64' });

/** The structs shared with the kernel program, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'sock_filter', cName: 'sf_rule', codec: ruleStruct },
  { object: 'sock_filter', cName: 'sf_counter', codec: counterStruct },
];

/** The program and map names in the object. */
export const PROGRAM = 'sock_filter';
export const MAPS = { allow: 'allow', stats: 'sf_stats' } as const;
/** max_entries of `allow`. */
export const MAX_RULES = 256;

/** enum sf_reason, in order: the index of each counter in sf_stats. */
export const SF_REASONS = ['kept', 'no_rule', 'not_ipv4', 'malformed'] as const;
export type SfReason = typeof SF_REASONS[number];
/** Packets and bytes per reason, summed over CPUs. */
export type SfStats = Record<SfReason, { packets: number; bytes: number }>;

/** A rule: an IP protocol number and a port (0: every packet of the protocol). */
export interface SfRule {
  proto: number;
  port: number;
}

const PROTO_NAMES: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, gre: 47, esp: 50, sctp: 132 };
/** The name of an IP protocol number ("tcp"), or the number as text. */
export function protoName(n: number): string {
  return Object.entries(PROTO_NAMES).find(([, v]) => v === n)?.[0] ?? String(n);
}

/**
 * Parses "tcp:80", "udp:53", "icmp", "udp", "47" or "6:443". Throws a
 * RangeError saying what is wrong (unknown protocol, a port out of
 * 1..65535, a port on a protocol without ports).
 */
export function parseRule(text: string): SfRule {
  const m = /^([a-z]+|\d+)(?::(\d+))?$/i.exec(text.trim());
  if (!m) throw new RangeError(`bad rule '${text}': use PROTO or PROTO:PORT (tcp:80, udp:53, icmp, 47)`);
  const name = m[1].toLowerCase();
  const proto = /^\d+$/.test(name) ? Number(name) : PROTO_NAMES[name];
  if (proto === undefined) throw new RangeError(`bad rule '${text}': unknown protocol '${m[1]}' (use ${Object.keys(PROTO_NAMES).join(', ')} or a number)`);
  if (proto > 255) throw new RangeError(`bad rule '${text}': protocol ${proto} is over 255`);
  if (m[2] === undefined) return { proto, port: 0 };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new RangeError(`bad rule '${text}': port ${port} is not in 1..65535`);
  if (proto !== 6 && proto !== 17) throw new RangeError(`bad rule '${text}': only tcp and udp have ports`);
  return { proto, port };
}

/** A rule as parseRule reads it: "tcp:80", "icmp". */
export function formatRule(r: SfRule): string {
  return r.port ? `${protoName(r.proto)}:${r.port}` : protoName(r.proto);
}

type Counter = { packets: number; bytes: number };

/** The filter's rules and counters in a loaded sock_filter object. */
export class FilterTable {
  private constructor(
    private readonly allowMap: BpfMap<SfRule, number>,
    private readonly statsMap: PerCpuMap<number, Counter>,
  ) {}

  /** The maps of a loaded object (closed with it). Throws a BpfError. */
  static fromObject(obj: BpfObject): FilterTable {
    return new FilterTable(obj.map(MAPS.allow, ruleStruct, u8), obj.perCpuMap(MAPS.stats, u32, counterStruct));
  }

  /** Allows a rule ("tcp:80" or {proto, port}); returns it as text. Throws a RangeError, a BpfError (E2BIG: full). */
  allow(rule: string | SfRule): string {
    const r = typeof rule === 'string' ? parseRule(rule) : rule;
    try {
      this.allowMap.set(r, 1);
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.E2BIG) throw new BpfError(`allow ${formatRule(r)}`, Errno.E2BIG, `${MAPS.allow} is full (${MAX_RULES} rules)`);
      throw e;
    }
    return formatRule(r);
  }

  /** Removes a rule. Throws a RangeError, a BpfError (ENOENT: no such rule). */
  remove(rule: string | SfRule): string {
    const r = typeof rule === 'string' ? parseRule(rule) : rule;
    if (!this.allowMap.delete(r)) throw new BpfError(`remove ${formatRule(r)}`, Errno.ENOENT, `no rule ${formatRule(r)}`);
    return formatRule(r);
  }

  /** Every rule, by protocol then port. Throws a BpfError. */
  rules(): SfRule[] {
    return this.allowMap.readAll().entries.map(([r]) => ({ proto: r.proto, port: r.port }))
      .sort((a, b) => a.proto - b.proto || a.port - b.port);
  }

  /** The counters per reason, summed over CPUs. Throws a BpfError. */
  stats(): SfStats {
    const out = {} as SfStats;
    SF_REASONS.forEach((r, i) => {
      const c = this.statsMap.summed(i);
      out[r] = { packets: c?.packets ?? 0, bytes: c?.bytes ?? 0 };
    });
    return out;
  }
}

/** What a frame is, parsed in TS (the filter already chose it). */
export interface PacketSummary {
  direction: Packet['direction'];
  length: number;
  /** 'ipv4', 'arp', 'ipv6' or the EtherType in hex. */
  ether: string;
  src?: string;
  dst?: string;
  proto?: string;
  sport?: number;
  dport?: number;
  /** ICMP type. */
  icmpType?: number;
}

const ip4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/** Parses a frame's Ethernet, IPv4 and TCP/UDP/ICMP headers as far as they are there. */
export function summarize(p: Packet): PacketSummary {
  const b = p.data;
  const s: PacketSummary = { direction: p.direction, length: p.length, ether: '?' };
  if (b.length < 14) return s;
  const type = b.readUInt16BE(12);
  s.ether = type === 0x0800 ? 'ipv4' : type === 0x0806 ? 'arp' : type === 0x86dd ? 'ipv6' : `0x${type.toString(16).padStart(4, '0')}`;
  if (type !== 0x0800 || b.length < 34) return s;
  const ihl = (b[14] & 0x0f) * 4;
  s.src = ip4(b, 26);
  s.dst = ip4(b, 30);
  const proto = b[23];
  s.proto = protoName(proto);
  const l4 = 14 + ihl;
  const firstFragment = (b.readUInt16BE(20) & 0x1fff) === 0;
  if (firstFragment && (proto === 6 || proto === 17) && b.length >= l4 + 4) {
    s.sport = b.readUInt16BE(l4);
    s.dport = b.readUInt16BE(l4 + 2);
  } else if (firstFragment && proto === 1 && b.length > l4) {
    s.icmpType = b[l4];
  }
  return s;
}

/** One line per packet: "in   tcp 10.0.0.2:40000 > 10.0.0.1:80  74 bytes". */
export function formatPacket(s: PacketSummary): string {
  const dir = s.direction === 'outgoing' ? 'out' : s.direction === 'host' ? 'in' : s.direction;
  let what: string;
  if (s.src === undefined) what = s.ether;
  else if (s.sport !== undefined) what = `${s.proto} ${s.src}:${s.sport} > ${s.dst}:${s.dport}`;
  else if (s.icmpType !== undefined) what = `${s.proto} ${s.src} > ${s.dst} type ${s.icmpType}`;
  else what = `${s.proto} ${s.src} > ${s.dst}`;
  return `${dir.padEnd(4)} ${what}  ${s.length} bytes`;
}

/** The counters as one line: "kept 12 (1.2 kB); refused: no_rule 30, not_ipv4 2". */
export function formatStats(s: SfStats): string {
  const refused = SF_REASONS.filter((r) => r !== 'kept' && s[r].packets > 0).map((r) => `${r} ${s[r].packets}`);
  return `kept ${s.kept.packets} (${s.kept.bytes} bytes); refused: ${refused.length ? refused.join(', ') : 'none'}`;
}
