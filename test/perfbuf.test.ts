/**
 * The perf buffer reader on real perf rings, filled by the perf_vs_ringbuf
 * lesson's programs on syscalls:sys_enter_getppid filtered to this
 * process: the test itself makes exactly N getppid calls (parentPid(), a
 * libc call each), so both paths must deliver exactly N events. Checked:
 * exact counts through both readers, per-CPU order, waking from the event
 * loop (consume, records), LOST records counted exactly when the reader
 * does not read and a CPU's ring is one page (on one pinned CPU), close() twice, errors.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfError, BpfObject, PerfBufReader, u32 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { parseCpuList } from '../src/ffi/perf.js';
import { parentPid } from '../src/ffi/sys.js';
import { attachPvr, configurePvr, COUNTERS_MAP, openPvr, PERF_MAP, PvrCounters, PvrEvent, type PvrEventValue } from '../src/lessons/perf_vs_ringbuf.js';
import type { Link } from '../src/link.js';
import { kernelTests } from './helpers/kernel.js';

const opened: Array<{ close(): void } | { detach(): void }> = [];

/** The lesson's object loaded with the filter on this process, attached to getppid. */
function loaded(): { obj: BpfObject; links: [Link, Link] } {
  const obj = BpfObject.open(ensureObject('perf_vs_ringbuf'));
  opened.push(obj);
  configurePvr(obj, { pid: process.pid, skipPid: 0, ringSize: 1 << 20 });
  obj.load();
  const links = attachPvr(obj, 'syscalls:sys_enter_getppid');
  opened.push(...links);
  return { obj, links };
}

function calls(n: number): void {
  for (let i = 0; i < n; i++) parentPid();
}

