/**
 * Codecs without a kernel: every primitive and every struct field type, round
 * trips, byte order in memory (host vs network), range errors, padding
 * (explicit pads written as zeros, implicit padding refused) and zero().
 */
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  struct, u8, u16, u32, u64, u64big, ipv4, bytes, parseIpv4, formatIpv4, parseProto, protoName, IP_PROTOCOLS,
} from '../../src/codec.js';

const LE = endianness() === 'LE';

/** The bytes of `n` as an unsigned integer of `size` bytes in host order. */
function host(n: number | bigint, size: 1 | 2 | 4 | 8): number[] {
  const b = Buffer.alloc(size);
  if (size === 8) b[LE ? 'writeBigUInt64LE' : 'writeBigUInt64BE'](BigInt.asUintN(64, BigInt(n)));
  else b[LE ? 'writeUIntLE' : 'writeUIntBE'](Number(n), 0, size);
  return [...b];
}

describe('primitive codecs', () => {
  it('have the C sizes', () => {
    expect([u8.size, u16.size, u32.size, u64.size, u64big.size, ipv4.size, bytes(5).size]).toEqual([1, 2, 4, 8, 8, 4, 5]);
  });

  it('round-trip their extremes, at offset 0 by default and at any offset', () => {
    const cases: Array<[typeof u8, number[]]> = [
      [u8, [0, 1, 127, 128, 255]],
      [u16, [0, 1, 0x1234, 0xffff]],
      [u32, [0, 1, 0xdeadbeef, 0xffffffff]],
      [u64, [0, 1, 0xffffffff, 2 ** 32, 2 ** 53 - 1]],
    ];
    for (const [c, values] of cases) {
      for (const v of values) {
        const b = Buffer.alloc(c.size + 3, 0xaa);
        c.encode(v, b);
        expect(c.decode(b)).toBe(v);
        c.encode(v, b, 3);
        expect(c.decode(b, 3)).toBe(v);
      }
    }
    for (const v of [0n, 1n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const b = Buffer.alloc(10);
      u64big.encode(v, b, 2);
      expect(u64big.decode(b, 2)).toBe(v);
    }
  });

  it('write integers in host order', () => {
    const b = Buffer.alloc(8);
    u16.encode(0x1234, b);
    expect([...b.subarray(0, 2)]).toEqual(host(0x1234, 2));
    u32.encode(0x01020304, b);
    expect([...b.subarray(0, 4)]).toEqual(host(0x01020304, 4));
    u64.encode(0x0102030405, b);
    expect([...b]).toEqual(host(0x0102030405, 8));
    u64big.encode(0x0102030405060708n, b);
    expect([...b]).toEqual(host(0x0102030405060708n, 8));
  });

  it('write IPv4 addresses in network order and read them back as dotted quads', () => {
    const b = Buffer.alloc(6, 0xff);
    ipv4.encode('10.96.0.10', b, 1);
    expect([...b]).toEqual([0xff, 10, 96, 0, 10, 0xff]);
    expect(ipv4.decode(b, 1)).toBe('10.96.0.10');
    expect(() => ipv4.encode('10.96.0', b)).toThrow(TypeError);
  });

  it('copy raw bytes and refuse the wrong length', () => {
    const c = bytes(3);
    const b = Buffer.alloc(5);
    c.encode(new Uint8Array([9, 8, 7]), b, 2);
    expect([...b]).toEqual([0, 0, 9, 8, 7]);
    const d = c.decode(b, 2);
    expect(d).toEqual(new Uint8Array([9, 8, 7]));
    b[2] = 1; // the decoded value is a copy, not a view
    expect(d[0]).toBe(9);
    expect(() => c.encode(new Uint8Array(2), b)).toThrow(/expected 3 bytes, got 2/);
  });

  it('refuse values out of range, fractions, and non-numbers with a RangeError naming the type', () => {
    const b = Buffer.alloc(8);
    const bad: Array<[typeof u8, unknown[], string]> = [
      [u8, [256, -1, 1.5, NaN, '1'], 'u8'],
      [u16, [65536, -1, 0.5], 'u16'],
      [u32, [2 ** 32, -1, 1.5, Infinity], 'u32'],
      [u64, [2 ** 53, -1, 1.5], 'u64'],
    ];
    for (const [c, values, name] of bad) {
      for (const v of values) expect(() => c.encode(v as number, b), `${name} ${String(v)}`).toThrow(RangeError);
      expect(() => c.encode(values[0] as number, b)).toThrow(new RegExp(`^${name}: `));
    }
    expect(() => u64big.encode(2n ** 64n, b)).toThrow(RangeError);
    expect(() => u64big.encode(-1n, b)).toThrow(RangeError);
  });
});

describe('IPv4 and protocol helpers', () => {
  it('parse and format addresses as unsigned 32-bit values', () => {
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('10.0.1.2')).toBe(0x0a000102);
    expect(formatIpv4(0x0a000102)).toBe('10.0.1.2');
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    for (const s of ['192.168.1.2', '1.2.3.4', '127.0.0.1']) expect(formatIpv4(parseIpv4(s))).toBe(s);
    for (const s of ['10.96.0.256', '10.96.0', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.x', '', '1..2.3']) {
      expect(() => parseIpv4(s), s).toThrow(/bad IPv4 address/);
    }
  });

  it('parse and name protocols', () => {
    expect(parseProto('TCP')).toBe(6);
    expect(parseProto('udp')).toBe(17);
    expect(parseProto('17')).toBe(17);
    expect(parseProto('255')).toBe(255);
    expect(() => parseProto('256')).toThrow(/unknown protocol '256'/);
    expect(() => parseProto('tcpp')).toThrow(/unknown protocol 'tcpp'/);
    expect(protoName(1)).toBe('icmp');
    expect(protoName(253)).toBe('253');
    for (const [n, name] of Object.entries(IP_PROTOCOLS)) expect(parseProto(name)).toBe(Number(n));
  });
});

describe('struct codecs', () => {
  // Every field type, laid out with no implicit padding.
  const All = struct('all_types', {
    a8: 'u8', pad1: { pad: 1 }, a16: 'u16', a32: 'u32', s32: 'i32', n16: 'be16', raw: { bytes: 2 },
    n32: 'be32', addr: 'ipv4', a64: 'u64', b64: 'u64big', s64: 'i64big',
  });
  const value = {
    a8: 0xab, a16: 0x1234, a32: 0xdeadbeef, s32: -2, n16: 0x0102, raw: new Uint8Array([7, 9]),
    n32: 0x0a0b0c0d, addr: '10.0.1.2', a64: 2 ** 40 + 3, b64: 2n ** 63n + 5n, s64: -(2n ** 62n),
  };

  it('lay fields out at the C offsets', () => {
    expect(All.size).toBe(48);
    expect(All.layout.name).toBe('all_types');
    expect(All.layout.align).toBe(8);
    expect(All.layout.fields.map((f) => [f.name, f.offset, f.size])).toEqual([
      ['a8', 0, 1], ['pad1', 1, 1], ['a16', 2, 2], ['a32', 4, 4], ['s32', 8, 4], ['n16', 12, 2], ['raw', 14, 2],
      ['n32', 16, 4], ['addr', 20, 4], ['a64', 24, 8], ['b64', 32, 8], ['s64', 40, 8],
    ]);
  });

  it('round-trip every field type, leaving pads out of the value', () => {
    const b = Buffer.alloc(All.size);
    All.encode(value, b);
    const d = All.decode(b);
    expect(d).toEqual(value);
    expect('pad1' in d).toBe(false);
  });

  it('write host-order fields in host order and network-order fields big-endian', () => {
    const b = Buffer.alloc(All.size);
    All.encode(value, b);
    expect(b[0]).toBe(0xab);
    expect([...b.subarray(2, 4)]).toEqual(host(0x1234, 2));
    expect([...b.subarray(4, 8)]).toEqual(host(0xdeadbeef, 4));
    expect([...b.subarray(8, 12)]).toEqual(host(0xfffffffe, 4)); // -2
    expect([...b.subarray(12, 14)]).toEqual([0x01, 0x02]); // be16
    expect([...b.subarray(14, 16)]).toEqual([7, 9]);
    expect([...b.subarray(16, 20)]).toEqual([0x0a, 0x0b, 0x0c, 0x0d]); // be32
    expect([...b.subarray(20, 24)]).toEqual([10, 0, 1, 2]); // ipv4
    expect([...b.subarray(24, 32)]).toEqual(host(2 ** 40 + 3, 8));
    expect([...b.subarray(32, 40)]).toEqual(host(2n ** 63n + 5n, 8));
    expect([...b.subarray(40, 48)]).toEqual(host(-(2n ** 62n), 8));
  });

  it('write explicit pads as zeros over whatever was in the buffer, at any offset', () => {
    const K = struct('conn_key', { src_ip: 'ipv4', dst_ip: 'ipv4', proto: 'u8', pad: { pad: 3 } });
    const b = Buffer.alloc(4 + 12 + 4, 0xff);
    K.encode({ src_ip: '1.2.3.4', dst_ip: '5.6.7.8', proto: 6 }, b, 4);
    expect([...b]).toEqual([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(K.decode(b, 4)).toEqual({ src_ip: '1.2.3.4', dst_ip: '5.6.7.8', proto: 6 });
  });

  it('zero() gives every field its zero, and encodes to all-zero bytes', () => {
    const z = All.zero();
    expect(z).toEqual({
      a8: 0, a16: 0, a32: 0, s32: 0, n16: 0, raw: new Uint8Array(2), n32: 0, addr: '0.0.0.0', a64: 0, b64: 0n, s64: 0n,
    });
    const b = Buffer.alloc(All.size, 0x5a);
    All.encode(z, b);
    expect(b.every((x) => x === 0)).toBe(true);
    expect(All.decode(b)).toEqual(z);
    // Each call is a fresh object.
    z.raw[0] = 1;
    expect(All.zero().raw[0]).toBe(0);
  });

  it('refuse field values out of range with an error naming struct and field', () => {
    const b = Buffer.alloc(All.size);
    const bad: Array<[string, unknown, RegExp | ErrorConstructor]> = [
      ['a8', 256, /^all_types\.a8: 256 is not an integer in \[0, 255\]$/],
      ['a8', -1, RangeError],
      ['a16', 65536, /^all_types\.a16: /],
      ['a32', 2 ** 32, /^all_types\.a32: /],
      ['a32', 1.5, RangeError],
      ['s32', 2 ** 31, /^all_types\.s32: .* \[-2147483648, 2147483647\]$/],
      ['s32', -(2 ** 31) - 1, RangeError],
      ['n16', 65536, /^all_types\.n16: /],
      ['n32', -1, /^all_types\.n32: /],
      ['a64', 2 ** 53, /^all_types\.a64: /],
      ['a64', -1, RangeError],
      ['b64', 2n ** 64n, RangeError],
      ['b64', -1n, RangeError],
      ['s64', 2n ** 63n, RangeError],
      ['addr', '10.0.0.300', /bad IPv4 address '10\.0\.0\.300'/],
      ['raw', new Uint8Array(3), /^all_types\.raw: expected 2 bytes$/],
      ['raw', [1, 2], /^all_types\.raw: expected 2 bytes$/],
    ];
    for (const [field, v, err] of bad) {
      expect(() => All.encode({ ...value, [field]: v } as typeof value, b), `${field} = ${String(v)}`).toThrow(err);
    }
    // Edges that do fit.
    All.encode({ ...value, s32: -(2 ** 31), a64: 2 ** 53 - 1, s64: -(2n ** 63n) }, b);
    expect(All.decode(b)).toMatchObject({ s32: -(2 ** 31), a64: 2 ** 53 - 1, s64: -(2n ** 63n) });
  });

  it('refuse declarations the C compiler would pad implicitly', () => {
    expect(() => struct('bad', { proto: 'u8', n: 'u32' })).toThrow(/^struct bad has 3 bytes of implicit padding after 'proto': declare them as a pad field$/);
    expect(() => struct('bad', { a: 'u8', b: 'u16' })).toThrow(/1 bytes of implicit padding after 'a'/);
    expect(() => struct('bad', { a: 'u32', b: 'u64' })).toThrow(/4 bytes of implicit padding after 'a'/);
    expect(() => struct('bad', { a: 'be16', b: 'ipv4' })).toThrow(/2 bytes of implicit padding after 'a'/);
    expect(() => struct('bad', { a: 'u8', pad: { pad: 2 }, b: 'u32' })).toThrow(/1 bytes of implicit padding after 'pad'/);
    expect(() => struct('bad', { n: 'u64', proto: 'u8' })).toThrow(/^struct bad has 7 bytes of implicit trailing padding/);
    expect(() => struct('bad', { n: 'u32', s: 'u16' })).toThrow(/2 bytes of implicit trailing padding/);
    expect(() => struct('bad', { n: 'i64big', b: { bytes: 4 } })).toThrow(/4 bytes of implicit trailing padding/);
    // Byte arrays align to 1, so these need no padding.
    expect(struct('ok', { a: 'u8', b: { bytes: 3 }, c: 'u32' }).size).toBe(8);
    expect(struct('ok', { mac: { bytes: 6 }, proto: 'be16' }).size).toBe(8);
    expect(struct('ok', { a: 'u8', b: 'u8', c: 'u8' }).size).toBe(3);
  });

  it('gives structs of different shapes under the same name their own layouts', () => {
    const A = struct('same', { a: 'u32' });
    const B = struct('same', { a: 'u64' });
    expect([A.size, B.size]).toEqual([4, 8]);
  });
});
