/**
 * packet_inspect: the line parsing and rendering of the user side, then on a
 * real kernel: packets of several protocols sent from the peer namespace of a
 * lab veth are reported with their addresses and protocol numbers; frames the
 * parser must refuse (truncated, not IPv4, bad ihl) pass untouched and print
 * nothing; the loader, run as a user runs it, streams JSON and detaches.
 */
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, XdpAction, protoLabel, queryXdp } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import {
  formatInspect, inspectEvent, inspectJson, inspectPrefix, ipv4Frame, openInspectStream, parseInspectMessage,
  type InspectEvent, type InspectStream,
} from '../src/lessons/packet_inspect.js';
import { parseTraceLine, tracefsDir } from '../src/trace.js';
import { pairLab, ping, runNs, sendUdp, tcpConnect, type PairLab } from '../src/lab/index.js';
import { holdOpen, kernelTests, withTraceLock } from './helpers/kernel.js';
import { eventually, runLoader, startLoader } from './helpers/loader.js';

describe('packet_inspect user side', () => {
  it('parses its own trace lines into dotted quads and protocol names', () => {
    expect(inspectPrefix(42)).toBe('packet_inspect 42: ');
    expect(parseInspectMessage('packet_inspect 42: ac90002 ac90001 17', 42)).toEqual({ src: '10.201.0.2', dst: '10.201.0.1', proto: 17, protoName: 'udp' });
    expect(parseInspectMessage('packet_inspect 42: c0a80101 ffffffff 253', 42)).toEqual({ src: '192.168.1.1', dst: '255.255.255.255', proto: 253, protoName: '253' });
    expect(parseInspectMessage('packet_inspect 42: 0 0 0', 42)).toEqual({ src: '0.0.0.0', dst: '0.0.0.0', proto: 0, protoName: '0' });
  });

  it('ignores lines of other programs, other tags and malformed ones', () => {
    for (const m of [
      'packet_inspect 43: ac90002 ac90001 17', // another loader's tag
      'packet_inspect 4: ac90002 ac90001 17',
      'hello 42: packet on ifindex 3, 60 bytes',
      'packet_inspect 42: ac90002 ac90001', // no protocol
      'packet_inspect 42: ac90002 ac90001 256', // not a protocol number
      'packet_inspect 42: 10ac90002 ac90001 17', // 9 hex digits
      'packet_inspect 42: xyz ac90001 17',
      'packet_inspect 42: ac90002 ac90001 17 extra',
    ]) expect(parseInspectMessage(m, 42), m).toBeUndefined();
  });

  it('turns a trace_pipe line into an event, and renders it as text and JSON', () => {
    const raw = '          <idle>-0       [001] ..s2.  7112.554747: bpf_trace_printk: packet_inspect 7: ac96639 ac96638 1';
    const line = parseTraceLine(raw)!;
    const e = inspectEvent(line, 7)!;
    expect(e).toEqual({ timestamp: 7112.554747, task: '<idle>-0', src: '10.201.102.57', dst: '10.201.102.56', proto: 1, protoName: 'icmp' });
    expect(inspectEvent(line, 8)).toBeUndefined();
    expect(formatInspect(e)).toBe('   7112.554747  10.201.102.57   -> 10.201.102.56    icmp (1)');
    expect(JSON.parse(inspectJson(e))).toEqual({ ts: 7112.554747, src: '10.201.102.57', dst: '10.201.102.56', proto: 1, name: 'icmp' });
    expect(formatInspect({ ...e, proto: 253, protoName: '253' })).toMatch(/-> 10\.201\.102\.56 {4}proto 253$/);
  });

  it('labels protocols with and without a name', () => {
    expect(protoLabel(6)).toBe('tcp (6)');
    expect(protoLabel(17)).toBe('udp (17)');
    expect(protoLabel(253)).toBe('proto 253');
  });

  it('builds crafted frames for test runs', () => {
    const f = ipv4Frame({ src: '198.51.100.7', dst: '203.0.113.9', proto: 47, payloadLen: 6 });
    expect(f.length).toBe(14 + 20 + 6);
    expect(f.readUInt16BE(12)).toBe(0x0800);
    expect(f[14]).toBe(0x45);
    expect(f.readUInt16BE(16)).toBe(26);
    expect(f[23]).toBe(47);
    expect([...f.subarray(26, 34)]).toEqual([198, 51, 100, 7, 203, 0, 113, 9]);
    expect(ipv4Frame({ src: '1.2.3.4', dst: '5.6.7.8', proto: 6, truncateTo: 20 }).length).toBe(20);
    expect(() => ipv4Frame({ src: '1.2.3', dst: '5.6.7.8', proto: 6 })).toThrow(TypeError);
  });
});

