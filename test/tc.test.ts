/**
 * TC attachment on a real interface (the root-namespace end of a lab veth):
 * TCX links and clsact filters both run the program on the packets leaving
 * the interface (seen in the program's counter), detach stops it, and the
 * interface's qdiscs end up exactly as they were: a clsact qdisc we created
 * is removed, a pre-existing one (with another tool's filter) and a root
 * qdisc survive, a shared clsact goes with our last filter. A loader killed
 * with SIGKILL leaves its TCX link detached by the kernel.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, BpfObject, attachTc, probeTcx, queryXdp } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { PROGRAMS, REPLY_TC_SLOT } from '../src/lessons/xdp_dnat.js';
import { defaultPinDir } from '../src/lessons/xdp_dnat/pins.js';
import { closeDataPlaneMaps, dataPlaneMaps, openPinnedDataPlane, readDnatStats, type DataPlaneMaps } from '../src/lb/dataplane.js';
import { parseIpv4 } from '../src/codec.js';
import { pairLab, run, type PairLab } from '../src/lab/index.js';
import { featureTests, kernelTests, removePins } from './helpers/kernel.js';

/**
 * TCX links came in Linux 6.6: tested when the kernel has them (probeTcx) and
 * always from 6.6 on, where they must work; skipped only on an older kernel
 * without them (clsact is tested everywhere).
 */
const TCX = featureTests(probeTcx, [6, 6]);
import { eventually, startLoader, stopAllLoaders } from './helpers/loader.js';


