/**
 * The BTF parser and the BTF-typed codec on bpf/testdata/btf_kinds.bpf.o
 * (parsing an object's BTF needs no privilege): every kind the codec
 * handles, the bytes it writes, and the one-line errors for bad input.
 */
import { describe, expect, it } from 'vitest';
import { Btf, BtfError, BtfKind, btfCodec, hexCodec, toJson, type BtfValue } from '../../src/btf/index.js';
import { ensureObject } from '../../src/cli/build.js';

const btf = Btf.fromFile(ensureObject('testdata', 'btf_kinds'));
const kinds = btfCodec(btf, btf.find('kinds', BtfKind.STRUCT)[0]);
const sample = {
  u8v: 255, s8v: -1, u16v: 65535, s16v: -300, u32v: 4000000000, s32v: -5, u64v: 18446744073709551615n, s64v: -9n,
  flag: true, name: 'hello', bytes: [1, 2, 3, 4], color: 'BLUE', sign: 'NEG', bf_a: 5, bf_b: 100, bf_c: -7, bf_wide: 0xffffffffffn,
  in: { a: 1, b: -2 }, arr: [{ a: 3, b: 4 }, { a: 5, b: 6 }], grid: [[1, 2, 3], [4, 5, 6]], word: 0x01020304,
  un: { as_u32: 0x00050006 }, ptr: '0xdeadbeef', f32: 1.5, f64: -2.25, td: 42, src_ip: '10.0.0.1', daddr: '192.168.1.2',
  seq: 0x01020304, port: 8080, pad: 0,
};
const enc = (v: unknown) => {
  const b = Buffer.alloc(kinds.size);
  kinds.encode(v as BtfValue, b);
  return b;
};
const off = (name: string) => btf.type(btf.find('kinds', BtfKind.STRUCT)[0]).members!.find((m) => m.name === name)!.bitOffset / 8;

describe('Btf.parse', () => {
  it('reads the types of an object file', () => {
    const t = btf.type(btf.find('kinds', BtfKind.STRUCT)[0]);
    expect(t.size).toBe(152);
    expect(btf.typeName(t.id)).toBe('struct kinds');
    expect(btf.find('color', BtfKind.ENUM)).toHaveLength(1);
    expect(btf.datasec('.bss')!.vars.map((v) => v.name)).toEqual(['packets', 'last_len', 'shape', 'unused_ring_rec']);
  });

  it('refuses bytes that are not BTF', () => {
    expect(() => Btf.parse(Buffer.alloc(32))).toThrow(new BtfError('parse BTF: bad magic'));
    expect(() => btf.type(99999)).toThrow(BtfError);
  });
});

