/**
 * The codecs of a map's key and value from its BTF (map info's btf_id,
 * btf_key_type_id, btf_value_type_id), or raw hex where the map has none:
 * what BpfObject.map(name) and BpfMap.openPinned/openById use when no
 * codecs are given.
 */
import { Btf } from './btf.js';
import { btfCodec, hexCodec, type BtfCodecOptions, type ValueCodec } from './codec.js';

/** Where a map's key and value types are described. */
export interface MapBtfRef {
  name: string;
  keySize: number;
  valueSize: number;
  /** The BTF object's kernel id (0: the map has no BTF). */
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

/** A map's codecs, and whether each came from BTF. */
export interface MapCodecs {
  key: ValueCodec;
  value: ValueCodec;
  /** The C type names ("struct conn_key"), or undefined where the codec is raw hex. */
  keyType?: string;
  valueType?: string;
  btf?: Btf;
}

/**
 * The codecs of a map: from `btf` (an object's own BTF) or else the kernel's
 * BTF object `ref.btfId`; hex where a type is missing or its size does not
 * match the map's. Throws a BpfError only when the kernel refuses to give
 * the BTF (EPERM without root).
 */
export function mapCodecs(ref: MapBtfRef, btf?: Btf, opts?: BtfCodecOptions): MapCodecs {
  const b = btf ?? (ref.btfId ? Btf.fromKernelId(ref.btfId) : undefined);
  const one = (id: number, size: number, what: string): [ValueCodec, string | undefined] => {
    if (b && id) {
      try {
        const c = btfCodec(b, id, opts);
        if (c.size === size) return [c, c.typeName];
      } catch { /* unsized or unsupported: hex */ }
    }
    return [hexCodec(size, `${ref.name || 'map'} ${what}`), undefined];
  };
  const [key, keyType] = one(ref.btfKeyTypeId, ref.keySize, 'key');
  const [value, valueType] = one(ref.btfValueTypeId, ref.valueSize, 'value');
  return { key, value, keyType, valueType, btf: b };
}
