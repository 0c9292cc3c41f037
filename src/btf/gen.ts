/**
 * `bpfts gen types`: TypeScript for the structs, unions and enums an
 * object's maps, globals and named types use, from its BTF (what bpf2go
 * and `bpftool gen skeleton` do for Go and C).
 *
 * For each struct it prints a codec declaration in the struct() DSL of
 * src/codec.ts, with every pad spelled out (members named pad*, and the
 * holes C leaves, as `_padN`), and the TS type it decodes to. Member
 * types map as: u8/u16/u32 and s32 to 'u8'/'u16'/'u32'/'i32', __be16/__be32
 * to 'be16'/'be32' ('ipv4' for a __be32 named *ip or *addr), 64-bit
 * integers and pointers to 'u64' (a number: exact up to 2^53) or, with
 * { bigint: true }, 'u64big'/'i64big', byte-sized arrays to { bytes: N },
 * enums to 'u32'/'i32'. A struct with members the DSL cannot express
 * (nested structs, other arrays, bitfields, unions, floats, signed 8/16-bit)
 * gets only a TS type in the shape the BTF codec decodes (obj.map(name)
 * with no codecs) and a comment saying why. Enums become const objects.
 */
import type { FieldSpec } from '../codec.js';
import { Btf, BtfKind, type BtfTypeInfo } from './btf.js';
import { isAddressField } from './codec.js';

/** Options of genTypes. */
export interface GenOptions {
  /** Module the generated code imports struct() from (default 'libbpf-ts'). */
  importFrom?: string;
  /** More struct/union/enum names to include (ring buffer records, which no map names). */
  types?: string[];
  /** 64-bit members as 'u64big'/'i64big' (bigint) instead of 'u64' (number). */
  bigint?: boolean;
  /** The object's file name, for the header comment. */
  source?: string;
}

/** One generated struct. */
export interface GenStruct {
  cName: string;
  size: number;
  /** The struct() declaration, or undefined when the DSL cannot express it. */
  spec?: Record<string, FieldSpec>;
  /** Why there is no spec. */
  why?: string;
  codecName: string;
  typeName: string;
}

/** What genTypes produced: the text and, for tests, each struct's spec. */
export interface GenResult {
  text: string;
  structs: GenStruct[];
  enums: string[];
  maps: Array<{ name: string; type: number; key?: string; value?: string; maxEntries?: number }>;
}

/** Thrown for a --type the BTF does not have. */
export class GenError extends Error {
  override name = 'GenError';
}

const camel = (s: string) => s.replace(/_+([a-z0-9])/gi, (_, c: string) => c.toUpperCase()).replace(/^[^A-Za-z_$]/, '_$&');
const pascal = (s: string) => { const c = camel(s); return c.charAt(0).toUpperCase() + c.slice(1); };

const MAP_TYPE_NAMES = [
  'unspec', 'hash', 'array', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array', 'stack_trace', 'cgroup_array',
  'lru_hash', 'lru_percpu_hash', 'lpm_trie', 'array_of_maps', 'hash_of_maps', 'devmap', 'sockmap', 'cpumap', 'xskmap', 'sockhash',
  'cgroup_storage', 'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack', 'sk_storage', 'devmap_hash', 'struct_ops',
  'ringbuf', 'inode_storage', 'task_storage', 'bloom_filter', 'user_ringbuf', 'cgrp_storage', 'arena',
];

