/** Writing globals by their BTF shape: paths, ranges, strings, arrays. */
import { describe, expect, it } from 'vitest';
import { elementAt, parseVarPath, shapeName, writeValue } from '../../src/varset.js';
import type { BtfShape } from '../../src/ffi/btf.js';

const u8: BtfShape = { kind: 'int', size: 1, signed: false, bool: false, char: false };
const s8: BtfShape = { kind: 'int', size: 1, signed: true, bool: false, char: false };
const u16: BtfShape = { kind: 'int', size: 2, signed: false, bool: false, char: false };
const s32: BtfShape = { kind: 'int', size: 4, signed: true, bool: false, char: false };
const u64: BtfShape = { kind: 'int', size: 8, signed: false, bool: false, char: false };
const bool: BtfShape = { kind: 'int', size: 1, signed: false, bool: true, char: false };
const ports: BtfShape = { kind: 'array', size: 8, count: 4, elem: u16 };
const label: BtfShape = { kind: 'array', size: 8, count: 8, elem: s8 };
const f64: BtfShape = { kind: 'float', size: 8 };

function write(shape: BtfShape, v: Parameters<typeof writeValue>[2], size = shape.size): Buffer {
  const b = Buffer.alloc(size, 0xee);
  writeValue('x', shape, v, b, 0);
  return b;
}

describe('parseVarPath', () => {
  it('splits names and indexes', () => {
    expect(parseVarPath('ports')).toEqual({ name: 'ports', index: [] });
    expect(parseVarPath('ports[3]')).toEqual({ name: 'ports', index: [3] });
    expect(parseVarPath('m[1][2]')).toEqual({ name: 'm', index: [1, 2] });
  });
  it('refuses malformed paths', () => {
    for (const p of ['ports[', 'ports[-1]', '3x', 'a.b', 'ports[1]x']) expect(() => parseVarPath(p)).toThrow(RangeError);
  });
});

describe('writeValue', () => {
  it('writes integers at their size, in host order', () => {
    expect([...write(u16, 8080)]).toEqual([0x90, 0x1f]);
    expect([...write(s8, -1)]).toEqual([0xff]);
    expect(write(u64, 2n ** 63n).readBigUInt64LE()).toBe(2n ** 63n);
    expect(write(s32, -5).readInt32LE()).toBe(-5);
    expect([...write(bool, true)]).toEqual([1]);
    expect(write(f64, 1.5).readDoubleLE()).toBe(1.5);
  });
  it.each([
    [bool, 256, '256 does not fit a bool (0..1)'],
    [bool, 2, '2 does not fit a bool (0..1)'],
    [u8, 256, '256 does not fit a u8 (0..255)'],
    [u8, -1, '-1 does not fit a u8 (0..255)'],
    [s8, 128, '128 does not fit a s8 (-128..127)'],
    [s32, 1.5, '1.5 is not an integer: s32 holds integers'],
    [u64, 2 ** 60, '1152921504606847000 is beyond 2^53: pass a bigint'],
    [u64, -1n, '-1n does not fit a u64 (0..18446744073709551615)'],
    [u16, 'a', '"a" is not a number: x is a u16'],
    [label, 'eth0eth0', '"eth0eth0" is 8 bytes: x is s8[8], room for 7 and the NUL'],
    [ports, 'ab', '"ab" cannot go into u16[4]: strings go into char arrays'],
    [ports, 5, '5 is not an array: x is u16[4] (set one element with x[i])'],
    [ports, [1, 2, 3, 4, 5], 'an array of 5 is too long for u16[4]'],
    [ports, [1, -2], 'element 1: -2 does not fit a u16 (0..65535)'],
  ] as const)('refuses what does not fit: %s %s', (shape, v, msg) => {
    expect(() => write(shape, v as never)).toThrow(new RangeError(msg));
  });
  it('writes strings NUL-terminated, arrays element by element (the rest kept)', () => {
    expect(write(label, 'eth0').toString('latin1')).toBe('eth0\0\0\0\0');
    expect([...write(ports, [1, 2])]).toEqual([1, 0, 2, 0, 0xee, 0xee, 0xee, 0xee]);
  });
  it('takes exact bytes only', () => {
    expect([...write(u16, new Uint8Array([1, 2]))]).toEqual([1, 2]);
    expect(() => write(u16, new Uint8Array(3))).toThrow(new RangeError('x is 2 bytes, got 3'));
  });
});

describe('elementAt', () => {
  it('finds an element and refuses out-of-range indexes', () => {
    expect(elementAt('ports[3]', ports, 16, [3])).toEqual({ shape: u16, offset: 22 });
    expect(() => elementAt('ports[4]', ports, 0, [4])).toThrow(new RangeError('index 4 is out of range (u16[4]: 0..3)'));
    expect(() => elementAt('v[0]', u16, 0, [0])).toThrow(new RangeError('u16 is not an array'));
    expect(shapeName(label)).toBe('s8[8]');
  });
});
