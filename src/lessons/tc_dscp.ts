/**
 * tc_dscp: the user side of the QoS marking lesson. The TC program
 * (bpf/tc_dscp) sets the DSCP of IPv4 UDP datagrams to a configured port or
 * port range (SIP 5060 and RTP 10000-20000 by default, DSCP 46 "EF"),
 * keeping the ECN bits and fixing the IP checksum, and counts what it did
 * per CPU. This module mirrors its structs, turns the options into the
 * config, reads the counters, and renders them as a line or JSON.
 */
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError } from 'commander';
import { struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { formatRate, rate } from '../cli/output.js';
import type { SharedLayout } from './shared.js';

/** struct dscp_config (bpf/tc_dscp/tc_dscp.h): config[0], ports in host order. */
export const DscpConfig = struct('dscp_config', {
  port: 'u16',
  range_lo: 'u16',
  range_hi: 'u16',
  dscp: 'u8',
  pad: { pad: 1 },
});
/** The config as the codec takes it. */
export type DscpConfigValue = ReturnType<typeof DscpConfig.zero>;

/** struct dscp_counters: counters[0], one per CPU. */
export const DscpCounters = struct('dscp_counters', {
  marked: 'u64',
  already: 'u64',
  unmatched: 'u64',
  skipped: 'u64',
});
/** The counters (summed over CPUs). */
export type DscpCountersValue = ReturnType<typeof DscpCounters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'tc_dscp', cName: 'dscp_config', codec: DscpConfig },
  { object: 'tc_dscp', cName: 'dscp_counters', codec: DscpCounters },
];

/** The program's name in the object. */
export const PROGRAM = 'tc_dscp';
/** Map names in the object. */
export const MAPS = { config: 'config', counters: 'counters' } as const;
/**
 * The clsact handle and priority of the program's filter (with --tc
 * clsact): a fixed slot, so a filter that a SIGKILLed loader left behind is
 * found and removed by the next one (see attachTc's `slot`).
 */
export const DSCP_TC_SLOT = { handle: 0xd5c9, priority: 0xd5c9 } as const;

/** DSCP 46, expedited forwarding (RFC 3246): what VoIP gets. */
export const DSCP_EF = 46;
/** The seed's ports: SIP. */
export const SIP_PORT = 5060;
/** The seed's ports: the RTP range. */
export const RTP_RANGE: readonly [number, number] = [10000, 20000];

/** What to mark: UDP to `port` and/or to ports `range[0]..range[1]` get `dscp`. */
export interface MarkRule {
  /** A single destination port; undefined: none. */
  port?: number;
  /** An inclusive destination port range; undefined: none. */
  range?: readonly [number, number];
  /** 0-63. */
  dscp: number;
}

/** The lesson's default rule: SIP and RTP get EF. */
export const DEFAULT_RULE: MarkRule = { port: SIP_PORT, range: RTP_RANGE, dscp: DSCP_EF };

/** DSCP names (RFC 2474 class selectors, RFC 2597 assured forwarding, RFC 3246 EF) → value. */
export const DSCP_NAMES: Readonly<Record<string, number>> = (() => {
  const names: Record<string, number> = { ef: 46, be: 0, default: 0, va: 44 };
  for (let i = 0; i < 8; i++) names[`cs${i}`] = i * 8;
  for (let c = 1; c <= 4; c++) for (let d = 1; d <= 3; d++) names[`af${c}${d}`] = c * 8 + d * 2;
  return names;
})();

/** "EF", "AF41", "CS5", or '' for a DSCP without a name. */
export function dscpName(dscp: number): string {
  if (dscp === 0) return 'BE';
  const n = Object.entries(DSCP_NAMES).find(([k, v]) => v === dscp && k !== 'be' && k !== 'default' && k !== 'cs0');
  return n ? n[0].toUpperCase() : '';
}

/** ECN field names (RFC 3168). */
export const ECN_NAMES = ['Not-ECT', 'ECT(1)', 'ECT(0)', 'CE'] as const;

/** A TOS byte in words: "0xb9 (DSCP 46 EF, ECN ECT(1))". */
export function formatTos(tos: number): string {
  const dscp = tos >> 2;
  const name = dscpName(dscp);
  return `0x${tos.toString(16).padStart(2, '0')} (DSCP ${dscp}${name ? ` ${name}` : ''}, ECN ${ECN_NAMES[tos & 3]})`;
}

/** What the program writes over a TOS byte: the new DSCP, the old ECN bits. */
export function markedTos(tos: number, dscp: number): number {
  return ((dscp << 2) | (tos & 3)) & 0xff;
}