describe.skipIf(!kernelTests())('TC attach and detach', () => {
  let lab: PairLab;
  let obj: BpfObject;
  let maps: DataPlaneMaps;
  const rewritten = (m: DataPlaneMaps) => readDnatStats(m.stats).reply_rewritten;
  /** A reverse connection entry: datagrams hostIp:7777 → peerIp:9999 look like replies of service 10.96.0.50:9. */
  const replyEntry = (m: DataPlaneMaps) => m.conntrackRev.set(
    { saddr: parseIpv4(lab.hostIp), daddr: parseIpv4(lab.peerIp), sport: srcPort, dport: 9999, proto: 17 }, { vip: parseIpv4('10.96.0.50'), vport: 9 });
  const srcPort = 7777;

  beforeAll(async () => {
    lab = await pairLab('tct');
    obj = BpfObject.load(ensureObject('xdp_dnat'));
    maps = dataPlaneMaps(obj);
    replyEntry(maps);
  });
  afterAll(async () => {
    await stopAllLoaders();
    obj?.close();
    await lab?.down();
  });

  const qdiscs = async () => (await run(['tc', 'qdisc', 'show', 'dev', lab.hostIf])).stdout.trim();
  const filters = async (dir: 'ingress' | 'egress') => (await run(['tc', 'filter', 'show', 'dev', lab.hostIf, dir])).stdout.trim();

  /** Sends `n` datagrams out of the host end (to the peer's address, inside the lab) from hostIp:7777. */
  async function send(n: number): Promise<void> {
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(srcPort, lab.hostIp, () => resolve()); });
    for (let i = 0; i < n; i++) await new Promise<void>((resolve, reject) => s.send('x', 9999, lab.peerIp, (e) => (e ? reject(e) : resolve())));
    s.close();
  }
  /** How many datagrams the egress program rewrote after sending `n` (waiting up to 2 s for `expected` of them). */
  async function rewrittenBy(n: number, expected = n): Promise<number> {
    const before = rewritten(maps);
    await send(n);
    if (expected > 0) await eventually(() => rewritten(maps) - before >= expected, 2000);
    await new Promise((r) => setTimeout(r, 150));
    return rewritten(maps) - before;
  }

  it.runIf(TCX)('a TCX link runs the program on egress and leaves the qdiscs alone', async () => {
    const before = await qdiscs();
    const a = obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress', { mode: 'tcx' });
    expect(a.description).toBe(`tc egress tc_dnat_reply on ${lab.hostIf} (tcx link)`);
    expect(await qdiscs()).toBe(before);
    expect(await rewrittenBy(5)).toBe(5);
    a.detach();
    a.detach(); // idempotent
    expect(await rewrittenBy(3, 0)).toBe(0);
    expect(await qdiscs()).toBe(before);
  });

  it('clsact: creates the qdisc when there is none, and removes it on detach', async () => {
    const before = await qdiscs();
    expect(before).not.toMatch(/clsact/);
    const a = obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress', { mode: 'clsact' });
    expect(a.description).toMatch(new RegExp(`^tc egress tc_dnat_reply on ${lab.hostIf} \\(clsact, handle \\d+, priority \\d+, qdisc created\\)$`));
    expect(await qdiscs()).toMatch(/qdisc clsact ffff:/);
    expect(await filters('egress')).toMatch(/tc_dnat_reply/);
    expect(await rewrittenBy(4)).toBe(4);
    a.detach();
    a.detach();
    expect(await qdiscs()).toBe(before);
    expect(await rewrittenBy(2, 0)).toBe(0);
  });

  it('clsact: a pre-existing clsact and another tool\'s filter survive; only our filter goes', async () => {
    await run(['tc', 'qdisc', 'add', 'dev', lab.hostIf, 'clsact']);
    await run(['tc', 'filter', 'add', 'dev', lab.hostIf, 'egress', 'pref', '50000', 'u32', 'match', 'u32', '0', '0']);
    try {
      const q = await qdiscs();
      const f = await filters('egress');
      const a = obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress', { mode: 'clsact' });
      expect(a.description).not.toMatch(/qdisc created/);
      expect(await filters('egress')).toMatch(/tc_dnat_reply/);
      expect(await rewrittenBy(3)).toBe(3);
      a.detach();
      expect(await qdiscs()).toBe(q);
      expect(await filters('egress')).toBe(f);
      expect(f).toMatch(/pref 50000 u32/);
    } finally {
      await run(['tc', 'qdisc', 'del', 'dev', lab.hostIf, 'clsact']);
    }
  });

  it('clsact: a root qdisc survives, and a clsact shared by two of our filters goes with the last one', async () => {
    await run(['tc', 'qdisc', 'replace', 'dev', lab.hostIf, 'root', 'pfifo', 'limit', '100']);
    try {
      const before = await qdiscs();
      expect(before).toMatch(/pfifo/);
      const ing = attachTc(obj.program(PROGRAMS.reply).fd, PROGRAMS.reply, lab.hostIf, 'ingress', { mode: 'clsact' });
      const eg = obj.program(PROGRAMS.reply).attachTc(lab.hostIfindex, 'egress', { mode: 'clsact' });
      expect(await filters('ingress')).toMatch(/tc_dnat_reply/);
      ing.detach();
      expect(await qdiscs()).toMatch(/clsact/); // the egress filter still needs it
      expect(await filters('ingress')).toBe('');
      expect(await rewrittenBy(2)).toBe(2);
      eg.detach();
      expect(await qdiscs()).toBe(before);
    } finally {
      await run(['tc', 'qdisc', 'del', 'dev', lab.hostIf, 'root']).catch(() => undefined);
    }
  });

  it('auto picks a TCX link when the kernel has them, clsact otherwise; errors are one line', () => {
    const a = obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress');
    expect(a.description).toMatch(probeTcx() ? /\(tcx link\)$/ : /\(clsact,.*\)$/);
    a.detach();
    expect(() => obj.program(PROGRAMS.reply).attachTc('nosuch0', 'egress')).toThrow(/find interface nosuch0: no such interface.*\(ENODEV\)/);
    let err: unknown;
    try { obj.program(PROGRAMS.forward).attachTc(lab.hostIf, 'egress', { mode: 'tcx' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).message).toMatch(new RegExp(`^attach program xdp_dnat to tc egress on ${lab.hostIf}: xdp_dnat is an xdp program \\(section xdp\\), not sched_cls: it attaches to an interface's XDP hook .*\\(EINVAL\\)$`));
  });

  it('a clsact filter a SIGKILLed loader left at our slot is removed by the next attach (clsact or tcx); a live one is refused', async () => {
    const before = await qdiscs();
    const dir = '/sys/fs/bpf/libbpf-ts/xdp_dnat/test-tct-stale';
    try {
      for (const mode of (TCX ? ['clsact', 'tcx'] : ['clsact']) as Array<'clsact' | 'tcx'>) {
        removePins(dir);
        const l = startLoader('xdp_dnat', [lab.hostIf, '--tc', 'clsact', '--pin-dir', dir, '--service', `10.96.0.51:9/udp=${lab.hostIp}:${srcPort + 1}`]);
        await l.waitFor('Ctrl-C to stop');
        expect(l.stderr()).toContain(`(a clsact filter: tc filter show dev ${lab.hostIf} egress)`);
        const id = Number(/tc_dnat_reply.* id (\d+)/.exec(await filters('egress'))?.[1]);
        expect(id).toBeGreaterThan(0);
        // While the loader runs, its filter is not stale.
        expect(() => obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress', { mode, slot: REPLY_TC_SLOT }))
          .toThrow(new RegExp(`: tc_dnat_reply \\(id ${id}\\) at clsact egress of ${lab.hostIf}, handle 53415, priority 53415 belongs to a running process: .*pid ${l.child.pid} \\(.*\\(EBUSY\\)$`));
        l.kill('SIGKILL');
        await l.exited;
        expect(await filters('egress')).toContain(` id ${id} `); // left behind
        const a = obj.program(PROGRAMS.reply).attachTc(lab.hostIf, 'egress', { mode, slot: REPLY_TC_SLOT });
        try {
          expect(a.description).toContain(`; removed a stale clsact filter of tc_dnat_reply (id ${id}) that a process which died had left)`);
          const f = await filters('egress');
          expect(f).not.toContain(` id ${id} `);
          expect(f.split('\n').filter((x) => x.includes('tc_dnat_reply')).length).toBe(mode === 'clsact' ? 1 : 0);
          expect(await rewrittenBy(3)).toBe(3);
        } finally {
          a.detach();
        }
        expect(await filters('egress')).toBe('');
        // The clsact qdisc the dead loader created is not provably ours: it stays, empty.
        await run(['tc', 'qdisc', 'del', 'dev', lab.hostIf, 'clsact']);
      }
    } finally {
      await stopAllLoaders();
      removePins(dir);
    }
    expect(await qdiscs()).toBe(before);
  });

  // A clsact filter is not a link: it outlives a SIGKILLed loader (the loader removes it on any other exit).
  it.runIf(TCX)('a loader killed with SIGKILL leaves no TCX link and no XDP program attached', async () => {
    const dir = defaultPinDir(lab.hostIf); // the throwaway pins: a SIGKILL leaves them, but no link
    removePins(dir);
    const before = await qdiscs();
    const l = startLoader('xdp_dnat', [lab.hostIf, '--tc', 'tcx', '--service', `10.96.0.50:9/udp=${lab.hostIp}:${srcPort}`]);
    try {
      await l.waitFor('Ctrl-C to stop');
      expect(l.stderr()).toContain(`attached tc egress tc_dnat_reply on ${lab.hostIf} (tcx link)`);
      const pinnedMaps = openPinnedDataPlane(dir);
      replyEntry(pinnedMaps);
      const pinned = { sum: () => rewritten(pinnedMaps), close: () => closeDataPlaneMaps(pinnedMaps) };
      try {
        const c0 = pinned.sum();
        await send(3);
        expect(await eventually(() => pinned.sum() - c0 === 3, 3000)).toBe(true);
        l.kill('SIGKILL');
        expect((await l.exited).signal).toBe('SIGKILL');
        expect(queryXdp(lab.hostIf)).toEqual([]);
        const c1 = pinned.sum();
        await send(3);
        await new Promise((r) => setTimeout(r, 300));
        expect(pinned.sum()).toBe(c1); // nothing runs on egress any more
        expect(await qdiscs()).toBe(before);
      } finally {
        pinned.close();
      }
    } finally {
      removePins(dir); // SIGKILL left the pins
    }
  });
});
