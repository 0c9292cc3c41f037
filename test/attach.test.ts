/**
 * Feature probes and attach errors: the TCX and XDP-link probes find what a
 * kernel of their version must have; XDP modes a driver cannot do are
 * refused with a cause that says so, without a silent fallback to netlink
 * and with nothing left attached.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, probeTcx, probeXdpLink, queryXdp } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { kernelAtLeast, kernelTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

const A = 'lbtsat0';
const B = 'lbtsat1';

describe.skipIf(!kernelTests())('feature probes', () => {
  it('find TCX links from Linux 6.6 on, and XDP links from 5.9 on (cached answers)', () => {
    if (kernelAtLeast(6, 6)) expect(probeTcx()).toBe(true);
    if (kernelAtLeast(5, 9)) expect(probeXdpLink()).toBe(true);
    expect(probeTcx()).toBe(probeTcx());
    // The probes leave nothing on loopback.
    expect(queryXdp('lo')).toEqual([]);
  });
});

describe.skipIf(!kernelTests())('XDP attach modes a driver cannot do', () => {
  let obj: BpfObject;
  beforeAll(() => {
    spawnSync('ip', ['link', 'del', A]);
    execFileSync('ip', ['link', 'add', A, 'type', 'veth', 'peer', 'name', B]);
    obj = BpfObject.load(ensureObject('testdata', 'pass'));
  });
  afterAll(() => {
    obj?.close();
    spawnSync('ip', ['link', 'del', A]);
  });

  it('hw mode on a veth: says that offload needs an offload NIC, not a bare EINVAL', () => {
    const e = throwsBpf(() => obj.program().attachXdp(A, { mode: 'hw' }),
      `attach xdp xdp_pass to ${A}: hw (offload) mode is not supported by ${A}'s driver: it needs a NIC that offloads XDP (e.g. Netronome nfp) and a program loaded for that device; use native or skb mode (EINVAL)`);
    expect(e.code).toBe('EINVAL');
    expect(queryXdp(A)).toEqual([]);
  });

  it('native mode on loopback (no driver XDP): EOPNOTSUPP from the link, no netlink attempt, nothing attached', () => {
    throwsBpf(() => obj.program().attachXdp('lo', { mode: 'native' }), "attach xdp xdp_pass to lo: native mode is not supported by lo's driver; use skb mode (EOPNOTSUPP)");
    expect(queryXdp('lo')).toEqual([]);
  });

  it('an unknown mode is refused before anything is tried', () => {
    throwsBpf(() => obj.program().attachXdp(A, { mode: 'fast' as 'skb' }), "attach xdp xdp_pass: unknown mode 'fast' (use skb, native, hw) (EINVAL)");
  });

  it('skb and native modes on a veth attach through a link', () => {
    for (const mode of ['skb', 'native'] as const) {
      const a = obj.program().attachXdp(A, { mode });
      try {
        expect(a.description).toBe(`xdp xdp_pass on ${A} (${mode} mode)`);
        expect(queryXdp(A)).toEqual([{ id: expect.any(Number), name: 'xdp_pass', mode }]);
      } finally {
        a.detach();
      }
      expect(queryXdp(A)).toEqual([]);
    }
  });
});
