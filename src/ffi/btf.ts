/**
 * Reading struct layouts and global-variable offsets out of BTF, through
 * libbpf's btf API: the ground truth that TS layouts are checked against.
 */
import { bpf, viewOf, type BtfPtr, type MapPtr, type ObjPtr } from './libbpf.js';
import { BtfType, BtfMember, BtfVarSecinfo, decodeStruct } from './structs.js';
import { func, lastErrno, libbpf } from './native.js';

const KIND_STRUCT = 4;
const KIND_UNION = 5;
const KIND_VAR = 14;
const KIND_DATASEC = 15;

/** A member of a BTF struct: byte offset and byte size. */
export interface BtfMemberLayout { name: string; offset: number; size: number }
/** A struct as BTF describes it. */
export interface BtfStructLayout { name: string; size: number; members: BtfMemberLayout[] }
/** A global variable inside a data section (.rodata, .data, .bss); `type` is its BTF type id. */
export interface BtfVarLayout { name: string; offset: number; size: number; type: number }

/**
 * The shape of a value as BTF describes it, modifiers and typedefs skipped:
 * an integer (bool and char flagged), an enum, a float, an array of
 * elements, or anything else (struct, union, pointer) by kind name.
 */
export type BtfShape =
  | { kind: 'int'; size: number; signed: boolean; bool: boolean; char: boolean }
  | { kind: 'enum'; size: number; signed: boolean }
  | { kind: 'float'; size: number }
  | { kind: 'array'; size: number; count: number; elem: BtfShape }
  | { kind: 'other'; size: number; what: string };

interface RawType { name_off: number; info: number; size_or_type: number }

function typeAt(btf: BtfPtr, id: number): { ptr: bigint; t: RawType } {
  const ptr = bpf.btf_type_by_id(btf, id);
  if (!ptr) throw new Error(`BTF type id ${id} not found`);
  return { ptr, t: decodeStruct<RawType>(BtfType, ptr) };
}

/** The layout of struct `name` in `btf`, or undefined when there is none. */
export function btfStruct(btf: BtfPtr, name: string): BtfStructLayout | undefined {
  let id = bpf.btf_find_by_name_kind(btf, name, KIND_STRUCT);
  if (id < 0) id = bpf.btf_find_by_name_kind(btf, name, KIND_UNION);
  if (id < 0) return undefined;
  const { ptr, t } = typeAt(btf, id);
  const vlen = t.info & 0xffff;
  const kflag = (t.info >>> 31) & 1;
  const members: BtfMemberLayout[] = [];
  for (let i = 0; i < vlen; i++) {
    const m = decodeStruct<{ name_off: number; type: number; offset: number }>(BtfMember, ptr, 12 + i * 12);
    const bitOffset = kflag ? m.offset & 0xffffff : m.offset;
    members.push({
      name: bpf.btf_name_by_offset(btf, m.name_off) ?? '',
      offset: bitOffset / 8,
      size: Number(bpf.btf_resolve_size(btf, m.type)),
    });
  }
  return { name, size: t.size_or_type, members };
}

/**
 * The variables of a data section (".rodata", ".bss", ...) with their offsets.
 * Offsets are right in an opened object's BTF (bpf_object__btf: libbpf fixes
 * them up from the ELF symbols); in a .bpf.o's raw BTF (withBtfFile) clang
 * may leave them all 0.
 */
export function btfDatasecVars(btf: BtfPtr, section: string): BtfVarLayout[] {
  const id = bpf.btf_find_by_name_kind(btf, section, KIND_DATASEC);
  if (id < 0) return [];
  const { ptr, t } = typeAt(btf, id);
  const vlen = t.info & 0xffff;
  const out: BtfVarLayout[] = [];
  for (let i = 0; i < vlen; i++) {
    const v = decodeStruct<{ type: number; offset: number; size: number }>(BtfVarSecinfo, ptr, 12 + i * 12);
    const vt = typeAt(btf, v.type);
    if (((vt.t.info >>> 24) & 0x1f) !== KIND_VAR) continue;
    out.push({ name: bpf.btf_name_by_offset(btf, vt.t.name_off) ?? '', offset: v.offset, size: v.size, type: vt.t.size_or_type });
  }
  return out;
}

const KIND_NAMES = ['void', 'int', 'pointer', 'array', 'struct', 'union', 'enum', 'fwd', 'typedef', 'volatile', 'const', 'restrict', 'func', 'func_proto', 'var', 'datasec', 'float', 'decl_tag', 'type_tag', 'enum64'];

