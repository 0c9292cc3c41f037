/**
 * xdp_sock on a real kernel (pair lab 'xsk', veth: the socket binds in copy
 * mode): UDP datagrams from the peer namespace to the port come back with
 * exactly their payload, from the port, for many sizes up to the MTU, with
 * the peer's normal (CHECKSUM_PARTIAL) sends and with no checksum at all;
 * ping and UDP to another port are untouched (the program does not even
 * match them); a burst larger than the rings is accounted for exactly
 * (every datagram the program matched is received or in a drop statistic);
 * a loader killed with SIGKILL leaves no program attached or loaded.
 */
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, Errno, queryXdp } from '../src/index.js';
import { REPO_ROOT } from '../src/cli/build.js';
import { XskSocket } from '../src/xsk/index.js';
import { pairLab, ping, runNs, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, programLoaded, startLoader, stopAllLoaders, type LoaderProcess } from './helpers/loader.js';

const PORT = 7777;

/** The peer's echo client: sends each size (payload bytes derived from the size), waits for its echo, prints a JSON report. */
const CLIENT = `
import json, socket, sys
dst, port, sizes, nocheck = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(',')], sys.argv[4] == '1'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if nocheck: s.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK: send a zero UDP checksum
s.settimeout(2)
out = []
for n in sizes:
    p = bytes((i * 31 + n) & 0xff for i in range(n))
    s.sendto(p, (dst, port))
    try:
        d, a = s.recvfrom(65535)
        out.append({'size': n, 'ok': d == p, 'len': len(d), 'from': a[1]})
    except socket.timeout:
        out.append({'size': n, 'ok': False, 'len': -1, 'from': 0})
print(json.dumps(out))
`;

/** The peer's burst: `count` datagrams of 64 bytes as fast as it can, no reads. */
const BURST = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
n = 0
for i in range(int(sys.argv[3])):
    try:
        s.sendto(b'b' * 64, (sys.argv[1], int(sys.argv[2]))); n += 1
    except BlockingIOError:
        pass
