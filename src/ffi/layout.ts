/**
 * C struct layouts for map keys, map values and ring buffer records, declared
 * as koffi struct types (natural C alignment). The typed API builds its codecs
 * from the offsets computed here; padding must be explicit.
 */
import { koffi, type TypeObject } from './native.js';

/** The C types a struct field may have. */
export type CType = 'uint8_t' | 'uint16_t' | 'uint32_t' | 'uint64_t' | 'int32_t' | 'int64_t' | { bytes: number };

/** One member of a declared struct: its offset and size in bytes. */
export interface CField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

/** The layout of a declared struct. */
export interface CLayout {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly CField[];
}

let anon = 0;

/**
 * Declares a C struct with koffi and returns its layout.
 * Throws a TypeError when the compiler would insert padding that the
 * declaration does not spell out (padding must be explicit: a map hashes
 * every byte of its key, padding included).
 */
export function declareCStruct(name: string, fields: ReadonlyArray<readonly [string, CType]>): CLayout {
  const members: Record<string, string | TypeObject> = {};
  for (const [fname, t] of fields) {
    members[fname] = typeof t === 'string' ? t : koffi.array('uint8_t', t.bytes);
  }
  // koffi type names are global: give each declaration a private one.
  const type = koffi.struct(`${name}__ts${anon++}`, members);
  const size = koffi.sizeof(type);
  const out: CField[] = [];
  let end = 0;
  for (const [fname, t] of fields) {
    const offset = koffi.offsetof(type, fname);
    const fsize = typeof t === 'string' ? koffi.sizeof(t) : t.bytes;
    if (offset !== end) {
      const prev = out.length ? `after '${out[out.length - 1].name}'` : 'at the start';
      throw new TypeError(`struct ${name} has ${offset - end} bytes of implicit padding ${prev}: declare them as a pad field`);
    }
    out.push({ name: fname, offset, size: fsize });
    end = offset + fsize;
  }
  if (end !== size) {
    throw new TypeError(`struct ${name} has ${size - end} bytes of implicit trailing padding: declare them as a pad field`);
  }
  return { name, size, align: koffi.alignof(type), fields: out };
}