/** Generates TypeScript for the object's BTF. Throws a GenError for a named type it does not have. */
export function genTypes(btf: Btf, opts: GenOptions = {}): GenResult {
  // Structs given a struct() codec have DSL-shaped interfaces (u64 as number...); where the
  // BTF codec's shape is meant (other structs' members, globals), they are spelled inline.
  const dsl = new Set<number>();
  const wanted: number[] = [];
  const maps: GenResult['maps'] = [];
  // .maps: each variable is a struct whose members type/max_entries (int as array length) and key/value (pointers) describe the map.
  const mapsSec = btf.datasec('.maps');
  for (const v of mapsSec?.vars ?? []) {
    const def = btf.resolve(v.type);
    const m: GenResult['maps'][number] = { name: v.name, type: 0 };
    for (const mem of def.members ?? []) {
      const pt = btf.resolve(mem.type);
      const target = pt.kind === BtfKind.PTR ? btf.resolve(pt.type) : undefined;
      if ((mem.name === 'type' || mem.name === 'max_entries') && target?.kind === BtfKind.ARRAY) {
        if (mem.name === 'type') m.type = target.nelems ?? 0; else m.maxEntries = target.nelems;
      }
      if ((mem.name === 'key' || mem.name === 'value') && pt.kind === BtfKind.PTR) {
        m[mem.name] = btf.typeName(pt.type);
        wanted.push(pt.type);
      }
    }
    maps.push(m);
  }
  const globals: Array<{ section: string; vars: Array<{ name: string; type: number }> }> = [];
  for (const t of btf.types) {
    if (t.kind !== BtfKind.DATASEC || !/^\.(bss|data|rodata)/.test(t.name)) continue;
    const sec = btf.datasec(t.name)!;
    globals.push({ section: t.name.slice(1), vars: sec.vars });
    for (const v of sec.vars) wanted.push(v.type);
  }
  for (const name of opts.types ?? []) {
    const ids = btf.find(name).filter((i) => [BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.TYPEDEF].includes(btf.types[i].kind as never));
    if (ids.length === 0) throw new GenError(`no struct, union, enum or typedef named '${name}' in the BTF`);
    wanted.push(ids[0]);
  }

  // Every named struct/union/enum reachable from what is wanted, dependencies first.
  const order: BtfTypeInfo[] = [];
  const seen = new Set<number>();
  const visit = (id: number) => {
    const t = btf.resolve(id);
    if (seen.has(t.id)) return;
    seen.add(t.id);
    if (t.kind === BtfKind.ARRAY || t.kind === BtfKind.PTR) { if (t.kind === BtfKind.ARRAY) visit(t.type); return; }
    if (t.kind === BtfKind.STRUCT || t.kind === BtfKind.UNION) {
      for (const m of t.members ?? []) visit(m.type);
      if (t.name) order.push(t);
    } else if ((t.kind === BtfKind.ENUM || t.kind === BtfKind.ENUM64) && t.name) order.push(t);
  };
  for (const id of wanted) visit(id);

  const out: string[] = [];
  out.push(`// Generated by \`bpfts gen types${opts.source ? ` ${opts.source}` : ''}\` from its BTF: do not edit.`);
  const structs: GenStruct[] = [];
  const enums: string[] = [];
  const body: string[] = [];
  for (const t of order) {
    if (t.kind === BtfKind.ENUM || t.kind === BtfKind.ENUM64) {
      enums.push(t.name);
      const cn = pascal(t.name);
      body.push('', `/** enum ${t.name} (${t.size} bytes). The BTF codec shows these by name. */`);
      body.push(`export const ${cn} = {`);
      for (const v of t.values ?? []) body.push(`  ${/^[A-Za-z_$][\w$]*$/.test(v.name) ? v.name : JSON.stringify(v.name)}: ${typeof v.value === 'bigint' ? `${v.value}n` : v.value},`);
      body.push('} as const;', `export type ${cn}Name = keyof typeof ${cn};`);
      continue;
    }
    const g = structOf(btf, t, opts.bigint ?? false);
    structs.push(g);
    if (g.spec) dsl.add(t.id);
    const kw = t.kind === BtfKind.UNION ? 'union' : 'struct';
    body.push('');
    if (g.spec) {
      body.push(`/** ${kw} ${t.name} (${t.size} bytes) */`);
      body.push(`export const ${g.codecName} = struct(${JSON.stringify(t.name)}, {`);
      for (const [k, f] of Object.entries(g.spec)) body.push(`  ${k}: ${typeof f === 'string' ? `'${f}'` : 'pad' in f ? `{ pad: ${f.pad} }` : `{ bytes: ${f.bytes} }`},`);
      body.push('});');
      body.push(`/** ${kw} ${t.name} as ${g.codecName} decodes it. */`);
      body.push(`export interface ${g.typeName} {`);
      for (const [k, f] of Object.entries(g.spec)) {
        if (typeof f === 'object' && 'pad' in f) continue;
        body.push(`  ${k}: ${dslTsType(f)};`);
      }
      body.push('}');
    } else {
      body.push(`/** ${kw} ${t.name} (${t.size} bytes), as the BTF codec decodes it (obj.map(name) with no codecs): no struct() codec, ${g.why}. */`);
      body.push(`export interface ${g.typeName} {`);
      for (const [name, ts] of btfMembers(btf, t, dsl)) body.push(`  ${name}: ${ts};`);
      body.push('}');
    }
  }
  if (maps.length) {
    body.push('', '/** The maps of the object: type, size, and the C types of key and value. */', 'export const maps = {');
    for (const m of maps) {
      body.push(`  ${/^[A-Za-z_$][\w$]*$/.test(m.name) ? m.name : JSON.stringify(m.name)}: { type: '${MAP_TYPE_NAMES[m.type] ?? m.type}', maxEntries: ${m.maxEntries ?? 0}, key: ${m.key ? JSON.stringify(m.key) : 'null'}, value: ${m.value ? JSON.stringify(m.value) : 'null'} },`);
    }
    body.push('} as const;');
  }
  for (const g of globals) {
    body.push('', `/** The variables of .${g.section}, as obj.globals.${g.section.includes('.') ? `['${g.section}']` : g.section} shows them (through the mapping, BTF-typed). */`);
    body.push(`export interface ${pascal(g.section.replace(/\./g, '_'))}Globals {`);
    for (const v of g.vars) body.push(`  ${v.name}: ${btfTsType(btf, v.type, v.name, dsl)};`);
    body.push('}');
  }
  if (structs.some((s) => s.spec)) out.push(`import { struct } from '${opts.importFrom ?? 'libbpf-ts'}';`);
  out.push(...body);
  return { text: `${out.join('\n')}\n`, structs, enums, maps };
}

