/**
 * Global variables of a loaded object (.bss, .data, .rodata and custom
 * .data.* / .rodata.* sections) and BPF_F_MMAPABLE arrays, read and written
 * through a shared memory mapping of the map, as libbpf's skeletons do
 * (`skel->bss->counter`): a property access is a load from memory, with no
 * syscall. Variables are typed from the object's DATASEC BTF; values follow
 * the BTF codec's rules (src/btf/codec.ts: 64-bit integers are bigints).
 * .rodata is frozen at load: its mapping is read-only and assigning throws.
 */
import { endianness } from 'node:os';
import { mapFd, pageSize, type Mapping } from '../ffi/sys.js';
import { BpfError, Errno } from '../errors.js';
import { Btf, BtfKind } from './btf.js';
import { btfCodec, type BtfCodec, type BtfValue } from './codec.js';

/** BPF_F_MMAPABLE (linux/bpf.h). */
export const BPF_F_MMAPABLE = 0x400;
/** BPF_F_RDONLY_PROG (linux/bpf.h): the program can only read the map (.rodata). */
export const BPF_F_RDONLY_PROG = 0x80;

/** The variables of one data section, as properties: read and assign them. */
export type GlobalVars = Record<string, BtfValue>;

/** Every data section of an object by name without the dot: `globals.bss.packets`, `globals.rodata.verdict`, `globals['data.custom'].x`. */
export type Globals = Readonly<Record<string, GlobalVars>>;

/** A map of an object as globals needs it. */
export interface SectionMap { name: string; fd: number; valueSize: number; maxEntries: number; flags: number }

/** Something to release when the object closes. */
export interface Unmappable { _invalidate(): void }

const LE = endianness() === 'LE';

function mmapLength(valueSize: number, maxEntries: number): number {
  const bytes = Math.ceil(valueSize / 8) * 8 * maxEntries;
  return Math.ceil(bytes / pageSize) * pageSize;
}

function mapIt(m: SectionMap, writable: boolean, what: string): Mapping {
  if ((m.flags & BPF_F_MMAPABLE) === 0) throw new BpfError(`map ${what}`, Errno.EINVAL, `map ${m.name} is not memory-mappable (created without BPF_F_MMAPABLE; kernel >= 5.5 has it for global data)`);
  const r = mapFd(m.fd, mmapLength(m.valueSize, m.maxEntries), 0, writable);
  if ('errno' in r) throw new BpfError(`map ${what}`, r.errno);
  return r;
}

/** The section a map holds: ".bss" for "maps.bss" or "xdp_fire.bss", ".data.custom" for ".data.custom". */
function sectionOf(mapName: string, sections: string[]): string | undefined {
  const exact = sections.find((s) => s === mapName);
  if (exact) return exact;
  return sections.filter((s) => mapName.endsWith(s)).sort((a, b) => b.length - a.length)[0];
}

/**
 * Maps every data section of a loaded object and returns its variables as
 * properties with getters and setters over the mapping. `track` receives
 * what must be unmapped when the object closes; reading or writing after
 * that throws a BpfError (EBADF). Throws a BpfError when a section's map
 * cannot be mapped.
 */
export function openGlobals(btf: Btf | undefined, maps: SectionMap[], objName: string, track: (u: Unmappable) => void): Globals {
  const out: Record<string, GlobalVars> = {};
  if (!btf) return Object.freeze(out);
  const sections = btf.types.filter((t) => t.kind === BtfKind.DATASEC && /^\.(bss|data|rodata)/.test(t.name)).map((t) => t.name);
  for (const m of maps) {
    const sec = sectionOf(m.name, sections);
    if (!sec) continue;
    const info = btf.datasec(sec)!;
    const readOnly = (m.flags & BPF_F_RDONLY_PROG) !== 0;
    const mapping = mapIt(m, !readOnly, `${sec} of ${objName}`);
    const state = { live: true };
    track({ _invalidate() { state.live = false; mapping.unmap(); } });
    const buf = Buffer.from(mapping.buffer, 0, m.valueSize);
    const vars: GlobalVars = Object.create(null) as GlobalVars;
    const label = sec.slice(1);
    const closed = () => new BpfError(`use ${objName} global`, Errno.EBADF, 'object is closed');
    for (const v of info.vars) {
      if (!v.name || v.offset + v.size > m.valueSize) continue;
      const codec = btfCodec(btf, v.type);
      const fast = fastScalar(btf, v.type, mapping.buffer, v.offset, state, closed);
      const set = readOnly
        ? () => { throw new TypeError(`${label}.${v.name} is read-only after load (.rodata is frozen): set it before load`); }
        : fast
          ? (x: BtfValue) => { if (!state.live) throw closed(); fast.set(x, codec, buf, v.offset); }
          : (x: BtfValue) => { if (!state.live) throw closed(); codec.encode(x, buf, v.offset); };
      const get = fast ? fast.get : () => { if (!state.live) throw closed(); return codec.decode(buf, v.offset); };
      Object.defineProperty(vars, v.name, { get, set, enumerable: true });
    }
    out[label] = Object.freeze(vars);
  }
  return Object.freeze(out);
}

