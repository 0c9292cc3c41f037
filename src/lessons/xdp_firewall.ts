/**
 * xdp_firewall: the user side of the firewall lesson.
 *
 * - The structs of bpf/xdp_firewall/xdp_firewall.h, byte for byte (sharedLayouts).
 * - Rules as text: { prefix: '192.168.0.0/16', action: 'drop' }. A /32 goes
 *   to host_rules (a hash: one exact lookup), any shorter prefix to
 *   prefix_rules (an LPM trie, keys through the lpmIpv4 codec). The kernel
 *   asks host_rules first, then the trie for the longest matching prefix;
 *   matchRule() answers the same question in user space.
 * - FirewallTable: add, remove and list rules and read the per-source
 *   counters of a loaded object or of a running loader (its pinned maps).
 * - TalkerMonitor and the renderers: the top-talkers table the loader prints.
 */
import { join } from 'node:path';
import { formatCidr, formatIpv4, lpmIpv4, parseCidr, struct, u32, u64, type Ipv4Prefix } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { LessonPins, type FindPinsOptions } from '../pins.js';
import { formatRate, rate } from '../cli/output.js';
import type { SharedLayout } from './shared.js';

/** struct lpm_v4_key: prefix length (host order), address bytes (network order). lpmIpv4 is its friendly codec. */
export const lpmKeyStruct = struct('lpm_v4_key', { prefixlen: 'u32', data: { bytes: 4 } });
/** struct src_counter: what one source sent (one per CPU). */
export const srcCounterStruct = struct('src_counter', { packets: 'u64', bytes: 'u64', dropped: 'u64', dropped_bytes: 'u64' });

/** The structs shared with the kernel program, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'xdp_firewall', cName: 'lpm_v4_key', codec: lpmKeyStruct },
  { object: 'xdp_firewall', cName: 'src_counter', codec: srcCounterStruct },
];

/** Map names in the object (and file names under the pin directory). */
export const MAPS = { hosts: 'host_rules', prefixes: 'prefix_rules', sources: 'src_stats', stats: 'fw_stats' } as const;
/** The XDP program. */
export const PROGRAM = 'xdp_firewall';
/** max_entries of prefix_rules, host_rules and src_stats in the C file. */
export const MAX_PREFIXES = 131072;
export const MAX_HOSTS = 65536;
export const MAX_SOURCES = 65536;

/** What a rule does. */
export type FwAction = 'drop' | 'allow';
/** enum fw_action: the numbers in the maps (the XDP verdicts: XDP_DROP, XDP_PASS). */
export const FW_ACTION: Record<FwAction, number> = { drop: 1, allow: 2 };
function actionOf(n: number): FwAction {
  if (n === FW_ACTION.drop) return 'drop';
  if (n === FW_ACTION.allow) return 'allow';
  throw new TypeError(`rule action ${n} is neither drop (1) nor allow (2)`);
}

/** enum fw_reason, in order: the index of each counter in fw_stats. */
export const FW_REASONS = [
  'pass_no_rule', 'pass_host', 'pass_prefix', 'drop_host', 'drop_prefix', 'pass_not_ipv4', 'pass_malformed', 'untracked',
] as const;
export type FwReason = typeof FW_REASONS[number];
/** Per-reason counters, summed over CPUs. */
export type FwStats = Record<FwReason, number>;

/** A rule: a prefix 'a.b.c.d/len' (host bits zero) and what happens to its sources' packets. */
export interface Rule {
  prefix: string;
  action: FwAction;
}

/** A source's counters, summed over CPUs. */
export interface SourceCounts {
  /** The source address, dotted quad. */
  source: string;
  packets: number;
  bytes: number;
  dropped: number;
  droppedBytes: number;
}

/**
 * Parses a rule's prefix ('10.0.0.0/8'; a bare address is a /32), clearing
 * host bits. Throws a TypeError/RangeError saying what is wrong.
 */
export function parseRulePrefix(s: string): Ipv4Prefix {
  return parseCidr(s);
}

/**
 * The rule that decides `addr`'s packets, as the kernel program finds it:
 * a /32 first, else the longest matching prefix; undefined: no rule (pass).
 */
export function matchRule(rules: readonly Rule[], addr: string): Rule | undefined {
  const a = parseCidr(addr).addr;
  let best: { r: Rule; len: number } | undefined;
  for (const r of rules) {
    const p = parseCidr(r.prefix);
    const mask = p.len === 0 ? 0 : (0xffffffff << (32 - p.len)) >>> 0;
    if (((a & mask) >>> 0) === p.addr && (!best || p.len > best.len)) best = { r, len: p.len };
  }
  return best?.r;
}

