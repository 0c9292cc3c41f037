/**
 * perf_vs_ringbuf: the user side of the lesson. The kernel side
 * (bpf/perf_vs_ringbuf) has two programs on the same tracepoint, sending
 * the same struct pvr_event through a PERF_EVENT_ARRAY
 * (bpf_perf_event_output, one ring per CPU) and through a RINGBUF
 * (bpf_ringbuf_reserve/submit, one shared ring), counting what each could
 * not send. This module mirrors the structs, sets the filters, opens both
 * readers, and tracks what the lesson is about: counts per path, losses,
 * and ordering (events whose timestamp is older than one already read).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { Link } from '../link.js';
import { PerfBufReader } from '../perfbuf/reader.js';
import { RingBufReader } from '../ringbuf/reader.js';
import { pageSize } from '../ffi/sys.js';
import type { SharedLayout } from './shared.js';
import { formatBytes, parsePidOption, parseRingSizeOption } from './openat_snoop.js';

/** struct pvr_event (bpf/perf_vs_ringbuf/perf_vs_ringbuf.h): 24 bytes. */
export const PvrEvent = struct('pvr_event', { ts_ns: 'u64big', pid: 'u32', tid: 'u32', cpu: 'u32', cpu_seq: 'u32' });
/** A decoded event. */
export type PvrEventValue = ReturnType<typeof PvrEvent.zero>;

/** struct pvr_counters: one per CPU in counters[0]. */
export const PvrCounters = struct('pvr_counters', { perf_sent: 'u64', perf_failed: 'u64', rb_sent: 'u64', rb_failed: 'u64' });
/** The counters, summed over CPUs. */
export type PvrCountersValue = ReturnType<typeof PvrCounters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'perf_vs_ringbuf', cName: 'pvr_event', codec: PvrEvent },
  { object: 'perf_vs_ringbuf', cName: 'pvr_counters', codec: PvrCounters },
];

/** The maps and programs of the object. */
export const PERF_MAP = 'perf_events';
export const RING_MAP = 'rb_events';
export const COUNTERS_MAP = 'counters';
export const PERF_PROG = 'to_perf';
export const RING_PROG = 'to_ringbuf';
/** The default tracepoint: every syscall. */
export const DEFAULT_TRACEPOINT = 'raw_syscalls:sys_enter';
/** bpf_ringbuf_submit flags. */
export const BPF_RB_NO_WAKEUP = 1;

/** The lesson's own options. */
export interface PvrOptions {
  /** category:name of the tracepoint both programs attach to. */
  tracepoint: string;
  /** Only this process. */
  pid?: number;
  /** Never this process (default: the loader itself). */
  skipPid?: number;
  /** Ring buffer bytes (a power of two). */
  ringSize: number;
  /** Perf ring data pages per CPU (a power of two). */
  perfPages: number;
  /** Wake the perf reader every this many samples per CPU. */
  wakeupEvents: number;
  /** Submit ring buffer records without waking the reader (it then drains on a timer). */
  rbNoWakeup?: boolean;
}

/** Parses --tracepoint: category:name. Throws an InvalidArgumentError. */
export function parseTracepointOption(v: string): string {
  if (!/^[A-Za-z0-9_]+:[A-Za-z0-9_]+$/.test(v)) throw new InvalidArgumentError(`'${v}' is not category:name (e.g. ${DEFAULT_TRACEPOINT})`);
  return v;
}

/** Parses --perf-pages: a power of two from 1 to 4096. Throws an InvalidArgumentError. */
export function parsePagesOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 4096 || (n & (n - 1)) !== 0) throw new InvalidArgumentError(`'${v}' is not a power of two from 1 to 4096`);
  return n;
}

/** Parses --wakeup-events: a positive integer. Throws an InvalidArgumentError. */
export function parseWakeupOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 1 << 20) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
}

/** Adds the lesson's options to a loader's command. */
export function addPvrOptions(cmd: Command): void {
  cmd
    .option('--tracepoint <category:name>', 'where both programs attach', parseTracepointOption, DEFAULT_TRACEPOINT)
    .option('--pid <pid>', 'only this process (filtered in the kernel)', parsePidOption)
    .option('--ring-size <bytes>', 'ring buffer size (K/M/G suffixes; a power of two)', parseRingSizeOption, 512 << 10)
    .option('--perf-pages <n>', 'perf buffer data pages per CPU (a power of two)', parsePagesOption, 64)
    .option('--wakeup-events <n>', 'wake the perf reader every n samples per CPU', parseWakeupOption, 1)
    .option('--rb-no-wakeup', 'submit ring buffer records with BPF_RB_NO_WAKEUP (the reader drains every 100 ms)', false);
}

/** Before load: the filters and the ring size. Throws a BpfError. */
export function configurePvr(obj: BpfObject, o: Pick<PvrOptions, 'pid' | 'skipPid' | 'ringSize' | 'rbNoWakeup'>): void {
  obj.setConst('target_pid', o.pid ?? 0);
  obj.setConst('skip_pid', o.skipPid ?? process.pid);
  obj.setConst('rb_submit_flags', BigInt(o.rbNoWakeup ? BPF_RB_NO_WAKEUP : 0));
  obj.setMaxEntries(RING_MAP, o.ringSize);
}

