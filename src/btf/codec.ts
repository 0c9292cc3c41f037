/**
 * BTF-typed codecs: the bytes of a map key, map value or global variable
 * decoded to plain JS values with the C field names, and encoded back, from
 * the type's BTF alone (no hand-written layout).
 *
 * How each BTF kind appears in JS:
 * - integers of 1, 2 or 4 bytes: number; of 8 or 16 bytes: bigint, always
 *   (exact; the CLI prints them as plain JSON numbers). `_Bool`: boolean.
 * - `__be16`/`__be32`/`__be64` typedefs: read in network byte order (a port
 *   is 80, not 20480). A `__be32` struct member whose name ends in `ip` or
 *   `addr` (src_ip, daddr, vip...) is a dotted IPv4 address ("10.0.0.1")
 *   unless the codec is made with { ipv4: false }.
 * - bitfields: number up to 32 bits wide, bigint beyond (little-endian hosts).
 * - enums: the enumerator's name ("XDP_PASS"), or the number when no
 *   enumerator has that value.
 * - `char` arrays: strings (up to the first NUL); other arrays: JS arrays.
 * - structs and unions: objects with every member (a union shows every
 *   member read from the same bytes); anonymous members' fields are merged
 *   into the parent, as C code names them.
 * - pointers: hex strings ("0xffff8881..."); floats: numbers.
 * - anything else (func pointers, fwd-declared types): hex bytes.
 *
 * Encoding takes the same shapes and is lenient where JSON forces it: 64-bit
 * integers as number, bigint or a decimal/0x string; enums by name or
 * number; byte arrays as number arrays or Uint8Array; a field left out is
 * zero. A field the type does not have, or a value that does not fit, throws
 * a one-line TypeError/RangeError naming the field.
 */
import { endianness } from 'node:os';
import type { Codec } from '../codec.js';
import { formatIpv4, parseIpv4 } from '../codec.js';
import { Btf, BtfError, BtfKind, btfKindName } from './btf.js';

/** A decoded BTF value. */
export type BtfValue = number | bigint | string | boolean | BtfValue[] | { [field: string]: BtfValue };

/** Options of btfCodec. */
export interface BtfCodecOptions {
  /** Show `__be32` members named *ip / *addr as dotted IPv4 (default true). */
  ipv4?: boolean;
}

/** A codec of BtfValues that also writes JSON text straight from the bytes. */
export interface ValueCodec extends Codec<BtfValue> {
  /** The JSON text of the value at `offset` (as toJson(decode(...)), without building the object). */
  json(buf: Buffer, offset?: number): string;
}

/** A codec built from BTF, with the C type it decodes. */
export interface BtfCodec extends ValueCodec {
  /** The C spelling of the type ("struct conn_key"). */
  readonly typeName: string;
  /** The BTF type id. */
  readonly typeId: number;
}

const LE = endianness() === 'LE';

interface Node {
  size: number;
  dec(b: Buffer, o: number): BtfValue;
  /** `v` undefined writes zeros. */
  enc(v: unknown, b: Buffer, o: number, path: string): void;
  /** JS source of an expression decoding at `o` (an expression) from buffer `b`; default: a call to dec. */
  dx?(o: string, g: Gen): string;
  /** JS source of an expression giving the JSON text of the value at `o`; default: toJson of dx. */
  jx?(o: string, g: Gen): string;
}

/** Code generation of decoders: closures the generated code calls through F[i]. */
class Gen {
  readonly fns: unknown[] = [];
  ref(fn: unknown): string {
    this.fns.push(fn);
    return `F[${this.fns.length - 1}]`;
  }
  dec(n: Node, o: string): string {
    return n.dx ? n.dx(o, this) : `${this.ref(n.dec)}(b, ${o})`;
  }
  json(n: Node, o: string): string {
    return n.jx ? n.jx(o, this) : `J(${this.dec(n, o)})`;
  }
}

/** JSON text of an unsigned 64-bit integer at `o` (a number when exact, else through BigInt). */
function u64Json(b: Buffer, o: number): string {
  const hi = LE ? b.readUInt32LE(o + 4) : b.readUInt32BE(o);
  if (hi < 0x200000) return String(hi * 4294967296 + (LE ? b.readUInt32LE(o) : b.readUInt32BE(o + 4)));
  return (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)).toString();
}

