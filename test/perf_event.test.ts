/**
 * Perf event attachments (src/attach/perf_event.ts) with the fixture
 * bpf/testdata/perf_event.bpf.c, a perf_event program counting its samples
 * per CPU: CPU-clock sampling on every CPU while this process spins, on one
 * CPU while a pinned child spins, detach twice (and no sample after), and
 * the errors: a tracepoint program, a bad frequency, an offline CPU.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfError, BpfObject, possibleCpus, u32, u64 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';

const objs: BpfObject[] = [];

function load() {
  const obj = BpfObject.open(ensureObject('testdata', 'perf_event'));
  objs.push(obj);
  obj.load();
  const samples = obj.perCpuMap('samples', u32, u64);
  return { obj, prog: obj.program('count_sample'), perCpu: () => samples.get(0)!.map(Number) };
}

function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) { /* busy */ }
}

describe.skipIf(!kernelTests())('perf event attach (CPU-clock sampling)', () => {
  afterAll(() => { for (const o of objs) o.close(); });

  it('samples on every CPU while this process spins; detached twice, it samples no more', () => {
    const { prog, perCpu } = load();
    const links = prog.attachPerfEventAll({ frequency: 1000 });
    try {
      expect(links.length).toBeGreaterThan(0);
      expect(links[0].description).toMatch(/^perf_event count_sample on cpu-clock at 1000 Hz, CPU \d+$/);
      spin(200);
      const total = perCpu().reduce((a, b) => a + b, 0);
      // 1000 Hz for 200 ms on the CPU this thread ran on: about 200 samples.
      expect(total).toBeGreaterThan(50);
    } finally {
      for (const l of links) { l.detach(); l.detach(); }
    }
    const after = perCpu();
    spin(100);
    expect(perCpu()).toEqual(after);
  });

  it('samples only the CPU it is attached to (a child spinning there)', () => {
    const { prog, perCpu } = load();
    const link = prog.attachPerfEvent({ cpu: 0, frequency: 500 });
    try {
      const r = spawnSync('taskset', ['-c', '0', 'timeout', '0.3', 'sh', '-c', 'while :; do :; done']);
      expect(r.status).toBe(124); // timeout's "timed out"
      const counts = perCpu();
      expect(counts[0]).toBeGreaterThan(20);
      for (let c = 1; c < counts.length; c++) expect(counts[c]).toBe(0);
    } finally {
      link.detach();
    }
  });

  it('says what is wrong: a tracepoint program, a bad frequency, an offline CPU', () => {
    const { obj, prog } = load();
    expect(() => obj.program('not_perf').attachPerfEvent({ cpu: 0 })).toThrow(
      /attach perf_event not_perf to cpu-clock on CPU 0: not_perf is not a perf_event program \(its section is tracepoint\): a perf event runs only SEC\("perf_event"\) programs \(EINVAL\)/);
    expect(() => prog.attachPerfEvent({ cpu: 0, frequency: 0 })).toThrow(/frequency 0 is not a positive integer \(EINVAL\)/);
    expect(() => prog.attachPerfEvent({ cpu: 0, frequency: 10, period: 5 })).toThrow(/give frequency or period, not both/);
    const err = (() => { try { prog.attachPerfEvent({ cpu: possibleCpus + 7 }); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).message).toMatch(/attach perf_event count_sample to cpu-clock on CPU \d+: .*\((ENODEV|EINVAL)\)/);
  });
});
