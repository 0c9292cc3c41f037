/**
 * The hello lesson on a real kernel: the library loads it and attaches it to
 * a lab veth (skb and native mode), packets sent from the peer namespace show
 * up as its bpf_printk lines on trace_pipe; the same through the hello loader
 * as a subprocess; attach refusals; links (detach twice, pin, outliving the
 * object); and a test run on a crafted packet.
 */
import { randomInt } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, BpfError, Link, XdpAction, queryXdp, possibleCpus, type XdpMode } from '../src/index.js';
import { openTracePipe, tracefsDir, type TraceLine } from '../src/trace.js';
import { ensureObject } from '../src/cli/build.js';
import { pairLab, sendUdp, type PairLab } from '../src/lab/index.js';
import { holdOpen, kernelTests, withTraceLock } from './helpers/kernel.js';
import { loadedPrograms, runLoader, startLoader, stopAllLoaders } from './helpers/loader.js';

/** Reads trace_pipe lines accepted by `filter` until `done(lines)` or `timeoutMs`. */
async function readTrace(filter: (l: TraceLine) => boolean, done: (lines: TraceLine[]) => boolean, send: () => Promise<void>, timeoutMs = 5000): Promise<TraceLine[]> {
  const pipe = openTracePipe(filter);
  const lines: TraceLine[] = [];
  const timer = setTimeout(() => pipe.close(), timeoutMs);
  try {
    await send();
    for await (const l of pipe) {
      lines.push(l);
      if (done(lines)) break;
    }
  } finally {
    clearTimeout(timer);
    pipe.close();
  }
  return lines;
}

/** Loads hello with a fresh tag (so its lines can be told from anyone else's). */
function loadHello(): { obj: BpfObject; tag: number } {
  const tag = randomInt(1, 2 ** 31);
  const obj = BpfObject.open(ensureObject('hello'));
  obj.setConst('trace_tag', tag).load();
  return { obj, tag };
}

