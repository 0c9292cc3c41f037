/**
 * The worker of test/xdp_dnat_cache.test.ts: run inside the load balancer
 * namespace of a dnat lab (nsenter --net), so bpf_fib_lookup in
 * BPF_PROG_TEST_RUN finds a route and a neighbour and the forward program
 * takes its forwarding path, the only one that fills the flow cache. It
 * drives the real program through scenarios and prints what it saw as one
 * JSON line (CacheObservations); the test asserts on it.
 *
 *   node --import tsx test/helpers/dnat-cache-worker.ts <ingress-if> <backend-if>
 */
import { BpfObject, XdpAction, formatIpv4, parseIpv4, resolveInterface } from '../../src/index.js';
import { ensureObject } from '../../src/cli/build.js';
import {
  DNAT_REASONS, FLOW_CACHE_SLOTS, LB_PROGRAMS, bumpEpoch, bumpFibGeneration, configureDataPlane, dataPlaneMaps, forgetConnections, readDnatStats,
  readFlowCachePending, type DnatReason, type FlowKey,
} from '../../src/lb/dataplane.js';
import { possibleCpus } from '../../src/map.js';
import { run } from '../../src/lab/index.js';
import { TestLb } from './lb.js';
import { buildFrame, ipChecksum, l4Checksum, parseFrame, rng } from './packets.js';

type Stats = Record<DnatReason, number>;
const delta = (a: Stats, b: Stats) => Object.fromEntries(DNAT_REASONS.map((k) => [k, b[k] - a[k]]).filter(([, v]) => v !== 0)) as Partial<Stats>;

/** One packet's fate: verdict, where it went, what the counters said. */
export interface Sent { verdict: number; dst: string; dport: number; dmac: string; counted: Partial<Stats> }

/** What the worker saw; see the test for what each must be. */
export interface CacheObservations {
  flowCacheEntries: number;
  expectedEntries: number;
  syn: Sent;
  ack1: Sent;
  slotAfterAck: { filled: boolean; backend: string; epochMatches: boolean } | null;
  /** backend_map rewritten behind the table's back (no epoch change): the cached flow does not see it. */
  rawWriteNoBump: Sent;
  /** The same write followed by an epoch change (what ServiceTable does). */
  rawWriteBumped: Sent;
  /** ServiceTable replaces the flow's backend. */
  tableChange: Sent;
  tableChangeNext: Sent;
  /** conntrack entry deleted through forgetConnections. */
  forgotten: number;
  afterForget: Sent;
  /** A cached flow's packet over the egress MTU, and one with TTL 1. */
  bigPacket: Sent;
  ttlOne: Sent;
  /** FIN: through the full path, the flow leaves its slot, its entry is closing. */
  fin: Sent;
  slotAfterFin: boolean;
  closingFlags: number | undefined;
  ackAfterFin: Sent;
  slotAfterAckOnClosing: boolean;
  synAfterFin: Sent;
  /** A neighbour change: the new MAC is used after bumpFibGeneration. */
  beforeNeighChange: Sent;
  neighBumped: Sent;
  neighNext: Sent;
  newMac: string;
  /** Checksums: flows sent three times (new, full path, cache): outputs checked against a full recomputation. */
  checksumFlows: number;
  checksumBad: string[];
  cachedDiffersFromFull: number;
  serviceHitsDelta: number;
  serviceHitsExpected: number;
  /** Counters with hits served from the cache (the worker runs on one CPU): see countsScenario. */
  counts: CountObservations;
}

/** Service hits as service_hits has them (raw) and with the flow cache's pending ones (total). */
export interface HitCounts { raw: number; rawBytes: number; total: number; totalBytes: number }

