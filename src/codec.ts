/**
 * Codecs: how JS values become the bytes of map keys, map values and ring
 * buffer records, and back. Struct codecs follow a C layout declared with
 * explicit padding; multi-byte fields are host order unless declared as
 * network order (be16, be32, ipv4).
 */
import { endianness } from 'node:os';
import { declareCStruct, type CLayout, type CType } from './ffi/layout.js';

/** Converts values of type T to and from a fixed number of bytes. */
export interface Codec<T> {
  /** Size in bytes. */
  readonly size: number;
  /** Writes `value` at `offset`. Throws a RangeError/TypeError for a value that does not fit. */
  encode(value: T, buf: Buffer, offset?: number): void;
  /** Reads a value at `offset`. */
  decode(buf: Buffer, offset?: number): T;
}

const LE = endianness() === 'LE';

/** Field types of a struct declaration. */
export type FieldSpec =
  | 'u8' | 'u16' | 'u32' | 'i32'
  | 'u64' /* as number: exact up to 2^53 */
  | 'u64big' | 'i64big' /* as bigint */
  | 'be16' | 'be32' /* network byte order in memory, numbers in JS */
  | 'ipv4' /* network byte order in memory, dotted quad in JS */
  | { pad: number } /* explicit padding: written as zeros, not decoded */
  | { bytes: number } /* raw bytes, as a Uint8Array */;

type FieldValue<F> = F extends 'u64big' | 'i64big' ? bigint
  : F extends 'ipv4' ? string
  : F extends { bytes: number } ? Uint8Array
  : number;
type PadKeys<S> = { [K in keyof S]: S[K] extends { pad: number } ? K : never }[keyof S];

/** The JS object type a struct declaration decodes to (pads left out). */
export type StructValue<S extends Record<string, FieldSpec>> = {
  -readonly [K in Exclude<keyof S, PadKeys<S>>]: FieldValue<S[K]>;
};

/** A struct codec, with the C layout it was built from. */
export interface StructCodec<T> extends Codec<T> {
  readonly layout: CLayout;
  /** A value with every field zero. */
  zero(): T;
  /** The declaration it was built from: field name to type, in C member order (pads included). */
  readonly spec?: Readonly<Record<string, FieldSpec>>;
}

function ctypeOf(f: FieldSpec): CType {
  if (typeof f === 'object') return { bytes: 'pad' in f ? f.pad : f.bytes };
  switch (f) {
    case 'u8': return 'uint8_t';
    case 'u16': case 'be16': return 'uint16_t';
    case 'u32': case 'be32': case 'ipv4': return 'uint32_t';
    case 'i32': return 'int32_t';
    case 'u64': case 'u64big': return 'uint64_t';
    case 'i64big': return 'int64_t';
  }
}

/** Parses a dotted-quad IPv4 address into its 32-bit value (network order as a number). Throws a TypeError when malformed. */
export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new TypeError(`bad IPv4 address '${s}'`);
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw new TypeError(`bad IPv4 address '${s}'`);
    v = v * 256 + o;
  }
  return v;
}

/** Formats a 32-bit IPv4 value (as parseIpv4 returns it) as a dotted quad. */
export function formatIpv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/**
 * Parses an IPv6 address in any RFC 4291 text form (full, `::`-compressed,
 * upper or lower case, with a trailing dotted quad such as `::ffff:1.2.3.4`)
 * into its 16 bytes in network order. Throws a TypeError when malformed.
 */
export function parseIpv6(s: string): Uint8Array {
  const bad = () => new TypeError(`bad IPv6 address '${s}'`);
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) throw bad();
  let text = s;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(s);
  if (v4) {
    let n: number;
    try { n = parseIpv4(v4[2]); } catch { throw bad(); }
    tail.push(n >>> 16, n & 0xffff);
    text = v4[1].endsWith('::') ? v4[1] : v4[1].slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) throw bad();
  const groups = (h: string) => (h === '' ? [] : h.split(':').map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad();
    return parseInt(g, 16);
  }));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const given = head.length + rest.length + tail.length;
  let all: number[];
  if (halves.length === 2) {
    if (given > 7) throw bad();
    all = [...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tail];
  } else {
    if (given !== 8) throw bad();
    all = [...head, ...tail];
  }
  const out = new Uint8Array(16);
  all.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/**
 * Formats 16 address bytes (network order) as RFC 5952 text: lowercase hex,
 * no leading zeros, the longest run of two or more zero groups compressed
 * to `::` (the leftmost on a tie; a single zero group is never compressed),
 * and IPv4-mapped addresses (::ffff:0:0/96) as `::ffff:a.b.c.d` (RFC 5952
 * section 5). Throws a TypeError unless given exactly 16 bytes.
 */