describe.skipIf(!kernelTests())('perf buffer reader on real perf rings', () => {
  afterAll(() => {
    for (const o of opened.reverse()) ('detach' in o ? o.detach() : o.close());
  });

  it('receives exactly the N events of N syscalls, as the ring buffer does, each CPU in order', () => {
    const { obj } = loaded();
    const r = openPvr(obj, { perfPages: 64, wakeupEvents: 1 });
    opened.push(r);
    const N = 5000;
    calls(N);
    const perf: PvrEventValue[] = [];
    const ring: PvrEventValue[] = [];
    expect(r.perf.read((e) => perf.push(e))).toBe(N);
    expect(r.ring.read((e) => ring.push(e))).toBe(N);
    expect(perf.every((e) => e.pid === process.pid && e.tid === process.pid)).toBe(true);
    // Within one CPU, the perf ring keeps the order the events were sent in.
    const byCpu = new Map<number, PvrEventValue[]>();
    for (const e of perf) byCpu.set(e.cpu, [...(byCpu.get(e.cpu) ?? []), e]);
    for (const evs of byCpu.values()) {
      for (let i = 1; i < evs.length; i++) {
        expect(evs[i].cpu_seq).toBe(evs[i - 1].cpu_seq + 1);
        expect(evs[i].ts_ns >= evs[i - 1].ts_ns).toBe(true);
      }
    }
    const c = r.counters();
    expect(c).toMatchObject({ perf_sent: N, perf_failed: 0, rb_sent: N, rb_failed: 0 });
    expect(r.perf.stats()).toEqual({ consumed: N, lost: 0, pending: 0 });
    expect(r.perf.cpus.length).toBeGreaterThan(0);
    r.close();
  });

  it('counts LOST records exactly when the reader is paused and the ring is one page', async () => {
    const { obj } = loaded();
    // The kernel writes a ring's LOST record into that ring, and only when a
    // later sample of the same CPU finds room: if the thread moved to another
    // CPU between the overflow and the last calls, the record would never be
    // written. So the whole test runs on one CPU.
    const cpu = pinToOneCpu();
    try {
      using pb = PerfBufReader.open(obj, PERF_MAP, { codec: PvrEvent, pageCount: 1 });
      expect(pb.size).toBe(4096);
      const counters = openCounters(obj);
      const until = async (ok: () => boolean) => { for (let i = 0; i < 200 && !ok(); i++) await new Promise((res) => setTimeout(res, 10)); };
      let n = 0;
      let ac = new AbortController();
      let consuming = pb.consume(() => { n++; }, { signal: ac.signal });
      calls(20);
      await until(() => n === 20);
      expect(n).toBe(20);
      ac.abort(); // paused: the reader stays open, nothing drains the rings
      await consuming;
      calls(3000); // 40-byte records: about 100 fit in one page
      await new Promise((res) => setTimeout(res, 50));
      expect(n).toBe(20);
      ac = new AbortController();
      consuming = pb.consume(() => { n++; }, { signal: ac.signal });
      await until(() => n > 20);
      // The kernel writes its LOST record when a later sample (same CPU) finds room.
      calls(10);
      await until(() => pb.consumed + pb.lost === 3030);
      ac.abort();
      await consuming;
      const c = counters();
      expect(c.perf_failed).toBeGreaterThan(2000);
      expect(pb.lost).toBe(c.perf_failed);
      expect(pb.lostPerCpu()).toEqual(pb.cpus.map((k) => [k, k === cpu.cpu ? c.perf_failed : 0]));
      expect(pb.consumed).toBe(c.perf_sent);
      expect(pb.consumed + pb.lost).toBe(3030);
      expect(n).toBe(pb.consumed);
    } finally {
      cpu.restore();
    }
  });

  it('hands events to consume() and records() from the event loop', async () => {
    const { obj } = loaded();
    const r = openPvr(obj, { perfPages: 8, wakeupEvents: 1 });
    opened.push(r);
    let n = 0;
    const ac = new AbortController();
    const done = r.perf.consume(() => { if (++n === 300) ac.abort(); }, { signal: ac.signal });
    for (let i = 0; i < 3; i++) {
      calls(100);
      await new Promise((res) => setTimeout(res, 20));
    }
    await done;
    expect(n).toBe(300);
    // The async iterator, one record at a time; breaking out loses nothing.
    const seen: number[] = [];
    setTimeout(() => calls(5), 20);
    for await (const e of r.perf) {
      seen.push(e.pid);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([process.pid, process.pid, process.pid]);
    expect(r.perf.read(() => {})).toBe(2);
    r.close();
  });

  it('wakes the reader only every wakeupEvents samples of a CPU', async () => {
    const { obj } = loaded();
    // Keep this thread on one CPU so that every sample goes to one perf ring.
    const cpu = pinToOneCpu();
    try {
      using pb = PerfBufReader.open(obj, PERF_MAP, { codec: PvrEvent, pageCount: 2, wakeupEvents: 50 });
      let n = 0;
      const ac = new AbortController();
      const done = pb.consume(() => { n++; }, { signal: ac.signal });
      await new Promise((res) => setTimeout(res, 20));
      calls(49);
      await new Promise((res) => setTimeout(res, 150));
      expect(n).toBe(0); // 49 samples wait in the ring: no wakeup yet
      expect(pb.pending()).toBe(49 * 40);
      calls(1);
      for (let i = 0; i < 100 && n < 50; i++) await new Promise((res) => setTimeout(res, 10));
      expect(n).toBe(50);
      ac.abort();
      await done;
    } finally {
      cpu.restore();
    }
  });

  it('closes twice; after close the kernel side finds no ring and the counters stay readable', () => {
    const { obj } = loaded();
    const pb = PerfBufReader.open(obj, PERF_MAP, { codec: PvrEvent, pageCount: 2 });
    const counters = openCounters(obj);
    calls(10);
    expect(pb.read(() => {})).toBe(10);
    // Closed from a handler: no sample is handed out after it, even within one read.
    calls(10);
    let handed = 0;
    expect(pb.read(() => { if (++handed === 3) pb.close(); })).toBe(3);
    expect(handed).toBe(3);
    pb.close();
    pb.close();
    expect(pb.closed).toBe(true);
    expect(pb.consumed).toBe(13);
    expect(pb.pending()).toBe(0);
    expect(() => pb.read(() => {})).toThrow(/read perf buffer perf_events: reader is closed \(EBADF\)/);
    calls(5);
    expect(counters().perf_failed).toBe(5);
    // A new reader on the same map works again.
    using again = PerfBufReader.open(obj, PERF_MAP, { codec: PvrEvent, pageCount: 2 });
    calls(7);
    expect(again.read(() => {})).toBe(7);
  });

  it('refuses a map that is not a perf event array, and a page count that is not a power of two', () => {
    const { obj } = loaded();
    expect(() => PerfBufReader.open(obj, 'counters')).toThrow(BpfError);
    expect(() => PerfBufReader.open(obj, 'counters')).toThrow(/open perf buffer counters: its type is percpu_array, not perf_event_array \(EINVAL\)/);
    expect(() => PerfBufReader.open(obj, PERF_MAP, { pageCount: 3 })).toThrow(/pageCount 3 is not a power of two \(EINVAL\)/);
  });
});

/** The kernel's counters of the object, summed over CPUs. */
function openCounters(obj: BpfObject): () => ReturnType<typeof PvrCounters.zero> {
  const m = obj.perCpuMap(COUNTERS_MAP, u32, PvrCounters);
  return () => m.summed(0)!;
}

/**
 * Pins this process's main thread (the one making the test's syscalls; the
 * forks pool runs tests on it) to the first CPU it may run on; restore()
 * puts its affinity back.
 */
function pinToOneCpu(): { cpu: number; restore(): void } {
  const pid = String(process.pid);
  const list = /: ([0-9,-]+)\s*$/.exec(execFileSync('taskset', ['-p', '-c', pid], { encoding: 'utf8' }))![1];
  const cpu = parseCpuList(list)[0];
  execFileSync('taskset', ['-p', '-c', String(cpu), pid], { stdio: 'ignore' });
  return { cpu, restore: () => execFileSync('taskset', ['-p', '-c', list, pid], { stdio: 'ignore' }) };
}
