/**
 * xdp_sock / src/xsk without a kernel: the ring index math (u32 indices
 * that wrap), the producer/consumer protocol of XskRing over a plain
 * buffer standing in for the mapping, XDP_STATISTICS parsing, and the UDP
 * echo rewrite (swaps, checksums: complete, partial, zero).
 */
import { describe, expect, it } from 'vitest';
import { XskRing, isPowerOfTwo, parseStatistics, ringAvailable, ringFree } from '../../src/xsk/index.js';
import { echoUdpInPlace, ipv4Checksum, udpChecksum } from '../../src/lessons/xdp_sock.js';
import { buildFrame, ipChecksum, l4Checksum, parseFrame } from '../helpers/packets.js';

describe('ring index math', () => {
  it('counts entries and free slots across the u32 wrap', () => {
    expect(ringAvailable(10, 4)).toBe(6);
    expect(ringAvailable(3, 0xfffffffe)).toBe(5); // producer wrapped, consumer not yet
    expect(ringAvailable(7, 7)).toBe(0);
    expect(ringFree(8, 3, 0xfffffffe)).toBe(3);
    expect(ringFree(8, 0, 0)).toBe(8);
    expect(isPowerOfTwo(2048)).toBe(true);
    expect(isPowerOfTwo(0)).toBe(false);
    expect(isPowerOfTwo(3)).toBe(false);
  });
});

/** A fake mapping: producer at 0, consumer at 64, flags at 128, entries at 192. */
function fakeRing(kind: 'fill' | 'completion' | 'rx' | 'tx', size: number, start = 0) {
  const buf = new ArrayBuffer(192 + size * 16);
  const words = new Uint32Array(buf);
  words[0] = start;
  words[16] = start;
  const ring = new XskRing(kind, buf, { producer: 0, consumer: 64, flags: 128, desc: 192 }, size);
  return { ring, words, prod: () => words[0], cons: () => words[16], ent: (slot: number, w: number) => words[48 + slot * w] };
}

describe('XskRing', () => {
  it('producer: reserve up to the free slots, write, publish; the consumer index frees slots', () => {
    const { ring, words, prod, ent } = fakeRing('fill', 4, 0xfffffffe);
    expect(ring.reserve(10)).toBe(4);
    for (let k = 0; k < 3; k++) ring.setAddr(k, 4096 * (k + 1));
    expect(prod()).toBe(0xfffffffe); // nothing published before submit
    ring.submit(3);
    expect(prod()).toBe(1); // wrapped
    // slots of indices 0xfffffffe, 0xffffffff, 0 are 2, 3, 0
    expect([ent(2, 2), ent(3, 2), ent(0, 2)]).toEqual([4096, 8192, 12288]);
    expect(ring.reserve(4)).toBe(1);
    words[16] = 0; // the kernel consumed two
    expect(ring.reserve(4)).toBe(3);
  });

  it('consumer: peek what the producer published, read descriptors, release', () => {
    const { ring, words, cons } = fakeRing('rx', 4, 0xffffffff);
    expect(ring.peek(8)).toBe(0);
    // the kernel writes two descriptors at slots 3 and 0 and publishes
    words[48 + 3 * 4] = 256; words[48 + 3 * 4 + 2] = 60;
    words[48 + 0 * 4] = 4096 + 256; words[48 + 0 * 4 + 2] = 1514;
    words[0] = 1;
    expect(ring.peek(8)).toBe(2);
    expect([ring.addr(0), ring.len(0), ring.addr(1), ring.len(1)]).toEqual([256, 60, 4352, 1514]);
    ring.release(1);
    expect(cons()).toBe(0);
    expect(ring.peek(8)).toBe(1);
    expect(ring.addr(0)).toBe(4352);
    ring.release(1);
    expect(cons()).toBe(1);
    expect(ring.peek(8)).toBe(0);
  });

  it('reads the need-wakeup flag', () => {
    const { ring, words } = fakeRing('tx', 4);
    expect(ring.needsWakeup()).toBe(false);
    words[32] = 1;
    expect(ring.needsWakeup()).toBe(true);
  });
});

