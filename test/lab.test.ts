/**
 * The lab on a real kernel: a pair lab (root-namespace host end, peer in a
 * namespace) and the three-namespace dnat lab carry real traffic, tear down
 * to nothing, and a build that fails half way removes what it made.
 * Kernel tests: skipped when not root, but under CI=true they must run.
 */
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { REPO_ROOT } from '../src/cli/build.js';
import { tsxCommand } from '../src/cli/hint.js';
import {
  checkTag, cleanupStale, dnatLab, listenUdp, pairLab, ping, ping6, run, runNs, sendTcpConnect, sendUdp,
  type DnatLab, type PairLab,
} from '../src/lab/index.js';

function kernelTests(): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error('lab tests must run under CI=true, but this is not root');
  return false;
}

/** Everything of `tag` that exists: its namespaces, and its interfaces in the root namespace. */
async function leftovers(tag: string): Promise<string[]> {
  const nss = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  const ours = new Set([`lbts-${tag}`, `lbts-${tag}-client`, `lbts-${tag}-lb`, `lbts-${tag}-backend`]);
  const links = (JSON.parse((await run(['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; ifalias?: string }>)
    .filter((l) => l.ifname.startsWith(tag) || l.ifalias?.startsWith(`lbts-${tag}`))
    .map((l) => l.ifname);
  return [...nss.filter((n) => ours.has(n)), ...links];
}

/** Pings from the root namespace out of `ifname` only; resolves with the replies. */
async function rootPing(ifname: string, ip: string, count: number): Promise<number> {
  const { stdout } = await run(['ping', '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', '-I', ifname, ip]);
  return Number(/(\d+) received/.exec(stdout)?.[1]);
}

describe.skipIf(!kernelTests())('lab on a real kernel', () => {
  describe('pair lab with ipv6: true', () => {
    let lab: PairLab;
    beforeAll(async () => { lab = await pairLab('lab6', { ipv6: true }); });
    afterAll(async () => { await lab?.down(); });

    it('gives both ends a ULA /64 usable at once, and static neighbour entries for each other', async () => {
      expect(lab.hostIp6).toMatch(/^fd6c:6274:7300:[0-9a-f]{1,4}::1$/);
      expect(lab.peerIp6).toBe(lab.hostIp6!.replace(/::1$/, '::2'));
      expect((await run(['ip', '-6', '-o', 'addr', 'show', 'dev', 'lab6h', 'scope', 'global'])).stdout).toContain(`inet6 ${lab.hostIp6}/64`);
      const peerAddrs = (await runNs(lab.ns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'lab6p', 'scope', 'global'])).stdout;
      expect(peerAddrs).toContain(`inet6 ${lab.peerIp6}/64`);
      expect(peerAddrs).not.toMatch(/tentative|dadfailed/);
      expect((await run(['ip', '-6', 'neigh', 'show', 'dev', 'lab6h'])).stdout).toMatch(new RegExp(`^${lab.peerIp6} lladdr ${lab.peerMac} PERMANENT`, 'm'));
      expect((await runNs(lab.ns, ['ip', '-6', 'neigh', 'show', 'dev', 'lab6p'])).stdout).toMatch(new RegExp(`^${lab.hostIp6} lladdr ${lab.hostMac} PERMANENT`, 'm'));
    });

    it('pings over IPv6 (ping -6) and still over IPv4', async () => {
      expect(await ping(lab.ns, lab.hostIp6!, 3)).toBe(3);
      expect(await ping6(lab.ns, lab.hostIp6!, 2)).toBe(2);
      expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
      await expect(ping6(lab.ns, lab.hostIp, 1)).rejects.toThrow(/bad IPv6 address/);
    });

    it('tears down to nothing', async () => {
      await lab.down();
      expect(await leftovers('lab6')).toEqual([]);
    });
  });

  describe('pair lab', () => {
    let lab: PairLab;
    beforeAll(async () => { lab = await pairLab('labt'); });
    afterAll(async () => { await lab?.down(); });

    it('puts the host end in the root namespace and the peer end in lbts-labt, on one /30 of 10.201.0.0/16', async () => {
      expect(lab).toMatchObject({ tag: 'labt', ns: 'lbts-labt', hostIf: 'labth', peerIf: 'labtp' });
      const [host] = JSON.parse((await run(['ip', '-j', 'link', 'show', 'dev', 'labth'])).stdout) as Array<Record<string, unknown>>;
      expect(host).toMatchObject({ ifindex: lab.hostIfindex, address: lab.hostMac, operstate: 'UP', ifalias: 'lbts-labt' });
      const [peer] = JSON.parse((await run(['ip', '-n', lab.ns, '-j', 'link', 'show', 'dev', 'labtp'])).stdout) as Array<Record<string, unknown>>;
      expect(peer).toMatchObject({ address: lab.peerMac, operstate: 'UP' });
      await expect(run(['ip', 'link', 'show', 'dev', 'labtp'])).rejects.toThrow(/does not exist/);

      const m = /^10\.201\.(\d+)\.(\d+)$/.exec(lab.hostIp);
      expect(m).not.toBeNull();
      const base = Number(m![2]) - 1;
      expect(base % 4).toBe(0);
      expect(lab.peerIp).toBe(`10.201.${m![1]}.${base + 2}`);
      expect((await run(['ip', '-4', '-o', 'addr', 'show', 'dev', 'labth'])).stdout).toContain(`inet ${lab.hostIp}/30`);
      expect((await runNs(lab.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'labtp'])).stdout).toContain(`inet ${lab.peerIp}/30`);
      // No other interface of the root namespace has an address in that /30.
      const others = (await run(['ip', '-4', '-o', 'addr', 'show'])).stdout.split('\n').filter((l) => l && !/^\d+: labth /.test(l));
      for (const l of others) expect(l).not.toContain(`inet 10.201.${m![1]}.${base + 1}/`);
    });

    it('has IPv6 off on both ends', async () => {
      expect((await run(['sysctl', '-n', 'net.ipv6.conf.labth.disable_ipv6'])).stdout.trim()).toBe('1');
      expect((await runNs(lab.ns, ['sysctl', '-n', 'net.ipv6.conf.labtp.disable_ipv6'])).stdout.trim()).toBe('1');
      expect((await run(['ip', '-6', 'addr', 'show', 'dev', 'labth'])).stdout).toBe('');
      expect((await runNs(lab.ns, ['ip', '-6', 'addr', 'show', 'dev', 'labtp'])).stdout).toBe('');
    });

    it('has no IPv6 fields unless asked for', () => {
      expect(lab.hostIp6).toBeUndefined();
      expect(lab.peerIp6).toBeUndefined();
    });

    it('pings peer -> host and host -> peer', async () => {
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      expect(await rootPing(lab.hostIf, lab.peerIp, 3)).toBe(3);
    });

    it('delivers sendUdp datagrams to a listener on the host end', async () => {
      const listener = await listenUdp(null, lab.hostIp, 0);
      await sendUdp(lab.ns, lab.hostIp, listener.port, 5, 100, 40123);
      await sendUdp(lab.ns, lab.hostIp, listener.port, 200, 10);
      const got = await listener.stop();
      expect(got.count).toBe(205);
      expect(got.bytes).toBe(5 * 100 + 200 * 10);
      expect(got.sources).toContain(`${lab.peerIp}:40123`);
      expect(got.sources.every((s) => s.startsWith(`${lab.peerIp}:`))).toBe(true);
      expect(await listener.stop()).toEqual(got);
    });

    it('counts TCP connections: refused to a closed port', async () => {
      expect(await sendTcpConnect(lab.ns, lab.hostIp, 9, 2)).toBe(0);
    });

    it('tears down to nothing, and down() again does nothing', async () => {
      await lab.down();
      expect(await leftovers('labt')).toEqual([]);
      await lab.down();
      await lab[Symbol.asyncDispose]();
      expect(await leftovers('labt')).toEqual([]);
    });
  });

  describe('dnat lab', () => {
    let lab: DnatLab;
    beforeAll(async () => { lab = await dnatLab('labd'); });
    afterAll(async () => { await lab?.down(); });

    it('builds client -- lb -- backend entirely inside three namespaces', async () => {
      expect(lab).toMatchObject({
        client: 'lbts-labd-client', lb: 'lbts-labd-lb', backend: 'lbts-labd-backend',
        clientIp: '10.0.1.2', lbClientIp: '10.0.1.1', lbBackendIp: '10.244.1.1', backendIp: '10.244.1.5', vipNet: '10.96.0.0/12',
      });
      expect((await run(['ip', '-j', 'link', 'show'])).stdout).not.toContain('labd');
      expect((await runNs(lab.lb, ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('1');
      expect((await runNs(lab.lb, ['sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).stdout.trim()).toBe('0');
      for (const ns of [lab.client, lab.lb, lab.backend]) {
        expect((await runNs(ns, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6'])).stdout.trim()).toBe('1');
        expect((await runNs(ns, ['ip', '-6', 'addr', 'show'])).stdout).toBe('');
      }
      const route = (await run(['ip', '-n', lab.client, 'route', 'get', '10.96.0.10'])).stdout;
      expect(route).toMatch(/^10\.96\.0\.10 via 10\.0\.1\.1 dev eth0 /);
      expect((await run(['ip', '-n', lab.client, 'route', 'show', '10.96.0.0/12'])).stdout).toContain('via 10.0.1.1');
      // GRO on the backend's eth0: a veth (lb1) passes XDP-redirected frames only to a peer that runs NAPI.
      expect((await runNs(lab.backend, ['ethtool', '-k', lab.backendIf])).stdout).toMatch(/^generic-receive-offload: on$/m);
    });

    it('routes the client to the backend (and back) through lb, before any BPF', async () => {
      expect(await ping(lab.client, lab.lbClientIp, 2)).toBe(2);
      expect(await ping(lab.client, lab.backendIp, 3)).toBe(3);
      expect(await ping(lab.backend, lab.clientIp, 3)).toBe(3);
      const listener = await listenUdp(lab.backend, lab.backendIp, 8080);
      await sendUdp(lab.client, lab.backendIp, 8080, 3, 10, 40000);
      expect(await listener.stop()).toEqual({ count: 3, bytes: 30, sources: ['10.0.1.2:40000'] });
    });

    it('sends service-network traffic to lb, which has nowhere to forward it', async () => {
      expect(await ping(lab.client, '10.96.0.10', 1)).toBe(0);
    });

    it('tears down to nothing, and down() again does nothing', async () => {
      await lab.down();
      expect(await leftovers('labd')).toEqual([]);
      await lab.down();
      expect(await leftovers('labd')).toEqual([]);
    });
  });

  describe('another name prefix', () => {
    const nss = async () => (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('lbtq-')).sort();
    const lab = (...args: string[]) => run([process.execPath, '--import', 'tsx', join(REPO_ROOT, 'scripts', 'lab.ts'), ...args]);
    afterAll(async () => { await cleanupStale('lbtq-', { prefix: 'lbtq-' }); });

    it('lab.ts --prefix builds, lists and removes labs under that prefix only', async () => {
      const up = await lab('--prefix', 'lbtq-', 'up', 'dnat', 'labx');
      expect(up.stdout).toContain('  client   lbtq-labx-client  eth0 10.0.1.2/24');
      expect(up.stdout).toContain(`  down: ${tsxCommand('scripts/lab.ts', ['--prefix', 'lbtq-', 'down', 'labx'], { cwd: REPO_ROOT })}\n`);
      expect(await nss()).toEqual(['lbtq-labx-backend', 'lbtq-labx-client', 'lbtq-labx-lb']);
      expect((await lab('--prefix', 'lbtq-', 'list')).stdout).toBe('dnat labx: lbtq-labx-backend lbtq-labx-client lbtq-labx-lb\n');
      expect((await lab('list')).stdout).not.toContain('labx');
      expect((await lab('down', 'labx')).stdout).toBe("nothing of lab 'labx' to remove\n");
      expect(await nss()).toHaveLength(3);
      expect((await lab('--prefix', 'lbtq-', 'down', 'labx')).stdout).toBe('removed lbtq-labx-client lbtq-labx-lb lbtq-labx-backend\n');
      expect(await nss()).toEqual([]);
    });

    it('a pair lab under another prefix carries traffic, and clean --prefix removes it', async () => {
      const l = await pairLab('labq', { prefix: 'lbtq-' });
      expect(l).toMatchObject({ ns: 'lbtq-labq', hostIf: 'labqh' });
      expect((await run(['ip', '-j', 'link', 'show', 'dev', 'labqh'])).stdout).toContain('"ifalias":"lbtq-labq"');
      expect(await ping(l.ns, l.hostIp, 2)).toBe(2);
      expect((await lab('--prefix', 'lbtq-', 'clean')).stdout).toBe('removed labqh lbtq-labq\n');
      expect(await nss()).toEqual([]);
      await expect(run(['ip', 'link', 'show', 'dev', 'labqh'])).rejects.toThrow(/does not exist/);
      await expect(pairLab('labq', { prefix: 'LBTQ' })).rejects.toThrow(/^lab prefix 'LBTQ'/);
    });
  });

  describe('failures', () => {
    it('rejects an invalid tag before creating anything', async () => {
      const before = (await run(['ip', 'netns', 'list'])).stdout;
      for (const tag of ['', 'Labx', 'elevenchars', 'a_b', '-ab', 'a b', 'x/y', 'x-lb', 'x-client']) {
        expect(() => checkTag(tag)).toThrow(/^lab tag/);
        await expect(pairLab(tag)).rejects.toThrow(/^lab tag/);
        await expect(dnatLab(tag)).rejects.toThrow(/^lab tag/);
      }
      expect((await run(['ip', 'netns', 'list'])).stdout).toBe(before);
      expect(() => checkTag('abcdefghij')).not.toThrow();
    });

    it('removes the namespace when a build fails half way, and leaves a foreign interface alone', async () => {
      // A conflicting interface that is not the lab's: pairLab creates the namespace, then fails on `ip link add`.
      await run(['ip', 'link', 'add', 'labfh', 'type', 'veth', 'peer', 'name', 'labfx']);
      try {
        await expect(pairLab('labf')).rejects.toThrow(/^ip link add labfh type veth peer name labfp netns lbts-labf: .*File exists/);
        expect((await run(['ip', 'netns', 'list'])).stdout).not.toMatch(/^lbts-labf\b/m);
        expect((await run(['ip', '-o', 'link', 'show', 'dev', 'labfh'])).stdout).toContain('labfh');
      } finally {
        await run(['ip', 'link', 'del', 'dev', 'labfh']).catch(() => undefined);
      }
      expect(await leftovers('labf')).toEqual([]);
    });

    it('cleanupStale removes what a crashed run left behind', async () => {
      await pairLab('labs');
      await dnatLab('labs');
      const removed = await cleanupStale('lbts-labs');
      expect(removed.sort()).toEqual(['labsh', 'lbts-labs', 'lbts-labs-backend', 'lbts-labs-client', 'lbts-labs-lb']);
      expect(await leftovers('labs')).toEqual([]);
      expect(await cleanupStale('lbts-labs')).toEqual([]);
      await expect(cleanupStale('eth')).rejects.toThrow(/prefix must start with 'lbts-'/);
    });

    it('reports a failed command in one line naming it', async () => {
      const e1 = await run(['ip', 'link', 'show', 'dev', 'nosuch0']).catch((e: Error) => e);
      expect((e1 as Error).message).toMatch(/^ip link show dev nosuch0: Device "nosuch0" does not exist\.$/);
      const script = 'import sys\nsys.exit("boom")';
      const e2 = await run(['python3', '-c', script]).catch((e: Error) => e);
      expect((e2 as Error).message).toBe(`python3 -c <${script.length}-char script>: boom`);
      const e3 = await runNs('lbts-nosuch', ['true']).catch((e: Error) => e);
      expect((e3 as Error).message).toMatch(/^ip netns exec lbts-nosuch true: Cannot open network namespace "lbts-nosuch"/);
      await expect(run(['no-such-command-xyz'])).rejects.toThrow(/^no-such-command-xyz: no-such-command-xyz: command not found$/);
      await expect(run(['sleep', '5'], { timeoutMs: 200 })).rejects.toThrow(/^sleep 5: timed out after 0.2 s$/);
      expect((await run(['cat'], { input: 'hi\n' })).stdout).toBe('hi\n');
    });

    it('sends traffic only from lab namespaces, to IPv4 literals', async () => {
      await expect(sendUdp('', '10.0.0.1', 9, 1, 1)).rejects.toThrow(/only sent from lab namespaces/);
      await expect(ping('default', '10.0.0.1', 1)).rejects.toThrow(/only sent from lab namespaces/);
      await expect(sendTcpConnect('lbts-x', 'example.com', 80)).rejects.toThrow(/bad IPv4 address 'example.com'/);
      await expect(sendUdp('lbts-x', '10.0.0.1', 9, 1_000_000, 1)).rejects.toThrow(/count must be/);
    });
  });
});
