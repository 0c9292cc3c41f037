/**
 * cgroup_sock on a real kernel: a cgroup/connect4 program attached through a
 * bpf_link to a cgroup v2 group this file makes (under the cgroup2 root
 * found in /proc/mounts), real connects to listeners on loopback from
 * processes that moved themselves into it, and from processes outside it.
 *
 * - Inside: a denied port gets EPERM (TCP, and UDP connect), an allowed one
 *   connects; outside: the denied port connects. Counters and events (pid,
 *   comm, port) say exactly that, and only for the processes inside.
 * - The policy changes while attached; detach (twice) lifts it.
 * - Wrong program type, a directory outside cgroup2, a missing one: one line each.
 * - The loader: with --cgroup it leaves the group alone, without it it makes
 *   and removes its own (moving what is left in it to the parent); SIGKILL
 *   leaves nothing attached.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, Cgroup, cgroup2Mounts, cgroup2Root, cgroupOf } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { DEFAULT_CGROUP, PROGRAM, PortPolicy, type ConnectEvent } from '../src/lessons/cgroup_sock.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, startLoader, stopAllLoaders } from './helpers/loader.js';

const CONNECT = `
import socket,sys
for a in sys.argv[1:]:
  proto,port=a.split(':')
  s=socket.socket(socket.AF_INET,socket.SOCK_STREAM if proto=='tcp' else socket.SOCK_DGRAM)
  s.settimeout(2)
  try:
    s.connect(('127.0.0.1',int(port))); print(a,'ok')
  except OSError as e:
    print(a,e.errno)
  s.close()
`;

/**
 * Runs the connects (["tcp:8080", "udp:53"]) in a python3 process, moved
 * into `cgroupPath` first when given (the shell writes its own pid to
 * cgroup.procs, then execs python3); resolves with {pid, results}:
 * "ok", or the errno number.
 */
function connectFrom(cgroupPath: string | undefined, targets: string[]): Promise<{ pid: number; results: Record<string, string> }> {
  const move = cgroupPath ? `echo $$ > '${cgroupPath}/cgroup.procs' || exit 9; ` : '';
  const child = spawn('sh', ['-c', `${move}exec /usr/bin/python3 -c "$0" "$@"`, CONNECT, ...targets], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += String(d); });
  child.stderr.on('data', (d) => { err += String(d); });
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`connect helper exited ${code}: ${err}`));
      const results = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ') as [string, string]));
      resolve({ pid: child.pid!, results });
    });
  });
}

const EPERM = '1';

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.destroy());
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}
const portOf = (s: Server) => (s.address() as { port: number }).port;

describe('cgroup2 mount', () => {
  it('finds cgroup2 in /proc/mounts text, on hybrid and unified layouts', () => {
    const hybrid = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n';
    expect(cgroup2Mounts(hybrid)).toEqual(['/sys/fs/cgroup/unified']);
    expect(cgroup2Mounts('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n')).toEqual(['/sys/fs/cgroup']);
    expect(cgroup2Mounts('cgroup2 /mnt/my\\040cg cgroup2 rw 0 0\n')).toEqual(['/mnt/my cg']);
    expect(cgroup2Mounts('proc /proc proc rw 0 0\n')).toEqual([]);
  });
});

