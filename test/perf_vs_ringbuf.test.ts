/**
 * The perf_vs_ringbuf loader (runLesson, no interface): filtered to a child
 * that makes exactly N getppid calls while both paths are attached to
 * syscalls:sys_enter_getppid, it prints per-second counts for both and a
 * summary with N read of N sent on each path, nothing lost; and the
 * lesson's per-second line and ordering tracker. Tag: pvr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSecond, OrderTracker, PvrEvent } from '../src/lessons/perf_vs_ringbuf.js';
import { buildC } from '../bench/lib.js';
import { kernelTests } from './helpers/kernel.js';
import { startLoader, stopAllLoaders } from './helpers/loader.js';

const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stopAllLoaders();
});

/** A child (bench/c/getppid_loop.c) that makes `n` getppid calls when told to on stdin, says "done", and exits at stdin's end. */
function caller(n: number) {
  const child = spawn(buildC('getppid_loop'), ['count', String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  const done = new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => { out += String(d); if (out.includes('done')) resolve(); }));
  return { child, go: () => child.stdin!.write('go\n'), done, end: () => child.stdin!.end() };
}

describe('perf_vs_ringbuf lesson helpers', () => {
  it('counts events older than one read before, and per-CPU sequence gaps', () => {
    const t = new OrderTracker();
    const ev = (ts: number, cpu: number, seq: number) => ({ ...PvrEvent.zero(), ts_ns: BigInt(ts), cpu, cpu_seq: seq });
    for (const e of [ev(10, 0, 0), ev(20, 0, 1), ev(15, 1, 0), ev(30, 1, 1), ev(25, 0, 2), ev(40, 0, 4)]) t.add(e);
    expect(t.events).toBe(6);
    expect(t.outOfOrder).toBe(2);
    expect(t.worstNs).toBe(5n);
    expect(t.cpuGaps).toBe(1);
  });

  it('formats a per-second line', () => {
    expect(formatSecond({ events: 10, lost: 1, outOfOrder: 2 }, { events: 11, lost: 0, outOfOrder: 0 }))
      .toBe('perf 10 ev/s (lost 1, out of order 2) | ringbuf 11 ev/s (lost 0, out of order 0)');
  });
});

describe.skipIf(!kernelTests())('perf_vs_ringbuf loader', () => {
  it('prints per-second counts for both paths and a summary with every event of a child read on each', async () => {
    const N = 20000;
    const c = caller(N);
    const loader = startLoader('perf_vs_ringbuf', ['--pid', String(c.child.pid), '--tracepoint', 'syscalls:sys_enter_getppid', '--perf-pages', '64']);
    try {
      await loader.waitFor(/Ctrl-C to stop/, 30_000);
      expect(loader.stderr()).toContain(`attached tracepoint to_perf on syscalls:sys_enter_getppid and tracepoint to_ringbuf on syscalls:sys_enter_getppid, filter: pid ${c.child.pid}`);
      expect(loader.stderr()).toMatch(/memory: perf \d+ x 256 KiB \(\+\d+ metadata pages of 4 KiB\), ring buffer 512 KiB/);
      c.go();
      await c.done;
      // A second's line that counted events on both paths (the burst may straddle two).
      await loader.waitForStdout(/^perf [1-9][^|]*\| ringbuf [1-9]|^perf [1-9].*\n.*ringbuf [1-9]/m, 10_000);
      const exit = await loader.stop('SIGINT');
      expect(exit.code).toBe(0);
    } finally {
      c.end();
    }
    const lines = loader.stdout().trim().split('\n');
    const sums = { perf: 0, ring: 0 };
    for (const l of lines) {
      const m = /^perf (\d+) ev\/s \(lost (\d+), out of order \d+\) \| ringbuf (\d+) ev\/s \(lost (\d+), out of order \d+\)$/.exec(l);
      expect(m, l).not.toBeNull();
      sums.perf += Number(m![1]);
      sums.ring += Number(m![3]);
    }
    expect(sums.perf).toBeLessThanOrEqual(N);
    expect(sums.ring).toBeLessThanOrEqual(N);
    expect(loader.stderr()).toMatch(new RegExp(`perf: ${N} read of ${N} sent, 0 lost, \\d+ out of time order .*; ringbuf: ${N} read of ${N} sent, 0 lost, \\d+ out of time order`));
  }, 60_000);
});
