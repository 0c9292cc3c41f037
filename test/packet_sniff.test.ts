/**
 * packet_sniff: the user side's pure parts (decoding struct packet_data,
 * flags, wall-clock conversion, per-packet lines, statistics blocks), then
 * on a real kernel: crafted frames through BPF_PROG_TEST_RUN (SYN, FIN, RST,
 * fragments, low TTL, IP options, non-IPv4, truncated headers) read back from
 * the ring after each run, with the counters; real UDP, TCP and ping from the
 * peer namespace of a lab veth give exact statistics and wall-clock times;
 * the loader's output, and a SIGKILLed loader leaves nothing attached.
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, parseIpv4, queryXdp, XdpAction, type Attachment, type PerCpuMap, type RingBufReader } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { lessonCommand } from '../src/cli/lesson.js';
import {
  addSniffOptions, Flag, flagNames, formatClock, formatPacket, openSniffRing, PacketData, packetJson, percent, readStats, renderStats,
  SniffStats, statsBlock, statsJson, statsMap, WallClock, type PacketDataValue, type SniffStatsValue,
} from '../src/lessons/packet_sniff.js';
import { pairLab, ping, runNs, sendTcpConnect, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, programLoaded, startLoader, stopAllLoaders } from './helpers/loader.js';
import { buildFrame, type FrameSpec } from './helpers/packets.js';

const pkt = (o: Partial<PacketDataValue>): PacketDataValue => ({ ...PacketData.zero(), ...o });
const stats = (o: Partial<SniffStatsValue>): SniffStatsValue => ({ ...SniffStats.zero(), ...o });
/** A clock whose CLOCK_MONOTONIC is 1000 s when the wall clock is 2026-01-02T03:04:05.000Z. */
const fixedClock = () => new WallClock(() => Date.parse('2026-01-02T03:04:05.000Z'), () => 1_000_000_000_000n);

