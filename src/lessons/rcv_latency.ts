/**
 * rcv_latency: the user side of the lesson. The kernel program
 * (bpf/rcv_latency) counts each received packet's time in the receive path
 * in a log2 histogram (a per-CPU array of HIST_SLOTS counters): the seed's
 * kprobe/kretprobe on ip_rcv where the kernel has kprobes, else the
 * tracepoints net:netif_receive_skb → skb:consume_skb/kfree_skb. This module
 * picks the probe, attaches it, reads the histogram (summed over CPUs, per
 * interval) and renders it as bpftrace's hist() does, or as JSON.
 */
import { Option, type Command } from 'commander';
import { u32, u64 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { kernelHasFunction, probeKprobes } from '../features.js';
import { resolveInterface } from '../netif.js';
import type { CommonOptions, LessonContext } from '../cli/lesson.js';

/** HIST_SLOTS of rcv_latency.h: slot 0 counts 0 ns, slot k counts [2^(k-1), 2^k) ns. */
export const HIST_SLOTS = 64;
/** The per-CPU array map of the histogram. */
export const HIST_MAP = 'hist';
/** The kernel function the seed's bpftrace probes. */
export const KPROBE_FUNC = 'ip_rcv';

/** How the latency is measured: `auto` picks the kprobes where the kernel has them. */
export type ProbeChoice = 'auto' | 'kprobe' | 'tracepoint';
/** The lesson's own options. */
export interface RcvLatencyOptions { interval: number; probe: ProbeChoice; iface?: string }
/** What the kernel offers, for choosing the probe. */
export interface ProbeFacts { kprobes: boolean; hasFunction: boolean }

/** `auto` is the kprobe where the kernel has kprobes and ip_rcv, else the tracepoints; an explicit choice is kept. */
export function chooseProbe(choice: ProbeChoice, facts: ProbeFacts): 'kprobe' | 'tracepoint' {
  if (choice !== 'auto') return choice;
  return facts.kprobes && facts.hasFunction ? 'kprobe' : 'tracepoint';
}

/** The running kernel's facts. Never throws. */
export function kernelProbeFacts(): ProbeFacts {
  const kprobes = probeKprobes();
  return { kprobes, hasFunction: kprobes && kernelHasFunction(KPROBE_FUNC) };
}

/** What is measured, in one line. */
export function probeLine(which: 'kprobe' | 'tracepoint', choice: ProbeChoice, facts: ProbeFacts): string {
  if (which === 'kprobe') return `measuring: kprobe/kretprobe on ${KPROBE_FUNC} (the seed's probes): the time ip_rcv takes`;
  const why = choice === 'tracepoint' ? 'asked for with --probe tracepoint'
    : !facts.kprobes ? 'this kernel has no kprobes' : `the kernel has no function ${KPROBE_FUNC}`;
  return `measuring: tracepoints net:netif_receive_skb -> skb:consume_skb/kfree_skb (${why}): from the stack taking the packet until it is freed`;
}

/** Adds --interval, --probe and --iface. */
export function addOptions(cmd: Command, parseSeconds: (v: string) => number): void {
  cmd.option('--interval <seconds>', 'seconds between histograms', parseSeconds, 1)
    .option('--iface <name>', 'only packets received on this interface')
    .addOption(new Option('--probe <probe>', 'the kprobes on ip_rcv where the kernel has kprobes, or the tracepoints')
      .choices(['auto', 'kprobe', 'tracepoint']).default('auto'));
}

/** Before load: the interface filter. Throws a BpfError (ENODEV) for an unknown interface. */
export function configureFilter(obj: BpfObject, opts: CommonOptions & RcvLatencyOptions): void {
  obj.setConst('target_ifindex', opts.iface === undefined ? 0 : resolveInterface(opts.iface).index);
}

/** The loader's attach step; says what it measures. Throws a BpfError (one line) when the kprobes cannot attach. */
export function attachProbes(ctx: LessonContext<RcvLatencyOptions>): void {
  const facts = kernelProbeFacts();
  const which = chooseProbe(ctx.opts.probe, facts);
  if (which === 'kprobe') {
    ctx.own(ctx.obj.program('ip_rcv_entry').attachKprobe(KPROBE_FUNC));
    ctx.own(ctx.obj.program('ip_rcv_exit').attachKprobe(KPROBE_FUNC, { retprobe: true }));
  } else {
    ctx.own(ctx.obj.program('rcv_start').attachTracepoint('net', 'netif_receive_skb'));
    ctx.own(ctx.obj.program('rcv_consumed').attachTracepoint('skb', 'consume_skb'));
    ctx.own(ctx.obj.program('rcv_dropped').attachTracepoint('skb', 'kfree_skb'));
  }
  ctx.log(probeLine(which, ctx.opts.probe, facts));
  ctx.log(`attached${ctx.opts.iface ? ` (packets received on ${ctx.opts.iface})` : ''}; Ctrl-C to stop`);
}

/** The histogram map of a loaded object. Throws a BpfError. */
export function histMap(obj: BpfObject): PerCpuMap<number, number> {
  return obj.perCpuMap(HIST_MAP, u32, u64);
}

/** Every slot's count, summed over CPUs. Throws a BpfError. */
export function readHist(map: PerCpuMap<number, number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < HIST_SLOTS; i++) out.push(map.sum(i));
  return out;
}