function dslTsType(f: FieldSpec): string {
  if (typeof f === 'object') return 'Uint8Array';
  if (f === 'u64big' || f === 'i64big') return 'bigint';
  if (f === 'ipv4') return 'string';
  return 'number';
}

/** The struct() spec of a struct, or why there is none. */
function structOf(btf: Btf, t: BtfTypeInfo, bigint: boolean): GenStruct {
  const base: GenStruct = { cName: t.name, size: t.size, codecName: camel(t.name), typeName: pascal(t.name) };
  if (t.kind === BtfKind.UNION) return { ...base, why: 'it is a union' };
  const spec: Record<string, FieldSpec> = {};
  let at = 0;
  let pads = 0;
  for (const m of t.members ?? []) {
    if (m.bitSize || m.bitOffset % 8) return { ...base, why: `member ${m.name} is a bitfield` };
    const off = m.bitOffset / 8;
    if (off > at) spec[`_pad${pads++}`] = { pad: off - at };
    if (!m.name) return { ...base, why: 'it has an anonymous member' };
    const size = btf.sizeOf(m.type);
    const f = fieldOf(btf, m.type, m.name, size, bigint);
    if (typeof f !== 'object' || !('why' in f)) spec[m.name] = f;
    else return { ...base, why: `member ${m.name} ${f.why}` };
    at = off + size;
  }
  if (t.size > at) spec[`_pad${pads++}`] = { pad: t.size - at };
  return { ...base, spec };
}