/** Attaches both programs to `tracepoint` (category:name); returns the links (perf's first). Throws a BpfError. */
export function attachPvr(obj: BpfObject, tracepoint: string): [Link, Link] {
  const [cat, name] = tracepoint.split(':');
  const perf = obj.program(PERF_PROG).attachTracepoint(cat, name);
  try {
    return [perf, obj.program(RING_PROG).attachTracepoint(cat, name)];
  } catch (e) {
    perf.detach();
    throw e;
  }
}

/**
 * Counts the events of one path and the ordering violations among them:
 * an event whose timestamp is older than the newest one already read
 * (the stream is not in time order there), and an event whose per-CPU
 * sequence number is not the next one of its CPU (order within a CPU).
 */
export class OrderTracker {
  events = 0;
  /** Events older than one read before them. */
  outOfOrder = 0;
  /** The largest step back in time seen, in ns. */
  worstNs = 0n;
  /** Events whose per-CPU sequence did not follow the previous one of that CPU. */
  cpuGaps = 0;
  #newest = 0n;
  readonly #nextSeq = new Map<number, number>();

  /** Records one event. */
  add(e: PvrEventValue): void {
    this.events++;
    if (e.ts_ns < this.#newest) {
      this.outOfOrder++;
      const back = this.#newest - e.ts_ns;
      if (back > this.worstNs) this.worstNs = back;
    } else {
      this.#newest = e.ts_ns;
    }
    const want = this.#nextSeq.get(e.cpu);
    if (want !== undefined && e.cpu_seq !== want) this.cpuGaps++;
    this.#nextSeq.set(e.cpu, (e.cpu_seq + 1) >>> 0);
  }
}

/** Both readers of a loaded object, with their trackers and the kernel's counters. */
export interface PvrReaders {
  readonly perf: PerfBufReader<PvrEventValue>;
  readonly ring: RingBufReader<PvrEventValue>;
  readonly perfOrder: OrderTracker;
  readonly ringOrder: OrderTracker;
  /** The kernel's counters now, summed over CPUs. */
  counters(): PvrCountersValue;
  close(): void;
}

/** Opens both readers of a loaded object. Throws a BpfError (e.g. perf_event_open refused). */
export function openPvr(obj: BpfObject, o: Pick<PvrOptions, 'perfPages' | 'wakeupEvents'>): PvrReaders {
  const counters = obj.perCpuMap(COUNTERS_MAP, u32, PvrCounters);
  const read = () => counters.summed(0) ?? PvrCounters.zero();
  const perf = PerfBufReader.open(obj, PERF_MAP, { codec: PvrEvent, pageCount: o.perfPages, wakeupEvents: o.wakeupEvents });
  let ring: RingBufReader<PvrEventValue>;
  try {
    ring = RingBufReader.open(obj, RING_MAP, { codec: PvrEvent, lost: () => read().rb_failed });
  } catch (e) {
    perf.close();
    throw e;
  }
  return {
    perf, ring, perfOrder: new OrderTracker(), ringOrder: new OrderTracker(), counters: read,
    close() { perf.close(); ring.close(); },
  };
}

/** One line of memory use: "perf 2 x 256 KiB (+2 metadata pages), ring buffer 512 KiB". */
export function describeMemory(r: PvrReaders): string {
  return `perf ${r.perf.cpus.length} x ${formatBytes(r.perf.size)} (+${r.perf.cpus.length} metadata pages of ${formatBytes(pageSize)}), ring buffer ${formatBytes(r.ring.size)}`;
}

/** A per-second line: "perf 1200 ev/s (lost 0, out of order 35) | ringbuf 1200 ev/s (lost 0, out of order 0)". */
export function formatSecond(perf: { events: number; lost: number; outOfOrder: number }, ring: { events: number; lost: number; outOfOrder: number }): string {
  const side = (name: string, s: { events: number; lost: number; outOfOrder: number }) =>
    `${name} ${s.events} ev/s (lost ${s.lost}, out of order ${s.outOfOrder})`;
  return `${side('perf', perf)} | ${side('ringbuf', ring)}`;
}

/** The summary at exit. */
export function formatPvrSummary(r: PvrReaders, seconds: number): string {
  const c = r.counters();
  const side = (name: string, t: OrderTracker, lost: number, sent: number) =>
    `${name}: ${t.events} read of ${sent} sent, ${lost} lost, ${t.outOfOrder} out of time order (worst ${(Number(t.worstNs) / 1000).toFixed(1)} us back), ${t.cpuGaps} per-CPU sequence gaps`;
  return `${side('perf', r.perfOrder, r.perf.lost, c.perf_sent)}; ${side('ringbuf', r.ringOrder, c.rb_failed, c.rb_sent)}; over ${seconds.toFixed(1)} s`;
}
