/**
 * sourceip: the user side's pure parts (address text by family, rendering,
 * the per-source summary), the command line; then on a real kernel: crafted
 * IPv4 and IPv6 frames (plain, behind extension headers, truncated, and
 * not IP at all) run through BPF_PROG_TEST_RUN give exactly the expected
 * ring events and counters, and a full ring counts what it drops; on a pair lab with IPv6, the loader shows the
 * peer's IPv4 and IPv6 pings with their exact addresses (RFC 5952 text),
 * stops after --count, prints the per-source summary, and a SIGKILLed
 * loader leaves nothing attached or loaded.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, parseIpv4, parseIpv6, queryXdp, XdpAction } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import {
  Counters, formatAddress, formatPacket, formatSummary, openSourceCapture, packetJson, SourceEvent, SourceTable, toPacket,
  WallClock, type SourceCapture, type SourceEventValue, type SourcePacket,
} from '../src/lessons/sourceip.js';
import { pairLab, ping, ping6, ULA_PREFIX, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, programLoaded, startLoader, stopAllLoaders } from './helpers/loader.js';
import { buildFrame } from './helpers/packets.js';

/** 16 bytes: an IPv4 address in the first 4, as the kernel side fills them. */
const v4field = (ip: string) => { const b = new Uint8Array(16); Buffer.from(b.buffer).writeUInt32BE(parseIpv4(ip), 0); return b; };

/** A fixed clock: monotonic 0 is 2026-12-02T10:00:00.000Z. */
const clock = new WallClock(() => Date.UTC(2026, 11, 2, 10, 0, 0), () => 0n);

describe('sourceip user side', () => {
  it('turns address fields into text by family: dotted quad from 4 bytes, RFC 5952 from 16', () => {
    expect(formatAddress(4, v4field('10.201.0.2'))).toBe('10.201.0.2');
    expect(formatAddress(6, parseIpv6('fd6c:6274:7300:0001:0000:0000:0000:0002'))).toBe('fd6c:6274:7300:1::2');
    expect(formatAddress(6, parseIpv6('::ffff:10.0.0.1'))).toBe('::ffff:10.0.0.1');
    expect(() => formatAddress(5, new Uint8Array(16))).toThrow(/unknown address family 5/);
  });

  it('decodes struct sourceip_event: 48 bytes, addresses as raw bytes, length in host order', () => {
    expect(SourceEvent.size).toBe(48);
    expect(Counters.size).toBe(32);
    const b = Buffer.alloc(48);
    b.writeBigUInt64LE(1_500_000n, 0); // 1.5 ms after monotonic 0
    b.set(parseIpv6('2001:db8::1'), 8);
    b.set(parseIpv6('2001:db8::2'), 24);
    b.writeUInt16LE(104, 40);
    b[42] = 6;
    b[43] = 58;
    const e = SourceEvent.decode(b);
    const p = toPacket(e, clock);
    expect(p).toEqual({ time: new Date(Date.UTC(2026, 11, 2, 10, 0, 0, 1.5)), family: 6, src: '2001:db8::1', dst: '2001:db8::2', proto: 58, len: 104 });
    expect(() => toPacket({ ...e, family: 0 }, clock)).toThrow(/unknown address family 0/);
  });

  it('renders one line or one JSON object per packet', () => {
    const time = new Date(2026, 11, 2, 11, 40, 1, 123); // local time, as the line shows it
    const p6: SourcePacket = { time, family: 6, src: 'fd6c:6274:7300:1::2', dst: 'fd6c:6274:7300:1::1', proto: 58, len: 104 };
    const p4: SourcePacket = { time, family: 4, src: '10.201.0.2', dst: '10.201.0.1', proto: 1, len: 84 };
    expect(formatPacket(p6)).toBe('11:40:01.123 IPv6 fd6c:6274:7300:1::2 -> fd6c:6274:7300:1::1 icmpv6 104 bytes');
    expect(formatPacket(p4)).toBe('11:40:01.123 IPv4 10.201.0.2 -> 10.201.0.1 icmp 84 bytes');
    expect(formatPacket({ ...p4, proto: 253 })).toBe('11:40:01.123 IPv4 10.201.0.2 -> 10.201.0.1 253 84 bytes');
    expect(JSON.parse(packetJson(p6))).toEqual({ time: time.toISOString(), family: 6, src: 'fd6c:6274:7300:1::2', dst: 'fd6c:6274:7300:1::1', proto: 'icmpv6', len: 104 });
  });

  it('tallies packets and bytes per source, most first, and always says how many were lost', () => {
    const t = new SourceTable();
    const at = (src: string, family: 4 | 6, len: number): SourcePacket => ({ time: new Date(0), family, src, dst: 'x', proto: 1, len });
    t.add(at('10.0.0.2', 4, 84));
    t.add(at('fd00::2', 6, 104));
    t.add(at('fd00::2', 6, 104));
    t.add(at('10.0.0.3', 4, 60));
    expect(t.rows()).toEqual([
      { src: 'fd00::2', family: 6, packets: 2, bytes: 208 },
      { src: '10.0.0.2', family: 4, packets: 1, bytes: 84 },
      { src: '10.0.0.3', family: 4, packets: 1, bytes: 60 },
    ]);
    expect(formatSummary(t.rows(), { ipv4: 2, ipv6: 2, events: 3, lost: 1 })).toEqual([
      'source    family   packets       bytes',
      'fd00::2   IPv6           2         208',
      '10.0.0.2  IPv4           1          84',
      '10.0.0.3  IPv4           1          60',
      '2 IPv4 and 2 IPv6 packets seen, 3 events, 1 lost (ring full)',
    ]);
  });
});