/** Compiles a node's decoder and JSON writer into functions (monomorphic object literals, no intermediate objects for JSON). */
function compile(node: Node): { decode: (b: Buffer, o: number) => BtfValue; json: (b: Buffer, o: number) => string } {
  const g = new Gen();
  const d = g.dec(node, 'o');
  const j = g.json(node, 'o');
  const make = (body: string) => new Function('F', 'J', 'U', 'IP', `return function (b, o) { return ${body}; }`)(g.fns, toJson, u64Json, formatIpv4);
  return { decode: make(d), json: make(j) };
}

/** Decides whether a __be32 member is shown as an address: its name ends in "ip" or "addr" (src_ip, saddr, vip). */
export function isAddressField(name: string): boolean {
  return /(ip|addr)$/i.test(name);
}

/**
 * The codec of BTF type `typeId` (one value; per-CPU maps repeat it per CPU).
 * Throws a BtfError when the type has no size (void, a function).
 */
export function btfCodec(btf: Btf, typeId: number, opts: BtfCodecOptions = {}): BtfCodec {
  const c = new Compiler(btf, opts.ipv4 ?? true);
  const node = c.node(typeId, '');
  const typeName = btf.typeName(typeId);
  const label = typeName.replace(/^(struct|union|enum) /, '');
  const fast = compile(node);
  return {
    size: node.size,
    typeName,
    typeId,
    decode: (b: Buffer, o = 0) => fast.decode(b, o),
    json: (b: Buffer, o = 0) => fast.json(b, o),
    encode: (v: BtfValue, b: Buffer, o = 0) => {
      if (v === undefined || v === null) throw new TypeError(`${label}: no value given`);
      b.fill(0, o, o + node.size);
      node.enc(v, b, o, label);
    },
  };
}

function fail(path: string, msg: string, kind: 'type' | 'range' = 'type'): never {
  const text = `${path}: ${msg}`;
  throw kind === 'range' ? new RangeError(text) : new TypeError(text);
}

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'bigint') return `${v}`;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}

/** An integer from a number, bigint, or decimal/0x string. */
function toBig(v: unknown, path: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) fail(path, `${v} is not an integer`);
    return BigInt(v);
  }
  if (typeof v === 'string' && /^-?(0x[0-9a-f]+|\d+)$/i.test(v.trim())) {
    const s = v.trim();
    return s.startsWith('-') ? -BigInt(s.slice(1)) : BigInt(s);
  }
  if (typeof v === 'boolean') return v ? 1n : 0n;
  return fail(path, `expected an integer, got ${show(v)}`);
}

function intRange(bits: number, signed: boolean): [bigint, bigint] {
  return signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];
}

function checkRange(x: bigint, bits: number, signed: boolean, path: string): void {
  const [lo, hi] = intRange(bits, signed);
  if (x < lo || x > hi) fail(path, `${x} does not fit in ${signed ? 's' : 'u'}${bits} [${lo}, ${hi}]`, 'range');
}

class Compiler {
  constructor(private readonly btf: Btf, private readonly ipv4: boolean) {}

