/**
 * xdp_dnat without a lab: parsing and formatting of services; then on a
 * real kernel, the real programs through BPF_PROG_TEST_RUN: thousands of
 * generated TCP/UDP frames (random addresses and ports, odd and even payload
 * lengths, IP options, zero UDP checksums) whose rewritten checksums must
 * equal a full recomputation (test/helpers/packets.ts, independent of the C
 * code) and whose misses come out byte-identical; malformed frames (cut at
 * every byte, bad ihl/version/length, fragments, other protocols, non-IPv4)
 * pass unchanged; the reply program (TC) the same way; the per-reason
 * counters add up. Then the service API (validation, conflicts, all or
 * nothing, map full) and scripts/services.ts against pinned maps.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, BpfObject, XdpAction, parseIpv4 } from '../src/index.js';
import { BPF_DIR, ensureObject } from '../src/cli/build.js';
import { DNAT_REASONS, MAX_SERVICES, PROGRAMS, type DnatStats } from '../src/lessons/xdp_dnat.js';
import {
  ServiceTable, backendKey, formatService, parseService, parseServiceAddr, serviceKey, type Service,
} from '../src/lessons/xdp_dnat/legacy_table.js';
import { renderHitTable } from '../src/lessons/xdp_dnat/monitor.js';
import { buildFrame, ipChecksum, l4Checksum, onesSum, fold, rng, ipOptions, parseFrame, type FrameSpec } from './helpers/packets.js';
import { kernelTests, removePins } from './helpers/kernel.js';
import { loadedPrograms, runLoader, runServices } from './helpers/loader.js';

describe('xdp_dnat services: parsing and formatting', () => {
  it('parses and formats the lesson service', () => {
    const s = parseService('10.96.0.10:80/tcp=10.244.1.5:8080');
    expect(s).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp', backend: { ip: '10.244.1.5', port: 8080 } });
    expect(formatService(s)).toBe('10.96.0.10:80/tcp → 10.244.1.5:8080');
    expect(parseService(' 10.96.0.11:53/UDP=10.244.1.6:5353 ').proto).toBe('udp');
    expect(parseServiceAddr('10.96.0.11:53/udp')).toEqual({ vip: '10.96.0.11', port: 53, proto: 'udp' });
  });

  it('rejects bad addresses, ports and protocols with a message naming them', () => {
    expect(() => parseService('10.96.0.300:80/tcp=10.244.1.5:8080')).toThrow("service: bad IPv4 address '10.96.0.300'");
    expect(() => parseService('10.96.0.10:80/tcp=10.244.1:8080')).toThrow("backend: bad IPv4 address '10.244.1'");
    expect(() => parseService('10.96.0.10:0/tcp=10.244.1.5:8080')).toThrow('service: port 0 is out of range (1-65535)');
    expect(() => parseService('10.96.0.10:80/tcp=10.244.1.5:65536')).toThrow('backend: port 65536 is out of range (1-65535)');
    expect(() => parseService('10.96.0.10:http/tcp=10.244.1.5:80')).toThrow("service: port 'http' is not a number");
    expect(() => parseService('10.96.0.10:80/sctp=10.244.1.5:80')).toThrow("service: unknown protocol 'sctp' (use tcp or udp)");
    expect(() => parseService('10.96.0.10:80/tcp')).toThrow('expected VIP:PORT/PROTO=IP:PORT[*WEIGHT],...');
    expect(() => parseService('10.96.0.10/tcp=10.244.1.5:80')).toThrow('expected VIP:PORT/PROTO');
    expect(() => parseService('10.96.0.10:80/tcp=10.244.1.5')).toThrow('expected IP:PORT or IP:PORT*WEIGHT');
    // This data plane: one backend per service, no weights.
    expect(() => parseService('10.96.0.10:80/tcp=10.244.1.5:80,10.244.1.6:80')).toThrow('service 10.96.0.10:80/tcp: 2 backends; this data plane takes exactly one per service');
    expect(() => parseService('10.96.0.10:80/tcp=10.244.1.5:80*2')).toThrow('service 10.96.0.10:80/tcp: weight 2; this data plane has one backend per service and no weights');
  });

  it('encodes keys in network byte order with zeroed pads', () => {
    const b = Buffer.alloc(8, 0xee);
    serviceKey.encode({ vip: '10.96.0.10', port: 80, proto: 'tcp' }, b);
    expect([...b]).toEqual([10, 96, 0, 10, 0, 80, 6, 0]);
    expect(serviceKey.decode(b)).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp' });
    backendKey.encode({ ip: '10.244.1.5', port: 8080, proto: 'udp' }, b.fill(0xee));
    expect([...b]).toEqual([10, 244, 1, 5, 0x1f, 0x90, 17, 0]);
  });

  it('the loader refuses a bad --service before doing anything (exit 2)', async () => {
    const r = await runLoader('xdp_dnat', ['lo', '--service', '10.96.0.10:80/tcp=10.244.1.5:99999']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("option '--service <VIP:PORT/PROTO=IP:PORT[*WEIGHT],...>' argument '10.96.0.10:80/tcp=10.244.1.5:99999' is invalid. backend: port 99999 is out of range (1-65535)");
  });

  it('names the reasons as enum dnat_reason in bpf/xdp_dnat/xdp_dnat.h does, in its order', () => {
    const header = readFileSync(join(BPF_DIR, 'xdp_dnat', 'xdp_dnat.h'), 'utf8').replace(/\/\*[^]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    const body = /enum dnat_reason\s*\{([^}]*)\}/.exec(header)?.[1];
    expect(body).toBeDefined();
    const members = body!.split(',').map((m) => m.trim()).filter(Boolean).map((m) => /^(\w+)(?:\s*=\s*(\d+))?$/.exec(m));
    expect(members.every(Boolean)).toBe(true);
    // Only the first may have a value (0): the others follow on, so the array index is the enum value.
    expect(members.map((m) => m![2])).toEqual(['0', ...Array(members.length - 1).fill(undefined)]);
    const names = members.map((m) => m![1]);
    expect(names.at(-1)).toBe('DNAT_REASON_COUNT');
    expect(names.slice(0, -1).map((n) => n.replace(/^DNAT_/, '').toLowerCase())).toEqual([...DNAT_REASONS]);
  });

  it('renders a hit table', () => {
    const stats = Object.fromEntries(DNAT_REASONS.map((r) => [r, 0])) as DnatStats;
    stats.redirect = 5;
    stats.reply_rewritten = 4;
    const lines = renderHitTable({
      time: new Date('2025-01-02T03:04:05Z'), elapsed: 2,
      services: [
        { vip: '10.96.0.10', port: 80, proto: 'tcp', backends: [{ ip: '10.244.1.5', port: 8080 }], packets: 10, bytes: 1000, packetsPerSec: 5 },
        { vip: '10.96.0.11', port: 80, proto: 'tcp', backends: [{ ip: '10.244.1.6', port: 80, weight: 1, share: 0.25 }, { ip: '10.244.1.7', port: 80, weight: 3, share: 0.75 }], packets: 0, bytes: 0, packetsPerSec: 0 },
      ],
      stats,
    });
    expect(lines[0]).toBe('03:04:05  2 services, last 2.0 s');
    expect(lines[2]).toMatch(/^10\.96\.0\.10:80\/tcp +→ {2}10\.244\.1\.5:8080 +10 +1000 +5\.0$/);
    expect(lines[3]).toMatch(/^10\.96\.0\.11:80\/tcp +→ {2}10\.244\.1\.6:80 \(25%\), 10\.244\.1\.7:80\*3 \(75%\) +0 +0 +0\.0$/);
    expect(lines[4]).toBe('packets: redirect 5, reply_rewritten 4');
  });
});

/** What the forward program must output for a hit: the same frame with the destination rewritten and both checksums recomputed in full. */
function expectedHit(input: Buffer, s: Service, out: Buffer, udpNoChecksum: boolean): Buffer {
  const e = Buffer.from(input);
  const v = parseFrame(e);
  e.writeUInt32BE(parseIpv4(s.backend.ip), v.ipOff + 16);
  e.writeUInt16BE(s.backend.port, v.l4Off + 2);
  if (out[v.ipOff + 8] !== input[v.ipOff + 8]) {
    // Forwarded by XDP itself (the FIB had a route and a neighbour): TTL - 1, new MACs.
    e[v.ipOff + 8] = input[v.ipOff + 8] - 1;
    out.copy(e, 0, 0, 12);
  }
  e.writeUInt16BE(ipChecksum(e), v.ipOff + 10);
  e.writeUInt16BE(udpNoChecksum ? 0 : l4Checksum(e), v.l4CheckOff);
  return e;
}

