/**
 * BTF: the types of objects and maps, BTF-typed codecs, globals through
 * memory mappings, and TypeScript generated from an object's BTF.
 */
export { Btf, BtfKind, BtfError, btfKindName, type BtfTypeInfo, type BtfMemberInfo, type BtfEnumValue } from './btf.js';
export { btfCodec, hexCodec, toJson, toHex, parseHexInto, isAddressField, type BtfValue, type BtfCodec, type ValueCodec, type BtfCodecOptions } from './codec.js';
export { mapCodecs, type MapCodecs, type MapBtfRef } from './maps.js';
export { BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, type Globals, type GlobalVars, type MappedArray } from './globals.js';