describe('packet_sniff user side', () => {
  it('decodes struct packet_data: 32 bytes, addresses and ports from network order', () => {
    expect(PacketData.size).toBe(32);
    const b = Buffer.alloc(32);
    b.writeBigUInt64LE(123456789012345n, 0);
    b.set([10, 0, 0, 2, 10, 0, 0, 1, 0x9c, 0x40, 0x00, 0x50], 8);
    b.writeUInt32LE(74, 20);
    b[24] = 6;
    b[25] = 5;
    b.writeUInt16LE(Flag.SYN | Flag.LOW_TTL, 26);
    expect(PacketData.decode(b)).toEqual({
      timestamp: 123456789012345, src_ip: parseIpv4('10.0.0.2'), dst_ip: parseIpv4('10.0.0.1'),
      src_port: 40000, dst_port: 80, packet_size: 74, protocol: 6, ttl: 5, flags: 0x12,
    });
    expect(SniffStats.size).toBe(40);
  });

  it('names the flags in a fixed order', () => {
    expect(flagNames(0)).toEqual([]);
    expect(flagNames(0x73)).toEqual(['FRAG', 'LOW_TTL', 'SYN', 'FIN', 'RST']);
    expect(flagNames(Flag.RST | Flag.FRAG)).toEqual(['FRAG', 'RST']);
  });

  it('turns CLOCK_MONOTONIC timestamps into wall-clock times through the offset it reads', () => {
    const c = fixedClock();
    expect(c.toDate(1_000_000_000_000).toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(c.toDate(1_000_250_000_000).toISOString()).toBe('2026-01-02T03:04:05.250Z');
    // The real clocks: now in CLOCK_MONOTONIC is now on the wall clock, to the millisecond.
    const real = new WallClock();
    expect(Math.abs(real.toEpochMs(Number(process.hrtime.bigint())) - Date.now())).toBeLessThan(5);
    expect(formatClock(new Date(2026, 0, 2, 3, 4, 5, 67))).toBe('03:04:05.067');
  });

  it('renders one line per packet and NDJSON: ports only when there are, flags in brackets', () => {
    const c = fixedClock();
    const t = formatClock(c.toDate(1_000_000_000_000));
    const syn = pkt({ timestamp: 1_000_000_000_000, src_ip: parseIpv4('10.0.0.2'), dst_ip: parseIpv4('10.0.0.1'), src_port: 40000, dst_port: 80, packet_size: 74, protocol: 6, ttl: 64, flags: Flag.SYN });
    expect(formatPacket(syn, c)).toBe(`${t} TCP  10.0.0.2:40000 -> 10.0.0.1:80 74 bytes ttl 64 [SYN]`);
    const icmp = pkt({ timestamp: 1_000_000_000_000, src_ip: parseIpv4('10.0.0.2'), dst_ip: parseIpv4('10.0.0.1'), packet_size: 98, protocol: 1, ttl: 5, flags: Flag.LOW_TTL });
    expect(formatPacket(icmp, c)).toBe(`${t} ICMP 10.0.0.2 -> 10.0.0.1 98 bytes ttl 5 [LOW_TTL]`);
    const frag = pkt({ ...syn, protocol: 17, src_port: 0, dst_port: 0, flags: Flag.FRAG });
    expect(formatPacket(frag, c)).toBe(`${t} UDP  10.0.0.2 -> 10.0.0.1 74 bytes ttl 64 [FRAG]`);
    expect(formatPacket({ ...icmp, protocol: 253, flags: 0 }, c)).toBe(`${t} 253  10.0.0.2 -> 10.0.0.1 98 bytes ttl 5`);
    expect(packetJson(syn, c)).toBe('{"type":"packet","time":"2026-01-02T03:04:05.000Z","proto":"tcp","src_ip":"10.0.0.2","src_port":40000,"dst_ip":"10.0.0.1","dst_port":80,"size":74,"ttl":64,"flags":["SYN"]}');
    expect(packetJson(frag, c)).toBe('{"type":"packet","time":"2026-01-02T03:04:05.000Z","proto":"udp","src_ip":"10.0.0.2","dst_ip":"10.0.0.1","size":74,"ttl":64,"flags":["FRAG"]}');
  });

  it('builds statistics blocks: rate over the interval, shares of the total', () => {
    expect(percent(1, 4)).toBe(25);
    expect(percent(0, 0)).toBe(0);
    const time = new Date(2026, 0, 2, 3, 4, 5, 0);
    const s = statsBlock(stats({ total: 20, tcp: 5, udp: 10, other: 5, ring_full: 1 }), stats({ total: 10 }), 2, 6, 19, time);
    expect(s.rate).toBe(5);
    expect(s.shares).toEqual({ tcp: 25, udp: 50, other: 25 });
    expect(renderStats(s)).toEqual([
      '=== statistics at 03:04:05.000: 5.0 packets/s over 2.0 s, running 6.0 s ===',
      'total             20',
      'tcp                5    25.0%',
      'udp               10    50.0%',
      'other              5    25.0%',
      '19 events read, 1 lost (ring full)',
      '',
    ]);
    expect(renderStats(s, 'final statistics')[0]).toMatch(/^=== final statistics at /);
    expect(JSON.parse(statsJson(s))).toEqual({
      type: 'stats', time: time.toISOString(), elapsed: 2, running: 6, total: 20, tcp: 5, udp: 10, other: 5, ring_full: 1,
      events: 19, rate: 5, shares: { tcp: 25, udp: 50, other: 25 },
    });
    const empty = statsBlock(stats({}), stats({}), 1, 1, 0, time);
    expect(empty.shares).toEqual({ tcp: 0, udp: 0, other: 0 });
    expect(JSON.parse(statsJson(empty, 'summary')).type).toBe('summary');
  });
});

describe('packet_sniff command line', () => {
  const loader = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'packet_sniff.ts'), ...args],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });

  it('answers --help on stdout with exit 0', () => {
    const r = loader(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: packet_sniff \[options\] <iface>\n[^]*-v, --verbose +one line per packet[^]*--stats <seconds>/);
  });

  it('refuses bad usage with exit 2 before touching the kernel', () => {
    for (const args of [['lo', '--stats', '0'], ['lo', '--stats', '3000000'], ['lo', '--bogus'], []]) {
      const r = loader(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error: /);
    }
  });

  it('parses --stats into seconds, 10 by default', () => {
    const spec = { lesson: 'packet_sniff', description: 'test', json: true, options: addSniffOptions, run: async () => {} };
    const parse = (args: string[]) => lessonCommand(spec).configureOutput({ writeErr: () => {}, writeOut: () => {} }).parse(args, { from: 'user' }).opts();
    expect(parse(['veth0'])).toMatchObject({ stats: 10, verbose: false, json: false });
    expect(parse(['veth0', '-v', '--stats', '2.5', '--json'])).toMatchObject({ stats: 2.5, verbose: true, json: true });
    expect(() => parse(['veth0', '--stats', 'soon'])).toThrow(/is not a positive number of seconds/);
  });
});