function portOf(what: string, s: string): number {
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`${what}: '${s}' is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new InvalidArgumentError(`${what}: port ${n} is out of range (1-65535)`);
  return n;
}

/** Parses --port: a port 1-65535, or 'none'. Throws commander's InvalidArgumentError. */
export function parsePortOption(v: string): number | 'none' {
  return v === 'none' ? 'none' : portOf('--port', v.trim());
}

/** Parses --range: "LO-HI" with 1 <= LO <= HI <= 65535 ("5004" is 5004-5004), or 'none'. Throws commander's InvalidArgumentError. */
export function parseRangeOption(v: string): readonly [number, number] | 'none' {
  if (v === 'none') return 'none';
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`--range: '${v}' is not LO-HI (e.g. 10000-20000) or none`);
  const lo = portOf('--range', m[1]);
  const hi = m[2] === undefined ? lo : portOf('--range', m[2]);
  if (lo > hi) throw new InvalidArgumentError(`--range: ${lo}-${hi} is empty (the low end is above the high end)`);
  return [lo, hi];
}

/** Parses --dscp: 0-63, or a name (ef, af41, cs5, be...). Throws commander's InvalidArgumentError. */
export function parseDscpOption(v: string): number {
  const s = v.trim().toLowerCase();
  if (s in DSCP_NAMES) return DSCP_NAMES[s];
  if (!/^\d+$/.test(s) || Number(s) > 63) throw new InvalidArgumentError(`--dscp: '${v}' is not 0-63 or a name (ef, af11-af43, cs0-cs7, be)`);
  return Number(s);
}

/** The rule from the loader's options (each undefined: the default). Throws a RangeError when nothing would be marked. */
export function ruleFromOptions(o: { port?: number | 'none'; range?: readonly [number, number] | 'none'; dscp?: number }): MarkRule {
  const port = o.port === undefined ? DEFAULT_RULE.port : o.port === 'none' ? undefined : o.port;
  const range = o.range === undefined ? DEFAULT_RULE.range : o.range === 'none' ? undefined : o.range;
  if (port === undefined && range === undefined) throw new RangeError('--port none and --range none: nothing to mark');
  return { port, range, dscp: o.dscp ?? DSCP_EF };
}

/** The rule as struct dscp_config. Throws a RangeError for a bad port, range or DSCP. */
export function dscpConfig(r: MarkRule): DscpConfigValue {
  const ok = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
  if (r.port !== undefined && !ok(r.port)) throw new RangeError(`port ${r.port} is out of range (1-65535)`);
  if (r.range && (!ok(r.range[0]) || !ok(r.range[1]) || r.range[0] > r.range[1])) throw new RangeError(`bad port range ${r.range[0]}-${r.range[1]}`);
  if (!Number.isInteger(r.dscp) || r.dscp < 0 || r.dscp > 63) throw new RangeError(`DSCP ${r.dscp} is out of range (0-63)`);
  return { port: r.port ?? 0, range_lo: r.range?.[0] ?? 0, range_hi: r.range?.[1] ?? 0, dscp: r.dscp };
}

/** "UDP to port 5060 or 10000-20000 → DSCP 46 (EF)" */
export function describeRule(r: MarkRule): string {
  const ports = [r.port !== undefined ? String(r.port) : '', r.range ? (r.range[0] === r.range[1] ? String(r.range[0]) : `${r.range[0]}-${r.range[1]}`) : '']
    .filter(Boolean);
  const name = dscpName(r.dscp);
  return `UDP to port ${ports.join(' or ')} → DSCP ${r.dscp}${name ? ` (${name})` : ''}`;
}

/** Writes the rule into config[0] of a loaded object. Throws a RangeError (bad rule), a BpfError. */
export function applyRule(obj: BpfObject, r: MarkRule): void {
  const value = dscpConfig(r);
  const m = obj.map(MAPS.config, u32, DscpConfig);
  try {
    m.set(0, value);
  } finally {
    m.close();
  }
}

/** The per-CPU counters map of a loaded object. Throws a BpfError. */
export function countersMap(obj: BpfObject): PerCpuMap<number, DscpCountersValue> {
  return obj.perCpuMap(MAPS.counters, u32, DscpCounters);
}

/** The counters summed over CPUs. Throws a BpfError. */
export function readCounters(map: PerCpuMap<number, DscpCountersValue>): DscpCountersValue {
  return map.summed(0) ?? DscpCounters.zero();
}

/** One reading: the counters and the marking rate since the previous one. */
export interface DscpSnapshot extends DscpCountersValue {
  time: Date;
  /** Seconds since the previous reading. */
  elapsed: number;
  /** Packets marked per second over the last interval. */
  markedPerSec: number;
}

/** Builds a snapshot from the counters of now and of the previous reading, `elapsed` seconds before. */
export function dscpSnapshot(cur: DscpCountersValue, prevMarked: number, elapsed: number, time = new Date()): DscpSnapshot {
  return { ...cur, time, elapsed, markedPerSec: rate(prevMarked, cur.marked, elapsed) };
}

/** Reads the counters on demand, keeping the previous reading for the rate. */
export class DscpMonitor {
  #prev = 0;
  #last = performance.now();

  constructor(private readonly map: PerCpuMap<number, DscpCountersValue>) {}

  /** Throws a BpfError. */
  snapshot(): DscpSnapshot {
    const cur = readCounters(this.map);
    const now = performance.now();
    const s = dscpSnapshot(cur, this.#prev, (now - this.#last) / 1000);
    this.#prev = cur.marked;
    this.#last = now;
    return s;
  }
}

/** "12:00:01  marked 120 (60.0/s)  already 0  unmatched 7  skipped 2" */
export function renderCounts(s: DscpSnapshot): string {
  return `${s.time.toISOString().slice(11, 19)}  marked ${s.marked} (${formatRate(s.markedPerSec)}/s)  already ${s.already}  unmatched ${s.unmatched}  skipped ${s.skipped}`;
}

/** A snapshot as one JSON line: {time, elapsed, marked, markedPerSec, already, unmatched, skipped}. */
export function countsJson(s: DscpSnapshot): string {
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: round(s.elapsed), marked: s.marked, markedPerSec: round(s.markedPerSec),
    already: s.already, unmatched: s.unmatched, skipped: s.skipped,
  });
}