describe.skipIf(!kernelTests())('hello on a real kernel', () => {
  let lab: PairLab;
  const pins: string[] = [];
  beforeAll(async () => { lab = await pairLab('hlo'); });
  afterAll(async () => {
    await stopAllLoaders();
    for (const p of pins) rmSync(p, { force: true });
    await lab?.down();
  });

  for (const mode of ['skb', 'native'] as XdpMode[]) {
    it(`prints a line per packet from the peer namespace in ${mode} mode, and stops when detached`, async () => {
      const { obj, tag } = loadHello();
      try {
        const link = obj.program('hello').attachXdp(lab.hostIf, { mode });
        expect(link.description).toBe(`xdp hello on ${lab.hostIf} (${mode} mode)`);
        expect(link).toBeInstanceOf(Link);
        expect(queryXdp(lab.hostIf)).toEqual([{ id: expect.any(Number), name: 'hello', mode }]);
        const prefix = `hello ${tag}: `;
        const big = (l: TraceLine) => l.message.endsWith(', 142 bytes');
        const lines = await withTraceLock(() => readTrace(
          (l) => l.message.startsWith(prefix),
          (ls) => ls.filter(big).length >= 5,
          () => sendUdp(lab.ns, lab.hostIp, 9, 5, 100),
        ));
        // 5 datagrams of 100 bytes: 14 + 20 + 8 + 100 = 142-byte frames (plus ARP, 42 bytes).
        const udp = lines.filter(big);
        expect(udp.length).toBe(5);
        for (const l of lines) {
          expect(l.message).toMatch(new RegExp(`^hello ${tag}: packet on ifindex ${lab.hostIfindex}, (142|42) bytes$`));
          expect(l.cpu).toBeLessThan(possibleCpus);
        }
        for (let i = 1; i < udp.length; i++) expect(udp[i].timestamp).toBeGreaterThanOrEqual(udp[i - 1].timestamp);

        link.detach();
        expect('attached' in link && link.attached).toBe(false);
        link.detach(); // idempotent
        expect(queryXdp(lab.hostIf)).toEqual([]);
        const after = await withTraceLock(() => readTrace(
          (l) => l.message.startsWith(prefix), () => false, () => sendUdp(lab.ns, lab.hostIp, 9, 3, 100), 1000,
        ));
        expect(after).toEqual([]);
      } finally {
        obj.close();
      }
    });
  }

  it('streams the lines through the hello loader, which detaches on SIGINT', async () => {
    await withTraceLock(async () => {
      const run = startLoader('hello', [lab.hostIf]);
      await run.waitFor(`attached xdp hello on ${lab.hostIf} (skb mode); Ctrl-C to stop`);
      const [prog] = queryXdp(lab.hostIf);
      expect(prog?.name).toBe('hello');
      await sendUdp(lab.ns, lab.hostIp, 9, 3, 100);
      await run.waitForStdout(/(142 bytes\n[^]*){3}/, 10_000);
      const exit = await run.stop('SIGINT');
      expect(exit).toEqual({ code: 0, signal: null });
      const lines = run.stdout().trim().split('\n');
      for (const l of lines) expect(l).toMatch(new RegExp(`^\\d+\\.\\d{6} \\S.*: packet on ifindex ${lab.hostIfindex}, (142|42) bytes$`));
      expect(lines.filter((l) => l.endsWith(' 142 bytes')).length).toBe(3);
      expect(run.stderr()).toMatch(/detached\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
    });
  });

  it('stops before loading anything when another process reads trace_pipe, naming it', async () => {
    await withTraceLock(async () => {
      const path = `${tracefsDir()}/trace_pipe`;
      const holder = await holdOpen(path);
      try {
        const before = loadedPrograms().filter((p) => p.name === 'hello').map((p) => p.id);
        const r = await runLoader('hello', [lab.hostIf]);
        expect(r.code).toBe(1);
        expect(r.stderr).toBe(`error: open ${path}: another process is reading it (pid ${holder.pid} (sleep)); the kernel allows one reader: stop that one first (EBUSY)\n`);
        expect(r.stdout).toBe('');
        expect(queryXdp(lab.hostIf)).toEqual([]);
        // Nothing was even loaded.
        expect(loadedPrograms().filter((p) => p.name === 'hello' && !before.includes(p.id))).toEqual([]);
      } finally {
        await holder.release();
      }
    });
  });

  it('refuses to attach over a program that is there, even with force when a bpf_link holds it', () => {
    const { obj } = loadHello();
    try {
      const link = obj.program('hello').attachXdp(lab.hostIf);
      const [{ id }] = queryXdp(lab.hostIf);
      let err: unknown;
      try { obj.program('hello').attachXdp(lab.hostIf); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(BpfError);
      expect((err as Error).message).toBe(`attach xdp hello to ${lab.hostIf}: interface already has XDP program 'hello' (id ${id}, skb mode); use --force to replace it (EBUSY)`);
      expect(() => obj.program('hello').attachXdp(lab.hostIf, { force: true })).toThrow(/held by another process's bpf_link and cannot be forced off \(EBUSY\)$/);
      expect(queryXdp(lab.hostIf)).toEqual([{ id, name: 'hello', mode: 'skb' }]);
      link.detach();
      // By ifindex, too.
      const again = obj.program('hello').attachXdp(lab.hostIfindex);
      expect(again.description).toBe(`xdp hello on ${lab.hostIf} (skb mode)`);
      again.detach();
      expect(queryXdp(lab.hostIf)).toEqual([]);
    } finally {
      obj.close();
    }
  });

  it('refuses unknown and invalid interfaces with ENODEV', () => {
    using obj = BpfObject.load(ensureObject('hello'));
    const p = obj.program('hello');
    expect(() => p.attachXdp('nosuch0')).toThrow(/^find interface nosuch0: no such interface \(have: .*\blo\b.*\) \(ENODEV\)$/);
    expect(() => p.attachXdp('a/b')).toThrow("find interface 'a/b': not a valid interface name (ENODEV)");
    expect(() => p.attachXdp('')).toThrow("find interface '': not a valid interface name (ENODEV)");
    expect(() => p.attachXdp(999_999)).toThrow('find interface 999999: no interface with ifindex 999999 (ENODEV)');
    expect(() => queryXdp('nosuch0')).toThrow(/\(ENODEV\)$/);
  });

  it('keeps the program attached through its link after the object is closed; pins and unpins links', () => {
    const { obj } = loadHello();
    const link = obj.program('hello').attachXdp(lab.hostIf) as Link;
    const p = `/sys/fs/bpf/libbpf-ts-test-${process.pid}-link`;
    pins.push(p);
    try {
      link.pin(p);
      expect(existsSync(p)).toBe(true);
      link.unpin();
      expect(existsSync(p)).toBe(false);
      link.unpin(); // not pinned: no-op
      link.pin(p);
      obj.close();
      expect(queryXdp(lab.hostIf).map((x) => x.name)).toEqual(['hello']);
      expect(link.attached).toBe(true);
    } finally {
      link.detach();
      obj.close();
    }
    expect(link.attached).toBe(false);
    expect(link.fd).toBe(-1);
    expect(existsSync(p)).toBe(false); // detach() removed the pin
    expect(queryXdp(lab.hostIf)).toEqual([]);
    expect(() => link.pin(p)).toThrow(/link is detached \(EBADF\)$/);
  });

  it('test-runs hello on a crafted packet: XDP_PASS, data unchanged, a measured duration', () => {
    using obj = BpfObject.load(ensureObject('hello'));
    const pkt = Buffer.alloc(64);
    pkt.writeUInt16BE(0x0800, 12);
    pkt.fill(0xab, 14);
    for (const repeat of [1, 100]) {
      const r = obj.program('hello').testRun({ data: pkt, repeat });
      expect(r.retval).toBe(XdpAction.PASS);
      expect(Buffer.compare(r.data, pkt)).toBe(0);
      if (repeat > 1) expect(r.duration).toBeGreaterThan(0);
    }
  });
});
