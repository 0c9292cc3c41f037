/**
 * xdp_dnat end to end, the way a user runs it: a lab of a client, the load
 * balancer and three backend namespaces (dnatLab's backend plus two this
 * file adds), the loader on the load balancer's client-facing interface
 * (entered with nsenter --net, so its pins are visible here), echo servers
 * on every backend, real connections from the client to the VIPs:
 * - the lesson's default run (10.96.0.10:80/tcp → 10.244.1.5:8080) works
 *   and Ctrl-C detaches everything and removes the pins;
 * - many TCP connections to one VIP spread over all three backends; one
 *   backend is removed while they are open: the connections to the other
 *   two keep exchanging data;
 * - two services sharing one backend address both answer with their own VIP;
 * - the loader is restarted with --pin-dir in the middle of a TCP exchange:
 *   the new one adopts the maps and swaps its programs into the pinned links
 *   in place, and the exchange completes;
 * - with transmit checksum offload off, the receiving kernels verify every
 *   checksum the programs changed.
 * All of it in skb mode (the default) and in native mode. Native mode on
 * veth needs GRO on the veth the redirect lands in (each backend's eth0:
 * without it the kernel drops redirected frames silently), and full
 * checksums from the client (`ethtool -K eth0 tx off`: XDP cannot complete
 * a partial checksum).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Link } from '../src/link.js';
import { LB_LINKS, closeDataPlaneMaps, openPinnedDataPlane, readDnatStats, type DataPlaneMaps } from '../src/lb/dataplane.js';
import { ServiceTable } from '../src/lb/table.js';
import { parseService } from '../src/lb/model.js';
import { holdTcpConnections as holdConnections, startBackendServers, tcpExchange, type BackendServers } from '../src/lab/index.js';
import { dnatLab, run, runNs, type DnatLab } from '../src/lab/index.js';
import { delNs } from '../src/lab/netns.js';
import { addBackendNs } from './helpers/lb.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { eventually, runServices, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

/** TCP and UDP checksum errors counted by a namespace's stack (/proc/net/snmp InCsumErrors). */
async function csumErrors(ns: string): Promise<number> {
  const lines = (await runNs(ns, ['cat', '/proc/net/snmp'])).stdout.split('\n');
  let total = 0;
  for (const proto of ['Tcp', 'Udp']) {
    const [head, vals] = lines.filter((l) => l.startsWith(`${proto}: `)).map((l) => l.split(/\s+/));
    total += Number(vals[head.indexOf('InCsumErrors')]);
  }
  return total;
}

const MODES = [
  { mode: 'skb', tag: 'xdlbdps' },
  { mode: 'native', tag: 'xdlbdpn' },
] as const;

const VIP = '10.96.0.10';
const BACKENDS = ['10.244.1.5', '10.244.2.5', '10.244.3.5'];