describe.skipIf(!kernelTests())('packet_sniff on a real kernel', () => {
  let lab: PairLab;
  let obj: BpfObject;
  let map: PerCpuMap<number, SniffStatsValue>;
  let ring: RingBufReader<PacketDataValue>;
  let link: Attachment | undefined;

  beforeAll(async () => {
    lab = await pairLab('snf');
    obj = BpfObject.open(ensureObject('packet_sniff'));
    obj.setMaxEntries('packet_ringbuf', 1 << 20);
    obj.load();
    map = statsMap(obj);
    ring = openSniffRing(obj, map);
  });
  afterAll(async () => {
    await stopAllLoaders();
    link?.detach();
    ring?.close();
    obj?.close();
    await lab?.down();
  });

  const drain = (): PacketDataValue[] => {
    const got: PacketDataValue[] = [];
    ring.read((e) => got.push(e));
    return got;
  };

  /** Runs one frame through the program; returns the events it put in the ring and the counters' change. */
  function run(frame: Uint8Array): { events: PacketDataValue[]; delta: SniffStatsValue; before: bigint; after: bigint } {
    drain();
    const s0 = readStats(map);
    const before = process.hrtime.bigint();
    const r = obj.program('packet_sniff').testRun({ data: frame });
    const after = process.hrtime.bigint();
    expect(r.retval).toBe(XdpAction.PASS);
    const s1 = readStats(map);
    const delta = SniffStats.zero();
    for (const k of Object.keys(delta) as Array<keyof SniffStatsValue>) delta[k] = s1[k] - s0[k];
    return { events: drain(), delta, before, after };
  }

  const base: FrameSpec = { src: '10.1.2.3', dst: '10.4.5.6', proto: 6, sport: 40000, dport: 80, ttl: 64 };
  const one = (spec: Partial<FrameSpec>) => {
    const frame = buildFrame({ ...base, ...spec });
    const r = run(frame);
    expect(r.events).toHaveLength(1);
    expect(r.delta.total).toBe(1);
    return { e: r.events[0], frame, ...r };
  };

  it('a TCP SYN: every field, the SYN flag, and a timestamp from CLOCK_MONOTONIC', () => {
    const { e, frame, delta, before, after } = one({ tcpFlags: 0x02 });
    expect({ ...e, timestamp: 0 }).toEqual({
      timestamp: 0, src_ip: parseIpv4('10.1.2.3'), dst_ip: parseIpv4('10.4.5.6'), src_port: 40000, dst_port: 80,
      packet_size: frame.length, protocol: 6, ttl: 64, flags: Flag.SYN,
    });
    expect(frame.length).toBe(14 + 20 + 20);
    // bpf_ktime_get_ns() and process.hrtime read the same clock: the stamp falls between two readings around the run.
    expect(BigInt(e.timestamp)).toBeGreaterThanOrEqual(before);
    expect(BigInt(e.timestamp)).toBeLessThanOrEqual(after);
    expect(delta).toEqual(stats({ total: 1, tcp: 1 }));
  });

  it('FIN (with ACK), RST, and a plain ACK carry their flags only', () => {
    expect(flagNames(one({ tcpFlags: 0x11 }).e.flags)).toEqual(['FIN']);
    expect(flagNames(one({ tcpFlags: 0x04 }).e.flags)).toEqual(['RST']);
    expect(flagNames(one({ tcpFlags: 0x14 }).e.flags)).toEqual(['RST']);
    expect(flagNames(one({ tcpFlags: 0x10 }).e.flags)).toEqual([]);
  });

  it('fragments: the first (MF, offset 0) has ports and flags, a later one (offset > 0) neither', () => {
    const first = one({ proto: 17, sport: 5353, dport: 53, mf: true, df: false, payload: new Uint8Array(16) });
    expect(first.e).toMatchObject({ protocol: 17, src_port: 5353, dst_port: 53, flags: Flag.FRAG });
    expect(first.delta).toEqual(stats({ total: 1, udp: 1 }));
    // The bytes where a UDP header would be are payload: no ports from them.
    const later = one({ proto: 17, sport: 5353, dport: 53, mf: false, df: false, fragOffset: 3 });
    expect(later.e).toMatchObject({ protocol: 17, src_port: 0, dst_port: 0, flags: Flag.FRAG });
    // A later TCP fragment whose payload looks like SYN|FIN|RST: no TCP flags, no ports.
    const tcp = one({ tcpFlags: 0x07, mf: true, df: false, fragOffset: 185 });
    expect(tcp.e).toMatchObject({ protocol: 6, src_port: 0, dst_port: 0, flags: Flag.FRAG });
    expect(tcp.delta).toEqual(stats({ total: 1, tcp: 1 }));
  });

  it('TTL 5 and 9 are LOW_TTL, 10 is not', () => {
    expect(one({ ttl: 5, proto: 1 }).e).toMatchObject({ ttl: 5, flags: Flag.LOW_TTL, protocol: 1 });
    expect(one({ ttl: 9, tcpFlags: 0x02 }).e.flags).toBe(Flag.LOW_TTL | Flag.SYN);
    expect(one({ ttl: 10, proto: 1 }).e.flags).toBe(0);
    expect(one({ ttl: 5, proto: 1 }).delta).toEqual(stats({ total: 1, other: 1 }));
  });

  it('IP options (ihl > 5): ports read after the options', () => {
    const opts = new Uint8Array([1, 1, 1, 1, 1, 1, 1, 0]); // NOPs, End of Options: ihl 7
    const { e, frame } = one({ options: opts, sport: 41000, dport: 443, tcpFlags: 0x02 });
    expect(frame[14] & 15).toBe(7);
    expect(e).toMatchObject({ src_port: 41000, dst_port: 443, flags: Flag.SYN, packet_size: 14 + 28 + 20 });
    const udp = one({ options: opts, proto: 17, sport: 41001, dport: 53 });
    expect(udp.e).toMatchObject({ src_port: 41001, dst_port: 53, protocol: 17 });
  });

  it('a truncated TCP header is counted as TCP, without ports or flags', () => {
    const frame = buildFrame({ ...base, tcpFlags: 0x02 }).subarray(0, 14 + 20 + 10);
    const r = run(frame);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ protocol: 6, src_port: 0, dst_port: 0, flags: 0, packet_size: 44 });
    expect(r.delta).toEqual(stats({ total: 1, tcp: 1 }));
  });

  it('ARP, IPv6, an ihl below 5 and a cut IP header are not IPv4 packets: no event, not counted', () => {
    const arp = buildFrame({ ...base, etherType: 0x0806 });
    const ipv6 = buildFrame({ ...base, etherType: 0x86dd });
    const badIhl = buildFrame(base);
    badIhl[14] = 0x44;
    const cut = buildFrame(base).subarray(0, 14 + 16);
    const ethOnly = buildFrame(base).subarray(0, 14); // the smallest frame a test run takes
    for (const f of [arp, ipv6, badIhl, cut, ethOnly]) {
      const r = run(f);
      expect(r.events).toEqual([]);
      expect(r.delta).toEqual(stats({}));
    }
  });

  it('a full ring: the events that find no room are counted in ring_full, none silently lost', () => {
    const small = BpfObject.open(ensureObject('packet_sniff'));
    try {
      small.setMaxEntries('packet_ringbuf', 4096);
      small.load();
      const m = statsMap(small);
      const r = openSniffRing(small, m);
      try {
        small.program('packet_sniff').testRun({ data: buildFrame(base), repeat: 200 });
        // 4096 bytes hold 102 records of 8 (header) + 32 bytes; the other 98 found the ring full.
        expect(readStats(m)).toEqual(stats({ total: 200, tcp: 200, ring_full: 98 }));
        expect(r.read(() => {})).toBe(102);
        expect(r.lost).toBe(98);
      } finally {
        r.close();
      }
    } finally {
      small.close();
    }
  });

  it('real traffic from the peer: statistics equal the packets sent, times within a second of the wall clock', async () => {
    link = obj.program('packet_sniff').attachXdp(lab.hostIf, { mode: 'skb' });
    try {
      drain();
      // Forget the peer's neighbour entry: its ARP request reaches the interface too, and is not counted.
      await runNs(lab.ns, ['ip', 'neigh', 'flush', 'dev', lab.peerIf]);
      const s0 = readStats(map);
      const t0 = Date.now();
      await sendUdp(lab.ns, lab.hostIp, 9000, 3, 18, 40101);
      expect(await sendTcpConnect(lab.ns, lab.hostIp, 9001, 1, 0, 40102)).toBe(0); // refused: only the SYN comes in
      expect(await ping(lab.ns, lab.hostIp, 2)).toBe(2);
      // From the host to a closed port of the peer: the peer's RST comes in.
      const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
        const s = connect({ host: lab.peerIp, port: 9002, localPort: 40103 });
        s.on('connect', () => { s.destroy(); reject(new Error('connected to a closed port')); });
        s.on('error', resolve);
      });
      expect(err.code).toBe('ECONNREFUSED');
      const t1 = Date.now();
      const got: PacketDataValue[] = [];
      expect(await eventually(() => { got.push(...drain()); return got.length >= 7; }, 5000)).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
      got.push(...drain());
      const s1 = readStats(map);
      expect({ total: s1.total - s0.total, tcp: s1.tcp - s0.tcp, udp: s1.udp - s0.udp, other: s1.other - s0.other, ring_full: s1.ring_full - s0.ring_full })
        .toEqual({ total: 7, tcp: 2, udp: 3, other: 2, ring_full: 0 });
      const clock = new WallClock();
      const lines = got.map((e) => {
        const ms = clock.toEpochMs(e.timestamp);
        expect(ms).toBeGreaterThanOrEqual(t0 - 1000);
        expect(ms).toBeLessThanOrEqual(t1 + 1000);
        return JSON.parse(packetJson(e, clock)) as Record<string, unknown>;
      }).map(({ time: _t, ...rest }) => JSON.stringify(rest)).sort();
      const j = (o: Record<string, unknown>) => JSON.stringify({ type: 'packet', ...o });
      const udp = j({ proto: 'udp', src_ip: lab.peerIp, src_port: 40101, dst_ip: lab.hostIp, dst_port: 9000, size: 14 + 20 + 8 + 18, ttl: 64, flags: [] });
      const syn = j({ proto: 'tcp', src_ip: lab.peerIp, src_port: 40102, dst_ip: lab.hostIp, dst_port: 9001, size: 14 + 60, ttl: 64, flags: ['SYN'] });
      const rst = j({ proto: 'tcp', src_ip: lab.peerIp, src_port: 9002, dst_ip: lab.hostIp, dst_port: 40103, size: 14 + 40, ttl: 64, flags: ['RST'] });
      const icmp = j({ proto: 'icmp', src_ip: lab.peerIp, dst_ip: lab.hostIp, size: 14 + 84, ttl: 64, flags: [] });
      expect(lines).toEqual([udp, udp, udp, syn, rst, icmp, icmp].sort());
    } finally {
      link.detach();
      link = undefined;
    }
  });

  it('the loader: -v lines, a statistics block per --stats interval, the final statistics, --json', async () => {
    const p = startLoader('packet_sniff', [lab.hostIf, '--json', '-v', '--stats', '1']);
    await p.waitFor('attached');
    await sendUdp(lab.ns, lab.hostIp, 9000, 2, 10, 40201);
    expect(await ping(lab.ns, lab.hostIp, 1)).toBe(1);
    await p.waitForStdout(/"type":"stats"/, 5000);
    expect(await p.stop('SIGINT')).toEqual({ code: 0, signal: null });
    const objs = p.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const packets = objs.filter((o) => o.type === 'packet');
    expect(packets.map((o) => o.proto).sort()).toEqual(['icmp', 'udp', 'udp']);
    for (const o of packets) expect(Math.abs(Date.parse(o.time as string) - Date.now())).toBeLessThan(10_000);
    const last = objs[objs.length - 1];
    expect(last).toMatchObject({ type: 'summary', total: 3, tcp: 0, udp: 2, other: 1, ring_full: 0, events: 3 });
    expect(last.shares).toEqual({ tcp: 0, udp: 66.667, other: 33.333 });
    expect(objs.filter((o) => o.type === 'stats').length).toBeGreaterThanOrEqual(1);
    expect(p.stderr()).toMatch(/attached xdp packet_sniff on \S+ \(skb mode\); Ctrl-C to stop\n[^]*detached\n$/);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('the text output: a block with shares, and the final statistics after "detached"', async () => {
    const p = startLoader('packet_sniff', [lab.hostIf, '--stats', '60']);
    await p.waitFor('attached');
    await sendUdp(lab.ns, lab.hostIp, 9000, 1, 10, 40301);
    await sendTcpConnect(lab.ns, lab.hostIp, 9001, 1, 0, 40302);
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(p.stdout()).toMatch(/^=== final statistics at [\d:.]+: [\d.]+ packets\/s over [\d.]+ s, running [\d.]+ s ===\ntotal {14}2\ntcp {16}1 {4}50\.0%\nudp {16}1 {4}50\.0%\nother {14}0 {5}0\.0%\n2 events read, 0 lost \(ring full\)\n\n$/);
  });

  it('piped into head -n 2, it exits 0 on EPIPE and leaves nothing attached', async () => {
    const loader = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'loaders', 'packet_sniff.ts'), lab.hostIf, '--json', '-v'].join(' ');
    const sh = spawn('bash', ['-c', `${loader} | head -n 2; echo "loader exit \${PIPESTATUS[0]}" >&2`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    sh.stdout.on('data', (d) => { out += String(d); });
    sh.stderr.on('data', (d) => { err += String(d); });
    let done = false;
    const closed = new Promise<void>((resolve) => sh.on('close', () => { done = true; resolve(); }));
    try {
      expect(await eventually(() => err.includes('attached'), 30_000)).toBe(true);
      for (let i = 0; i < 40 && !done; i++) await ping(lab.ns, lab.hostIp, 2);
      await closed;
    } finally {
      if (!done) sh.kill('SIGKILL');
    }
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ type: 'packet', proto: 'icmp', src_ip: lab.peerIp, dst_ip: lab.hostIp, size: 98 });
    expect(err).toMatch(/detached\nloader exit 0\n$/);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('killed with SIGKILL, it leaves nothing attached or loaded', async () => {
    const p = startLoader('packet_sniff', [lab.hostIf]);
    await p.waitFor('attached');
    const [x] = queryXdp(lab.hostIf);
    expect(x.name).toBe('packet_sniff');
    expect(await p.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await eventually(() => queryXdp(lab.hostIf).length === 0, 10_000)).toBe(true);
    expect(await eventually(() => !programLoaded(x.id), 10_000)).toBe(true);
  });
});
