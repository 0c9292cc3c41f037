/**
 * The hit table an xdp_dnat loader prints every interval: each service with
 * its backends (weights, and table shares when the source knows them), its
 * packets, bytes and packet rate, then the non-zero reason counters. Reads
 * through two functions (the loader gives src/lb's ServiceTable.list(),
 * refreshed first, and the data plane's dnat_stats).
 */
import { formatRate, rate } from '../../cli/output.js';
import { formatBackend, formatServiceAddr, type Backend, type ServiceAddr } from '../../lb/model.js';
import { DNAT_REASONS, type DnatStats } from '../xdp_dnat.js';

/** A service as the monitor shows it. */
export interface MonitoredService extends ServiceAddr {
  backends: Array<Backend & { share?: number }>;
  packets: number;
  bytes: number;
}

/** Where the monitor reads from. */
export interface HitSource {
  /** Every service with its hits (summed over CPUs). */
  services(): MonitoredService[];
  /** The per-reason counters, summed over CPUs. */
  stats(): DnatStats;
}

/** One reading, for display. */
export interface HitSnapshot {
  time: Date;
  /** Seconds since the previous reading. */
  elapsed: number;
  services: Array<MonitoredService & { packetsPerSec: number }>;
  stats: DnatStats;
}

/** Reads services, hits and reason counters, with rates since the previous reading. */
export class HitMonitor {
  #prev = new Map<string, number>();
  #last = performance.now();

  constructor(private readonly source: HitSource) {}

  /** Throws what the source throws (a BpfError). */
  snapshot(): HitSnapshot {
    const now = performance.now();
    const elapsed = (now - this.#last) / 1000;
    this.#last = now;
    const entries = this.source.services();
    const services = entries.map((e) => ({ ...e, packetsPerSec: rate(this.#prev.get(formatServiceAddr(e)) ?? 0, e.packets, elapsed) }));
    this.#prev = new Map(entries.map((e) => [formatServiceAddr(e), e.packets]));
    return { time: new Date(), elapsed, services, stats: this.source.stats() };
  }
}

/** "10.244.1.5:8080*2 (67%)": a backend with its weight (when not 1) and its table share (when known, and the service has several). */
export function describeBackend(b: Backend & { share?: number }, several: boolean): string {
  return several && b.share !== undefined ? `${formatBackend(b)} (${Math.round(b.share * 100)}%)` : formatBackend(b);
}

/** A service's backends in one cell: the first three, then "+N more". */
function backendsCell(e: MonitoredService): string {
  if (e.backends.length === 0) return '(no backends)';
  const several = e.backends.length > 1;
  const shown = e.backends.slice(0, 3).map((b) => describeBackend(b, several));
  return e.backends.length > 3 ? `${shown.join(', ')} +${e.backends.length - 3} more` : shown.join(', ');
}

/** A snapshot as text: one line per service, then the non-zero reason counters. */
export function renderHitTable(s: HitSnapshot): string[] {
  const lines = [`${s.time.toISOString().slice(11, 19)}  ${s.services.length} service${s.services.length === 1 ? '' : 's'}, last ${s.elapsed.toFixed(1)} s`];
  const w = Math.max(24, ...s.services.map((e) => formatServiceAddr(e).length));
  const cells = s.services.map(backendsCell);
  const bw = Math.max(21, ...cells.map((c) => c.length));
  lines.push(`${'service'.padEnd(w)}    ${'backends'.padEnd(bw)} ${'packets'.padStart(10)} ${'bytes'.padStart(12)} ${'pkt/s'.padStart(8)}`);
  s.services.forEach((e, i) => {
    lines.push(`${formatServiceAddr(e).padEnd(w)} →  ${cells[i].padEnd(bw)} ${String(e.packets).padStart(10)} ${String(e.bytes).padStart(12)} ${formatRate(e.packetsPerSec).padStart(8)}`);
  });
  const reasons = DNAT_REASONS.filter((r) => s.stats[r] > 0).map((r) => `${r} ${s.stats[r]}`);
  lines.push(`packets: ${reasons.length ? reasons.join(', ') : 'none yet'}`);
  lines.push('');
  return lines;
}

/** A snapshot as one JSON line. */
export function hitJson(s: HitSnapshot): string {
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: Math.round(s.elapsed * 1000) / 1000,
    services: s.services.map((e) => ({
      service: formatServiceAddr(e),
      backends: e.backends.map((b) => ({ backend: `${b.ip}:${b.port}`, weight: b.weight ?? 1, ...(b.share !== undefined ? { share: Math.round(b.share * 10000) / 10000 } : {}) })),
      packets: e.packets, bytes: e.bytes, packetsPerSec: Math.round(e.packetsPerSec * 1000) / 1000,
    })),
    stats: s.stats,
  });
}