describe('sourceip command line', () => {
  const loader = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'sourceip.ts'), ...args],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });

  it('answers --help on stdout with exit 0', () => {
    const r = loader(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: sourceip \[options\] <iface>\n[^]*--json[^]*--count <n>/);
  });

  it('refuses bad usage with exit 2 before touching the kernel', () => {
    for (const args of [['lo', '--count', '0'], ['lo', '--count', 'x'], ['lo', '--bogus'], []]) {
      const r = loader(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error: /);
    }
  });
});

// ---------------------------------------------------------------- IPv6 frames

const MAC = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/**
 * Ethernet + IPv6 from `src` to `dst`, then `ext` (extension headers, each
 * [type, bytes], chained by their first byte) and an upper-layer header of
 * protocol `proto` with `payload` bytes. payload_len counts everything after
 * the fixed header. Checksums are not computed (XDP does not check them).
 */
function ipv6Frame(src: string, dst: string, proto: number, payload: number, ext: Array<[number, number]> = []): Buffer {
  const extLen = ext.reduce((n, [, len]) => n + len, 0);
  const f = Buffer.alloc(14 + 40 + extLen + payload);
  f.set(MAC, 0);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(0x60000000, 14);
  f.writeUInt16BE(extLen + payload, 18);
  f[20] = ext.length ? ext[0][0] : proto;
  f[21] = 64;
  f.set(parseIpv6(src), 22);
  f.set(parseIpv6(dst), 38);
  let off = 54;
  ext.forEach(([type, len], i) => {
    f[off] = i + 1 < ext.length ? ext[i + 1][0] : proto;
    // Hdr Ext Len: fragment (44) has none; AH (51) counts 4-byte units minus 2; the rest 8-byte units minus 1.
    f[off + 1] = type === 44 ? 0 : type === 51 ? len / 4 - 2 : len / 8 - 1;
    off += len;
  });
  return f;
}

