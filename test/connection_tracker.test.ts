/**
 * connection_tracker: the struct codecs, snapshots, tables and JSON of the
 * user side, then the lesson's concepts on a real kernel:
 *   1. padding: a key whose pad bytes are not zero misses the entry that the
 *      zeroed key hits (and becomes a second entry for the "same" flow);
 *   2. several flows from the peer namespace, each with a known packet
 *      count and size, give exact packets and bytes (tot_len), proto set;
 *   3. key iteration and batch lookup return the same entries;
 * and the loader as a user runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, BpfMap, BpfObject, MapType, XdpAction, bytes, parseIpv4, queryXdp, struct, u32 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import {
  CONN_TABLE_MAP, CONN_TABLE_SIZE, ConnTracker, connKey, connStats, connTable, flowId, flowJson, flowSnapshot, renderFlowTable, sharedLayouts, untrackedCounter,
  type ConnKey, type ConnStats,
} from '../src/lessons/connection_tracker.js';
import { ipv4Frame } from '../src/lessons/packet_inspect.js';
import { pairLab, runNs, sendUdp, type PairLab } from '../src/lab/index.js';
import { kernelTests } from './helpers/kernel.js';
import { eventually, startLoader } from './helpers/loader.js';

const key = (src: string, dst: string, proto: number): ConnKey => ({ src_ip: parseIpv4(src), dst_ip: parseIpv4(dst), proto });

describe('connection_tracker user side', () => {
  it('mirrors struct conn_key and struct conn_stats byte for byte', () => {
    expect(connKey.layout).toEqual({
      name: 'conn_key', size: 12, align: 4,
      fields: [
        { name: 'src_ip', offset: 0, size: 4 }, { name: 'dst_ip', offset: 4, size: 4 },
        { name: 'proto', offset: 8, size: 1 }, { name: 'pad', offset: 9, size: 3 },
      ],
    });
    expect(connStats.layout.size).toBe(16);
    // Leaving the pad out does not make the key 9 bytes: the compiler would pad it to 12 behind
    // our back, so the codec refuses the declaration.
    expect(() => struct('conn_key', { src_ip: 'be32', dst_ip: 'be32', proto: 'u8' })).toThrow(TypeError);
    expect(sharedLayouts.map((l) => [l.object, l.cName, l.codec.layout.size])).toEqual([
      ['connection_tracker', 'conn_key', 12], ['connection_tracker', 'conn_stats', 16],
    ]);
  });

  it('encodes addresses in network order and always zeroes the pad, whatever the buffer held', () => {
    const buf = Buffer.alloc(12, 0xee);
    connKey.encode(key('10.201.0.2', '10.201.0.1', 17), buf);
    expect([...buf]).toEqual([10, 201, 0, 2, 10, 201, 0, 1, 17, 0, 0, 0]);
    expect(connKey.decode(buf)).toEqual({ src_ip: 0x0ac90002, dst_ip: 0x0ac90001, proto: 17 });
  });

  it('builds a snapshot sorted by bytes with per-flow rates, and renders the top N', () => {
    const a = key('10.0.0.2', '10.0.0.1', 17);
    const b = key('10.0.0.2', '10.0.0.1', 1);
    const c = key('10.0.0.3', '255.255.255.255', 17);
    const entries: Array<[ConnKey, ConnStats]> = [[a, { packets: 10, bytes: 1000 }], [b, { packets: 4, bytes: 5000 }], [c, { packets: 1, bytes: 78 }]];
    const prev = new Map([[flowId(a), { packets: 6, bytes: 600 }]]);
    const t = new Date('2025-01-02T03:04:05.000Z');
    const s = flowSnapshot(entries, prev, 2, 'batch', t);
    expect(s.rows.map((r) => [r.src, r.dst, r.protoName, r.packets, r.bytes, r.packetsPerSec, r.bytesPerSec])).toEqual([
      ['10.0.0.2', '10.0.0.1', 'icmp', 4, 5000, 2, 2500],
      ['10.0.0.2', '10.0.0.1', 'udp', 10, 1000, 2, 200],
      ['10.0.0.3', '255.255.255.255', 'udp', 1, 78, 0.5, 39],
    ]);
    expect([s.packets, s.bytes]).toEqual([15, 6078]);
    expect(renderFlowTable(s, 2)).toEqual([
      '03:04:05  3 flows (batch lookup), last 2.0 s, top 2 by bytes',
      'src              dst              proto         packets        bytes    pkt/s      B/s',
      '10.0.0.2         10.0.0.1         icmp (1)            4         5000      2.0    2.50k',
      '10.0.0.2         10.0.0.1         udp (17)           10         1000      2.0    200.0',
      'total                                                15         6078',
      '',
    ]);
    expect(renderFlowTable(s)[0]).toBe('03:04:05  3 flows (batch lookup), last 2.0 s');
    expect(renderFlowTable(flowSnapshot([], new Map(), 3, 'iterate', t))[0]).toBe('03:04:05  0 flows (key iteration), last 3.0 s');
    const j = JSON.parse(flowJson(s, 1));
    expect(j).toEqual({
      time: '2025-01-02T03:04:05.000Z', elapsed: 2, method: 'batch', flows: 3, packets: 15, bytes: 6078,
      top: [{ src: '10.0.0.2', dst: '10.0.0.1', proto: 1, protoName: 'icmp', packets: 4, bytes: 5000, packetsPerSec: 2, bytesPerSec: 2500 }],
    });
    // What the kernel could not track is shown, in the table and the JSON.
    const full = flowSnapshot(entries, prev, 2, 'batch', t, 7);
    expect(renderFlowTable(full, 1).at(-2)).toBe('untracked: 7 packets of new flows found the table full (3 flows); they are not in the table');
    expect(JSON.parse(flowJson(full, 0))).toMatchObject({ flows: 3, untracked: 7, top: [] });
    expect(renderFlowTable(flowSnapshot(entries, prev, 2, 'batch', t, 0)).some((l) => l.startsWith('untracked'))).toBe(false);
  });

  it('tells flows apart by every key field', () => {
    const ids = new Set([key('1.2.3.4', '5.6.7.8', 6), key('1.2.3.4', '5.6.7.8', 17), key('5.6.7.8', '1.2.3.4', 6), key('1.2.3.5', '5.6.7.8', 6)].map(flowId));
    expect(ids.size).toBe(4);
  });
});

/** Sends `count` datagrams of IP protocol `proto` (raw socket, `payloadLen` bytes) from namespace `ns`. */
async function sendRaw(ns: string, dst: string, proto: number, count: number, payloadLen: number): Promise<void> {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,${proto})\nfor i in range(${count}): s.sendto(b'r'*${payloadLen},('${dst}',0))`;
  await runNs(ns, ['python3', '-c', py]);
}

/** Sends `count` UDP datagrams to 255.255.255.255 out of `ifname` only (limited broadcast: it never leaves the link). */
async function sendBroadcast(ns: string, ifname: string, port: number, count: number, payloadLen: number): Promise<void> {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'${ifname}')\nfor i in range(${count}): s.sendto(b'b'*${payloadLen},('255.255.255.255',${port}))`;
  await runNs(ns, ['python3', '-c', py]);
}

