/**
 * The foundation end to end on a real kernel: the hello loader on a lab veth
 * with packets from the peer namespace, a test run, and the guarantees of the
 * plumbing (SIGKILL leaves nothing attached, bad input gets one line).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, XdpAction, queryXdp } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { pairLab, sendUdp, type PairLab } from '../scripts/lab.js';
import { kernelTests, withTraceLock } from './helpers/kernel.js';
import { eventually, startLoader } from './helpers/spawn.js';

describe.skipIf(!kernelTests())('hello on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('fnd'); });
  afterAll(async () => { await lab?.down(); });

  it('streams only its own printk lines for packets sent from the peer namespace, then detaches', async () => {
    await withTraceLock(async () => {
      const run = startLoader('hello', [lab.hostIf, '--duration', '4']);
      await run.waitFor('attached');
      expect(queryXdp(lab.hostIf).map((p) => p.name)).toEqual(['hello']);
      await sendUdp(lab.ns, lab.hostIp, 9, 5, 100);
      expect(await run.exited).toBe(0);
      const lines = run.stdout().split('\n').filter((l) => l.includes(`packet on ifindex ${lab.hostIfindex}`));
      // 5 datagrams of 100 bytes payload: 14 + 20 + 8 + 100 = 142-byte frames
      expect(lines.filter((l) => l.endsWith('142 bytes')).length).toBe(5);
      expect(run.stderr()).toMatch(/detached\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
    });
  });

  it('leaves nothing attached when killed with SIGKILL (bpf_link)', async () => {
    const run = startLoader('hello', [lab.hostIf]);
    await run.waitFor('attached');
    expect(queryXdp(lab.hostIf).length).toBe(1);
    run.child.kill('SIGKILL');
    expect(await run.exited).toBe('SIGKILL');
    expect(await eventually(() => queryXdp(lab.hostIf).length === 0)).toBe(true);
  });

  it('refuses an unknown interface with one line and exit 1', async () => {
    const run = startLoader('hello', ['nosuch0']);
    expect(await run.exited).toBe(1);
    expect(run.stderr().trim().split('\n')).toEqual([expect.stringMatching(/^error: find interface nosuch0: no such interface .*\(ENODEV\)$/)]);
  });

  it('test-runs hello on a crafted packet: XDP_PASS, packet unchanged', () => {
    using obj = BpfObject.load(ensureObject('hello'));
    const pkt = Buffer.alloc(64);
    pkt.writeUInt16BE(0x0800, 12);
    const r = obj.program('hello').testRun({ data: pkt, repeat: 10 });
    expect(r.retval).toBe(XdpAction.PASS);
    expect(Buffer.compare(r.data, pkt)).toBe(0);
    expect(r.duration).toBeGreaterThan(0);
  });
});