  /** `name` is the member name this type is reached through ('' at the top or for elements). */
  node(id: number, name: string): Node {
    const btf = this.btf;
    const chain = btf.typedefChain(id);
    const t = btf.resolve(id);
    switch (t.kind) {
      case BtfKind.INT: {
        if ((t.intEncoding! & 4) !== 0) return boolNode(t.size);
        const be = chain.some((n) => /^__be(16|32|64)$/.test(n));
        if (be && t.size === 4 && this.ipv4 && name && isAddressField(name)) return ipv4Node();
        return intNode(t.size, (t.intEncoding! & 1) !== 0, be);
      }
      case BtfKind.ENUM: case BtfKind.ENUM64: return enumNode(t.size, t.kflag, t.values ?? [], btf.typeName(t.id));
      case BtfKind.PTR: return ptrNode();
      case BtfKind.FLOAT: return t.size === 4 || t.size === 8 ? floatNode(t.size) : hexNode(t.size);
      case BtfKind.ARRAY: {
        const el = btf.resolve(t.type);
        const n = t.nelems ?? 0;
        if (el.kind === BtfKind.INT && el.size === 1 && (el.name === 'char' || (el.intEncoding! & 2) !== 0)) return charArrayNode(n);
        return arrayNode(this.node(t.type, ''), n);
      }
      case BtfKind.STRUCT: case BtfKind.UNION: return this.structNode(t.id);
      case BtfKind.DATASEC: {
        const sec = btf.datasec(t.name)!;
        const fields = sec.vars.map((v) => ({ name: v.name, byteOffset: v.offset, node: this.node(v.type, v.name), bits: 0, bitShift: 0, signed: false }));
        return recordNode(t.size, fields, t.name);
      }
      case BtfKind.VAR: return this.node(t.type, t.name);
      default: {
        const size = (() => { try { return btf.sizeOf(id); } catch { return -1; } })();
        if (size < 0) throw new BtfError(`no codec for type ${id} (${btfKindName(t.kind)} ${t.name}): it has no size`);
        return hexNode(size);
      }
    }
  }

  structNode(id: number): Node {
    const t = this.btf.type(id);
    const fields: Field[] = [];
    this.collect(id, 0, fields);
    return recordNode(t.size, fields, this.btf.typeName(id));
  }

  /** The fields of a struct/union, anonymous members flattened, at `baseBits`. */
  collect(id: number, baseBits: number, out: Field[]): void {
    const t = this.btf.resolve(id);
    for (const m of t.members ?? []) {
      const mt = this.btf.resolve(m.type);
      const bitOffset = baseBits + m.bitOffset;
      if (!m.name && (mt.kind === BtfKind.STRUCT || mt.kind === BtfKind.UNION)) {
        this.collect(mt.id, bitOffset, out);
        continue;
      }
      let bits = m.bitSize;
      let shift = bitOffset;
      // Old-style bitfields: the width lives in the INT type (kind_flag off).
      if (!bits && mt.kind === BtfKind.INT && (mt.intBits! !== mt.size * 8 || mt.intOffset! !== 0)) {
        bits = mt.intBits!;
        shift += mt.intOffset!;
      }
      if (bits) {
        if (!LE) throw new BtfError(`bitfield ${m.name}: bitfields are decoded on little-endian hosts only`);
        const signed = mt.kind === BtfKind.INT ? (mt.intEncoding! & 1) !== 0 : mt.kflag;
        const node = mt.kind === BtfKind.ENUM ? enumNode(mt.size, mt.kflag, mt.values ?? [], this.btf.typeName(mt.id)) : undefined;
        out.push({ name: m.name, byteOffset: Math.floor(shift / 8), bitShift: shift % 8, bits, signed, node: node ?? intNode(4, signed, false) });
      } else {
        out.push({ name: m.name, byteOffset: bitOffset / 8, bitShift: 0, bits: 0, signed: false, node: this.node(m.type, m.name) });
      }
    }
  }
}

interface Field { name: string; byteOffset: number; bitShift: number; bits: number; signed: boolean; node: Node }