describe('XDP_STATISTICS', () => {
  it('parses the six u64 counters, and the first three of an old kernel', () => {
    const b = Buffer.alloc(48);
    [1, 2, 3, 4, 5, 6].forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
    expect(parseStatistics(b)).toEqual({ rxDropped: 1, rxInvalidDescs: 2, txInvalidDescs: 3, rxRingFull: 4, rxFillRingEmptyDescs: 5, txRingEmptyDescs: 6 });
    expect(parseStatistics(b.subarray(0, 24)).rxRingFull).toBe(0);
  });
});

describe('UDP echo rewrite', () => {
  const spec = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', src: '10.0.0.2', dst: '10.0.0.1', proto: 17, sport: 40001, dport: 7777 };

  it('swaps MACs, addresses and ports; both checksums stay valid; the payload is untouched (odd and even sizes)', () => {
    for (const n of [0, 1, 2, 3, 17, 64, 511, 1000, 1471, 1472]) {
      const payload = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
      const f = buildFrame({ ...spec, payload });
      const ipCheckBefore = parseFrame(f).ipCheck;
      const b = Buffer.alloc(f.length + 300);
      f.copy(b, 256);
      expect(echoUdpInPlace(b, 256, f.length)).toBe(true);
      const e = b.subarray(256, 256 + f.length);
      const v = parseFrame(e);
      expect([v.src, v.dst, v.sport, v.dport]).toEqual(['10.0.0.1', '10.0.0.2', 7777, 40001]);
      expect(e.subarray(0, 6)).toEqual(f.subarray(6, 12));
      expect(e.subarray(6, 12)).toEqual(f.subarray(0, 6));
      expect(v.ipCheck).toBe(ipCheckBefore); // swapping words keeps the sum
      expect(v.ipCheck).toBe(ipChecksum(e));
      expect(v.ipCheck).toBe(ipv4Checksum(e, 14));
      expect(v.l4Check).toBe(l4Checksum(e));
      expect(v.l4Check).toBe(parseFrame(f).l4Check); // a complete checksum is unchanged by the swap
      expect(e.subarray(42)).toEqual(Buffer.from(payload));
    }
  });

  it('completes a partial checksum (CHECKSUM_PARTIAL: only the pseudo-header sum in the field)', () => {
    const f = buildFrame({ ...spec, payload: Buffer.from('hello, partial') });
    const v = parseFrame(f);
    f.writeUInt16BE(0x1234, v.l4CheckOff);
    expect(echoUdpInPlace(f, 0, f.length)).toBe(true);
    expect(parseFrame(f).l4Check).toBe(l4Checksum(f));
    expect(udpChecksum(f, 14, 34, f.length - 34)).toBe(l4Checksum(f));
  });

  it('leaves a zero UDP checksum zero', () => {
    const f = buildFrame({ ...spec, payload: Buffer.from('abc'), udpNoChecksum: true });
    expect(echoUdpInPlace(f, 0, f.length)).toBe(true);
    expect(parseFrame(f).l4Check).toBe(0);
  });

  it('refuses (changing nothing) non-UDP, fragments, truncated and non-IPv4 frames', () => {
    const cases = [
      buildFrame({ ...spec, proto: 6 }),
      buildFrame({ ...spec, mf: true, payload: new Uint8Array(16) }),
      buildFrame({ ...spec, etherType: 0x86dd }),
    ];
    for (const f of cases) {
      const copy = Buffer.from(f);
      expect(echoUdpInPlace(f, 0, f.length)).toBe(false);
      expect(f).toEqual(copy);
    }
    const f = buildFrame({ ...spec, payload: new Uint8Array(100) });
    expect(echoUdpInPlace(f, 0, 60)).toBe(false); // UDP length past the end
    expect(echoUdpInPlace(f, 0, 40)).toBe(false);
  });
});
