/**
 * mytcpdump: the user side's pure parts (option parsing, filter encoding,
 * ring sizing, formatting), then on a real kernel: TCP, UDP and ICMP from
 * the peer namespace of a lab veth come out of the ring buffer with their
 * exact addresses, ports, protocol and lengths; the in-kernel filter keeps
 * non-matching packets out of the ring (the kernel's counters show it); the
 * loader, run as a user runs it, prints NDJSON, stops after --count, and
 * exits cleanly, detached, when its reader goes away (| head -n 3).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, parseIpv4, queryXdp, type Attachment } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { lessonCommand } from '../src/cli/lesson.js';
import {
  addCaptureOptions, applyFilter, DEFAULT_RING_BYTES, describeFilter, eventJson, FilterConfig, filterConfig, formatEvent,
  formatSummary, HEADER, openCapture, PacketEvent, parseCountOption, parseHostOption, parsePortOption, parseProtoOption,
  parseRingSizeOption, ringBytesFor, type Capture, type CaptureFilter, type PacketEventValue,
} from '../src/lessons/mytcpdump.js';
import { pairLab, ping, sendTcpConnect, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, startLoader, stopAllLoaders } from './helpers/loader.js';

const ev = (o: Partial<PacketEventValue>): PacketEventValue => ({ ...PacketEvent.zero(), ...o });

describe('mytcpdump user side', () => {
  it('parses the filter options like tcpdump, and refuses bad ones', () => {
    expect(parseProtoOption('tcp')).toBe(6);
    expect(parseProtoOption('UDP')).toBe(17);
    expect(parseProtoOption('icmp')).toBe(1);
    expect(parseProtoOption('47')).toBe(47);
    for (const bad of ['foo', '256', '-1', '']) expect(() => parseProtoOption(bad), bad).toThrow(InvalidArgumentError);
    expect(parseHostOption('10.0.0.1')).toBe('10.0.0.1');
    for (const bad of ['10.0.0.256', '10.0.0', 'host', '']) expect(() => parseHostOption(bad), bad).toThrow(/is not an IPv4 address/);
    expect(parsePortOption('80')).toBe(80);
    expect(parsePortOption('65535')).toBe(65535);
    for (const bad of ['0', '65536', '-1', '1.5', 'http', '']) expect(() => parsePortOption(bad), bad).toThrow(/is not a port/);
    expect(parseCountOption('3')).toBe(3);
    for (const bad of ['0', '-3', '2.5', 'x']) expect(() => parseCountOption(bad), bad).toThrow(/is not a positive integer/);
  });

  it('sizes the ring: a power of two of at least a page, K/M/G suffixes, 64 MiB by default', () => {
    expect(parseRingSizeOption('4096')).toBe(4096);
    expect(parseRingSizeOption('1')).toBe(4096);
    expect(parseRingSizeOption('100k')).toBe(131072);
    expect(parseRingSizeOption('1M')).toBe(1 << 20);
    expect(parseRingSizeOption('3m')).toBe(4 << 20);
    expect(parseRingSizeOption('1G')).toBe(1 << 30);
    for (const bad of ['0', '2G', '1.5M', '-4096', 'big', '1T']) expect(() => parseRingSizeOption(bad), bad).toThrow(InvalidArgumentError);
    // 100 ms at one CPU's full rate (20 M events/s) of 24-byte records: 48 MB, rounded up.
    expect(ringBytesFor(20e6, 0.1)).toBe(64 << 20);
    expect(DEFAULT_RING_BYTES).toBe(64 << 20);
  });

  it('adds its options to the loader command, with the ring size default', () => {
    const spec = { lesson: 'mytcpdump', description: 'test', json: true, options: addCaptureOptions, run: async () => {} };
    const parse = (args: string[]) => {
      const cmd = lessonCommand(spec).configureOutput({ writeErr: () => {}, writeOut: () => {} });
      cmd.parse(args, { from: 'user' });
      return cmd.opts();
    };
    expect(parse(['veth0'])).toEqual({ mode: 'skb', force: false, verbose: false, json: false, ringSize: 64 << 20 });
    expect(parse(['veth0', '--proto', 'udp', '--host', '10.1.2.3', '--port', '53', '--count', '5', '--ring-size', '2M', '--json']))
      .toEqual({ mode: 'skb', force: false, verbose: false, json: true, proto: 17, host: '10.1.2.3', port: 53, count: 5, ringSize: 2 << 20 });
    expect(() => parse(['veth0', '--port', '99999'])).toThrow(/is not a port/);
  });

  it('encodes the filter into struct filter_config, byte for byte', () => {
    expect(filterConfig({})).toEqual({ flags: 0, host: 0, port: 0, proto: 0 });
    const cfg = filterConfig({ proto: 17, host: '10.1.2.3', port: 53 });
    expect(cfg).toEqual({ flags: 7, host: parseIpv4('10.1.2.3'), port: 53, proto: 17 });
    const b = Buffer.alloc(FilterConfig.size);
    FilterConfig.encode(cfg, b);
    // flags (host order), host and port in network order, proto, pad
    expect([...b]).toEqual([7, 0, 0, 0, 10, 1, 2, 3, 0, 53, 17, 0]);
    expect(filterConfig({ port: 8080 }).flags).toBe(4);
    expect(describeFilter({})).toBe('none');
    expect(describeFilter({ proto: 6, host: '10.0.0.1', port: 80 })).toBe('tcp and host 10.0.0.1 and port 80');
    expect(describeFilter({ proto: 253 })).toBe('proto 253');
  });

  it('decodes struct packet_event: addresses and ports from network order, length in host order', () => {
    const b = Buffer.from([10, 0, 0, 2, 10, 0, 0, 1, 0x9c, 0x41, 0x23, 0x28, 46, 0, 17, 0]);
    expect(PacketEvent.size).toBe(16);
    expect(PacketEvent.decode(b)).toEqual({ src_ip: parseIpv4('10.0.0.2'), dst_ip: parseIpv4('10.0.0.1'), src_port: 40001, dst_port: 9000, pkt_len: 46, proto: 17 });
  });

  it('formats events as aligned text lines and as NDJSON; ICMP without ports', () => {
    const udp = ev({ src_ip: parseIpv4('10.201.0.2'), dst_ip: parseIpv4('10.201.0.1'), src_port: 40001, dst_port: 9000, pkt_len: 46, proto: 17 });
    const icmp = ev({ src_ip: parseIpv4('10.201.0.2'), dst_ip: parseIpv4('10.201.0.1'), pkt_len: 84, proto: 1 });
    expect(formatEvent(udp)).toBe('UDP   10.201.0.2:40001       -> 10.201.0.1:9000       46');
    expect(formatEvent(icmp)).toBe('ICMP  10.201.0.2             -> 10.201.0.1            84');
    expect(formatEvent({ ...icmp, proto: 47 })).toMatch(/^GRE {3}10\.201\.0\.2 /);
    expect(formatEvent({ ...icmp, proto: 253 })).toMatch(/^253 {3}10\.201\.0\.2 /);
    expect(HEADER.indexOf('DESTINATION')).toBe(formatEvent(udp).indexOf('10.201.0.1'));
    expect(HEADER.indexOf('LENGTH')).toBe(formatEvent(udp).lastIndexOf(' 46') + 1);
    expect(eventJson(udp)).toBe('{"proto":"udp","src_ip":"10.201.0.2","src_port":40001,"dst_ip":"10.201.0.1","dst_port":9000,"pkt_len":46}');
    expect(eventJson(icmp)).toBe('{"proto":"icmp","src_ip":"10.201.0.2","dst_ip":"10.201.0.1","pkt_len":84}');
    // A later fragment of UDP carries no ports: none are shown.
    expect(eventJson({ ...udp, src_port: 0, dst_port: 0 })).toBe('{"proto":"udp","src_ip":"10.201.0.2","dst_ip":"10.201.0.1","pkt_len":46}');
    expect(formatSummary({ events: 12, lost: 0, filtered: 3, seconds: 5 })).toBe('12 events, 0 lost, 3 filtered in the kernel; 2.4 events/s over 5.0 s');
  });
});

describe.skipIf(!kernelTests())('mytcpdump on a real kernel', () => {
  let lab: PairLab;
  let obj: BpfObject;
  let capture: Capture;
  let link: Attachment;

  beforeAll(async () => {
    lab = await pairLab('mtd');
    obj = BpfObject.open(ensureObject('mytcpdump'));
    obj.setMaxEntries('events', 1 << 20);
    obj.load();
    capture = openCapture(obj);
    applyFilter(obj, {});
    link = obj.program('mytcpdump').attachXdp(lab.hostIf, { mode: 'skb' });
  });
  afterAll(async () => {
    await stopAllLoaders();
    link?.detach();
    capture?.reader.close();
    obj?.close();
    await lab?.down();
  });

  /** Reads events until `n` arrived (or 5 s passed), then 200 ms more to catch any extra. */
  async function events(n: number): Promise<string[]> {
    const got: string[] = [];
    const take = () => { capture.reader.read((e) => got.push(eventJson(e))); return got.length >= n; };
    await eventually(take, 5000);
    await new Promise((r) => setTimeout(r, 200));
    take();
    return got.sort();
  }

  const json = (o: Record<string, string | number>) => JSON.stringify(o);

  it('reports known TCP and UDP flows and ICMP with exact addresses, ports, protocol and lengths', async () => {
    const before = capture.counters();
    await sendUdp(lab.ns, lab.hostIp, 9000, 3, 18, 40001);
    expect(await sendTcpConnect(lab.ns, lab.hostIp, 9001, 1, 0, 40002)).toBe(0); // refused: only the SYN comes in
    expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
    const udp = json({ proto: 'udp', src_ip: lab.peerIp, src_port: 40001, dst_ip: lab.hostIp, dst_port: 9000, pkt_len: 20 + 8 + 18 });
    const tcp = json({ proto: 'tcp', src_ip: lab.peerIp, src_port: 40002, dst_ip: lab.hostIp, dst_port: 9001, pkt_len: 20 + 40 }); // SYN with Linux's 20 bytes of options
    const icmp = json({ proto: 'icmp', src_ip: lab.peerIp, dst_ip: lab.hostIp, pkt_len: 84 });
    expect(await events(6)).toEqual([udp, udp, udp, tcp, icmp, icmp].sort());
    const after = capture.counters();
    expect(after.packets - before.packets).toBe(6);
    expect(after.events - before.events).toBe(6);
    expect(after.filtered - before.filtered).toBe(0);
    expect(after.lost).toBe(0);
  });

  async function withFilter(f: CaptureFilter, traffic: () => Promise<unknown>, expected: number): Promise<{ events: string[]; filtered: number; packets: number }> {
    applyFilter(obj, f);
    try {
      const before = capture.counters();
      await traffic();
      const got = await events(expected);
      const after = capture.counters();
      expect(after.packets - before.packets).toBe(after.filtered - before.filtered + after.events - before.events);
      expect(after.events - before.events).toBe(got.length);
      return { events: got, filtered: after.filtered - before.filtered, packets: after.packets - before.packets };
    } finally {
      applyFilter(obj, {});
    }
  }

  it('filters by protocol and port in the kernel: the rest never reaches the ring', async () => {
    const r = await withFilter({ proto: 17, port: 9000 }, async () => {
      await sendUdp(lab.ns, lab.hostIp, 9000, 3, 10, 40011);
      await sendUdp(lab.ns, lab.hostIp, 9002, 2, 10, 40012);
      await ping(lab.ns, lab.hostIp, 2);
    }, 3);
    const udp = json({ proto: 'udp', src_ip: lab.peerIp, src_port: 40011, dst_ip: lab.hostIp, dst_port: 9000, pkt_len: 38 });
    expect(r.events).toEqual([udp, udp, udp]);
    expect(r.filtered).toBe(4);
  });

  it('filters by host: a host nobody talks to lets nothing through, the peer lets its packets through', async () => {
    const none = await withFilter({ host: '10.9.9.9' }, () => sendUdp(lab.ns, lab.hostIp, 9000, 2, 10, 40021), 0);
    expect(none.events).toEqual([]);
    expect(none.filtered).toBe(2);
    const peer = await withFilter({ host: lab.peerIp, proto: 1 }, async () => {
      await ping(lab.ns, lab.hostIp, 2);
      await sendUdp(lab.ns, lab.hostIp, 9000, 1, 10, 40022);
    }, 2);
    const icmp = json({ proto: 'icmp', src_ip: lab.peerIp, dst_ip: lab.hostIp, pkt_len: 84 });
    expect(peer.events).toEqual([icmp, icmp]);
    expect(peer.filtered).toBe(1);
  });

  it('a port filter matches source or destination ports of TCP, and never ICMP', async () => {
    const r = await withFilter({ port: 40031 }, async () => {
      await sendTcpConnect(lab.ns, lab.hostIp, 9001, 1, 0, 40031);
      await ping(lab.ns, lab.hostIp, 1);
    }, 1);
    expect(r.events).toEqual([json({ proto: 'tcp', src_ip: lab.peerIp, src_port: 40031, dst_ip: lab.hostIp, dst_port: 9001, pkt_len: 60 })]);
    expect(r.filtered).toBe(1);
  });

  it('the loader prints NDJSON of the matching packets only, stops after --count, reports and detaches', async () => {
    link.detach();
    try {
      const p = startLoader('mytcpdump', [lab.hostIf, '--json', '--count', '3', '--proto', 'udp', '--ring-size', '1M']);
      await p.waitFor('attached');
      expect(queryXdp(lab.hostIf).map((x) => x.name)).toEqual(['mytcpdump']);
      await ping(lab.ns, lab.hostIp, 2);
      await sendUdp(lab.ns, lab.hostIp, 9000, 5, 10, 40041);
      const exit = await p.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      const udp = json({ proto: 'udp', src_ip: lab.peerIp, src_port: 40041, dst_ip: lab.hostIp, dst_port: 9000, pkt_len: 38 });
      expect(p.stdout()).toBe(`${udp}\n${udp}\n${udp}\n`);
      expect(p.stderr()).toMatch(/filter: udp, ring 1 MiB/);
      expect(p.stderr()).toMatch(/\n3 events, 0 lost, 2 filtered in the kernel; [\d.]+ events\/s over [\d.]+ s\ndetached\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
    } finally {
      link = obj.program('mytcpdump').attachXdp(lab.hostIf, { mode: 'skb' });
    }
  });

  it('the largest ring the reader maps (--ring-size 1G, and 1023M rounded up to it) captures', async () => {
    link.detach();
    try {
      for (const size of ['1G', '1023M']) {
        const p = startLoader('mytcpdump', [lab.hostIf, '--json', '--count', '1', '--proto', 'udp', '--ring-size', size]);
        await p.waitFor('attached');
        await sendUdp(lab.ns, lab.hostIp, 9000, 1, 10, 40051);
        expect(await p.exited, p.stderr()).toEqual({ code: 0, signal: null });
        expect(p.stderr()).toMatch(/filter: udp, ring 1024 MiB/);
        expect(p.stdout()).toBe(`${json({ proto: 'udp', src_ip: lab.peerIp, src_port: 40051, dst_ip: lab.hostIp, dst_port: 9000, pkt_len: 38 })}\n`);
      }
      expect(queryXdp(lab.hostIf)).toEqual([]);
    } finally {
      link = obj.program('mytcpdump').attachXdp(lab.hostIf, { mode: 'skb' });
    }
  });

  it('piped into head -n 3, it exits 0 on EPIPE and leaves nothing attached', async () => {
    link.detach();
    try {
      const loader = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'mytcpdump.ts'), lab.hostIf, '--json'].join(' ');
      const sh = spawn('bash', ['-c', `${loader} | head -n 3; echo "loader exit \${PIPESTATUS[0]}" >&2`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      sh.stdout.on('data', (d) => { out += String(d); });
      sh.stderr.on('data', (d) => { err += String(d); });
      let done = false;
      const closed = new Promise<number | null>((resolve) => sh.on('close', (code) => { done = true; resolve(code); }));
      expect(await eventually(() => err.includes('attached'), 30_000)).toBe(true);
      // Keep packets coming until the loader notices its reader is gone.
      for (let i = 0; i < 40 && !done; i++) await ping(lab.ns, lab.hostIp, 2);
      await closed;
      const lines = out.trim().split('\n');
      expect(lines).toHaveLength(3);
      for (const l of lines) expect(JSON.parse(l)).toEqual({ proto: 'icmp', src_ip: lab.peerIp, dst_ip: lab.hostIp, pkt_len: 84 });
      expect(err).toMatch(/detached\nloader exit 0\n$/);
      expect(queryXdp(lab.hostIf)).toEqual([]);
    } finally {
      link = obj.program('mytcpdump').attachXdp(lab.hostIf, { mode: 'skb' });
    }
  });
});
