/**
 * Writing a JS value into a global variable's bytes as its BTF type says,
 * refusing what does not fit: 256 into a u8 or a bool, 1.5 into an int, a
 * negative number into an unsigned, a string longer than its char array.
 * Pure (no kernel): BpfObject's setConst/setGlobal use it on a section's
 * initial value.
 */
import { endianness } from 'node:os';
import type { BtfShape } from './ffi/btf.js';

const LE = endianness() === 'LE';

/** A value for a global: a number or bigint (integers, enums, floats), a boolean, a string (char arrays), bytes, or an array of these. */
export type GlobalValue = number | bigint | boolean | string | Uint8Array | readonly GlobalValue[];

/** `name`, or `name[i][j]`: a variable or one element of an array variable. */
export interface VarPath { name: string; index: number[] }

/** Splits 'ports[3]' into { name: 'ports', index: [3] }. Throws a RangeError for a malformed path. */
export function parseVarPath(path: string): VarPath {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$/.exec(path);
  if (!m) throw new RangeError(`${path} is not a variable name or name[index]`);
  return { name: m[1], index: [...m[2].matchAll(/\[(\d+)\]/g)].map((x) => Number(x[1])) };
}

/** A short C-like name of a shape: "u16", "s8", "bool", "char[8]", "u16[4]". */
export function shapeName(s: BtfShape): string {
  switch (s.kind) {
    case 'int': return s.bool ? 'bool' : s.char ? 'char' : `${s.signed ? 's' : 'u'}${s.size * 8}`;
    case 'enum': return `enum (${s.signed ? 's' : 'u'}${s.size * 8})`;
    case 'float': return s.size === 4 ? 'float' : 'double';
    case 'array': return `${shapeName(s.elem)}[${s.count}]`;
    default: return `${s.what} of ${s.size} bytes`;
  }
}

/**
 * Resolves `index` into `shape` (at byte `offset`): the element's shape and
 * offset. Throws a RangeError naming the bound for an index out of range or
 * into something that is not an array.
 */
export function elementAt(path: string, shape: BtfShape, offset: number, index: number[]): { shape: BtfShape; offset: number } {
  for (const i of index) {
    if (shape.kind !== 'array') throw new RangeError(`${shapeName(shape)} is not an array`);
    if (i >= shape.count) throw new RangeError(`index ${i} is out of range (${shapeName(shape)}: 0..${shape.count - 1})`);
    offset += i * shape.elem.size;
    shape = shape.elem;
  }
  return { shape, offset };
}

function intRange(size: number, signed: boolean): [bigint, bigint] {
  const bits = BigInt(size * 8);
  return signed ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n] : [0n, (1n << bits) - 1n];
}

function describe(v: GlobalValue): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return String(v);
}

/**
 * Writes `value` into `out` at `offset` as `shape` (host byte order), or
 * throws a one-line RangeError saying why it does not fit (`path` names
 * the variable in it, e.g. 'ports[3]'). Arrays take a JS array of at most `count` elements
 * (the rest is left as it was), a string for char arrays (it must leave
 * room for the NUL), or exactly the array's bytes.
 */
export function writeValue(path: string, shape: BtfShape, value: GlobalValue, out: Buffer, offset: number): void {
  const refuse = (why: string): never => { throw new RangeError(`${describe(value)} ${why}`); };
  if (value instanceof Uint8Array) {
    if (value.length !== shape.size) throw new RangeError(`${path} is ${shape.size} bytes, got ${value.length}`);
    out.set(value, offset);
    return;
  }
  switch (shape.kind) {
    case 'int': case 'enum': {
      const name = shapeName(shape);
      let n: bigint;
      if (typeof value === 'boolean') n = value ? 1n : 0n;
      else if (typeof value === 'bigint') n = value;
      else if (typeof value === 'number') {
        if (!Number.isInteger(value)) refuse(`is not an integer: ${name} holds integers`);
        if (!Number.isSafeInteger(value)) refuse(`is beyond 2^53: pass a bigint`);
        n = BigInt(value);
      } else return refuse(`is not a number: ${path} is a ${name}`);
      const [lo, hi] = shape.kind === 'int' && shape.bool ? [0n, 1n] : intRange(shape.size, shape.signed);
      if (n < lo || n > hi) refuse(`does not fit a ${name} (${lo}..${hi})`);
      const tmp = Buffer.alloc(8);
      if (LE) tmp.writeBigUInt64LE(BigInt.asUintN(64, n)); else tmp.writeBigUInt64BE(BigInt.asUintN(64, n));
      out.set(LE ? tmp.subarray(0, shape.size) : tmp.subarray(8 - shape.size), offset);
      return;
    }
    case 'float': {
      if (typeof value !== 'number') return refuse(`is not a number: ${path} is a ${shapeName(shape)}`);
      if (shape.size === 4) { if (LE) out.writeFloatLE(value, offset); else out.writeFloatBE(value, offset); }
      else if (LE) out.writeDoubleLE(value, offset); else out.writeDoubleBE(value, offset);
      return;
    }
    case 'array': {
      if (typeof value === 'string') {
        if (shape.elem.kind !== 'int' || shape.elem.size !== 1) return refuse(`cannot go into ${shapeName(shape)}: strings go into char arrays`);
        const bytes = Buffer.from(value, 'utf8');
        if (bytes.length > shape.count - 1) refuse(`is ${bytes.length} bytes: ${path} is ${shapeName(shape)}, room for ${shape.count - 1} and the NUL`);
        out.fill(0, offset, offset + shape.count);
        out.set(bytes, offset);
        return;
      }
      if (!Array.isArray(value)) return refuse(`is not an array: ${path} is ${shapeName(shape)} (set one element with ${path}[i])`);
      const arr = value as readonly GlobalValue[];
      if (arr.length > shape.count) refuse(`is too long for ${shapeName(shape)}`);
      arr.forEach((v, i) => {
        try {
          writeValue(`${path}[${i}]`, shape.elem, v, out, offset + i * shape.elem.size);
        } catch (e) {
          throw e instanceof RangeError ? new RangeError(`element ${i}: ${e.message}`) : e;
        }
      });
      return;
    }
    default:
      return refuse(`cannot be written as a value: ${path} is a ${shapeName(shape)}: pass its bytes as a Uint8Array`);
  }
}
