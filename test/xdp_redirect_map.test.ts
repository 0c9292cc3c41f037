/**
 * xdp_redirect_map on a real kernel: the lab's three namespaces (client --
 * router -- backend, dnatLab) with forwarding OFF in the router, so only
 * the XDP program can carry a packet across. The loader runs in the router
 * namespace (nsenter --net) on both of its veths, as a user would run it.
 *
 * - Nothing crosses without the program; with it (skb mode) pings and a TCP
 *   exchange do, the TTL is one less, and the per-interface counters (per
 *   CPU, summed) show the redirects both ways.
 * - Native mode on veths: frames redirected into a veth whose peer has
 *   neither GRO nor an XDP program are dropped (the counters still say
 *   redirected); with GRO on at the client too, pings and TCP cross.
 * - Bad arguments: one line.
 *
 * The senders (client and backend eth0) have TX checksum offload off: see
 * the README for what happens with it on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnatLab, ping, run, runNs, startBackendServers, tcpExchange, type BackendServers, type DnatLab } from '../src/lab/index.js';
import type { IfCounters } from '../src/lessons/xdp_redirect_map.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, runLoader, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

const PORT = 8080;

type CounterLine = { interfaces: Record<string, IfCounters> };
function lastCounters(loader: LoaderProcess): Record<string, IfCounters> | undefined {
  const lines = loader.stdout().trim().split('\n').filter(Boolean);
  return lines.length ? (JSON.parse(lines[lines.length - 1]) as CounterLine).interfaces : undefined;
}

/** The TTL of the replies of one ping from `ns` to `ip`, or undefined when none came. */
async function replyTtl(ns: string, ip: string): Promise<number | undefined> {
  try {
    const { stdout } = await runNs(ns, ['ping', '-n', '-c', '1', '-W', '1', ip]);
    return Number(/ttl=(\d+)/.exec(stdout)?.[1]);
  } catch {
    return undefined;
  }
}

describe.skipIf(!kernelTests())('xdp_redirect_map on a real kernel', () => {
  let lab: DnatLab;
  let servers: BackendServers;
  beforeAll(async () => {
    lab = await dnatLab('xrm');
    await runNs(lab.lb, ['sysctl', '-qw', 'net.ipv4.ip_forward=0', 'net.ipv4.conf.all.forwarding=0']);
    // Full checksums from the senders: XDP cannot complete a partial one (native
    // mode), and without checksum offload there is no TSO either (skb mode:
    // TCP stalled with TSO on, see the README).
    await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'tx', 'off']);
    await runNs(lab.backend, ['ethtool', '-K', lab.backendIf, 'tx', 'off']);
    // The router learns both neighbours (their ARP requests for its addresses).
    expect(await ping(lab.client, lab.lbClientIp, 1)).toBe(1);
    expect(await ping(lab.backend, lab.lbBackendIp, 1)).toBe(1);
    servers = await startBackendServers(lab.backend, lab.backendIp, [PORT], []);
  });
  afterAll(async () => {
    await stopAllLoaders();
    await servers?.stop();
    await lab?.down();
  });

  const startRouter = (mode: string) => startLoader('xdp_redirect_map', [lab.lbClientIf, '--peer', lab.lbBackendIf, '--mode', mode, '--json', '--interval', '0.3'],
    { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });

  it('skb mode: nothing crosses without the program; with it pings and TCP do, TTL - 1, counted per interface', async () => {
    expect(await ping(lab.client, lab.backendIp, 2)).toBe(0);
    const loader = startRouter('skb');
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      expect(loader.stderr()).toMatch(new RegExp(`route ${lab.backendIp} via port 1 \\(lb1\\): `));
      expect(loader.stderr()).toMatch(new RegExp(`route ${lab.clientIp} via port 0 \\(lb0\\): `));
      expect(loader.stderr()).toContain('attached xdp xdp_redirect_map on lb0 (skb mode)');
      expect(await ping(lab.client, lab.backendIp, 5)).toBe(5);
      expect(await replyTtl(lab.client, lab.backendIp)).toBe(63); // the backend's 64, one hop
      const tcp = await tcpExchange(lab.client, lab.backendIp, PORT, 200_000);
      expect(tcp).toMatchObject({ connected: true, sent: 200_000, received: 200_000, same: true });
      expect(servers.seen().some((l) => l.startsWith(`tcp ${PORT} ${lab.clientIp}:`))).toBe(true);
      await eventually(() => { const l = lastCounters(loader); return !!l && l.lb0.redirected >= 16 && l.lb1.redirected >= 16; }, 3000);
      const c = lastCounters(loader)!;
      // 6 echo requests in at lb0 and out of lb1, 6 replies the other way, plus the TCP exchange.
      expect(c.lb0.redirected).toBeGreaterThanOrEqual(6 + 10);
      expect(c.lb1.redirected).toBeGreaterThanOrEqual(6 + 10);
      expect(c.lb1.tx_packets).toBe(c.lb0.redirected);
      expect(c.lb0.tx_packets).toBe(c.lb1.redirected);
      expect(c.lb0.rx_packets).toBe(c.lb0.redirected + c.lb0.passed);
      expect(c.lb0.rx_bytes).toBeGreaterThan(200_000);
      expect(await loader.stop('SIGINT')).toEqual({ code: 0, signal: null });
      expect(loader.stderr()).toMatch(/^lb0 +rx \d+ \(\d+ B\) +redirected \d+ +passed \d+ +tx \d+ \(\d+ B\)$/m);
    } finally {
      loader.kill('SIGKILL');
    }
    expect(await ping(lab.client, lab.backendIp, 2)).toBe(0);
    expect((await run(['ip', '-n', lab.lb, 'link', 'show', 'lb0'])).stdout).not.toContain('xdp');
  });

  it('native mode: a veth drops what is redirected into it until its peer has GRO; then pings and TCP cross', async () => {
    // The backend's eth0 has GRO on (dnatLab), the client's has not.
    await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'gro', 'off']);
    const loader = startRouter('native');
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      expect(loader.stderr()).toContain('attached xdp xdp_redirect_map on lb1 (native mode)');
      // Requests reach the backend (redirected into lb1, whose peer has GRO);
      // the replies are redirected into lb0 and dropped: its peer has neither.
      expect(await ping(lab.client, lab.backendIp, 3)).toBe(0);
      await eventually(() => (lastCounters(loader)?.lb1?.redirected ?? 0) >= 3, 3000);
      expect(lastCounters(loader)!.lb1.redirected).toBeGreaterThanOrEqual(3);
      await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'gro', 'on']);
      expect(await ping(lab.client, lab.backendIp, 5)).toBe(5);
      const tcp = await tcpExchange(lab.client, lab.backendIp, PORT, 100_000);
      expect(tcp).toMatchObject({ connected: true, received: 100_000, same: true });
      expect(await loader.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    } finally {
      loader.kill('SIGKILL');
      await runNs(lab.client, ['ethtool', '-K', lab.clientIf, 'gro', 'off']);
    }
  });

  it('bad arguments: one line', async () => {
    const same = await runLoader('xdp_redirect_map', [lab.lbClientIf, '--peer', lab.lbClientIf], { prefix: ['nsenter', `--net=/run/netns/${lab.lb}`] });
    expect(same.code).toBe(1);
    expect(same.stderr).toContain('error: check interfaces: --peer lb0 is <iface> itself');
    const none = await runLoader('xdp_redirect_map', [lab.lbClientIf]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("required option '--peer <iface>' not specified");
  });
});
