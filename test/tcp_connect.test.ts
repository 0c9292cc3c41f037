/**
 * tcp_connect on a pair lab (tag tcc): a TCP connect from the peer
 * namespace to a listener in the root namespace (on the host end's address)
 * is reported with the connecting process's pid and comm and the exact
 * addresses and ports; its close with a duration and the exact data bytes
 * each way; a refused connect as failed. The kprobe path where the kernel
 * has kprobes, its one-line error here; SIGKILL leaves no link.
 */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pairLab, type PairLab } from '../src/lab/index.js';
import { probeKprobes, kernelHasFunction } from '../src/features.js';
import type { TcpEventJson } from '../src/lessons/tcp_connect.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, loadedPrograms, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

const SERVER = `
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind((sys.argv[1],0)); s.listen(8)
print(s.getsockname()[1],flush=True)
c,a=s.accept(); n=0
while True:
  d=c.recv(65536)
  if not d: break
  n+=len(d)
c.sendall(b'y'*int(sys.argv[2])); c.close(); print(n,flush=True)
`;
const CLIENT = `
import socket,sys,os,json
s=socket.socket(); s.connect((sys.argv[1],int(sys.argv[2])))
local=s.getsockname()
s.sendall(b'x'*int(sys.argv[3])); s.shutdown(socket.SHUT_WR)
got=0
while True:
  d=s.recv(65536)
  if not d: break
  got+=len(d)
s.close()
print(json.dumps({'pid':os.getpid(),'ip':local[0],'port':local[1],'got':got}))
`;
const REFUSED = `
import socket,sys,os,json
s=socket.socket(); s.settimeout(2)
try: s.connect((sys.argv[1],int(sys.argv[2])))
except OSError: pass
print(json.dumps({'pid':os.getpid()}))
`;

function py(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    c.stdout.on('data', (d) => { out += String(d); });
    c.stderr.on('data', (d) => { err += String(d); });
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.slice(0, 4).join(' ')}: exit ${code}: ${err}`))));
  });
}

function events(l: LoaderProcess): TcpEventJson[] {
  return l.stdout().split('\n').filter((x) => x.startsWith('{')).map((x) => JSON.parse(x) as TcpEventJson);
}

describe.skipIf(!kernelTests())('tcp_connect (kernel)', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('tcc'); }, 60_000);
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });

  const kprobes = probeKprobes() && kernelHasFunction('tcp_connect');

  it(`a connect from the namespace: pid, comm, exact addresses and ports; its close: duration and exact data bytes (${kprobes ? 'kprobe' : 'tracepoint'} path)`, async () => {
    const l = startLoader('tcp_connect', ['--json']);
    await l.waitFor('attached');
    expect(l.stderr()).toContain(kprobes ? 'connects: kprobe on tcp_connect' : 'connects and closes: tracepoint sock:inet_sock_set_state (this kernel has no kprobes)');
    const server = spawn('python3', ['-c', SERVER, lab.hostIp, '777'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let sout = '';
      server.stdout.on('data', (d) => { sout += String(d); });
      expect(await eventually(() => /^\d+\n/.test(sout), 10_000)).toBe(true);
      const port = Number(sout.split('\n')[0]);
      const t0 = performance.now();
      const c = JSON.parse(await py(['ip', 'netns', 'exec', lab.ns, 'python3', '-c', CLIENT, lab.hostIp, String(port), '12345'])) as { pid: number; ip: string; port: number; got: number };
      const wallMs = performance.now() - t0;
      expect(c.got).toBe(777);
      const mine = (e: TcpEventJson) => e.sport === c.port && e.dport === port;
      expect(await eventually(() => events(l).filter(mine).length >= 2, 5000)).toBe(true);
      const [conn, close] = events(l).filter(mine);
      expect(conn).toEqual({ event: 'connect', pid: c.pid, comm: 'python3', saddr: lab.peerIp, sport: c.port, daddr: lab.hostIp, dport: port });
      expect(close).toMatchObject({ event: 'close', pid: c.pid, comm: 'python3', saddr: lab.peerIp, sport: c.port, daddr: lab.hostIp, dport: port, tx: 12345, rx: 777 });
      expect(close.bytesAcked).toBe(12345 + 2); // SYN and FIN
      expect(close.bytesReceived).toBe(777 + 1); // the server's FIN
      expect(close.durationMs!).toBeGreaterThan(0);
      expect(close.durationMs!).toBeLessThan(wallMs);
      // the listener's accepted socket is not an outgoing connect
      expect(events(l).some((e) => e.sport === port)).toBe(false);
    } finally {
      server.kill('SIGKILL');
    }
    // a refused connect: reported, then closed as failed with no bytes
    const r = JSON.parse(await py(['ip', 'netns', 'exec', lab.ns, 'python3', '-c', REFUSED, lab.hostIp, '9'])) as { pid: number };
    const refused = (e: TcpEventJson) => e.pid === r.pid && e.dport === 9;
    expect(await eventually(() => events(l).filter(refused).length >= 2, 5000)).toBe(true);
    const [rc, rx] = events(l).filter(refused);
    expect(rc).toMatchObject({ event: 'connect', saddr: lab.peerIp, daddr: lab.hostIp, dport: 9 });
    expect(rc.sport).toBeGreaterThan(0);
    expect(rx).toMatchObject({ event: 'close', failed: true, tx: 0, rx: 0, sport: rc.sport });
    const exit = await l.stop('SIGINT');
    expect(exit.code).toBe(0);
    expect(l.stderr()).toMatch(/\d+ events, 0 lost\ndetached\n$/);
  }, 60_000);

  it('--probe kprobe: attaches where the kernel has kprobes; here one line saying it has none', async () => {
    const l = startLoader('tcp_connect', ['--probe', 'kprobe']);
    if (probeKprobes()) {
      await l.waitFor('attached');
      expect(l.stderr()).toContain("connects: kprobe on tcp_connect (the seed's probe)");
      expect((await l.stop('SIGINT')).code).toBe(0);
      return;
    }
    const exit = await l.exited;
    expect(exit.code).toBe(1);
    expect(l.stderr()).toBe('error: attach kprobe tcp_connect: this kernel has no kprobes (CONFIG_KPROBES off) (ENOENT)\n');
  }, 30_000);

  it('--help answers on stdout, exit 0; bad usage exits 2', async () => {
    const h = startLoader('tcp_connect', ['--help']);
    expect((await h.exited).code).toBe(0);
    expect(h.stdout()).toContain('--probe <probe>');
    const b = startLoader('tcp_connect', ['--probe', 'nope']);
    expect((await b.exited).code).toBe(2);
  }, 30_000);

  it('SIGKILL leaves no link', async () => {
    const l = startLoader('tcp_connect', []);
    await l.waitFor('attached');
    const ids = new Set(loadedPrograms().filter((p) => p.name === 'tcp_set_state').map((p) => p.id));
    const links = () => {
      const r = spawnSync('bpftool', ['-j', 'link', 'list'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      return (JSON.parse(r.stdout) as Array<{ id: number; prog_id: number }>).filter((x) => ids.has(x.prog_id));
    };
    expect(links().length).toBeGreaterThanOrEqual(1);
    l.kill('SIGKILL');
    await l.exited;
    expect(await eventually(() => links().length === 0, 5000)).toBe(true);
  }, 30_000);
});