function recordNode(size: number, fields: Field[], what: string): Node {
  const names = new Set(fields.map((f) => f.name));
  const byName = new Map(fields.map((f) => [f.name, f]));
  const at = (o: string, n: number) => (n === 0 ? o : `(${o} + ${n})`);
  const bitsDec = (f: Field, o: string, g: Gen) => `${g.ref(readBits)}(b, ${at(o, f.byteOffset)}, ${f.bitShift}, ${f.bits}, ${f.signed}, ${g.ref(f.node)})`;
  return {
    size,
    dx: (o, g) => `({ ${fields.map((f) => `${JSON.stringify(f.name)}: ${f.bits ? bitsDec(f, o, g) : g.dec(f.node, at(o, f.byteOffset))}`).join(', ')} })`,
    jx: (o, g) => (fields.length === 0 ? "'{}'" : fields.map((f, i) => `${JSON.stringify(`${i === 0 ? '{' : ','}${JSON.stringify(f.name)}:`)} + ${f.bits ? `J(${bitsDec(f, o, g)})` : g.json(f.node, at(o, f.byteOffset))}`).join(' + ') + " + '}'"),
    dec(b, o) {
      const out: { [k: string]: BtfValue } = {};
      for (const f of fields) out[f.name] = f.bits ? readBits(b, o + f.byteOffset, f.bitShift, f.bits, f.signed, f.node) : f.node.dec(b, o + f.byteOffset);
      return out;
    },
    enc(v, b, o, path) {
      if (v === undefined) return;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `expected an object with the fields of ${what}, got ${show(v)}`);
      for (const k of Object.keys(v)) {
        if (!names.has(k)) fail(`${path}`, `${what} has no field '${k}' (fields: ${[...names].join(', ')})`);
      }
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined) continue;
        const f = byName.get(k)!;
        if (f.bits) writeBits(b, o + f.byteOffset, f.bitShift, f.bits, f.signed, f.node, x, `${path}.${k}`);
        else f.node.enc(x, b, o + f.byteOffset, `${path}.${k}`);
      }
    },
  };
}

function readBits(b: Buffer, at: number, shift: number, bits: number, signed: boolean, node: Node): BtfValue {
  const span = Math.ceil((shift + bits) / 8);
  let x = 0n;
  for (let i = span - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[at + i]);
  x = (x >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
  if (signed) x = BigInt.asIntN(bits, x);
  if (bits > 32) return x; // wide bitfield: bigint
  const n = Number(x);
  return 'enumName' in node ? (node as EnumNode).enumName(n) : n;
}

function writeBits(b: Buffer, at: number, shift: number, bits: number, signed: boolean, node: Node, v: unknown, path: string): void {
  let x: bigint;
  if ('enumValue' in node) x = BigInt((node as EnumNode).enumValue(v, path));
  else x = toBig(v, path);
  checkRange(x, bits, signed, path);
  x = BigInt.asUintN(bits, x);
  const span = Math.ceil((shift + bits) / 8);
  let cur = 0n;
  for (let i = span - 1; i >= 0; i--) cur = (cur << 8n) | BigInt(b[at + i]);
  const mask = ((1n << BigInt(bits)) - 1n) << BigInt(shift);
  cur = (cur & ~mask) | (x << BigInt(shift));
  for (let i = 0; i < span; i++) { b[at + i] = Number(cur & 0xffn); cur >>= 8n; }
}

function intNode(size: number, signed: boolean, be: boolean): Node {
  const n = intNodeBase(size, signed, be);
  const little = be ? false : LE;
  const E = little ? 'LE' : 'BE';
  if (size === 1) { n.dx = (o) => (signed ? `b.readInt8(${o})` : `b[${o}]`); n.jx = (o) => `'' + ${n.dx!(o, undefined as never)}`; }
  if (size === 2 || size === 4) { n.dx = (o) => `b.read${signed ? 'Int' : 'UInt'}${size * 8}${E}(${o})`; n.jx = (o) => `'' + ${n.dx!(o, undefined as never)}`; }
  if (size === 8) {
    n.dx = (o) => `b.readBig${signed ? 'Int' : 'UInt'}64${E}(${o})`;
    n.jx = (o, g) => (signed || !little ? `'' + ${n.dx!(o, g)}` : `U(b, ${o})`);
  }
  return n;
}

function intNodeBase(size: number, signed: boolean, be: boolean): Node {
  const little = be ? false : LE;
  switch (size) {
    case 1: return {
      size,
      dec: signed ? (b, o) => b.readInt8(o) : (b, o) => b[o],
      enc(v, b, o, path) { const x = toBig(v, path); checkRange(x, 8, signed, path); b.writeUInt8(Number(BigInt.asUintN(8, x)), o); },
    };
    case 2: return {
      size,
      dec: signed ? (little ? (b, o) => b.readInt16LE(o) : (b, o) => b.readInt16BE(o)) : (little ? (b, o) => b.readUInt16LE(o) : (b, o) => b.readUInt16BE(o)),
      enc(v, b, o, path) {
        const x = toBig(v, path); checkRange(x, 16, signed, path);
        const n = Number(BigInt.asUintN(16, x));
        if (little) b.writeUInt16LE(n, o); else b.writeUInt16BE(n, o);
      },
    };
    case 4: return {
      size,
      dec: signed ? (little ? (b, o) => b.readInt32LE(o) : (b, o) => b.readInt32BE(o)) : (little ? (b, o) => b.readUInt32LE(o) : (b, o) => b.readUInt32BE(o)),
      enc(v, b, o, path) {
        if (typeof v === 'number' && Number.isInteger(v) && (signed ? v >= -2147483648 && v <= 2147483647 : v >= 0 && v <= 4294967295)) {
          const n = v >>> 0;
          if (little) b.writeUInt32LE(n, o); else b.writeUInt32BE(n, o);
          return;
        }
        const x = toBig(v, path); checkRange(x, 32, signed, path);
        const n = Number(BigInt.asUintN(32, x));
        if (little) b.writeUInt32LE(n, o); else b.writeUInt32BE(n, o);
      },
    };
    case 8: return {
      size,
      dec: signed ? (little ? (b, o) => b.readBigInt64LE(o) : (b, o) => b.readBigInt64BE(o)) : (little ? (b, o) => b.readBigUInt64LE(o) : (b, o) => b.readBigUInt64BE(o)),
      enc(v, b, o, path) {
        const x = toBig(v, path); checkRange(x, 64, signed, path);
        const u = BigInt.asUintN(64, x);
        if (little) b.writeBigUInt64LE(u, o); else b.writeBigUInt64BE(u, o);
      },
    };
    case 16: return {
      size,
      dec(b, o) {
        const lo = little ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o + 8);
        const hi = little ? b.readBigUInt64LE(o + 8) : b.readBigUInt64BE(o);
        const u = (hi << 64n) | lo;
        return signed ? BigInt.asIntN(128, u) : u;
      },
      enc(v, b, o, path) {
        const x = toBig(v, path); checkRange(x, 128, signed, path);
        const u = BigInt.asUintN(128, x);
        const lo = BigInt.asUintN(64, u);
        const hi = u >> 64n;
        if (little) { b.writeBigUInt64LE(lo, o); b.writeBigUInt64LE(hi, o + 8); } else { b.writeBigUInt64BE(hi, o); b.writeBigUInt64BE(lo, o + 8); }
      },
    };
    default: return hexNode(size);
  }
}

