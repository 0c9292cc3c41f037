/** rcv_latency's rendering without a kernel: bpftrace-style hist() lines, labels, JSON buckets, interval deltas, probe choice. */
import { describe, expect, it } from 'vitest';
import {
  BAR_WIDTH, chooseProbe, HIST_SLOTS, HistDelta, histBuckets, intervalJson, pow2Label, probeLine, renderHist, renderInterval, slotBounds, slotLabel,
} from '../../src/lessons/rcv_latency.js';

const hist = (m: Record<number, number>) => Array.from({ length: HIST_SLOTS }, (_, i) => m[i] ?? 0);

describe('rcv_latency histogram', () => {
  it('slots are log2 buckets as bpftrace hist(): [0], [1], [2, 4), ..., [1K, 2K)', () => {
    expect(slotBounds(0)).toEqual([0, 1]);
    expect(slotBounds(1)).toEqual([1, 2]);
    expect(slotBounds(11)).toEqual([1024, 2048]);
    expect([0, 1, 2, 3, 10, 11, 21, 31].map(slotLabel)).toEqual(['[0]', '[1]', '[2, 4)', '[4, 8)', '[512, 1K)', '[1K, 2K)', '[1M, 2M)', '[1G, 2G)']);
    expect(pow2Label(2 ** 40)).toBe('1T');
  });
  it('renders from the first to the last non-empty bucket, bars scaled to the largest', () => {
    const lines = renderHist(hist({ 11: 12, 12: 0, 13: 24 }));
    expect(lines).toEqual([
      `[1K, 2K)                  12 |${'@'.repeat(26).padEnd(BAR_WIDTH)}|`,
      `[2K, 4K)                   0 |${' '.repeat(BAR_WIDTH)}|`,
      `[4K, 8K)                  24 |${'@'.repeat(BAR_WIDTH)}|`,
    ]);
    expect(renderHist(hist({}))).toEqual([]);
  });
  it('an interval: a header with the packet count; JSON with the non-empty buckets in ns', () => {
    const t = new Date('2026-01-02T03:04:05Z');
    expect(renderInterval(hist({ 15: 3 }), t)[0]).toMatch(/^\d\d:\d\d:\d\d {2}@rcv_latency_ns: 3 packets$/);
    expect(JSON.parse(intervalJson(hist({ 15: 3, 16: 1 }), t))).toEqual({
      time: '2026-01-02T03:04:05.000Z', unit: 'ns', count: 4,
      buckets: [{ low: 16384, high: 32768, count: 3 }, { low: 32768, high: 65536, count: 1 }],
    });
    expect(histBuckets(hist({ 0: 2 }))).toEqual([{ low: 0, high: 1, count: 2 }]);
  });
  it('HistDelta hands out what each interval added', () => {
    let cur = hist({ 5: 2 });
    const d = new HistDelta(() => cur);
    expect(d.next()[5]).toBe(2);
    cur = hist({ 5: 3, 6: 4 });
    const n = d.next();
    expect([n[5], n[6]]).toEqual([1, 4]);
  });
  it('probe choice and its line', () => {
    expect(chooseProbe('auto', { kprobes: true, hasFunction: true })).toBe('kprobe');
    expect(chooseProbe('auto', { kprobes: false, hasFunction: false })).toBe('tracepoint');
    expect(probeLine('tracepoint', 'auto', { kprobes: false, hasFunction: false })).toMatch(/\(this kernel has no kprobes\)/);
    expect(probeLine('kprobe', 'auto', { kprobes: true, hasFunction: true })).toMatch(/^measuring: kprobe\/kretprobe on ip_rcv/);
  });
});
