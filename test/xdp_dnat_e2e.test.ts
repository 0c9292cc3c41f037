/**
 * xdp_dnat end to end, the way a user runs it: a three-namespace lab
 * (client -- load balancer -- backend), the loader on the load balancer's
 * client-facing interface (entered with nsenter --net, so its pins are
 * visible here), echo servers on the backend, real connections from the
 * client to the VIPs:
 * - TCP through 10.96.0.10:80 completes, data goes both ways, the client's
 *   socket sees the VIP as its peer, the backend sees the client's address;
 * - a UDP service added with scripts/services.ts while the loader runs
 *   answers, and stops answering once removed; the same for a TCP service
 *   added through the API;
 * - with transmit checksum offload off on client and backend, the receiving
 *   kernels verify every checksum our programs changed (veth otherwise
 *   carries partial checksums nobody checks): connections still work, the
 *   XDP fast path (redirect) and the reply path did the work, and no
 *   checksum error is counted;
 * - Ctrl-C detaches everything and removes the pins.
 * All of it in skb mode (the default) and in native mode. Native mode on
 * veth needs two things of the lab: GRO on the veth the redirect lands in
 * (the backend's eth0, which dnatLab turns on: without it the kernel drops
 * redirected frames silently), and full checksums from the client
 * (`ethtool -K eth0 tx off`: XDP cannot complete a partial checksum).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DnatStats } from '../src/lessons/xdp_dnat.js';
import { ServiceTable, formatService, parseService } from '../src/lessons/xdp_dnat/legacy_table.js';
import { startBackendServers, tcpExchange, udpExchange, type BackendServers } from '../src/lab/index.js';
import { dnatLab, run, runNs, type DnatLab } from '../src/lab/index.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { REPO_ROOT } from '../src/cli/build.js';
import { runServices, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

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
  { mode: 'skb', tag: 'xdnate2e', dir: '/sys/fs/bpf/libbpf-ts/xdp_dnat/test-e2e' },
  { mode: 'native', tag: 'xdnatnat', dir: '/sys/fs/bpf/libbpf-ts/xdp_dnat/test-e2e-native' },
] as const;

describe.skipIf(!kernelTests()).each(MODES)('xdp_dnat end to end in $mode mode: client -- load balancer -- backend', ({ mode, tag, dir }) => {
  let lab: DnatLab;
  let servers: BackendServers;
  let loader: LoaderProcess;
  let table: ServiceTable;

  beforeAll(async () => {
    removePins(dir);
    lab = await dnatLab(tag);
    // XDP cannot complete the partial checksums of a local sender: in native mode the client must send full ones.
    if (mode === 'native') await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'tx', 'off']);
    servers = await startBackendServers(lab.backend, lab.backendIp, [8080, 8081], [5353]);
    loader = startLoader('xdp_dnat', [lab.lbClientIf, '--mode', mode, '--pin-dir', dir, '--interval', '1'], { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });
    await loader.waitFor('Ctrl-C to stop', 60_000);
    table = ServiceTable.openPinned(dir);
  });
  afterAll(async () => {
    table?.close();
    await stopAllLoaders();
    await servers?.stop();
    await lab?.down();
    removePins(dir);
  });

  const stats = () => table.stats();
  const grew = (a: DnatStats, b: DnatStats, k: keyof DnatStats) => b[k] - a[k];

  it('starts with the lesson service and says what it attached and pinned', () => {
    const err = loader.stderr();
    expect(err).toContain('\nservice 10.96.0.10:80/tcp → 10.244.1.5:8080\n');
    expect(err).toContain(`attached xdp xdp_dnat on ${lab.lbClientIf} (${mode} mode)`);
    expect(err).toMatch(new RegExp(`attached tc egress tc_dnat_reply on ${lab.lbClientIf} \\((tcx link|clsact.*)\\)`));
    expect(err).toContain(`pinned maps at ${dir}`);
    expect(table.list().map(formatService)).toEqual(['10.96.0.10:80/tcp → 10.244.1.5:8080']);
  });

  it('prints a services command that runs as pasted (from where the loader ran)', () => {
    const hint = /pinned maps at \S+ \(list services: (.*)\)\n/.exec(loader.stderr())?.[1];
    expect(hint).toBeDefined();
    const r = spawnSync('sh', ['-c', hint!], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^10\.96\.0\.10:80\/tcp +\d+ packets +\d+ bytes\n {2}→ 10\.244\.1\.5:8080 +weight +1 {2}share 100\.0%\n/);
  });

  it('carries a TCP connection through the VIP: data both ways, the backend sees the client', async () => {
    const before = stats();
    const t = await tcpExchange(lab.client, '10.96.0.10', 80, 200_000);
    expect(t).toMatchObject({ connected: true, peer: '10.96.0.10:80', sent: 200_000, received: 200_000, same: true });
    expect(t.local).toMatch(/^10\.0\.1\.2:\d+$/);
    expect(servers.seen()).toContain(`tcp 8080 ${t.local}`); // the client's own address and port
    const after = stats();
    expect(grew(before, after, 'reply_rewritten')).toBeGreaterThan(0);
    expect(table.hits(parseService('10.96.0.10:80/tcp=10.244.1.5:8080')).packets).toBeGreaterThan(0);
    // The hit table the loader prints every second shows it.
    await loader.waitForStdout(/10\.96\.0\.10:80\/tcp +→ {2}10\.244\.1\.5:8080 +[1-9]/, 5000);
  });

  it('a UDP service added with scripts/services.ts answers, and stops when removed', async () => {
    const add = await runServices(['--pin-dir', dir, 'add', '10.96.0.11:53/udp=10.244.1.5:5353']);
    expect(add).toMatchObject({ code: 0, stdout: 'added 10.96.0.11:53/udp → 10.244.1.5:5353\n', stderr: '' });
    const u = await udpExchange(lab.client, '10.96.0.11', 53, 33);
    expect(u).toMatchObject({ answered: true, from: '10.96.0.11:53', same: true });
    expect(servers.seen()).toContain(`udp 5353 ${u.local}`);
    const rm = await runServices(['--pin-dir', dir, 'remove', '10.96.0.11:53/udp']);
    expect(rm.code).toBe(0);
    expect((await udpExchange(lab.client, '10.96.0.11', 53, 33, 1)).answered).toBe(false);
  });

  it('a TCP service added through the API works at once, and stops when removed', async () => {
    const s = parseService('10.96.0.12:443/tcp=10.244.1.5:8081');
    expect((await tcpExchange(lab.client, '10.96.0.12', 443, 10, 1)).connected).toBe(false);
    table.add(s);
    const t = await tcpExchange(lab.client, '10.96.0.12', 443, 50_000);
    expect(t).toMatchObject({ connected: true, peer: '10.96.0.12:443', received: 50_000, same: true });
    expect(servers.seen()).toContain(`tcp 8081 ${t.local}`);
    table.remove(s);
    expect((await tcpExchange(lab.client, '10.96.0.12', 443, 10, 1)).connected).toBe(false);
  });

  it('with checksum offload off, the receiving kernels verify our checksums: all good', async () => {
    await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'tx', 'off']);
    await runNs(lab.backend, ['ethtool', '-K', lab.backendIf, 'tx', 'off']);
    table.add(parseService('10.96.0.11:53/udp=10.244.1.5:5353'));
    const errs = (await csumErrors(lab.client)) + (await csumErrors(lab.backend));
    const before = stats();
    const t = await tcpExchange(lab.client, '10.96.0.10', 80, 300_000);
    expect(t).toMatchObject({ connected: true, peer: '10.96.0.10:80', received: 300_000, same: true });
    for (let i = 0; i < 5; i++) {
      expect(await udpExchange(lab.client, '10.96.0.11', 53, 1 + i * 111)).toMatchObject({ answered: true, from: '10.96.0.11:53', same: true });
    }
    const after = stats();
    // Full-size segments, no GSO: XDP forwarded most client packets itself.
    expect(grew(before, after, 'redirect')).toBeGreaterThan(100);
    expect(grew(before, after, 'reply_rewritten')).toBeGreaterThan(10);
    expect((await csumErrors(lab.client)) + (await csumErrors(lab.backend))).toBe(errs);
  });

  it('replies with partial checksums, completed by the load balancer after TC egress, verify at the client', async () => {
    // The backend leaves its checksums partial (offload on: CHECKSUM_PARTIAL, and TSO super-packets);
    // lb0 without checksum offload makes the lb's kernel complete them (and segment) after
    // tc_dnat_reply changed the source: right only if the program updated the partial sum
    // the way partial sums need (BPF_F_PSEUDO_HDR).
    await runNs(lab.backend, ['ethtool', '-K', lab.backendIf, 'tx', 'on', 'tso', 'on']);
    await runNs(lab.lb, ['ethtool', '-K', lab.lbClientIf, 'tx', 'off']);
    try {
      const errs = await csumErrors(lab.client);
      const before = stats();
      const t = await tcpExchange(lab.client, '10.96.0.10', 80, 300_000);
      expect(t).toMatchObject({ connected: true, peer: '10.96.0.10:80', received: 300_000, same: true });
      expect(await udpExchange(lab.client, '10.96.0.11', 53, 301)).toMatchObject({ answered: true, from: '10.96.0.11:53', same: true });
      expect(grew(before, stats(), 'reply_rewritten')).toBeGreaterThan(0);
      expect(await csumErrors(lab.client)).toBe(errs);
    } finally {
      await runNs(lab.lb, ['ethtool', '-K', lab.lbClientIf, 'tx', 'on']);
    }
  });

  it('Ctrl-C detaches everything and removes the pins', async () => {
    const r = await loader.stop('SIGINT');
    expect(r.code).toBe(0);
    expect(loader.stderr()).toMatch(/detached\n$/);
    expect(existsSync(dir)).toBe(false);
    const link = (await run(['ip', '-n', lab.lb, '-d', 'link', 'show', 'dev', lab.lbClientIf])).stdout;
    expect(link).not.toMatch(/xdp/);
    expect((await tcpExchange(lab.client, '10.96.0.10', 80, 10, 1)).connected).toBe(false);
  });
});