function boolNode(size: number): Node {
  return {
    size,
    dec: (b, o) => b[o] !== 0,
    enc(v, b, o, path) {
      if (typeof v === 'boolean') b[o] = v ? 1 : 0;
      else if (v === 0 || v === 1) b[o] = v;
      else fail(path, `expected true or false, got ${show(v)}`);
    },
  };
}

function ipv4Node(): Node {
  return {
    size: 4,
    dx: (o) => `IP(b.readUInt32BE(${o}))`,
    jx: (o) => `'"' + IP(b.readUInt32BE(${o})) + '"'`,
    dec: (b, o) => formatIpv4(b.readUInt32BE(o)),
    enc(v, b, o, path) {
      if (typeof v === 'string') {
        let n: number;
        try { n = parseIpv4(v); } catch { return fail(path, `bad IPv4 address ${show(v)}`); }
        b.writeUInt32BE(n, o);
        return;
      }
      const x = toBig(v, path); checkRange(x, 32, false, path);
      b.writeUInt32BE(Number(x), o);
    },
  };
}

interface EnumNode extends Node {
  enumName(n: number | bigint): BtfValue;
  enumValue(v: unknown, path: string): number | bigint;
}

function enumNode(size: number, signed: boolean, values: Array<{ name: string; value: number | bigint }>, what: string): EnumNode {
  const int = intNode(size, signed, false);
  const byValue = new Map<string, string>();
  for (const e of values) if (!byValue.has(String(e.value))) byValue.set(String(e.value), e.name);
  const byName = new Map(values.map((e) => [e.name, e.value]));
  const enumName = (n: number | bigint): BtfValue => byValue.get(String(n)) ?? n;
  const enumValue = (v: unknown, path: string): number | bigint => {
    if (typeof v === 'string' && !/^-?(0x[0-9a-f]+|\d+)$/i.test(v.trim())) {
      const x = byName.get(v);
      if (x === undefined) fail(path, `${what} has no value '${v}' (values: ${values.map((e) => e.name).join(', ')})`);
      return x;
    }
    return toBig(v, path);
  };
  return {
    size,
    enumName,
    enumValue,
    dec: (b, o) => enumName(int.dec(b, o) as number | bigint),
    enc: (v, b, o, path) => int.enc(enumValue(v, path), b, o, path),
  };
}