describe.skipIf(!kernelTests())('xdp_dnat programs through BPF_PROG_TEST_RUN', () => {
  let obj: BpfObject;
  let table: ServiceTable;
  const r = rng(0x5eed);
  const services: Service[] = [];

  const statsNow = () => table.stats();
  const delta = (a: DnatStats, b: DnatStats) => Object.fromEntries(DNAT_REASONS.map((k) => [k, b[k] - a[k]]).filter(([, v]) => v !== 0));

  beforeAll(() => {
    obj = BpfObject.load(ensureObject('xdp_dnat'));
    table = ServiceTable.fromObject(obj);
    const used = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const proto = r.pick(['tcp', 'udp'] as const);
      const s: Service = {
        vip: `10.${r.int(96, 111)}.${r.int(0, 255)}.${r.int(1, 254)}`, port: r.int(1, 65535), proto,
        backend: { ip: `10.244.${r.int(0, 255)}.${r.int(1, 254)}`, port: r.int(1, 65535) },
      };
      const k = `${s.vip}:${s.port}/${s.proto}`;
      const b = `${s.backend.ip}:${s.backend.port}/${s.proto}`;
      if (used.has(k) || used.has(b)) continue;
      used.add(k);
      used.add(b);
      services.push(s);
    }
    table.write(services, 'add');
  });
  afterAll(() => obj?.close());

  it('counts every reason the C enum has', () => {
    expect(obj.maps.find((m) => m.name === 'dnat_stats')?.maxEntries).toBe(DNAT_REASONS.length);
  });

  it('has the services it was given, in both maps', () => {
    expect(table.count()).toBe(services.length);
    const rev = obj.map('reverse_map', backendKey, serviceKey);
    for (const s of services.slice(0, 50)) {
      expect(table.get(s)).toEqual(s.backend);
      expect(rev.get({ ...s.backend, proto: s.proto })).toEqual({ vip: s.vip, port: s.port, proto: s.proto });
    }
  });

  it('rewrites thousands of hits with checksums equal to a full recomputation, and leaves misses byte-identical', () => {
    const prog = obj.program(PROGRAMS.forward);
    const before = statsNow();
    const hitsBefore = new Map(services.map((s) => [s, table.hits(s).packets]));
    const hitCount = new Map<Service, number>();
    let hits = 0;
    let misses = 0;
    let lengthsOdd = 0;
    let withOptions = 0;
    let zeroUdp = 0;
    const isService = (dst: string, port: number, proto: string) => services.some((s) => s.vip === dst && s.port === port && s.proto === proto);
    for (let i = 0; i < 5000; i++) {
      const hit = r.chance(0.6);
      const proto = r.pick(['tcp', 'udp'] as const);
      let s: Service | undefined;
      const spec: FrameSpec = {
        src: r.ip(), dst: r.ip(), proto: proto === 'tcp' ? 6 : 17, sport: r.int(1, 65535), dport: r.int(1, 65535),
        payload: r.bytes(r.int(0, 1400)), ttl: r.int(1, 255), tos: r.pick([0, 0, 0x10, 0xb8]), id: r.int(0, 65535),
        df: r.chance(0.5), seq: r.int(0, 2 ** 32 - 1), tcpFlags: r.pick([0x02, 0x12, 0x10, 0x18, 0x11]),
      };
      if (r.chance(0.3)) spec.options = ipOptions(4 * r.int(1, 10), r);
      if (hit) {
        s = r.pick(services);
        spec.dst = s.vip;
        spec.dport = s.port;
        spec.proto = s.proto === 'tcp' ? 6 : 17;
      } else if (r.chance(0.5)) {
        // A near miss: a service's VIP with another port, or the other protocol.
        const o = r.pick(services);
        spec.dst = o.vip;
        if (r.chance(0.5)) spec.dport = (o.port % 65535) + 1;
        else { spec.dport = o.port; spec.proto = o.proto === 'tcp' ? 17 : 6; }
      }
      const protoName = spec.proto === 6 ? 'tcp' : 'udp';
      if (!hit && isService(spec.dst, spec.dport!, protoName)) continue;
      if (spec.proto === 17 && r.chance(0.2)) spec.udpNoChecksum = true;
      const input = buildFrame(spec);
      const res = prog.testRun({ data: input });
      const out = res.data;
      if (!hit) {
        expect(res.retval).toBe(XdpAction.PASS);
        expect(out.equals(input), `miss #${i} changed`).toBe(true);
        misses++;
        continue;
      }
      hits++;
      hitCount.set(s!, (hitCount.get(s!) ?? 0) + 1);
      if (input.length % 2) lengthsOdd++;
      if (spec.options) withOptions++;
      if (spec.udpNoChecksum) zeroUdp++;
      expect([XdpAction.PASS, XdpAction.REDIRECT, XdpAction.TX]).toContain(res.retval);
      const exp = expectedHit(input, s!, out, !!spec.udpNoChecksum);
      if (!out.equals(exp)) {
        const v = parseFrame(out);
        throw new Error(`hit #${i} (${formatService(s!)}, ${input.length} bytes, ihl ${v.ihl}): ip check ${v.ipCheck.toString(16)} (want ${ipChecksum(out).toString(16)}), l4 check ${v.l4Check.toString(16)} (want ${l4Checksum(out).toString(16)})\n in  ${input.toString('hex')}\n out ${out.toString('hex')}\n exp ${exp.toString('hex')}`);
      }
      // Independent of `exp`: the output's own checksums verify.
      expect(ipChecksum(out)).toBe(parseFrame(out).ipCheck);
      if (!spec.udpNoChecksum) expect(l4Checksum(out)).toBe(parseFrame(out).l4Check);
      else expect(parseFrame(out).l4Check).toBe(0);
    }
    expect(hits).toBeGreaterThan(2500);
    expect(misses).toBeGreaterThan(1500);
    expect(lengthsOdd).toBeGreaterThan(500);
    expect(withOptions).toBeGreaterThan(500);
    expect(zeroUdp).toBeGreaterThan(100);
    // Every hit counted for its service, every decision for its reason.
    for (const [s, n] of hitCount) expect(table.hits(s).packets - hitsBefore.get(s)!).toBe(n);
    const d = delta(before, statsNow());
    const hitReasons = ['redirect', 'tx', 'pass_no_neigh', 'pass_not_fwd', 'pass_mtu', 'pass_ttl', 'drop_blackhole'] as const;
    expect(hitReasons.reduce((a, k) => a + (d[k] ?? 0), 0)).toBe(hits);
    expect(d.pass_miss).toBe(misses);
  });

  it('sends a computed zero UDP checksum as 0xffff and a computed zero TCP checksum as 0', () => {
    const prog = obj.program(PROGRAMS.forward);
    for (const s of [services.find((x) => x.proto === 'udp')!, services.find((x) => x.proto === 'tcp')!]) {
      const base: FrameSpec = { src: '10.0.1.2', dst: s.backend.ip, proto: s.proto === 'tcp' ? 6 : 17, sport: 40000, dport: s.backend.port, payload: new Uint8Array(2), ttl: 64 };
      // Choose 2 payload bytes so that the rewritten datagram's sum is 0xffff (checksum 0).
      const after = buildFrame(base);
      const v = parseFrame(after);
      after.writeUInt16BE(0, v.l4CheckOff);
      const sum = fold(onesSum(after, v.l4Off, v.l4Len, onesSum(after, 26, 8) + v.proto + v.l4Len));
      const x = 0xffff - sum;
      const input = buildFrame({ ...base, dst: s.vip, dport: s.port, payload: Uint8Array.of(x >> 8, x & 255) });
      const out = prog.testRun({ data: input }).data;
      const o = parseFrame(out);
      expect(o.dst).toBe(s.backend.ip);
      expect(o.l4Check).toBe(s.proto === 'udp' ? 0xffff : 0);
      expect(l4Checksum(out)).toBe(o.l4Check);
    }
  });

  it('passes malformed frames unchanged: cut at every byte, bad ihl, version, lengths', () => {
    const prog = obj.program(PROGRAMS.forward);
    const s = services.find((x) => x.proto === 'tcp')!;
    const u = services.find((x) => x.proto === 'udp')!;
    const before = statsNow();
    const frames: Buffer[] = [];
    for (const svc of [s, u]) {
      for (const opts of [undefined, ipOptions(12, r)]) {
        const full = buildFrame({ src: '10.0.1.2', dst: svc.vip, proto: svc.proto === 'tcp' ? 6 : 17, dport: svc.port, options: opts, payload: r.bytes(9) });
        // test-run needs at least an Ethernet header; every shorter cut up to the whole frame minus one byte.
        for (let n = 14; n < full.length; n++) frames.push(Buffer.from(full.subarray(0, n)));
        const bad = (fn: (f: Buffer) => void) => { const f = Buffer.from(full); fn(f); frames.push(f); };
        for (const ihl of [0, 1, 2, 3, 4]) bad((f) => { f[14] = 0x40 | ihl; });
        bad((f) => { f[14] = 0x4f; }); // 60-byte header, longer than what follows
        bad((f) => { f[14] = 0x60 | (f[14] & 15); }); // version 6 in an IPv4 frame
        bad((f) => { f.writeUInt16BE((f[14] & 15) * 4 - 1, 16); }); // total length shorter than the header
        bad((f) => { f.writeUInt16BE((f[14] & 15) * 4 + 4, 16); }); // no room for the L4 header
        bad((f) => { f.writeUInt16BE(f.length - 14 + 1, 16); }); // longer than the frame
      }
    }
    for (const f of frames) {
      const res = prog.testRun({ data: f });
      expect(res.retval).toBe(XdpAction.PASS);
      expect(res.data.equals(f), `changed: ${f.toString('hex')}`).toBe(true);
    }
    const d = delta(before, statsNow());
    // Cuts shorter than Ethernet + 20 bytes of IP... all are counted malformed; nothing else is.
    expect(d).toEqual({ pass_malformed: frames.length });
  });

  it('passes fragments, other protocols and non-IPv4 unchanged, and rewrites frames with Ethernet padding', () => {
    const prog = obj.program(PROGRAMS.forward);
    const s = services.find((x) => x.proto === 'tcp')!;
    const base: FrameSpec = { src: '10.0.1.2', dst: s.vip, proto: 6, dport: s.port, payload: r.bytes(40) };
    const cases: Array<[string, Buffer, DnatStats[keyof DnatStats] extends number ? string : never]> = [
      ['more fragments', buildFrame({ ...base, mf: true, df: false }), 'pass_fragment'],
      ['fragment offset', buildFrame({ ...base, fragOffset: 185, df: false }), 'pass_fragment'],
      ['last fragment', buildFrame({ ...base, mf: true, fragOffset: 3, df: false }), 'pass_fragment'],
      ['icmp to the VIP', buildFrame({ ...base, proto: 1 }), 'pass_other_proto'],
      ['sctp to the VIP', buildFrame({ ...base, proto: 132 }), 'pass_other_proto'],
      ['arp', buildFrame({ ...base, etherType: 0x0806 }), 'pass_not_ipv4'],
      ['ipv6 ethertype', buildFrame({ ...base, etherType: 0x86dd }), 'pass_not_ipv4'],
      ['vlan tag', buildFrame({ ...base, etherType: 0x8100 }), 'pass_not_ipv4'],
    ];
    for (const [name, f, reason] of cases) {
      const before = statsNow();
      const res = prog.testRun({ data: f });
      expect(res.retval, name).toBe(XdpAction.PASS);
      expect(res.data.equals(f), name).toBe(true);
      expect(delta(before, statsNow()), name).toEqual({ [reason]: 1 });
    }
    // A SYN is 54 bytes; on the wire it is padded to 60: the padding is not part of the datagram.
    const syn = buildFrame({ ...base, payload: new Uint8Array(0), tcpFlags: 0x02 });
    const padded = Buffer.concat([syn, Buffer.alloc(6, 0xab)]);
    const out = prog.testRun({ data: padded }).data;
    const exp = Buffer.concat([expectedHit(syn, s, out.subarray(0, 54), false), Buffer.alloc(6, 0xab)]);
    expect(out.equals(exp)).toBe(true);
  });

  it('the reply program gives backends\' replies the service address with correct checksums and leaves others alone', () => {
    const prog = obj.program(PROGRAMS.reply);
    const before = statsNow();
    let rewritten = 0;
    for (let i = 0; i < 2000; i++) {
      const s = r.pick(services);
      const mine = r.chance(0.6);
      const spec: FrameSpec = {
        src: mine ? s.backend.ip : r.ip(), dst: r.ip(), proto: s.proto === 'tcp' ? 6 : 17, sport: s.backend.port, dport: r.int(1, 65535),
        payload: r.bytes(r.int(0, 1400)), ttl: r.int(1, 255), options: r.chance(0.3) ? ipOptions(4 * r.int(1, 10), r) : undefined,
      };
      if (!mine && services.some((x) => x.backend.ip === spec.src)) continue;
      if (spec.proto === 17 && r.chance(0.2)) spec.udpNoChecksum = true;
      const input = buildFrame(spec);
      const res = prog.testRun({ data: input });
      expect(res.retval).toBe(0); // TC_ACT_OK
      if (!mine) {
        expect(res.data.equals(input)).toBe(true);
        continue;
      }
      rewritten++;
      const e = Buffer.from(input);
      const v = parseFrame(e);
      e.writeUInt32BE(parseIpv4(s.vip), v.ipOff + 12);
      e.writeUInt16BE(s.port, v.l4Off);
      e.writeUInt16BE(ipChecksum(e), v.ipOff + 10);
      e.writeUInt16BE(spec.udpNoChecksum ? 0 : l4Checksum(e), v.l4CheckOff);
      if (!res.data.equals(e)) throw new Error(`reply #${i}: \n in  ${input.toString('hex')}\n out ${res.data.toString('hex')}\n exp ${e.toString('hex')}`);
    }
    expect(rewritten).toBeGreaterThan(1000);
    expect(delta(before, statsNow())).toEqual({ reply_rewritten: rewritten });
  });
});