describe('btfCodec', () => {
  it('decodes zeros with C field names in member order (anonymous union members merged)', () => {
    const z = kinds.decode(Buffer.alloc(kinds.size)) as Record<string, BtfValue>;
    expect(Object.keys(z)).toEqual(['u8v', 's8v', 'u16v', 's16v', 'u32v', 's32v', 'u64v', 's64v', 'flag', 'name', 'bytes', 'color', 'sign',
      'bf_a', 'bf_b', 'bf_c', 'bf_wide', 'in', 'arr', 'grid', 'word', 'quad', 'un', 'ptr', 'f32', 'f64', 'td', 'src_ip', 'daddr', 'seq', 'port', 'pad']);
    expect(z).toMatchObject({ u64v: 0n, s64v: 0n, flag: false, name: '', color: 'RED', sign: 'ZERO', src_ip: '0.0.0.0', ptr: '0x0', quad: [0, 0, 0, 0] });
  });

  it('round-trips every kind: ints, bool, char[], byte arrays, enums, bitfields, structs, unions, 2-D arrays, pointers, floats, typedefs, __be', () => {
    const got = kinds.decode(enc(sample)) as Record<string, BtfValue>;
    expect(got).toEqual({ ...sample, quad: [4, 3, 2, 1], un: { as_u32: 0x00050006, as_u16: [6, 5] } });
  });

  it('writes JSON straight from the bytes, as toJson of the decoded value', () => {
    for (const v of [sample, {}, { u64v: 2n ** 53n + 1n, s64v: -(2n ** 62n), name: 'a"b\\c' }]) {
      const b = enc(v);
      expect(kinds.json(b)).toBe(toJson(kinds.decode(b)));
      expect(JSON.parse(kinds.json(b)).u8v).toBe((kinds.decode(b) as Record<string, number>).u8v);
    }
    const shifted = Buffer.concat([Buffer.alloc(5, 0xff), enc(sample)]);
    expect(kinds.json(shifted, 5)).toBe(toJson(sample && kinds.decode(enc(sample))));
  });

  it('writes the bytes C would', () => {
    const b = enc(sample);
    expect(b.readBigUInt64LE(off('u64v'))).toBe(18446744073709551615n);
    expect(b.toString('hex', off('src_ip'), off('src_ip') + 4)).toBe('0a000001');
    expect(b.toString('hex', off('port'), off('port') + 2)).toBe('1f90');
    expect(b.readUInt32BE(off('seq'))).toBe(0x01020304);
    expect(b.toString('latin1', off('name'), off('name') + 6)).toBe('hello\0');
    expect(b.readUInt32LE(off('color'))).toBe(7);
    expect(b.readInt32LE(off('sign'))).toBe(-2);
    // bf_a:3 bf_b:7 bf_c:5 share one unsigned int: 5 | 100 << 3 | (-7 & 31) << 10
    expect(b.readUInt32LE(off('sign') + 4) & 0x7fff).toBe(5 | (100 << 3) | ((-7 & 31) << 10));
    const wide = btf.type(btf.find('kinds', BtfKind.STRUCT)[0]).members!.find((m) => m.name === 'bf_wide')!;
    expect(wide.bitSize).toBe(40);
    expect((b.readBigUInt64LE(Math.floor(wide.bitOffset / 8)) >> BigInt(wide.bitOffset % 8)) & 0xffffffffffn).toBe(0xffffffffffn);
    expect(b.readFloatLE(off('f32'))).toBe(1.5);
  });

  it('takes enums by number, 64-bit integers as strings, byte arrays as Uint8Array, and leaves missing fields zero', () => {
    const got = kinds.decode(enc({ color: 1, u64v: '12345678901234567890', bytes: new Uint8Array([9, 8]), bf_a: 7 })) as Record<string, BtfValue>;
    expect(got).toMatchObject({ color: 'GREEN', u64v: 12345678901234567890n, bytes: [9, 8, 0, 0], bf_a: 7, bf_b: 0, u8v: 0 });
    expect((kinds.decode(enc({ color: 5 })) as Record<string, BtfValue>).color).toBe(5);
  });

  it('gives one-line errors naming the field', () => {
    expect(() => enc({ nope: 1 })).toThrow(new TypeError("kinds: struct kinds has no field 'nope' (fields: u8v, s8v, u16v, s16v, u32v, s32v, u64v, s64v, flag, name, bytes, color, sign, bf_a, bf_b, bf_c, bf_wide, in, arr, grid, word, quad, un, ptr, f32, f64, td, src_ip, daddr, seq, port, pad)"));
    expect(() => enc({ in: { c: 1 } })).toThrow(/^kinds\.in: struct inner has no field 'c'/);
    expect(() => enc({ u8v: 256 })).toThrow(new RangeError('kinds.u8v: 256 does not fit in u8 [0, 255]'));
    expect(() => enc({ bf_a: 8 })).toThrow(new RangeError('kinds.bf_a: 8 does not fit in u3 [0, 7]'));
    expect(() => enc({ name: 'twelve chars' })).toThrow(new RangeError("kinds.name: 'twelve chars' is 12 bytes, the field holds 11"));
    expect(() => enc({ color: 'PINK' })).toThrow(new TypeError("kinds.color: enum color has no value 'PINK' (values: RED, GREEN, BLUE)"));
    expect(() => enc({ src_ip: '10.0.0' })).toThrow(new TypeError("kinds.src_ip: bad IPv4 address '10.0.0'"));
    expect(() => enc({ arr: [{}, {}, {}] })).toThrow(new RangeError('kinds.arr: 3 elements given, the array holds 2'));
    expect(() => enc({ u32v: 'x' })).toThrow(new TypeError("kinds.u32v: expected an integer, got 'x'"));
    expect(() => enc(5)).toThrow(/^kinds: expected an object with the fields of struct kinds, got 5$/);
  });

  it('shows __be32 members as numbers when asked ({ ipv4: false })', () => {
    const plain = btfCodec(btf, btf.find('conn_key', BtfKind.STRUCT)[0], { ipv4: false });
    const b = Buffer.from('0a000001c0a8010206000000', 'hex');
    expect(plain.decode(b)).toEqual({ src_ip: 0x0a000001, dst_ip: 0xc0a80102, proto: 6, pad: [0, 0, 0] });
    const dotted = btfCodec(btf, btf.find('conn_key', BtfKind.STRUCT)[0]);
    expect(dotted.decode(b)).toEqual({ src_ip: '10.0.0.1', dst_ip: '192.168.1.2', proto: 6, pad: [0, 0, 0] });
  });
});

describe('hexCodec and toJson', () => {
  it('shows bytes without BTF as hex and takes hex, integers or bytes of the exact size', () => {
    const c = hexCodec(4, 'key');
    const b = Buffer.alloc(4);
    c.encode('0x0a000001', b);
    expect(b.toString('hex')).toBe('0a000001');
    expect(c.decode(b)).toBe('0x0a000001');
    c.encode(1, b);
    expect(c.decode(b)).toBe('0x01000000');
    expect(() => c.encode('0x0a00', b)).toThrow(new RangeError('key: 2 bytes given, 4 needed'));
    expect(() => c.encode('0xzz000000', b)).toThrow(new TypeError("key: bad hex bytes '0xzz000000'"));
  });

  it('prints bigints as exact JSON numbers', () => {
    expect(toJson({ a: 18446744073709551615n, b: [1, 'x'], c: true })).toBe('{"a":18446744073709551615,"b":[1,"x"],"c":true}');
    expect(JSON.parse(toJson({ a: { b: 1 } }, 2))).toEqual({ a: { b: 1 } });
  });
});