/** The shape of BTF type `id` (see BtfShape). */
export function btfShape(btf: BtfPtr, id: number): BtfShape {
  for (let depth = 0; depth < 32; depth++) {
    if (id === 0) return { kind: 'other', size: 0, what: 'void' };
    const { ptr, t } = typeAt(btf, id);
    const kind = (t.info >>> 24) & 0x1f;
    const kflag = (t.info >>> 31) & 1;
    const extra = new DataView(viewOf(ptr, 24));
    switch (kind) {
      case 8: case 9: case 10: case 11: case 18: id = t.size_or_type; continue; // typedef, volatile, const, restrict, type_tag
      case 1: { // int: encoding in bits 24..27 of the word after the header
        const enc = (extra.getUint32(12, true) >>> 24) & 0xf;
        return { kind: 'int', size: t.size_or_type, signed: (enc & 1) !== 0, char: (enc & 2) !== 0, bool: (enc & 4) !== 0 };
      }
      case 6: case 19: return { kind: 'enum', size: t.size_or_type, signed: kflag === 1 };
      case 16: return { kind: 'float', size: t.size_or_type };
      case 3: { // struct btf_array { type, index_type, nelems }
        const elem = btfShape(btf, extra.getUint32(12, true));
        const count = extra.getUint32(20, true);
        return { kind: 'array', size: elem.size * count, count, elem };
      }
      default: return { kind: 'other', size: Number(bpf.btf_resolve_size(btf, id)), what: KIND_NAMES[kind] ?? `kind ${kind}` };
    }
  }
  return { kind: 'other', size: 0, what: 'type chain too deep' };
}

/**
 * Parses the BTF of an ELF object file and calls `fn` with it, freeing it after.
 * Throws an Error naming the file when it has no BTF (build with clang -g).
 */
export function withBtfFile<T>(path: string, fn: (btf: BtfPtr) => T): T {
  const btf = bpf.btf_parse(path, null);
  if (!btf) throw new Error(`parse BTF of ${path}: errno ${lastErrno()} (was it built with clang -g?)`);
  try {
    return fn(btf);
  } finally {
    bpf.btf_free(btf);
  }
}

// ---- raw BTF and BTF by kernel id (the BTF-typed codecs parse the raw bytes in JS) ----

const btfRaw = func<(btf: BtfPtr, size: [number]) => bigint | null>(libbpf, 'const void *btf__raw_data(void *btf, _Out_ uint32_t *size)');
const btfLoadById = func<(id: number) => BtfPtr | null>(libbpf, 'void *btf__load_from_kernel_by_id(uint32_t id)');
const mapBtfKeyTypeId = func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__btf_key_type_id(void *map)');
const mapBtfValueTypeId = func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__btf_value_type_id(void *map)');

/** A copy of a BTF's raw bytes (header, types, strings), in host byte order. Throws an Error when libbpf cannot give them. */
export function btfRawBytes(btf: BtfPtr): Buffer {
  const size: [number] = [0];
  const p = btfRaw(btf, size);
  if (!p) throw new Error(`read raw BTF: errno ${lastErrno()}`);
  return Buffer.from(viewOf(p, size[0]).slice(0));
}

/**
 * The raw bytes of the BTF object with kernel id `id` (a map's btf_id), or
 * the errno when the kernel refuses (ENOENT: no such BTF; EPERM: not root).
 */
export function kernelBtfBytes(id: number): Buffer | { errno: number } {
  const btf = btfLoadById(id);
  if (!btf) return { errno: lastErrno() };
  try {
    return btfRawBytes(btf);
  } finally {
    bpf.btf_free(btf);
  }
}

/** The raw bytes of a .bpf.o's BTF. Throws an Error naming the file when it has none (built without clang -g). */
export function fileBtfBytes(path: string): Buffer {
  return withBtfFile(path, btfRawBytes);
}

/** An opened object's BTF (data sections' offsets fixed up by libbpf), as raw bytes, or undefined when it has none. */
export function objectBtfBytes(obj: ObjPtr): Buffer | undefined {
  const btf = bpf.object_btf(obj);
  return btf ? btfRawBytes(btf) : undefined;
}

/** BTF type ids of an object's map key and value (0 when none). */
export function mapBtfTypeIds(m: MapPtr): { key: number; value: number } {
  return { key: mapBtfKeyTypeId(m), value: mapBtfValueTypeId(m) };
}