print(n)
`;

type Snap = {
  mode: string; rx: number; tx: number; completed: number; notEchoed: number; matched: number; noSocket: number;
  stats: { rxDropped: number; rxRingFull: number; rxFillRingEmptyDescs: number; rxInvalidDescs: number; txInvalidDescs: number; txRingEmptyDescs: number };
};
const lastSnap = (l: LoaderProcess): Snap => {
  const lines = l.stdout().trim().split('\n').filter((x) => x.startsWith('{'));
  return JSON.parse(lines[lines.length - 1]) as Snap;
};

describe.skipIf(!kernelTests())('xdp_sock on a veth', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('xsk'); }, 30_000);
  afterAll(async () => {
    await stopAllLoaders();
    await lab?.down();
  });

  async function withLoader<T>(args: string[], fn: (l: LoaderProcess) => Promise<T>): Promise<T> {
    const l = startLoader('xdp_sock', [lab.hostIf, '--port', String(PORT), '--json', ...args]);
    try {
      await l.waitFor('Ctrl-C to stop', 30_000);
      const r = await fn(l);
      expect(await l.stop('SIGINT')).toEqual({ code: 0, signal: null });
      return r;
    } finally {
      l.kill('SIGKILL');
      await l.exited;
    }
  }

  it('echoes datagrams with exactly their payload, odd and even sizes up to the MTU; other traffic untouched', async () => {
    const sizes = [0, 1, 2, 3, 7, 8, 63, 64, 255, 256, 511, 999, 1000, 1400, 1471, 1472];
    await withLoader([], async (l) => {
      expect(l.stderr()).toMatch(/bound in copy mode/);
      for (const nocheck of ['0', '1']) {
        const { stdout } = await runNs(lab.ns, ['python3', '-c', CLIENT, lab.hostIp, String(PORT), sizes.join(','), nocheck]);
        const res = JSON.parse(stdout) as Array<{ size: number; ok: boolean; len: number; from: number }>;
        expect(res).toEqual(sizes.map((size) => ({ size, ok: true, len: size, from: PORT })));
      }
      // Other traffic: ping and UDP to another port reach the host's stack; the program does not match them.
      expect(await ping(lab.ns, lab.hostIp, 3)).toBe(3);
      const host = createSocket('udp4');
      let got = 0;
      host.on('message', () => { got++; });
      await new Promise<void>((r) => host.bind(PORT + 1, lab.hostIp, () => r()));
      try {
        await sendUdp(lab.ns, lab.hostIp, PORT + 1, 5, 32);
        expect(await eventually(() => got === 5, 3000)).toBe(true);
      } finally {
        host.close();
      }
      await l.waitForStdout(/"rx":32,/, 5000);
      await new Promise((r) => setTimeout(r, 1100));
      const s = lastSnap(l);
      expect(s).toMatchObject({ mode: 'copy', rx: 32, tx: 32, completed: 32, notEchoed: 0, matched: 32, noSocket: 0 });
    });
    expect(queryXdp(lab.hostIf)).toEqual([]);
  }, 60_000);

  it('a burst larger than the rings: every datagram matched is received or counted in a drop statistic', async () => {
    for (const mode of [['--drop'], []]) {
      await withLoader([...mode, '--ring-size', '64'], async (l) => {
        await l.waitForStdout(/^\{/m, 5000);
        const { stdout } = await runNs(lab.ns, ['python3', '-c', BURST, lab.hostIp, String(PORT), '20000'], { timeoutMs: 30_000 });
        const sent = Number(stdout.trim());
        expect(sent).toBeGreaterThan(1000); // far more than the rings (64 entries each, 128 frames) hold
        // Quiet for two reports: everything handled.
        let prev = -1;
        expect(await eventually(() => {
          const s = lastSnap(l);
          const same = s.rx === prev;
          prev = s.rx;
          return same && s.matched > 0;
        }, 15_000)).toBe(true);
        await new Promise((r) => setTimeout(r, 1100));
        const s = lastSnap(l);
        expect(s.matched).toBeLessThanOrEqual(sent);
        expect(s.rx + s.stats.rxDropped + s.stats.rxRingFull).toBe(s.matched);
        if (mode.length === 0) expect(s.tx + s.notEchoed).toBe(s.rx);
        process.stderr.write(`xdp_sock burst ${mode.join(' ') || 'echo'}: sent ${sent}, matched ${s.matched}, received ${s.rx}, ` +
          `rx ring full ${s.stats.rxRingFull}, rx dropped ${s.stats.rxDropped}, fill ring empty ${s.stats.rxFillRingEmptyDescs}, echoed ${s.tx}\n`);
      });
    }
  }, 120_000);

  it('the library: copy mode on a veth, typed statistics, close() twice and `using`, EBADF after close, EINVAL for a bad ring', () => {
    let outer: XskSocket | undefined;
    {
      using s = XskSocket.open({ ifindex: lab.hostIfindex, rxSize: 256, txSize: 256, fillSize: 256, completionSize: 256, umem: { frameCount: 512 } });
      outer = s;
      expect(s.mode).toBe('copy');
      expect([s.rx!.size, s.tx!.size, s.fill.size, s.completion.size, s.rxOffset]).toEqual([256, 256, 256, 256, 256]);
      expect(s.statistics()).toEqual({ rxDropped: 0, rxInvalidDescs: 0, txInvalidDescs: 0, rxRingFull: 0, rxFillRingEmptyDescs: 0, txRingEmptyDescs: 0 });
      expect(s.refill()).toBe(256);
      expect(s.fill.indices()).toEqual({ producer: 256, consumer: 0 });
      expect(s.umem.freeFrames).toBe(256);
    }
    expect(outer.closed).toBe(true);
    outer.close();
    expect(() => outer!.statistics()).toThrow(BpfError);
    try { outer.refill(); } catch (e) { expect((e as BpfError).errno).toBe(Errno.EBADF); }
    expect(() => XskSocket.open({ ifindex: lab.hostIfindex, rxSize: 100 })).toThrow(/rx ring size 100 is not a power of two \(EINVAL\)/);
  });

  it('a UMEM over RLIMIT_MEMLOCK without CAP_IPC_LOCK: one line, ENOBUFS', () => {
    const js = `import { XskSocket } from ${JSON.stringify(join(REPO_ROOT, 'src', 'xsk', 'index.ts'))};
try { XskSocket.open({ ifindex: ${lab.hostIfindex} }).close(); console.log('opened'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync('setpriv', ['--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock', 'prlimit', '--memlock=65536:65536',
      process.execPath, '--import', 'tsx', '--input-type=module', '-e', js], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout.trim()).toBe(`register UMEM of AF_XDP socket on ifindex ${lab.hostIfindex} queue 0: the UMEM counts against RLIMIT_MEMLOCK: raise it (ulimit -l) or run as root with CAP_IPC_LOCK (ENOBUFS)`);
  });

  it('SIGKILL leaves no program attached or loaded', async () => {
    const l = startLoader('xdp_sock', [lab.hostIf, '--port', String(PORT)]);
    try {
      await l.waitFor('Ctrl-C to stop', 30_000);
      const att = queryXdp(lab.hostIf);
      expect(att).toHaveLength(1);
      l.kill('SIGKILL');
      expect(await l.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(await eventually(() => queryXdp(lab.hostIf).length === 0 && !programLoaded(att[0].id), 30_000)).toBe(true);
    } finally {
      l.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses zero-copy on a veth in one line (EOPNOTSUPP), leaving nothing attached', async () => {
    const l = startLoader('xdp_sock', [lab.hostIf, '--port', String(PORT), '--bind', 'zerocopy']);
    const exit = await l.exited;
    expect(exit.code).toBe(1);
    expect(l.stderr()).toMatch(/^error: bind AF_XDP socket on ifindex \d+ queue 0: the driver has no zero-copy AF_XDP support \(use copy or auto mode\) \(EOPNOTSUPP\)\n$/m);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  }, 60_000);
});
