/**
 * BTF, parsed in JS from the raw bytes libbpf hands over (btf__raw_data):
 * the types of an object file, of an opened object, or of a map's BTF in the
 * kernel (btf__load_from_kernel_by_id). Only standalone BTF (what programs
 * and maps carry); kernel and module BTF (split BTF) are not read here.
 */
import { fileBtfBytes, kernelBtfBytes } from '../ffi/btf.js';
import { BpfError } from '../errors.js';

/** BTF kinds (linux/btf.h BTF_KIND_*). */
export const BtfKind = {
  VOID: 0, INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8,
  VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15,
  FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;
export type BtfKindNumber = (typeof BtfKind)[keyof typeof BtfKind];

const KIND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(BtfKind).map(([k, v]) => [v, k.toLowerCase()]));

/** The lowercase name of a BTF kind ("struct", "enum64"). */
export function btfKindName(kind: number): string {
  return KIND_NAMES[kind] ?? `kind ${kind}`;
}

/** A member of a struct or union: bit offset, and the width when it is a bitfield (0 otherwise). */
export interface BtfMemberInfo { name: string; type: number; bitOffset: number; bitSize: number }
/** A named value of an enum (bigint for enum64 values beyond 2^53). */
export interface BtfEnumValue { name: string; value: number | bigint }
/** A variable of a data section. */
export interface BtfSecVar { type: number; offset: number; size: number }

/** One BTF type, as stored; fields beyond id/kind/name depend on the kind. */
export interface BtfTypeInfo {
  id: number;
  kind: number;
  name: string;
  /** Size in bytes (int, struct, union, enum, datasec, float). */
  size: number;
  /** Referenced type (ptr, typedef, modifiers, var, func, array element). */
  type: number;
  /** kind_flag: bitfield offsets in members, signed enums, a union/struct fwd. */
  kflag: boolean;
  /** INT: encoding bits (1 signed, 2 char, 4 bool), bit offset and width. */
  intEncoding?: number;
  intOffset?: number;
  intBits?: number;
  /** ARRAY: element type (in `type`), index type and element count. */
  nelems?: number;
  members?: BtfMemberInfo[];
  values?: BtfEnumValue[];
  /** VAR linkage (0 static, 1 global, 2 extern). */
  linkage?: number;
  vars?: BtfSecVar[];
  params?: Array<{ name: string; type: number }>;
}

const VOID_TYPE: BtfTypeInfo = { id: 0, kind: BtfKind.VOID, name: 'void', size: 0, type: 0, kflag: false };

/** Thrown for malformed BTF and for type ids it does not have. */
export class BtfError extends Error {
  override name = 'BtfError';
}

/** A parsed BTF: every type by id (1-based; id 0 is void). */
export class Btf {
  readonly types: readonly BtfTypeInfo[];
  #byName?: Map<string, number[]>;

  private constructor(types: BtfTypeInfo[]) {
    this.types = types;
  }