function fieldOf(btf: Btf, type: number, name: string, size: number, bigint: boolean): FieldSpec | { why: string } {
  const t = btf.resolve(type);
  const be = btf.typedefChain(type).some((n) => /^__be(16|32|64)$/.test(n));
  if (/^_*pad\d*$/.test(name) && (t.kind === BtfKind.INT || (t.kind === BtfKind.ARRAY && btf.resolve(t.type).size === 1))) return { pad: size };
  switch (t.kind) {
    case BtfKind.INT: {
      const signed = (t.intEncoding! & 1) !== 0;
      if ((t.intEncoding! & 4) !== 0) return { why: 'is a _Bool' };
      if (be) {
        if (t.size === 2) return 'be16';
        if (t.size === 4) return isAddressField(name) ? 'ipv4' : 'be32';
        return { why: 'is a __be64' };
      }
      if (t.size === 1 && !signed) return 'u8';
      if (t.size === 2 && !signed) return 'u16';
      if (t.size === 4) return signed ? 'i32' : 'u32';
      if (t.size === 8) return bigint ? (signed ? 'i64big' : 'u64big') : signed ? 'i64big' : 'u64';
      return { why: `is a ${signed ? 'signed' : ''} ${t.size * 8}-bit integer` };
    }
    case BtfKind.ENUM: return t.size === 4 ? (t.kflag ? 'i32' : 'u32') : { why: `is a ${t.size}-byte enum` };
    case BtfKind.PTR: return 'u64big';
    // an array of wider integers has no struct() field of its own: its bytes, as the lessons' layouts spell it
    case BtfKind.ARRAY: return { bytes: size };
    case BtfKind.STRUCT: return { why: 'is a nested struct' };
    case BtfKind.UNION: return { why: 'is a union' };
    case BtfKind.FLOAT: return { why: 'is a float' };
    default: return { why: `is a ${btf.typeName(type)}` };
  }
}

/** Members of a struct/union with the TS types of the BTF codec's shapes (anonymous members merged). */
function btfMembers(btf: Btf, t: BtfTypeInfo, dsl: ReadonlySet<number>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const m of t.members ?? []) {
    const mt = btf.resolve(m.type);
    if (!m.name && (mt.kind === BtfKind.STRUCT || mt.kind === BtfKind.UNION)) { out.push(...btfMembers(btf, mt, dsl)); continue; }
    if (m.bitSize) { out.push([m.name, m.bitSize > 32 ? 'bigint' : mt.kind === BtfKind.ENUM ? `${enumTs(mt)} | number` : 'number']); continue; }
    out.push([m.name, btfTsType(btf, m.type, m.name, dsl)]);
  }
  return out;
}

function enumTs(t: BtfTypeInfo): string {
  return t.name ? `${pascal(t.name)}Name` : (t.values ?? []).map((v) => JSON.stringify(v.name)).join(' | ') || 'string';
}

/** The TS type of what the BTF codec decodes for `type` (see src/btf/codec.ts). */
function btfTsType(btf: Btf, type: number, name: string, dsl: ReadonlySet<number>): string {
  const t = btf.resolve(type);
  switch (t.kind) {
    case BtfKind.INT: {
      if ((t.intEncoding! & 4) !== 0) return 'boolean';
      const be = btf.typedefChain(type).some((n) => n === '__be32');
      if (be && t.size === 4 && isAddressField(name)) return 'string';
      return t.size >= 8 ? 'bigint' : 'number';
    }
    case BtfKind.ENUM: case BtfKind.ENUM64: return `${enumTs(t)} | number`;
    case BtfKind.PTR: return 'string';
    case BtfKind.FLOAT: return 'number';
    case BtfKind.ARRAY: {
      const el = btf.resolve(t.type);
      if (el.kind === BtfKind.INT && el.size === 1 && (el.name === 'char' || (el.intEncoding! & 2) !== 0)) return 'string';
      const inner = btfTsType(btf, t.type, '', dsl);
      return /[|&]/.test(inner) ? `Array<${inner}>` : `${inner}[]`;
    }
    case BtfKind.STRUCT: case BtfKind.UNION:
      return t.name && !dsl.has(t.id) ? pascal(t.name) : `{ ${btfMembers(btf, t, dsl).map(([n, ts]) => `${n}: ${ts}`).join('; ')} }`;
    default: return 'string';
  }
}