function ptrNode(): Node {
  return {
    size: 8,
    dec: (b, o) => `0x${(LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)).toString(16)}`,
    enc(v, b, o, path) {
      const x = toBig(v, path); checkRange(x, 64, false, path);
      if (LE) b.writeBigUInt64LE(x, o); else b.writeBigUInt64BE(x, o);
    },
  };
}

function floatNode(size: 4 | 8): Node {
  return {
    size,
    dec: size === 4 ? (b, o) => (LE ? b.readFloatLE(o) : b.readFloatBE(o)) : (b, o) => (LE ? b.readDoubleLE(o) : b.readDoubleBE(o)),
    enc(v, b, o, path) {
      const x = typeof v === 'string' ? Number(v) : v;
      if (typeof x !== 'number' || Number.isNaN(x) && v !== 'NaN') fail(path, `expected a number, got ${show(v)}`);
      if (size === 4) { if (LE) b.writeFloatLE(x as number, o); else b.writeFloatBE(x as number, o); } else if (LE) b.writeDoubleLE(x as number, o); else b.writeDoubleBE(x as number, o);
    },
  };
}

function charArrayNode(n: number): Node {
  return {
    size: n,
    dec(b, o) {
      const end = b.indexOf(0, o);
      return b.toString('utf8', o, end < 0 || end > o + n ? o + n : end);
    },
    enc(v, b, o, path) {
      if (typeof v === 'string') {
        const bytes = Buffer.from(v, 'utf8');
        if (bytes.length > n) fail(path, `'${v}' is ${bytes.length} bytes, the field holds ${n}`, 'range');
        bytes.copy(b, o);
        return;
      }
      bytesInto(v, n, b, o, path);
    },
  };
}

function bytesInto(v: unknown, n: number, b: Buffer, o: number, path: string): void {
  if (v instanceof Uint8Array || Array.isArray(v)) {
    if (v.length > n) fail(path, `${v.length} elements given, the array holds ${n}`, 'range');
    for (let i = 0; i < v.length; i++) {
      const x = Number(v[i]);
      if (!Number.isInteger(x) || x < -128 || x > 255) fail(`${path}[${i}]`, `${show(v[i])} is not a byte`, 'range');
      b[o + i] = x & 0xff;
    }
    return;
  }
  fail(path, `expected a string or ${n} bytes, got ${show(v)}`);
}

function arrayNode(el: Node, n: number): Node {
  const idx = Array.from({ length: n }, (_, i) => i);
  return {
    size: el.size * n,
    ...(n <= 16 ? {
      dx: (o: string, g: Gen) => `[${idx.map((i) => g.dec(el, `(${o} + ${i * el.size})`)).join(', ')}]`,
      jx: (o: string, g: Gen) => (n === 0 ? "'[]'" : `'[' + ${idx.map((i) => g.json(el, `(${o} + ${i * el.size})`)).join(" + ',' + ")} + ']'`),
    } : {}),
    dec(b, o) {
      const out: BtfValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = el.dec(b, o + i * el.size);
      return out;
    },
    enc(v, b, o, path) {
      if (el.size === 1 && v instanceof Uint8Array) return bytesInto(v, n, b, o, path);
      if (!Array.isArray(v)) fail(path, `expected an array of ${n}, got ${show(v)}`);
      if (v.length > n) fail(path, `${v.length} elements given, the array holds ${n}`, 'range');
      for (let i = 0; i < v.length; i++) el.enc(v[i], b, o + i * el.size, `${path}[${i}]`);
    },
  };
}