/** Reads the histogram and hands out what each interval added. */
export class HistDelta {
  #last: number[] = new Array<number>(HIST_SLOTS).fill(0);
  constructor(private readonly read: () => number[]) {}
  /** The counts since the previous call (since creation for the first). */
  next(): number[] {
    const now = this.read();
    const d = now.map((v, i) => v - this.#last[i]);
    this.#last = now;
    return d;
  }
}

/** The bounds of a slot in ns: [low, high); slot 0 is [0, 1). */
export function slotBounds(slot: number): [number, number] {
  return slot === 0 ? [0, 1] : [2 ** (slot - 1), 2 ** slot];
}

/** A power of two as bpftrace prints it: 512, 1K, 2M, 4G (1K = 1024). */
export function pow2Label(n: number): string {
  for (const [unit, size] of [['P', 2 ** 50], ['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

/** A slot's label: "[0]", "[1]", "[2, 4)", "[1K, 2K)". */
export function slotLabel(slot: number): string {
  if (slot <= 1) return `[${slot}]`;
  const [lo, hi] = slotBounds(slot);
  return `[${pow2Label(lo)}, ${pow2Label(hi)})`;
}

/** The bar width of the largest bucket, as bpftrace's. */
export const BAR_WIDTH = 52;

/**
 * The histogram as bpftrace prints hist(): one line per slot from the first
 * to the last non-empty one, `[1K, 2K)  12 |@@@@   |`, bars scaled to the
 * largest count. No lines when every count is 0.
 */
export function renderHist(counts: number[]): string[] {
  const first = counts.findIndex((c) => c > 0);
  if (first < 0) return [];
  let last = counts.length - 1;
  while (counts[last] === 0) last--;
  const max = Math.max(...counts);
  const lines: string[] = [];
  for (let i = first; i <= last; i++) {
    const bar = '@'.repeat(Math.round((counts[i] * BAR_WIDTH) / max));
    lines.push(`${slotLabel(i).padEnd(20)}${String(counts[i]).padStart(8)} |${bar.padEnd(BAR_WIDTH)}|`);
  }
  return lines;
}

/** One bucket in the JSON form. */
export interface HistBucket { low: number; high: number; count: number }

/** The non-empty buckets, in ns. */
export function histBuckets(counts: number[]): HistBucket[] {
  return counts.flatMap((c, i) => (c > 0 ? [{ low: slotBounds(i)[0], high: slotBounds(i)[1], count: c }] : []));
}

/** One interval as text: a header line with the time and the packet count, then the histogram. */
export function renderInterval(counts: number[], time: Date): string[] {
  const total = counts.reduce((a, b) => a + b, 0);
  const hms = time.toTimeString().slice(0, 8);
  return [`${hms}  @rcv_latency_ns: ${total} packets`, ...renderHist(counts)];
}

/** One interval as a JSON line. */
export function intervalJson(counts: number[], time: Date): string {
  return JSON.stringify({ time: time.toISOString(), unit: 'ns', count: counts.reduce((a, b) => a + b, 0), buckets: histBuckets(counts) });
}
