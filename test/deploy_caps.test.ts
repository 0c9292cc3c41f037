/**
 * The capabilities deploy/30-daemonset.yaml gives the load balancer's
 * container are the ones it needs: the loader runs as uid 0 with exactly
 * the list read from the manifest (setpriv: every other capability out of
 * its bounding set, so its effective set after exec is that list, checked
 * in /proc), in a lab's load balancer namespace, with --pin-dir as in the
 * pod. It loads, attaches, pins, forwards a real TCP connection from the
 * client namespace to the backend through the VIP, and a second run, as
 * PID 1 of a PID namespace of its own (a container's first process), adopts
 * the pins (a pod's restart) and stops cleanly on SIGTERM (what the kubelet
 * sends). Without any one of the listed capabilities it
 * fails before it pins anything. (The container runtime's seccomp profile
 * and the bind mount of the bpffs are not reproduced here.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, ensureObject } from '../src/cli/build.js';
import { procInfo } from '../src/cli/lifetime.js';
import { dnatLab, startBackendServers, tcpExchange, type BackendServers, type DnatLab } from '../src/lab/index.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { eventually, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';

const TAG = 'kdcaps';
const VIP = '10.96.0.10';
const dir = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-${TAG}`;

/** capabilities.add of the DaemonSet's container, e.g. ['BPF', 'NET_ADMIN', 'PERFMON']. */
function manifestCaps(): string[] {
  const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', '30-daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  const ds = docs.find((d) => d.kind === 'DaemonSet') as { spec: { template: { spec: { containers: Array<{ securityContext: { capabilities: { add: string[]; drop: string[] } } }> } } } };
  const caps = ds.spec.template.spec.containers[0].securityContext.capabilities;
  expect(caps.drop).toEqual(['ALL']);
  return caps.add;
}
/** Capability numbers (linux/capability.h). */
const CAP_NUM: Record<string, number> = { NET_ADMIN: 12, SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 };

/** Effective capabilities of a process, from /proc/<pid>/status. */
function capEff(pid: number): bigint {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))!;
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}

/** The pid of the process under `root` (itself or a descendant) that runs the loader's file. */
function loaderUnder(root: number): number | undefined {
  const all = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((n) => ({ pid: Number(n), info: procInfo(Number(n)) }));
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) if (p.info && !tree.has(p.pid) && tree.has(p.info.ppid)) { tree.add(p.pid); grew = true; }
  }
  return all.find((p) => tree.has(p.pid) && p.info?.comm === 'node' && p.info.argv.some((a) => a.endsWith('src/loaders/xdp_dnat.ts')))?.pid;
}
/** The process's pid in each PID namespace it is in, outermost first (/proc/<pid>/status NSpid). */
function nsPids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'))!;
  return line.split(/\s+/).slice(1).map(Number);
}

describe.skipIf(!kernelTests())('the DaemonSet\'s capabilities run the load balancer', () => {
  let lab: DnatLab;
  let servers: BackendServers | undefined;
  const caps = manifestCaps();
  let obj: string;
  const prefix = (list: string[]) => [
    'nsenter', `--net=/run/netns/${lab.lb}`,
    'setpriv', '--inh-caps=-all', '--ambient-caps=-all', `--bounding-set=-all${list.map((c) => `,+${c.toLowerCase()}`).join('')}`, '--',
  ];
  const loaderArgs = () => [lab.lbClientIf, '--pin-dir', dir, '--interval', '60', '--object', obj, '--service', `${VIP}:80/tcp=${lab.backendIp}:8080`];

  beforeAll(async () => {
    removePins(dir);
    obj = ensureObject('xdp_dnat');
    lab = await dnatLab(TAG);
    servers = await startBackendServers(lab.backend, lab.backendIp, [8080], []);
  }, 120_000);
  afterAll(async () => {
    await stopAllLoaders();
    await servers?.stop();
    removePins(dir); // releases the pinned links: the programs detach
    await lab?.down();
  }, 60_000);

  it('the manifest lists CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON', () => {
    expect([...caps].sort()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON']);
  });

  it.each(['BPF', 'NET_ADMIN', 'PERFMON'])('without CAP_%s the loader fails before it pins anything', async (missing) => {
    removePins(dir);
    const r = await runLoader('xdp_dnat', loaderArgs(), { prefix: prefix(caps.filter((c) => c !== missing)), timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: /m);
    // Each for its own reason: bpf() refused; an XDP program refused at load; the verifier refusing a pointer comparison.
    const why: Record<string, RegExp> = { BPF: /load object .*EPERM/, NET_ADMIN: /load program xdp_dnat: .*EPERM/, PERFMON: /pointer comparison prohibited/ };
    expect(r.stderr).toMatch(why[missing]);
    expect(existsSync(join(dir, 'service_map'))).toBe(false);
  }, 120_000);

  it('with exactly them: loads, attaches, pins, forwards a connection through the VIP; a restart as PID 1 adopts the pins', async () => {
    removePins(dir);
    const want = caps.reduce((m, c) => m | (1n << BigInt(CAP_NUM[c])), 0n);
    for (const round of [1, 2]) {
      // Round 2 as a container's first process: PID 1 of its own PID namespace (no parent it can see).
      const pre = round === 1 ? prefix(caps) : [...prefix(caps).slice(0, 2), 'unshare', '--pid', '--fork', '--kill-child', ...prefix(caps).slice(2)];
      const l = startLoader('xdp_dnat', loaderArgs(), { prefix: pre });
      await l.waitFor('Ctrl-C to stop', 90_000);
      const pid = loaderUnder(l.child.pid!)!;
      expect(pid).toBeDefined();
      expect(capEff(pid), 'the loader ran with the manifest\'s capabilities only').toBe(want);
      if (round === 2) expect(nsPids(pid).pop()).toBe(1);
      if (round === 2) expect(l.stderr()).toMatch(/adopted \d+ pinned maps from /);
      const t = await tcpExchange(lab.client, VIP, 80, 20_000);
      expect(t, `round ${round}`).toMatchObject({ connected: true, peer: `${VIP}:80`, received: 20_000, same: true });
      const seen = await eventually(() => servers!.seen().some((s) => s.startsWith(`tcp 8080 ${t.local}`)), 5000);
      expect(seen, `round ${round}: the backend saw ${t.local}`).toBe(true);
      process.kill(pid, 'SIGTERM'); // what the kubelet sends (to the container's PID 1)
      const r = await l.exited;
      expect(r.code, l.stderr()).toBe(0);
      expect(existsSync(join(dir, 'service_map'))).toBe(true);
      expect(existsSync(join(dir, 'link_xdp'))).toBe(true);
    }
  }, 300_000);
});