describe.skipIf(!kernelTests())('xdp_dnat service API', () => {
  let obj: BpfObject;
  let t: ServiceTable;
  const svc = (text: string) => parseService(text);
  beforeAll(() => {
    obj = BpfObject.load(ensureObject('xdp_dnat'));
    t = ServiceTable.fromObject(obj);
  });
  afterAll(() => obj?.close());

  const revOf = (s: Service) => obj.map('reverse_map', backendKey, serviceKey).get({ ...s.backend, proto: s.proto });

  it('adds, changes and removes, keeping the reverse map in step', () => {
    const a = svc('10.96.0.10:80/tcp=10.244.1.5:8080');
    t.add(a);
    expect(t.list()).toEqual([{ ...a, packets: 0, bytes: 0 }]);
    expect(revOf(a)).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp' });
    expect(() => t.add(a)).toThrow('add service 10.96.0.10:80/tcp: service 10.96.0.10:80/tcp exists (→ 10.244.1.5:8080); use change (EEXIST)');
    const a2 = svc('10.96.0.10:80/tcp=10.244.1.6:8080');
    t.change(a2);
    expect(t.get(a)).toEqual({ ip: '10.244.1.6', port: 8080 });
    expect(revOf(a)).toBeUndefined(); // the old backend's reverse entry is gone
    expect(revOf(a2)).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp' });
    expect(() => t.change(svc('10.96.0.99:80/tcp=10.244.1.7:80'))).toThrow('no service 10.96.0.99:80/tcp; use add (ENOENT)');
    t.remove(a2);
    expect(t.count()).toBe(0);
    expect(revOf(a2)).toBeUndefined();
    expect(() => t.remove(a2)).toThrow('remove service 10.96.0.10:80/tcp: no service 10.96.0.10:80/tcp (ENOENT)');
  });

  it('refuses a backend that serves another service, and changes nothing', () => {
    t.add(svc('10.96.0.10:80/tcp=10.244.1.5:8080'));
    expect(() => t.add(svc('10.96.0.20:80/tcp=10.244.1.5:8080'))).toThrow('backend 10.244.1.5:8080/tcp already serves 10.96.0.10:80/tcp');
    expect(t.count()).toBe(1);
    // The same address and port with the other protocol is another backend.
    t.add(svc('10.96.0.20:80/udp=10.244.1.5:8080'));
    // A swap in one write is fine.
    t.write([svc('10.96.0.10:80/tcp=10.244.1.6:8080'), svc('10.96.0.30:80/tcp=10.244.1.5:8080')], 'set');
    expect(revOf(svc('10.96.0.30:80/tcp=10.244.1.5:8080'))).toEqual({ vip: '10.96.0.30', port: 80, proto: 'tcp' });
    expect(revOf(svc('10.96.0.10:80/tcp=10.244.1.6:8080'))).toEqual({ vip: '10.96.0.10', port: 80, proto: 'tcp' });
    t.clear();
    expect(t.count()).toBe(0);
  });

  it('validates a whole list before writing any of it', () => {
    t.add(svc('10.96.0.1:1/tcp=10.244.0.1:1'));
    const bad: Service = { vip: '10.96.0.2', port: 70000, proto: 'tcp', backend: { ip: '10.244.0.2', port: 1 } };
    expect(() => t.write([svc('10.96.0.3:1/tcp=10.244.0.3:1'), bad], 'add')).toThrow('service: port 70000 is out of range (1-65535)');
    expect(() => t.write([svc('10.96.0.3:1/tcp=10.244.0.3:1'), { ...bad, port: 1, proto: 'icmp' as 'tcp' }], 'add')).toThrow("unknown protocol 'icmp'");
    expect(() => t.write([svc('10.96.0.3:1/tcp=10.244.0.3:1'), svc('10.96.0.1:1/tcp=10.244.0.4:1')], 'add')).toThrow('exists');
    expect(() => t.write([svc('10.96.0.3:1/tcp=10.244.0.3:1'), svc('10.96.0.3:1/tcp=10.244.0.4:1')], 'set')).toThrow('listed twice');
    expect(() => t.remove([parseServiceAddr('10.96.0.1:1/tcp'), parseServiceAddr('10.96.0.9:1/tcp')])).toThrow('no service 10.96.0.9:1/tcp');
    expect(t.list().map(formatService)).toEqual(['10.96.0.1:1/tcp → 10.244.0.1:1']);
    t.clear();
  });

  it('fills the map to 1024 services, then refuses more without changing anything (single and batch)', () => {
    const many = Array.from({ length: MAX_SERVICES - 10 }, (_, i) => svc(`10.96.${i >> 8}.${i & 255}:80/tcp=10.244.${i >> 8}.${i & 255}:8080`));
    t.write(many, 'add');
    expect(t.count()).toBe(MAX_SERVICES - 10);
    const extra = Array.from({ length: 20 }, (_, i) => svc(`10.97.0.${i}:80/tcp=10.245.0.${i}:8080`));
    let err: unknown;
    try { t.write(extra, 'add'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).message).toBe('add 20 services: service_map is full (1024 services) (E2BIG)');
    expect(t.count()).toBe(MAX_SERVICES - 10);
    expect(revOf(extra[0])).toBeUndefined();
    t.write(extra.slice(0, 10), 'add');
    expect(t.count()).toBe(MAX_SERVICES);
    expect(() => t.add(extra[10])).toThrow('add service 10.97.0.10:80/tcp: service_map is full (1024 services) (E2BIG)');
    expect(t.count()).toBe(MAX_SERVICES);
    // Full, backends still change: one, then all of them in one batch.
    t.change({ ...extra[0], backend: { ip: '10.246.0.1', port: 1 } });
    const all = t.list().map((e, i): Service => ({ vip: e.vip, port: e.port, proto: e.proto, backend: { ip: `10.247.${i >> 8}.${i & 255}`, port: 9 } }));
    t.write(all, 'change');
    expect(t.list().every((e) => e.backend.ip.startsWith('10.247.') && e.backend.port === 9)).toBe(true);
    const rev = obj.map('reverse_map', backendKey, serviceKey);
    expect([...rev.keys()].length).toBe(MAX_SERVICES); // the old reverse entries are gone
    t.clear();
    expect([...rev.keys()].length).toBe(0);
    expect(t.count()).toBe(0);
  });
});