  /** Parses raw BTF (the .BTF section's layout, host byte order). Throws a BtfError when malformed. */
  static parse(raw: Uint8Array): Btf {
    const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (b.length < 24 || b.readUInt16LE(0) !== 0xeb9f) {
      if (b.length >= 2 && b.readUInt16BE(0) === 0xeb9f) throw new BtfError('parse BTF: foreign byte order');
      throw new BtfError('parse BTF: bad magic');
    }
    const hdrLen = b.readUInt32LE(4);
    const typeOff = hdrLen + b.readUInt32LE(8);
    const typeLen = b.readUInt32LE(12);
    const strOff = hdrLen + b.readUInt32LE(16);
    const strLen = b.readUInt32LE(20);
    if (typeOff + typeLen > b.length || strOff + strLen > b.length) throw new BtfError('parse BTF: sections past the end');
    const str = (off: number): string => {
      if (off === 0) return '';
      const at = strOff + off;
      const end = b.indexOf(0, at);
      return b.toString('utf8', at, end < 0 || end > strOff + strLen ? strOff + strLen : end);
    };
    const types: BtfTypeInfo[] = [VOID_TYPE];
    let p = typeOff;
    const end = typeOff + typeLen;
    while (p < end) {
      const nameOff = b.readUInt32LE(p);
      const info = b.readUInt32LE(p + 4);
      const sizeOrType = b.readUInt32LE(p + 8);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const kflag = (info >>> 31) === 1;
      const t: BtfTypeInfo = { id: types.length, kind, name: str(nameOff), size: 0, type: 0, kflag };
      p += 12;
      switch (kind) {
        case BtfKind.INT: {
          const e = b.readUInt32LE(p);
          p += 4;
          t.size = sizeOrType;
          t.intEncoding = (e >>> 24) & 0x0f;
          t.intOffset = (e >>> 16) & 0xff;
          t.intBits = e & 0xff;
          break;
        }
        case BtfKind.PTR: case BtfKind.TYPEDEF: case BtfKind.VOLATILE: case BtfKind.CONST:
        case BtfKind.RESTRICT: case BtfKind.FUNC: case BtfKind.TYPE_TAG: case BtfKind.FWD:
          t.type = sizeOrType;
          if (kind === BtfKind.PTR) t.size = 8;
          break;
        case BtfKind.ARRAY:
          t.type = b.readUInt32LE(p);
          t.nelems = b.readUInt32LE(p + 8);
          p += 12;
          break;
        case BtfKind.STRUCT: case BtfKind.UNION:
          t.size = sizeOrType;
          t.members = [];
          for (let i = 0; i < vlen; i++, p += 12) {
            const off = b.readUInt32LE(p + 8);
            t.members.push({
              name: str(b.readUInt32LE(p)),
              type: b.readUInt32LE(p + 4),
              bitOffset: kflag ? off & 0xffffff : off,
              bitSize: kflag ? off >>> 24 : 0,
            });
          }
          break;
        case BtfKind.ENUM:
          t.size = sizeOrType;
          t.values = [];
          for (let i = 0; i < vlen; i++, p += 8) {
            t.values.push({ name: str(b.readUInt32LE(p)), value: kflag ? b.readInt32LE(p + 4) : b.readUInt32LE(p + 4) });
          }
          break;
        case BtfKind.ENUM64:
          t.size = sizeOrType;
          t.values = [];
          for (let i = 0; i < vlen; i++, p += 12) {
            const v = (BigInt(b.readUInt32LE(p + 8)) << 32n) | BigInt(b.readUInt32LE(p + 4));
            const big = kflag ? BigInt.asIntN(64, v) : v;
            const n = Number(big);
            t.values.push({ name: str(b.readUInt32LE(p)), value: Number.isSafeInteger(n) ? n : big });
          }
          break;
        case BtfKind.FUNC_PROTO:
          t.type = sizeOrType;
          t.params = [];
          for (let i = 0; i < vlen; i++, p += 8) t.params.push({ name: str(b.readUInt32LE(p)), type: b.readUInt32LE(p + 4) });
          break;
        case BtfKind.VAR:
          t.type = sizeOrType;
          t.linkage = b.readUInt32LE(p);
          p += 4;
          break;
        case BtfKind.DATASEC:
          t.size = sizeOrType;
          t.vars = [];
          for (let i = 0; i < vlen; i++, p += 12) {
            t.vars.push({ type: b.readUInt32LE(p), offset: b.readUInt32LE(p + 4), size: b.readUInt32LE(p + 8) });
          }
          break;
        case BtfKind.FLOAT:
          t.size = sizeOrType;
          break;
        case BtfKind.DECL_TAG:
          t.type = sizeOrType;
          p += 4;
          break;
        default:
          throw new BtfError(`parse BTF: unknown kind ${kind} at type ${t.id}`);
      }
      types.push(t);
    }
    return new Btf(types);
  }

  /** The BTF of a .bpf.o file. Throws an Error naming the file when it has none. */
  static fromFile(path: string): Btf {
    return Btf.parse(fileBtfBytes(path));
  }

  /** The BTF object with this kernel id (a map's or program's btf_id). Throws a BpfError (ENOENT, EPERM). */
  static fromKernelId(id: number): Btf {
    const r = kernelBtfBytes(id);
    if ('errno' in r) throw new BpfError(`load BTF id ${id}`, r.errno);
    return Btf.parse(r);
  }

  /** Type `id`. Throws a BtfError when there is none. */
  type(id: number): BtfTypeInfo {
    const t = this.types[id];
    if (!t) throw new BtfError(`BTF has no type id ${id} (it has ${this.types.length - 1})`);
    return t;
  }