describe.skipIf(!kernelTests())('cgroup_sock on a real kernel', () => {
  let denied: Server;
  let open: Server;
  let cg: Cgroup;
  beforeAll(async () => {
    denied = await listen();
    open = await listen();
    cg = Cgroup.create('lbts-cgsock-test');
    expect(cg.path).toBe(`${cgroup2Root()}/lbts-cgsock-test`);
  });
  afterAll(async () => {
    await stopAllLoaders();
    cg?.remove();
    denied?.close();
    open?.close();
    if (cg) expect(existsSync(cg.path)).toBe(false);
  });

  it('inside the cgroup a denied port gets EPERM and an allowed one connects; outside, nothing changes', async () => {
    using obj = BpfObject.load(ensureObject('cgroup_sock'));
    const policy = PortPolicy.fromObject(obj);
    policy.deny(portOf(denied));
    const reader = policy.events();
    const link = obj.program(PROGRAM).attachCgroup(cg.path);
    try {
      expect(link.description).toBe(`cgroup_inet4_connect ${PROGRAM} on cgroup ${cg.path}`);
      expect(link.info().type).toBe('cgroup');
      const d = `tcp:${portOf(denied)}`;
      const a = `tcp:${portOf(open)}`;
      const u = `udp:${portOf(denied)}`;
      const inside = await connectFrom(cg.path, [d, a, u]);
      expect(inside.results).toEqual({ [d]: EPERM, [a]: 'ok', [u]: EPERM });
      const outside = await connectFrom(undefined, [d, a, u]);
      expect(outside.results).toEqual({ [d]: 'ok', [a]: 'ok', [u]: 'ok' });
      expect(policy.counts()).toEqual({ allowed: 1, denied: 2, lost: 0 });
      const events: ConnectEvent[] = [];
      reader.read((e) => events.push(e));
      expect(events.map(({ tsNs: _, ...e }) => e)).toEqual([
        { pid: inside.pid, comm: 'python3', daddr: '127.0.0.1', port: portOf(denied), proto: 'tcp', verdict: 'denied' },
        { pid: inside.pid, comm: 'python3', daddr: '127.0.0.1', port: portOf(open), proto: 'tcp', verdict: 'allowed' },
        { pid: inside.pid, comm: 'python3', daddr: '127.0.0.1', port: portOf(denied), proto: 'udp', verdict: 'denied' },
      ]);
      // This process is not in the cgroup: its own connects are not decided on.
      expect(cgroupOf()).not.toBe('/lbts-cgsock-test');
    } finally {
      reader.close();
      link.detach();
    }
  });

  it('the policy changes while attached; detach (twice) lifts it', async () => {
    using obj = BpfObject.load(ensureObject('cgroup_sock'));
    const policy = PortPolicy.fromObject(obj);
    const d = `tcp:${portOf(denied)}`;
    const link = obj.program(PROGRAM).attachCgroup(cg.path);
    try {
      expect((await connectFrom(cg.path, [d])).results[d]).toBe('ok');
      policy.deny(portOf(denied));
      expect(policy.ports()).toEqual([portOf(denied)]);
      expect((await connectFrom(cg.path, [d])).results[d]).toBe(EPERM);
      policy.allow(portOf(denied));
      expect(() => policy.allow(portOf(denied))).toThrow(`allow port ${portOf(denied)}: port ${portOf(denied)} is not denied (ENOENT)`);
      expect((await connectFrom(cg.path, [d])).results[d]).toBe('ok');
      policy.deny(portOf(denied));
      link.detach();
      link.detach();
      expect((await connectFrom(cg.path, [d])).results[d]).toBe('ok');
    } finally {
      link.detach();
    }
  });

  it('refuses in one line: a program of another type, a directory outside cgroup2, a missing one', () => {
    using fw = BpfObject.load(ensureObject('xdp_firewall'));
    using obj = BpfObject.load(ensureObject('cgroup_sock'));
    expect(() => fw.program('xdp_firewall').attachCgroup(cg.path))
      .toThrow(new RegExp(`^attach xdp_firewall: xdp program cannot attach to cgroup ${cg.path} \\(cgroup programs: .*\\) \\(EINVAL\\)$`));
    expect(() => obj.program(PROGRAM).attachCgroup('/tmp'))
      .toThrow(`attach ${PROGRAM} to cgroup /tmp: not a cgroup v2 directory (cgroup v1 hierarchies take no BPF programs; cgroup2 is mounted at ${cgroup2Root()}) (ENOTDIR)`);
    expect(() => obj.program(PROGRAM).attachCgroup(`${cg.path}/nope`)).toThrow(`attach ${PROGRAM} to cgroup ${cg.path}/nope: no such directory (ENOENT)`);
    expect(() => Cgroup.open('/tmp')).toThrow(/^open cgroup \/tmp: not a cgroup v2 directory/);
  });

  it('loader with --cgroup: shows each decision, leaves the cgroup in place; SIGKILL leaves nothing attached', async () => {
    const d = `tcp:${portOf(denied)}`;
    const loader = startLoader('cgroup_sock', ['--deny', String(portOf(denied)), '--cgroup', cg.path, '--json']);
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      const inside = await connectFrom(cg.path, [d]);
      expect(inside.results[d]).toBe(EPERM);
      await loader.waitForStdout('"verdict":"denied"', 5000);
      const ev = JSON.parse(loader.stdout().trim().split('\n')[0]) as ConnectEvent;
      expect(ev).toMatchObject({ pid: inside.pid, comm: 'python3', port: portOf(denied), verdict: 'denied' });
      expect(await loader.stop('SIGINT')).toEqual({ code: 0, signal: null });
      expect(loader.stderr()).toContain('connects: 0 allowed, 1 denied');
    } finally {
      loader.kill('SIGKILL');
    }
    expect(existsSync(cg.path)).toBe(true);
    const second = startLoader('cgroup_sock', ['--deny', String(portOf(denied)), '--cgroup', cg.path]);
    try {
      await second.waitFor('Ctrl-C to stop', 30_000);
      expect((await connectFrom(cg.path, [d])).results[d]).toBe(EPERM);
      second.kill('SIGKILL');
      await second.exited;
    } finally {
      second.kill('SIGKILL');
    }
    expect(await eventually(async () => (await connectFrom(cg.path, [d])).results[d] === 'ok', 5000)).toBe(true);
  });

  it('loader without --cgroup makes its own group and removes it at exit, moving what is left to the parent', async () => {
    const path = `${cgroup2Root()}/${DEFAULT_CGROUP}`;
    const loader = startLoader('cgroup_sock', ['--deny', String(portOf(denied))]);
    let sleeper: ChildProcess | undefined;
    try {
      await loader.waitFor('Ctrl-C to stop', 30_000);
      expect(loader.stderr()).toContain(`made cgroup ${path} (removed at exit)`);
      const d = `tcp:${portOf(denied)}`;
      expect((await connectFrom(path, [d])).results[d]).toBe(EPERM);
      // A process still in the group when the loader stops.
      const s = spawn('sh', ['-c', `echo $$ > '${path}/cgroup.procs' && exec sleep 30`], { stdio: 'ignore' });
      sleeper = s;
      expect(await eventually(() => existsSync(`/proc/${s.pid}`) && cgroupOf(s.pid!) === `/${DEFAULT_CGROUP}`, 5000)).toBe(true);
      expect(await loader.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(existsSync(path)).toBe(false);
      expect(cgroupOf(s.pid!)).toBe('/');
    } finally {
      sleeper?.kill('SIGKILL');
      loader.kill('SIGKILL');
    }
  });
});