export function formatIpv6(b: Uint8Array): string {
  if (!(b instanceof Uint8Array) || b.length !== 16) throw new TypeError('an IPv6 address is 16 bytes');
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1;
  let bestLen = 1; // runs of 2 or more only
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function checkInt(name: string, v: unknown, max: number, min = 0): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name}: ${String(v)} is not an integer in [${min}, ${max}]`);
  }
}
/** @internal used by generated code */
export const __check = { checkInt, parseIpv4, formatIpv4 };

const H = LE ? 'LE' : 'BE';

/**
 * Builds the codec of a C struct from its declaration, in C member order with
 * every pad spelled out. Throws a TypeError if the C compiler would add
 * implicit padding the declaration does not show.
 */
export function struct<S extends Record<string, FieldSpec>>(name: string, spec: S): StructCodec<StructValue<S>> {
  const entries = Object.entries(spec) as [string, FieldSpec][];
  const layout = declareCStruct(name, entries.map(([n, f]) => [n, ctypeOf(f)] as const));
  const enc: string[] = [];
  const dec: string[] = [];
  const zero: string[] = [];
  entries.forEach(([fname, f], i) => {
    const o = `(off + ${layout.fields[i].offset})`;
    const key = JSON.stringify(fname);
    const v = `v[${key}]`;
    const label = JSON.stringify(`${name}.${fname}`);
    if (typeof f === 'object') {
      if ('pad' in f) { enc.push(`b.fill(0, ${o}, ${o} + ${f.pad});`); return; }
      enc.push(`{ const x = ${v}; if (!(x instanceof Uint8Array) || x.length !== ${f.bytes}) throw new TypeError(${label} + ': expected ${f.bytes} bytes'); b.set(x, ${o}); }`);
      dec.push(`${key}: Uint8Array.from(b.subarray(${o}, ${o} + ${f.bytes}))`);
      zero.push(`${key}: new Uint8Array(${f.bytes})`);
      return;
    }
    switch (f) {
      case 'u8': enc.push(`c.checkInt(${label}, ${v}, 255); b[${o}] = ${v};`); dec.push(`${key}: b[${o}]`); break;
      case 'u16': enc.push(`c.checkInt(${label}, ${v}, 65535); b.writeUInt16${H}(${v}, ${o});`); dec.push(`${key}: b.readUInt16${H}(${o})`); break;
      case 'be16': enc.push(`c.checkInt(${label}, ${v}, 65535); b.writeUInt16BE(${v}, ${o});`); dec.push(`${key}: b.readUInt16BE(${o})`); break;
      case 'u32': enc.push(`c.checkInt(${label}, ${v}, 4294967295); b.writeUInt32${H}(${v}, ${o});`); dec.push(`${key}: b.readUInt32${H}(${o})`); break;
      case 'i32': enc.push(`c.checkInt(${label}, ${v}, 2147483647, -2147483648); b.writeInt32${H}(${v}, ${o});`); dec.push(`${key}: b.readInt32${H}(${o})`); break;
      case 'be32': enc.push(`c.checkInt(${label}, ${v}, 4294967295); b.writeUInt32BE(${v}, ${o});`); dec.push(`${key}: b.readUInt32BE(${o})`); break;
      case 'ipv4': enc.push(`b.writeUInt32BE(c.parseIpv4(${v}), ${o});`); dec.push(`${key}: c.formatIpv4(b.readUInt32BE(${o}))`); break;
      case 'u64': enc.push(LE
        ? `c.checkInt(${label}, ${v}, Number.MAX_SAFE_INTEGER); b.writeUInt32LE(${v} >>> 0, ${o}); b.writeUInt32LE(Math.floor(${v} / 4294967296), ${o} + 4);`
        : `c.checkInt(${label}, ${v}, Number.MAX_SAFE_INTEGER); b.writeBigUInt64BE(BigInt(${v}), ${o});`);
        dec.push(LE ? `${key}: b.readUInt32LE(${o}) + b.readUInt32LE(${o} + 4) * 4294967296` : `${key}: Number(b.readBigUInt64BE(${o}))`); break;
      case 'u64big': enc.push(`b.writeBigUInt64${H}(${v}, ${o});`); dec.push(`${key}: b.readBigUInt64${H}(${o})`); break;
      case 'i64big': enc.push(`b.writeBigInt64${H}(${v}, ${o});`); dec.push(`${key}: b.readBigInt64${H}(${o})`); break;
    }
    zero.push(`${key}: ${f === 'u64big' || f === 'i64big' ? '0n' : f === 'ipv4' ? "'0.0.0.0'" : '0'}`);
  });
  // Generated, monomorphic encoders/decoders: fast enough for millions of records per second.
  const encode = new Function('c', `return function encode(v, b, off = 0) { ${enc.join('\n')} }`)(__check);
  const decode = new Function('c', `return function decode(b, off = 0) { return { ${dec.join(',\n')} }; }`)(__check);
  const zeroFn = new Function(`return function zero() { return { ${zero.join(', ')} }; }`)();
  return { size: layout.size, layout, encode, decode, zero: zeroFn, spec: Object.freeze({ ...spec }) };
}

function prim<T>(size: number, encode: (v: T, b: Buffer, o: number) => void, decode: (b: Buffer, o: number) => T): Codec<T> {
  return { size, encode: (v, b, o = 0) => encode(v, b, o), decode: (b, o = 0) => decode(b, o) };
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = prim(1, (v, b, o) => { checkInt('u8', v, 255); b[o] = v; }, (b, o) => b[o]);
/** Unsigned 16-bit integer, host order. */
export const u16: Codec<number> = prim(2, (v, b, o) => { checkInt('u16', v, 65535); b[`writeUInt16${H}`](v, o); }, (b, o) => b[`readUInt16${H}`](o));
/** Unsigned 32-bit integer, host order. */
export const u32: Codec<number> = LE
  ? { size: 4, encode(v, b, o = 0) { checkInt('u32', v, 0xffffffff); b.writeUInt32LE(v, o); }, decode: (b, o = 0) => b.readUInt32LE(o) }
  : prim(4, (v, b, o) => { checkInt('u32', v, 0xffffffff); b.writeUInt32BE(v, o); }, (b, o) => b.readUInt32BE(o));
/** Unsigned 64-bit integer, host order, as a number (exact up to 2^53). */
export const u64: Codec<number> = LE
  ? {
    size: 8,
    encode(v, b, o = 0) {
      checkInt('u64', v, Number.MAX_SAFE_INTEGER);
      b.writeUInt32LE(v >>> 0, o);
      b.writeUInt32LE(Math.floor(v / 4294967296), o + 4);
    },
    decode: (b, o = 0) => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 4294967296,
  }
  : prim(8,
    (v, b, o) => { checkInt('u64', v, Number.MAX_SAFE_INTEGER); b.writeBigUInt64BE(BigInt(v), o); },
    (b, o) => Number(b.readBigUInt64BE(o)));
/** Unsigned 64-bit integer, host order, as a bigint. */
export const u64big: Codec<bigint> = prim(8, (v, b, o) => { b[`writeBigUInt64${H}`](v, o); }, (b, o) => b[`readBigUInt64${H}`](o));
/** IPv4 address in network order, as a dotted quad. */
export const ipv4: Codec<string> = prim(4, (v, b, o) => { b.writeUInt32BE(parseIpv4(v), o); }, (b, o) => formatIpv4(b.readUInt32BE(o)));
/** IPv6 address, 16 bytes in network order, as RFC 5952 text (parseIpv6 / formatIpv6). */
export const ipv6: Codec<string> = prim(16, (v, b, o) => { b.set(parseIpv6(v), o); }, (b, o) => formatIpv6(b.subarray(o, o + 16)));
/** Raw bytes of a fixed size. */
export function bytes(size: number): Codec<Uint8Array> {
  return prim(size, (v, b, o) => {
    if (v.length !== size) throw new TypeError(`expected ${size} bytes, got ${v.length}`);
    b.set(v, o);
  }, (b, o) => Uint8Array.from(b.subarray(o, o + size)));
}

/** IP protocol numbers and names, for display and parsing. */
export const IP_PROTOCOLS: Readonly<Record<number, string>> = {
  1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 41: 'ipv6', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'icmpv6', 89: 'ospf', 132: 'sctp',
};

/** The name of an IP protocol number ("tcp"), or its number as text. */
export function protoName(n: number): string {
  return IP_PROTOCOLS[n] ?? String(n);
}

/** "udp (17)" for a protocol with a name, "proto 253" for one without. */
export function protoLabel(proto: number): string {
  const name = protoName(proto);
  return name === String(proto) ? `proto ${proto}` : `${name} (${proto})`;
}

/** Parses a protocol name or number ("tcp", "17"). Throws a TypeError for an unknown one. */
export function parseProto(s: string): number {
  const lower = s.toLowerCase();
  for (const [n, name] of Object.entries(IP_PROTOCOLS)) if (name === lower) return Number(n);
  if (/^\d+$/.test(s) && Number(s) <= 255) return Number(s);
  throw new TypeError(`unknown protocol '${s}'`);
}

/** An IPv4 prefix: the network address (as parseIpv4 gives it, host bits zero) and its length. */
export interface Ipv4Prefix {
  /** The network address, host bits zero. */
  addr: number;
  /** 0-32. */
  len: number;
}

/** The netmask of a prefix length (0-32) as a 32-bit number. */
function netmask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * Parses 'a.b.c.d/len' (or a bare 'a.b.c.d', taken as /32) into a prefix,
 * clearing the host bits ('192.168.7.9/16' is 192.168.0.0/16). Throws a
 * TypeError for a malformed address or prefix ('10.0.0.0/', '10.0.0.0/x',
 * '10.0.0.0/08'), a RangeError for a length over 32.
 */
export function parseCidr(s: string): Ipv4Prefix {
  if (typeof s !== 'string') throw new TypeError(`bad IPv4 prefix '${String(s)}': expected a.b.c.d/len, e.g. 192.168.0.0/16`);
  const m = /^([^/]+)(?:\/(.*))?$/.exec(s.trim());
  if (!m) throw new TypeError(`bad IPv4 prefix '${s}': expected a.b.c.d/len, e.g. 192.168.0.0/16`);
  let addr: number;
  try {
    addr = parseIpv4(m[1]);
  } catch {
    throw new TypeError(`bad IPv4 prefix '${s}': '${m[1]}' is not an IPv4 address (expected a.b.c.d/len, e.g. 192.168.0.0/16)`);
  }
  let len = 32;
  if (m[2] !== undefined) {
    if (!/^(0|[1-9]\d?)$/.test(m[2])) throw new TypeError(`bad IPv4 prefix '${s}': the length '${m[2]}' is not a number 0-32`);
    len = Number(m[2]);
    if (len > 32) throw new RangeError(`bad IPv4 prefix '${s}': the length ${len} is over 32`);
  }
  return { addr: (addr & netmask(len)) >>> 0, len };
}

/** Formats a prefix as 'a.b.c.d/len' (host bits cleared). */
export function formatCidr(p: Ipv4Prefix): string {
  return `${formatIpv4((p.addr & netmask(p.len)) >>> 0)}/${p.len}`;
}

/** 'a.b.c.d/len' with host bits cleared; a bare address becomes '/32'. Throws as parseCidr. */
export function normalizeCidr(s: string): string {
  return formatCidr(parseCidr(s));
}

/** True when `addr` (dotted quad or number) is inside `prefix` (text or parsed). Throws as parseCidr/parseIpv4. */
export function cidrContains(prefix: string | Ipv4Prefix, addr: string | number): boolean {
  const p = typeof prefix === 'string' ? parseCidr(prefix) : prefix;
  const a = typeof addr === 'string' ? parseIpv4(addr) : addr;
  return ((a & netmask(p.len)) >>> 0) === p.addr;
}

/**
 * The key of an IPv4 BPF_MAP_TYPE_LPM_TRIE (`struct { __u32 prefixlen; __u8
 * data[4]; }`: the length in host order, the address in network order), as
 * 'a.b.c.d/len'. Encoding accepts a bare address as /32 and clears host
 * bits ('10.1.2.3/8' is stored as 10.0.0.0/8, which is what the trie would
 * match anyway); it throws a TypeError/RangeError for a malformed prefix or
 * a length over 32. Decoding gives 'a.b.c.d/len'.
 */
export const lpmIpv4: Codec<string> = {
  size: 8,
  encode(v, b, o = 0) {
    const p = parseCidr(v);
    b[`writeUInt32${H}`](p.len, o);
    b.writeUInt32BE(p.addr, o + 4);
  },
  decode(b, o = 0) {
    const len = b[`readUInt32${H}`](o);
    return `${formatIpv4(b.readUInt32BE(o + 4))}/${len}`;
  },
};