/** Collects a stream's events in the background until it is closed. */
function collect(stream: InspectStream): { events: InspectEvent[]; done: Promise<void> } {
  const events: InspectEvent[] = [];
  const done = (async () => { for await (const e of stream) events.push(e); })();
  return { events, done };
}

/** Sends `count` datagrams of IP protocol `proto` (raw socket, `payloadLen` bytes) from namespace `ns`. */
async function sendRaw(ns: string, dst: string, proto: number, count: number, payloadLen: number): Promise<void> {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,${proto})\nfor i in range(${count}): s.sendto(b'r'*${payloadLen},('${dst}',0))`;
  await runNs(ns, ['python3', '-c', py]);
}

function loadTagged(tag: number): BpfObject {
  const obj = BpfObject.open(ensureObject('packet_inspect'));
  try {
    obj.setConst('trace_tag', tag);
    return obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
}

const CLOSED_PORT = 47913; // nothing listens there: each connect is one SYN, answered by a RST

describe.skipIf(!kernelTests())('packet_inspect on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('pin'); });
  afterAll(async () => { await lab?.down(); });

  it('reports source, destination and protocol of UDP, ICMP, TCP and raw packets from the peer namespace', async () => {
    await withTraceLock(async () => {
      const tag = randomInt(1, 2 ** 31);
      using obj = loadTagged(tag);
      const stream = openInspectStream(tag);
      const { events, done } = collect(stream);
      const link = obj.program('packet_inspect').attachXdp(lab.hostIf);
      try {
        expect(queryXdp(lab.hostIf).map((p) => p.name)).toEqual(['packet_inspect']);
        await sendUdp(lab.ns, lab.hostIp, 9, 3, 32);
        expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
        expect(await tcpConnect(lab.ns, lab.hostIp, CLOSED_PORT, 2)).toBe(0);
        await sendRaw(lab.ns, lab.hostIp, 253, 4, 10);
        const want = { 1: 2, 6: 2, 17: 3, 253: 4 };
        const byProto = () => {
          const n: Record<number, number> = {};
          for (const e of events) n[e.proto] = (n[e.proto] ?? 0) + 1;
          return n;
        };
        await eventually(() => events.length >= 11, 5000);
        await new Promise((r) => setTimeout(r, 300)); // anything extra would show up now
        expect(byProto()).toEqual(want);
        for (const e of events) {
          expect({ src: e.src, dst: e.dst }).toEqual({ src: lab.peerIp, dst: lab.hostIp });
          expect(e.protoName).toBe({ 1: 'icmp', 6: 'tcp', 17: 'udp', 253: '253' }[e.proto]);
        }
      } finally {
        link.detach();
        stream.close();
        await done;
      }
      expect(queryXdp(lab.hostIf)).toEqual([]);
    });
  });

  it('passes truncated and non-IPv4 frames untouched and prints nothing for them (test run)', async () => {
    await withTraceLock(async () => {
      const tag = randomInt(1, 2 ** 31);
      using obj = loadTagged(tag);
      const prog = obj.program('packet_inspect');
      const stream = openInspectStream(tag);
      const { events, done } = collect(stream);
      try {
        const base = { src: '198.51.100.7', dst: '203.0.113.9', proto: 17 };
        const refused: Array<[string, Buffer]> = [
          ['Ethernet header only', ipv4Frame({ ...base, truncateTo: 14 })],
          ['IPv4 header cut short', ipv4Frame({ ...base, truncateTo: 14 + 19 })],
          ['ARP', ipv4Frame({ ...base, ethertype: 0x0806, payloadLen: 8 })],
          ['IPv6 ethertype', ipv4Frame({ ...base, ethertype: 0x86dd, payloadLen: 40 })],
          ['802.1Q VLAN tag', ipv4Frame({ ...base, ethertype: 0x8100 })],
          ['ihl 4', ipv4Frame({ ...base, ihl: 4 })],
          ['ihl 15 past the end', ipv4Frame({ ...base, ihl: 15, payloadLen: 0, truncateTo: 14 + 40 })],
        ];
        for (const [what, frame] of refused) {
          const r = prog.testRun({ data: frame });
          expect(r.retval, what).toBe(XdpAction.PASS);
          expect(Buffer.compare(r.data, frame), what).toBe(0);
        }
        // A well-formed frame last: its line proves the ones before had their chance to print.
        const good = ipv4Frame({ ...base, proto: 47, payloadLen: 4 });
        const r = prog.testRun({ data: good });
        expect(r.retval).toBe(XdpAction.PASS);
        expect(Buffer.compare(r.data, good)).toBe(0);
        expect(await eventually(() => events.length > 0, 5000)).toBe(true);
        await new Promise((res) => setTimeout(res, 200));
        expect(events.map(({ src, dst, proto, protoName }) => ({ src, dst, proto, protoName }))).toEqual([
          { src: '198.51.100.7', dst: '203.0.113.9', proto: 47, protoName: 'gre' },
        ]);
      } finally {
        stream.close();
        await done;
      }
    });
  });

  it('loader: stops before loading anything when another process reads trace_pipe, naming it', async () => {
    await withTraceLock(async () => {
      const path = `${tracefsDir()}/trace_pipe`;
      const holder = await holdOpen(path);
      try {
        const r = await runLoader('packet_inspect', [lab.hostIf]);
        expect(r.code).toBe(1);
        expect(r.stderr).toBe(`error: open ${path}: another process is reading it (pid ${holder.pid} (sleep)); the kernel allows one reader: stop that one first (EBUSY)\n`);
        expect(r.stdout).toBe('');
        expect(queryXdp(lab.hostIf)).toEqual([]);
      } finally {
        await holder.release();
      }
    });
  });

  it('loader: streams one JSON line per packet for traffic from the peer, exits 0, leaves nothing attached', async () => {
    await withTraceLock(async () => {
      const run = startLoader('packet_inspect', [lab.hostIf, '--duration', '3', '--json']);
      try {
        await run.waitFor('attached');
        await sendUdp(lab.ns, lab.hostIp, 9, 4, 20);
        await sendRaw(lab.ns, lab.hostIp, 253, 2, 5);
        expect(await run.exited).toEqual({ code: 0, signal: null });
      } finally {
        run.kill('SIGKILL');
      }
      const lines = run.stdout().trim().split('\n').map((l) => JSON.parse(l) as { src: string; dst: string; proto: number; name: string });
      expect(lines.filter((l) => l.proto === 17)).toEqual(Array(4).fill(expect.objectContaining({ src: lab.peerIp, dst: lab.hostIp, name: 'udp' })));
      expect(lines.filter((l) => l.proto === 253)).toEqual(Array(2).fill(expect.objectContaining({ src: lab.peerIp, dst: lab.hostIp, name: '253' })));
      expect(lines.length).toBe(6);
      expect(run.stderr()).toMatch(/detached\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
    });
  });
});