/**
 * Plain integer variables read straight from memory (the common counter
 * case): a typed-array element when aligned, else a DataView load; the
 * getter checks the mapping is alive and does nothing else.
 */
function fastScalar(btf: Btf, type: number, ab: ArrayBuffer, off: number, state: { live: boolean }, closed: () => Error):
  { get(): BtfValue; set(x: BtfValue, c: BtfCodec, b: Buffer, o: number): void } | undefined {
  const t = btf.resolve(type);
  if (t.kind !== BtfKind.INT || (t.intEncoding! & 4) || t.intOffset || t.intBits !== t.size * 8) return undefined;
  if (btf.typedefChain(type).some((n) => /^__be/.test(n))) return undefined;
  const signed = (t.intEncoding! & 1) !== 0;
  const slow = (x: BtfValue, c: BtfCodec, b: Buffer, o: number) => c.encode(x, b, o);
  const dv = new DataView(ab);
  const aligned = off % t.size === 0 && LE;
  switch (t.size) {
    case 8: {
      if (aligned) {
        const a = signed ? new BigInt64Array(ab, off, 1) : new BigUint64Array(ab, off, 1);
        return {
          get() { if (!state.live) throw closed(); return a[0]; },
          set: (x, c, b, o) => { if (typeof x === 'bigint' && (signed ? BigInt.asIntN(64, x) : BigInt.asUintN(64, x)) === x) a[0] = x; else slow(x, c, b, o); },
        };
      }
      return signed
        ? { get() { if (!state.live) throw closed(); return dv.getBigInt64(off, LE); }, set: slow }
        : { get() { if (!state.live) throw closed(); return dv.getBigUint64(off, LE); }, set: slow };
    }
    case 4: {
      if (aligned) {
        const a = signed ? new Int32Array(ab, off, 1) : new Uint32Array(ab, off, 1);
        return {
          get() { if (!state.live) throw closed(); return a[0]; },
          set: (x, c, b, o) => { if (typeof x === 'number' && (signed ? (x | 0) === x : x >>> 0 === x)) a[0] = x; else slow(x, c, b, o); },
        };
      }
      return signed
        ? { get() { if (!state.live) throw closed(); return dv.getInt32(off, LE); }, set: slow }
        : { get() { if (!state.live) throw closed(); return dv.getUint32(off, LE); }, set: slow };
    }
    case 2: return signed
      ? { get() { if (!state.live) throw closed(); return dv.getInt16(off, LE); }, set: slow }
      : { get() { if (!state.live) throw closed(); return dv.getUint16(off, LE); }, set: slow };
    case 1: return signed
      ? { get() { if (!state.live) throw closed(); return dv.getInt8(off); }, set: slow }
      : { get() { if (!state.live) throw closed(); return dv.getUint8(off); }, set: slow };
    default: return undefined;
  }
}

/** A BPF_F_MMAPABLE array, element by element through the mapping. */
export interface MappedArray {
  /** max_entries. */
  readonly length: number;
  /** Element `i` (0 <= i < length), decoded. Throws a RangeError outside. */
  get(i: number): BtfValue;
  /** Writes element `i`. Throws a RangeError outside, a TypeError for a value that does not fit. */
  set(i: number, v: BtfValue): void;
  /** The raw bytes of the mapping (value slots are rounded up to 8 bytes). */
  readonly bytes: Buffer;
}

/**
 * Maps a BPF_F_MMAPABLE array map, its elements typed by `codec` (from its
 * BTF). Throws a BpfError when the map is not mappable.
 */
export function openMappedArray(m: SectionMap, codec: { size: number; encode(v: BtfValue, b: Buffer, o?: number): void; decode(b: Buffer, o?: number): BtfValue }, track: (u: Unmappable) => void): MappedArray {
  const readOnly = (m.flags & BPF_F_RDONLY_PROG) !== 0;
  const mapping = mapIt(m, !readOnly, `array ${m.name}`);
  let live = true;
  track({ _invalidate() { live = false; mapping.unmap(); } });
  const slot = Math.ceil(m.valueSize / 8) * 8;
  const bytes = Buffer.from(mapping.buffer, 0, slot * m.maxEntries);
  const check = (i: number) => {
    if (!live) throw new BpfError(`use map ${m.name}`, Errno.EBADF, 'object is closed');
    if (!Number.isInteger(i) || i < 0 || i >= m.maxEntries) throw new RangeError(`${m.name}[${i}]: index out of range (the array has ${m.maxEntries} entries)`);
  };
  return {
    length: m.maxEntries,
    bytes,
    get(i) { check(i); return codec.decode(bytes, i * slot); },
    set(i, v) {
      check(i);
      if (readOnly) throw new TypeError(`${m.name} is read-only`);
      codec.encode(v, bytes, i * slot);
    },
  };
}
