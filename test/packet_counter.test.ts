/**
 * packet_counter: rates, tables, JSON and the polling loop of the user side,
 * then on a real kernel: a known number of TCP, UDP, ICMP and raw packets
 * from the peer namespace of a lab veth gives exactly those counts in
 * proto_count, read through the typed map API; the insert-then-add path on
 * repeated test runs; the loader as a user runs it.
 *
 * Exactness: XDP on the host end sees only what the peer namespace sends.
 * That namespace runs nothing but these tests' senders, and IPv6 is off, so
 * its kernel sends only ARP (not IPv4: not counted) and what the senders
 * cause. The test still accounts for the kernel: it reads the namespace's
 * own per-protocol output counters (/proc/net/snmp) around the traffic and
 * expects the map to match them too; proto 253 (reserved for
 * experiments) is a protocol nothing else on the link uses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, XdpAction, queryXdp } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { pollEvery } from '../src/cli/lesson.js';
import { formatRate, rate } from '../src/cli/output.js';
import {
  ProtoCounter, protoCountMap, protoJson, protoSnapshot, readProtoCounts, renderProtoTable,
} from '../src/lessons/packet_counter.js';
import { ipv4Frame } from '../src/lessons/packet_inspect.js';
import { pairLab, ping, runNs, sendUdp, tcpConnect, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, startLoader } from './helpers/loader.js';

describe('packet_counter user side', () => {
  it('computes rates from two readings', () => {
    expect(rate(10, 30, 2)).toBe(10);
    expect(rate(0, 5, 0)).toBe(0); // no time passed
    expect(rate(30, 10, 2)).toBe(0); // counter went back (map recreated)
  });

  it('builds a snapshot sorted by protocol, new protocols counting from 0', () => {
    const prev = new Map([[6, 10], [17, 100]]);
    const cur = new Map([[17, 150], [1, 4], [6, 10], [253, 2]]);
    const t = new Date('2025-01-02T03:04:05.000Z');
    const s = protoSnapshot(cur, prev, 2, t);
    expect(s.rows).toEqual([
      { proto: 1, name: 'icmp', packets: 4, rate: 2 },
      { proto: 6, name: 'tcp', packets: 10, rate: 0 },
      { proto: 17, name: 'udp', packets: 150, rate: 25 },
      { proto: 253, name: '253', packets: 2, rate: 1 },
    ]);
    expect(s.total).toBe(166);
    expect(s.totalRate).toBe(28);
    expect(renderProtoTable(s)).toEqual([
      '03:04:05  4 protocols, last 2.0 s',
      'proto             packets      pkt/s',
      'icmp (1)                4        2.0',
      'tcp (6)                10        0.0',
      'udp (17)              150       25.0',
      'proto 253               2        1.0',
      'total                 166       28.0',
      '',
    ]);
    expect(JSON.parse(protoJson(s))).toEqual({
      time: '2025-01-02T03:04:05.000Z', elapsed: 2, total: 166, rate: 28,
      protocols: [
        { proto: 1, name: 'icmp', packets: 4, rate: 2 },
        { proto: 6, name: 'tcp', packets: 10, rate: 0 },
        { proto: 17, name: 'udp', packets: 150, rate: 25 },
        { proto: 253, name: '253', packets: 2, rate: 1 },
      ],
    });
    expect(renderProtoTable(protoSnapshot(new Map(), new Map(), 1, t))[0]).toBe('03:04:05  0 protocols, last 1.0 s');
  });

  it('formats rates compactly', () => {
    expect(formatRate(0)).toBe('0.0');
    expect(formatRate(999.94)).toBe('999.9');
    expect(formatRate(1234)).toBe('1.23k');
    expect(formatRate(45_600_000)).toBe('45.6M');
    expect(formatRate(2.5e9)).toBe('2.50G');
  });

  it('pollEvery ticks once per interval and once at the stop, unless a tick just happened', async () => {
    const fake = (abortAt: number) => {
      const ac = new AbortController();
      let sleeps = 0;
      return { signal: ac.signal, sleep: async () => { if (++sleeps === abortAt) ac.abort(); } };
    };
    // Stop during the 3rd sleep, right after two ticks: the near-empty last interval is skipped.
    let ticks = 0;
    await pollEvery(fake(3), 1, () => { ticks++; });
    expect(ticks).toBe(2);
    // Stop during the first sleep: one tick for what was seen so far.
    ticks = 0;
    await pollEvery(fake(1), 1, () => { ticks++; });
    expect(ticks).toBe(1);
    // A stop well into an interval gets its tick.
    ticks = 0;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 130);
    const sleep = (ms: number) => new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      ac.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); });
    });
    await pollEvery({ signal: ac.signal, sleep }, 0.05, () => { ticks++; });
    expect(ticks).toBeGreaterThanOrEqual(2);
    expect(ticks).toBeLessThanOrEqual(3);
  });
});

/** Sends `count` datagrams of IP protocol `proto` (raw socket, `payloadLen` bytes) from namespace `ns`. */
async function sendRaw(ns: string, dst: string, proto: number, count: number, payloadLen: number): Promise<void> {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,${proto})\nfor i in range(${count}): s.sendto(b'r'*${payloadLen},('${dst}',0))`;
  await runNs(ns, ['python3', '-c', py]);
}

/** The namespace's IPv4 output counters: TCP segments, UDP datagrams, ICMP messages (/proc/net/snmp). */
async function outCounters(ns: string): Promise<{ tcp: number; udp: number; icmp: number }> {
  const { stdout } = await runNs(ns, ['cat', '/proc/net/snmp']);
  const lines = stdout.split('\n');
  const field = (proto: string, name: string) => {
    const [head, vals] = lines.filter((l) => l.startsWith(`${proto}: `)).map((l) => l.split(/\s+/).slice(1));
    const i = head.indexOf(name);
    if (i < 0) throw new Error(`no ${proto} ${name} in /proc/net/snmp`);
    return Number(vals[i]);
  };
  return { tcp: field('Tcp', 'OutSegs'), udp: field('Udp', 'OutDatagrams'), icmp: field('Icmp', 'OutMsgs') };
}

const CLOSED_PORT = 47914; // nothing listens there: each connect is one SYN, answered by a RST

describe.skipIf(!kernelTests())('packet_counter on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('pcnt'); });
  afterAll(async () => { await lab?.down(); });

  it('counts exactly the TCP, UDP, ICMP and raw packets sent from the peer namespace', async () => {
    using obj = BpfObject.load(ensureObject('packet_counter'));
    const map = protoCountMap(obj);
    expect([map.type, map.keySize, map.valueSize, map.maxEntries]).toEqual([1 /* HASH */, 1, 8, 256]);
    const link = obj.program('packet_counter').attachXdp(lab.hostIf);
    try {
      const before = await outCounters(lab.ns);
      await sendUdp(lab.ns, lab.hostIp, 9, 7, 20);
      expect(await ping(lab.ns, lab.hostIp, 5)).toBe(5);
      expect(await tcpConnect(lab.ns, lab.hostIp, CLOSED_PORT, 3)).toBe(0);
      await sendRaw(lab.ns, lab.hostIp, 253, 11, 8);
      const after = await outCounters(lab.ns);
      // What the peer's kernel says it sent, per protocol: what we sent, and nothing of its own.
      const sentByKernel = { 6: after.tcp - before.tcp, 17: after.udp - before.udp, 1: after.icmp - before.icmp, 253: 11 };
      expect(sentByKernel).toEqual({ 6: 3, 17: 7, 1: 5, 253: 11 });
      const counts = () => Object.fromEntries(readProtoCounts(map));
      await eventually(() => JSON.stringify(counts()) === JSON.stringify(sentByKernel), 5000);
      expect(counts()).toEqual(sentByKernel);
      // The typed single-key API agrees with iteration.
      expect([map.get(6), map.get(17), map.get(1), map.get(253), map.get(47)]).toEqual([3, 7, 5, 11, undefined]);
    } finally {
      link.detach();
    }
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('inserts the first packet of a protocol, adds the next ones, and ignores what is not IPv4 (test run)', () => {
    using obj = BpfObject.load(ensureObject('packet_counter'));
    const map = protoCountMap(obj);
    const prog = obj.program('packet_counter');
    const frame = ipv4Frame({ src: '198.51.100.1', dst: '198.51.100.2', proto: 99 });
    expect(prog.testRun({ data: frame }).retval).toBe(XdpAction.PASS);
    expect(map.get(99)).toBe(1);
    expect(prog.testRun({ data: frame, repeat: 1000 }).retval).toBe(XdpAction.PASS);
    expect(map.get(99)).toBe(1001);
    for (const f of [
      ipv4Frame({ src: '198.51.100.1', dst: '198.51.100.2', proto: 98, ethertype: 0x0806 }),
      ipv4Frame({ src: '198.51.100.1', dst: '198.51.100.2', proto: 98, truncateTo: 30 }),
      ipv4Frame({ src: '198.51.100.1', dst: '198.51.100.2', proto: 98, ihl: 3 }),
    ]) {
      const r = prog.testRun({ data: f, repeat: 10 });
      expect(r.retval).toBe(XdpAction.PASS);
      expect(Buffer.compare(r.data, f)).toBe(0);
    }
    expect(Object.fromEntries(readProtoCounts(map))).toEqual({ 99: 1001 });
    // Rates between two readings of the live map.
    const counter = new ProtoCounter(map);
    counter.snapshot();
    prog.testRun({ data: frame, repeat: 50 });
    const s = counter.snapshot();
    expect(s.rows).toEqual([{ proto: 99, name: '99', packets: 1051, rate: expect.any(Number) }]);
    expect(s.rows[0].rate).toBeCloseTo(50 / s.elapsed, 6);
  });

  it('loader: prints one JSON object per interval with the counts of the traffic, exits 0, leaves nothing attached', async () => {
    const run = startLoader('packet_counter', [lab.hostIf, '--duration', '3', '--json', '--interval', '1']);
    try {
      await run.waitFor('attached');
      await sendRaw(lab.ns, lab.hostIp, 253, 6, 4);
      await sendUdp(lab.ns, lab.hostIp, 9, 3, 10);
      expect(await run.exited).toEqual({ code: 0, signal: null });
    } finally {
      run.kill('SIGKILL');
    }
    type Snap = { time: string; elapsed: number; total: number; protocols: Array<{ proto: number; name: string; packets: number; rate: number }> };
    const snaps = run.stdout().trim().split('\n').map((l) => JSON.parse(l) as Snap);
    expect(snaps.length).toBeGreaterThanOrEqual(3);
    expect(snaps.length).toBeLessThanOrEqual(4);
    const last = snaps[snaps.length - 1];
    expect(last.protocols).toEqual([
      { proto: 17, name: 'udp', packets: 3, rate: expect.any(Number) },
      { proto: 253, name: '253', packets: 6, rate: expect.any(Number) },
    ]);
    expect(last.total).toBe(9);
    // Rates add up to the packets: every packet was counted in exactly one interval.
    const seen = snaps.reduce((a, s) => a + s.protocols.reduce((b, p) => b + p.rate * s.elapsed, 0), 0);
    expect(seen).toBeCloseTo(9, 0);
    expect(run.stderr()).toMatch(/detached\n$/);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });
});