/** Pings with `size` bytes of ICMP payload; resolves with the replies received. */
async function pingSized(ns: string, ip: string, count: number, size: number): Promise<number> {
  const { stdout } = await runNs(ns, ['ping', '-c', String(count), '-s', String(size), '-i', '0.01', '-W', '1', '-q', ip]);
  return Number(/(\d+) received/.exec(stdout)?.[1] ?? 0);
}

const sortEntries = <K, V>(e: Array<[K, V]>) => e.map(([k, v]) => JSON.stringify([k, v])).sort();

describe.skipIf(!kernelTests())('connection_tracker on a real kernel', () => {
  let lab: PairLab;
  beforeAll(async () => { lab = await pairLab('ctrk'); });
  afterAll(async () => { await lab?.down(); });

  it('the padding lesson: a key with non-zero pad bytes misses the entry the zeroed key hits', () => {
    using obj = BpfObject.load(ensureObject('connection_tracker'));
    const table = connTable(obj);
    expect([table.type, table.keySize, table.valueSize, table.maxEntries]).toEqual([MapType.HASH, 12, 16, CONN_TABLE_SIZE]);
    // The same map seen as raw 12-byte keys, to write pad bytes the struct codec never would.
    const raw = obj.map('conn_table', bytes(12), connStats);
    const prog = obj.program('connection_tracker');
    // The kernel inserts the flow from a crafted packet: its key is zero-initialised, proto set.
    const frame = ipv4Frame({ src: '198.51.100.7', dst: '203.0.113.9', proto: 17, payloadLen: 20 });
    expect(prog.testRun({ data: frame }).retval).toBe(XdpAction.PASS);
    const flow = key('198.51.100.7', '203.0.113.9', 17);
    expect(table.get(flow)).toEqual({ packets: 1, bytes: 40 });
    const zeroed = Uint8Array.from([198, 51, 100, 7, 203, 0, 113, 9, 17, 0, 0, 0]);
    const dirty = Uint8Array.from([198, 51, 100, 7, 203, 0, 113, 9, 17, 0xde, 0xad, 0xbe]);
    expect(raw.get(zeroed)).toEqual({ packets: 1, bytes: 40 });
    expect(raw.get(dirty)).toBeUndefined();
    // Written with garbage in the pad, the "same" flow becomes a second entry...
    raw.set(dirty, { packets: 100, bytes: 100 }, 'noexist');
    const entries = [...table.entries()];
    expect(entries).toHaveLength(2);
    expect(entries.every(([k]) => flowId(k) === flowId(flow))).toBe(true); // indistinguishable once decoded
    // ...that the kernel's packets never reach: they go to the zeroed key.
    prog.testRun({ data: frame, repeat: 9 });
    expect(raw.get(zeroed)).toEqual({ packets: 10, bytes: 400 });
    expect(raw.get(dirty)).toEqual({ packets: 100, bytes: 100 });
    // The proto field is set (the original lesson left it 0 for every flow).
    expect(raw.get(Uint8Array.from([198, 51, 100, 7, 203, 0, 113, 9, 0, 0, 0, 0]))).toBeUndefined();
  });

  it('counts exact packets and bytes (from tot_len) per flow for traffic from the peer namespace', async () => {
    using obj = BpfObject.load(ensureObject('connection_tracker'));
    const table = connTable(obj);
    const link = obj.program('connection_tracker').attachXdp(lab.hostIf);
    let snapshot: Array<[ConnKey, ConnStats]>;
    try {
      await sendUdp(lab.ns, lab.hostIp, 9, 6, 100);
      await sendBroadcast(lab.ns, lab.peerIf, 9, 3, 50);
      expect(await pingSized(lab.ns, lab.hostIp, 4, 200)).toBe(4);
      await sendRaw(lab.ns, lab.hostIp, 253, 5, 33);
      const want = new Map<string, ConnStats>([
        [flowId(key(lab.peerIp, lab.hostIp, 17)), { packets: 6, bytes: 6 * (20 + 8 + 100) }],
        [flowId(key(lab.peerIp, '255.255.255.255', 17)), { packets: 3, bytes: 3 * (20 + 8 + 50) }],
        [flowId(key(lab.peerIp, lab.hostIp, 1)), { packets: 4, bytes: 4 * (20 + 8 + 200) }],
        [flowId(key(lab.peerIp, lab.hostIp, 253)), { packets: 5, bytes: 5 * (20 + 33) }],
      ]);
      const got = () => new Map(table.readAll().entries.map(([k, v]) => [flowId(k), v]));
      await eventually(() => got().get(flowId(key(lab.peerIp, lab.hostIp, 253)))?.packets === 5, 5000);
      expect(got()).toEqual(want);
      snapshot = table.readAll().entries;
    } finally {
      link.detach();
    }
    expect(queryXdp(lab.hostIf)).toEqual([]);
    const s = flowSnapshot(snapshot, new Map(), 1, 'batch');
    expect(s.rows.map((r) => `${r.src} ${r.dst} ${r.protoName} ${r.packets} ${r.bytes}`)).toEqual([
      `${lab.peerIp} ${lab.hostIp} icmp 4 912`,
      `${lab.peerIp} ${lab.hostIp} udp 6 768`,
      `${lab.peerIp} ${lab.hostIp} 253 5 265`,
      `${lab.peerIp} 255.255.255.255 udp 3 234`,
    ]);
  });

  it('key iteration and batch lookup return the same entries', () => {
    using obj = BpfObject.load(ensureObject('connection_tracker'));
    const table = connTable(obj);
    const prog = obj.program('connection_tracker');
    prog.testRun({ data: ipv4Frame({ src: '198.51.100.1', dst: '198.51.100.2', proto: 6, payloadLen: 40 }), repeat: 3 });
    prog.testRun({ data: ipv4Frame({ src: '198.51.100.2', dst: '198.51.100.1', proto: 6, payloadLen: 0 }) });
    // Many more from user space, so the batch read spans several 4096-entry chunks.
    const n = 10_000;
    const fill: Array<[ConnKey, ConnStats]> = [];
    for (let i = 0; i < n; i++) fill.push([{ src_ip: 0x0a000000 + i, dst_ip: 0x0a640001, proto: i % 3 === 0 ? 6 : 17 }, { packets: i + 1, bytes: (i + 1) * 64 }]);
    expect(table.updateBatch(fill)).toBe(n);
    const batch = table.readAll('batch');
    const iter = table.readAll('iterate');
    expect(batch.method).toBe('batch');
    expect(iter.method).toBe('iterate');
    expect(batch.entries).toHaveLength(n + 2);
    expect(sortEntries(batch.entries)).toEqual(sortEntries(iter.entries));
    expect(table.get(key('198.51.100.1', '198.51.100.2', 6))).toEqual({ packets: 3, bytes: 180 });
    // The tracker reads with batch lookups and computes rates against its previous reading.
    const tracker = new ConnTracker(table);
    tracker.snapshot();
    prog.testRun({ data: ipv4Frame({ src: '198.51.100.2', dst: '198.51.100.1', proto: 6, payloadLen: 0 }), repeat: 7 });
    const s = tracker.snapshot();
    expect(s.method).toBe('batch');
    expect(s.rows).toHaveLength(n + 2);
    const back = s.rows.find((r) => r.src === '198.51.100.2' && r.dst === '198.51.100.1')!;
    expect([back.packets, back.bytes]).toEqual([8, 160]);
    expect(back.packetsPerSec).toBeCloseTo(7 / s.elapsed, 6);
    expect(s.rows.filter((r) => r.packetsPerSec !== 0)).toHaveLength(1);
  });

  it('counts the packets of flows that find the table full, and shows them', () => {
    const obj = BpfObject.open(ensureObject('connection_tracker'));
    try {
      obj.setMaxEntries(CONN_TABLE_MAP, 4).load();
      const prog = obj.program('connection_tracker');
      // 6 flows of 3 packets each: 4 fit, the other 2 flows' 6 packets are untracked.
      for (let i = 1; i <= 6; i++) prog.testRun({ data: ipv4Frame({ src: `198.51.100.${i}`, dst: '198.51.100.200', proto: 17, payloadLen: 8 }), repeat: 3 });
      const tracker = new ConnTracker(connTable(obj), untrackedCounter(obj));
      const s = tracker.snapshot();
      expect(s.rows).toHaveLength(4);
      expect(s.rows.every((r) => r.packets === 3)).toBe(true);
      expect(s.untracked).toBe(6);
      expect(JSON.parse(flowJson(s)).untracked).toBe(6);
      expect(renderFlowTable(s)).toContain('untracked: 6 packets of new flows found the table full (4 flows); they are not in the table');
    } finally {
      obj.close();
    }
  });

  it('falls back to key iteration on a map whose kernel side has no batch lookup', () => {
    // A device map has no BPF_MAP_LOOKUP_BATCH (the kernel answers ENOTSUPP); its keys iterate fine.
    using m = BpfMap.create({ type: MapType.DEVMAP, name: 'ct_nobatch', maxEntries: 4 }, u32, u32);
    m.set(2, 1); // slot 2 -> ifindex 1 (lo)
    let err: unknown;
    try { m.lookupBatch(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect(['EINVAL', 'ENOTSUPP', 'EOPNOTSUPP']).toContain((err as BpfError).code);
    expect(m.readAll('batch')).toEqual({ method: 'iterate', entries: [[2, 1]] });
  });

  it('loader: prints the top flows by bytes as JSON, exits 0, leaves nothing attached', async () => {
    const run = startLoader('connection_tracker', [lab.hostIf, '--duration', '3', '--json', '--top', '2']);
    try {
      await run.waitFor('attached');
      await sendUdp(lab.ns, lab.hostIp, 9, 5, 64);
      await sendRaw(lab.ns, lab.hostIp, 253, 2, 8);
      await sendBroadcast(lab.ns, lab.peerIf, 9, 1, 1);
      expect(await run.exited).toEqual({ code: 0, signal: null });
    } finally {
      run.kill('SIGKILL');
    }
    type Flow = { src: string; dst: string; proto: number; protoName: string; packets: number; bytes: number; packetsPerSec: number; bytesPerSec: number };
    const snaps = run.stdout().trim().split('\n').map((l) => JSON.parse(l) as { method: string; flows: number; packets: number; bytes: number; top: Flow[] });
    const last = snaps[snaps.length - 1];
    expect(last.method).toBe('batch');
    expect(last.flows).toBe(3);
    expect((last as unknown as { untracked: number }).untracked).toBe(0);
    expect([last.packets, last.bytes]).toEqual([8, 5 * 92 + 2 * 28 + 29]);
    expect(last.top.map((f) => [f.src, f.dst, f.protoName, f.packets, f.bytes])).toEqual([
      [lab.peerIp, lab.hostIp, 'udp', 5, 460],
      [lab.peerIp, lab.hostIp, '253', 2, 56],
    ]);
    expect(run.stderr()).toMatch(/detached\n$/);
    expect(queryXdp(lab.hostIf)).toEqual([]);
  });

  it('loader: with --max-flows 1, says how many packets of other flows were not tracked', async () => {
    const run = startLoader('connection_tracker', [lab.hostIf, '--duration', '3', '--max-flows', '1', '--interval', '1']);
    try {
      await run.waitFor('attached');
      await sendUdp(lab.ns, lab.hostIp, 9, 5, 64);
      await sendRaw(lab.ns, lab.hostIp, 253, 2, 8);
      expect(await run.exited).toEqual({ code: 0, signal: null });
    } finally {
      run.kill('SIGKILL');
    }
    const tables = run.stdout().split('\n\n').filter((t) => t.trim());
    const last = tables[tables.length - 1];
    expect(last).toMatch(/ 1 flow \(batch lookup\)/);
    // Whichever flow came first (ARP is not IPv4: only UDP and protocol 253 count), the other one's packets are untracked.
    expect(last).toMatch(/\nuntracked: [25] packets of new flows found the table full \(1 flow\); they are not in the table$/);
  });
});