function hexNode(size: number): Node {
  return {
    size,
    dx: (o) => `'0x' + b.toString('hex', ${o}, ${o} + ${size})`,
    jx: (o) => `'"0x' + b.toString('hex', ${o}, ${o} + ${size}) + '"'`,
    dec: (b, o) => toHex(b, o, size),
    enc(v, b, o, path) { parseHexInto(v, size, b, o, path); },
  };
}

/** `size` bytes at `o` as '0x' and two hex digits per byte, in memory order. */
export function toHex(b: Buffer, o: number, size: number): string {
  return `0x${b.toString('hex', o, o + size)}`;
}

/**
 * Writes hex bytes ("0x0a000001", spaces allowed between bytes), a
 * Uint8Array, or (for 1, 2, 4 and 8 bytes) an integer in host order.
 * Throws a TypeError/RangeError when it is not exactly `size` bytes.
 */
export function parseHexInto(v: unknown, size: number, b: Buffer, o: number, path: string): void {
  if (v instanceof Uint8Array) {
    if (v.length !== size) fail(path, `${v.length} bytes given, ${size} needed`, 'range');
    b.set(v, o);
    return;
  }
  if (typeof v === 'string' && /^0x/i.test(v.trim())) {
    const hex = v.trim().slice(2).replace(/[\s_:]/g, '');
    if (!/^([0-9a-f]{2})*$/i.test(hex)) fail(path, `bad hex bytes ${show(v)}`);
    if (hex.length / 2 !== size) fail(path, `${hex.length / 2} bytes given, ${size} needed`, 'range');
    b.write(hex, o, 'hex');
    return;
  }
  if ((typeof v === 'number' || typeof v === 'bigint' || (typeof v === 'string' && /^\d+$/.test(v))) && [1, 2, 4, 8].includes(size)) {
    intNode(size, false, false).enc(v, b, o, path);
    return;
  }
  fail(path, `expected ${size} hex bytes (0x...)${[1, 2, 4, 8].includes(size) ? ' or an integer' : ''}, got ${show(v)}`);
}

/** A codec for bytes with no BTF: decodes to hex ("0x0a000001"), encodes from hex, a Uint8Array or (1/2/4/8 bytes) an integer. */
export function hexCodec(size: number, what = 'value'): ValueCodec {
  return {
    size,
    json: (b: Buffer, o = 0) => `"0x${b.toString('hex', o, o + size)}"`,
    decode: (b: Buffer, o = 0) => toHex(b, o, size),
    encode: (v: BtfValue, b: Buffer, o = 0) => parseHexInto(v, size, b, o, what),
  };
}

/**
 * JSON text of a decoded value, with bigints as plain JSON numbers (exact,
 * as bpftool prints them). `indent` as JSON.stringify's.
 */
export function toJson(v: unknown, indent = 0): string {
  return json(v, indent > 0 ? ' '.repeat(indent) : '', '');
}

function json(v: unknown, ind: string, cur: string): string {
  switch (typeof v) {
    case 'bigint': return v.toString();
    case 'number': return Number.isFinite(v) ? String(v) : 'null';
    case 'string': return JSON.stringify(v);
    case 'boolean': return v ? 'true' : 'false';
    case 'undefined': return 'null';
    default: break;
  }
  if (v === null) return 'null';
  const next = cur + ind;
  const nl = ind ? `\n${next}` : '';
  const end = ind ? `\n${cur}` : '';
  const sep = ind ? ': ' : ':';
  if (Array.isArray(v) || v instanceof Uint8Array) {
    const a = Array.from(v as ArrayLike<unknown>);
    if (a.length === 0) return '[]';
    return `[${nl}${a.map((x) => json(x, ind, next)).join(`,${nl}`)}${end}]`;
  }
  const e = Object.entries(v as Record<string, unknown>);
  if (e.length === 0) return '{}';
  return `{${nl}${e.map(([k, x]) => `${JSON.stringify(k)}${sep}${json(x, ind, next)}`).join(`,${nl}`)}${end}}`;
}