/** The pin directories of xdp_firewall loaders: PIN_ROOT/<iface>-<netns inode>, marked by the prefix rules. */
export const PINS = new LessonPins('xdp_firewall', MAPS.prefixes, 'firewall');

/** Where a loader pins its maps by default: /sys/fs/bpf/libbpf-ts/xdp_firewall. */
export const PIN_ROOT = PINS.root;

/** The default pin directory of a loader on `ifname` in this network namespace: PIN_ROOT/<ifname>-<netns inode>. */
export function defaultPinDir(ifname: string): string {
  return PINS.defaultDir(ifname);
}

/** The pin directories of running (or dead, not cleaned up) loaders. */
export function listPinDirs(): string[] {
  return PINS.list();
}

/**
 * Finds the pin directory of the running loader (see LessonPins.find).
 * Throws a BpfError (ENOENT: none; EEXIST: several).
 */
export function findPinDir(opts: FindPinsOptions = {}): string {
  return PINS.find(opts);
}

type Counter = { packets: number; bytes: number; dropped: number; dropped_bytes: number };

/** Big-endian address number <-> the 4 bytes of a __be32 key: the ipv4 codec's job, kept as numbers here. */
const be32 = {
  size: 4,
  encode(v: number, b: Buffer, o = 0) { b.writeUInt32BE(v, o); },
  decode(b: Buffer, o = 0) { return b.readUInt32BE(o); },
};

/**
 * The rules and counters of one firewall: host_rules (/32 → action),
 * prefix_rules (LPM trie: prefix → action), src_stats (per-CPU counters per
 * source) and fw_stats (per-CPU counters per reason). Two processes may
 * edit the same maps (the loader and scripts/firewall.ts); each call reads
 * the kernel's state.
 */
export class FirewallTable {
  private constructor(
    private readonly hosts: BpfMap<number, number>,
    private readonly prefixes: BpfMap<string, number>,
    private readonly sourcesMap: PerCpuMap<number, Counter>,
    private readonly statsMap: PerCpuMap<number, number>,
    /** Where the maps are pinned (when opened from a pin directory or pinned). */
    public pinDir?: string,
  ) {}

  /** The tables of a loaded xdp_firewall object (closed with the object). Throws a BpfError. */
  static fromObject(obj: BpfObject): FirewallTable {
    return new FirewallTable(
      obj.map(MAPS.hosts, be32, u32),
      obj.map(MAPS.prefixes, lpmIpv4, u32),
      obj.perCpuMap(MAPS.sources, be32, srcCounterStruct),
      obj.perCpuMap(MAPS.stats, u32, u64),
    );
  }

  /**
   * Opens the maps a running loader pinned in `dir`. Throws a BpfError:
   * ENOENT when nothing is pinned there, ESRCH when the loader that pinned
   * them is gone (no loaded program uses them any more).
   */
  static openPinned(dir: string): FirewallTable {
    PINS.assertAlive(dir);
    const opened: Array<{ close(): void }> = [];
    try {
      const prefixes = BpfMap.openPinned(join(dir, MAPS.prefixes), lpmIpv4, u32);
      opened.push(prefixes);
      const hosts = BpfMap.openPinned(join(dir, MAPS.hosts), be32, u32);
      opened.push(hosts);
      const sources = PerCpuMap.openPinned(join(dir, MAPS.sources), be32, srcCounterStruct);
      opened.push(sources);
      const stats = PerCpuMap.openPinned(join(dir, MAPS.stats), u32, u64);
      return new FirewallTable(hosts, prefixes, sources, stats, dir);
    } catch (e) {
      for (const m of opened) m.close();
      throw e;
    }
  }

  /**
   * Pins the four maps in `dir` (created if needed; it must be on a bpffs),
   * replacing pins a loader that died (SIGKILL) left there. Throws a
   * BpfError: EBUSY when a running loader uses `dir`, EPERM when `dir` is
   * not on bpffs. Returns true when it replaced stale pins.
   */
  pin(dir: string): boolean {
    const replaced = PINS.pin(dir, { [MAPS.hosts]: this.hosts, [MAPS.prefixes]: this.prefixes, [MAPS.sources]: this.sourcesMap, [MAPS.stats]: this.statsMap });
    this.pinDir = dir;
    return replaced;
  }

  /** Removes the pins made by pin() and every directory that leaves empty. Safe to call twice. */
  unpin(): void {
    const dir = this.pinDir;
    if (!dir) return;
    this.pinDir = undefined;
    PINS.unpin(dir, Object.values(MAPS));
  }