/** N packets of one flow, then its slot evicted by another flow, then (another flow) its grain expired. */
export interface CountObservations {
  /** Does the program's slot index match flowHash() below (so the evicting flow is the right one)? */
  hashMatches: boolean;
  sent: number;
  sentBytes: number;
  /** After the N packets: the service's hits, the redirect counter (with pending) and the two services' pending hits. */
  afterN: { hits: HitCounts; redirect: number; pendingRedirect: number };
  /** Another flow (another service) filled the slot: the first flow's pending hits moved to its service. */
  evicted: boolean;
  afterEvict: { hits: HitCounts; other: HitCounts; redirect: number; pendingRedirect: number };
  /** Second flow: N packets, a wait past FLOW_CACHE_GRAIN, one more packet (full path: flushed, refilled). */
  afterGrain: { hits: HitCounts; redirect: number; pendingRedirect: number; sent: number; sentBytes: number };
}

const rol32 = (w: number, s: number) => ((w << s) | (w >>> (32 - s))) >>> 0;
/** flow_hash of xdp_dnat.bpf.c (jhash's final mix on the flow as the packet carries it, loaded on a little-endian CPU). */
export function flowHash(saddr: string, daddr: string, sport: number, dport: number, proto: number): number {
  const le32 = (ip: string) => Buffer.from(ip.split('.').map(Number)).readUInt32LE(0);
  const le16 = (p: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(p); return b.readUInt16LE(0); };
  let a = (0xdeadbeef + 12 + proto) >>> 0;
  let b = a;
  let c = a;
  a = (a + le32(saddr)) >>> 0;
  b = (b + le32(daddr)) >>> 0;
  c = (c + (((le16(sport) << 16) | le16(dport)) >>> 0)) >>> 0;
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

const macOf = (b: Buffer) => [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

async function main(ingressIf: string, backendIf: string): Promise<CacheObservations> {
  const ifindex = resolveInterface(ingressIf).index;
  /** struct xdp_md for a test run: the packet's bounds and the ingress interface. */
  const ctxFor = (len: number) => {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(len, 4); // data_end
    b.writeUInt32LE(ifindex, 12); // ingress_ifindex
    return b;
  };
  const obj = BpfObject.open(ensureObject('xdp_dnat'));
  try {
    configureDataPlane(obj, { conntrackSize: 4096 });
    obj.load();
    const maps = dataPlaneMaps(obj);
    const lb = new TestLb(maps);
    const cache = maps.flowCache!;
    // The redirect counter with the flow cache's pending hits: what every reader shows.
    const stats = () => readDnatStats(maps.stats, cache);
    const svc = '10.96.0.10:80/tcp';
    // The backends on lb1's subnet get permanent neighbours (any MAC: test runs send nothing).
    for (const [ip, mac] of [['10.244.1.5', '02:00:00:00:01:05'], ['10.244.1.6', '02:00:00:00:01:06'], ['10.244.1.7', '02:00:00:00:01:07']]) {
      await run(['ip', 'neigh', 'replace', ip, 'lladdr', mac, 'dev', backendIf, 'nud', 'permanent']);
    }
    lb.set(svc, [{ addr: '10.244.1.5:8080' }]);
    const fwd = obj.program(LB_PROGRAMS.forward);
    const send = (sport: number, flags: number, extra: { ttl?: number; payload?: Uint8Array } = {}): Sent => {
      const data = buildFrame({ src: '10.0.1.2', dst: '10.96.0.10', proto: 6, sport, dport: 80, tcpFlags: flags, ...extra });
      const s0 = stats();
      const r = fwd.testRun({ data, ctx: ctxFor(data.length), dataOutSize: data.length });
      const v = parseFrame(r.data);
      return { verdict: r.retval, dst: v.dst, dport: v.dport, dmac: macOf(r.data), counted: delta(s0, stats()) };
    };
    const key = (sport: number): FlowKey => ({ saddr: parseIpv4('10.0.1.2'), daddr: parseIpv4('10.96.0.10'), sport, dport: 80, proto: 6 });
    /** The slot holding the flow, on whichever CPU ran it. */
    const slotOf = (sport: number) => {
      const k = key(sport);
      for (const [, s] of cache.readAll().entries) {
        if (s.saddr === k.saddr && s.daddr === k.daddr && s.sport === k.sport && s.dport === k.dport && s.proto === k.proto) return s;
      }
      return undefined;
    };
    /** Does a slot hold the flow, filled (validated: jiffies of its filling; 0 once a FIN or RST took it out)? */
    const cachedNow = (sport: number) => {
      const s = slotOf(sport);
      return !!s && s.validated !== 0;
    };

    const o = {} as CacheObservations;
    o.flowCacheEntries = cache.maxEntries;
    o.expectedEntries = FLOW_CACHE_SLOTS * possibleCpus;
    const A = 41000;
    o.syn = send(A, 0x02);
    o.ack1 = send(A, 0x10);
    const slot = slotOf(A);
    o.slotAfterAck = slot ? {
      filled: slot.validated !== 0,
      backend: `${formatIpv4(slot.backend_ip)}:${slot.backend_port}`,
      epochMatches: slot.epoch === maps.globals.get(0)?.epoch,
    } : null;

    // backend_map written behind the table's back, no epoch change: the cache still
    // forwards to the old address (why every writer must change the epoch).
    // (A slot is good for FLOW_CACHE_GRAIN, 16 jiffies, from its filling: refill it just before.)
    const bid = lb.backendId(svc, '10.244.1.5:8080');
    const old = maps.backends.get(bid)!;
    bumpEpoch(maps.globals);
    send(A, 0x10);
    maps.backends.set(bid, { ...old, ip: parseIpv4('10.244.1.7') });
    o.rawWriteNoBump = send(A, 0x10);
    bumpEpoch(maps.globals);
    o.rawWriteBumped = send(A, 0x10); // full path: the entry's backend changed: re-picked
    maps.backends.set(bid, old);
    lb.table.refresh();

    // The table replaces the backend: the next packet of the cached flow sees it.
    const B = 41001;
    send(B, 0x02);
    send(B, 0x10);
    lb.set(svc, [{ addr: '10.244.1.6:8080' }]);
    o.tableChange = send(B, 0x10);
    o.tableChangeNext = send(B, 0x10);

    // A connection entry deleted by user space.
    const C = 41002;
    send(C, 0x02);
    send(C, 0x10);
    o.forgotten = forgetConnections(maps, [key(C)]);
    o.afterForget = send(C, 0x10);

    // Over the MTU and TTL 1 on a cached flow: the full path's verdicts.
    send(C, 0x10);
    o.bigPacket = send(C, 0x10, { payload: new Uint8Array(1600) });
    o.ttlOne = send(C, 0x10, { ttl: 1 });

    // FIN.
    const D = 41003;
    send(D, 0x02);
    send(D, 0x10);
    o.fin = send(D, 0x11);
    o.slotAfterFin = cachedNow(D);
    o.closingFlags = maps.conntrack.get(key(D))?.flags;
    o.ackAfterFin = send(D, 0x10);
    o.slotAfterAckOnClosing = cachedNow(D);
    o.synAfterFin = send(D, 0x02);

    // A neighbour change: a new MAC for the backend (10.244.1.6 now).
    const E = 41004;
    send(E, 0x02);
    o.beforeNeighChange = send(E, 0x10);
    o.newMac = '02:00:00:00:01:66';
    await run(['ip', 'neigh', 'replace', '10.244.1.6', 'lladdr', o.newMac, 'dev', backendIf, 'nud', 'permanent']);
    bumpFibGeneration(maps.globals);
    o.neighBumped = send(E, 0x10);
    o.neighNext = send(E, 0x10);

    // Checksums through the cache: random TCP and UDP flows, odd lengths, zero UDP checksums.
    lb.set('10.96.0.11:53/udp', [{ addr: '10.244.1.6:5353' }, { addr: '10.244.1.7:5353' }]);
    const r = rng(0xcace);
    o.checksumBad = [];
    o.cachedDiffersFromFull = 0;
    o.checksumFlows = 200;
    // Service hits with what the flow cache holds pending (each flow's cached hit waits in its slot).
    const hitsBefore = hitsNow(svc).total + hitsNow('10.96.0.11:53/udp').total;
    for (let i = 0; i < o.checksumFlows; i++) {
      const udp = r.chance(0.5);
      const spec = {
        src: `10.0.1.${r.int(2, 254)}`, dst: udp ? '10.96.0.11' : '10.96.0.10', proto: udp ? 17 : 6, sport: r.int(1024, 65535), dport: udp ? 53 : 80,
        payload: r.bytes(r.int(0, 1200)), ttl: r.int(2, 255), tos: r.pick([0, 0x10, 0xb8]), id: r.int(0, 65535), udpNoChecksum: udp && r.chance(0.3),
      };
      const first = buildFrame({ ...spec, tcpFlags: 0x02 });
      fwd.testRun({ data: first, ctx: ctxFor(first.length), dataOutSize: first.length });
      bumpEpoch(maps.globals); // so the next packet takes the full path, the one after it the cache
      const data = buildFrame({ ...spec, tcpFlags: 0x10 });
      const outs: Buffer[] = [];
      for (let k = 0; k < 2; k++) {
        const res = fwd.testRun({ data, ctx: ctxFor(data.length), dataOutSize: data.length });
        if (res.retval !== XdpAction.REDIRECT) o.checksumBad.push(`flow ${i}: verdict ${res.retval}`);
        outs.push(res.data);
      }
      if (!outs[0].equals(outs[1])) o.cachedDiffersFromFull++;
      const out = outs[1];
      const v = parseFrame(out);
      if (v.ipCheck !== ipChecksum(out)) o.checksumBad.push(`flow ${i}: ip checksum`);
      const want = spec.udpNoChecksum ? 0 : l4Checksum(out);
      if (v.l4Check !== want) o.checksumBad.push(`flow ${i}: l4 checksum ${v.l4Check} != ${want}`);
      if (v.ttl !== spec.ttl - 1) o.checksumBad.push(`flow ${i}: ttl`);
    }
    o.serviceHitsExpected = 3 * o.checksumFlows;
    o.serviceHitsDelta = hitsNow(svc).total + hitsNow('10.96.0.11:53/udp').total - hitsBefore;
    o.counts = await countsScenario();
    return o;

    /** Service hits now, raw and with what the flow cache holds pending. */
    function hitsNow(service: string): HitCounts {
      const id = lb.serviceId(service);
      const raw = maps.hits.summed(id) ?? { packets: 0, bytes: 0 };
      const p = readFlowCachePending(cache).byService.get(id) ?? { packets: 0, bytes: 0 };
      return { raw: raw.packets, rawBytes: raw.bytes, total: raw.packets + p.packets, totalBytes: raw.bytes + p.bytes };
    }
    function hitsSince(a: HitCounts, b: HitCounts): HitCounts {
      return { raw: b.raw - a.raw, rawBytes: b.rawBytes - a.rawBytes, total: b.total - a.total, totalBytes: b.totalBytes - a.totalBytes };
    }

    async function countsScenario(): Promise<CountObservations> {
      // Two services of their own, so no earlier flow's pending hits are theirs.
      const tcpSvc = '10.96.0.12:80/tcp';
      const udpSvc = '10.96.0.13:53/udp';
      lb.set(tcpSvc, [{ addr: '10.244.1.6:8080' }]);
      lb.set(udpSvc, [{ addr: '10.244.1.7:5353' }]);
      const N = 50;
      const c = {} as CountObservations;
      const tcp = (sport: number, flags: number, payload: number) => buildFrame({ src: '10.0.1.9', dst: '10.96.0.12', proto: 6, sport, dport: 80, tcpFlags: flags, payload: new Uint8Array(payload) });
      const runOne = (data: Buffer) => {
        const res = fwd.testRun({ data, ctx: ctxFor(data.length), dataOutSize: data.length });
        if (res.retval !== XdpAction.REDIRECT) throw new Error(`counts scenario: verdict ${res.retval}, not XDP_REDIRECT`);
        return data.length - 14; // the IP total length
      };
      /** Hits of the two services still pending in the flow cache. */
      const pendingRedirect = () => {
        const p = readFlowCachePending(cache).byService;
        return (p.get(lb.serviceId(tcpSvc))?.packets ?? 0) + (p.get(lb.serviceId(udpSvc))?.packets ?? 0);
      };
      /** N packets of a TCP flow: SYN, then N - 1 others (served from its slot). Returns their bytes. */
      const flowOfN = (sport: number) => {
        let bytes = runOne(tcp(sport, 0x02, 0));
        for (let i = 1; i < N; i++) bytes += runOne(tcp(sport, 0x10, 10 + (i % 7)));
        return bytes;
      };

      // 1. N packets of flow F: the cached ones wait in the slot; readers add them.
      const F = 43000;
      let h0 = hitsNow(tcpSvc);
      let s0 = stats();
      c.sentBytes = flowOfN(F);
      c.sent = N;
      c.afterN = { hits: hitsSince(h0, hitsNow(tcpSvc)), redirect: stats().redirect - s0.redirect, pendingRedirect: pendingRedirect() };
      const fIndex = cache.readAll().entries.find(([, x]) => x.saddr === parseIpv4('10.0.1.9') && x.sport === F && x.validated !== 0)?.[0];
      c.hashMatches = fIndex !== undefined && (fIndex & (FLOW_CACHE_SLOTS - 1)) === (flowHash('10.0.1.9', '10.96.0.12', F, 80, 6) & (FLOW_CACHE_SLOTS - 1));

      // 2. A UDP flow of the other service with F's slot (same CPU: the worker is pinned to one).
      let G = 1024;
      const want = flowHash('10.0.1.9', '10.96.0.12', F, 80, 6) & (FLOW_CACHE_SLOTS - 1);
      while ((flowHash('10.0.1.9', '10.96.0.13', G, 53, 17) & (FLOW_CACHE_SLOTS - 1)) !== want) G++;
      const u0 = hitsNow(udpSvc);
      h0 = hitsNow(tcpSvc);
      s0 = stats();
      runOne(buildFrame({ src: '10.0.1.9', dst: '10.96.0.13', proto: 17, sport: G, dport: 53, payload: new Uint8Array(8) }));
      c.evicted = fIndex !== undefined && cache.get(fIndex)?.sport === G;
      c.afterEvict = { hits: hitsSince(h0, hitsNow(tcpSvc)), other: hitsSince(u0, hitsNow(udpSvc)), redirect: stats().redirect - s0.redirect, pendingRedirect: pendingRedirect() };

      // 3. Flow H: N packets, then one after its grain (16 jiffies: 160 ms at HZ=100) took the full path.
      const H = 43001;
      h0 = hitsNow(tcpSvc);
      s0 = stats();
      let bytes = flowOfN(H);
      await new Promise((r) => setTimeout(r, 300));
      bytes += runOne(tcp(H, 0x10, 3));
      c.afterGrain = { hits: hitsSince(h0, hitsNow(tcpSvc)), redirect: stats().redirect - s0.redirect, pendingRedirect: pendingRedirect(), sent: N + 1, sentBytes: bytes };
      return c;
    }
  } finally {
    obj.close();
  }
}

main(process.argv[2], process.argv[3]).then(
  (o) => { process.stdout.write(`${JSON.stringify(o)}\n`); process.exit(0); },
  (e: Error) => { process.stderr.write(`${e.stack ?? e.message}\n`); process.exit(1); },
);