  /** Skips typedefs and const/volatile/restrict/type tags: the type underneath. */
  resolve(id: number): BtfTypeInfo {
    let t = this.type(id);
    for (let i = 0; i < 64 && isAlias(t.kind); i++) t = this.type(t.type);
    return t;
  }

  /** The size in bytes of type `id` (arrays: elements times count). Throws a BtfError for unsized types (void, func, fwd). */
  sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case BtfKind.ARRAY: return this.sizeOf(t.type) * (t.nelems ?? 0);
      case BtfKind.VAR: return this.sizeOf(t.type);
      case BtfKind.PTR: return 8;
      case BtfKind.INT: case BtfKind.STRUCT: case BtfKind.UNION: case BtfKind.ENUM: case BtfKind.ENUM64:
      case BtfKind.FLOAT: case BtfKind.DATASEC:
        return t.size;
      default: throw new BtfError(`type ${t.id} (${btfKindName(t.kind)} ${t.name}) has no size`);
    }
  }

  /** Ids of the types called `name`, optionally of one kind. */
  find(name: string, kind?: number): number[] {
    if (!this.#byName) {
      this.#byName = new Map();
      for (const t of this.types) {
        if (!t.name) continue;
        const l = this.#byName.get(t.name);
        if (l) l.push(t.id); else this.#byName.set(t.name, [t.id]);
      }
    }
    const ids = this.#byName.get(name) ?? [];
    return kind === undefined ? ids : ids.filter((i) => this.types[i].kind === kind);
  }

  /** The C spelling of a type ("struct conn_key", "__u32", "char[16]", "void *"). */
  typeName(id: number): string {
    const t = this.type(id);
    switch (t.kind) {
      case BtfKind.VOID: return 'void';
      case BtfKind.STRUCT: return `struct ${t.name || '(anon)'}`;
      case BtfKind.UNION: return `union ${t.name || '(anon)'}`;
      case BtfKind.ENUM: case BtfKind.ENUM64: return `enum ${t.name || '(anon)'}`;
      case BtfKind.FWD: return `${t.kflag ? 'union' : 'struct'} ${t.name}`;
      case BtfKind.PTR: return `${this.typeName(t.type)} *`;
      case BtfKind.ARRAY: return `${this.typeName(t.type)}[${t.nelems}]`;
      case BtfKind.CONST: return `const ${this.typeName(t.type)}`;
      case BtfKind.VOLATILE: return `volatile ${this.typeName(t.type)}`;
      case BtfKind.RESTRICT: return `${this.typeName(t.type)} restrict`;
      case BtfKind.TYPE_TAG: return this.typeName(t.type);
      case BtfKind.FUNC_PROTO: return 'function';
      default: return t.name || `(${btfKindName(t.kind)})`;
    }
  }

  /** The typedef names on the way from `id` to its resolved type, outermost first ("__be32", "__u32"). */
  typedefChain(id: number): string[] {
    const out: string[] = [];
    let t = this.type(id);
    for (let i = 0; i < 64 && isAlias(t.kind); i++) {
      if (t.kind === BtfKind.TYPEDEF) out.push(t.name);
      t = this.type(t.type);
    }
    return out;
  }

  /** The variables of data section `name` (".bss", ".data", ".rodata"...), with names and type ids, or undefined when there is no such section. */
  datasec(name: string): { id: number; size: number; vars: Array<{ name: string; type: number; offset: number; size: number }> } | undefined {
    const id = this.find(name, BtfKind.DATASEC)[0];
    if (id === undefined) return undefined;
    const t = this.types[id];
    return {
      id,
      size: t.size,
      vars: (t.vars ?? []).map((v) => {
        const vt = this.type(v.type);
        return vt.kind === BtfKind.VAR ? { name: vt.name, type: vt.type, offset: v.offset, size: v.size } : { name: vt.name, type: v.type, offset: v.offset, size: v.size };
      }),
    };
  }
}

function isAlias(kind: number): boolean {
  return kind === BtfKind.TYPEDEF || kind === BtfKind.CONST || kind === BtfKind.VOLATILE || kind === BtfKind.RESTRICT || kind === BtfKind.TYPE_TAG;
}