describe.skipIf(!kernelTests()).each(MODES)('xdp_dnat end to end in $mode mode: client -- load balancer -- three backends', ({ mode, tag }) => {
  let lab: DnatLab;
  const extra: string[] = [];
  const servers: BackendServers[] = [];
  const dir = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-${tag}`;
  let loader: LoaderProcess;
  let maps: DataPlaneMaps | undefined;

  const startLb = async (args: string[]) => {
    const l = startLoader('xdp_dnat', [lab.lbClientIf, '--mode', mode, '--interval', '1', ...args], { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });
    await l.waitFor('Ctrl-C to stop', 60_000);
    return l;
  };

  beforeAll(async () => {
    removePins(dir);
    lab = await dnatLab(tag);
    // Two more backends: lbts-<tag>-be2 (10.244.2.5 behind lb2) and -be3 (10.244.3.5 behind lb3).
    for (const i of [2, 3]) extra.push(await addBackendNs(lab, i));
    if (mode === 'native') await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'tx', 'off']);
    const nss = [lab.backend, ...extra];
    for (let i = 0; i < 3; i++) servers.push(await startBackendServers(nss[i], BACKENDS[i], [8080, 8081], [5353]));
  });
  afterAll(async () => {
    if (maps) closeDataPlaneMaps(maps);
    await stopAllLoaders();
    for (const s of servers) await s.stop();
    for (const ns of extra) await delNs(ns);
    await lab?.down();
    removePins(dir);
  });

  /**
   * Which backend (index) saw the client's `local` address:port on `port`.
   * Searched in the whole output: the servers' threads print concurrently,
   * and Python's print() may put two records on one line.
   */
  const backendOf = (local: string, port = 8080) => {
    const re = new RegExp(`tcp ${port} ${local.replace(/\./g, '\\.')}(?!\\d)`);
    return servers.findIndex((s) => re.test(s.seen().join('\n')));
  };

  it('the lesson\'s default run works, and Ctrl-C detaches everything and removes the pins', async () => {
    const l = await startLb([]);
    expect(l.stderr()).toContain('\nservice 10.96.0.10:80/tcp → 10.244.1.5:8080\n');
    expect(l.stderr()).toContain(`attached xdp xdp_dnat on ${lab.lbClientIf} (${mode} mode)`);
    const pinned = /pinned maps at (\S+)/.exec(l.stderr())![1];
    expect(existsSync(join(pinned, 'service_map'))).toBe(true);
    const t = await tcpExchange(lab.client, VIP, 80, 100_000);
    expect(t).toMatchObject({ connected: true, peer: `${VIP}:80`, received: 100_000, same: true });
    expect(await eventually(() => backendOf(t.local!) === 0, 5000)).toBe(true);
    const r = await l.stop('SIGINT');
    expect(r.code).toBe(0);
    expect(l.stderr()).toMatch(/detached\n$/);
    expect(existsSync(pinned)).toBe(false);
    expect((await run(['ip', '-n', lab.lb, '-d', 'link', 'show', 'dev', lab.lbClientIf])).stdout).not.toMatch(/prog\/xdp/);
    expect((await tcpExchange(lab.client, VIP, 80, 10, 1)).connected).toBe(false);
  });

  it('spreads many connections over three backends; removing one keeps the others\' connections exchanging data', async () => {
    loader = await startLb(['--pin-dir', dir,
      '--service', `${VIP}:80/tcp=${BACKENDS.map((b) => `${b}:8080`).join(',')}`,
      '--service', '10.96.0.20:80/tcp=10.244.1.5:8081', '--service', '10.96.0.21:80/tcp=10.244.1.5:8081']);
    maps = openPinnedDataPlane(dir);
    const held = await holdConnections(lab.client, VIP, 80, 30);
    try {
      expect(held.peers.every((p) => p === `${VIP}:80`)).toBe(true);
      // The servers print each accepted connection: wait until all are printed.
      const allSeen = await eventually(() => held.locals.every((l) => backendOf(l) >= 0), 5000);
      expect(allSeen).toBe(true);
      const on = held.locals.map((l) => backendOf(l));
      for (const b of [0, 1, 2]) expect(on.filter((x) => x === b).length, `connections on backend ${b}`).toBeGreaterThan(0);
      expect(await held.exchange(3, 2000, 0.05)).toEqual(on.map(() => true));
      // Remove 10.244.2.5: the desired state without it, applied through the pinned maps (adopted by the table).
      const table = new ServiceTable(maps);
      const r = table.apply([
        parseService(`${VIP}:80/tcp=${BACKENDS[0]}:8080,${BACKENDS[2]}:8080`),
        parseService('10.96.0.20:80/tcp=10.244.1.5:8081'), parseService('10.96.0.21:80/tcp=10.244.1.5:8081'),
      ]);
      expect(r).toMatchObject({ servicesChanged: 1, servicesUnchanged: 2, backendsRemoved: 1 });
      const before = readDnatStats(maps.stats);
      const ok = await held.exchange(5, 2000, 0.05);
      on.forEach((b, i) => { if (b !== 1) expect(ok[i], `connection ${held.locals[i]} on backend ${b}`).toBe(true); });
      // The removed backend's connections were re-picked (and refused by their new backend).
      expect(readDnatStats(maps.stats).conn_reselect - before.conn_reselect).toBeGreaterThan(0);
      // New connections avoid it.
      for (let i = 0; i < 6; i++) {
        const t = await tcpExchange(lab.client, VIP, 80, 1000);
        expect(t).toMatchObject({ connected: true, same: true });
        expect(await eventually(() => backendOf(t.local!) >= 0, 5000)).toBe(true);
        expect(backendOf(t.local!)).not.toBe(1);
      }
    } finally {
      await held.close();
    }
  });

  it('two services sharing one backend address answer with their own VIP', async () => {
    for (const vip of ['10.96.0.20', '10.96.0.21']) {
      const t = await tcpExchange(lab.client, vip, 80, 50_000);
      expect(t).toMatchObject({ connected: true, peer: `${vip}:80`, received: 50_000, same: true });
      expect(await eventually(() => backendOf(t.local!, 8081) === 0, 5000)).toBe(true);
    }
    const list = new ServiceTable(maps!).list();
    expect(list.filter((s) => s.backends.some((b) => `${b.ip}:${b.port}` === '10.244.1.5:8081')).map((s) => s.vip)).toEqual(['10.96.0.20', '10.96.0.21']);
  });

  it('with checksum offload off, the receiving kernels verify our checksums: all good', async () => {
    await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'tx', 'off']);
    for (const [ns, ifname] of [[lab.backend, lab.backendIf], ...extra.map((e) => [e, 'eth0'])]) await runNs(ns, ['ethtool', '-K', ifname, 'tx', 'off']);
    const errs = (await csumErrors(lab.client)) + (await csumErrors(lab.backend));
    const before = readDnatStats(maps!.stats, maps!.flowCache);
    const t = await tcpExchange(lab.client, '10.96.0.20', 80, 300_000);
    expect(t).toMatchObject({ connected: true, peer: '10.96.0.20:80', received: 300_000, same: true });
    const after = readDnatStats(maps!.stats, maps!.flowCache);
    expect(after.redirect - before.redirect).toBeGreaterThan(100);
    expect(after.reply_rewritten - before.reply_rewritten).toBeGreaterThan(10);
    expect((await csumErrors(lab.client)) + (await csumErrors(lab.backend))).toBe(errs);
  });

  it('a restart with --pin-dir in the middle of a TCP exchange: adopted, programs replaced in place, the exchange completes', async () => {
    const held = await holdConnections(lab.client, VIP, 80, 6);
    try {
      const oldProg = Link.openPinned(join(dir, LB_LINKS.forward), 'old')!;
      const oldId = oldProg.info().progId;
      oldProg.release();
      // About 8 s of exchanges, during which the loader stops and a new one starts.
      const exchange = held.exchange(40, 1000, 0.2);
      await new Promise((r) => setTimeout(r, 500));
      const r = await loader.stop('SIGINT');
      expect(r.code).toBe(0);
      expect(loader.stderr()).toContain(`left the programs attached and the state pinned in ${dir}`);
      expect(existsSync(join(dir, LB_LINKS.forward))).toBe(true);
      loader = await startLb(['--pin-dir', dir]);
      const err = loader.stderr();
      expect(err).toMatch(/adopted 9 pinned maps/);
      expect(err).toContain('replaced the program in place');
      expect(err).toContain(`service ${VIP}:80/tcp → 10.244.1.5:8080, 10.244.3.5:8080 (adopted)`);
      const ok = await exchange;
      expect(ok).toEqual(held.locals.map(() => true));
      const now = Link.openPinned(join(dir, LB_LINKS.forward), 'new')!;
      expect(now.info().progId).not.toBe(oldId);
      now.release();
    } finally {
      await held.close();
    }
  });

  it('scripts/services.ts against the running loader\'s pins: add two weighted backends, list, change, remove; bad input is one line and changes nothing', async () => {
    type Listed = { services: Array<{ service: string; backends: Array<{ backend: string; weight: number; share: number }>; packets: number }> };
    const svc = '10.96.0.30:80/tcp';
    const list = async (): Promise<Listed['services']> => {
      const r = await runServices(['--pin-dir', dir, 'list', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return (JSON.parse(r.stdout) as Listed).services;
    };
    const before = await list();
    expect(before.map((s) => s.service)).toContain(`${VIP}:80/tcp`);

    const add = await runServices(['--pin-dir', dir, 'add', `${svc}=${BACKENDS[0]}:8080*1,${BACKENDS[1]}:8080*3`]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toContain(`added ${svc}`);
    const added = (await list()).find((s) => s.service === svc)!;
    expect(added.backends.map((b) => [b.backend, b.weight])).toEqual([[`${BACKENDS[0]}:8080`, 1], [`${BACKENDS[1]}:8080`, 3]]);
    expect(added.backends[0].share + added.backends[1].share).toBeCloseTo(1, 6);
    expect(added.backends[0].share).toBeGreaterThan(0.2);
    expect(added.backends[0].share).toBeLessThan(0.3);
    const text = await runServices(['--pin-dir', dir, 'list']);
    expect(text.stdout).toMatch(new RegExp(`→ ${BACKENDS[1].replace(/\./g, '\\.')}:8080 +weight +3 +share +7\\d\\.\\d%`));
    // The running loader's data plane takes the new service at once: connections land on both backends.
    const on = new Set<number>();
    for (let i = 0; i < 40 && on.size < 2; i++) { // 1 in 4 lands on backend 0: 12 tries missed it 3% of the time
      const t = await tcpExchange(lab.client, '10.96.0.30', 80, 1000);
      expect(t).toMatchObject({ connected: true, peer: '10.96.0.30:80', same: true });
      expect(await eventually(() => backendOf(t.local!) >= 0, 5000)).toBe(true);
      on.add(backendOf(t.local!));
    }
    expect([...on].sort()).toEqual([0, 1]);

    const change = await runServices(['--pin-dir', dir, 'change', `${svc}=${BACKENDS[2]}:8080`]);
    expect(change.code).toBe(0);
    expect((await list()).find((s) => s.service === svc)!.backends).toEqual([{ backend: `${BACKENDS[2]}:8080`, weight: 1, share: 1 }]);
    const t = await tcpExchange(lab.client, '10.96.0.30', 80, 1000);
    expect(t).toMatchObject({ connected: true, same: true });
    expect(await eventually(() => backendOf(t.local!) === 2, 5000)).toBe(true);

    // Bad input: one line on stderr, exit 1, and nothing written (not even the good spec before a bad one).
    const shape = async () => JSON.stringify((await list()).map((s) => [s.service, s.backends]));
    const state = await shape();
    for (const args of [
      ['add', '10.96.0.31:80/tcp=10.244.1.5:8080', '10.96.0.32:80/tcp=10.244.1.300:8080'],
      ['add', `${svc}=${BACKENDS[0]}:8080`],
      ['change', '10.96.0.33:80/tcp=10.244.1.5:8080'],
      ['change', `${svc}=${BACKENDS[0]}:8080*70000`],
      ['remove', '10.96.0.34:80/tcp'],
      ['remove', '10.96.0.30:80/sctp'],
    ]) {
      const r = await runServices(['--pin-dir', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    }
    expect(await shape()).toBe(state);

    const stats = await runServices(['--pin-dir', dir, 'stats', '--json']);
    expect(stats.code).toBe(0);
    expect((JSON.parse(stats.stdout) as { stats: Record<string, number> }).stats.redirect).toBeGreaterThan(0);

    const rm = await runServices(['--pin-dir', dir, 'remove', svc]);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toBe(`removed ${svc}\n`);
    expect((await list()).map((s) => s.service)).toEqual(before.map((s) => s.service));
    expect((await tcpExchange(lab.client, '10.96.0.30', 80, 10, 1)).connected).toBe(false);
  });

  it('stopping with --pin-dir leaves everything attached; removing the pins detaches', async () => {
    const r = await loader.stop('SIGINT');
    expect(r.code).toBe(0);
    const t = await tcpExchange(lab.client, VIP, 80, 10_000);
    expect(t).toMatchObject({ connected: true, same: true });
    if (maps) { closeDataPlaneMaps(maps); maps = undefined; }
    removePins(dir);
    expect(await eventually(async () => !/prog\/xdp/.test((await run(['ip', '-n', lab.lb, '-d', 'link', 'show', 'dev', lab.lbClientIf])).stdout), 5000)).toBe(true);
  });
});
