/**
 * rcv_latency on a pair lab (tag rcvl): pings from the peer namespace into
 * the host end are counted in the histogram (at least as many as were
 * answered, only those of that interface with --iface); the kprobe path
 * where the kernel has kprobes, its one-line error here; SIGKILL leaves no
 * link.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pairLab, ping, type PairLab } from '../src/lab/index.js';
import { kernelHasFunction, probeKprobes } from '../src/features.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms, startLoader, stopAllLoaders } from './helpers/loader.js';

interface Interval { count: number; unit: string; buckets: Array<{ low: number; high: number; count: number }> }

describe.skipIf(!kernelTests())('rcv_latency (kernel)', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('rcvl'); }, 60_000);
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });
  const kprobes = probeKprobes() && kernelHasFunction('ip_rcv');

  it(`pings into the host end are counted in the histogram (${kprobes ? 'kprobe' : 'tracepoint'} path)`, async () => {
    const l = startLoader('rcv_latency', ['--json', '--interval', '0.5', '--iface', lab.hostIf]);
    await l.waitFor('attached');
    expect(l.stderr()).toContain(kprobes ? 'measuring: kprobe/kretprobe on ip_rcv' : 'measuring: tracepoints net:netif_receive_skb -> skb:consume_skb/kfree_skb (this kernel has no kprobes)');
    const n = await ping(lab.ns, lab.hostIp, 30);
    expect(n).toBe(30);
    const total = () => l.stdout().split('\n').filter((x) => x.startsWith('{')).reduce((s, x) => s + (JSON.parse(x) as Interval).count, 0);
    expect(await eventually(() => total() >= n, 5000)).toBe(true);
    expect((await l.stop('SIGINT')).code).toBe(0);
    const intervals = l.stdout().trim().split('\n').map((x) => JSON.parse(x) as Interval);
    for (const i of intervals) {
      expect(i.unit).toBe('ns');
      expect(i.buckets.reduce((s, b) => s + b.count, 0)).toBe(i.count);
      for (const b of i.buckets) expect(b.high).toBe(b.low === 0 ? 1 : b.low * 2);
    }
    // only the lab's interface: the 30 echo requests (and little else: ARP is not IP, but is counted by the tracepoints)
    expect(total()).toBeGreaterThanOrEqual(30);
    expect(total()).toBeLessThan(40);
  }, 60_000);

  it('text: bpftrace-style histogram lines', async () => {
    const l = startLoader('rcv_latency', ['--interval', '0.5', '--iface', lab.hostIf]);
    await l.waitFor('attached');
    await ping(lab.ns, lab.hostIp, 5);
    expect(await eventually(() => /^\[\d+[KMG]?, \d+[KMG]?\)\s+\d+ \|@+ *\|$/m.test(l.stdout()), 5000)).toBe(true);
    expect(l.stdout()).toMatch(/^\d\d:\d\d:\d\d {2}@rcv_latency_ns: \d+ packets$/m);
    expect((await l.stop('SIGINT')).code).toBe(0);
  }, 30_000);

  it('--probe kprobe: attaches where the kernel has kprobes; here one line saying it has none', async () => {
    const l = startLoader('rcv_latency', ['--probe', 'kprobe']);
    if (probeKprobes()) {
      await l.waitFor('attached');
      expect((await l.stop('SIGINT')).code).toBe(0);
      return;
    }
    expect((await l.exited).code).toBe(1);
    expect(l.stderr()).toBe('error: attach kprobe ip_rcv: this kernel has no kprobes (CONFIG_KPROBES off) (ENOENT)\n');
  }, 30_000);

  it('an unknown --iface is one line; SIGKILL leaves no link', async () => {
    const bad = startLoader('rcv_latency', ['--iface', 'rcvlnope']);
    expect((await bad.exited).code).toBe(1);
    expect(bad.stderr()).toMatch(/^error: find interface rcvlnope: .*\(ENODEV\)\n$/);
    const l = startLoader('rcv_latency', []);
    await l.waitFor('attached');
    const names = ['rcv_start', 'rcv_consumed', 'rcv_dropped', 'ip_rcv_entry', 'ip_rcv_exit'];
    const ids = new Set(loadedPrograms().filter((p) => names.includes(p.name ?? '')).map((p) => p.id));
    const links = () => {
      const r = spawnSync('bpftool', ['-j', 'link', 'list'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      return (JSON.parse(r.stdout) as Array<{ id: number; prog_id: number }>).filter((x) => ids.has(x.prog_id));
    };
    expect(links().length).toBeGreaterThanOrEqual(kprobes ? 2 : 3);
    l.kill('SIGKILL');
    await l.exited;
    expect(await eventually(() => links().length === 0, 5000)).toBe(true);
  }, 30_000);
});