describe.skipIf(!kernelTests())('scripts/services.ts on pinned maps', () => {
  const dir = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-unit-${process.pid}`;
  let obj: BpfObject;
  let t: ServiceTable;
  beforeAll(() => {
    obj = BpfObject.load(ensureObject('xdp_dnat'));
    t = ServiceTable.fromObject(obj);
    t.set(parseService('10.96.0.10:80/tcp=10.244.1.5:8080'));
    t.pin(dir);
  });
  afterAll(() => {
    t?.unpin();
    obj?.close();
    if (existsSync(dir)) removePins(dir);
  });

  it('lists, adds, changes and removes', async () => {
    let r = await runServices(['--pin-dir', dir, 'list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^10\.96\.0\.10:80\/tcp +0 packets +0 bytes\n {2}→ 10\.244\.1\.5:8080 +weight +1 {2}share 100\.0%$/m);
    r = await runServices(['--pin-dir', dir, 'add', '10.96.0.11:53/udp=10.244.1.6:5353', '10.96.0.12:443/tcp=10.244.1.7:8443']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe('added 10.96.0.11:53/udp → 10.244.1.6:5353\nadded 10.96.0.12:443/tcp → 10.244.1.7:8443\n');
    expect(t.get(parseServiceAddr('10.96.0.11:53/udp'))).toEqual({ ip: '10.244.1.6', port: 5353 });
    r = await runServices(['--pin-dir', dir, 'change', '10.96.0.11:53/udp=10.244.1.8:53']);
    expect(r.code).toBe(0);
    expect(t.get(parseServiceAddr('10.96.0.11:53/udp'))).toEqual({ ip: '10.244.1.8', port: 53 });
    r = await runServices(['--pin-dir', dir, 'remove', '10.96.0.11:53/udp', '10.96.0.12:443/tcp']);
    expect(r.code).toBe(0);
    expect(t.list().map(formatService)).toEqual(['10.96.0.10:80/tcp → 10.244.1.5:8080']);
    r = await runServices(['--pin-dir', dir, 'list', '--json']);
    expect(JSON.parse(r.stdout).services).toEqual([{ service: '10.96.0.10:80/tcp', backends: [{ backend: '10.244.1.5:8080', weight: 1, share: 1 }], packets: 0, bytes: 0 }]);
  });

  it('ends quietly with exit 0 when its reader goes away (| head -1)', async () => {
    t.write(Array.from({ length: 200 }, (_, i) => parseService(`10.98.0.${i + 1}:80/tcp=10.246.0.${i + 1}:80`)), 'add');
    try {
      for (const args of [['list'], ['list', '--json'], ['stats'], ['--help']]) {
        const r = await runServices(['--pin-dir', dir, ...args], { closedStdout: true });
        expect(r, args.join(' ')).toEqual({ code: 0, stdout: '', stderr: '' });
      }
    } finally {
      t.remove(Array.from({ length: 200 }, (_, i) => parseServiceAddr(`10.98.0.${i + 1}:80/tcp`)));
    }
  });

  it('stats --json; --help on stdout with exit 0; bad usage exits 2', async () => {
    const r = await runServices(['--pin-dir', dir, 'stats', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { pinDir: string; stats: Record<string, number> };
    expect(j.pinDir).toBe(dir);
    expect(Object.keys(j.stats)).toEqual([...DNAT_REASONS]);
    for (const args of [['--help'], ['list', '--help'], ['stats', '--help']]) {
      const h = await runServices(args);
      expect(h, args.join(' ')).toMatchObject({ code: 0, stderr: '' });
      expect(h.stdout).toMatch(/^Usage: services/);
    }
    for (const args of [[], ['bogus'], ['list', '--bogus'], ['add']]) {
      const u = await runServices(args);
      expect(u.code, args.join(' ')).toBe(2);
      expect(u.stdout).toBe('');
    }
  });

  it('refuses addresses that are not one host\'s, and a backend that is a VIP', async () => {
    const cases: Array<[string, string]> = [
      ['0.0.0.0:80/tcp=10.244.1.6:80', 'error: service: 0.0.0.0 is in 0.0.0.0/8 ("this network"), not the address of one host'],
      ['255.255.255.255:80/udp=10.244.1.6:80', 'error: service: 255.255.255.255 is the broadcast address, not the address of one host'],
      ['224.0.0.1:80/udp=10.244.1.6:80', 'error: service: 224.0.0.1 is a multicast address, not the address of one host'],
      ['10.96.0.11:80/udp=239.1.1.1:80', 'error: backend: 239.1.1.1 is a multicast address, not the address of one host'],
      ['10.96.0.11:80/udp=0.0.0.0:80', 'error: backend: 0.0.0.0 is in 0.0.0.0/8 ("this network"), not the address of one host'],
      ['10.96.0.11:80/udp=255.255.255.255:80', 'error: backend: 255.255.255.255 is the broadcast address, not the address of one host'],
      // A backend that is the VIP of an existing service, or of one in the same command.
      ['10.96.0.11:81/tcp=10.96.0.10:8080', 'error: add service 10.96.0.11:81/tcp: backend 10.96.0.10 of 10.96.0.11:81/tcp is a service address (VIP of 10.96.0.10:80/tcp); a backend must be a real host (EINVAL)'],
    ];
    for (const [spec, msg] of cases) {
      const r = await runServices(['--pin-dir', dir, 'add', spec]);
      expect(r, spec).toEqual({ code: 1, stdout: '', stderr: `${msg}\n` });
    }
    const both = await runServices(['--pin-dir', dir, 'add', '10.96.0.20:80/tcp=10.244.2.1:80', '10.96.0.21:80/tcp=10.96.0.20:80']);
    expect(both.stderr).toBe('error: add 2 services: backend 10.96.0.20 of 10.96.0.21:80/tcp is a service address (VIP of 10.96.0.20:80/tcp); a backend must be a real host (EINVAL)\n');
    // A new VIP that is an existing service's backend.
    const vip = await runServices(['--pin-dir', dir, 'add', '10.244.1.5:80/tcp=10.244.2.2:80']);
    expect(vip.stderr).toBe('error: add service 10.244.1.5:80/tcp: backend 10.244.1.5 of 10.96.0.10:80/tcp is a service address (VIP of 10.244.1.5:80/tcp); a backend must be a real host (EINVAL)\n');
    expect(t.list().map(formatService)).toEqual(['10.96.0.10:80/tcp → 10.244.1.5:8080']);
  });

  it('says where to look when --iface finds no loader in this namespace', async () => {
    const r = await runServices(['--iface', 'nosuch-xdnat', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: find xdp_dnat loader: no xdp_dnat loader on nosuch-xdnat in this network namespace \(nothing pinned at \/sys\/fs\/bpf\/libbpf-ts\/xdp_dnat\/nosuch-xdnat-\d+\); pins are per bpffs and per namespace: .*another network namespace.*ip netns exec.* \(ENOENT\)\n$/);
    // A loader on this interface name in another namespace: named.
    const other = `/sys/fs/bpf/libbpf-ts/xdp_dnat/nosuch-xdnat-1`;
    const o2 = BpfObject.load(ensureObject('xdp_dnat'));
    const t2 = ServiceTable.fromObject(o2);
    try {
      t2.pin(other);
      const o = await runServices(['--iface', 'nosuch-xdnat', 'list']);
      expect(o.stderr).toContain(`; loaders on nosuch-xdnat of other network namespaces pinned ${other}: pass one with --pin-dir`);
    } finally {
      t2.unpin();
      o2.close();
      removePins(other);
    }
  });

  it('prints one error line and changes nothing on bad input, a full map or no loader', async () => {
    const cases: Array<[string[], string]> = [
      [['add', '10.96.0.300:53/udp=10.244.1.6:5353'], "error: service: bad IPv4 address '10.96.0.300'"],
      [['add', '10.96.0.11:53/udp=10.244.1.6:99999'], 'error: backend: port 99999 is out of range (1-65535)'],
      [['add', '10.96.0.11:53/icmp=10.244.1.6:53'], "error: service: unknown protocol 'icmp' (use tcp or udp)"],
      [['add', '10.96.0.11:53/udp=10.244.1.6:53', '10.96.0.12:53/udp=bad:53'], "error: backend: bad IPv4 address 'bad'"],
      [['add', '10.96.0.10:80/tcp=10.244.1.6:80'], 'error: add service 10.96.0.10:80/tcp: service 10.96.0.10:80/tcp exists (→ 10.244.1.5:8080); use change (EEXIST)'],
      [['remove', '10.96.0.99:80/tcp'], 'error: remove service 10.96.0.99:80/tcp: no service 10.96.0.99:80/tcp (ENOENT)'],
    ];
    for (const [args, msg] of cases) {
      const r = await runServices(['--pin-dir', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(`${msg}\n`);
      expect(r.stdout).toBe('');
    }
    const none = await runServices(['--pin-dir', '/sys/fs/bpf/libbpf-ts/xdp_dnat/nothing-here', 'list']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('error: open services at /sys/fs/bpf/libbpf-ts/xdp_dnat/nothing-here: no xdp_dnat loader is running (nothing pinned at /sys/fs/bpf/libbpf-ts/xdp_dnat/nothing-here) (ENOENT)\n');
    // Full: 1023 more services fill it; one more is refused.
    t.write(Array.from({ length: MAX_SERVICES - 1 }, (_, i) => parseService(`10.97.${i >> 8}.${i & 255}:80/tcp=10.245.${i >> 8}.${i & 255}:80`)), 'add');
    const full = await runServices(['--pin-dir', dir, 'add', '10.96.0.11:53/udp=10.244.1.6:5353']);
    expect(full.code).toBe(1);
    expect(full.stderr).toBe('error: add service 10.96.0.11:53/udp: service_map is full (1024 services) (E2BIG)\n');
    expect(t.count()).toBe(MAX_SERVICES);
    expect(t.get(parseServiceAddr('10.96.0.11:53/udp'))).toBeUndefined();
    t.clear();
    t.set(parseService('10.96.0.10:80/tcp=10.244.1.5:8080'));
    expect(t.list().map(formatService)).toEqual(['10.96.0.10:80/tcp → 10.244.1.5:8080']);
  });

  it('the loader refuses conflicting --service options before loading anything', async () => {
    const before = loadedPrograms().filter((p) => p.name === PROGRAMS.forward).map((p) => p.id);
    const cases: Array<[string[], string]> = [
      [['10.96.0.10:80/tcp=10.244.1.5:8080', '10.96.0.11:80/tcp=10.244.1.5:8080'], 'error: check 2 services: backend 10.244.1.5:8080/tcp is listed for both 10.96.0.10:80/tcp and 10.96.0.11:80/tcp (a backend serves one service) (EEXIST)'],
      [['10.96.0.10:80/tcp=10.244.1.5:8080', '10.96.0.10:80/tcp=10.244.1.6:8080'], 'error: check 2 services: service 10.96.0.10:80/tcp is listed twice (EINVAL)'],
      [['10.96.0.10:80/tcp=10.244.1.5:8080', '10.96.0.11:80/tcp=10.96.0.10:80'], 'error: check 2 services: backend 10.96.0.10 of 10.96.0.11:80/tcp is a service address (VIP of 10.96.0.10:80/tcp); a backend must be a real host (EINVAL)'],
    ];
    for (const [svcs, msg] of cases) {
      const r = await runLoader('xdp_dnat', ['lo', ...svcs.flatMap((x) => ['--service', x])]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`${msg}\n`);
    }
    const r = await runLoader('xdp_dnat', ['lo', '--service', '0.0.0.0:80/tcp=10.244.1.5:8080']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('service: 0.0.0.0 is in 0.0.0.0/8 ("this network"), not the address of one host');
    expect(loadedPrograms().filter((p) => p.name === PROGRAMS.forward && !before.includes(p.id))).toEqual([]);
  });

  it('says so when the loader that pinned the maps is gone', async () => {
    const stale = `/sys/fs/bpf/libbpf-ts/xdp_dnat/test-stale-${process.pid}`;
    mkdirSync(stale, { recursive: true });
    const o = BpfObject.load(ensureObject('xdp_dnat'));
    const st = ServiceTable.fromObject(o);
    st.pin(stale);
    o.close(); // programs unloaded: like a loader killed with SIGKILL
    try {
      const r = await runServices(['--pin-dir', stale, 'list']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: open services at ${stale}: the xdp_dnat loader that pinned ${stale} is gone (no program uses its maps); start it again (ESRCH)\n`);
      // A new loader takes the directory over.
      const o2 = BpfObject.load(ensureObject('xdp_dnat'));
      const t2 = ServiceTable.fromObject(o2);
      t2.pin(stale);
      expect((await runServices(['--pin-dir', stale, 'list'])).stdout).toBe('no services\n');
      // ... and a second one may not.
      const o3 = BpfObject.load(ensureObject('xdp_dnat'));
      expect(() => ServiceTable.fromObject(o3).pin(stale)).toThrow(`another xdp_dnat loader is using ${stale}`);
      o3.close();
      t2.unpin();
      o2.close();
    } finally {
      removePins(stale);
    }
  });
});