describe.skipIf(!kernelTests())('sourceip on a real kernel', () => {
  let lab: PairLab;
  let obj: BpfObject;
  let capture: SourceCapture;

  beforeAll(async () => {
    lab = await pairLab('sip', { ipv6: true });
    obj = BpfObject.open(ensureObject('sourceip'));
    obj.load();
    capture = openSourceCapture(obj);
  });
  afterAll(async () => {
    await stopAllLoaders();
    capture?.reader.close();
    obj?.close();
    await lab?.down();
  });

  /** Everything in the ring now, as packets. */
  const drain = (): SourcePacket[] => {
    const got: SourceEventValue[] = [];
    capture.reader.read((e) => got.push(e));
    return got.map((e) => toPacket(e, clock));
  };
  const brief = (p: SourcePacket) => `${p.family} ${p.src} > ${p.dst} ${p.proto} ${p.len}`;

  it('test run: IPv4 and IPv6 frames give exactly their events; other EtherTypes and truncated headers none', () => {
    const prog = obj.program('sourceip');
    const before = capture.counters();
    drain();
    const frames: Buffer[] = [
      buildFrame({ src: '10.1.2.3', dst: '10.1.2.4', proto: 17, payload: new Uint8Array(10) }),
      ipv6Frame('2001:db8::1', '2001:db8:0:0:1::2', 58, 8),
      // Hop-by-hop (8) then destination options (16) then UDP.
      ipv6Frame('fe80::1', 'ff02::16', 17, 8, [[0, 8], [60, 16]]),
      // A fragment header (8) then ICMPv6; routing (24) then TCP; AH (12 + 4 padding = 16) then TCP.
      ipv6Frame('2001:db8::a', '2001:db8::b', 58, 8, [[44, 8]]),
      ipv6Frame('2001:db8::a', '2001:db8::b', 6, 20, [[43, 24]]),
      ipv6Frame('2001:db8::a', '2001:db8::b', 6, 20, [[51, 16]]),
      // A destination-options header that runs past the end: the walk stops at it (60).
      ipv6Frame('2001:db8::c', '2001:db8::d', 17, 0, [[60, 8]]).subarray(0, 14 + 40 + 4),
      // Not reported: ARP, an IPv6 header cut short, an IPv6 EtherType with version 4, IPv4 with ihl 4.
      Buffer.concat([Buffer.from([...MAC, 0x08, 0x06]), Buffer.alloc(28)]),
      ipv6Frame('2001:db8::1', '2001:db8::2', 58, 8).subarray(0, 14 + 39),
      (() => { const f = ipv6Frame('2001:db8::1', '2001:db8::2', 58, 8); f[14] = 0x40; return f; })(),
      (() => { const f = buildFrame({ src: '10.1.2.3', dst: '10.1.2.4', proto: 1 }); f[14] = 0x44; return f; })(),
    ];
    for (const f of frames) expect(prog.testRun({ data: f }).retval).toBe(XdpAction.PASS);
    expect(drain().map(brief)).toEqual([
      '4 10.1.2.3 > 10.1.2.4 17 38',
      '6 2001:db8::1 > 2001:db8::1:0:0:2 58 48', // two equal runs: the leftmost is compressed
      '6 fe80::1 > ff02::16 17 72',
      '6 2001:db8::a > 2001:db8::b 58 56',
      '6 2001:db8::a > 2001:db8::b 6 84',
      '6 2001:db8::a > 2001:db8::b 6 76',
      '6 2001:db8::c > 2001:db8::d 60 48', // payload_len says 8, only 4 of them are there
    ]);
    const after = capture.counters();
    expect(after.ipv4 - before.ipv4).toBe(1);
    expect(after.ipv6 - before.ipv6).toBe(6);
    expect(after.events - before.events).toBe(7);
    expect(after.lost).toBe(0);
  });

  it('test run: the 16 address bytes reach user space in wire order (the seed printed them byte-swapped per group)', () => {
    drain();
    obj.program('sourceip').testRun({ data: ipv6Frame('fd00:1234:5678:9abc:def0:1:2:3', '::1', 59, 0) });
    const [p] = drain();
    expect(p.src).toBe('fd00:1234:5678:9abc:def0:1:2:3');
  });

  it('a full ring counts every event it could not take: 4 KiB hold 73 records of 56 bytes, the other 127 of 200 are lost', () => {
    const small = BpfObject.open(ensureObject('sourceip'));
    try {
      small.setMaxEntries('events', 4096);
      small.load();
      const c = openSourceCapture(small);
      try {
        small.program('sourceip').testRun({ data: ipv6Frame('2001:db8::1', '2001:db8::2', 58, 8), repeat: 200 });
        expect(c.counters()).toEqual({ ipv4: 0, ipv6: 200, events: 73, lost: 127 });
        let n = 0;
        c.reader.read(() => { n++; });
        expect(n).toBe(73);
      } finally {
        c.reader.close();
      }
    } finally {
      small.close();
    }
  });

  it('the lab has IPv6 only where asked: a ULA /64 on both ends, derived from the /30 slot', () => {
    const slot = (parseIpv4(lab.hostIp) - parseIpv4('10.201.0.0') - 1) / 4;
    expect(lab.hostIp6).toBe(`${ULA_PREFIX}:${slot.toString(16)}::1`);
    expect(lab.peerIp6).toBe(`${ULA_PREFIX}:${slot.toString(16)}::2`);
  });

  it('the loader shows IPv4 and IPv6 pings from the peer with their exact addresses, then the per-source summary', async () => {
    const p = startLoader('sourceip', [lab.hostIf, '--json']);
    await p.waitFor('attached');
    expect(queryXdp(lab.hostIf).map((x) => x.name)).toEqual(['sourceip']);
    expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
    expect(await ping6(lab.ns, lab.hostIp6!, 3)).toBe(3);
    const ours = () => p.stdout().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((o) => o.src === lab.peerIp || o.src === lab.peerIp6);
    expect(await eventually(() => ours().length >= 5)).toBe(true);
    expect(await p.stop('SIGINT')).toEqual({ code: 0, signal: null });
    const rows = ours().map(({ time, ...rest }) => { expect(Number.isNaN(Date.parse(String(time)))).toBe(false); return rest; });
    const v4 = { family: 4, src: lab.peerIp, dst: lab.hostIp, proto: 'icmp', len: 84 };
    const v6 = { family: 6, src: lab.peerIp6, dst: lab.hostIp6, proto: 'icmpv6', len: 104 };
    expect(rows).toEqual([v4, v4, v6, v6, v6]);
    expect(lab.peerIp6).toMatch(/^fd6c:6274:7300:[0-9a-f]{1,4}::2$/); // RFC 5952: lowercase, zeros compressed
    const err = p.stderr();
    expect(err).toMatch(new RegExp(`\\n${lab.peerIp6!.replaceAll('.', '\\.')} +IPv6 +3 +312\\n`));
    expect(err).toMatch(new RegExp(`\\n${lab.peerIp.replaceAll('.', '\\.')} +IPv4 +2 +168\\n`));
    expect(err).toMatch(/\n\d+ IPv4 and \d+ IPv6 packets seen, \d+ events, 0 lost \(ring full\)\ndetached\n$/);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('prints text lines and stops by itself after --count', async () => {
    const p = startLoader('sourceip', [lab.hostIf, '--count', '2']);
    await p.waitFor('attached');
    await ping6(lab.ns, lab.hostIp6!, 3);
    expect(await p.exited, p.stderr()).toEqual({ code: 0, signal: null });
    const lines = p.stdout().trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^\d\d:\d\d:\d\d\.\d{3} IPv6 \S+ -> \S+ \S+ \d+ bytes$/);
    expect(lines.filter((l) => l.includes(`IPv6 ${lab.peerIp6} -> ${lab.hostIp6} icmpv6 104 bytes`)).length).toBeGreaterThan(0);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('killed with SIGKILL, it leaves nothing attached or loaded', async () => {
    const p = startLoader('sourceip', [lab.hostIf]);
    await p.waitFor('attached');
    const [x] = queryXdp(lab.hostIf);
    expect(x.name).toBe('sourceip');
    expect(await p.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await eventually(() => queryXdp(lab.hostIf).length === 0, 10_000)).toBe(true);
    expect(await eventually(() => !programLoaded(x.id), 10_000)).toBe(true);
  });
});
