/**
 * The xdp_dnat loader's route and neighbour watcher (src/net/rtwatch.ts,
 * src/lb/fibwatch.ts), on a real kernel: in a lab (client -- lb -- backend)
 * an established TCP connection's entry caches the backend's MAC for 1 s
 * (fib_refresh_ns). A neighbour change in the lb namespace makes the loader
 * bump lb_globals.fib_generation, and the connection's next packet, sent
 * well inside that second, is looked up again (fib_refresh moves) and
 * leaves with the new MAC: a packet socket in the backend namespace sees
 * it. Without the bump the cache would still hold the old MAC and the test
 * fails. Putting the real MAC back lets the retransmission through: the
 * exchange completes. A burst of route changes is coalesced into few bumps.
 * Kernel tests: skipped when not root, but under CI=true they must run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDataPlaneMaps, openPinnedDataPlane, readDnatStats, type DataPlaneMaps } from '../src/lb/dataplane.js';
import { dnatLab, holdTcpConnections, run, startBackendServers, type BackendServers, type DnatLab, type HeldConnections } from '../src/lab/index.js';
import { link } from '../src/lab/netns.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { eventually, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

const TAG = 'rtwatch';
const DIR = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-${TAG}`;
const VIP = '10.96.0.10';
const OTHER_MAC = '02:00:00:00:be:ef';

/** Prints the destination MAC of every IPv4 TCP frame to port 8080 seen on an interface (argv[1]), one a line. */
const CAPTURE = `
import socket,struct,sys
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))
s.bind((sys.argv[1],3))
print('ready',flush=True)
while True:
  f=s.recv(65535)
  if len(f)<34 or f[12:14]!=b'\\x08\\x00' or f[23]!=6: continue
  t=14+(f[14]&15)*4
  if len(f)>=t+4 and struct.unpack('!H',f[t+2:t+4])[0]==8080: print(f[0:6].hex(':'),flush=True)
`;

describe.skipIf(!kernelTests())('xdp_dnat: route and neighbour changes refresh the cached forwarding', { timeout: 120_000 }, () => {
  let lab: DnatLab;
  let servers: BackendServers | undefined;
  let loader: LoaderProcess;
  let maps: DataPlaneMaps | undefined;
  let capture: ChildProcess | undefined;
  let held: HeldConnections | undefined;
  let seen: string[] = [];

  const generation = () => maps!.globals.get(0)?.fib_generation ?? 0;
  const stats = () => readDnatStats(maps!.stats);

  beforeAll(async () => {
    removePins(DIR);
    lab = await dnatLab(TAG);
    servers = await startBackendServers(lab.backend, lab.backendIp, [8080], []);
    loader = startLoader('xdp_dnat', [lab.lbClientIf, '--interval', '3600', '--pin-dir', DIR, '--verbose'],
      { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });
    await loader.waitFor('Ctrl-C to stop', 60_000);
    maps = openPinnedDataPlane(DIR);
    const c = capture = spawn('ip', ['netns', 'exec', lab.backend, 'python3', '-c', CAPTURE, lab.backendIf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; seen = out.split('\n').slice(0, -1); });
    expect(await eventually(() => seen[0] === 'ready', 10_000)).toBe(true);
    held = await holdTcpConnections(lab.client, VIP, 80, 1);
  }, 120_000);

  afterAll(async () => {
    await held?.close();
    capture?.kill('SIGKILL');
    if (maps) closeDataPlaneMaps(maps);
    await stopAllLoaders();
    await servers?.stop();
    await lab?.down();
    removePins(DIR);
  }, 60_000);

  it('a neighbour change: the next packet of an established flow, inside the 1 s cache, leaves with the new MAC', async () => {
    const realMac = (await link(lab.backend, lab.backendIf))!.address;
    expect(await held!.exchange(1, 100, 0)).toEqual([true]);
    // Past the cache's second, so the next packet refreshes it: from then on it is good for 1 s.
    await new Promise((r) => setTimeout(r, 1100));
    const t0 = Date.now();
    const s0 = stats();
    expect(await held!.exchange(1, 100, 0)).toEqual([true]);
    const s1 = stats();
    expect(s1.fib_refresh - s0.fib_refresh).toBeGreaterThanOrEqual(1);
    expect(seen.slice(1).every((m) => m === realMac)).toBe(true);
    const g1 = generation();

    await run(['ip', '-n', lab.lb, 'neigh', 'replace', lab.backendIp, 'lladdr', OTHER_MAC, 'dev', lab.lbBackendIf, 'nud', 'permanent']);
    expect(await eventually(() => generation() !== g1, 1000)).toBe(true);
    const before = seen.length;
    const sent = Date.now();
    const exchange = held!.exchange(1, 100, 0); // its segment is dropped by the backend (not its MAC) until the MAC is back
    expect(await eventually(() => seen.slice(before).includes(OTHER_MAC), 2000)).toBe(true);
    // Inside the second the entry's cache was good for: only the bump can have refreshed it.
    expect(sent - t0).toBeLessThan(900);
    expect(stats().fib_refresh - s1.fib_refresh).toBeGreaterThanOrEqual(1);
    expect(loader.stderr()).toMatch(new RegExp(`fib_generation \\d+: neighbour ${lab.backendIp.replace(/\./g, '\\.')} → ${OTHER_MAC}`));

    const g2 = generation();
    await run(['ip', '-n', lab.lb, 'neigh', 'replace', lab.backendIp, 'lladdr', realMac, 'dev', lab.lbBackendIf, 'nud', 'reachable']);
    expect(await eventually(() => generation() !== g2, 1000)).toBe(true);
    // TCP retransmits (200 ms, 400 ms...): the next copy goes to the real MAC and the exchange completes.
    expect(await exchange).toEqual([true]);
    expect(seen.slice(before).at(-1)).toBe(realMac);
  });

  it('a route change bumps the generation, and a burst of them is coalesced into a few bumps', async () => {
    const g0 = generation();
    const r0 = stats().fib_refresh;
    await run(['ip', '-n', lab.lb, 'route', 'add', '10.99.0.0/16', 'via', lab.backendIp]);
    expect(await eventually(() => generation() !== g0, 1000)).toBe(true);
    expect(await held!.exchange(1, 100, 0)).toEqual([true]);
    expect(stats().fib_refresh).toBeGreaterThan(r0);
    expect(loader.stderr()).toMatch(/fib_generation \d+: route 10\.99\.0\.0\/16 added\n/);

    // 100 routes added then removed in one `ip -batch`: one report per 50 ms at most.
    const g1 = generation();
    const batch = Array.from({ length: 100 }, (_, i) => `route add 10.98.${i}.0/24 via ${lab.backendIp}`).join('\n')
      + '\n' + Array.from({ length: 100 }, (_, i) => `route del 10.98.${i}.0/24`).join('\n') + '\n';
    const t0 = performance.now();
    await run(['ip', '-n', lab.lb, '-batch', '-'], { input: batch });
    const took = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 300)); // the trailing report
    const bumps = (generation() - g1) >>> 0;
    expect(bumps).toBeGreaterThanOrEqual(1);
    expect(bumps).toBeLessThanOrEqual(2 + Math.ceil((took + 300) / 50));
    expect(bumps).toBeLessThan(50); // 200 changes
  });
});