  /**
   * Adds or changes the rule of a prefix ('10.0.0.0/8'; a bare address or
   * a /32 goes to host_rules). Returns the prefix as stored. Throws a
   * TypeError/RangeError for a bad prefix, a BpfError (E2BIG: map full).
   */
  set(prefix: string, action: FwAction): string {
    const p = parseCidr(prefix);
    const code = FW_ACTION[action];
    if (code === undefined) throw new TypeError(`unknown action '${String(action)}' (use drop or allow)`);
    const text = formatCidr(p);
    try {
      if (p.len === 32) this.hosts.set(p.addr, code);
      else this.prefixes.set(text, code);
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.E2BIG) {
        throw new BpfError(`${action} ${text}`, Errno.E2BIG, p.len === 32 ? `${MAPS.hosts} is full (${MAX_HOSTS} addresses)` : `${MAPS.prefixes} is full (${MAX_PREFIXES} prefixes)`);
      }
      throw e;
    }
    return text;
  }

  /** Adds or changes many rules; the prefixes as stored. Throws as set(), after checking every prefix first. */
  setAll(rules: ReadonlyArray<Rule>): string[] {
    rules.forEach((r) => parseCidr(r.prefix));
    return rules.map((r) => this.set(r.prefix, r.action));
  }

  /** The rule of exactly this prefix (not the longest match), or undefined. Throws a TypeError/RangeError for a bad prefix. */
  get(prefix: string): Rule | undefined {
    const p = parseCidr(prefix);
    const code = p.len === 32 ? this.hosts.get(p.addr) : this.prefixes.get(formatCidr(p));
    return code === undefined ? undefined : { prefix: formatCidr(p), action: actionOf(code) };
  }

  /**
   * Removes the rule of exactly this prefix. Throws a BpfError (ENOENT: no
   * such rule, naming the rule that does decide it, if any), a
   * TypeError/RangeError for a bad prefix. Returns the prefix removed.
   */
  remove(prefix: string): string {
    const p = parseCidr(prefix);
    const text = formatCidr(p);
    const gone = p.len === 32 ? this.hosts.delete(p.addr) : this.prefixes.delete(text);
    if (!gone) throw new BpfError(`remove ${text}`, Errno.ENOENT, `no rule for ${text}`);
    return text;
  }

  /**
   * Every rule, sorted by address then length. The trie is walked with
   * get_next_key (LPM tries have no batch lookups). Throws a BpfError.
   */
  rules(): Rule[] {
    const out: Rule[] = [];
    for (const [addr, code] of this.hosts.readAll().entries) out.push({ prefix: `${formatIpv4(addr)}/32`, action: actionOf(code) });
    for (const [prefix, code] of this.prefixes.readAll().entries) out.push({ prefix, action: actionOf(code) });
    return out.sort((a, b) => {
      const pa = parseCidr(a.prefix);
      const pb = parseCidr(b.prefix);
      return pa.addr - pb.addr || pa.len - pb.len;
    });
  }

  /** Removes every rule. Throws a BpfError. */
  clear(): void {
    this.hosts.clear();
    this.prefixes.clear();
  }

  /**
   * The verdict the kernel gives `addr` right now, asked of the kernel's own
   * maps (host_rules, then the trie's longest-prefix lookup with /32).
   * Throws a TypeError for a bad address, a BpfError.
   */
  verdict(addr: string): FwAction | 'none' {
    const a = parseCidr(addr);
    if (a.len !== 32) throw new TypeError(`verdict: '${addr}' is a prefix, not an address`);
    const code = this.hosts.get(a.addr) ?? this.prefixes.get(formatCidr(a));
    return code === undefined ? 'none' : actionOf(code);
  }

  /** Every source's counters, summed over CPUs, unsorted. Throws a BpfError. */
  sources(): SourceCounts[] {
    return this.sourcesMap.entriesSummed().map(([addr, c]) => ({
      source: formatIpv4(addr), packets: c.packets, bytes: c.bytes, dropped: c.dropped, droppedBytes: c.dropped_bytes,
    }));
  }

  /** One source's counters summed over CPUs (zeros when it sent nothing). Throws a BpfError, a TypeError for a bad address. */
  source(addr: string): SourceCounts {
    const a = parseCidr(addr).addr;
    const c = this.sourcesMap.summed(a);
    return { source: formatIpv4(a), packets: c?.packets ?? 0, bytes: c?.bytes ?? 0, dropped: c?.dropped ?? 0, droppedBytes: c?.dropped_bytes ?? 0 };
  }

  /** The same source's counters, one per CPU (what the kernel keeps). Throws as source(). */
  sourcePerCpu(addr: string): Counter[] | undefined {
    return this.sourcesMap.get(parseCidr(addr).addr);
  }

  /** Forgets every source's counters. Throws a BpfError. */
  resetSources(): void {
    this.sourcesMap.clear();
  }

  /** The per-reason counters, summed over CPUs. Throws a BpfError. */
  stats(): FwStats {
    const out = {} as FwStats;
    FW_REASONS.forEach((r, i) => { out[r] = this.statsMap.sum(i); });
    return out;
  }

  /** Closes the maps (when opened from pins; maps of an object close with it). Safe to call twice. */
  close(): void {
    this.hosts.close();
    this.prefixes.close();
    this.sourcesMap.close();
    this.statsMap.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A source in the table: its counters and its rates over the last interval. */
export interface Talker extends SourceCounts {
  packetsPerSec: number;
  bytesPerSec: number;
  droppedPerSec: number;
}

/** One reading of the top-talkers table. */
export interface TalkerSnapshot {
  time: Date;
  /** Seconds since the previous reading. */
  elapsed: number;
  /** How many sources the map holds. */
  sourceCount: number;
  /** The top ones: by packets per second, then packets. */
  top: Talker[];
  stats: FwStats;
  rules: number;
}

/** Orders talkers: busiest over the last interval first, then most packets, then address. */
export function byTalk(a: Talker, b: Talker): number {
  return b.packetsPerSec - a.packetsPerSec || b.packets - a.packets || parseCidr(a.source).addr - parseCidr(b.source).addr;
}

/**
 * Turns two readings into talkers with rates (a source not seen before
 * counts from zero), sorted by byTalk, the first `top` of them.
 */
export function talkers(cur: readonly SourceCounts[], prev: ReadonlyMap<string, SourceCounts>, elapsed: number, top: number): Talker[] {
  return cur.map((c) => {
    const p = prev.get(c.source);
    return {
      ...c,
      packetsPerSec: rate(p?.packets ?? 0, c.packets, elapsed),
      bytesPerSec: rate(p?.bytes ?? 0, c.bytes, elapsed),
      droppedPerSec: rate(p?.dropped ?? 0, c.dropped, elapsed),
    };
  }).sort(byTalk).slice(0, top);
}

/** Reads the counters on demand and keeps the previous reading for rates. */
export class TalkerMonitor {
  #prev = new Map<string, SourceCounts>();
  #last = performance.now();

  constructor(private readonly table: FirewallTable, private readonly top = 10) {}

  /** Throws a BpfError. */
  snapshot(): TalkerSnapshot {
    const now = performance.now();
    const elapsed = (now - this.#last) / 1000;
    this.#last = now;
    const cur = this.table.sources();
    const top = talkers(cur, this.#prev, elapsed, this.top);
    this.#prev = new Map(cur.map((c) => [c.source, c]));
    return { time: new Date(), elapsed, sourceCount: cur.length, top, stats: this.table.stats(), rules: this.table.rules().length };
  }
}

/** A snapshot as text: a header, one line per top talker, the dropped and passed totals. */
export function renderTalkerTable(s: TalkerSnapshot): string[] {
  const lines = [`${s.time.toISOString().slice(11, 19)}  ${s.sourceCount} source${s.sourceCount === 1 ? '' : 's'}, ${s.rules} rule${s.rules === 1 ? '' : 's'}, last ${s.elapsed.toFixed(1)} s`];
  lines.push(`${'source'.padEnd(15)} ${'packets'.padStart(10)} ${'bytes'.padStart(12)} ${'pkt/s'.padStart(8)} ${'bytes/s'.padStart(8)} ${'dropped'.padStart(10)} ${'drop/s'.padStart(8)}`);
  for (const t of s.top) {
    lines.push(`${t.source.padEnd(15)} ${String(t.packets).padStart(10)} ${String(t.bytes).padStart(12)} ${formatRate(t.packetsPerSec).padStart(8)} ${formatRate(t.bytesPerSec).padStart(8)} ${String(t.dropped).padStart(10)} ${formatRate(t.droppedPerSec).padStart(8)}`);
  }
  const dropped = s.stats.drop_host + s.stats.drop_prefix;
  const reasons = FW_REASONS.filter((r) => s.stats[r] > 0).map((r) => `${r} ${s.stats[r]}`);
  lines.push(`dropped ${dropped}; packets: ${reasons.length ? reasons.join(', ') : 'none yet'}`);
  lines.push('');
  return lines;
}

/** A snapshot as one JSON line. */
export function talkerJson(s: TalkerSnapshot): string {
  const r3 = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: r3(s.elapsed), sources: s.sourceCount, rules: s.rules,
    top: s.top.map((t) => ({
      source: t.source, packets: t.packets, bytes: t.bytes, dropped: t.dropped, droppedBytes: t.droppedBytes,
      packetsPerSec: r3(t.packetsPerSec), bytesPerSec: r3(t.bytesPerSec), droppedPerSec: r3(t.droppedPerSec),
    })),
    stats: s.stats,
  });
}

/** A rule as a line of `firewall list`: "drop   192.168.0.0/16". */
export function formatRule(r: Rule): string {
  return `${r.action.padEnd(6)} ${r.prefix}`;
}
